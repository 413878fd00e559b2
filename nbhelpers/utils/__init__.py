"""Small utilities shared by every concern: atomic writes, the compute device, lookup by name and progress bars.

Every name below is importable from this package; it is imported from its module on first use.
"""

from nbhelpers.utils.lazy import lazy_exports

__getattr__, __all__ = lazy_exports(__name__, """
    atomic: atomic_path atomic_write_text atomic_write_json atomic_write_bytes atomic_write_csv
    device: get_default_device to_device DeviceDataLoader
    lazy: lazy_exports
    progress: TEXT_PROGRESS_VARIABLE text_progress_requested text_progress_bars progress_bar
    registry: lookup
""")

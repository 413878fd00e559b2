"""Data: image decoding, manifests and dataset adapters, the preprocessing cache, batch loaders,
augmentation pipelines, demographic groupings and data plots.

Every name below is importable from this package; it is imported from its module on first use.
"""

from nbhelpers.utils.lazy import lazy_exports

__getattr__, __all__ = lazy_exports(__name__, """
    cache: ImageCache build_cache manifest_fingerprint
    groups: UNKNOWN GROUP_SEPARATOR GROUPING_SEPARATOR PREFERRED_BINARY_ATTRIBUTES Grouping Groups grouping_name assign_groups default_groupings group_balanced_weights
    images: ImageLoadError LoadedImage load_rgb scan_image_folder DEFAULT_MAX_PIXELS MAX_DECLARED_PIXELS DRAFT_SCALES difference_hash centre_square_box square_resize
    loaders: CLASSES CachedBatchLoader
    manifest: GENDERS SPLITS REQUIRED_COLUMNS DatasetReport ManifestError finalize_manifest assign_splits write_manifest read_manifest manifest_path labels_of
    plots: show_grid plot_class_balance plot_group_balance show_before_after to_display sample_faces
    transforms: IMAGENET_MEAN IMAGENET_STD PIPELINES Pipeline channel_stats to_float normalize random_crop_flip random_flip resize bcos_encode build_pipeline pipeline_statistics
""")

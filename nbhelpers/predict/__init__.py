"""Prediction on any photo: face detection and alignment, the predictor and its command line
(``python -m nbhelpers.predict``), the upload widget, the Voila web page and the wide-photo check.

Every name of its modules' ``__all__`` is imported here (a test checks the two agree).
"""

from nbhelpers.predict.faces import (
    DetectedFace,
    FaceDetector,
    add_detector_arguments,
    detector_from_arguments,
    centre_crop,
    landmark_model_path,
    CHIP_SIZE,
    CHIP_PADDING,
    HOG_THRESHOLD,
    HOG_FALLBACK_THRESHOLD,
)
from nbhelpers.predict.predictor import Predictor, ImageInput, FLIP_TTA, MIN_IMAGE_SIDE
from nbhelpers.predict.real_photos import (
    labelled_uploads,
    read_labels,
    evaluate_photos,
    group_columns,
    accuracy_table,
    risk_coverage,
    evaluation_summary,
    COVERAGE_THRESHOLDS,
    evaluate_and_write,
    evaluate_labelled_folder,
    LABELS_NAME,
)
from nbhelpers.predict.results import FaceResult, PhotoResult, UNCERTAIN, NO_FACE, Box
from nbhelpers.predict.upload_app import (
    image_data_uri,
    boxed_photo,
    result_html,
    predict_uploads,
    read_uploads,
    UploadApp,
    MAX_UPLOAD_MB,
)
from nbhelpers.predict.wide_photos import wide_photo, example_uploads, wide_photo_accuracy

__all__ = [
    "DetectedFace",
    "FaceDetector",
    "add_detector_arguments",
    "detector_from_arguments",
    "centre_crop",
    "landmark_model_path",
    "CHIP_SIZE",
    "CHIP_PADDING",
    "HOG_THRESHOLD",
    "HOG_FALLBACK_THRESHOLD",
    "Predictor",
    "ImageInput",
    "FLIP_TTA",
    "MIN_IMAGE_SIDE",
    "labelled_uploads",
    "read_labels",
    "evaluate_photos",
    "group_columns",
    "accuracy_table",
    "risk_coverage",
    "evaluation_summary",
    "COVERAGE_THRESHOLDS",
    "evaluate_and_write",
    "evaluate_labelled_folder",
    "LABELS_NAME",
    "FaceResult",
    "PhotoResult",
    "UNCERTAIN",
    "NO_FACE",
    "Box",
    "image_data_uri",
    "boxed_photo",
    "result_html",
    "predict_uploads",
    "read_uploads",
    "UploadApp",
    "MAX_UPLOAD_MB",
    "wide_photo",
    "example_uploads",
    "wide_photo_accuracy",
]

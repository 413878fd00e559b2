"""Prediction on any photo: face detection and alignment, the predictor and its command line
(``python -m nbhelpers.predict``), the upload widget, the Voila web page and the wide-photo check.

Every name below is importable from this package; it is imported from its module on first use.
"""

from nbhelpers.utils.lazy import lazy_exports

__getattr__, __all__ = lazy_exports(__name__, """
    faces: DetectedFace FaceDetector centre_crop landmark_model_path CHIP_SIZE CHIP_PADDING HOG_THRESHOLD
    predictor: Predictor IMAGE_SUFFIXES MIN_IMAGE_SIDE expand_inputs record_to_json
    upload_app: image_data_uri boxed_photo result_html predict_uploads read_uploads UploadApp MAX_UPLOAD_MB
    web_page: parameterized_copy page_notebook free_port VoilaServer REPORT_ONLY_TAG WEBSOCKET_MAX_MESSAGE_MB
    wide_photos: wide_photo example_uploads wide_photo_accuracy
""")

"""The HTTP API of a trained run (``python -m nbhelpers.serve --checkpoint model.pt``): ``POST /predict`` with
one image, ``GET /health``, OpenAPI docs at ``/docs``. Needs the ``api`` extra (FastAPI, uvicorn).

Every name of its modules' ``__all__`` is imported here (a test checks the two agree).
"""

from nbhelpers.serve.app import create_app, photo_json, explanation_png, DEFAULT_MAX_UPLOAD_BYTES, UPLOAD_NAME
from nbhelpers.serve.limits import UploadLimit, BodyTooLarge, send_json_error

__all__ = [
    "create_app",
    "photo_json",
    "explanation_png",
    "DEFAULT_MAX_UPLOAD_BYTES",
    "UPLOAD_NAME",
    "UploadLimit",
    "BodyTooLarge",
    "send_json_error",
]

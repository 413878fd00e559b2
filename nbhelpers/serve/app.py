"""The HTTP API of a trained run: a FastAPI application over ``nbhelpers.predict.predictor.Predictor``.

``POST /predict`` takes one image as the multipart field ``file`` and answers with the JSON object the
prediction command line prints for it (``PhotoResult.to_json()``); with ``?explain=<method>`` each face's
``explanation`` also holds ``png``: a ``data:image/png;base64,...`` URI of the explanation map blended over the
aligned face (``nbhelpers.predict.explanation_images``, as the page and the command line draw it). ``GET /health`` describes the model; ``/docs`` is the
OpenAPI page. Every error is JSON ``{"error": "<name>: <problem>"}`` with a 4xx status: 413 for a request
over the upload limit (``nbhelpers.serve.limits``), 422 for a missing field, an unknown method or a file
that cannot be read as an image (the decoder's message; the body is then the command line's error line,
which also has ``path``). A photo without a face is a valid answer (200, ``face_detected: false``).

Requests are served in FastAPI's thread pool; one lock serialises the use of the model, because the
explainers register hooks on it (torch modules are not thread-safe for hooks). FastAPI and uvicorn are the
``api`` extra, imported when an application is built.
"""

import logging
import threading
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, Optional, Sequence

from nbhelpers.predict.explanation_images import explanation_image
from nbhelpers.predict.predictor import Predictor
from nbhelpers.predict.results import FaceResult, PhotoResult
from nbhelpers.predict.upload_app import image_data_uri
from nbhelpers.serve.limits import UploadLimit

if TYPE_CHECKING:
    from fastapi import FastAPI

__all__ = ["create_app", "photo_json", "explanation_png", "DEFAULT_MAX_UPLOAD_BYTES", "UPLOAD_NAME"]

DEFAULT_MAX_UPLOAD_BYTES = 30 * 2 ** 20  # 30 MiB: a 50 MP phone JPEG fits
LOGGER = logging.getLogger(__name__)
UPLOAD_NAME = "upload"  # the name of an upload sent without a file name
DESCRIPTION = """Classifies the faces in a photo as female or male with a trained run of the face-gender suite,
and explains each decision on request.

* `POST /predict`: one image as the multipart field `file` -> the JSON the command line
  `python -m nbhelpers.predict` prints for it; `?explain=<method>` adds each face's explanation as a PNG
  data URI (`faces[i].explanation.png`).
* `GET /health`: the model, who answers (`answer`: the model, or the model and the dlib-models peer
  averaged), its input size, classes and abstention threshold.

Faces whose top probability is below `uncertain_below` are labelled `uncertain` (`predicted` still gives the
leaning). Errors are JSON `{"error": "<name>: <problem>"}`: 413 over the upload limit, 422 for a missing
`file` field, an unknown explanation method or a file that is not a readable image."""


def explanation_png(face: FaceResult) -> str:
    """A PNG data URI of the face's explanation drawn over its chip, as the upload page and the command line
    draw it (``nbhelpers.predict.explanation_images.explanation_image``: a B-cos model's colour explanation
    of W(x), else the heat overlay of the map). Raises ``ValueError`` without a chip or an explanation."""
    if face.chip is None or (face.attribution is None and face.explanation_image is None):
        raise ValueError("explanation_png needs a face kept with its chip and its explanation")
    return image_data_uri(explanation_image(face))


def photo_json(result: PhotoResult) -> dict[str, Any]:
    """``result.to_json()``, with ``explanation.png`` added to each face that has an explanation."""
    data = result.to_json()
    for face, face_data in zip(result.faces, data.get("faces", [])):
        if face.chip is not None and (face.attribution is not None or face.explanation_image is not None):
            face_data["explanation"]["png"] = explanation_png(face)
    return data


def _error(status: int, message: str) -> Any:
    from fastapi.responses import JSONResponse

    return JSONResponse({"error": message}, status_code=status)


def _validation_message(errors: Sequence[dict[str, Any]]) -> str:
    """One line for FastAPI's validation errors, with the fix for a missing image."""
    parts = []
    for error in errors:
        location = tuple(str(part) for part in error.get("loc", ()))
        hint = " (send the image as the multipart/form-data field 'file')" if location == ("body", "file") else ""
        parts.append(f"{'.'.join(location) or 'request'}: {error.get('msg', 'invalid')}{hint}")
    return "request: " + "; ".join(parts)


def _add_error_handlers(app: "FastAPI") -> None:
    """JSON ``{"error": ...}`` for validation errors, every 4xx HTTP error and unexpected failures (500)."""
    from fastapi.exceptions import RequestValidationError

    async def validation_failed(request: Any, error: RequestValidationError) -> Any:
        return _error(422, _validation_message(error.errors()))

    async def http_error(request: Any, error: Any) -> Any:
        detail = getattr(error, "detail", None) or HTTPStatus(error.status_code).phrase
        return _error(error.status_code, f"request: {detail} ({request.method} {request.url.path})")

    async def server_error(request: Any, error: Exception) -> Any:
        return _error(500, f"server: internal error ({type(error).__name__}); the server goes on serving")

    app.add_exception_handler(RequestValidationError, validation_failed)
    for status in HTTPStatus:  # by status code: HTTP errors raised by the router (404, 405) and by FastAPI (400)
        if 400 <= status < 500:
            app.add_exception_handler(int(status), http_error)
    app.add_exception_handler(Exception, server_error)


def _add_health(app: "FastAPI", predictor: Predictor, max_upload_bytes: int, methods: list[str]) -> None:
    @app.get("/health", summary="The model this server classifies with", tags=["service"])
    def health() -> dict:
        """`status` ok, the run's model name, input size (px), classes, abstention threshold, whether faces are
        detected (else centre crops are classified), who answers (`answer`: the model, or the model averaged with
        the other runs of its deep ensemble, the dlib peer and/or the
        face-descriptor probe), the explanation methods and the upload limit (bytes)."""
        spec = predictor.spec
        return {"status": "ok", "model": spec.model, "input_size": spec.input_size, "classes": list(spec.classes),
                "uncertain_below": predictor.uncertain_below, "detect": predictor.detector is not None,
                "answer": predictor.answer_source,
                "explain_methods": methods, "max_upload_bytes": max_upload_bytes}


def _add_predict(app: "FastAPI", predictor: Predictor, lock: threading.Lock, methods: list[str]) -> None:
    from fastapi import File, Query, UploadFile
    from fastapi.responses import JSONResponse

    responses = {422: {"description": "missing `file`, unknown `explain` method, or not a readable image"},
                 413: {"description": "request body over the upload limit"}}

    @app.post("/predict", summary="Classify the faces in one photo", tags=["prediction"], responses=responses)
    def predict(file: UploadFile = File(..., description="one image (JPEG, PNG, WebP, HEIC, AVIF, ...)"),
                explain: Optional[str] = Query(None, description=f"explanation method, one of {methods}",
                                               json_schema_extra={"enum": methods})) -> JSONResponse:
        """The faces found in the photo, largest first: box (upright photo's pixels), label (or `uncertain`),
        probabilities; `face_detected` false (and a note) when there is none. With `explain`, each face's
        `explanation.png` is a PNG data URI of the evidence for the predicted class over the aligned face."""
        if explain and explain not in methods:
            return _error(422, f"explain: unknown method {explain!r}; this model supports {methods}")
        name, data = file.filename or UPLOAD_NAME, file.file.read()
        try:
            with lock:  # one request at a time on the model: explainers add hooks to it
                [result] = predictor.predict_images([(name, data)], explain=explain or None,
                                                    keep_chips=bool(explain))
            return JSONResponse(photo_json(result), status_code=422 if result.error else 200)
        except Exception as error:  # noqa: BLE001 - answered here, so that the connection stays usable
            LOGGER.exception("prediction failed for %r", name)
            reason = " ".join(f"{type(error).__name__}: {error}".split())[:200]
            return _error(500, f"{name}: prediction failed ({reason}); the server goes on serving")


def create_app(predictor: Predictor, max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES,
               explain_methods: Sequence[str] = ()) -> "FastAPI":
    """The FastAPI application serving ``predictor`` (see the module docstring).

    ``max_upload_bytes``: the largest request body accepted (> 0, else ``ValueError``); ``explain_methods``:
    the explainer names ``?explain=`` accepts (``nbhelpers.serve.cli.supported_explainers``).
    """
    from fastapi import FastAPI

    if max_upload_bytes <= 0:
        raise ValueError(f"max_upload_bytes must be positive, not {max_upload_bytes}")
    methods = list(explain_methods)
    app = FastAPI(title="Face-gender classifier", version="1", description=DESCRIPTION)
    app.add_middleware(UploadLimit, max_bytes=max_upload_bytes)
    _add_error_handlers(app)
    _add_health(app, predictor, max_upload_bytes, methods)
    _add_predict(app, predictor, threading.Lock(), methods)
    app.state.predictor = predictor
    return app

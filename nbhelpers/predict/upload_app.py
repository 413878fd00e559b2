"""Upload-and-predict: the ipywidgets app of notebook 08 (JupyterLab, Colab, and Voila as a web page).

Several photos at once; the model and the explanation method are drop-downs. Each photo goes through
``nbhelpers.predict.predictor.Predictor`` (face detection and alignment, then classification); the results are
HTML: per face its aligned crop, the explanation drawn over it (``nbhelpers.predict.explanation_images``: the
same image the command line writes), the label and probability and the face box.
A file that cannot be read, or one over ``MAX_UPLOAD_MB``, shows its error message and the app keeps working.
Changing the model or the method runs the last photos again. Choosing a model also chooses its default method
(``default_method``): a B-cos model's own explanation, ``bcos``, shown large, and for a black-box model the
method already chosen if it applies, else the first that does; every method stays selectable.

The widget's files travel to the kernel in one websocket message per choice: Jupyter servers cut messages
over 10 MiB by default (tornado's ``websocket_max_message_size``), which closes the page's connection; the
web page (``nbhelpers.predict.web_page``) raises that to 64 MiB.
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path
from typing import Any, Sequence

import ipywidgets as widgets
import numpy as np
from PIL import Image, ImageDraw

from nbhelpers.explain.explainers import explainer_supports
from nbhelpers.predict.explanation_images import explanation_image
from nbhelpers.predict.predictor import Predictor
from nbhelpers.predict.results import FaceResult, PhotoResult

__all__ = ["image_data_uri", "boxed_photo", "result_html", "predict_uploads", "read_uploads", "default_method",
           "UploadApp", "MAX_UPLOAD_MB"]

NO_EXPLANATION = "none"
PHOTO_SIDE = 360  # px: the longer side of the photo shown with its face boxes
FACE_SIDE = 200  # px: the face crop and a CAM's explanation overlay
BCOS_SIDE = 360  # px: a B-cos model's own explanation, shown larger than the CAM overlays
MAX_UPLOAD_MB = 30  # MB (10**6 bytes): larger files are refused with a message (the web page's transport takes 64 MiB)


def image_data_uri(image: np.ndarray) -> str:
    """A PNG ``data:`` URI of an RGB image (uint8, or float in 0..1)."""
    array = np.asarray(image)
    if array.dtype != np.uint8:
        array = (array.clip(0, 1) * 255).round().astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def _face_html(face: FaceResult) -> str:
    chip = np.asarray(face.chip)
    panels = [f'<img class="face" src="{image_data_uri(chip)}" width="{FACE_SIDE}" alt="face">']
    explanation = explanation_image(face)
    if explanation is not None:
        side = BCOS_SIDE if face.explanation_image is not None else FACE_SIDE
        panels.append(f'<img class="explanation" src="{image_data_uri(explanation)}" width="{side}" '
                      f'alt="{html.escape(face.explanation_method)} explanation">')
    note = " (no face search: centre crop)" if face.detector == "centre" else ""
    guess = f" (leaning {html.escape(face.predicted)})" if face.uncertain else ""
    own = ""
    if face.model_probabilities is not None:  # the answer is an ensemble's; the map explains the model alone
        leaning = max(face.model_probabilities, key=face.model_probabilities.get)
        own = (f'<br><span class="ensemble">an ensemble\'s answer (mean); the model alone: {html.escape(leaning)} '
               f'{face.model_probabilities[leaning]:.2f}</span>')
    caption = (f'<span class="label">{html.escape(face.label)}</span>{guess} {face.confidence:.2f} '
               f'box {list(face.box)}{note}{own}')
    return f'<figure style="display:inline-block;margin:4px">{"".join(panels)}<figcaption>{caption}</figcaption></figure>'


def result_html(result: PhotoResult) -> str:
    """HTML of one ``PhotoResult`` (made with ``keep_chips`` and ``keep_photo``); errors in red, all text escaped."""
    title = html.escape(Path(result.name).name or result.name)
    if result.error:
        return f'<div class="error" style="color:#b00020"><b>{title}</b>: {html.escape(result.error)}</div>'
    photo = ""
    if result.photo is not None:
        photo = (f'<img class="photo" src="{image_data_uri(boxed_photo(result.photo, [f.box for f in result.faces]))}" '
                 'alt="photo with face boxes"><br>')
    notes = "".join(f'<div class="note">{html.escape(note)}</div>' for note in result.notes)
    faces = "".join(_face_html(face) for face in result.faces)
    return f'<div class="result"><b>{title}</b><br>{photo}{notes}{faces}</div>'


def boxed_photo(image: Image.Image, boxes: Sequence[Sequence[int]], side: int = PHOTO_SIDE) -> np.ndarray:
    """The upright photo scaled to ``side`` px on its longer side, each face box drawn on it (uint8 H, W, 3)."""
    scale = side / max(image.size)
    image = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))))
    draw = ImageDraw.Draw(image)
    for box in boxes:
        draw.rectangle([round(value * scale) for value in box], outline=(255, 200, 0), width=3)
    return np.asarray(image)


def predict_uploads(predictor: Predictor, uploads: Sequence[tuple[str, bytes]],
                    explain: str | None = None) -> list[PhotoResult]:
    """(file name, bytes) pairs -> their ``PhotoResult``s with chips and photos, decoded in memory once each."""
    return list(predictor.predict_images(uploads, explain=explain, keep_chips=True, keep_photo=True))


def read_uploads(value: Any, max_megabytes: float = MAX_UPLOAD_MB) -> tuple[list[tuple[str, bytes]], list[PhotoResult]]:
    """A FileUpload value (ipywidgets 8: a tuple of dicts with ``name``, ``size`` in bytes and ``content``) ->
    the (name, bytes) of the files within ``max_megabytes`` (10**6 bytes) and an error result for each larger one
    (its size is read from ``size``, and its content is not copied)."""
    accepted, refused = [], []
    for item in value:
        size = int(item.get("size") or len(item["content"]))
        if size > max_megabytes * 1e6:
            refused.append(PhotoResult(item["name"], error=f"{item['name']}: {size / 1e6:.1f} MB is over this page's "
                                                           f"limit of {max_megabytes:g} MB per photo; not read"))
        else:
            accepted.append((item["name"], bytes(item["content"])))
    return accepted, refused


def default_method(predictor: Predictor, methods: Sequence[str], current: str = NO_EXPLANATION) -> str:
    """The method to show for ``predictor``'s model: ``bcos`` (its own explanation) for a B-cos model when
    offered; else ``current`` when it applies to the model; else the first of ``methods`` that does
    (``"none"`` when none does)."""
    model = predictor.trained.model
    if predictor.spec.is_bcos and "bcos" in methods:
        return "bcos"
    if current == NO_EXPLANATION or (current in methods and explainer_supports(current, model)):
        return current
    return next((method for method in methods if explainer_supports(method, model)), NO_EXPLANATION)


class UploadApp:
    """File upload, model and method drop-downs, and an HTML result area; ``widget`` is what to display.

    ``model``: the model chosen first (default: the first of ``checkpoints``; notebook 08 passes the suite's
    default run, ``nbhelpers.training.default_run``); the method starts at its ``default_method``. Choosing
    files runs them (files over ``MAX_UPLOAD_MB`` are refused with a message); changing the model (which also
    picks that model's default method) or the method runs the last choice again; the upload is emptied after
    each choice, so that choosing the same file again runs it again. Raises ``ValueError`` without checkpoints
    or for a ``model`` not among them."""

    def __init__(self, checkpoints: dict[str, str | Path], methods: Sequence[str], device: str | None = None,
                 model: str | None = None) -> None:
        if not checkpoints:
            raise ValueError("no trained model to predict with; run the training notebooks (03-05) first")
        if model is not None and model not in checkpoints:
            raise ValueError(f"model {model!r} has no trained run here (have {sorted(checkpoints)})")
        self.checkpoints, self.device, self._predictors = dict(checkpoints), device, {}
        self.methods = list(methods)
        self.last_uploads: list[tuple[str, bytes]] = []
        self.last_refused: list[PhotoResult] = []
        self._choosing_method = False  # set while a model change picks its method: one run, not two
        first = model or next(iter(self.checkpoints))
        self.upload = widgets.FileUpload(accept="image/*,.jpg,.jpeg,.png", multiple=True, description="Photos")
        self.model = widgets.Dropdown(options=list(self.checkpoints), value=first, description="Model")
        self.method = widgets.Dropdown(options=[NO_EXPLANATION, *self.methods],
                                       value=default_method(self.predictor(first), self.methods,
                                                            (self.methods or [NO_EXPLANATION])[0]),
                                       description="Explain")
        self.status = widgets.HTML(f"Choose photos (up to {MAX_UPLOAD_MB:g} MB each).")
        self.results = widgets.HTML()
        self.status.add_class("upload-status")
        self.results.add_class("upload-results")  # what the browser test of the Voila page looks at
        self.upload.observe(self._chosen, names="value")
        self.model.observe(self._model_chosen, names="value")
        self.method.observe(self._rerun, names="value")
        self.widget = widgets.VBox([widgets.HBox([self.upload, self.model, self.method]), self.status, self.results])

    @property
    def explain_method(self) -> str | None:
        """The chosen explanation method, None for ``"none"`` (as ``predict_uploads`` takes it)."""
        return None if self.method.value == NO_EXPLANATION else self.method.value

    def _model_chosen(self, change: dict) -> None:
        try:
            method = default_method(self.predictor(change["new"]), self.methods, self.method.value)
        except Exception as error:  # noqa: BLE001 - an unusable checkpoint: shown; an observer has nowhere to raise to
            self.status.value = f'<span style="color:#b00020">failed: {html.escape(str(error))}</span>'
            return
        self._choosing_method = True
        try:
            self.method.value = method
        finally:
            self._choosing_method = False
        self._rerun()

    def _chosen(self, change: dict) -> None:
        if not change["new"]:  # the reset below
            return
        self.last_uploads, self.last_refused = read_uploads(change["new"])
        self.upload.value = ()  # so that choosing the same file again is a change, and the bytes are not kept twice
        self._rerun()

    def _rerun(self, change: dict | None = None) -> None:
        if self._choosing_method:  # the model change that set the method runs the photos itself
            return
        if self.last_uploads or self.last_refused:
            try:
                self.show(self.last_uploads, self.last_refused)
            except Exception:  # noqa: BLE001 - shown in the status by show(); an observer has nowhere to raise to
                pass

    def predictor(self, name: str) -> Predictor:
        """The predictor of model ``name``, loaded once."""
        if name not in self._predictors:
            self._predictors[name] = Predictor(self.checkpoints[name], self.device)
        return self._predictors[name]

    def show(self, uploads: Sequence[tuple[str, bytes]], refused: Sequence[PhotoResult] = ()) -> str:
        """Predict ``uploads`` with the chosen model and method and show the results, then the ``refused`` files'
        errors (the HTML is also returned); the previous results are cleared first; a failure is shown in the
        status and raised."""
        model, method, explain = self.model.value, self.method.value, self.explain_method
        self.results.value = ""  # no results of another model, method or choice while this one runs
        chosen = f"{html.escape(model)}, explanation {html.escape(method)}"
        self.status.value = f"predicting {len(uploads)} file(s) with {chosen}..."
        try:
            results = predict_uploads(self.predictor(model), uploads, explain) if uploads else []
        except Exception as error:
            self.status.value = f'<span style="color:#b00020">failed: {html.escape(str(error))}</span>'
            raise
        self.results.value = "".join(result_html(result) for result in [*results, *refused])
        over = f"; {len(refused)} refused (over {MAX_UPLOAD_MB:g} MB)" if refused else ""
        self.status.value = f"{len(results)} file(s) done with {chosen}{over}"
        return self.results.value

"""Upload-and-predict: the ipywidgets app of notebook 08 (JupyterLab, Colab, and Voila as a web page).

Several photos at once; the model and the explanation method are drop-downs. Each photo goes through
``nbhelpers.predict.predictor.Predictor`` (face detection and alignment, then classification); the results are
HTML: per face its aligned crop, the explanation overlay, the label and probability and the face box.
A file that cannot be read shows its error message and the app keeps working.
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

from nbhelpers.explain.plots import overlay
from nbhelpers.predict.predictor import Predictor
from nbhelpers.predict.results import FaceResult, PhotoResult

__all__ = ["image_data_uri", "boxed_photo", "result_html", "predict_uploads", "UploadApp"]

NO_EXPLANATION = "none"
PHOTO_SIDE = 360  # px: the longer side of the photo shown with its face boxes
FACE_SIDE = 200  # px: the face crop and its explanation overlay


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
    if face.attribution is not None:
        heat = np.asarray(Image.fromarray(np.asarray(face.attribution, dtype=np.float32)).resize(chip.shape[1::-1]))
        panels.append(f'<img class="explanation" src="{image_data_uri(overlay(chip / 255.0, heat))}" width="{FACE_SIDE}" '
                      f'alt="{html.escape(face.explanation_method)} explanation">')
    note = " (no face search: centre crop)" if face.detector == "centre" else ""
    guess = f" (leaning {html.escape(face.predicted)})" if face.uncertain else ""
    caption = (f'<span class="label">{html.escape(face.label)}</span>{guess} {face.confidence:.2f} '
               f'box {list(face.box)}{note}')
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


class UploadApp:
    """File upload, model and method drop-downs, and an HTML result area; ``widget`` is what to display."""

    def __init__(self, checkpoints: dict[str, str | Path], methods: Sequence[str], device: str | None = None) -> None:
        if not checkpoints:
            raise ValueError("no trained model to predict with; run the training notebooks (03-05) first")
        self.checkpoints, self.device, self._predictors = dict(checkpoints), device, {}
        self.upload = widgets.FileUpload(accept="image/*,.jpg,.jpeg,.png", multiple=True, description="Photos")
        self.model = widgets.Dropdown(options=list(self.checkpoints), description="Model")
        self.method = widgets.Dropdown(options=[NO_EXPLANATION, *methods], value=(list(methods) or [NO_EXPLANATION])[0],
                                       description="Explain")
        self.status = widgets.HTML()
        self.results = widgets.HTML()
        self.status.add_class("upload-status")
        self.results.add_class("upload-results")  # what the browser test of the Voila page looks at
        self.upload.observe(lambda change: self.show(self.uploaded(change["new"])), names="value")
        self.widget = widgets.VBox([widgets.HBox([self.upload, self.model, self.method]), self.status, self.results])

    @staticmethod
    def uploaded(value: Any) -> list[tuple[str, bytes]]:
        """(name, bytes) of a FileUpload value (ipywidgets 8: a tuple of dicts with name and content)."""
        return [(item["name"], bytes(item["content"])) for item in value]

    def predictor(self, name: str) -> Predictor:
        """The predictor of model ``name``, loaded once."""
        if name not in self._predictors:
            self._predictors[name] = Predictor(self.checkpoints[name], self.device)
        return self._predictors[name]

    def show(self, uploads: Sequence[tuple[str, bytes]]) -> str:
        """Predict ``uploads`` with the chosen model and method and show the results (also returned)."""
        explain = None if self.method.value == NO_EXPLANATION else self.method.value
        self.status.value = f"predicting {len(uploads)} file(s) with {html.escape(self.model.value)}..."
        try:
            results = predict_uploads(self.predictor(self.model.value), uploads, explain)
        except Exception as error:
            self.status.value = f'<span style="color:#b00020">failed: {html.escape(str(error))}</span>'
            raise
        self.results.value = "".join(result_html(result) for result in results)
        self.status.value = f"{len(results)} file(s) done"
        return self.results.value

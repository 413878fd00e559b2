"""``RunSpec``: the one typed contract of a model run, in the manner of timm's ``PretrainedCfg``.

A ``RunSpec`` says what a model is and how it is fed and explained: the registered model name and
its arguments, the class names, the input size, the input pipeline with its normalisation (training
split or ImageNet mean/std) or the B-cos encoding, the state-dict prefix of the classifier, the CAM
layer candidates and the chosen CAM layer (module names, with the layer's reduction), the pretrained
weights asked for and the source actually loaded, and the abstention threshold. It is

- the registry's default for each model (``register_model``; mean/std and threshold still empty),
- attached to every model built by ``create_model`` (``model.spec``),
- the metadata of every checkpoint (``to_dict``), validated once when read (``from_dict``: errors
  name the file and the field),
- the predictor's preprocessing and the analysis code's model description.

It is frozen: a changed run is a new spec (``replace``).
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from typing import Any, Mapping

from nbhelpers.data.manifest import GENDERS

__all__ = ["RunSpec", "CamLayer", "RunSpecError", "NORMALISATIONS", "CLASSES", "LEGACY_FIELDS"]

# pipeline -> how its input is normalised (nbhelpers.data.transforms.build_pipeline implements each)
NORMALISATIONS = {"pad_crop_flip": "training-split mean/std", "finetune": "ImageNet mean/std",
                  "bcos": "B-cos encoding [r, g, b, 1-r, 1-g, 1-b], no mean/std"}
CLASSES = tuple(GENDERS)  # class order of every model of the suite (label 0, 1)
# keys that older checkpoints wrote into their metadata and that are no longer part of the spec
LEGACY_FIELDS = frozenset({"config", "dataset_size"})


class RunSpecError(ValueError):
    """A run spec (or the metadata it is read from) has a missing or ill-typed field; the message names it."""


@dataclass(frozen=True)
class CamLayer:
    """A CAM target layer as data: the module's dotted name in the model and its reduction (input px per cell)."""

    module: str
    reduction: int = 0  # 0: not measured yet

    def to_dict(self) -> dict[str, Any]:
        """``{"module": ..., "reduction": ...}``."""
        return dataclasses.asdict(self)


def _kind(value: Any) -> str:
    return "None" if value is None else f"a {type(value).__name__} ({str(value)[:60]!r})"


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _check_channels(name: str, value: Any) -> tuple[float, float, float] | None:
    if value is None:
        return None
    if not (isinstance(value, (list, tuple)) and len(value) == 3 and all(_is_number(item) for item in value)):
        raise RunSpecError(f"field {name!r} is {_kind(value)}, not three numbers (one per channel)")
    return tuple(float(item) for item in value)


def _check_cam_layer(value: Any) -> CamLayer:
    if isinstance(value, CamLayer):
        return value
    if isinstance(value, str):
        return CamLayer(value)
    if isinstance(value, Mapping) and isinstance(value.get("module"), str) and isinstance(value.get("reduction", 0), int):
        return CamLayer(value["module"], int(value.get("reduction", 0)))
    raise RunSpecError(f"a CAM layer is {_kind(value)}, not a module name with its reduction")


@dataclass(frozen=True)
class RunSpec:
    """How a model run is built, fed and explained (see the module docstring). Validated on construction.

    Raises ``RunSpecError`` naming the field when a value has the wrong type or is out of range.
    """

    model: str  # registered model name
    pipeline: str  # key of NORMALISATIONS
    input_size: int  # input size in px (square)
    classifier: str = "fc."  # state-dict prefix of the head (never loaded from pretrained weights)
    cam_candidates: tuple[str, ...] = ()  # CAM layer candidates (module names), shallow to deep
    cam_layer: CamLayer | None = None  # the CAM layer chosen for input_size (None: choose when explaining)
    pretrained: str = ""  # weights asked for: "imagenet", a local file, or "" (random initialisation)
    pretrained_source: str | None = None  # the weights actually loaded (None: random initialisation)
    model_kwargs: Mapping[str, Any] = field(default_factory=dict)  # arguments of the registered factory
    classes: tuple[str, ...] = CLASSES
    mean: tuple[float, float, float] | None = None  # per-channel input mean (None: B-cos, no normalisation)
    std: tuple[float, float, float] | None = None
    uncertain_below: float = 0.0  # answer "uncertain" below this top probability (0: always answer)
    dataset: str = ""  # dataset the run was trained on ('' for a registry default)
    description: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        set_field = lambda name, value: object.__setattr__(self, name, value)  # noqa: E731 - frozen dataclass
        for name in ("model", "pipeline", "classifier", "pretrained", "dataset", "description"):
            if not isinstance(getattr(self, name), str):
                raise RunSpecError(f"field {name!r} is {_kind(getattr(self, name))}, not text")
        if not self.model:
            raise RunSpecError("field 'model' is empty, not a model name")
        if self.pipeline not in NORMALISATIONS:
            raise RunSpecError(f"field 'pipeline' is {self.pipeline[:60]!r}; known: {sorted(NORMALISATIONS)}")
        if not isinstance(self.input_size, int) or isinstance(self.input_size, bool) or not 1 <= self.input_size <= 4096:
            raise RunSpecError(f"field 'input_size' is {_kind(self.input_size)}, not a size in pixels (1-4096)")
        if self.pretrained_source is not None and not isinstance(self.pretrained_source, str):
            raise RunSpecError(f"field 'pretrained_source' is {_kind(self.pretrained_source)}, not text")
        if not isinstance(self.model_kwargs, Mapping) or not all(isinstance(key, str) for key in self.model_kwargs):
            raise RunSpecError(f"field 'model_kwargs' is {_kind(self.model_kwargs)}, not a mapping of argument names")
        set_field("model_kwargs", dict(self.model_kwargs))  # a copy: the caller's dict cannot change the spec
        if not (isinstance(self.classes, (list, tuple)) and len(self.classes) >= 2
                and all(isinstance(name, str) and name for name in self.classes)):
            raise RunSpecError(f"field 'classes' is {_kind(self.classes)}, not a list of two or more class names")
        set_field("classes", tuple(self.classes))
        if self.model_kwargs.get("num_classes", len(self.classes)) != len(self.classes):
            raise RunSpecError(f"field 'model_kwargs' asks for num_classes={str(self.model_kwargs['num_classes'])[:20]} "
                               f"but 'classes' names {len(self.classes)}")
        if not isinstance(self.cam_candidates, (list, tuple)) or not all(isinstance(n, str) for n in self.cam_candidates):
            raise RunSpecError(f"field 'cam_candidates' is {_kind(self.cam_candidates)}, not a list of module names")
        set_field("cam_candidates", tuple(self.cam_candidates))
        set_field("cam_layer", None if self.cam_layer is None else _check_cam_layer(self.cam_layer))
        set_field("mean", _check_channels("mean", self.mean))
        set_field("std", _check_channels("std", self.std))
        if self.std is not None and min(self.std) <= 0:
            raise RunSpecError(f"field 'std' is {self.std}: every channel's std must be positive")
        if not _is_number(self.uncertain_below) or not 0.0 <= self.uncertain_below <= 1.0:
            raise RunSpecError(f"field 'uncertain_below' is {_kind(self.uncertain_below)}, not a probability in [0, 1]")
        set_field("uncertain_below", float(self.uncertain_below))

    @property
    def is_bcos(self) -> bool:
        """True for B-cos models: their input is the 6-channel B-cos encoding and their explanation is exact."""
        return self.pipeline == "bcos"

    @property
    def normalisation(self) -> str:
        """What the pipeline does to pixel values (text)."""
        return NORMALISATIONS[self.pipeline]

    @property
    def needs_statistics(self) -> bool:
        """True when predicting needs ``mean`` and ``std`` (every pipeline but the B-cos encoding)."""
        return not self.is_bcos

    def replace(self, **changes: Any) -> "RunSpec":
        """A copy with ``changes`` applied (validated again)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-compatible values (lists, dicts, numbers, text): the checkpoint's metadata."""
        data = {item.name: getattr(self, item.name) for item in dataclasses.fields(self)}
        data.update(model_kwargs=dict(self.model_kwargs), classes=list(self.classes),
                    cam_candidates=list(self.cam_candidates),
                    cam_layer=self.cam_layer.to_dict() if self.cam_layer else None,
                    mean=list(self.mean) if self.mean else None, std=list(self.std) if self.std else None)
        return data

    def to_json(self) -> str:
        """``to_dict`` as a JSON string."""
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: Any, source: str = "", defaults: "RunSpec | None" = None) -> "RunSpec":
        """The spec stored in ``data`` (a checkpoint's metadata), over ``defaults`` (the registered spec of
        its model, for fields older checkpoints did not store). Raises ``RunSpecError`` whose message starts
        with ``source`` (the file) and names the field; unknown fields are errors, ``LEGACY_FIELDS`` ignored."""
        prefix = f"{source}: " if source else ""
        if not isinstance(data, Mapping):
            raise RunSpecError(f"{prefix}metadata is {_kind(data)}, not a mapping of fields")
        names = {item.name for item in dataclasses.fields(cls)}
        unknown = sorted(str(key)[:40] for key in data if key not in names and key not in LEGACY_FIELDS)
        if unknown:
            raise RunSpecError(f"{prefix}metadata has unknown field(s) {unknown}; known: {sorted(names)}")
        values = defaults.to_dict() if defaults is not None else {}
        values.update({key: value for key, value in data.items() if key in names})
        missing = sorted(name for name in ("model", "pipeline", "input_size") if name not in values)
        if missing:
            raise RunSpecError(f"{prefix}metadata lacks field(s) {missing}")
        if values["pipeline"] != "bcos" and (values.get("mean") is None or values.get("std") is None):
            raise RunSpecError(f"{prefix}metadata lacks 'mean'/'std', needed by pipeline {values['pipeline']!r}")
        try:
            return cls(**values)
        except RunSpecError as error:
            raise RunSpecError(f"{prefix}{error}") from None
        except TypeError as error:  # a field given as the wrong kind of container, e.g. a number for a list
            raise RunSpecError(f"{prefix}metadata does not fit a run spec ({error})") from None

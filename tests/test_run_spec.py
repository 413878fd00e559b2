"""The run spec: validated once, serialisable, and read back from checkpoints with errors naming the field."""

import json

import pytest

from nbhelpers.models import CamLayer, RunSpec, RunSpecError, cam_layer_spec, create_model, model_spec


def _trained_spec(**changes):
    spec = model_spec("resnet18").replace(mean=(0.5, 0.4, 0.3), std=(0.2, 0.2, 0.2), uncertain_below=0.7,
                                          dataset="utkface", cam_layer=CamLayer("layer3.1", 16))
    return spec.replace(**changes)


def test_round_trip_through_json():
    spec = _trained_spec(model_kwargs={"num_classes": 2, "small_input": True})
    restored = RunSpec.from_dict(json.loads(spec.to_json()), "model.pt")
    assert restored == spec and restored.cam_layer == CamLayer("layer3.1", 16)
    assert restored.model_kwargs["small_input"] is True and not restored.is_bcos


@pytest.mark.parametrize("field, value, message", [
    ("input_size", "64", "field 'input_size'"), ("input_size", 0, "field 'input_size'"),
    ("pipeline", "raw", "field 'pipeline' is 'raw'"), ("mean", [0.5, 0.5], "field 'mean'"),
    ("std", [0.0, 0.1, 0.1], "field 'std'"), ("classes", ["female"], "field 'classes'"),
    ("uncertain_below", 1.5, "field 'uncertain_below'"), ("model_kwargs", [1, 2], "field 'model_kwargs'"),
    ("cam_layer", 7, "CAM layer"), ("model", 3, "field 'model'")])
def test_from_dict_names_the_file_and_the_field(field, value, message):
    data = {**_trained_spec().to_dict(), field: value}
    with pytest.raises(RunSpecError, match=f"^ck.pt: .*{message}"):
        RunSpec.from_dict(data, "ck.pt")


def test_unknown_and_missing_fields():
    with pytest.raises(RunSpecError, match="unknown field.*'colour'"):
        RunSpec.from_dict({**_trained_spec().to_dict(), "colour": 1}, "ck.pt")
    with pytest.raises(RunSpecError, match="lacks field.*'input_size'"):
        RunSpec.from_dict({"model": "resnet18", "pipeline": "finetune"}, "ck.pt")
    with pytest.raises(RunSpecError, match="lacks 'mean'/'std'"):
        RunSpec.from_dict({"model": "resnet18", "pipeline": "finetune", "input_size": 64}, "ck.pt")
    with pytest.raises(RunSpecError, match="not a mapping"):
        RunSpec.from_dict([1, 2], "ck.pt")


def test_old_metadata_takes_the_registered_defaults():
    old = {"model": "bcos_resnet18", "model_kwargs": {"num_classes": 2, "width": 8}, "classes": ["female", "male"],
           "input_size": 32, "pipeline": "bcos", "mean": None, "std": None, "pretrained_source": None,
           "dataset": "utkface", "config": {"epochs": 1}}
    spec = RunSpec.from_dict(old, "old.pt", defaults=model_spec("bcos_resnet18"))
    assert spec.is_bcos and spec.cam_candidates == model_spec("bcos_resnet18").cam_candidates
    assert spec.uncertain_below == 0.0 and spec.model_kwargs["width"] == 8


def test_spec_is_frozen_and_attached_to_models():
    model = create_model("efficientnet_lite0")
    with pytest.raises(AttributeError):
        model.spec.input_size = 10
    layer = cam_layer_spec(model, 128)
    assert layer == CamLayer("_bn1", 32) and cam_layer_spec(model, 64).reduction == 16

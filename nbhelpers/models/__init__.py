"""Models looked up by name: ``create_model("resnet18", num_classes=2, pretrained=True)``.

Registered (each by decorator next to its definition, with its default ``RunSpec``): ``simple_cnn``,
``resnet9``, ``resnet18``, ``resnet50``, ``efficientnet_lite0`` and ``bcos_resnet18`` (B-cos,
6-channel encoded input). ``model_spec(name)`` gives the input pipeline, normalisation, default
input size, classifier prefix, pretrained weights and CAM candidates; ``cam_target_layer(model,
input_size)`` picks the CAM layer. ``create_model`` attaches the spec to the model (``model.spec``)
so that a checkpoint can rebuild it. ``predict_probabilities`` is the one inference path (softmax,
optional flip test-time augmentation).
"""

from nbhelpers.models.inference import class_probabilities, flip_averaged_probabilities
from nbhelpers.models.registry import (
    MIN_CAM_CELLS,
    cam_layer_spec,
    cam_target_layer,
    create_model,
    layer_cells,
    list_models,
    model_spec,
    register_model,
)
from nbhelpers.models.spec import CLASSES, NORMALISATIONS, CamLayer, RunSpec, RunSpecError

__all__ = ["RunSpec", "CamLayer", "RunSpecError", "CLASSES", "NORMALISATIONS", "MIN_CAM_CELLS", "register_model",
           "model_spec", "create_model", "list_models", "cam_target_layer", "cam_layer_spec", "layer_cells",
           "class_probabilities", "flip_averaged_probabilities"]

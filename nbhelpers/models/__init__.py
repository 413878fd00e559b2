"""Models looked up by name: ``create_model("resnet18", num_classes=2, pretrained=True)``.

Registered (each by decorator next to its definition, with its ``ModelConfig``): ``simple_cnn``,
``resnet9``, ``resnet18``, ``resnet50``, ``efficientnet_lite0`` and ``bcos_resnet18`` (B-cos,
6-channel encoded input). ``model_config(name)`` gives the input pipeline, normalisation, default
input size, classifier prefix and CAM target layers; ``cam_target_layer(model, input_size)`` picks
the CAM layer. ``create_model`` records ``model.model_name`` and ``model.model_kwargs`` so that a
checkpoint can rebuild the model.
"""

from nbhelpers.models.registry import (
    MIN_CAM_CELLS,
    NORMALISATIONS,
    ModelConfig,
    cam_target_layer,
    create_model,
    layer_cells,
    list_models,
    model_config,
    register_model,
)

__all__ = ["ModelConfig", "NORMALISATIONS", "MIN_CAM_CELLS", "register_model", "model_config", "create_model",
           "list_models", "cam_target_layer", "layer_cells"]

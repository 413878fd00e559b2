"""Models looked up by name: ``create_model("resnet18", num_classes=2, pretrained=True)``.

Registered (each by decorator next to its definition, with its default ``RunSpec``): ``simple_cnn``,
``resnet9``, ``resnet18``, ``resnet50``, ``efficientnet_lite0``, ``bcos_resnet18`` and ``bcos_efficientnet_lite0``
(B-cos, 6-channel encoded input). ``model_spec(name)`` gives the input pipeline, normalisation, default
input size, classifier prefix, pretrained weights and CAM candidates; ``cam_target_layer(model,
input_size)`` picks the CAM layer. ``create_model`` attaches the spec to the model (``model.spec``)
so that a checkpoint can rebuild it. ``predict_probabilities`` is the one inference path (softmax,
optional flip test-time augmentation).
"""

from nbhelpers.models.base import ImageClassificationBase, accuracy, target_probabilities
from nbhelpers.models.bcos_efficientnet_lite import (
    SamePaddingBcosConv2d,
    BlurPoolSamePaddingBcosConv2d,
    same_padding_bcos_conv,
    BcosEfficientNetLite0,
    bcosify_state_dict,
    stem_weight_for_encoding,
    one_hot_binary_cross_entropy,
    bcos_efficientnet_lite0,
)
from nbhelpers.models.bcos_functional import channel_squared_norm, square_cosine_scale, uncentred_batch_norm
from nbhelpers.models.bcos_layers import (
    BcosConv2d,
    BlurPoolBcosConv2d,
    blur_pool_bcos_conv,
    blur_pooled,
    DOWNSAMPLING,
    BcosLinear,
    BatchNormUncentred2d,
    LogitLayer,
    BcosHead,
    explanation_mode,
)
from nbhelpers.models.bcos_resnet import BcosResNet, bcos_resnet18
from nbhelpers.models.efficientnet_lite import (
    EfficientNetLite0,
    MobileInvertedBottleneck,
    SamePaddingConv2d,
    efficientnet_lite0,
    linear_head,
    lite0_weights_path,
    relu6,
    same_padding,
    same_padding_conv,
)
from nbhelpers.models.factories import simple_cnn, resnet9, resnet18, resnet50, load_pretrained, resnet_stages
from nbhelpers.models.inference import class_probabilities, flip_averaged_probabilities
from nbhelpers.models.peer import PeerGenderClassifier, peer_model_files
from nbhelpers.models.pretrained import read_state_dict, load_backbone
from nbhelpers.models.registry import (
    RunSpec,
    NORMALISATIONS,
    MIN_CAM_CELLS,
    register_model,
    model_spec,
    create_model,
    list_models,
    cam_target_layer,
    cam_layer_spec,
    layer_cells,
)
from nbhelpers.models.resnet import BasicBlock, Bottleneck, ResNet, LayerFactory
from nbhelpers.models.small import SimpleCNN, ResNet9, conv_block
from nbhelpers.models.spec import CamLayer, RunSpecError, CLASSES, LEGACY_FIELDS

__all__ = [
    "ImageClassificationBase",
    "accuracy",
    "target_probabilities",
    "SamePaddingBcosConv2d",
    "BlurPoolSamePaddingBcosConv2d",
    "same_padding_bcos_conv",
    "BcosEfficientNetLite0",
    "bcosify_state_dict",
    "stem_weight_for_encoding",
    "one_hot_binary_cross_entropy",
    "bcos_efficientnet_lite0",
    "channel_squared_norm",
    "square_cosine_scale",
    "uncentred_batch_norm",
    "BcosConv2d",
    "BlurPoolBcosConv2d",
    "blur_pool_bcos_conv",
    "blur_pooled",
    "DOWNSAMPLING",
    "BcosLinear",
    "BatchNormUncentred2d",
    "LogitLayer",
    "BcosHead",
    "explanation_mode",
    "BcosResNet",
    "bcos_resnet18",
    "EfficientNetLite0",
    "MobileInvertedBottleneck",
    "SamePaddingConv2d",
    "efficientnet_lite0",
    "linear_head",
    "lite0_weights_path",
    "relu6",
    "same_padding",
    "same_padding_conv",
    "simple_cnn",
    "resnet9",
    "resnet18",
    "resnet50",
    "load_pretrained",
    "resnet_stages",
    "class_probabilities",
    "flip_averaged_probabilities",
    "PeerGenderClassifier",
    "peer_model_files",
    "read_state_dict",
    "load_backbone",
    "RunSpec",
    "NORMALISATIONS",
    "MIN_CAM_CELLS",
    "register_model",
    "model_spec",
    "create_model",
    "list_models",
    "cam_target_layer",
    "cam_layer_spec",
    "layer_cells",
    "BasicBlock",
    "Bottleneck",
    "ResNet",
    "LayerFactory",
    "SimpleCNN",
    "ResNet9",
    "conv_block",
    "CamLayer",
    "RunSpecError",
    "CLASSES",
    "LEGACY_FIELDS",
]

"""The model zoo: pure PyTorch, no ROS.

Every model takes a clip as frames ``[B*T, 3, H, W]`` (the T frames of a clip contiguous) and
returns logits ``[B, num_classes]``, and shares timm's interface (``forward_features``,
``forward_head``, ``get_classifier``, ``reset_classifier``, ``num_classes``, ``num_frames``,
``num_features``, ``default_input_size``; :mod:`~action_recognition.models.interface`). All
models but the ``*_5d`` reference use tensors of rank 4 or less only (see
:mod:`action_recognition.models.analysis`).

Modules: ``registry`` (names -> builders), ``interface`` (the shared interface), ``layers``
and ``layers3d_as_4d`` (4D-only building blocks), ``inception`` and ``resnet`` (the 2D-Nets),
``eco_blocks``, ``eco_net3d`` and ``eco_lite`` (ECO-Lite: blocks, 3D-Nets, the model and its
builders), ``ct_blocks`` and ``ctnet`` (CT-Net: video blocks, the model and its builders),
``x3d_blocks`` and ``x3d`` (X3D-XS/S/M with PyTorchVideo's module names: blocks, the 4D
model, its 5D reference, the weight loader and builders), ``analysis`` and ``table`` (ranks,
parameters, MACs), ``deployed`` (the exported form).
"""

# The model families: importing them registers their builders (the registry imports none).
from action_recognition.models import ctnet  # noqa: F401
from action_recognition.models import eco_lite  # noqa: F401
from action_recognition.models import x3d  # noqa: F401
from action_recognition.models.interface import ClipClassifier
from action_recognition.models.registry import create_model
from action_recognition.models.registry import list_models
from action_recognition.models.registry import model_info
from action_recognition.models.registry import ModelInfo
from action_recognition.models.registry import PaperReference
from action_recognition.models.registry import register_model

__all__ = [
    'ClipClassifier', 'create_model', 'list_models', 'model_info', 'ModelInfo', 'PaperReference',
    'register_model',
]

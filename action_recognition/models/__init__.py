"""The model zoo: pure PyTorch, no ROS.

Every model takes a clip as frames ``[B*T, 3, H, W]`` (the T frames of a clip contiguous) and
returns logits ``[B, num_classes]``. All models but the ``*_5d`` reference use tensors of rank 4
or less only (see :mod:`action_recognition.models.analysis`).
"""

# The model families: importing them registers their builders (the registry imports none).
from action_recognition.models import ctnet  # noqa: F401
from action_recognition.models import eco_lite  # noqa: F401
from action_recognition.models.registry import create_model
from action_recognition.models.registry import list_models
from action_recognition.models.registry import model_info
from action_recognition.models.registry import ModelInfo
from action_recognition.models.registry import PaperReference
from action_recognition.models.registry import register_model

__all__ = [
    'create_model', 'list_models', 'model_info', 'ModelInfo', 'PaperReference', 'register_model',
]

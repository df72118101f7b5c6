"""The deployed form of a model: ``uint8`` frames in, normalisation on the device, logits out."""

from __future__ import annotations

from torch import nn
from torch import Tensor

from action_recognition.data.normalize import Normalize
from action_recognition.spec import ModelSpec

__all__ = ['DeployedModel']


class DeployedModel(nn.Module):
    """``uint8`` frames ``[B*T, 3, h, w]`` -> logits ``[B, classes]``: normalise, then model.

    This is what is exported to ONNX and what :class:`TorchBackend` runs.
    """

    def __init__(self, model: nn.Module, spec: ModelSpec) -> None:
        super().__init__()
        self.normalize = Normalize.from_spec(spec)
        self.model = model

    def forward(self, frames: Tensor) -> Tensor:
        return self.model(self.normalize(frames))

"""The interface every model of the zoo shares (timm's), and the pieces the families share.

A model classifies clips given as frames ``[B*T, 3, H, W]``: the ``T = num_frames`` frames of
each clip contiguous, any number ``B >= 1`` of clips.

- ``forward(x) -> [B, num_classes]``, equal to ``forward_head(forward_features(x))``.
- ``forward_features(x)``: the features before the head. Their shape is the family's and its
  docstring states it: ECO-Lite gives the 3D-Net's feature maps ``[B*T', C, h', w']``
  (``T' = ceil(T / 4)`` frames per clip), CT-Net the pooled frame features ``[B*T, C]``; ``C``
  is ``num_features`` in both.
- ``forward_head(features, pre_logits=False) -> [B, num_classes]``; with ``pre_logits=True``
  the clip's pooled features ``[B, num_features]`` (what the classifier sees, before dropout).
- ``get_classifier()``: the classifier, an ``nn.Linear(num_features, num_classes)``.
- ``reset_classifier(num_classes)``: a freshly initialised classifier with ``num_classes``
  outputs, on the old one's device and dtype; nothing else changes (fine-tuning).
- Attributes ``num_classes``, ``num_frames`` (``T``), ``num_features`` (``C``) and
  ``default_input_size`` (``(height, width)`` the model is meant to be fed).

:class:`ClipClassifier` states the interface for type checkers and ``isinstance``;
:func:`check_clip_frames` and :func:`new_classifier` are what the families share of it.
"""

from __future__ import annotations

from typing import Protocol
from typing import runtime_checkable

from torch import nn
from torch import Tensor

__all__ = ['ClipClassifier', 'check_clip_frames', 'new_classifier']


@runtime_checkable
class ClipClassifier(Protocol):
    """A clip classifier of the zoo (see the module docstring for the contract)."""

    num_classes: int
    num_frames: int
    num_features: int
    default_input_size: tuple[int, int]

    def forward(self, x: Tensor) -> Tensor:
        """Frames ``[B*T, 3, H, W]`` -> logits ``[B, num_classes]``."""
        ...

    def forward_features(self, x: Tensor) -> Tensor:
        """Frames ``[B*T, 3, H, W]`` -> the family's features (see its docstring)."""
        ...

    def forward_head(self, features: Tensor, pre_logits: bool = False) -> Tensor:
        """Features -> logits ``[B, num_classes]``, or pooled ``[B, num_features]``."""
        ...

    def get_classifier(self) -> nn.Linear:
        """The classifier: ``nn.Linear(num_features, num_classes)``."""
        ...

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the classifier by a fresh one with ``num_classes`` outputs."""
        ...


def check_clip_frames(x: Tensor, num_frames: int) -> None:
    """Raise ``ValueError`` unless ``x`` is frames ``[B*T, 3, H, W]`` of ``B >= 1`` clips."""
    if x.dim() != 4 or x.shape[1] != 3 or x.shape[0] % num_frames or not x.shape[0]:
        raise ValueError(
            f'expected frames [B*T, 3, H, W] with T = {num_frames} frames per clip '
            f'(a multiple of {num_frames} frames), got {tuple(x.shape)}')


def new_classifier(old: nn.Linear, num_classes: int, *, std: float) -> nn.Linear:
    """A fresh ``nn.Linear(old.in_features, num_classes)`` like ``old`` (device, dtype).

    Weight ``normal(0, std)``, bias zero: the family's initialisation of its classifier.
    """
    if num_classes < 1:
        raise ValueError(f'num_classes must be >= 1, got {num_classes}')
    fc = nn.Linear(old.in_features, num_classes).to(old.weight)
    nn.init.normal_(fc.weight, 0.0, std)
    nn.init.zeros_(fc.bias)
    return fc

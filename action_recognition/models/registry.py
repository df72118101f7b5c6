"""The model registry: ``register_model``, ``list_models``, ``create_model``, ``model_info``.

As in timm, the registry never imports a model file: the model modules register their builders
when they are imported, and the package (``action_recognition/models/__init__.py``) imports all
of them, so the registry is complete whenever ``action_recognition.models`` is imported.

Builders are keyword-only functions ``builder(*, num_classes, num_frames, **options)`` returning
an ``nn.Module`` that takes frames ``[B*T, 3, H, W]`` (the T frames of each clip contiguous) and
returns logits ``[B, num_classes]``, with the interface every model of the zoo shares
(:class:`~action_recognition.models.interface.ClipClassifier`). Each registration carries the
settings at which the papers report the model's size and cost, and the papers' figures, for
``action-recognition models``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field
from typing import Any
from typing import TypeVar

from torch import nn
import yaml

__all__ = [
    'PaperReference', 'ModelInfo', 'register_model', 'list_models', 'create_model', 'model_info',
    'parse_builder_options',
]


@dataclass(frozen=True)
class PaperReference:
    """A model's size and cost as a paper reports them, and the settings they hold at.

    Attributes:
        paper: short name of the source (``'ECO-Lite 4D (000), Table 2'``).
        num_classes: classes of the head at which the figures hold.
        num_frames: clip length ``T``.
        input_size: ``(height, width)`` of the frames.
        params_m: parameters in millions (whole model), or ``None`` where the paper gives none.
        gmac: cost in GMAC (multiply-accumulates; the papers' "GFLOPs"), or ``None``.
        mac_scope: dotted name of the sub-module the cost is counted over (``'net3d'`` for the
            ECO-Lite tables, which count the 3D-Net only); ``''`` for the whole model.
        counted_params_m: the independent count in ``shared/papers/README.md`` where it differs
            from the paper (tests hold the implementation to the independent count).
        counted_gmac: likewise for the cost.
        note: why a figure differs, where it does.
    """

    paper: str
    num_classes: int
    num_frames: int
    input_size: tuple[int, int]
    params_m: float | None = None
    gmac: float | None = None
    mac_scope: str = ''
    counted_params_m: float | None = None
    counted_gmac: float | None = None
    note: str = ''
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ModelInfo:
    name: str
    builder: Callable[..., nn.Module]
    four_d_only: bool
    reference: PaperReference | None
    family: str


_REGISTRY: dict[str, ModelInfo] = {}

BuilderT = TypeVar('BuilderT', bound=Callable[..., nn.Module])


def register_model(
        *, family: str, four_d_only: bool = True,
        reference: PaperReference | None = None,
        name: str | None = None) -> Callable[[BuilderT], BuilderT]:
    """Register a keyword-only builder under its function name (or ``name``)."""

    def decorator(builder: BuilderT) -> BuilderT:
        key = name or builder.__name__
        if key in _REGISTRY:
            raise ValueError(f'model {key!r} is registered twice')
        _REGISTRY[key] = ModelInfo(
            name=key, builder=builder, four_d_only=four_d_only, reference=reference,
            family=family)
        return builder

    return decorator


def list_models() -> list[str]:
    """Names of all registered models, sorted."""
    return sorted(_REGISTRY)


def model_info(name: str) -> ModelInfo:
    """The registration record of ``name``; raises ``KeyError`` naming the known models."""
    try:
        return _REGISTRY[name]
    except KeyError:
        known = ', '.join(sorted(_REGISTRY))
        raise KeyError(f'unknown model {name!r}; known models: {known}') from None


def create_model(name: str, *, num_classes: int, num_frames: int, **options: Any) -> nn.Module:
    """Build model ``name`` for clips of ``num_frames`` frames and ``num_classes`` outputs."""
    if num_classes < 1:
        raise ValueError(f'num_classes must be >= 1, got {num_classes}')
    if num_frames < 1:
        raise ValueError(f'num_frames must be >= 1, got {num_frames}')
    info = model_info(name)
    return info.builder(num_classes=num_classes, num_frames=num_frames, **options)


def parse_builder_options(items: list[str], what: str) -> dict[str, Any]:
    """``KEY=VALUE`` items as builder keywords (values read as YAML, ``-`` in keys as ``_``);
    ``ValueError`` naming ``what`` for an item without ``=`` or a key."""
    options: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition('=')
        if not sep or not key:
            raise ValueError(f'{what} must be KEY=VALUE, got {item!r}')
        options[key.strip().replace('-', '_')] = yaml.safe_load(value)
    return options

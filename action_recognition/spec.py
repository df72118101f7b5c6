"""The model specification: the one source of truth that travels with a model.

A :class:`ModelSpec` says how to build a model (registry name and options), what its outputs mean
(label list) and how its input must be prepared (clip sampling and preprocessing). It is stored in
every training checkpoint (``checkpoint['spec']``) and in the metadata of every exported ONNX file
(key ``action_recognition.spec``, a JSON string), so training, offline runs and the ROS node read
the same values and cannot drift apart.
"""

from __future__ import annotations

from dataclasses import asdict
from dataclasses import dataclass
from dataclasses import field
from dataclasses import fields
import json
from typing import Any
from typing import Literal

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

SPEC_METADATA_KEY = 'action_recognition.spec'
SPEC_VERSION = 1

SamplingMode = Literal['dense', 'segments']


@dataclass(frozen=True)
class ModelSpec:
    """Everything needed to rebuild a model and feed it correctly.

    Attributes:
        model: registry name (see :func:`action_recognition.models.list_models`).
        num_classes: number of output logits.
        num_frames: frames per clip ``T``; the model takes ``[B*T, 3, H, W]``.
        labels: one label per output logit, in logit order.
        options: extra keyword options given to ``create_model``.
        sampling: ``'dense'`` (``num_frames`` frames, ``frame_stride`` apart) or ``'segments'``
            (TSN: one frame from each of ``num_frames`` equal segments of the window).
        frame_stride: distance in source frames between sampled frames (dense sampling).
        input_size: ``(height, width)`` of the network input after the centre crop.
        resize_short: the shorter image side is resized to this before cropping.
        mean: per-channel RGB mean, on the 0..1 scale.
        std: per-channel RGB standard deviation, on the 0..1 scale.
        channel_order: the channel order the network expects (frames are converted to it).
    """

    model: str
    num_classes: int
    num_frames: int
    labels: tuple[str, ...] = ()
    options: dict[str, Any] = field(default_factory=dict)
    sampling: SamplingMode = 'dense'
    frame_stride: int = 1
    input_size: tuple[int, int] = (224, 224)
    resize_short: int = 256
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    channel_order: Literal['rgb'] = 'rgb'

    def __post_init__(self) -> None:
        problems = []
        if self.num_classes < 1:
            problems.append(f'num_classes must be >= 1, got {self.num_classes}')
        if self.num_frames < 1:
            problems.append(f'num_frames must be >= 1, got {self.num_frames}')
        if self.labels and len(self.labels) != self.num_classes:
            problems.append(
                f'{len(self.labels)} labels given for a model with {self.num_classes} outputs')
        if self.sampling not in ('dense', 'segments'):
            problems.append(f"sampling must be 'dense' or 'segments', got {self.sampling!r}")
        if self.frame_stride < 1:
            problems.append(f'frame_stride must be >= 1, got {self.frame_stride}')
        if len(self.input_size) != 2 or min(self.input_size) < 1:
            problems.append(f'input_size must be (height, width), got {self.input_size}')
        if self.resize_short < min(self.input_size):
            problems.append(
                f'resize_short {self.resize_short} is smaller than the crop {self.input_size}')
        if len(self.mean) != 3 or len(self.std) != 3 or min(self.std) <= 0:
            problems.append('mean and std must have 3 entries each, std > 0')
        if problems:
            raise ValueError('invalid model spec: ' + '; '.join(problems))

    @property
    def clip_span(self) -> int:
        """Number of consecutive source frames one dense clip covers."""
        return (self.num_frames - 1) * self.frame_stride + 1

    @property
    def label_names(self) -> tuple[str, ...]:
        """The labels, or ``class_<i>`` names when the spec carries none."""
        return self.labels or tuple(f'class_{i}' for i in range(self.num_classes))

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data['labels'] = list(self.labels)
        data['input_size'] = list(self.input_size)
        data['mean'] = list(self.mean)
        data['std'] = list(self.std)
        data['spec_version'] = SPEC_VERSION
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelSpec:
        data = dict(data)
        version = data.pop('spec_version', SPEC_VERSION)
        if version > SPEC_VERSION:
            raise ValueError(
                f'model spec version {version} is newer than this package supports '
                f'({SPEC_VERSION}); upgrade action_recognition')
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f'unknown model spec keys: {unknown}')
        for key in ('labels', 'input_size', 'mean', 'std'):
            if key in data:
                data[key] = tuple(data[key])
        return cls(**data)

    @classmethod
    def from_json(cls, text: str) -> ModelSpec:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise ValueError(f'model spec is not valid JSON: {error}') from error
        if not isinstance(data, dict):
            raise ValueError('model spec JSON must be an object')
        return cls.from_dict(data)

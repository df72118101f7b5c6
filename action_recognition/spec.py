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
import math
from typing import Any
from typing import Literal

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

SPEC_METADATA_KEY = 'action_recognition.spec'
SPEC_VERSION = 1

SamplingMode = Literal['dense', 'segments']

# Bounds on what a spec may claim. A spec is read from files people copy around (checkpoints, ONNX
# metadata), and the runtime allocates from these sizes (the clip ring, the load-time dummy
# clip), so they are checked when the spec is read, before anything is allocated. They are far
# above every model of the zoo and of the papers (e.g. 16 frames of 243x243, 400 classes).
MAX_CLASSES = 100_000
MAX_FRAMES = 1024
MAX_FRAME_STRIDE = 256
MAX_INPUT_SIDE = 2048
MAX_CLIP_PIXELS = 64 * 1024 * 1024  # num_frames * height * width: 64 Mi (192 MiB of uint8)
MAX_LABEL_CHARS = 1024


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
        problems = _problems(self)
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
        if not isinstance(data, dict):
            raise ValueError(f'model spec must be a mapping, got {type(data).__name__}')
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
                if not isinstance(data[key], (list, tuple)):
                    raise ValueError(f'model spec {key} must be a list, got '
                                     f'{type(data[key]).__name__}')
                data[key] = tuple(data[key])
        if 'options' in data and not isinstance(data['options'], dict):
            raise ValueError('model spec options must be a mapping')
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


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _problems(spec: ModelSpec) -> list[str]:
    """Every reason ``spec`` is invalid (types first: nothing below may meet a wrong type)."""
    ints = {'num_classes': spec.num_classes, 'num_frames': spec.num_frames,
            'frame_stride': spec.frame_stride, 'resize_short': spec.resize_short}
    wrong = [f'{name} must be an integer, got {value!r}' for name, value in ints.items()
             if not _is_int(value)]
    if not isinstance(spec.model, str) or not spec.model:
        wrong.append(f'model must be a registry name, got {spec.model!r}')
    if not isinstance(spec.input_size, tuple) or len(spec.input_size) != 2 or \
            not all(_is_int(side) for side in spec.input_size):
        wrong.append(f'input_size must be (height, width) integers, got {spec.input_size!r}')
    if not all(isinstance(label, str) for label in spec.labels):
        wrong.append('labels must be strings')
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool)
               for v in (*spec.mean, *spec.std)):
        wrong.append('mean and std must be numbers')
    if wrong:
        return wrong
    problems = []
    for name, value, high in (('num_classes', spec.num_classes, MAX_CLASSES),
                              ('num_frames', spec.num_frames, MAX_FRAMES),
                              ('frame_stride', spec.frame_stride, MAX_FRAME_STRIDE)):
        if not 1 <= value <= high:
            problems.append(f'{name} must be in [1, {high}], got {value}')
    if spec.labels and len(spec.labels) != spec.num_classes:
        problems.append(
            f'{len(spec.labels)} labels given for a model with {spec.num_classes} outputs')
    if any(len(label) > MAX_LABEL_CHARS for label in spec.labels):
        problems.append(f'a label is longer than {MAX_LABEL_CHARS} characters')
    if spec.sampling not in ('dense', 'segments'):
        problems.append(f"sampling must be 'dense' or 'segments', got {spec.sampling!r}")
    height, width = spec.input_size
    if not (1 <= height <= MAX_INPUT_SIDE and 1 <= width <= MAX_INPUT_SIDE):
        problems.append(f'input_size sides must be in [1, {MAX_INPUT_SIDE}], got '
                        f'{height}x{width}')
    elif spec.num_frames * height * width > MAX_CLIP_PIXELS:
        problems.append(f'a clip of {spec.num_frames} frames of {height}x{width} is '
                        f'{spec.num_frames * height * width} pixels, above the limit of '
                        f'{MAX_CLIP_PIXELS}')
    if not min(height, width) <= spec.resize_short <= 2 * MAX_INPUT_SIDE:
        problems.append(f'resize_short must be in [{min(height, width)} (the crop), '
                        f'{2 * MAX_INPUT_SIDE}], got {spec.resize_short}')
    if len(spec.mean) != 3 or len(spec.std) != 3 or min(spec.std) <= 0 or \
            not all(math.isfinite(v) for v in (*spec.mean, *spec.std)):
        problems.append('mean and std must have 3 finite entries each, std > 0')
    if spec.channel_order != 'rgb':
        problems.append(f"channel_order must be 'rgb', got {spec.channel_order!r}")
    return problems

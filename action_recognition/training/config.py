"""Training configuration: dataclasses, YAML files and ``key=value`` overrides.

A config file is YAML with up to four sections plus top-level run settings::

    base: other.yaml            # optional: start from another file (relative to this one)
    model:    {name, options, num_frames, sampling, frame_stride, input_size, ...}
    dataset:  {format, root, split, ...}
    optim:    {optimizer, lr, momentum, weight_decay, warmup_epochs, ...}
    epochs: 30
    batch_size: 16
    output_dir: runs/example

Overrides on the command line use dotted keys and YAML values: ``optim.lr=0.01``,
``dataset.format=synthetic``, ``model.input_size=[112,112]``; ``model=NAME`` is short for
``model.name=NAME``. Unknown keys and values of the wrong type are errors that name the key.
"""

from __future__ import annotations

from collections.abc import Sequence
import copy
import dataclasses
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
import typing
from typing import Any

import yaml

from action_recognition.spec import IMAGENET_MEAN
from action_recognition.spec import IMAGENET_STD
from action_recognition.spec import ModelSpec

__all__ = [
    'ModelConfig', 'DatasetConfig', 'OptimConfig', 'TrainConfig', 'DATASET_FORMATS',
    'load_config', 'read_config_data', 'apply_overrides', 'config_from_dict', 'config_to_dict',
    'make_spec',
]

DATASET_FORMATS = ('ucf101', 'hmdb51', 'kinetics', 'sthv1', 'sthv2', 'list', 'synthetic')
OPTIMIZERS = ('sgd', 'adamw')
SCHEDULERS = ('cosine', 'constant')
BN_MODES = ('train', 'partial', 'frozen')


@dataclass
class ModelConfig:
    """The network and how its input is sampled and preprocessed (becomes the ModelSpec).

    Attributes:
        name: registry name (``action-recognition models`` lists them).
        options: extra keyword options of the builder (``dropout``, ``width``, ...).
        num_frames: frames per clip ``T``.
        sampling: ``'dense'`` (consecutive frames ``frame_stride`` apart) or ``'segments'``.
        frame_stride: distance between sampled frames for dense sampling.
        input_size: ``[height, width]`` of the network input.
        resize_short: shorter side before cropping (test time); training crops at random scales.
        mean: RGB mean on the 0..1 scale.
        std: RGB standard deviation on the 0..1 scale.
        pretrained: local file with ImageNet weights for the 2D-Net (``''``: none): torchvision
            ``inception_v3`` weights for ECO-Lite's Inception 2D-Net, torchvision ResNet weights
            for CT-Net / TSN, else a state dict loaded into ``pretrained_module``.
        pretrained_module: dotted sub-module a generic state dict loads into (``'net2d'``;
            ``''``: the whole model).
        freeze_module: dotted sub-module whose weights are not trained (``''``: none).
        bn_mode: ``'train'`` (all BatchNorm layers train), ``'partial'`` (partial BN: every BN
            layer in ``bn_module`` but the first is frozen) or ``'frozen'`` (all BN layers in
            ``bn_module`` frozen: running statistics and affine parameters fixed).
        bn_module: dotted sub-module ``bn_mode`` applies to (``''``: the whole model).
    """

    name: str = 'eco_lite_add_small'
    options: dict[str, Any] = field(default_factory=dict)
    num_frames: int = 8
    sampling: str = 'dense'
    frame_stride: int = 1
    input_size: list[int] = field(default_factory=lambda: [64, 64])
    resize_short: int = 64
    mean: list[float] = field(default_factory=lambda: list(IMAGENET_MEAN))
    std: list[float] = field(default_factory=lambda: list(IMAGENET_STD))
    pretrained: str = ''
    pretrained_module: str = ''
    freeze_module: str = ''
    bn_mode: str = 'train'
    bn_module: str = ''


@dataclass
class DatasetConfig:
    """Where the clips come from.

    Attributes:
        format: one of ``ucf101``, ``hmdb51``, ``kinetics``, ``sthv1``, ``sthv2``, ``list``,
            ``synthetic`` (clips generated in memory, nothing on disk).
        root: videos (or frame folders) root directory (not used by ``synthetic``).
        split: split number for UCF-101 / HMDB-51.
        split_dir: UCF-101 ``ucfTrainTestlist`` (default: found next to ``root``) or the
            HMDB-51 split-file folder (required).
        train_list: annotation of the training split: Kinetics CSV, Something-Something split
            CSV (V1) or JSON (V2), or a list file (``list`` format).
        val_list: the same for the held-out split.
        labels_file: Something-Something class list (V1 CSV, V2 ``labels.json``).
        classes: label names for the ``list`` format (index order); empty: ``class_<i>``.
        train_per_class: synthetic training clips per class and epoch (fresh clips every epoch).
        val_per_class: synthetic held-out clips per class.
        seed: seed of the synthetic training clips.
        val_seed: seed of the synthetic held-out clips (must differ from ``seed``).
        num_workers: data loader worker processes.
        hflip: random horizontal flips in training (labels swapped where a flip changes them).
        scales: multi-scale crop scales of the training augmentation (``[1.0]``: none).
        num_clips: clips per video at evaluation (averaged; real data sets).
        num_crops: spatial crops per clip at evaluation, 1 or 3 (averaged; real data sets).
    """

    format: str = 'synthetic'
    root: str = ''
    split: int = 1
    split_dir: str = ''
    train_list: str = ''
    val_list: str = ''
    labels_file: str = ''
    classes: list[str] = field(default_factory=list)
    train_per_class: int = 200
    val_per_class: int = 40
    seed: int = 0
    val_seed: int = 1000
    num_workers: int = 0
    hflip: bool = False
    scales: list[float] = field(default_factory=lambda: [1.0])
    num_clips: int = 1
    num_crops: int = 1


@dataclass
class OptimConfig:
    """Optimiser and learning-rate schedule.

    Attributes:
        optimizer: ``'sgd'`` (SGD with momentum, the papers) or ``'adamw'``.
        lr: peak learning rate (for batch ``batch_size`` summed over all processes).
        momentum: SGD momentum.
        nesterov: Nesterov momentum for SGD.
        betas: AdamW betas.
        weight_decay: decoupled (AdamW) or L2 (SGD) weight decay; not applied to biases and
            normalisation parameters.
        scheduler: ``'cosine'`` (cosine decay to ``min_lr`` after a linear warm-up) or
            ``'constant'`` (after the warm-up).
        warmup_epochs: linear warm-up length in epochs (fractions allowed).
        warmup_start: learning rate factor at step 0 of the warm-up.
        min_lr: final learning rate of the cosine schedule.
        clip_grad_norm: maximum gradient norm (0: no clipping).
        label_smoothing: label smoothing of the cross-entropy loss.
    """

    optimizer: str = 'sgd'
    lr: float = 0.01
    momentum: float = 0.9
    nesterov: bool = False
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    weight_decay: float = 5e-4
    scheduler: str = 'cosine'
    warmup_epochs: float = 0.0
    warmup_start: float = 0.01
    min_lr: float = 0.0
    clip_grad_norm: float = 0.0
    label_smoothing: float = 0.0


@dataclass
class TrainConfig:
    """A whole training run.

    Attributes:
        model: see :class:`ModelConfig`.
        dataset: see :class:`DatasetConfig`.
        optim: see :class:`OptimConfig`.
        epochs: number of epochs.
        batch_size: clips per optimisation step, over all processes together.
        seed: seed of model initialisation, data order and augmentation.
        device: ``'auto'`` (CUDA when available), ``'cpu'``, ``'cuda'`` or ``'cuda:N'``.
        amp: mixed precision (float16 autocast and gradient scaling) on CUDA; ignored on CPU.
        output_dir: directory for checkpoints, logs and plots.
        eval_every: evaluate every this many epochs (and always after the last).
        log_every: steps between TensorBoard scalar writes.
        tensorboard: write TensorBoard event files.
        progress: show progress bars.
        threads: CPU threads for torch (0: leave torch's default).
    """

    model: ModelConfig = field(default_factory=ModelConfig)
    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    epochs: int = 10
    batch_size: int = 16
    seed: int = 0
    device: str = 'auto'
    amp: bool = True
    output_dir: str = 'runs/train'
    eval_every: int = 1
    log_every: int = 10
    tensorboard: bool = True
    progress: bool = True
    threads: int = 0

    def validate(self) -> None:
        """Raise ``ValueError`` naming every setting that is out of range."""
        problems = []
        choices: tuple[tuple[str, str, tuple[str, ...]], ...] = (
            ('dataset.format', self.dataset.format, DATASET_FORMATS),
            ('optim.optimizer', self.optim.optimizer, OPTIMIZERS),
            ('optim.scheduler', self.optim.scheduler, SCHEDULERS),
            ('model.bn_mode', self.model.bn_mode, BN_MODES),
        )
        for name, value, allowed in choices:
            if value not in allowed:
                problems.append(f'{name} must be one of {", ".join(allowed)}, got {value!r}')
        if self.epochs < 1:
            problems.append(f'epochs must be >= 1, got {self.epochs}')
        if self.batch_size < 1:
            problems.append(f'batch_size must be >= 1, got {self.batch_size}')
        if self.optim.lr <= 0:
            problems.append(f'optim.lr must be > 0, got {self.optim.lr}')
        if self.optim.warmup_epochs < 0:
            problems.append(f'optim.warmup_epochs must be >= 0, got {self.optim.warmup_epochs}')
        if self.eval_every < 1:
            problems.append(f'eval_every must be >= 1, got {self.eval_every}')
        if len(self.model.input_size) != 2:
            problems.append(f'model.input_size must be [height, width], '
                            f'got {self.model.input_size}')
        if not self.dataset.scales or min(self.dataset.scales) <= 0:
            problems.append(f'dataset.scales must be positive, got {self.dataset.scales}')
        if self.dataset.format == 'synthetic' and self.dataset.seed == self.dataset.val_seed:
            problems.append('dataset.seed and dataset.val_seed must differ, or the held-out '
                            'clips are the training clips')
        if self.dataset.format not in ('synthetic', 'list') and not self.dataset.root:
            problems.append(f'dataset.root is required for dataset.format '
                            f'{self.dataset.format!r}')
        needs = {'hmdb51': ('split_dir',), 'kinetics': ('train_list', 'val_list'),
                 'sthv1': ('train_list', 'val_list', 'labels_file'),
                 'sthv2': ('train_list', 'val_list', 'labels_file'),
                 'list': ('train_list', 'val_list')}.get(self.dataset.format, ())
        for key in needs:
            if not getattr(self.dataset, key):
                problems.append(f'dataset.{key} is required for dataset.format '
                                f'{self.dataset.format!r}')
        if self.dataset.num_crops not in (1, 3) or self.dataset.num_clips < 1:
            problems.append(f'dataset.num_clips must be >= 1 and dataset.num_crops 1 or 3, got '
                            f'{self.dataset.num_clips} and {self.dataset.num_crops}')
        if self.dataset.format == 'synthetic' and (
                self.model.input_size[0] != self.model.input_size[1]):
            problems.append(f'synthetic clips are square; model.input_size is '
                            f'{self.model.input_size}')
        if problems:
            raise ValueError('invalid training config: ' + '; '.join(problems))


def _is_dataclass_type(tp: Any) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Check ``value`` against the annotation ``tp`` (ints become floats where floats are due)."""
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ValueError(f'config key {key!r}: expected true/false, got {value!r}')
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f'config key {key!r}: expected an integer, got {value!r}')
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f'config key {key!r}: expected a number, got {value!r}')
        return float(value)
    if tp is str:
        if value is None:
            return ''
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            raise ValueError(f'config key {key!r}: expected a string, got {value!r}')
        return str(value)
    if origin is list:
        (item_type,) = typing.get_args(tp)
        if isinstance(value, tuple):
            value = list(value)
        if not isinstance(value, list):
            raise ValueError(f'config key {key!r}: expected a list, got {value!r}')
        return [_coerce(item, item_type, f'{key}[{i}]') for i, item in enumerate(value)]
    if origin is dict:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise ValueError(f'config key {key!r}: expected a mapping, got {value!r}')
        return dict(value)
    raise TypeError(f'unsupported config type {tp!r} for {key!r}')  # pragma: no cover


def _build(cls: type, data: dict[str, Any], prefix: str) -> Any:
    if not isinstance(data, dict):
        raise ValueError(f'config section {prefix.rstrip(".") or "<top>"!r} must be a mapping, '
                         f'got {data!r}')
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(data) - set(names))
    if unknown:
        raise ValueError(f'unknown config key(s) {[prefix + k for k in unknown]}; '
                         f'known keys of {prefix.rstrip(".") or "the config"}: {names}')
    kwargs = {}
    for name, value in data.items():
        tp = hints[name]
        if _is_dataclass_type(tp):
            kwargs[name] = _build(tp, value if value is not None else {}, f'{prefix}{name}.')
        else:
            kwargs[name] = _coerce(value, tp, prefix + name)
    return cls(**kwargs)


def config_from_dict(data: dict[str, Any]) -> TrainConfig:
    """Build (and validate) a :class:`TrainConfig` from nested plain data."""
    data = dict(data)
    data.pop('base', None)
    if isinstance(data.get('model'), str):
        data['model'] = {'name': data['model']}
    config = _build(TrainConfig, data, '')
    config.validate()
    return typing.cast(TrainConfig, config)


def config_to_dict(config: TrainConfig) -> dict[str, Any]:
    """Plain nested data (YAML/JSON/checkpoint friendly) of ``config``."""
    return dataclasses.asdict(config)


def _merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict) and key != 'options':
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def read_config_data(path: str | Path, seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """The plain data of a YAML config file, with its ``base`` chain merged in."""
    path = Path(path).resolve()
    if path in seen:
        raise ValueError(f'config {path} includes itself through "base"')
    if not path.is_file():
        raise FileNotFoundError(f'config file {path} does not exist')
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise ValueError(f'config file {path} is not valid YAML: {error}') from error
    if not isinstance(data, dict):
        raise ValueError(f'config file {path} must hold a mapping at the top level')
    base = data.pop('base', None)
    if base:
        base_data = read_config_data(path.parent / str(base), (*seen, path))
        data = _merge(base_data, data)
    return data


def _set_dotted(data: dict[str, Any], key: str, value: Any) -> None:
    parts = key.split('.')
    if parts == ['model'] and not isinstance(value, dict):
        parts = ['model', 'name']
    node = data
    for part in parts[:-1]:
        child = node.get(part)
        if child is None:
            child = {}
            node[part] = child
        if not isinstance(child, dict):
            raise ValueError(f'override {key!r}: {part!r} is not a section')
        node = child
    node[parts[-1]] = value


def apply_overrides(data: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """Apply ``key=value`` overrides (dotted keys, YAML values) to nested config data."""
    data = copy.deepcopy(data)
    for item in overrides:
        key, sep, text = item.partition('=')
        key = key.strip()
        if not sep or not key:
            raise ValueError(f'override {item!r} must look like key=value (e.g. optim.lr=0.01)')
        try:
            value = yaml.safe_load(text) if text.strip() else ''
        except yaml.YAMLError as error:
            raise ValueError(f'override {item!r}: value is not valid YAML: {error}') from error
        _set_dotted(data, key, value)
    return data


def load_config(path: str | Path | None = None, overrides: Sequence[str] = ()) -> TrainConfig:
    """Read a YAML config (``None``: the defaults), apply overrides and validate."""
    data = read_config_data(path) if path is not None else {}
    return config_from_dict(apply_overrides(data, overrides))


def make_spec(config: TrainConfig, labels: Sequence[str]) -> ModelSpec:
    """The :class:`ModelSpec` a run with ``config`` produces, for a data set with ``labels``."""
    model = config.model
    return ModelSpec(
        model=model.name, num_classes=len(labels), num_frames=model.num_frames,
        labels=tuple(labels), options=dict(model.options),
        sampling=typing.cast(Any, model.sampling), frame_stride=model.frame_stride,
        input_size=(int(model.input_size[0]), int(model.input_size[1])),
        resize_short=model.resize_short,
        mean=(model.mean[0], model.mean[1], model.mean[2]),
        std=(model.std[0], model.std[1], model.std[2]))

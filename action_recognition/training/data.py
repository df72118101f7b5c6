"""The data of a training run: the configured data set's splits, augmentation and loaders.

:func:`build_dataset` turns a :class:`~action_recognition.training.config.TrainConfig` and the
model's spec into one split (the readers of
:mod:`action_recognition.training.readers` and the torch data sets of
:mod:`action_recognition.training.datasets`, or synthetic clips generated in memory);
:func:`build_run_data` adds the loaders of a (possibly distributed) run: the training split
shuffled and sharded by a distributed sampler, the held-out split sharded in order
(:class:`ShardSampler`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader
from torch.utils.data import Dataset
from torch.utils.data import Sampler
from torch.utils.data.distributed import DistributedSampler

from action_recognition.data import synth_clips as synth
from action_recognition.spec import ModelSpec
from action_recognition.training import readers
from action_recognition.training import transforms
from action_recognition.training.config import TrainConfig
from action_recognition.training.datasets import ClipDataset
from action_recognition.training.datasets import InMemoryClipDataset
from action_recognition.training.distributed import DistContext
from action_recognition.training.transforms import ClipTransform

__all__ = [
    'DataSplit', 'RunData', 'ShardSampler', 'dataset_classes', 'build_dataset',
    'held_out_loader', 'build_run_data',
]


@dataclass
class DataSplit:
    """One split of a data set: a torch ``Dataset`` of ``(uint8 clip [V*T, 3, h, w], label)``."""

    dataset: Dataset[Any]
    classes: tuple[str, ...]

    @property
    def size(self) -> int:
        """The number of clips."""
        return len(self.dataset)  # type: ignore[arg-type]


def _read_items(config: TrainConfig, *, train: bool, classes: tuple[str, ...] | None = None,
                ) -> tuple[list[readers.VideoItem], tuple[str, ...]]:
    """``(items, classes)`` of one split of a data set on disk (see :class:`DatasetConfig`)."""
    data = config.dataset
    root = Path(data.root)
    annotation = Path(data.train_list if train else data.val_list)
    if data.format == 'ucf101':
        items, names = readers.read_ucf101(root, split=data.split, train=train,
                                           split_dir=data.split_dir or None)
    elif data.format == 'hmdb51':
        items, names = readers.read_hmdb51(root, data.split_dir, split=data.split, train=train)
    elif data.format == 'kinetics':
        items, names = readers.read_kinetics(annotation, root, classes=classes)
    elif data.format == 'sthv1':
        items, names = readers.read_sthv1(root, data.labels_file, annotation)
    elif data.format == 'sthv2':
        items, names = readers.read_sthv2(root, data.labels_file, annotation)
    elif data.format == 'list':
        items, names = readers.read_list_file(annotation, root if data.root else None,
                                              classes=list(data.classes) or None)
    else:
        raise ValueError(f'unknown dataset.format {data.format!r}')
    if not items:
        raise ValueError(f'the {"training" if train else "held-out"} split of the '
                         f'{data.format} data set at {data.root!r} is empty')
    return list(items), tuple(names)


def dataset_classes(config: TrainConfig) -> tuple[str, ...]:
    """The label list of the configured data set (the training split's classes)."""
    if config.dataset.format == 'synthetic':
        return tuple(synth.CLASSES)
    return _read_items(config, train=True)[1]


def _compose(steps: list[ClipTransform]) -> ClipTransform | None:
    """One transform doing ``steps`` in order; ``None`` when there are none."""
    if not steps:
        return None
    return transforms.Compose(steps) if len(steps) > 1 else steps[0]


def _train_transform(config: TrainConfig, spec: ModelSpec) -> ClipTransform | None:
    """Training augmentation: multi-scale crop to the input size (real data sets, or synthetic
    when ``scales`` is not ``[1.0]``) and, when enabled, a horizontal flip that swaps the labels
    it changes (synthetic data set). ``None`` when there is nothing to do."""
    steps: list[ClipTransform] = []
    scales = [float(s) for s in config.dataset.scales]
    if scales != [1.0] or config.dataset.format != 'synthetic':
        steps.append(transforms.MultiScaleCrop(spec.input_size, scales=scales))
    if config.dataset.hflip:
        label_map = dict(synth.HFLIP_SWAP) if config.dataset.format == 'synthetic' else None
        steps.append(transforms.RandomHorizontalFlip(0.5, label_map=label_map))
    return _compose(steps)


class _Subsample:
    """Keep every ``stride``-th frame of a synthetic video (dense sampling with a stride)."""

    def __init__(self, stride: int) -> None:
        self.stride = stride

    def __call__(self, clip: np.ndarray, label: int,
                 rng: np.random.Generator) -> tuple[np.ndarray, int]:
        return np.ascontiguousarray(clip[::self.stride]), label


def build_dataset(config: TrainConfig, spec: ModelSpec, *, train: bool) -> DataSplit:
    """The training (``train=True``) or held-out split as configured, clips shaped by ``spec``.

    Synthetic clips are generated at the spec's input size, ``spec.clip_span`` frames long
    (subsampled to ``num_frames`` for a stride > 1); the held-out set is fixed (epoch 0 of
    ``val_seed``), the training set fresh every epoch.
    """
    data = config.dataset
    if data.format == 'synthetic':
        steps: list[ClipTransform] = [] if spec.frame_stride == 1 else [
            _Subsample(spec.frame_stride)]
        augment = _train_transform(config, spec) if train else None
        if augment is not None:
            steps.append(augment)
        per_class = data.train_per_class if train else data.val_per_class
        dataset: Dataset[Any] = InMemoryClipDataset(
            per_class * len(synth.CLASSES), frames=spec.clip_span, size=spec.input_size[0],
            seed=data.seed if train else data.val_seed, transform=_compose(steps))
        return DataSplit(dataset=dataset, classes=tuple(synth.CLASSES))
    train_classes = None
    if not train and data.format == 'kinetics':
        train_classes = _read_items(config, train=True)[1]
    items, classes = _read_items(config, train=train, classes=train_classes)
    if train:
        dataset = ClipDataset(items, spec, train=True, transform=_train_transform(config, spec),
                              seed=config.seed)
    else:
        dataset = ClipDataset(items, spec, train=False, num_clips=data.num_clips,
                              num_crops=data.num_crops, seed=config.seed)
    return DataSplit(dataset=dataset, classes=classes)


class ShardSampler(Sampler[int]):
    """Indices ``rank, rank + world, ...`` in order: every item exactly once over all processes."""

    def __init__(self, length: int, rank: int, world_size: int) -> None:
        self.indices = list(range(rank, length, world_size))

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


def held_out_loader(split: DataSplit, batch_size: int, *, num_workers: int,
                    device: torch.device, rank: int = 0,
                    world_size: int = 1) -> DataLoader[Any]:
    """The held-out clips in order, this process's shard of them (all of them for one)."""
    return DataLoader(split.dataset, batch_size=batch_size,
                      sampler=ShardSampler(split.size, rank, world_size),
                      num_workers=num_workers, pin_memory=device.type == 'cuda')


@dataclass
class RunData:
    """The splits and loaders of a training run on this process."""

    train_split: DataSplit
    val_split: DataSplit
    train_loader: DataLoader[Any]
    val_loader: DataLoader[Any]
    sampler: DistributedSampler[Any]
    generator: torch.Generator

    @property
    def steps_per_epoch(self) -> int:
        return len(self.train_loader)

    def start_epoch(self, epoch: int, seed: int) -> None:
        """Shuffle and draw the training clips of ``epoch``; the loader's workers from
        ``seed``."""
        self.generator.manual_seed(seed)
        self.sampler.set_epoch(epoch)
        if hasattr(self.train_split.dataset, 'set_epoch'):
            self.train_split.dataset.set_epoch(epoch)


def build_run_data(config: TrainConfig, spec: ModelSpec, ctx: DistContext, *,
                   local_batch: int) -> RunData:
    """Both splits and their loaders on this process, ``local_batch`` clips a batch.

    The training loader shuffles (seeded by ``config.seed`` and the epoch) and drops the last
    incomplete batch; an epoch with no full batch is an error.
    """
    train_split = build_dataset(config, spec, train=True)
    val_split = build_dataset(config, spec, train=False)
    sampler: DistributedSampler[Any] = DistributedSampler(
        train_split.dataset, num_replicas=ctx.world_size, rank=ctx.rank, shuffle=True,
        seed=config.seed, drop_last=True)
    generator = torch.Generator()
    train_loader = DataLoader(
        train_split.dataset, batch_size=local_batch, sampler=sampler, drop_last=True,
        num_workers=config.dataset.num_workers, pin_memory=ctx.device.type == 'cuda',
        generator=generator, persistent_workers=False)
    if len(train_loader) == 0:
        raise ValueError(f'the training split has {train_split.size} clips, fewer '
                         f'than one batch of {config.batch_size}')
    val_loader = held_out_loader(val_split, local_batch, num_workers=config.dataset.num_workers,
                                 device=ctx.device, rank=ctx.rank, world_size=ctx.world_size)
    return RunData(train_split=train_split, val_split=val_split, train_loader=train_loader,
                   val_loader=val_loader, sampler=sampler, generator=generator)

"""``action-recognition train``: train a model from a YAML config.

Usage::

    action-recognition train --config config/training/synthetic_ci.yaml [key=value ...] \\
        [--resume | --force]
    torchrun --nproc_per_node=4 -m action_recognition.cli.train --config FILE [key=value ...]
    torchrun --nnodes=2 --node_rank=R --master_addr=HOST --nproc_per_node=8 \\
        -m action_recognition.cli.train --config FILE

One script for one CPU, one GPU, several GPUs and several nodes: under ``torchrun``
(``WORLD_SIZE`` > 1) it joins the process group (NCCL on CUDA, gloo on CPU), wraps the model in
DistributedDataParallel, shards the data with a distributed sampler, and only rank 0 logs and
writes files. ``batch_size`` is the global batch, split evenly over the processes.

Each epoch: SGD-with-momentum or AdamW steps under a per-step learning-rate schedule (linear
warm-up, then cosine), mixed precision on CUDA, optional gradient clipping; then an evaluation on
the held-out split and an atomic checkpoint (``last.pt``, then ``best.pt`` when top-1 improves)
holding the model spec, weights, optimiser/scheduler/scaler state, epoch, step, config, metrics
(with the best epoch) and RNG state, as tensors and plain data (it loads with
``torch.load(weights_only=True)``); at the end, ``metrics.json`` and ``model.pt``: the final
weights and spec without the training state (the file to deploy or export).

``--resume`` continues from ``last.pt`` exactly: the data order and the random state of every
epoch derive from ``(seed, epoch, rank)`` alone, so a killed run loses at most the epoch in
progress, and a resumed run ends in the same files as an uninterrupted one, wherever it was
killed: the temporaries of a killed write are removed, a ``best.pt`` that lags behind the best
epoch ``last.pt`` records is restored from it, and a run killed after its last epoch writes its
``metrics.json`` and ``model.pt``. Starting afresh in an ``output_dir`` that holds another run's
checkpoints is refused unless ``--force``. Every file is written through a unique temporary and
renamed into place (:mod:`action_recognition.files`). Logs: tqdm progress bars, TensorBoard
(``<output_dir>/tb``), ``metrics.csv``, ``curves.png`` and ``confusion_matrix.png`` of the latest
evaluation.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Iterator
import csv
from dataclasses import dataclass
import json
import logging
import math
import os
from pathlib import Path
import random
import shutil
import time
from typing import Any
from typing import TypeVar

import numpy as np
import torch
from torch import nn
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader
from torch.utils.data import Dataset
from torch.utils.data import Sampler
from torch.utils.data.distributed import DistributedSampler

from action_recognition.data.preprocess import Normalize
from action_recognition.files import atomic_path
from action_recognition.files import atomic_write_bytes
from action_recognition.files import OutputExistsError
from action_recognition.files import remove_stale_temporaries
from action_recognition.io import checkpoint as ckpt
from action_recognition.spec import ModelSpec
from action_recognition.training.config import config_to_dict
from action_recognition.training.config import make_spec
from action_recognition.training.config import TrainConfig
from action_recognition.training.evaluate import compute_metrics
from action_recognition.training.evaluate import gather
from action_recognition.training.evaluate import predict

__all__ = [
    'DistContext', 'DataSplit', 'train', 'build_dataset', 'dataset_classes', 'build_model',
    'build_optimizer', 'lr_factor', 'set_bn_mode', 'load_imagenet', 'load_pretrained',
    'resolve_device',
]

LOG = logging.getLogger('action_recognition.train')

ItemT = TypeVar('ItemT')

EpochCallback = Callable[[int, dict[str, Any]], None]

# Every file a run writes in its output_dir (their temporaries are removed at start and resume),
# and those that mark a previous run (refused without --force).
RUN_FILES = ('last.pt', 'best.pt', 'model.pt', 'metrics.json', 'metrics.csv', 'config.json',
             'curves.png', 'confusion_matrix.png')
PREVIOUS_RUN_FILES = ('last.pt', 'best.pt', 'model.pt', 'metrics.json')


# ---------------------------------------------------------------------------------------------
# Processes and devices


@dataclass(frozen=True)
class DistContext:
    """This process's place in the run: ``rank`` of ``world_size`` and its device."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """``'auto'`` -> ``cuda:<local_rank>`` when CUDA is available, else ``cpu``."""
    if name == 'auto':
        return torch.device(f'cuda:{local_rank}' if torch.cuda.is_available() else 'cpu')
    device = torch.device(name)
    if device.type == 'cuda':
        if not torch.cuda.is_available():
            raise ValueError(f'device {name!r} asked for, but CUDA is not available')
        if device.index is None:
            device = torch.device(f'cuda:{local_rank}')
    return device


def setup_distributed(device_name: str) -> DistContext:
    """Join the process group when launched by ``torchrun`` with ``WORLD_SIZE`` > 1."""
    world_size = int(os.environ.get('WORLD_SIZE', '1'))
    rank = int(os.environ.get('RANK', '0'))
    local_rank = int(os.environ.get('LOCAL_RANK', '0'))
    device = resolve_device(device_name, local_rank)
    if world_size > 1 and not dist.is_initialized():
        if device.type == 'cuda':
            torch.cuda.set_device(device)
        dist.init_process_group(backend='nccl' if device.type == 'cuda' else 'gloo')
    return DistContext(rank=rank, world_size=world_size, local_rank=local_rank, device=device)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA) from one integer."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def epoch_seed(seed: int, epoch: int, rank: int) -> int:
    """The seed of one epoch on one process: a function of ``(seed, epoch, rank)`` alone."""
    return int(np.random.SeedSequence([seed, epoch, rank]).generate_state(1)[0])


def rng_state() -> dict[str, Any]:
    """The random state of Python, NumPy, torch and CUDA as tensors and plain data.

    Python's is ``[version, [625 ints], gauss_next]``, NumPy's (MT19937)
    ``{'kind', 'keys': [624 ints], 'pos', 'has_gauss', 'cached_gaussian'}``, torch's and each
    CUDA device's a ``uint8`` tensor: a checkpoint holding it loads with
    ``torch.load(weights_only=True)``. :func:`set_rng_state` restores it.
    """
    version, internal, gauss_next = random.getstate()
    kind, keys, pos, has_gauss, cached_gaussian = np.random.get_state(legacy=True)
    state: dict[str, Any] = {
        'python': [int(version), [int(k) for k in internal],
                   None if gauss_next is None else float(gauss_next)],
        'numpy': {'kind': str(kind), 'keys': [int(k) for k in keys], 'pos': int(pos),
                  'has_gauss': int(has_gauss), 'cached_gaussian': float(cached_gaussian)},
        'torch': torch.get_rng_state()}
    if torch.cuda.is_available():
        state['cuda'] = list(torch.cuda.get_rng_state_all())
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore a state :func:`rng_state` returned (CUDA's only with as many devices)."""
    if 'python' in state:
        version, internal, gauss_next = state['python']
        random.setstate((int(version), tuple(int(k) for k in internal), gauss_next))
    if 'numpy' in state:
        numpy_state = state['numpy']
        np.random.set_state((numpy_state['kind'],
                             np.array(numpy_state['keys'], dtype=np.uint32),
                             int(numpy_state['pos']), int(numpy_state['has_gauss']),
                             float(numpy_state['cached_gaussian'])))
    if 'torch' in state:
        torch.set_rng_state(torch.as_tensor(state['torch'], dtype=torch.uint8).cpu())
    cuda = state.get('cuda')
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all([torch.as_tensor(s, dtype=torch.uint8).cpu()
                                      for s in cuda])


def progress(iterable: Iterable[ItemT], *, enable: bool, desc: str,
             total: int | None = None) -> Iterable[ItemT]:
    """A tqdm progress bar around ``iterable`` when ``enable``, else ``iterable`` itself."""
    if not enable:
        return iterable
    from tqdm import tqdm

    return tqdm(iterable, desc=desc, total=total, dynamic_ncols=True, leave=False)


# ---------------------------------------------------------------------------------------------
# Data


@dataclass
class DataSplit:
    """One split of a data set: a torch ``Dataset`` of ``(uint8 clip [V*T, 3, h, w], label)``."""

    dataset: Dataset[Any]
    classes: tuple[str, ...]


def _read_items(config: TrainConfig, *, train: bool,
                classes: tuple[str, ...] | None = None) -> tuple[list[Any], tuple[str, ...]]:
    """``(items, classes)`` of one split of a data set on disk (see :class:`DatasetConfig`)."""
    from action_recognition.training import datasets

    data = config.dataset
    root = Path(data.root)
    annotation = Path(data.train_list if train else data.val_list)
    items: Any
    names: Any
    if data.format == 'ucf101':
        items, names = datasets.read_ucf101(root, split=data.split, train=train,
                                            split_dir=data.split_dir or None)
    elif data.format == 'hmdb51':
        items, names = datasets.read_hmdb51(root, data.split_dir, split=data.split, train=train)
    elif data.format == 'kinetics':
        items, names = datasets.read_kinetics(annotation, root, classes=classes)
    elif data.format == 'sthv1':
        items, names = datasets.read_sthv1(root, data.labels_file, annotation)
    elif data.format == 'sthv2':
        items, names = datasets.read_sthv2(root, data.labels_file, annotation)
    elif data.format == 'list':
        items, names = datasets.read_list_file(annotation, root if data.root else None,
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
        from action_recognition.data import synth

        return tuple(synth.CLASSES)
    return _read_items(config, train=True)[1]


def _train_transform(config: TrainConfig, spec: ModelSpec) -> Any:
    """Training augmentation: multi-scale crop to the input size (real data sets, or synthetic
    when ``scales`` is not ``[1.0]``) and, when enabled, a horizontal flip that swaps the labels
    it changes (synthetic data set). ``None`` when there is nothing to do."""
    from action_recognition.training import transforms

    steps: list[Any] = []
    scales = [float(s) for s in config.dataset.scales]
    if scales != [1.0] or config.dataset.format != 'synthetic':
        steps.append(transforms.MultiScaleCrop(spec.input_size, scales=scales))
    if config.dataset.hflip:
        label_map = None
        if config.dataset.format == 'synthetic':
            from action_recognition.data import synth

            label_map = dict(synth.HFLIP_SWAP)
        steps.append(transforms.RandomHorizontalFlip(0.5, label_map=label_map))
    if not steps:
        return None
    return transforms.Compose(steps) if len(steps) > 1 else steps[0]


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
    from action_recognition.training import datasets

    data = config.dataset
    if data.format == 'synthetic':
        from action_recognition.data import synth
        from action_recognition.training import transforms

        steps = [] if spec.frame_stride == 1 else [_Subsample(spec.frame_stride)]
        augment = _train_transform(config, spec) if train else None
        if augment is not None:
            steps.append(augment)
        per_class = data.train_per_class if train else data.val_per_class
        dataset: Dataset[Any] = datasets.InMemoryClipDataset(
            per_class * len(synth.CLASSES), frames=spec.clip_span, size=spec.input_size[0],
            seed=data.seed if train else data.val_seed,
            transform=None if not steps else (transforms.Compose(steps) if len(steps) > 1
                                              else steps[0]))
        return DataSplit(dataset=dataset, classes=tuple(synth.CLASSES))
    train_classes = None
    if not train and data.format == 'kinetics':
        train_classes = _read_items(config, train=True)[1]
    items, classes = _read_items(config, train=train, classes=train_classes)
    if train:
        dataset = datasets.ClipDataset(items, spec, train=True,
                                       transform=_train_transform(config, spec), seed=config.seed)
    else:
        dataset = datasets.ClipDataset(items, spec, train=False, num_clips=data.num_clips,
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


# ---------------------------------------------------------------------------------------------
# Model and optimiser


def build_model(config: TrainConfig, spec: ModelSpec) -> nn.Module:
    """Create the model of ``spec`` and apply the config's pretrained weights and freezing."""
    from action_recognition.models import create_model

    model = create_model(spec.model, num_classes=spec.num_classes, num_frames=spec.num_frames,
                         **spec.options)
    if config.model.pretrained:
        load_imagenet(model, spec.model, config.model.pretrained,
                      config.model.pretrained_module)
    if config.model.freeze_module:
        for param in model.get_submodule(config.model.freeze_module).parameters():
            param.requires_grad_(False)
    if config.model.bn_mode != 'train':
        for bn in _bn_layers(model, config.model.bn_mode, config.model.bn_module):
            for param in bn.parameters():
                param.requires_grad_(False)
    return model


def load_imagenet(model: nn.Module, name: str, path: str | Path, module: str = '') -> None:
    """ImageNet initialisation of the 2D-Net from a local file (nothing is downloaded).

    ECO-Lite with the Inception 2D-Net takes torchvision ``inception_v3`` weights and CT-Net /
    TSN torchvision ResNet weights, through the zoo's own loaders (which map the names and skip
    the replaced layers); any other model gets :func:`load_pretrained` into ``module``.
    """
    from action_recognition.models import model_info

    if not Path(path).is_file():
        raise FileNotFoundError(f'pretrained weights {path} do not exist')
    family = model_info(name).family
    net2d = getattr(model, 'net2d', None)
    if family == 'eco_lite' and type(net2d).__name__ == 'InceptionV3Net2d':
        from action_recognition.models.inception import load_inception_v3_imagenet

        LOG.info('ImageNet Inception-V3 weights from %s: %s', path,
                 load_inception_v3_imagenet(model, path))
    elif family == 'ctnet':
        from action_recognition.models.resnet import load_resnet_imagenet

        LOG.info('ImageNet ResNet weights from %s: %s', path, load_resnet_imagenet(model, path))
    else:
        load_pretrained(model, path, module)


def load_pretrained(model: nn.Module, path: str | Path, module: str = '') -> tuple[int, int]:
    """Load ImageNet (or other) weights from a local file into ``model`` (or a sub-module).

    The file holds a state dict, or a dict with it under ``state_dict``/``model``/
    ``model_state``. Keys match after removing a ``module.`` prefix; tensors of another shape
    (the ImageNet classifier) are skipped. Returns ``(loaded, total)`` counts of the target's
    tensors; raises ``ValueError`` if nothing matches. The file is read with
    ``torch.load(weights_only=True)``: one holding pickled Python objects is refused
    (:class:`~action_recognition.io.checkpoint.UnsafeCheckpointError`, nothing in it
    runs), a corrupt one is a :class:`~action_recognition.io.checkpoint.CheckpointError`.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f'pretrained weights {path} do not exist')
    state = ckpt.safe_load(path, 'cpu', what='pretrained weights')
    for key in ('state_dict', 'model', 'model_state'):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict):
        raise ValueError(f'pretrained weights {path} hold no state dict')
    state = ckpt.strip_module_prefix(state)
    target = model.get_submodule(module) if module else model
    own = target.state_dict()
    usable = {k: v for k, v in state.items() if k in own and tuple(v.shape) == tuple(own[k].shape)}
    if not usable:
        raise ValueError(f'none of the {len(state)} tensors in {path} fit '
                         f'{module or "the model"} (example keys: {list(state)[:3]} vs '
                         f'{list(own)[:3]})')
    target.load_state_dict(usable, strict=False)
    LOG.info('loaded %d of %d tensors of %s from %s', len(usable), len(own),
             module or 'the model', path)
    return len(usable), len(own)


def _bn_layers(model: nn.Module, mode: str, scope: str) -> list[nn.Module]:
    """The BatchNorm layers ``mode`` freezes: all in ``scope`` (frozen), all but the first
    (partial)."""
    root = model.get_submodule(scope) if scope else model
    layers: list[nn.Module] = [
        m for m in root.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if mode == 'partial':
        return layers[1:]
    if mode == 'frozen':
        return layers
    return []


def set_bn_mode(model: nn.Module, config: TrainConfig) -> None:
    """After ``model.train()``: put frozen BN layers and the frozen sub-module in eval mode."""
    if config.model.freeze_module:
        model.get_submodule(config.model.freeze_module).eval()
    for bn in _bn_layers(model, config.model.bn_mode, config.model.bn_module):
        bn.eval()


def build_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """SGD (momentum) or AdamW; biases and normalisation parameters get no weight decay."""
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    for param in model.parameters():
        if param.requires_grad:
            (no_decay if param.ndim <= 1 else decay).append(param)
    optim = config.optim
    groups = [{'params': decay, 'weight_decay': optim.weight_decay},
              {'params': no_decay, 'weight_decay': 0.0}]
    if optim.optimizer == 'sgd':
        return torch.optim.SGD(groups, lr=optim.lr, momentum=optim.momentum,
                               nesterov=optim.nesterov and optim.momentum > 0)
    betas = (float(optim.betas[0]), float(optim.betas[1]))
    return torch.optim.AdamW(groups, lr=optim.lr, betas=betas)


def lr_factor(step: int, *, total_steps: int, warmup_steps: int, warmup_start: float,
              schedule: str, min_factor: float) -> float:
    """Learning rate at optimiser step ``step`` as a fraction of the peak.

    Linear warm-up from ``warmup_start`` to 1 over ``warmup_steps``, then cosine decay to
    ``min_factor`` at ``total_steps`` (or constant 1 for ``schedule='constant'``).
    """
    if step < warmup_steps:
        return warmup_start + (1 - warmup_start) * step / warmup_steps
    if schedule == 'constant':
        return 1.0
    span = max(total_steps - warmup_steps, 1)
    progress_ = min(max(step - warmup_steps, 0) / span, 1.0)
    return min_factor + (1 - min_factor) * 0.5 * (1 + math.cos(math.pi * progress_))


def build_scheduler(optimizer: torch.optim.Optimizer, config: TrainConfig,
                    steps_per_epoch: int) -> torch.optim.lr_scheduler.LambdaLR:
    optim = config.optim
    total = config.epochs * steps_per_epoch
    warmup = round(optim.warmup_epochs * steps_per_epoch)

    def factor(step: int) -> float:
        return lr_factor(step, total_steps=total, warmup_steps=warmup,
                         warmup_start=optim.warmup_start, schedule=optim.scheduler,
                         min_factor=optim.min_lr / optim.lr)

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


# ---------------------------------------------------------------------------------------------
# Logging


class RunLog:
    """Rank-0 outputs: ``metrics.csv``, ``curves.png``, TensorBoard; no-ops on other ranks."""

    FIELDS = ('epoch', 'step', 'lr', 'train_loss', 'train_top1', 'val_loss', 'val_top1',
              'val_top5', 'epoch_seconds')

    def __init__(self, out_dir: Path, *, enabled: bool, tensorboard: bool, purge_step: int,
                 title: str) -> None:
        self.out_dir = out_dir
        self.enabled = enabled
        self.title = title
        self.writer: Any = None
        if enabled and tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:  # pragma: no cover - tensorboard is a dependency
                LOG.warning('tensorboard is not installed; no event files are written')
            else:
                self.writer = SummaryWriter(str(out_dir / 'tb'), purge_step=purge_step or None)

    def scalar(self, tag: str, value: float, step: int) -> None:
        if self.writer is not None:
            self.writer.add_scalar(tag, value, step)

    def epoch(self, history: list[dict[str, Any]]) -> None:
        if not self.enabled:
            return
        from action_recognition.training import plots

        with atomic_path(self.out_dir / 'metrics.csv', force=True) as temporary, \
                temporary.open('w', newline='') as stream:
            writer = csv.DictWriter(stream, fieldnames=self.FIELDS, extrasaction='ignore')
            writer.writeheader()
            for row in history:
                writer.writerow(row)
        with atomic_path(self.out_dir / 'curves.png', force=True) as temporary:
            plots.plot_curves(history, temporary, title=self.title)
        if self.writer is not None:
            self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


# ---------------------------------------------------------------------------------------------
# Training


def _unwrap(model: nn.Module) -> nn.Module:
    return model.module if isinstance(model, DistributedDataParallel) else model


def _find_resume(resume: str | None, out_dir: Path) -> Path | None:
    if resume is None:
        return None
    path = out_dir / 'last.pt' if resume in ('', 'auto') else Path(resume)
    if not path.is_file():
        raise FileNotFoundError(f'--resume: no checkpoint at {path}')
    return path


def _check_fresh_output(out_dir: Path, *, force: bool) -> list[Path]:
    """The files of a previous run in ``out_dir``; refused (``OutputExistsError``) unless
    ``force``."""
    previous = [out_dir / name for name in PREVIOUS_RUN_FILES if (out_dir / name).exists()]
    if previous and not force:
        names = ', '.join(path.name for path in previous)
        raise OutputExistsError(
            f'{out_dir} holds another run ({names}); pass --force to replace it, --resume to '
            'continue it, or choose another output_dir')
    return previous


def _remove_stale_temporaries(out_dir: Path) -> None:
    """Delete the temporaries a killed run left behind (only this module's own names)."""
    removed = [path for name in RUN_FILES
               for path in remove_stale_temporaries(out_dir / name)]
    legacy = out_dir / '.metrics.csv.tmp'  # the fixed name of earlier versions
    if legacy.is_file():
        legacy.unlink()
        removed.append(legacy)
    if removed:
        LOG.info('removed %d temporaries of a killed run: %s', len(removed),
                 ', '.join(path.name for path in removed))


def _best_epoch(history: list[dict[str, Any]]) -> int | None:
    """The epoch whose held-out top-1 was the best (the first to reach it), as training
    decides."""
    best, epoch = -1.0, None
    for row in history:
        if 'val_top1' in row and row['val_top1'] > best:
            best, epoch = row['val_top1'], int(row['epoch'])
    return epoch


def _reconcile_best(out_dir: Path, resume_path: Path, state: dict[str, Any],
                    best_epoch: int | None) -> None:
    """Make ``best.pt`` hold the best epoch recorded in the checkpoint resumed from.

    ``last.pt`` is written before ``best.pt``, so a run killed between the two leaves a
    ``best.pt`` that lags behind: the best epoch is then the checkpoint's own epoch, and
    ``best.pt`` is restored from it.
    """
    if best_epoch is None:
        return
    best_path = out_dir / 'best.pt'
    held: int | None = None
    if best_path.is_file():
        try:
            held = int(ckpt.load_checkpoint(best_path, 'cpu').get('epoch', -1))
        except ckpt.CheckpointError as error:
            LOG.warning('%s', error)
    if held == best_epoch:
        return
    if int(state['epoch']) == best_epoch:
        with atomic_path(best_path, force=True, keep_suffix=False) as temporary:
            shutil.copyfile(resume_path, temporary)
            with temporary.open('rb') as stream:
                os.fsync(stream.fileno())
        LOG.warning('%s held %s, but the best epoch recorded is epoch %d (the run was killed '
                    'before writing it): restored from %s', best_path,
                    'nothing' if held is None else f'epoch {held}', best_epoch, resume_path)
    else:
        LOG.warning('%s holds %s, but the best epoch recorded in %s is epoch %d, whose weights '
                    'are no longer available; it is replaced when an epoch improves on it',
                    best_path, 'nothing' if held is None else f'epoch {held}', resume_path,
                    best_epoch)


def _plot_confusion(out_dir: Path, metrics: dict[str, Any], spec: ModelSpec, epoch: int,
                    top1: float) -> None:
    from action_recognition.training import plots

    with atomic_path(out_dir / 'confusion_matrix.png', force=True) as temporary:
        plots.plot_confusion_matrix(
            np.array(metrics['confusion_matrix']), spec.label_names, temporary,
            title=f'epoch {epoch}: top-1 {top1:.1f}%')


def train(config: TrainConfig, *, resume: str | None = None, force: bool = False,
          on_epoch_end: EpochCallback | None = None,
          model_builder: Callable[[ModelSpec], nn.Module] | None = None) -> dict[str, Any]:
    """Run (or resume) the training ``config`` describes; returns the final metrics.

    ``resume``: ``None`` starts afresh; ``'auto'`` continues from ``<output_dir>/last.pt``; any
    other string is a checkpoint path. Starting afresh in an ``output_dir`` that holds another
    run's files (``last.pt``, ``best.pt``, ``model.pt``, ``metrics.json``) is refused
    (:class:`~action_recognition.files.OutputExistsError`) unless ``force``, which deletes them
    once the run is set up. ``on_epoch_end(epoch, row)`` is called on every process
    after each epoch's checkpoint is written (``row``: that epoch's log entry).
    ``model_builder(spec)`` builds the network instead of the registry (experiments and tests;
    a checkpoint of such a run loads only with the same builder).
    Returns ``{'best_top1', 'last': last evaluation metrics, 'history', 'checkpoint', 'spec'}``
    (``checkpoint``: the final ``last.pt``).
    """
    config.validate()
    ctx = setup_distributed(config.device)
    if config.threads:
        torch.set_num_threads(config.threads)
    out_dir = Path(config.output_dir)
    if config.batch_size % ctx.world_size:
        raise ValueError(f'batch_size {config.batch_size} is not divisible by the '
                         f'{ctx.world_size} processes')
    local_batch = config.batch_size // ctx.world_size
    resume_path = _find_resume(resume, out_dir)
    previous = _check_fresh_output(out_dir, force=force) if resume_path is None else []

    # The same initial weights on every process (DDP also broadcasts rank 0's).
    seed_everything(config.seed)
    classes = dataset_classes(config)
    spec = make_spec(config, classes)
    train_split = build_dataset(config, spec, train=True)
    val_split = build_dataset(config, spec, train=False)
    model = (model_builder(spec) if model_builder is not None
             else build_model(config, spec)).to(ctx.device)
    normalize = Normalize.from_spec(spec).to(ctx.device)

    train_sampler: DistributedSampler[Any] = DistributedSampler(
        train_split.dataset, num_replicas=ctx.world_size, rank=ctx.rank, shuffle=True,
        seed=config.seed, drop_last=True)
    loader_generator = torch.Generator()
    pin = ctx.device.type == 'cuda'
    train_loader = DataLoader(
        train_split.dataset, batch_size=local_batch, sampler=train_sampler, drop_last=True,
        num_workers=config.dataset.num_workers, pin_memory=pin, generator=loader_generator,
        persistent_workers=False)
    val_loader = DataLoader(
        val_split.dataset, batch_size=local_batch,
        sampler=ShardSampler(len(val_split.dataset), ctx.rank, ctx.world_size),  # type: ignore[arg-type]
        num_workers=config.dataset.num_workers, pin_memory=pin)
    steps_per_epoch = len(train_loader)
    if steps_per_epoch == 0:
        raise ValueError(f'the training split has {len(train_split.dataset)} clips, fewer '  # type: ignore[arg-type]
                         f'than one batch of {config.batch_size}')

    optimizer = build_optimizer(model, config)
    scheduler = build_scheduler(optimizer, config, steps_per_epoch)
    use_amp = config.amp and ctx.device.type == 'cuda'
    scaler = torch.amp.GradScaler('cuda', enabled=use_amp)
    criterion = nn.CrossEntropyLoss(label_smoothing=config.optim.label_smoothing)

    start_epoch, step, best_top1 = 0, 0, -1.0
    best_epoch: int | None = None
    history: list[dict[str, Any]] = []
    last_metrics: dict[str, Any] = {}
    state: dict[str, Any] = {}
    if resume_path is not None:
        state = ckpt.load_checkpoint(resume_path, ctx.device)
        stored = ckpt.spec_from_checkpoint(state, resume_path)
        if stored != spec:
            raise ValueError(f'--resume: {resume_path} was trained with a different model spec '
                             f'({stored}) than this config gives ({spec})')
        model.load_state_dict(ckpt.strip_module_prefix(state['model_state']))
        optimizer.load_state_dict(state['optimizer'])
        scheduler.load_state_dict(state['scheduler'])
        if state.get('scaler'):
            scaler.load_state_dict(state['scaler'])
        if state.get('rng_state'):
            set_rng_state(state['rng_state'])
        start_epoch, step = int(state['epoch']), int(state['step'])
        metrics = state.get('metrics') or {}
        best_top1 = float(metrics.get('best_top1', -1.0))
        history = list(metrics.get('history', []))
        last_metrics = dict(metrics.get('last') or {})
        recorded = metrics.get('best_epoch')
        best_epoch = int(recorded) if recorded is not None else _best_epoch(history)
        if ctx.is_main:
            LOG.info('resuming from %s after epoch %d (step %d)', resume_path, start_epoch, step)

    if ctx.distributed:
        model = DistributedDataParallel(
            model, device_ids=[ctx.device.index] if ctx.device.type == 'cuda' else None)
    if ctx.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
        _remove_stale_temporaries(out_dir)
        if previous:
            for path in previous:
                path.unlink(missing_ok=True)
            LOG.warning('--force: replacing the previous run in %s (removed %s)', out_dir,
                        ', '.join(path.name for path in previous))
        if resume_path is not None:
            _reconcile_best(out_dir, resume_path, state, best_epoch)
        atomic_write_bytes(out_dir / 'config.json',
                           json.dumps(config_to_dict(config), indent=1).encode(), force=True)
        n_params = sum(p.numel() for p in model.parameters())
        LOG.info('%s: %d classes, %d parameters, %d training clips (%d steps/epoch), %d '
                 'held-out clips, device %s x%d', spec.model, spec.num_classes, n_params,
                 len(train_split.dataset), steps_per_epoch, len(val_split.dataset),  # type: ignore[arg-type]
                 ctx.device, ctx.world_size)
    # Resumed: TensorBoard hides the events a killed run logged after the checkpoint's step.
    log = RunLog(out_dir, enabled=ctx.is_main, tensorboard=config.tensorboard,
                 purge_step=step + 1 if resume_path is not None else 0,
                 title=f'{spec.model} ({config.dataset.format})')
    try:
        for epoch in range(start_epoch, config.epochs):
            started = time.monotonic()
            # Everything random in this epoch derives from (seed, epoch, rank): exact resumes.
            seed_everything(epoch_seed(config.seed, epoch, ctx.rank))
            loader_generator.manual_seed(epoch_seed(config.seed + 1, epoch, ctx.rank))
            train_sampler.set_epoch(epoch)
            if hasattr(train_split.dataset, 'set_epoch'):
                train_split.dataset.set_epoch(epoch)
            model.train()
            set_bn_mode(_unwrap(model), config)
            loss_sum = torch.zeros((), device=ctx.device)
            correct = torch.zeros((), device=ctx.device)
            seen = 0
            bar = progress(train_loader, enable=config.progress and ctx.is_main,
                           desc=f'epoch {epoch + 1}/{config.epochs}')
            for clips, labels in bar:
                x = normalize(clips.to(ctx.device, non_blocking=True).flatten(0, 1))
                labels = labels.to(ctx.device, non_blocking=True)
                with torch.autocast(ctx.device.type, enabled=use_amp):
                    logits = model(x)
                    loss = criterion(logits, labels)
                if not torch.isfinite(loss):
                    raise FloatingPointError(
                        f'loss is {loss.item()} at epoch {epoch + 1}, step {step}; lower '
                        f'optim.lr (now {config.optim.lr}) or set optim.clip_grad_norm')
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                if config.optim.clip_grad_norm > 0:
                    scaler.unscale_(optimizer)
                    nn.utils.clip_grad_norm_(model.parameters(), config.optim.clip_grad_norm)
                scaler.step(optimizer)
                scaler.update()
                scheduler.step()
                step += 1
                loss_sum += loss.detach() * labels.shape[0]
                correct += (logits.detach().argmax(dim=1) == labels).sum()
                seen += labels.shape[0]
                if ctx.is_main and step % config.log_every == 0:
                    log.scalar('train/loss', loss.item(), step)
                    log.scalar('train/lr', optimizer.param_groups[0]['lr'], step)
                    if hasattr(bar, 'set_postfix'):
                        bar.set_postfix(loss=f'{loss.item():.3f}',
                                        lr=f'{optimizer.param_groups[0]["lr"]:.2e}')
            totals = torch.stack([loss_sum, correct, torch.tensor(float(seen), device=ctx.device)])
            if ctx.distributed:
                dist.all_reduce(totals)
            row: dict[str, Any] = {
                'epoch': epoch + 1, 'step': step, 'lr': optimizer.param_groups[0]['lr'],
                'train_loss': (totals[0] / totals[2]).item(),
                'train_top1': (totals[1] / totals[2] * 100).item()}
            is_last = epoch + 1 == config.epochs
            if (epoch + 1) % config.eval_every == 0 or is_last:
                probs, labels_ = predict(
                    _unwrap(model), progress(val_loader, enable=config.progress and ctx.is_main,
                                             desc='eval'),
                    normalize=normalize, device=ctx.device, num_frames=spec.num_frames,
                    amp=use_amp)
                probs, labels_ = gather(probs, labels_)
                last_metrics = compute_metrics(probs, labels_, spec.num_classes)
                row.update(val_loss=last_metrics['loss'], val_top1=last_metrics['top1'],
                           val_top5=last_metrics['top5'])
            row['epoch_seconds'] = time.monotonic() - started
            history.append(row)
            improved = 'val_top1' in row and row['val_top1'] > best_top1
            if improved:
                best_top1, best_epoch = row['val_top1'], epoch + 1
            if ctx.is_main:
                _save(out_dir, spec=spec, model=_unwrap(model), optimizer=optimizer,
                      scheduler=scheduler, scaler=scaler, epoch=epoch + 1, step=step,
                      config=config, history=history, best_top1=best_top1,
                      best_epoch=best_epoch, last_metrics=last_metrics, improved=improved)
                for key, value in row.items():
                    if key not in ('epoch', 'step'):
                        log.scalar(f'epoch/{key}', float(value), step)
                log.epoch(history)
                if 'val_top1' in row and last_metrics:
                    _plot_confusion(out_dir, last_metrics, spec, epoch + 1, row['val_top1'])
                shown = ', '.join(f'{k} {v:.4g}' for k, v in row.items() if k != 'epoch')
                LOG.info('epoch %d/%d: %s', epoch + 1, config.epochs, shown)
            if ctx.distributed:
                dist.barrier()
            if on_epoch_end is not None:
                on_epoch_end(epoch + 1, row)
    finally:
        log.close()
    if ctx.is_main and last_metrics:
        if start_epoch >= config.epochs and history:
            # Resumed after the last epoch (killed before the run's outputs were written):
            # write them from the checkpoint, as the last epoch would have.
            log.epoch(history)
            if 'val_top1' in history[-1]:
                _plot_confusion(out_dir, last_metrics, spec, int(history[-1]['epoch']),
                                history[-1]['val_top1'])
        summary = {k: v for k, v in last_metrics.items() if k != 'confusion_matrix'}
        summary.update(best_top1=best_top1, best_epoch=best_epoch,
                       labels=list(spec.label_names))
        atomic_write_bytes(out_dir / 'metrics.json', json.dumps(summary, indent=1).encode(),
                           force=True)
        # The deployable file: the final weights, without the state only resuming needs.
        ckpt.write_model_file(out_dir / 'last.pt', out_dir / 'model.pt')
    return {'best_top1': best_top1, 'last': last_metrics, 'history': history,
            'checkpoint': str(out_dir / 'last.pt'), 'spec': spec}


def _save(out_dir: Path, *, spec: ModelSpec, model: nn.Module,
          optimizer: torch.optim.Optimizer, scheduler: Any, scaler: torch.amp.GradScaler,
          epoch: int, step: int, config: TrainConfig, history: list[dict[str, Any]],
          best_top1: float, best_epoch: int | None, last_metrics: dict[str, Any],
          improved: bool) -> None:
    """Write ``last.pt``, then ``best.pt`` when the epoch improved.

    In this order a kill between the two leaves a ``last.pt`` whose recorded ``best_epoch`` is
    its own epoch and a ``best.pt`` one improvement behind, which a resume restores from
    ``last.pt`` (:func:`_reconcile_best`); the other order would leave a ``best.pt`` from an
    epoch no checkpoint records.
    """
    state = {
        'spec': spec.to_dict(), 'model_state': model.state_dict(),
        'optimizer': optimizer.state_dict(), 'scheduler': scheduler.state_dict(),
        'scaler': scaler.state_dict() if scaler.is_enabled() else None,
        'epoch': epoch, 'step': step, 'config': config_to_dict(config),
        'metrics': {'best_top1': best_top1, 'best_epoch': best_epoch, 'history': history,
                    'last': dict(last_metrics)},
        'rng_state': rng_state(),
    }
    ckpt.save_checkpoint(out_dir / 'last.pt', state)
    if improved:
        ckpt.save_checkpoint(out_dir / 'best.pt', state)


# ---------------------------------------------------------------------------------------------
# Command line

"""The torch data sets that turn data-set items into clips.

:class:`ClipDataset` samples clips from the items a reader returns
(:mod:`action_recognition.training.readers`: UCF-101, HMDB-51, Kinetics, Something-Something,
list files; re-exported here) with the one shared sampling implementation
(:func:`action_recognition.data.sampling.sample_indices`) and returns ``uint8`` tensors;
:class:`InMemoryClipDataset` generates synthetic clips on the fly (no disk).

Unreadable items (missing, empty or corrupt videos; folders without images) never crash a run.
The policy: the item is recorded in ``dataset.skipped`` (path -> reason) with a warning naming
the file (once per file), and the next readable item (index + 1, + 2, ...) is returned instead.
Only when every item fails does the data set raise. With ``DataLoader`` workers each worker keeps
its own ``skipped``; call :func:`check_items` first to count and drop bad items in the main
process.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Sequence
import logging
import warnings

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from action_recognition.data.preprocess import resize_short_side
from action_recognition.data.sampling import sample_indices
from action_recognition.data.synth_clips import CLASSES
from action_recognition.data.synth_clips import clip_rng
from action_recognition.data.synth_clips import generate_clip
from action_recognition.data.video import count_frames
from action_recognition.data.video import read_frame_folder
from action_recognition.data.video import read_frames
from action_recognition.data.video import VideoReadError
from action_recognition.spec import ModelSpec
from action_recognition.training.readers import VideoItem
from action_recognition.training.transforms import CenterCrop
from action_recognition.training.transforms import ClipTransform
from action_recognition.training.transforms import MultiScaleCrop
from action_recognition.training.transforms import ThreeCrop

__all__ = ['check_items', 'ClipDataset', 'InMemoryClipDataset']

_LOG = logging.getLogger(__name__)


def _count(item: VideoItem) -> int:
    if item.num_frames is not None and item.num_frames > 0:
        return item.num_frames
    return count_frames(item.path)


def _read(item: VideoItem, indices: np.ndarray) -> np.ndarray:
    if item.is_frame_folder:
        return read_frame_folder(item.path, indices, item.frame_template)
    return read_frames(item.path, indices)


def check_items(items: Sequence[VideoItem], *, progress: bool = True,
                ) -> tuple[list[VideoItem], dict[str, str]]:
    """Count the frames of every item; return the readable ones (with ``num_frames`` filled in)
    and ``{path: reason}`` for the rest, warning once with the count and the names.
    """
    from tqdm import tqdm  # loaded only when items are checked (a progress bar)

    good: list[VideoItem] = []
    bad: dict[str, str] = {}
    for item in tqdm(items, desc='check', unit='video', disable=not progress):
        try:
            good.append(VideoItem(item.path, item.label, _count(item), item.is_frame_folder,
                                  item.frame_template))
        except VideoReadError as error:
            bad[str(item.path)] = error.reason
    if bad:
        shown = '; '.join(f'{p} ({r})' for p, r in list(bad.items())[:10])
        more = f' and {len(bad) - 10} more' if len(bad) > 10 else ''
        message = f'skipping {len(bad)} of {len(items)} unreadable videos: {shown}{more}'
        warnings.warn(message, RuntimeWarning, stacklevel=2)
        _LOG.warning(message)
    return good, bad


class _SkippingDataset(Dataset[tuple[Tensor, int]]):
    """Shared skip-and-replace policy for unreadable items."""

    def __init__(self) -> None:
        self.skipped: dict[str, str] = {}

    def __len__(self) -> int:
        raise NotImplementedError

    def _load(self, index: int) -> tuple[Tensor, int]:
        raise NotImplementedError

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        size = len(self)
        if not -size <= index < size:
            raise IndexError(f'index {index} out of range for {size} items')
        index %= size
        for attempt in range(size):
            current = (index + attempt) % size
            try:
                return self._load(current)
            except VideoReadError as error:
                self._skip(error)
        raise RuntimeError(f'all {size} items of the data set are unreadable; skipped: '
                           f'{sorted(self.skipped)[:5]}')

    def _skip(self, error: VideoReadError) -> None:
        if error.path in self.skipped:
            return
        self.skipped[error.path] = error.reason
        message = (f'skipping unreadable video {error.path}: {error.reason} '
                   f'({len(self.skipped)} skipped so far)')
        warnings.warn(message, RuntimeWarning, stacklevel=3)
        _LOG.warning(message)


class ClipDataset(_SkippingDataset):
    """Clips from videos or frame folders, sampled as the model's spec says.

    Training: one clip, frame indices from ``sample_indices(spec, n, train=True)`` (random start
    or random in-segment offsets), frames resized so the short side is ``spec.resize_short``,
    then ``transform(clip, label, rng)`` (default: :class:`MultiScaleCrop` to
    ``spec.input_size``; no flip unless you add one, because a flip can change a class).

    Testing: ``num_clips`` evenly spaced clips x ``num_crops`` crops (1: centre, 3: three crops
    along the long side), resized the same way, in clip-major order; the caller averages the
    scores of the ``num_clips * num_crops`` views.

    Returns:
        ``(clip, label)``: ``uint8`` tensor ``[T, 3, h, w]`` in training, ``[V*T, 3, h, w]`` with
        ``V = num_clips * num_crops`` views in testing (``[T, 3, h, w]`` when ``V = 1``), and the
        class index. Normalisation happens later, on the device
        (:class:`~action_recognition.data.normalize.Normalize`).

    Frame counts not given by the items are counted on first use and cached in this object;
    with ``DataLoader`` workers (copies of it) pass items from :func:`check_items`, which fills
    them in once, so videos without a frame count in their header are not decoded twice.
    """

    def __init__(self, items: Sequence[VideoItem], spec: ModelSpec, *, train: bool,
                 transform: ClipTransform | None = None, num_clips: int = 1, num_crops: int = 1,
                 seed: int = 0) -> None:
        super().__init__()
        if num_clips < 1:
            raise ValueError(f'num_clips must be >= 1, got {num_clips}')
        if num_crops not in (1, 3):
            raise ValueError(f'num_crops must be 1 or 3, got {num_crops}')
        if train and (num_clips != 1 or num_crops != 1):
            raise ValueError('multi-clip / multi-crop views are for testing (train=False)')
        self.items = list(items)
        self.spec = spec
        self.train = train
        self.transform: ClipTransform = transform or MultiScaleCrop(spec.input_size)
        self.num_clips = num_clips
        self.num_crops = num_crops
        self.seed = seed
        self.crops = CenterCrop(spec.input_size) if num_crops == 1 else ThreeCrop(spec.input_size)
        self._counts: dict[int, int] = {}

    @property
    def num_views(self) -> int:
        """Views per item in testing (``num_clips * num_crops``)."""
        return self.num_clips * self.num_crops

    def __len__(self) -> int:
        return len(self.items)

    def _frame_count(self, index: int) -> int:
        if index not in self._counts:
            self._counts[index] = _count(self.items[index])
        return self._counts[index]

    def _resize(self, frames: np.ndarray) -> np.ndarray:
        return np.stack([resize_short_side(f, self.spec.resize_short) for f in frames])

    def _load(self, index: int) -> tuple[Tensor, int]:
        item = self.items[index]
        available = self._frame_count(index)
        if self.train:
            # Fresh randomness per call: torch's generator is seeded per DataLoader worker and
            # epoch, so runs are reproducible under torch.manual_seed.
            draw = int(torch.randint(0, 2**31 - 1, ()).item())
            rng = np.random.default_rng([self.seed, index, draw])
            indices = sample_indices(self.spec, available, train=True, rng=rng)
            clip = self._resize(_read(item, indices))
            clip, label = self.transform(clip, item.label, rng)
            return _to_tensor(clip), int(label)
        per_clip = [sample_indices(self.spec, available, train=False, clip_index=c,
                                   num_clips=self.num_clips) for c in range(self.num_clips)]
        unique, inverse = np.unique(np.concatenate(per_clip), return_inverse=True)
        frames = self._resize(_read(item, unique))[inverse]
        views = []
        for c in range(self.num_clips):
            clip = frames[c * self.spec.num_frames:(c + 1) * self.spec.num_frames]
            views.extend(self.crops.views(clip))
        return _to_tensor(np.concatenate(views)), item.label


def _to_tensor(clip: np.ndarray) -> Tensor:
    """``uint8`` ``[N, h, w, 3]`` -> ``uint8`` tensor ``[N, 3, h, w]``."""
    return torch.from_numpy(np.ascontiguousarray(clip)).permute(0, 3, 1, 2).contiguous()


class InMemoryClipDataset(Dataset[tuple[Tensor, int]]):
    """Synthetic clips generated on the fly (no disk), deterministic per index, seed and epoch.

    Item ``i`` is class ``i % 11`` drawn with
    :func:`~action_recognition.data.synth_clips.clip_rng` ``(seed + 7919 * epoch, i)``; call
    :meth:`set_epoch` for fresh clips each epoch (training), keep epoch 0 for a fixed
    validation set. ``transform(clip, label, rng)`` is applied when given (its randomness is
    seeded from the same index).

    Returns:
        ``(clip, label)``: ``uint8`` tensor ``[T, 3, size, size]`` and the class index into
        :data:`~action_recognition.data.synth_clips.CLASSES`.
    """

    def __init__(self, num_clips: int, *, frames: int = 8, size: int = 64, seed: int = 0,
                 transform: Callable[[np.ndarray, int, np.random.Generator],
                                     tuple[np.ndarray, int]] | None = None) -> None:
        if num_clips < 1:
            raise ValueError(f'num_clips must be >= 1, got {num_clips}')
        self.num_clips = num_clips
        self.frames = frames
        self.size = size
        self.seed = seed
        self.epoch = 0
        self.transform = transform

    @classmethod
    def from_spec(cls, spec: ModelSpec, num_clips: int, *, seed: int = 0,
                  transform: Callable[[np.ndarray, int, np.random.Generator],
                                      tuple[np.ndarray, int]] | None = None,
                  ) -> InMemoryClipDataset:
        """Clips of ``spec.num_frames`` frames at the spec's (square) input size."""
        height, width = spec.input_size
        if height != width:
            raise ValueError(f'synthetic clips are square; spec input size is {spec.input_size}')
        return cls(num_clips, frames=spec.num_frames, size=height, seed=seed,
                   transform=transform)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.num_clips

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        if not -self.num_clips <= index < self.num_clips:
            raise IndexError(f'index {index} out of range for {self.num_clips} clips')
        index %= self.num_clips
        label = index % len(CLASSES)
        rng = clip_rng(self.seed + 7919 * self.epoch, index)
        clip = generate_clip(CLASSES[label], rng=rng, frames=self.frames, size=self.size)
        if self.transform is not None:
            clip, label = self.transform(clip, label, rng)
        return _to_tensor(clip), int(label)

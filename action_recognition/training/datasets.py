"""Data-set readers and the torch data sets that turn them into clips.

Readers turn the files people have on disk into ``(items, classes)``: a list of
:class:`VideoItem` and the class names in label order. Supported layouts:

- UCF-101: class folders of ``.avi`` files and ``ucfTrainTestlist/`` with ``classInd.txt``
  (``1 ApplyEyeMakeup``), ``trainlist0N.txt`` (``ApplyEyeMakeup/v_..._g08_c01.avi 1``) and
  ``testlist0N.txt`` (``ApplyEyeMakeup/v_..._g01_c01.avi``): :func:`read_ucf101`.
- HMDB-51: class folders and split files ``<class>_test_split<N>.txt`` with lines
  ``<video> 0|1|2`` (1 train, 2 test, 0 unused): :func:`read_hmdb51`.
- Kinetics-400: annotation CSV ``label,youtube_id,time_start,time_end,split`` and videos named
  ``<id>_<start:06d>_<end:06d>.mp4`` (in class folders or flat): :func:`read_kinetics`.
- Something-Something V1: JPEG frame folders ``<id>/00001.jpg``, a label file (one class per
  line) and split CSVs ``id;label``: :func:`read_sthv1`.
- Something-Something V2: ``<id>.webm`` videos, ``labels.json`` ``{template: index}`` and split
  JSON ``[{"id", "template", ...}]``: :func:`read_sthv2`.
- generic list files, ``path label`` (videos) or ``folder num_frames label`` (frame folders):
  :func:`read_list_file`.

:class:`ClipDataset` samples clips from items with the one shared sampling implementation
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
import csv
from dataclasses import dataclass
import json
import logging
import os
from pathlib import Path
import warnings

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from action_recognition.data.preprocess import resize_short_side
from action_recognition.data.sampling import sample_indices
from action_recognition.data.video import count_frames
from action_recognition.data.video import read_frame_folder
from action_recognition.data.video import read_frames
from action_recognition.data.video import VideoReadError
from action_recognition.spec import ModelSpec
from action_recognition.training.transforms import CenterCrop
from action_recognition.training.transforms import ClipTransform
from action_recognition.training.transforms import MultiScaleCrop
from action_recognition.training.transforms import ThreeCrop

__all__ = [
    'VideoItem', 'read_ucf101', 'read_hmdb51', 'read_kinetics', 'read_sthv1', 'read_sthv2',
    'read_list_file', 'check_items', 'ClipDataset', 'InMemoryClipDataset',
    'DatasetFormatError',
]

_LOG = logging.getLogger(__name__)

PathLike = str | os.PathLike[str]


class DatasetFormatError(ValueError):
    """An annotation file does not have the expected format (message names file and line)."""


@dataclass(frozen=True)
class VideoItem:
    """One labelled video or frame folder.

    Attributes:
        path: video file or frame folder.
        label: class index.
        num_frames: frame count when known (list files give it), else ``None`` (counted lazily).
        is_frame_folder: ``path`` is a folder of images, one per frame.
        frame_template: frame file pattern (``'{:05d}.jpg'``, numbered from 1); ``None`` means
            the folder's images in natural order.
    """

    path: Path
    label: int
    num_frames: int | None = None
    is_frame_folder: bool = False
    frame_template: str | None = None


def _read_lines(path: Path) -> list[tuple[int, str]]:
    """Non-empty, stripped lines with 1-based line numbers."""
    if not path.is_file():
        raise FileNotFoundError(f'annotation file not found: {path}')
    text = path.read_text(encoding='utf-8-sig')
    return [(n, line.strip()) for n, line in enumerate(text.splitlines(), 1) if line.strip()]


def _class_lookup(classes: Sequence[str]) -> dict[str, int]:
    """Name -> index, also matching case-insensitively (UCF-101 spells one class two ways)."""
    lookup = {name: i for i, name in enumerate(classes)}
    for i, name in enumerate(classes):
        lookup.setdefault(name.lower(), i)
    return lookup


def _find(lookup: dict[str, int], name: str) -> int | None:
    return lookup.get(name, lookup.get(name.lower()))


# ---------------------------------------------------------------------------------------------
# UCF-101


def read_ucf101(root: PathLike, split: int = 1, train: bool = True, *,
                split_dir: PathLike | None = None,
                videos_dir: PathLike | None = None) -> tuple[list[VideoItem], list[str]]:
    """UCF-101 (or the synthetic benchmark, which uses the same layout).

    Args:
        root: data set folder.
        split: 1, 2 or 3.
        train: the train list (else the test list).
        split_dir: the ``ucfTrainTestlist`` folder; default ``root/ucfTrainTestlist`` or
            ``root/../ucfTrainTestlist``.
        videos_dir: folder holding the class folders; default the first of ``root/videos``,
            ``root/UCF-101`` and ``root`` in which the list's first video exists.
    """
    root = Path(root)
    if split_dir is None:
        candidates = [root / 'ucfTrainTestlist', root.parent / 'ucfTrainTestlist']
        split_path = next((c for c in candidates if c.is_dir()), candidates[0])
    else:
        split_path = Path(split_dir)
    class_file = split_path / 'classInd.txt'
    classes: list[str] = []
    for n, line in _read_lines(class_file):
        parts = line.split()
        if len(parts) != 2 or not parts[0].isdigit():
            raise DatasetFormatError(f'{class_file}:{n}: expected "<index> <class>", got {line!r}')
        if int(parts[0]) != len(classes) + 1:
            raise DatasetFormatError(
                f'{class_file}:{n}: class index {parts[0]}, expected {len(classes) + 1}')
        classes.append(parts[1])
    lookup = _class_lookup(classes)
    list_file = split_path / f'{"train" if train else "test"}list{split:02d}.txt'
    entries: list[tuple[str, int]] = []
    for n, line in _read_lines(list_file):
        parts = line.split()
        rel = parts[0]
        folder = rel.replace('\\', '/').split('/')[0]
        from_folder = _find(lookup, folder)
        if len(parts) == 2 and parts[1].lstrip('-').isdigit():
            label = int(parts[1]) - 1
            if not 0 <= label < len(classes):
                raise DatasetFormatError(
                    f'{list_file}:{n}: label {parts[1]} outside 1..{len(classes)}')
            if from_folder is not None and from_folder != label:
                raise DatasetFormatError(
                    f'{list_file}:{n}: label {parts[1]} ({classes[label]}) does not match '
                    f'folder {folder!r}')
        elif len(parts) == 1:
            if from_folder is None:
                raise DatasetFormatError(
                    f'{list_file}:{n}: folder {folder!r} is not a class in {class_file}')
            label = from_folder
        else:
            raise DatasetFormatError(
                f'{list_file}:{n}: expected "<class>/<video> [<index>]", got {line!r}')
        entries.append((rel, label))
    if videos_dir is None:
        candidates = [root / 'videos', root / 'UCF-101', root]
        first = entries[0][0] if entries else ''
        base = next((c for c in candidates if (c / first).exists()), root)
    else:
        base = Path(videos_dir)
    return [VideoItem(base / rel, label) for rel, label in entries], classes


# ---------------------------------------------------------------------------------------------
# HMDB-51


def read_hmdb51(root: PathLike, split_dir: PathLike, split: int = 1,
                train: bool = True) -> tuple[list[VideoItem], list[str]]:
    """HMDB-51: ``root/<class>/<video>.avi`` and ``split_dir/<class>_test_split<N>.txt``.

    Classes are the split files' class names in sorted order.
    """
    root, split_path = Path(root), Path(split_dir)
    suffix = f'_test_split{split}.txt'
    files = sorted(p for p in split_path.glob(f'*{suffix}'))
    if not files:
        raise FileNotFoundError(f'no HMDB-51 split files *{suffix} in {split_path}')
    classes = [p.name[:-len(suffix)] for p in files]
    wanted = '1' if train else '2'
    items = []
    for label, (name, file) in enumerate(zip(classes, files)):
        for n, line in _read_lines(file):
            parts = line.split()
            if len(parts) != 2 or parts[1] not in ('0', '1', '2'):
                raise DatasetFormatError(f'{file}:{n}: expected "<video> 0|1|2", got {line!r}')
            if parts[1] == wanted:
                items.append(VideoItem(root / name / parts[0], label))
    return items, classes


# ---------------------------------------------------------------------------------------------
# Kinetics


def read_kinetics(csv_path: PathLike, root: PathLike, *, classes: Sequence[str] | None = None,
                  extensions: Sequence[str] = ('.mp4', '.mkv', '.webm', '.avi'),
                  ) -> tuple[list[VideoItem], list[str]]:
    """Kinetics-400 (or 600/700): annotation CSV and downloaded clips.

    Video ``<youtube_id>_<time_start:06d>_<time_end:06d><ext>`` is looked for in
    ``root/<label>/``, ``root/<label with _ for spaces>/`` and ``root/``; a video found nowhere
    keeps the first candidate path and is reported as missing when read. Classes are the CSV's
    labels sorted (the usual Kinetics order) unless ``classes`` (e.g. the train set's) is given.
    """
    csv_file, root = Path(csv_path), Path(root)
    if not csv_file.is_file():
        raise FileNotFoundError(f'annotation file not found: {csv_file}')
    with csv_file.open(newline='', encoding='utf-8-sig') as handle:
        reader = csv.DictReader(handle)
        columns = set(reader.fieldnames or ())
        needed = {'label', 'youtube_id', 'time_start', 'time_end'}
        if not needed <= columns:
            raise DatasetFormatError(
                f'{csv_file}: needs columns {sorted(needed)}, has {sorted(columns)}'
                + (' (a test CSV without labels cannot be read as a labelled set)'
                   if 'label' not in columns else ''))
        rows = list(reader)
    names = sorted({r['label'] for r in rows}) if classes is None else list(classes)
    lookup = {name: i for i, name in enumerate(names)}
    items = []
    for n, row in enumerate(rows, 2):
        label = lookup.get(row['label'])
        if label is None:
            raise DatasetFormatError(f'{csv_file}:{n}: label {row["label"]!r} not in classes')
        try:
            start, end = int(float(row['time_start'])), int(float(row['time_end']))
        except ValueError as error:
            raise DatasetFormatError(f'{csv_file}:{n}: bad time_start/time_end') from error
        stem = f'{row["youtube_id"]}_{start:06d}_{end:06d}'
        folders = [root / row['label'], root / row['label'].replace(' ', '_'), root]
        candidates = [f / (stem + ext) for f in folders for ext in extensions]
        path = next((c for c in candidates if c.exists()), candidates[0])
        items.append(VideoItem(path, label))
    return items, names


# ---------------------------------------------------------------------------------------------
# Something-Something


def _sth_label_key(text: str) -> str:
    """Something-Something templates with the brackets removed, as in the label files."""
    return ' '.join(text.replace('[', '').replace(']', '').split())


def read_sthv1(frames_root: PathLike, labels_csv: PathLike,
               split_csv: PathLike) -> tuple[list[VideoItem], list[str]]:
    """Something-Something V1: ``frames_root/<id>/00001.jpg``..., a label file with one class
    per line, and a split CSV with ``id;label`` lines.
    """
    frames_root, labels_file, split_file = Path(frames_root), Path(labels_csv), Path(split_csv)
    classes = [line for _, line in _read_lines(labels_file)]
    lookup = {_sth_label_key(name): i for i, name in enumerate(classes)}
    items = []
    for n, line in _read_lines(split_file):
        parts = line.split(';', 1)
        if len(parts) != 2:
            raise DatasetFormatError(f'{split_file}:{n}: expected "id;label", got {line!r}'
                                     ' (a test split without labels cannot be read)')
        label = lookup.get(_sth_label_key(parts[1]))
        if label is None:
            raise DatasetFormatError(
                f'{split_file}:{n}: label {parts[1]!r} not in {labels_file}')
        items.append(VideoItem(frames_root / parts[0].strip(), label, None, True, '{:05d}.jpg'))
    return items, classes


def read_sthv2(videos_root: PathLike, labels_json: PathLike, split_json: PathLike, *,
               extensions: Sequence[str] = ('.webm', '.mp4')) -> tuple[list[VideoItem], list[str]]:
    """Something-Something V2: ``videos_root/<id>.webm``, ``labels.json`` mapping template ->
    index, and a split JSON list of ``{"id": ..., "template": "Pushing [something] ..."}``.
    """
    videos_root, labels_file, split_file = Path(videos_root), Path(labels_json), Path(split_json)
    try:
        label_map = json.loads(labels_file.read_text(encoding='utf-8'))
        entries = json.loads(split_file.read_text(encoding='utf-8'))
    except FileNotFoundError:
        raise
    except json.JSONDecodeError as error:
        raise DatasetFormatError(f'invalid JSON: {error}') from error
    if not isinstance(label_map, dict) or not isinstance(entries, list):
        raise DatasetFormatError(
            f'{labels_file} must be an object {{template: index}} and {split_file} a list')
    by_index = sorted((int(v), k) for k, v in label_map.items())
    if [i for i, _ in by_index] != list(range(len(by_index))):
        raise DatasetFormatError(f'{labels_file}: indices must be 0..{len(by_index) - 1}')
    classes = [name for _, name in by_index]
    lookup = {_sth_label_key(name): i for i, name in enumerate(classes)}
    items = []
    for n, entry in enumerate(entries):
        if not isinstance(entry, dict) or 'id' not in entry or 'template' not in entry:
            raise DatasetFormatError(
                f'{split_file}: entry {n} needs "id" and "template" (a test split without '
                'labels cannot be read as a labelled set)')
        label = lookup.get(_sth_label_key(str(entry['template'])))
        if label is None:
            raise DatasetFormatError(
                f'{split_file}: entry {n} template {entry["template"]!r} not in {labels_file}')
        candidates = [videos_root / f'{entry["id"]}{ext}' for ext in extensions]
        path = next((c for c in candidates if c.exists()), candidates[0])
        items.append(VideoItem(path, label))
    return items, classes


# ---------------------------------------------------------------------------------------------
# Generic list files


def read_list_file(path: PathLike, root: PathLike | None = None, *,
                   classes: Sequence[str] | None = None,
                   frame_template: str | None = None) -> tuple[list[VideoItem], list[str]]:
    """A generic list: ``<video> <label>`` or ``<frame folder> <num_frames> <label>`` per line.

    Paths are relative to ``root`` (default: the list file's folder) and may contain spaces.
    Labels are 0-based class indices; class names are ``classes`` or ``class_<i>``.
    """
    list_file = Path(path)
    base = Path(root) if root is not None else list_file.parent
    items = []
    for n, line in _read_lines(list_file):
        parts = line.rsplit(maxsplit=2)
        if len(parts) == 3 and parts[1].isdigit() and parts[2].lstrip('-').isdigit():
            items.append(VideoItem(base / parts[0], int(parts[2]), int(parts[1]), True,
                                   frame_template))
            continue
        parts = line.rsplit(maxsplit=1)
        if len(parts) == 2 and parts[1].lstrip('-').isdigit():
            items.append(VideoItem(base / parts[0], int(parts[1])))
            continue
        raise DatasetFormatError(
            f'{list_file}:{n}: expected "<video> <label>" or "<folder> <num_frames> <label>", '
            f'got {line!r}')
    for item in items:
        if item.label < 0 or (classes is not None and item.label >= len(classes)):
            raise DatasetFormatError(f'{list_file}: label {item.label} out of range')
    if classes is not None:
        names = list(classes)
    else:
        names = [f'class_{i}' for i in range(max((it.label for it in items), default=-1) + 1)]
    return items, names


# ---------------------------------------------------------------------------------------------
# Torch data sets


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
    from tqdm import tqdm

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
        (:class:`~action_recognition.data.preprocess.Normalize`).

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
    :func:`~action_recognition.data.synth.clip_rng` ``(seed + 7919 * epoch, i)``; call
    :meth:`set_epoch` for fresh clips each epoch (training), keep epoch 0 for a fixed
    validation set. ``transform(clip, label, rng)`` is applied when given (its randomness is
    seeded from the same index).

    Returns:
        ``(clip, label)``: ``uint8`` tensor ``[T, 3, size, size]`` and the class index into
        :data:`~action_recognition.data.synth.CLASSES`.
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
        from action_recognition.data.synth import CLASSES
        from action_recognition.data.synth import clip_rng
        from action_recognition.data.synth import generate_clip

        if not -self.num_clips <= index < self.num_clips:
            raise IndexError(f'index {index} out of range for {self.num_clips} clips')
        index %= self.num_clips
        label = index % len(CLASSES)
        rng = clip_rng(self.seed + 7919 * self.epoch, index)
        clip = generate_clip(CLASSES[label], rng=rng, frames=self.frames, size=self.size)
        if self.transform is not None:
            clip, label = self.transform(clip, label, rng)
        return _to_tensor(clip), int(label)

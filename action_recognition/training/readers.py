"""Data-set readers: the files people have on disk as ``(items, classes)``.

A reader returns a list of :class:`VideoItem` and the class names in label order. Supported
layouts:

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

A malformed annotation file is a :class:`DatasetFormatError` naming the file and line; a video
that is missing or unreadable is not checked here but when it is read
(:mod:`action_recognition.training.datasets`).
"""

from __future__ import annotations

from collections.abc import Sequence
import csv
from dataclasses import dataclass
import json
import os
from pathlib import Path

__all__ = [
    'VideoItem', 'DatasetFormatError', 'PathLike', 'read_ucf101', 'read_hmdb51',
    'read_kinetics', 'read_sthv1', 'read_sthv2', 'read_list_file',
]

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

"""Writing the synthetic temporal-actions benchmark to disk in the UCF-101 layout:
:func:`write_dataset`.

Each clip (``uint8`` RGB ``[T, size, size, 3]`` from :func:`~action_recognition.data.synth_clips.
generate_clip`) becomes one AVI file (:func:`~action_recognition.data.video.write_video`,
lossless FFV1 or MJPEG) in a class folder; ``ucfTrainTestlist`` holds the class index and the
train/test lists of each split, so the data set reads like UCF-101.
"""

from __future__ import annotations

import logging
from pathlib import Path

from tqdm import tqdm

from action_recognition.data.synth_clips import CLASSES
from action_recognition.data.synth_clips import clip_rng
from action_recognition.data.synth_clips import generate_clip
from action_recognition.data.video import CODECS
from action_recognition.data.video import write_video

__all__ = ['video_name', 'write_dataset']

_LOG = logging.getLogger(__name__)


def video_name(label: str, group: int, clip: int) -> str:
    """UCF-101 style file name ``v_<Class>_g<GG>_c<CC>.avi``."""
    return f'v_{label}_g{group:02d}_c{clip:02d}.avi'


def _groups(per_class: int) -> list[tuple[int, int]]:
    """(group, clip) numbers (1-based) for ``per_class`` clips: up to 25 groups like UCF-101."""
    num_groups = min(25, per_class)
    out = []
    for i in range(per_class):
        out.append((i % num_groups + 1, i // num_groups + 1))
    return sorted(out)


def _test_groups(num_groups: int, split: int) -> set[int]:
    """Held-out groups of split ``split`` (1-based): a block of ~28% of the groups (7 of 25)."""
    block = max(1, round(num_groups * 7 / 25))
    start = ((split - 1) * block) % num_groups
    return {(start + k) % num_groups + 1 for k in range(block)}


def write_dataset(out_dir: str | Path, *, per_class: int = 20, seed: int = 0, frames: int = 16,
                  size: int = 112, splits: int = 1, fps: float = 25.0, codec: str = 'ffv1',
                  progress: bool = True) -> Path:
    """Write the benchmark in the UCF-101 layout and return ``out_dir``.

    Layout: ``out/videos/<class>/v_<class>_g<GG>_c<CC>.avi`` (lossless FFV1, or MJPEG, see
    :func:`write_video`),
    ``out/ucfTrainTestlist/classInd.txt`` (``1 static`` ...), ``trainlist0N.txt``
    (``<class>/<file> <index>``) and ``testlist0N.txt`` (``<class>/<file>``) for ``N`` in
    ``1..splits``. Each split holds out a different block of groups, so no group is in both the
    train and the test list of a split. Clip ``(class c, number i)`` uses
    :func:`clip_rng` ``(seed, c * 1_000_000 + i)``: the same seed gives identical frames.
    """
    if per_class < 2:
        raise ValueError(f'per_class must be >= 2 (a train and a test group), got {per_class}')
    if codec not in CODECS:
        raise ValueError(f'unknown codec {codec!r}; expected one of {CODECS}')
    if not 1 <= splits <= 3:
        raise ValueError(f'splits must be 1, 2 or 3, got {splits}')
    out = Path(out_dir)
    videos = out / 'videos'
    lists = out / 'ucfTrainTestlist'
    lists.mkdir(parents=True, exist_ok=True)
    numbers = _groups(per_class)
    num_groups = min(25, per_class)
    entries: list[tuple[int, int, str]] = []  # (class index, group, relative path)
    bar = tqdm(total=per_class * len(CLASSES), desc='synth', unit='clip', disable=not progress)
    for c, label in enumerate(CLASSES):
        (videos / label).mkdir(parents=True, exist_ok=True)
        for i, (group, number) in enumerate(numbers):
            clip = generate_clip(label, rng=clip_rng(seed, c * 1_000_000 + i), frames=frames,
                                 size=size)
            name = video_name(label, group, number)
            write_video(videos / label / name, clip, fps=fps, codec=codec)
            entries.append((c, group, f'{label}/{name}'))
            bar.update(1)
    bar.close()
    (lists / 'classInd.txt').write_text(
        ''.join(f'{c + 1} {label}\n' for c, label in enumerate(CLASSES)))
    for split in range(1, splits + 1):
        held_out = _test_groups(num_groups, split)
        train = [f'{path} {c + 1}\n' for c, g, path in entries if g not in held_out]
        test = [f'{path}\n' for _, g, path in entries if g in held_out]
        (lists / f'trainlist{split:02d}.txt').write_text(''.join(train))
        (lists / f'testlist{split:02d}.txt').write_text(''.join(test))
    _LOG.info('wrote %d clips (%d classes) to %s', len(entries), len(CLASSES), out)
    return out

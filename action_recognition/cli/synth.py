"""``action-recognition synth``: write the synthetic temporal-actions data set.

Example::
    action-recognition synth --out data/synth --per-class 50 --seed 0 --frames 16 --size 112

writes ``data/synth/videos/<class>/v_<class>_g<GG>_c<CC>.avi`` and
``data/synth/ucfTrainTestlist/{classInd,trainlist01,testlist01}.txt`` (UCF-101 layout), readable
with :func:`action_recognition.training.readers.read_ucf101`.

The data set is written into a temporary directory beside ``--out`` and renamed into place when
it is complete, so ``--out`` never holds half a data set. An existing ``--out`` is refused
unless it is empty, or ``--force`` is given and it is a data set this command wrote (a folder
holding only ``videos/`` and ``ucfTrainTestlist/``); any other folder is never replaced.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
import sys
import time

from action_recognition.data.synth_clips import CLASSES
from action_recognition.data.synth_files import write_dataset
from action_recognition.files import atomic_dir

_LOG = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--out', type=Path, required=True, help='output folder')
    parser.add_argument('--per-class', type=int, default=20,
                        help='clips per class (default 20; groups of up to 25 like UCF-101)')
    parser.add_argument('--seed', type=int, default=0, help='random seed (default 0)')
    parser.add_argument('--frames', type=int, default=16, help='frames per clip (default 16)')
    parser.add_argument('--size', type=int, default=112, help='frame side in pixels (default 112)')
    parser.add_argument('--splits', type=int, default=1, choices=(1, 2, 3),
                        help='number of train/test splits to write (default 1)')
    parser.add_argument('--fps', type=float, default=25.0, help='frame rate of the files')
    parser.add_argument('--codec', choices=('ffv1', 'mjpeg'), default='ffv1',
                        help='ffv1: lossless (default); mjpeg: about 4x smaller files')
    parser.add_argument('--no-progress', action='store_true', help='no progress bar')
    parser.add_argument('--force', action='store_true',
                        help='replace an existing data set written by this command at --out')


_DATASET_ENTRIES = {'videos', 'ucfTrainTestlist'}


def _refusal(out: Path, *, force: bool) -> str:
    """Why ``out`` may not be written (``''`` when it may)."""
    if not out.exists() and not out.is_symlink():
        return ''
    if not out.is_dir() or out.is_symlink():
        return f'--out {out} exists and is not a folder; choose another --out'
    entries = {child.name for child in out.iterdir()}
    if not entries:
        return ''
    if not force:
        return f'--out {out} exists already; pass --force to replace the data set in it'
    if not entries <= _DATASET_ENTRIES:
        return (f'--out {out} holds {sorted(entries - _DATASET_ENTRIES)[:5]}, not only a data '
                'set written by this command; refusing to replace it even with --force')
    return ''


def run(args: argparse.Namespace) -> int:
    problems = []
    if args.per_class < 2:
        problems.append(f'--per-class must be >= 2, got {args.per_class}')
    if args.frames < 2:
        problems.append(f'--frames must be >= 2, got {args.frames}')
    if args.size < 16:
        problems.append(f'--size must be >= 16, got {args.size}')
    if problems:
        for problem in problems:
            print(f'error: {problem}', file=sys.stderr)
        return 2
    out = Path(args.out)
    problem = _refusal(out, force=args.force)
    if problem:
        print(f'error: {problem}', file=sys.stderr)
        return 1
    if out.is_dir() and not any(out.iterdir()):
        out.rmdir()  # an empty folder made beforehand: nothing to keep
    start = time.perf_counter()
    try:
        with atomic_dir(out, force=args.force) as temporary:
            write_dataset(temporary, per_class=args.per_class, seed=args.seed,
                          frames=args.frames, size=args.size, splits=args.splits, fps=args.fps,
                          codec=args.codec, progress=not args.no_progress)
    except FileExistsError as error:
        print(f'error: {error}', file=sys.stderr)
        return 1
    elapsed = time.perf_counter() - start
    total = args.per_class * len(CLASSES)
    print(f'wrote {total} clips ({len(CLASSES)} classes x {args.per_class}, {args.frames} frames '
          f'of {args.size}x{args.size}) to {out} in {elapsed:.1f} s')
    return 0

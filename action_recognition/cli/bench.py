"""``action-recognition bench``: benchmark models and backends (see
:mod:`action_recognition.bench.inference`), or with ``--node-core`` the node core's per-frame
CPU cost (:mod:`action_recognition.node.bench`)."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from action_recognition.bench.inference import BACKENDS
from action_recognition.bench.inference import DEFAULT_BACKENDS
from action_recognition.bench.inference import DEFAULT_MODELS
from action_recognition.bench.inference import run_bench
from action_recognition.bench.report import format_table
from action_recognition.bench.report import plot
from action_recognition.node.bench import measure_node_core
from action_recognition.runtime.protocol import ModelLoadError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--models', nargs='+', default=list(DEFAULT_MODELS),
                        help='registry names')
    parser.add_argument('--backends', nargs='+', default=list(DEFAULT_BACKENDS),
                        choices=BACKENDS, help='backends to compare')
    parser.add_argument('--frames', type=int, nargs='+', default=[16], help='clip lengths T')
    parser.add_argument('--size', type=int, nargs='+', default=[224], help='input sizes S')
    parser.add_argument('--threads', type=int, nargs='+',
                        default=sorted({os.cpu_count() or 1, 1}, reverse=True),
                        help='thread counts (default: all cores, then 1)')
    parser.add_argument('--repeats', type=int, default=5, help='timed runs per combination')
    parser.add_argument('--warmup', type=int, default=2, help='untimed runs first')
    parser.add_argument('--hop', type=int, default=4, help='new window every HOP frames')
    parser.add_argument('--stream-windows', type=int, default=3,
                        help='windows timed in streaming mode (0: skip)')
    parser.add_argument('--num-classes', type=int, default=11, help='outputs of the models')
    parser.add_argument('--calibration-clips', type=int, default=8,
                        help='synthetic calibration clips for int8')
    parser.add_argument('--eval-clips', type=int, default=11,
                        help='synthetic clips for the reduced-precision comparison')
    parser.add_argument('--checkpoint', action='append', default=[], metavar='NAME=PATH',
                        help='trained weights for a model (accuracy on synthetic clips)')
    parser.add_argument('--json', type=Path, help='write the results as JSON')
    parser.add_argument('--plot', type=Path, help='write a PNG chart')
    parser.add_argument('--no-progress', action='store_true', help='no progress bar')
    parser.add_argument('--node-core', action='store_true',
                        help="measure the node core's CPU time per frame instead (hop 1, the "
                             'shipped model or the first --checkpoint; --size sets the frames)')


def _node_core(args: argparse.Namespace, checkpoints: dict[str, str]) -> int:
    model = next(iter(checkpoints.values()), '')
    print('| frames | hop | frames measured | CPU us/frame | without inference | inference |')
    print('|---|---|---|---|---|---|')
    for size in args.size:
        cost = measure_node_core(model_path=model, size=size, hop=1,
                                 repeats=max(args.repeats, 1))
        print(f'| {cost.size}x{cost.size} | {cost.hop} | {cost.frames} | {cost.total_us:.0f} | '
              f'{cost.overhead_us:.0f} | {cost.inference_us:.0f} |')
    return 0


def run(args: argparse.Namespace) -> int:
    checkpoints = {}
    for item in args.checkpoint:
        name, sep, path = item.partition('=')
        if not sep:
            print(f'error: --checkpoint expects NAME=PATH, got {item!r}')
            return 2
        checkpoints[name] = path
    if args.node_core:
        return _node_core(args, checkpoints)
    try:
        result = run_bench(
            models=args.models, backends=args.backends, frames=args.frames, sizes=args.size,
            threads=args.threads, repeats=args.repeats, warmup=args.warmup, hop=args.hop,
            stream_windows=args.stream_windows, num_classes=args.num_classes,
            calibration_clips=args.calibration_clips, eval_clips=args.eval_clips,
            checkpoints=checkpoints, progress=not args.no_progress)
    except (KeyError, ValueError, ModelLoadError) as error:
        print(f'error: {error.args[0] if error.args else error}')
        return 1
    print(format_table(result))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result.to_dict(), indent=2))
        print(f'wrote {args.json}')
    if args.plot is not None:
        plot(result, args.plot)
        print(f'wrote {args.plot}')
    return 0

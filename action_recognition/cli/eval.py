"""``action-recognition eval``: evaluate a checkpoint on a held-out split.

Usage::

    action-recognition eval --checkpoint runs/x/best.pt [--config FILE] [key=value ...]

Prints top-1, top-5 and per-class accuracy and writes ``eval_metrics.json`` and
``confusion_matrix.png``; see :func:`action_recognition.training.evaluate.evaluate_checkpoint`.
"""

from __future__ import annotations

import argparse
import logging
import sys

from action_recognition.serialization import CheckpointError
from action_recognition.training.evaluate import evaluate_checkpoint
from action_recognition.training.evaluate import format_metrics


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--checkpoint', required=True, help='checkpoint file (.pt) to evaluate')
    parser.add_argument('--config', default=None,
                        help="YAML config for the data set (default: the checkpoint's config)")
    parser.add_argument('--output-dir', default=None,
                        help='where to write eval_metrics.json and confusion_matrix.png '
                             '(default: <checkpoint dir>/eval)')
    parser.add_argument('--batch-size', type=int, default=None,
                        help="clips per batch (default: the config's batch_size)")
    parser.add_argument('--device', default=None, help='cpu, cuda, cuda:N (default: config)')
    parser.add_argument('overrides', nargs='*', metavar='key=value',
                        help='config overrides, e.g. dataset.num_clips=2')


def run(args: argparse.Namespace) -> int:
    try:
        result = evaluate_checkpoint(
            args.checkpoint, config_path=args.config, overrides=args.overrides,
            output_dir=args.output_dir, batch_size=args.batch_size, device=args.device)
    except (ValueError, FileNotFoundError, CheckpointError) as error:
        print(f'error: {error}', file=sys.stderr)
        return 2
    print(format_metrics(result.metrics, result.spec.label_names))
    print(f'wrote {result.metrics_path} and {result.confusion_path}')
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog='action-recognition eval', description=__doc__)
    add_arguments(parser)
    logging.basicConfig(level=logging.INFO, format='%(levelname)s %(name)s: %(message)s')
    return run(parser.parse_args(argv))


if __name__ == '__main__':
    sys.exit(main())

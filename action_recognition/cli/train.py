"""``action-recognition train``: train a model from a YAML config.

Usage::

    action-recognition train --config config/training/synthetic_ci.yaml [key=value ...] [--resume]
    torchrun --nproc_per_node=4 -m action_recognition.cli.train --config FILE [key=value ...]

See :mod:`action_recognition.training.train` for what a run does.
"""

from __future__ import annotations

import argparse
import logging
import sys

from action_recognition.serialization import CheckpointError
from action_recognition.training.config import load_config
from action_recognition.training.distributed import env_rank
from action_recognition.training.distributed import shutdown_distributed
from action_recognition.training.train import train


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--config', default=None,
                        help='YAML config (see config/training/); default: built-in defaults')
    parser.add_argument('--resume', nargs='?', const='auto', default=None, metavar='CHECKPOINT',
                        help='continue a killed run from <output_dir>/last.pt (or CHECKPOINT)')
    parser.add_argument('--force', action='store_true',
                        help="start afresh in an output_dir that holds another run's files "
                             '(last.pt, best.pt, model.pt, metrics.json), replacing them')
    parser.add_argument('overrides', nargs='*', metavar='key=value',
                        help='config overrides, e.g. optim.lr=0.01 epochs=5 model=eco_lite_add')


def run(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.config, args.overrides)
        result = train(config, resume=args.resume, force=args.force)
    except (ValueError, FileNotFoundError, FileExistsError, KeyError,
            CheckpointError) as error:
        message = error.args[0] if isinstance(error, KeyError) and error.args else error
        print(f'error: {message}', file=sys.stderr)
        return 2
    finally:
        shutdown_distributed()
    if env_rank() == 0:
        print(f'best held-out top-1 {result["best_top1"]:.2f}%; checkpoint '
              f'{result["checkpoint"]}')
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog='action-recognition train',
                                     description='Train a model from a YAML config.')
    add_arguments(parser)
    logging.basicConfig(level=logging.INFO, format='%(levelname)s %(name)s: %(message)s')
    return run(parser.parse_args(argv))


if __name__ == '__main__':
    sys.exit(main())

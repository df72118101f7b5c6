"""``action-recognition models``: the model zoo with parameters and GMAC next to the papers'."""

from __future__ import annotations

import argparse
from dataclasses import asdict
import json
import sys

from action_recognition.models import list_models
from action_recognition.models.table import format_table
from action_recognition.models.table import model_rows


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('names', nargs='*', help='models to show (default: all)')
    parser.add_argument('--json', action='store_true', help='print JSON instead of a table')
    parser.add_argument('--no-ablations', action='store_true',
                        help='leave out the CT-Net ablation rows')


def run(args: argparse.Namespace) -> int:
    known = list_models()
    unknown = [name for name in args.names if name not in known]
    if unknown:
        print(f'unknown model(s): {", ".join(unknown)}; known: {", ".join(known)}',
              file=sys.stderr)
        return 2
    rows = model_rows(args.names or None, ablations=not args.no_ablations)
    if args.json:
        print(json.dumps([asdict(row) for row in rows], indent=2))
    else:
        print('Parameters: whole model. GMAC: multiply-accumulates (the papers\' "GFLOPs") over '
              'the scope, batch 1.')
        print(format_table(rows))
    return 0

"""``action-recognition``: the package's one command-line interface (the top layer).

Each sub-command lives in its own module exposing ``add_arguments(parser)`` and
``run(args) -> int``; modules are imported only when their command runs, so ``--help`` is fast
and a command's heavy dependencies load only when it is used.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

# name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    'models': ('action_recognition.cli.models', 'list the model zoo with parameters and GMAC'),
    'synth': ('action_recognition.cli.synth',
              'write the synthetic temporal-actions data set (UCF-101 layout)'),
    'train': ('action_recognition.cli.train', 'train a model from a YAML config'),
    'eval': ('action_recognition.cli.eval', 'evaluate a checkpoint'),
    'export': ('action_recognition.cli.export', 'export a model to a checked ONNX file'),
    'run': ('action_recognition.cli.run',
            'recognise actions in a video, camera or rosbag2 recording'),
    'bench': ('action_recognition.cli.bench', 'benchmark models and backends'),
    'convert': ('action_recognition.cli.convert',
                'convert a 3D CNN into an exact 4D-only model'),
    'demo': ('action_recognition.cli.demo',
             'run the shipped default model on fresh synthetic clips'),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog='action-recognition',
        description='Human action recognition with 4D-only video models.')
    parser.add_argument('-v', '--verbose', action='store_true', help='debug logging')
    sub = parser.add_subparsers(dest='command', metavar='COMMAND')
    for name, (_module, help_text) in COMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    # Parse the global options and the command name only; the command parses the rest.
    args, rest = parser.parse_known_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format='%(levelname)s %(name)s: %(message)s')
    if args.command is None:
        parser.print_help()
        return 2
    module_name, help_text = COMMANDS[args.command]
    module = importlib.import_module(module_name)
    command_parser = argparse.ArgumentParser(
        prog=f'action-recognition {args.command}', description=help_text)
    module.add_arguments(command_parser)
    command_args = command_parser.parse_args(rest)
    try:
        return int(module.run(command_args))
    except KeyboardInterrupt:
        print('interrupted', file=sys.stderr)
        return 130


if __name__ == '__main__':
    sys.exit(main())

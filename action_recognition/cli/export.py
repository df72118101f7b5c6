"""``action-recognition export``: one checked, self-contained ONNX file per model.

See :mod:`action_recognition.deploy.export` for the file and its checks.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from action_recognition.deploy.export import DEFAULT_OPSET
from action_recognition.deploy.export import export_onnx
from action_recognition.deploy.export import ExportError
from action_recognition.files import check_output
from action_recognition.models import create_model
from action_recognition.models import model_info
from action_recognition.runtime.backends import load_checkpoint
from action_recognition.runtime.backends import ModelLoadError
from action_recognition.spec import ModelSpec


def _default_resize(size: int) -> int:
    return round(size * 256 / 224)


def build_spec(args: argparse.Namespace) -> ModelSpec:
    """The spec of a model built with random weights from the command line."""
    missing = [name for name in ('num_classes', 'frames', 'size')
               if getattr(args, name) is None]
    if missing:
        raise ExportError('without --checkpoint, ' + ', '.join(
            '--' + m.replace('_', '-') for m in missing) + ' must be given')
    labels: tuple[str, ...] = tuple(args.labels) if args.labels else ()
    return ModelSpec(model=args.model, num_classes=args.num_classes, num_frames=args.frames,
                     labels=labels, frame_stride=args.frame_stride,
                     input_size=(args.size, args.size), resize_short=_default_resize(args.size))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--model', required=True, help='registry name (action-recognition '
                        'models lists them)')
    parser.add_argument('--checkpoint', type=Path, help='training checkpoint; without it the '
                        'weights are random (for deployment tests)')
    parser.add_argument('--num-classes', type=int, help='outputs (random weights)')
    parser.add_argument('--frames', type=int, help='clip length T (random weights)')
    parser.add_argument('--size', type=int, help='input height = width (random weights)')
    parser.add_argument('--frame-stride', type=int, default=1,
                        help='frame stride of dense sampling (random weights)')
    parser.add_argument('--labels', nargs='+', help='label names (random weights)')
    parser.add_argument('--output', type=Path, required=True, help='the .onnx file to write')
    parser.add_argument('--force', action='store_true',
                        help='replace an existing --output (refused otherwise)')
    precision = parser.add_mutually_exclusive_group()
    precision.add_argument('--fp16', action='store_true', help='float16 weights/activations')
    precision.add_argument('--int8', action='store_true', help='static int8 QDQ quantisation')
    parser.add_argument('--calibration', type=Path,
                        help='directory of videos or .npy clips for int8 calibration '
                             '(default: synthetic clips)')
    parser.add_argument('--calibration-clips', type=int, default=32,
                        help='number of calibration clips')
    parser.add_argument('--eval-clips', type=int, default=44,
                        help='synthetic clips on which fp16/int8 are compared with fp32')
    parser.add_argument('--allow-5d', action='store_true',
                        help='export a model that is not 4D-only (skips the refusal)')
    parser.add_argument('--opset', type=int, default=DEFAULT_OPSET, help='ONNX opset')
    parser.add_argument('--seed', type=int, default=0, help='seed of the random weights')


def _check_consistent(args: argparse.Namespace, spec: ModelSpec) -> None:
    given = {'--model': (args.model, spec.model),
             '--num-classes': (args.num_classes, spec.num_classes),
             '--frames': (args.frames, spec.num_frames),
             '--size': (args.size, spec.input_size[0] if spec.input_size[0] ==
                        spec.input_size[1] else None)}
    wrong = [f'{flag} {value} (checkpoint: {actual})' for flag, (value, actual) in given.items()
             if value is not None and value != actual]
    if wrong:
        raise ExportError(f'{args.checkpoint} disagrees with ' + ', '.join(wrong))


def run(args: argparse.Namespace) -> int:
    if args.calibration is not None and not args.int8:
        print('error: --calibration is only used with --int8')
        return 2
    try:
        check_output(args.output, force=args.force, inputs=[args.checkpoint, args.calibration],
                     what='--output')
        if not args.allow_5d and not model_info(args.model).four_d_only:
            raise ExportError(f'{args.model} is a 5D model (not 4D-only); refusing to export '
                              f'it without --allow-5d')
        if args.checkpoint is not None:
            model, spec = load_checkpoint(args.checkpoint)
            _check_consistent(args, spec)
        else:
            spec = build_spec(args)
            torch.manual_seed(args.seed)
            model = create_model(spec.model, num_classes=spec.num_classes,
                                 num_frames=spec.num_frames)
        report = export_onnx(model, spec, args.output, opset=args.opset,
                             allow_5d=args.allow_5d, fp16=args.fp16, int8=args.int8,
                             calibration=args.calibration,
                             calibration_clips=args.calibration_clips,
                             eval_clips=args.eval_clips, seed=args.seed, force=args.force)
    except (ExportError, ModelLoadError, KeyError, ValueError, FileExistsError) as error:
        message = error.args[0] if isinstance(error, KeyError) and error.args else error
        print(f'error: {message}')
        return 1
    print(report.summary())
    return 0

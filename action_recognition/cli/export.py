"""``action-recognition export``: a model in the form a runtime or an accelerator takes.

``--target onnx`` (default): one checked, self-contained ONNX file
(:mod:`action_recognition.deploy.export`); ``--target tflite``: TFLite for Arm Ethos-U NPUs, int8
and compiled with Vela (:mod:`action_recognition.deploy.targets.tflite`; run it from
``.venv-edge``); ``--target openvino``: an OpenVINO IR, fp32 or NNCF int8
(:mod:`action_recognition.deploy.targets.openvino`); ``--target rknn``: Rockchip RKNN (in its
own environment). Each target writes the spec beside or inside the file and prints a report:
placement on the accelerator, parity with PyTorch on synthetic clips, file size.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from action_recognition.data.clips import synthetic_clips
from action_recognition.deploy.calibration import calibration_clips_from
from action_recognition.deploy.export import export_onnx
from action_recognition.deploy.export import ExportReport
from action_recognition.deploy.onnx_export import DEFAULT_OPSET
from action_recognition.deploy.onnx_export import ExportError
from action_recognition.deploy.targets import TARGETS
from action_recognition.deploy.targets.openvino import export_openvino
from action_recognition.deploy.targets.openvino import OPENVINO_DEVICE
from action_recognition.deploy.targets.report import TargetReport
from action_recognition.deploy.targets.rockchip import export_rknn
from action_recognition.deploy.targets.rockchip import RKNN_PLATFORM
from action_recognition.deploy.targets.rockchip import RknnToolchainError
from action_recognition.deploy.targets.tflite import EdgeToolchainError
from action_recognition.deploy.targets.tflite import ETHOS_U_CONFIG
from action_recognition.deploy.targets.tflite import export_tflite
from action_recognition.files import atomic_write_bytes
from action_recognition.files import check_output
from action_recognition.models import create_model
from action_recognition.models import model_info
from action_recognition.models.registry import parse_builder_options
from action_recognition.runtime.protocol import ModelLoadError
from action_recognition.runtime.torch_backend import load_checkpoint_model
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
                     input_size=(args.size, args.size), resize_short=_default_resize(args.size),
                     options=parse_builder_options(args.option, '--option'))


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
    parser.add_argument('--option', action='append', default=[], metavar='KEY=VALUE',
                        help='builder option (random weights; repeatable; the value is read as '
                        'YAML), e.g. --option fused_stem=true for X3D; kept in the spec')
    parser.add_argument('--target', choices=TARGETS, default='onnx',
                        help='the form to write: onnx (default), openvino (IR .xml/.bin), '
                             'tflite (Arm Ethos-U: use --int8; needs .venv-edge), rknn')
    parser.add_argument('--output', type=Path, required=True,
                        help='the file to write (.onnx, .xml, .tflite or .rknn)')
    parser.add_argument('--accelerator', default=None,
                        help='tflite: the Ethos-U configuration Vela compiles for (default '
                             f'{ETHOS_U_CONFIG}); rknn: the target platform (default rk3588); '
                             f'openvino: the device placement is queried on (default '
                             f'{OPENVINO_DEVICE})')
    parser.add_argument('--report', type=Path, default=None,
                        help='also write the report as JSON here')
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


def _export_target(args: argparse.Namespace, model: torch.nn.Module,
                   spec: ModelSpec) -> TargetReport:
    """``--target tflite|rknn|openvino``: int8 calibrated on ``--calibration`` or synthetic
    clips, compared with PyTorch on synthetic clips of another seed."""
    calibration = calibration_clips_from(args.calibration, spec, args.calibration_clips,
                                         seed=args.seed) if args.int8 else None
    eval_clips, eval_labels = synthetic_clips(spec, args.eval_clips, seed=args.seed + 1000) \
        if args.eval_clips else (None, None)
    if args.target == 'tflite':
        return export_tflite(model, spec, args.output, int8=args.int8, calibration=calibration,
                             eval_clips=eval_clips, eval_labels=eval_labels,
                             accelerator=args.accelerator or ETHOS_U_CONFIG, force=args.force)
    if args.target == 'rknn':
        return export_rknn(model, spec, args.output, platform=args.accelerator or RKNN_PLATFORM,
                           int8=args.int8, calibration=calibration, eval_clips=eval_clips,
                           eval_labels=eval_labels, force=args.force)
    if args.target == 'openvino':
        return export_openvino(model, spec, args.output, int8=args.int8, calibration=calibration,
                               eval_clips=eval_clips, eval_labels=eval_labels,
                               device=args.accelerator or OPENVINO_DEVICE, force=args.force)
    raise ValueError(f'unknown target {args.target!r}')


def run(args: argparse.Namespace) -> int:
    if args.calibration is not None and not args.int8:
        print('error: --calibration is only used with --int8')
        return 2
    if args.target != 'onnx' and args.fp16:
        print(f'error: --fp16 is for --target onnx; {args.target} takes fp32 or --int8')
        return 2
    try:
        check_output(args.output, force=args.force, inputs=[args.checkpoint, args.calibration],
                     what='--output')
        if not args.allow_5d and not model_info(args.model).four_d_only:
            raise ExportError(f'{args.model} is a 5D model (not 4D-only); refusing to export '
                              f'it without --allow-5d')
        if args.checkpoint is not None:
            if args.option:
                raise ExportError('--option is for random weights; a checkpoint carries its '
                                  "model's options")
            model, spec = load_checkpoint_model(args.checkpoint)
            _check_consistent(args, spec)
        else:
            spec = build_spec(args)
            torch.manual_seed(args.seed)
            model = create_model(spec.model, num_classes=spec.num_classes,
                                 num_frames=spec.num_frames, **spec.options)
        report: ExportReport | TargetReport
        if args.target == 'onnx':
            report = export_onnx(model, spec, args.output, opset=args.opset,
                                 allow_5d=args.allow_5d, fp16=args.fp16, int8=args.int8,
                                 calibration=args.calibration,
                                 calibration_clips=args.calibration_clips,
                                 eval_clips=args.eval_clips, seed=args.seed, force=args.force)
        else:
            report = _export_target(args, model, spec)
    except (ExportError, ModelLoadError, KeyError, ValueError, FileExistsError,
            EdgeToolchainError, RknnToolchainError, RuntimeError, ImportError) as error:
        message = error.args[0] if isinstance(error, KeyError) and error.args else error
        print(f'error: {message}')
        return 1
    print(report.summary())
    if args.report is not None and isinstance(report, TargetReport):
        atomic_write_bytes(args.report, report.to_json().encode('utf-8'), force=True)
    return 0

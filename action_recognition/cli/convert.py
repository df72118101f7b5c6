"""``action-recognition convert``: turn a 3D CNN into an exact 4D-only model.

Examples::

    # A registered 5D model (its input is frames [B*T, 3, H, W]) to a checked ONNX file:
    action-recognition convert --model eco_lite_conv3d_5d --frames 16 --size 224 \\
        --output eco_4d.onnx
    action-recognition convert --model eco_lite_conv3d_5d --option net2d=small \\
        --option width_mult=0.5 --frames 8 --size 112 --output eco_small_4d.pt
    # Your own model, saved whole with torch.save(model), taking clips [B, 3, T, H, W]
    # (loading it runs Python code from the file: only for files you trust, see below):
    action-recognition convert --module-file r3d.pt --trust-module-file --frames 16 \
        --size 112 --output r3d_4d.onnx

The converted model is exported to ONNX with the rank-4 proof of ``action-recognition export``
or saved whole (``torch.save``). The largest difference from the original on a random clip is
printed; a model that cannot be converted exactly is refused with the reason. The output is
written through a unique temporary name and renamed into place; an existing output is refused
unless ``--force``.

**--module-file runs code.** A whole ``nn.Module`` saved with ``torch.save(model)`` is a Python
pickle: loading it (``torch.load(weights_only=False)``) imports the module's classes and runs
whatever the file says, ``os.system`` included. Nothing else in this package loads a file that
way (checkpoints are read with ``weights_only=True``), and this command does it only when
``--trust-module-file`` is given as well: pass it only for a file you wrote or whose source you
trust as you trust code you run. Without it ``--module-file`` is refused and the file is not
opened. The same holds for a ``.pt`` output of this command: it is a whole pickled module, and
loading it runs code from it.
"""

from __future__ import annotations

import argparse
from pathlib import Path
import sys
from typing import Any

import torch
from torch import nn

# The converter package as a module (not its names): tests replace its export_onnx_4d.
from action_recognition.deploy import convert as converter
from action_recognition.deploy.convert import ConversionError
from action_recognition.deploy.convert import fold_input
from action_recognition.deploy.convert import max_abs_diff
from action_recognition.deploy.convert import to_4d
from action_recognition.files import atomic_path
from action_recognition.files import check_output
from action_recognition.models import create_model
from action_recognition.models import model_info
from action_recognition.models.registry import parse_builder_options

__all__ = ['add_arguments', 'run', 'load_module_file', 'UntrustedModuleFileError']


class UntrustedModuleFileError(ValueError):
    """``--module-file`` without ``--trust-module-file``: loading it would run code from it."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument('--model', metavar='NAME',
                        help='registered model name (see `action-recognition models`); it takes '
                             'frames [B*T, 3, H, W]')
    source.add_argument('--module-file', dest='module_file', metavar='FILE',
                        help='a whole nn.Module saved with torch.save(model). LOADING IT RUNS '
                             'PYTHON CODE FROM THE FILE (it is a pickle, read with '
                             'torch.load(weights_only=False)); refused unless '
                             '--trust-module-file is given too. A TorchScript archive cannot '
                             'be traced and is refused')
    parser.add_argument('--trust-module-file', action='store_true',
                        help='acknowledge that loading --module-file runs code from it, and '
                             'load it anyway (only for a file you wrote or fully trust)')
    parser.add_argument('--output', required=True, metavar='FILE',
                        help='FILE.onnx, or FILE.pt (torch.save of the whole converted module; '
                             'loading it runs code from it, like --module-file)')
    parser.add_argument('--force', action='store_true',
                        help='replace an existing --output')
    parser.add_argument('--frames', type=int, default=None, metavar='T',
                        help='clip length T (default: the registered setting, else 8)')
    parser.add_argument('--size', type=int, default=None, metavar='S',
                        help='frame height and width (default: the registered setting, else 112)')
    parser.add_argument('--batch', type=int, default=1, help='clips in the example input')
    parser.add_argument('--channels', type=int, default=3, help='input channels')
    parser.add_argument('--num-classes', type=int, default=None,
                        help='outputs of a registered model (default: its paper setting, else 10)')
    parser.add_argument('--option', action='append', default=[], metavar='KEY=VALUE',
                        help='builder option of a registered model (repeatable; the value is '
                             'read as YAML: 0.5, true, small)')
    parser.add_argument('--input-layout', choices=('clip', 'frames'), default=None,
                        help='the original takes clips [B, C, T, H, W] (default for --module-file)'
                             ' or frames [B*T, C, H, W] (registered models)')
    parser.add_argument('--opset', type=int, default=17, help='ONNX opset (with .onnx)')
    parser.add_argument('--seed', type=int, default=0, help='seed of the random example clips')


def load_module_file(path: str | Path, *, trust: bool = False) -> nn.Module:
    """A whole ``nn.Module`` saved with ``torch.save(model)``; clear errors for anything else.

    Loading it runs Python code from the file (``torch.load(weights_only=False)`` unpickles
    arbitrary objects), so it is done only with ``trust=True`` (``--trust-module-file``);
    otherwise :class:`UntrustedModuleFileError` is raised and the file is not opened.
    """
    path = Path(path)
    if not trust:
        raise UntrustedModuleFileError(
            f'--module-file {path}: a whole nn.Module saved with torch.save(model) is a Python '
            'pickle, and loading it runs code from the file (os.system included); it is never '
            'loaded implicitly. The file was not opened. If you wrote it or trust its source as '
            'you trust code you run, pass --trust-module-file as well')
    if not path.is_file():
        raise FileNotFoundError(f'{path}: no such file')
    try:
        loaded: Any = torch.load(path, map_location='cpu', weights_only=False)
    except Exception as error:
        raise ValueError(f'{path}: cannot be loaded with torch.load ({error})') from error
    if isinstance(loaded, torch.jit.ScriptModule):
        raise ValueError(f'{path}: a TorchScript archive cannot be traced with torch.fx; save the '
                         'Python module with torch.save(model) instead')
    if not isinstance(loaded, nn.Module):
        kind = type(loaded).__name__
        hint = ' (a state dict or checkpoint; save the whole module)' if isinstance(
            loaded, dict) else ''
        raise ValueError(f'{path}: expected a whole nn.Module saved with torch.save(model), got '
                         f'a {kind}{hint}')
    return loaded


def _build(args: argparse.Namespace) -> tuple[nn.Module, torch.Tensor]:
    """The model to convert (eval mode) and a random example input: a clip
    ``[B, C, T, S, S]`` or frames ``[B*T, C, S, S]`` (``--input-layout``)."""
    frames, size, layout = args.frames, args.size, args.input_layout
    if args.model:
        reference = model_info(args.model).reference
        frames = frames or (reference.num_frames if reference else 8)
        size = size or (reference.input_size[0] if reference else 112)
        num_classes = args.num_classes or (reference.num_classes if reference else 10)
        model = create_model(args.model, num_classes=num_classes, num_frames=frames,
                             **parse_builder_options(args.option, '--option'))
        layout = layout or 'frames'
    else:
        model = load_module_file(args.module_file, trust=args.trust_module_file)
        frames = frames or 8
        size = size or 112
        layout = layout or 'clip'
    for name, value in (('--frames', frames), ('--size', size), ('--batch', args.batch),
                        ('--channels', args.channels)):
        if value < 1:
            raise ValueError(f'{name} must be >= 1, got {value}')
    generator = torch.Generator().manual_seed(args.seed)
    shape: tuple[int, ...]
    if layout == 'clip':
        shape = (args.batch, args.channels, frames, size, size)
    else:
        shape = (args.batch * frames, args.channels, size, size)
    return model.eval(), torch.randn(shape, generator=generator)


def run(args: argparse.Namespace) -> int:
    output = Path(args.output)
    if output.suffix not in ('.pt', '.onnx'):
        print(f'error: --output must end in .pt or .onnx, got {output}', file=sys.stderr)
        return 2
    try:
        check_output(output, force=args.force, inputs=[args.module_file], what='--output')
        model, example = _build(args)
    except (ValueError, KeyError, TypeError, FileNotFoundError, FileExistsError) as error:
        print(f'error: {error}', file=sys.stderr)
        return 2
    try:
        converted = to_4d(model, example_input=example)
    except ConversionError as error:
        print(f'error: {error}', file=sys.stderr)
        return 1
    fresh = torch.randn(example.shape, generator=torch.Generator().manual_seed(args.seed + 1))
    diff = max_abs_diff(model, converted.eval(), fresh)
    print(f'converted {type(model).__name__}: input {tuple(example.shape)} -> '
          f'{tuple(fold_input(example).shape)}; max abs diff vs original {diff:.3g}')
    try:
        if output.suffix == '.pt':
            with atomic_path(output, force=args.force) as temporary:
                torch.save(converted, temporary)
            print(f'wrote {output} (a whole pickled module: torch.load(path, '
                  'weights_only=False) runs code from it, load only your own)')
            return 0
        with atomic_path(output, force=args.force) as temporary:
            problems = converter.export_onnx_4d(converted, fold_input(example), temporary,
                                                opset=args.opset)
            if problems:
                raise _NotFourDError(problems)
    except _NotFourDError as refused:
        print(f'error: the export of {output} is not 4D-only (not written): '
              + '; '.join(refused.problems[:10]), file=sys.stderr)
        return 1
    except (RuntimeError, FileExistsError) as error:
        print(f'error: {error}', file=sys.stderr)
        return 1
    print(f'wrote {output}: every tensor has rank <= 4 and no convolution is 3D')
    return 0


class _NotFourDError(Exception):
    """The exported graph failed the rank-4 proof: the temporary is discarded."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__('; '.join(problems))
        self.problems = problems

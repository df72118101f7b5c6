"""Checking a converted model against its original: :func:`check_against_original` and
:func:`max_abs_diff`.

Outputs are compared folded: a 5D output ``[B, C, T, H, W]`` of the original against the
converted model's ``[B*T, C, H, W]``.
"""

from __future__ import annotations

import torch
from torch import fx
from torch import nn
from torch import Tensor

from action_recognition.deploy.convert.layout import ConversionError
from action_recognition.deploy.convert.layout import fold_input
from action_recognition.deploy.convert.layout import fold_outputs
from action_recognition.deploy.convert.layout import Modes
from action_recognition.models.analysis import check_4d_only_structure
from action_recognition.models.analysis import RankRecorder

__all__ = ['check_against_original', 'max_abs_diff']


def check_against_original(original: nn.Module, converted: fx.GraphModule, example_input: Tensor,
           tolerance: float) -> None:
    """Raise :class:`ConversionError` unless ``converted`` is structurally 4D-only, makes no
    tensor of rank 5 and gives the original's outputs (within ``tolerance`` relative to
    ``max(1, max |output|)``) on ``example_input`` (the original's input, e.g. a clip
    ``[B, C, T, H, W]``) at twice its batch size, both in eval mode (their modes are put back).
    """
    problems = check_4d_only_structure(converted)
    if problems:
        raise ConversionError('converted model is not 4D-only: ' + '; '.join(problems[:5]))
    doubled = torch.cat([example_input, example_input.flip(-1)], dim=0)
    saved = Modes.eval_all(original, converted)
    try:
        with torch.no_grad():
            try:
                expected = fold_outputs(original(doubled))
            except Exception:
                # The original itself takes only its example's batch size: check at that one.
                doubled = example_input
                expected = fold_outputs(original(doubled))
            frames = fold_input(doubled)
            try:
                with RankRecorder() as ranks:
                    raw = converted(frames)
            except Exception as error:
                raise ConversionError(
                    f'the converted model fails on the example input at batch size '
                    f'{doubled.shape[0]} ({type(error).__name__}: {error}); a batch size fixed '
                    'inside the model?') from error
            got = fold_outputs(raw)
    finally:
        saved[0].restore(original)
        saved[1].restore(converted)
    if ranks.max_rank > 4:
        first = '; '.join(f'{v.op} {v.shape}' for v in ranks.violations[:3])
        raise ConversionError(f'converted model makes a tensor of rank {ranks.max_rank}: {first}')
    if len(expected) != len(got):
        raise ConversionError(f'converted model returns {len(got)} tensors instead of '
                              f'{len(expected)}')
    for index, (a, b) in enumerate(zip(expected, got)):
        if a.shape != b.shape:
            raise ConversionError(
                f'output {index}: shape {tuple(b.shape)} instead of {tuple(a.shape)} at batch '
                f'size {doubled.shape[0]} (a batch size fixed inside the model?)')
        if a.is_floating_point() and a.numel():
            scale = max(1.0, float(a.abs().max()))
            diff = float((a.double() - b.double()).abs().max())
            if not diff <= tolerance * scale:
                raise ConversionError(
                    f'output {index}: converted model differs from the original by {diff:.3g} '
                    f'(allowed {tolerance * scale:.3g}); torch.fx does not record some Python '
                    'behaviour (e.g. `+=` on a view of another tensor is traced as an '
                    'out-of-place add); otherwise please report this model')
        elif not torch.equal(a, b):
            raise ConversionError(f'output {index} differs from the original')


def max_abs_diff(original: nn.Module, converted: nn.Module, example_input: Tensor) -> float:
    """Largest absolute difference between the outputs (5D ones folded) on ``example_input``
    (the original's input), computed without gradients and in each module's current mode."""
    with torch.no_grad():
        expected = fold_outputs(original(example_input))
        got = fold_outputs(converted(fold_input(example_input)))
    if len(expected) != len(got):
        raise ConversionError(f'{len(got)} outputs instead of {len(expected)}')
    worst = 0.0
    for a, b in zip(expected, got):
        if a.shape != b.shape:
            raise ConversionError(f'output shape {tuple(b.shape)} instead of {tuple(a.shape)}')
        if a.numel():
            worst = max(worst, float((a.double() - b.double()).abs().max()))
    return worst

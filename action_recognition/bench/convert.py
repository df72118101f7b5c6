"""CPU speed of a converted 4D-only model beside its 3D original (``action-recognition bench``).

:func:`bench_converted` times both models on the same clip (the converted one on its folded
frames, :func:`~action_recognition.deploy.convert.fold_input`) in eval mode without gradients and
reports median latencies and the largest output difference.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import torch
from torch import nn
from torch import Tensor

from action_recognition.deploy.convert import fold_input
from action_recognition.deploy.convert import max_abs_diff

__all__ = ['bench_converted']


def _on_cpu(module: nn.Module, name: str) -> None:
    for tensor in [*module.parameters(), *module.buffers()]:
        if tensor.device.type != 'cpu':
            raise ValueError(f'{name} has tensors on {tensor.device}; bench_converted times CPU '
                             'models (move it with .cpu() first)')


def _time_ms(module: nn.Module, x: Tensor) -> float:
    start = time.perf_counter()
    module(x)
    return (time.perf_counter() - start) * 1000.0


def bench_converted(model_5d: nn.Module, converted: nn.Module, example_input: Tensor,
                    repeats: int = 10, *, warmup: int = 2) -> dict[str, Any]:
    """Median CPU latency of ``model_5d(example_input)`` and of ``converted`` on the same clip.

    Args:
        model_5d: the original model (on the CPU).
        converted: ``to_4d(model_5d, ...)`` (on the CPU).
        example_input: the original's input, e.g. a clip ``[B, C, T, H, W]``; the converted
            model gets :func:`fold_input` of it (frames ``[B*T, C, H, W]``).
        repeats: timed runs per model (after ``warmup`` untimed runs); the two models
            alternate run by run so both see the same machine load.

    Returns:
        ``original_ms`` / ``converted_ms`` (medians), ``original_min_ms`` /
        ``converted_min_ms``, ``speedup`` (original over converted median), ``max_abs_diff``
        (largest output difference), ``repeats``, ``threads`` (``torch.get_num_threads()``),
        ``input_shape`` and ``converted_input_shape``.
    """
    if repeats < 1:
        raise ValueError(f'repeats must be >= 1, got {repeats}')
    _on_cpu(model_5d, 'model_5d')
    _on_cpu(converted, 'converted')
    x = example_input.cpu()
    frames = fold_input(x)
    modes = [(m, [(sub, sub.training) for sub in m.modules()]) for m in (model_5d, converted)]
    model_5d.eval()
    converted.eval()
    try:
        diff = max_abs_diff(model_5d, converted, x)
        original: list[float] = []
        folded: list[float] = []
        with torch.inference_mode():
            for _ in range(warmup):
                model_5d(x)
                converted(frames)
            # Interleaved, so that changes in machine load hit both models alike.
            for _ in range(repeats):
                original.append(_time_ms(model_5d, x))
                folded.append(_time_ms(converted, frames))
    finally:
        for _, saved in modes:
            for sub, training in saved:
                sub.training = training
    original_ms = statistics.median(original)
    converted_ms = statistics.median(folded)
    return {
        'original_ms': original_ms,
        'converted_ms': converted_ms,
        'original_min_ms': min(original),
        'converted_min_ms': min(folded),
        'speedup': original_ms / converted_ms if converted_ms > 0 else float('inf'),
        'max_abs_diff': diff,
        'repeats': repeats,
        'threads': torch.get_num_threads(),
        'input_shape': tuple(x.shape),
        'converted_input_shape': tuple(frames.shape),
    }

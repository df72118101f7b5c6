"""The package's one ONNX export: :func:`export_graph` (a module and an example input -> an
``onnx.ModelProto``).

Both ``action-recognition export`` (:mod:`~action_recognition.deploy.export`, the deployed
model: ``uint8`` frames ``[N, 3, h, w]`` -> logits ``[batch, classes]``) and the converter's
:func:`~action_recognition.deploy.convert.export_onnx_4d` (a converted model: frames
``[B*T, C, H, W]`` -> its outputs) export through it:

- the TorchScript-based exporter (``dynamo=False``) first, with constant folding; the
  ``torch.export``-based exporter (``dynamo=True``) when that fails or is asked for;
- modules that keep plain data as extra state are exported with it hidden
  (:func:`without_extra_state`);
- the leading axis of the input and of every output is dynamic (``dynamic_batch``), named
  ``input_axis`` / ``output_axis`` in the graph (the dynamo exporter names the outputs' axes
  itself);
- the proto holds every weight (no external data); saving and checking it is the caller's.
"""

from __future__ import annotations

from collections.abc import Iterator
from collections.abc import Sequence
import contextlib
import logging
from pathlib import Path
import tempfile
from typing import Any
import warnings

import onnx
import torch
from torch import nn
from torch import Tensor

__all__ = ['DEFAULT_OPSET', 'EXPORTERS', 'ExportError', 'export_graph', 'without_extra_state']

LOGGER = logging.getLogger(__name__)

DEFAULT_OPSET = 17
EXPORTERS = ('auto', 'torchscript', 'dynamo')


class ExportError(RuntimeError):
    """The model cannot be exported, or the exported file fails a check."""


@contextlib.contextmanager
def without_extra_state(module: nn.Module) -> Iterator[None]:
    """Hide ``get_extra_state`` overrides while tracing.

    The TorchScript tracer treats every state-dict entry as a tensor; a module keeping plain
    data as extra state (a flag, a dict) breaks it. Extra state does not affect the graph.
    """
    classes = {type(m) for m in module.modules()
               if type(m).get_extra_state is not nn.Module.get_extra_state}
    saved = {cls: cls.__dict__.get('get_extra_state') for cls in classes}
    try:
        for cls in classes:
            cls.get_extra_state = nn.Module.get_extra_state  # type: ignore[method-assign]
        yield
    finally:
        for cls, original in saved.items():
            if original is None:
                del cls.get_extra_state
            else:
                cls.get_extra_state = original  # type: ignore[method-assign]


def _torchscript(module: nn.Module, example: Tensor, opset: int, input_name: str,
                 output_names: list[str], axes: dict[str, dict[int, str]] | None) -> Any:
    """The graph of the TorchScript-based exporter (``dynamo=False``), loaded back from the
    file it writes."""
    with warnings.catch_warnings(), tempfile.TemporaryDirectory(prefix='ar_export_') as tmp:
        warnings.simplefilter('ignore')  # the TorchScript exporter is deprecated
        target = Path(tmp) / 'model.onnx'
        with without_extra_state(module):
            torch.onnx.export(
                module, (example,), str(target), dynamo=False, input_names=[input_name],
                output_names=output_names, opset_version=opset, do_constant_folding=True,
                dynamic_axes=axes)
        return onnx.load(target)


def _dynamo(module: nn.Module, example: Tensor, opset: int, input_name: str,
            output_names: list[str], batch: Any) -> Any:
    """The graph of the ``torch.export``-based exporter (``dynamo=True``); ``batch``: the
    ``torch.export.Dim`` of the input's leading axis, or ``None`` for static shapes."""
    # onnx_ir logs every initializer it deduplicates, onnxscript's rewriter every rule it
    # tries, at INFO: kept to warnings while exporting.
    chatty = [logging.getLogger(name) for name in ('onnx_ir', 'onnxscript')]
    levels = [logger.level for logger in chatty]
    for logger, level in zip(chatty, levels, strict=True):
        logger.setLevel(max(level, logging.WARNING))
    try:
        with warnings.catch_warnings(), without_extra_state(module):
            warnings.simplefilter('ignore')
            program = torch.onnx.export(
                module, (example,), dynamo=True, verbose=False, input_names=[input_name],
                output_names=output_names, opset_version=opset,
                dynamic_shapes=None if batch is None else ({0: batch},), external_data=False)
    finally:
        for logger, level in zip(chatty, levels, strict=True):
            logger.setLevel(level)
    if program is None:
        raise ExportError('torch.onnx.export returned nothing')
    proto = program.model_proto
    version = next((o.version for o in proto.opset_import if o.domain in ('', 'ai.onnx')), None)
    if version != opset:
        LOGGER.warning('the dynamo exporter wrote opset %s, not the %s asked for', version,
                       opset)
    return proto


def export_graph(module: nn.Module, example: Tensor, *, opset: int = DEFAULT_OPSET,
                 input_name: str = 'frames', output_names: Sequence[str] = ('output',),
                 dynamic_batch: bool = True, input_axis: str = 'batch',
                 output_axis: str = 'batch', exporter: str = 'auto') -> onnx.ModelProto:
    """The ONNX graph of ``module`` (in the mode it is in) called on ``example``.

    Args:
        module: a module taking one tensor (e.g. ``uint8`` frames ``[N, 3, h, w]``).
        example: an input of ``module``; its leading axis becomes dynamic.
        opset: the ONNX opset of the graph.
        input_name: the name of the graph's input.
        output_names: the names of its outputs, one per tensor ``module`` returns.
        dynamic_batch: make the leading axis of the input and of every output dynamic.
        input_axis: the name of the input's dynamic axis (e.g. ``'batch_x_frames'``).
        output_axis: the name of the outputs' dynamic axis (the TorchScript-based exporter's;
            the dynamo exporter derives the outputs' axes itself).
        exporter: ``'torchscript'`` (``dynamo=False``), ``'dynamo'`` (``torch.export``-based)
            or ``'auto'`` (the first, then the second if it fails).

    Returns:
        A self-contained ``onnx.ModelProto`` (weights inline).

    Raises:
        ExportError: every exporter tried failed (the message names each one's error).
        ValueError: an unknown ``exporter``.
    """
    if exporter not in EXPORTERS:
        raise ValueError(f"exporter must be 'auto', 'torchscript' or 'dynamo', got {exporter!r}")
    names = list(output_names)
    errors: list[str] = []
    if exporter in ('auto', 'torchscript'):
        axes = ({input_name: {0: input_axis}} | {name: {0: output_axis} for name in names}
                if dynamic_batch else None)
        try:
            return _torchscript(module, example, opset, input_name, names, axes)
        except Exception as error:  # the TorchScript exporter may be gone
            errors.append(f'TorchScript-based exporter: {type(error).__name__}: {error}')
            if exporter == 'auto':
                LOGGER.info('TorchScript ONNX export failed (%s); trying the dynamo exporter',
                            error)
    if exporter in ('auto', 'dynamo'):
        batch = torch.export.Dim(input_axis, min=1) if dynamic_batch else None
        try:
            return _dynamo(module, example, opset, input_name, names, batch)
        except Exception as error:
            errors.append(f'torch.export-based exporter: {type(error).__name__}: {error}')
    raise ExportError('ONNX export failed: ' + '; '.join(errors))

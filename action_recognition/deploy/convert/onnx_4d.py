"""The ONNX export of a converted model, with the rank-4 proof: :func:`export_onnx_4d`.

The graph is made by the package's one exporter (:func:`~action_recognition.deploy.onnx_export.
export_graph`); the proof is the one ``action-recognition export`` runs
(:func:`~action_recognition.io.onnx_check.check_onnx_4d_only`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch import Tensor

from action_recognition.deploy.convert.layout import fold_outputs
from action_recognition.deploy.convert.layout import Modes
from action_recognition.deploy.onnx_export import DEFAULT_OPSET
from action_recognition.deploy.onnx_export import export_graph
from action_recognition.io import onnx_check

__all__ = ['check_onnx_4d_only', 'export_onnx_4d']


def check_onnx_4d_only(model_proto: Any) -> list[str]:
    """Problems that keep an ONNX model from being 4D-only; empty means proven 4D-only.

    After ONNX shape inference every input, output, intermediate value, initializer and constant
    must have a known rank of at most 4 and no convolution may have a 3D kernel. This is the
    proof ``action-recognition export`` runs: the one implementation lives in
    :func:`action_recognition.io.onnx_check.check_onnx_4d_only`.
    """
    return onnx_check.check_onnx_4d_only(model_proto)


def export_onnx_4d(converted: nn.Module, example_frames: Tensor, path: str | Path, *,
                   opset: int = DEFAULT_OPSET, dynamic_batch: bool = True,
                   exporter: str = 'auto') -> list[str]:
    """Export a converted model (in eval mode) to ONNX and return :func:`check_onnx_4d_only`'s
    problems (empty: proven 4D-only).

    ``example_frames`` is the converted model's input (:func:`~action_recognition.deploy.
    convert.fold_input` of a clip: frames ``[B*T, C, H, W]``). The input is named ``frames``
    and the outputs ``output``/``output_<i>``; with ``dynamic_batch`` the leading axis is
    dynamic (named ``batch``). ``exporter``: ``'torchscript'`` (``dynamo=False``),
    ``'dynamo'`` (``torch.export``-based) or ``'auto'`` (the first, then the second if it
    fails). Raises :class:`~action_recognition.deploy.onnx_export.ExportError` (a
    ``RuntimeError``) when the export fails.
    """
    saved = Modes.eval_all(converted)
    try:
        with torch.no_grad():
            outputs = fold_outputs(converted(example_frames))
        output_names = (['output'] if len(outputs) == 1
                        else [f'output_{i}' for i in range(len(outputs))])
        proto = export_graph(converted, example_frames, opset=opset, input_name='frames',
                             output_names=output_names, dynamic_batch=dynamic_batch,
                             exporter=exporter)
    finally:
        saved[0].restore(converted)
    Path(path).write_bytes(proto.SerializeToString())  # what onnx.save writes
    return check_onnx_4d_only(proto)

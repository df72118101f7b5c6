"""Reduced precision copies of an exported fp32 graph: fp16 and static int8 (QDQ).

Both keep the graph's interface: ``uint8`` frames ``[N, 3, h, w]`` in, ``float32`` logits
``[batch, classes]`` out.

- :func:`convert_to_fp16`: ONNX Runtime's own converter
  (``onnxruntime.transformers.float16.convert_float_to_float16``, ``keep_io_types=True``):
  weights and activations in float16; the input's ``Cast`` from ``uint8`` casts to float16
  (exact for 0..255); a final ``Cast`` gives float32 logits; ``Resize`` scales and the
  operators ONNX Runtime keeps in float32 stay float32, behind casts.
- :func:`quantize_int8`: static QDQ quantisation (ONNX Runtime's ``quantize_static``),
  per-channel int8 weights and uint8 activations, MinMax calibration on clips
  ``uint8 [N, T, 3, h, w]`` (:mod:`~action_recognition.deploy.calibration`).
"""

from __future__ import annotations

from collections.abc import Iterator
import logging
from pathlib import Path
import tempfile
from typing import Any
import warnings

import numpy as np
import onnx

from action_recognition.deploy.onnx_export import ExportError

__all__ = ['convert_to_fp16', 'quantize_int8']

LOGGER = logging.getLogger(__name__)


def convert_to_fp16(proto: Any) -> Any:
    """A float16 copy of an fp32 graph that keeps its IO types (``uint8`` in, float32 out).

    ONNX Runtime's converter with ``keep_io_types=True``; the copy is sorted topologically (the
    casts the converter adds around operators it keeps in float32 come last) and checked with
    strict ONNX type inference. Raises :class:`ExportError` if an input or output changed type.
    """
    # ONNX Runtime's converters take about 0.9 s to import; only --fp16 needs them.
    from onnxruntime.transformers.float16 import convert_float_to_float16
    from onnxruntime.transformers.onnx_model import OnnxModel

    source = onnx.ModelProto()
    source.CopyFrom(proto)
    model = convert_float_to_float16(source, keep_io_types=True)
    OnnxModel.graph_topological_sort(model.graph)
    io_types = [(v.name, v.type.tensor_type.elem_type) for v in (*proto.graph.input,
                                                                  *proto.graph.output)]
    got = [(v.name, v.type.tensor_type.elem_type) for v in (*model.graph.input,
                                                            *model.graph.output)]
    if got != io_types:
        raise ExportError(f'the fp16 conversion changed the graph interface: {io_types} -> '
                          f'{got}')
    del model.graph.value_info[:]
    return onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True)


class _ClipReader:
    """``CalibrationDataReader`` over ``uint8`` clips ``[N, T, 3, h, w]`` (one clip a call,
    fed to the graph's input ``name`` as ``[T, 3, h, w]``)."""

    def __init__(self, clips: np.ndarray, name: str) -> None:
        self._clips = clips
        self._name = name
        self._iter: Iterator[np.ndarray] = iter(clips)

    def get_next(self) -> dict[str, np.ndarray] | None:
        clip = next(self._iter, None)
        return None if clip is None else {self._name: np.ascontiguousarray(clip)}

    def rewind(self) -> None:
        self._iter = iter(self._clips)


def _keep_float(proto: Any) -> list[str]:
    """Names of the nodes that stay in float: batch norms that were not folded, and the
    preprocessing on the pixels before the first convolution (normalisation, the default
    model's per-frame standardisation), where a uint8 step is as coarse as the input's own."""
    after_conv: set[str] = set()
    keep = []
    for node in proto.graph.node:  # topological order
        if node.op_type == 'Conv' or any(name in after_conv for name in node.input):
            after_conv.update(node.output)
            if node.op_type == 'BatchNormalization':
                keep.append(node.name)
        else:
            keep.append(node.name)
    return keep


def quantize_int8(proto: Any, clips: np.ndarray, *, per_channel: bool = True) -> Any:
    """Static QDQ int8 copy of an fp32 graph calibrated on ``clips`` ``uint8 [N, T, 3, h, w]``.

    Weights int8 (per output channel), activations uint8, MinMax calibration; the uint8 input
    and float32 output are unchanged. Batch norms that could not be folded into a convolution
    and the preprocessing before the first convolution stay in float (:func:`_keep_float`).
    """
    # ONNX Runtime's quantiser takes about 0.9 s to import; only --int8 needs it.
    from onnxruntime.quantization import CalibrationMethod
    from onnxruntime.quantization import QuantFormat
    from onnxruntime.quantization import quantize_static
    from onnxruntime.quantization import QuantType
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if len(clips) == 0:
        raise ExportError('int8 quantisation needs at least one calibration clip')
    with tempfile.TemporaryDirectory(prefix='ar_int8_') as tmp:
        source = Path(tmp) / 'fp32.onnx'
        prepared = Path(tmp) / 'fp32_prep.onnx'
        target = Path(tmp) / 'int8.onnx'
        onnx.save(proto, source)
        try:
            quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
        except Exception as error:
            LOGGER.info('quantisation pre-processing skipped: %s', error)
            prepared = source
        keep_float = _keep_float(onnx.load(prepared))
        root = logging.getLogger()
        level = root.level
        root.setLevel(logging.ERROR)  # the quantiser logs every bias copy on the root logger
        try:
            with warnings.catch_warnings():
                warnings.simplefilter('ignore')
                quantize_static(
                    str(prepared), str(target), _ClipReader(clips, proto.graph.input[0].name),
                    quant_format=QuantFormat.QDQ, activation_type=QuantType.QUInt8,
                    weight_type=QuantType.QInt8, per_channel=per_channel,
                    calibrate_method=CalibrationMethod.MinMax, nodes_to_exclude=keep_float,
                    extra_options={'ActivationSymmetric': False, 'WeightSymmetric': True})
        finally:
            root.setLevel(level)
        return onnx.load(target)

"""Quantisation, in one place: fp16 and static int8 (QDQ) copies of an exported ONNX graph, and
NNCF's int8 quantisation of an OpenVINO model.

Every copy keeps the graph's interface: ``uint8`` frames ``[N, 3, h, w]`` in, ``float32`` logits
``[batch, classes]`` out.

- :func:`convert_to_fp16`: ONNX Runtime's own converter
  (``onnxruntime.transformers.float16.convert_float_to_float16``, ``keep_io_types=True``):
  weights and activations in float16; the input's ``Cast`` from ``uint8`` casts to float16
  (exact for 0..255); a final ``Cast`` gives float32 logits; ``Resize`` scales and the
  operators ONNX Runtime keeps in float32 stay float32, behind casts (``export --fp16``).
- :func:`quantize_onnx_int8`: static QDQ quantisation (ONNX Runtime's ``quantize_static``),
  per-channel int8 weights and uint8 activations, MinMax calibration on clips
  ``uint8 [N, T, 3, h, w]`` (``export --int8``).
- :func:`quantize_openvino_int8`: NNCF's post-training quantisation of an ``openvino.Model``
  (the OpenVINO backend's ``precision: int8`` at load, and the OpenVINO deployment target).

In both int8 forms the preprocessing before the first convolution (the ``uint8`` -> float
normalisation, a model's own per-frame standardisation) stays in floating point: a uint8 step is
as coarse as the input's own, and the variance of a low-contrast frame rounds to zero in 8 bits.
onnx, ONNX Runtime's quantisation tools and nncf are imported by the function that needs them.
"""

from __future__ import annotations

from collections.abc import Iterator
import contextlib
import io
import logging
from pathlib import Path
import tempfile
from typing import Any
import warnings

import numpy as np

from action_recognition.io.openvino_graph import import_nncf

__all__ = ['QuantizationError', 'convert_to_fp16', 'quantize_onnx_int8', 'frame_normalization',
           'quantize_openvino_int8', 'is_quantized_openvino']

LOGGER = logging.getLogger(__name__)


class QuantizationError(ValueError):
    """A reduced-precision copy that cannot be made; the message says why."""


def convert_to_fp16(proto: Any) -> Any:
    """A float16 copy of an fp32 graph that keeps its IO types (``uint8`` in, float32 out).

    ONNX Runtime's converter with ``keep_io_types=True``; the copy is sorted topologically (the
    casts the converter adds around operators it keeps in float32 come last) and checked with
    strict ONNX type inference. Raises :class:`QuantizationError` if an input or output changed
    type.
    """
    # onnx is needed to export only, and ONNX Runtime's converters take about 0.9 s to import.
    import onnx
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
        raise QuantizationError(f'the fp16 conversion changed the graph interface: {io_types} -> '
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


def quantize_onnx_int8(proto: Any, clips: np.ndarray, *, per_channel: bool = True) -> Any:
    """Static QDQ int8 copy of an fp32 graph calibrated on ``clips`` ``uint8 [N, T, 3, h, w]``.

    Weights int8 (per output channel), activations uint8, MinMax calibration; the uint8 input
    and float32 output are unchanged. Batch norms that could not be folded into a convolution
    and the preprocessing before the first convolution stay in float (:func:`_keep_float`).
    """
    # onnx is needed to export only, and ONNX Runtime's quantiser takes about 0.9 s to import.
    import onnx
    from onnxruntime.quantization import CalibrationMethod
    from onnxruntime.quantization import QuantFormat
    from onnxruntime.quantization import quantize_static
    from onnxruntime.quantization import QuantType
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if len(clips) == 0:
        raise QuantizationError('int8 quantisation needs at least one calibration clip')
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


_COMPUTE = frozenset({'Convolution', 'GroupConvolution', 'MatMul', 'ConvolutionBackpropData',
                      'GroupConvolutionBackpropData'})


def frame_normalization(model: Any) -> list[str]:
    """Names of the ops between the input and the first convolution or matrix product.

    That is the graph's ``uint8`` -> float normalisation and any per-frame normalisation of a
    model's own (the contrast normalisation of ECO-Lite's ``small_sym`` 2D-Net: a mean, a
    variance and a division per frame). NNCF would quantise those too (the variance of a
    low-contrast frame rounds to zero in 8 bits: the default model lost 4.5 points of top-1
    on the synthetic benchmark); they are left in floating point, and the convolutions and
    matrix products, where the time goes, are quantised.
    """
    from_input: set[str] = set()
    past_compute: set[str] = set()
    names = []
    for op in model.get_ordered_ops():
        kind = op.get_type_name()
        sources = {op.input_value(i).get_node().get_name() for i in range(op.get_input_size())}
        if kind == 'Parameter':
            from_input.add(op.get_name())
        elif kind in _COMPUTE or sources & past_compute:
            past_compute.add(op.get_name())
        elif sources & from_input:
            from_input.add(op.get_name())
            if kind != 'Result':
                names.append(op.get_friendly_name())
    return names


def quantize_openvino_int8(model: Any, calibration: list[np.ndarray], *,
                           logger: logging.Logger = LOGGER) -> Any:
    """NNCF post-training int8 quantisation of an ``openvino.Model`` on ``calibration`` clips
    (``uint8 [T, 3, h, w]`` each), the frame normalisation left in floating point
    (:func:`frame_normalization`). NNCF's progress bars are captured and logged at DEBUG."""
    nncf = import_nncf()
    captured = io.StringIO()
    try:
        # NNCF draws progress bars on stdout and stderr: kept out of the app's output.
        with contextlib.redirect_stdout(captured), contextlib.redirect_stderr(captured):
            ignored = nncf.IgnoredScope(names=frame_normalization(model), validate=False)
            return nncf.quantize(model, nncf.Dataset(calibration), subset_size=len(calibration),
                                 ignored_scope=ignored)
    finally:
        if captured.getvalue().strip():
            logger.debug('NNCF: %s', captured.getvalue().strip())


def is_quantized_openvino(model: Any) -> bool:
    """Whether an ``openvino.Model`` is quantised already (it has FakeQuantize ops)."""
    return any(op.get_type_name() == 'FakeQuantize' for op in model.get_ordered_ops())

"""``action-recognition export``: one checked, self-contained ONNX file per model.

The exported graph is :class:`~action_recognition.runtime.backends.DeployedModel`
(normalisation + model), so the file takes what the runtime has::

    frames  uint8  [N, 3, h, w]   N = batch * T: the T frames of each clip contiguous
                                   (the leading axis is dynamic: any whole number of clips)
    logits  float32 [batch, num_classes]

Metadata (``metadata_props``): ``action_recognition.spec`` (the full
:class:`~action_recognition.spec.ModelSpec` as JSON, what the runtime reads) and readable copies
``labels`` (JSON list), ``clip_length``, ``frame_stride``, ``sampling``, ``input_size`` (``HxW``),
``resize_short``, ``mean``, ``std`` (JSON lists), ``model``, ``layout``.

Checks, all of which fail the export:

- 4D-only proof for every 4D-only model (:func:`~action_recognition.io.onnx_check.
  check_onnx_4d_only`): after shape inference no input, output, intermediate, initializer or
  constant has rank above 4 and no Conv has a 3D kernel. A model registered as not 4D-only (the
  ``*_5d`` references) is refused unless ``allow_5d=True`` (``--allow-5d``).
- ONNX Runtime (CPU) against PyTorch on random clips (two clips per call, so the dynamic batch
  axis is exercised): the max abs difference of the logits is printed; above ``1e-4`` in fp32
  the export fails.
- Optional fp16 (weights and activations in float16, ``uint8`` in and float32 out kept) and int8
  (static QDQ, per-channel int8 weights and uint8 activations, calibrated on clips from
  ``--calibration DIR`` or on synthetic clips); their agreement with fp32 and the accuracy change
  on synthetic clips are reported.

Opset 17 (the default) runs on ONNX Runtime 1.14 and later, the versions JetPack 5/6 ship.
"""

from __future__ import annotations

from collections.abc import Iterator
import contextlib
from dataclasses import dataclass
from dataclasses import field
import json
import logging
import os
from pathlib import Path
import tempfile
import time
from typing import Any
import warnings

import numpy as np
import torch
from torch import nn

from action_recognition.data.preprocess import prepare_frame
from action_recognition.files import atomic_write_bytes
from action_recognition.files import check_output
from action_recognition.io.onnx_check import check_onnx_4d_only
from action_recognition.io.onnx_check import max_rank
from action_recognition.models.deployed import DeployedModel
from action_recognition.spec import ModelSpec
from action_recognition.spec import SPEC_METADATA_KEY

__all__ = [
    'ExportError', 'ExportReport', 'export_onnx', 'convert_to_fp16', 'quantize_int8',
    'synthetic_clips', 'calibration_clips', 'evaluate_onnx',
    'DEFAULT_OPSET', 'TOLERANCE',
]

LOGGER = logging.getLogger(__name__)

DEFAULT_OPSET = 17
TOLERANCE = 1e-4
INPUT_NAME = 'frames'
OUTPUT_NAME = 'logits'
_MAX_PROTO_BYTES = 2 ** 31 - 1


class ExportError(RuntimeError):
    """The model cannot be exported, or the exported file fails a check."""


@dataclass
class ExportReport:
    """What an export wrote and proved.

    Attributes:
        path: the ONNX file written.
        precision: ``'fp32'``, ``'fp16'`` or ``'int8'``.
        four_d_only: whether the 4D-only proof passed for the written file.
        problems: the proof's problems (empty when it passed; kept for ``allow_5d`` exports).
        max_rank: largest tensor rank in the written graph.
        max_abs_diff: fp32 ONNX Runtime vs PyTorch, max abs logit difference.
        quantized_max_abs_diff: fp16/int8 file vs the fp32 file on the evaluation clips.
        top1_agreement: fraction of evaluation clips where fp16/int8 and fp32 agree on top-1.
        accuracy_fp32: fp32 accuracy on labelled synthetic clips (when the labels are those of
            the synthetic benchmark), else ``None``.
        accuracy: accuracy of the written file on the same clips.
        size_bytes: file size.
        seconds: time the export took.
        notes: anything skipped, with the reason.
    """

    path: Path
    precision: str
    four_d_only: bool
    problems: list[str]
    max_rank: int
    max_abs_diff: float
    quantized_max_abs_diff: float | None = None
    top1_agreement: float | None = None
    accuracy_fp32: float | None = None
    accuracy: float | None = None
    size_bytes: int = 0
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        lines = [
            f'wrote {self.path} ({self.precision}, {self.size_bytes / 1e6:.2f} MB, '
            f'{self.seconds:.1f} s)',
            f'4D-only proof: {"passed" if self.four_d_only else "FAILED"} '
            f'(max tensor rank {self.max_rank})',
            f'ONNX Runtime vs PyTorch (fp32): max abs diff {self.max_abs_diff:.3g}',
        ]
        lines += [f'  problem: {p}' for p in self.problems[:10]]
        if self.quantized_max_abs_diff is not None:
            lines.append(f'{self.precision} vs fp32: max abs diff '
                         f'{self.quantized_max_abs_diff:.3g}, top-1 agreement '
                         f'{self.top1_agreement:.1%}')
        if self.accuracy is not None and self.accuracy_fp32 is not None:
            lines.append(f'synthetic accuracy: fp32 {self.accuracy_fp32:.1%}, '
                         f'{self.precision} {self.accuracy:.1%} (change '
                         f'{(self.accuracy - self.accuracy_fp32) * 100:+.1f} points)')
        lines += [f'note: {n}' for n in self.notes]
        return '\n'.join(lines)


# ---------------------------------------------------------------------------------------------
# Export


@contextlib.contextmanager
def _without_extra_state(module: nn.Module) -> Iterator[None]:
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


def _torch_export(module: nn.Module, example: torch.Tensor, opset: int) -> Any:
    """ONNX ``ModelProto`` of ``module``; TorchScript exporter first, dynamo as fallback."""
    import onnx

    with warnings.catch_warnings(), tempfile.TemporaryDirectory(prefix='ar_export_') as tmp:
        warnings.simplefilter('ignore')
        target = Path(tmp) / 'model.onnx'
        try:
            with _without_extra_state(module):
                torch.onnx.export(
                    module, (example,), str(target), dynamo=False, input_names=[INPUT_NAME],
                    output_names=[OUTPUT_NAME], opset_version=opset, do_constant_folding=True,
                    dynamic_axes={INPUT_NAME: {0: 'batch_x_frames'}, OUTPUT_NAME: {0: 'batch'}})
            return onnx.load(target)
        except Exception as legacy_error:  # the TorchScript exporter may be gone
            LOGGER.info('TorchScript ONNX export failed (%s); trying the dynamo exporter',
                        legacy_error)
        batch = torch.export.Dim('batch_x_frames', min=1)
        program = torch.onnx.export(
            module, (example,), dynamo=True, input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME], opset_version=opset, dynamic_shapes=({0: batch},),
            external_data=False)
        if program is None:
            raise ExportError('torch.onnx.export returned nothing')
        proto = program.model_proto
        version = next((o.version for o in proto.opset_import if o.domain in ('', 'ai.onnx')),
                       None)
        if version != opset:
            LOGGER.warning('the dynamo exporter wrote opset %s, not the %s asked for', version,
                           opset)
        return proto


def _metadata(spec: ModelSpec) -> dict[str, str]:
    return {
        SPEC_METADATA_KEY: spec.to_json(),
        'model': spec.model,
        'labels': json.dumps(list(spec.label_names)),
        'num_classes': str(spec.num_classes),
        'clip_length': str(spec.num_frames),
        'frame_stride': str(spec.frame_stride),
        'sampling': spec.sampling,
        'input_size': f'{spec.input_size[0]}x{spec.input_size[1]}',
        'resize_short': str(spec.resize_short),
        'mean': json.dumps(list(spec.mean)),
        'std': json.dumps(list(spec.std)),
        'layout': 'frames uint8 [batch*T, 3, H, W] RGB, T frames of a clip contiguous -> '
                  'logits float32 [batch, num_classes]',
    }


def _set_metadata(proto: Any, spec: ModelSpec) -> None:
    del proto.metadata_props[:]
    for key, value in _metadata(spec).items():
        entry = proto.metadata_props.add()
        entry.key = key
        entry.value = value
    proto.producer_name = 'action_recognition'
    proto.doc_string = f'{spec.model}: {spec.num_classes} classes, {spec.num_frames} frames'


def _save(proto: Any, path: Path, *, force: bool) -> None:
    """Write one self-contained file (all weights inline, no external data), atomically
    through a uniquely named temporary; an existing ``path`` only with ``force``."""
    import onnx

    data = proto.SerializeToString()
    if len(data) > _MAX_PROTO_BYTES:
        raise ExportError(f'the model is {len(data) / 1e9:.2f} GB, above the 2 GB a '
                          f'self-contained ONNX file can hold')
    onnx.checker.check_model(proto, full_check=True)
    atomic_write_bytes(path, data, force=force)


def _session(path_or_bytes: Path | bytes, threads: int | None = None) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    if threads is not None:
        options.intra_op_num_threads = threads
    source = str(path_or_bytes) if isinstance(path_or_bytes, Path) else path_or_bytes
    return ort.InferenceSession(source, sess_options=options,
                                providers=['CPUExecutionProvider'])


def _run(session: Any, frames: np.ndarray, spec: ModelSpec) -> np.ndarray:
    """Logits ``[N, classes]`` of ``uint8`` clips ``[N, T, 3, h, w]``, one clip per call."""
    outputs = [session.run([OUTPUT_NAME], {INPUT_NAME: clip})[0] for clip in frames]
    return np.concatenate(outputs).astype(np.float32)


def export_onnx(model: nn.Module, spec: ModelSpec, path: str | os.PathLike[str], *,
                opset: int = DEFAULT_OPSET, allow_5d: bool = False, fp16: bool = False,
                int8: bool = False, calibration: str | os.PathLike[str] | None = None,
                calibration_clips: int = 32, eval_clips: int = 44,
                tolerance: float = TOLERANCE, seed: int = 0, force: bool = False) -> ExportReport:
    """Export ``model`` (built for ``spec``) to one checked ONNX file at ``path``.

    ``fp16``/``int8`` write that precision (the fp32 graph is checked first); ``calibration``
    is a directory of videos or ``.npy`` clips for int8 (default: synthetic clips). Raises
    :class:`ExportError` when a check fails; on failure nothing is left at ``path``. An
    existing ``path`` is refused (:class:`~action_recognition.files.OutputExistsError`) unless
    ``force``.
    """
    from action_recognition.models import model_info

    start = time.perf_counter()
    if fp16 and int8:
        raise ExportError('choose one of fp16 and int8')
    path = check_output(path, force=force)
    try:
        declared_4d = model_info(spec.model).four_d_only
    except KeyError:
        declared_4d = True
    if not declared_4d and not allow_5d:
        raise ExportError(
            f'{spec.model} is a 5D model (not 4D-only); refusing to export it without '
            f'allow_5d=True (--allow-5d)')
    module = DeployedModel(model, spec).eval().cpu()
    height, width = spec.input_size
    rng = np.random.default_rng(seed)
    example = torch.from_numpy(
        rng.integers(0, 256, (spec.num_frames, 3, height, width), dtype=np.uint8))
    proto = _torch_export(module, example, opset)
    _set_metadata(proto, spec)
    problems = check_onnx_4d_only(proto)
    if problems and not allow_5d:
        raise ExportError(
            f'the exported graph of {spec.model} is not 4D-only ({len(problems)} problems): '
            + '; '.join(problems[:5]))
    rank = max_rank(proto)
    # ONNX Runtime vs PyTorch, two clips per call (dynamic batch axis).
    check = rng.integers(0, 256, (2 * spec.num_frames, 3, height, width), dtype=np.uint8)
    with torch.inference_mode():
        expected = module(torch.from_numpy(check)).numpy()
    fp32_bytes = proto.SerializeToString()
    session = _session(fp32_bytes)
    got = session.run([OUTPUT_NAME], {INPUT_NAME: check})[0]
    if got.shape != expected.shape:
        raise ExportError(f'ONNX Runtime gives logits {got.shape}, PyTorch {expected.shape}')
    diff = float(np.abs(got - expected).max())
    print(f'ONNX Runtime vs PyTorch (fp32): max abs diff {diff:.3g} '
          f'(tolerance {tolerance:g})')
    if not diff <= tolerance:
        raise ExportError(f'ONNX Runtime and PyTorch disagree: max abs diff {diff:.3g} > '
                          f'{tolerance:g}')
    report = ExportReport(path=path, precision='fp32', four_d_only=not problems,
                          problems=problems, max_rank=rank, max_abs_diff=diff)
    if not (fp16 or int8):
        _save(proto, path, force=force)
    else:
        if fp16:
            final = convert_to_fp16(proto)
            report.precision = 'fp16'
        else:
            clips = calibration_clips_from(calibration, spec, calibration_clips, seed=seed)
            final = quantize_int8(proto, clips)
            report.precision = 'int8'
        _set_metadata(final, spec)
        final_problems = check_onnx_4d_only(final)
        if final_problems and not allow_5d:
            raise ExportError(f'the {report.precision} graph is not 4D-only: '
                              + '; '.join(final_problems[:5]))
        report.problems = final_problems
        report.four_d_only = not final_problems
        report.max_rank = max_rank(final)
        _save(final, path, force=force)
        _compare(report, fp32_bytes, path, spec, eval_clips, seed)
    report.size_bytes = path.stat().st_size
    report.seconds = time.perf_counter() - start
    return report


def _compare(report: ExportReport, fp32_bytes: bytes, path: Path, spec: ModelSpec,
             num_clips: int, seed: int) -> None:
    """Agreement of the written file with fp32, and synthetic accuracy when labels fit."""
    if num_clips < 1:
        report.notes.append(f'{report.precision} not compared with fp32 (no evaluation clips)')
        return
    clips, labels = synthetic_clips(spec, num_clips, seed=seed + 1000)
    try:
        reduced = _session(path)
    except Exception as error:
        report.notes.append(f'{report.precision} file not run on this machine: ONNX Runtime '
                            f'(CPU) cannot load it ({str(error).splitlines()[0][:200]}); '
                            f'check it on the target GPU')
        return
    reference = _run(_session(fp32_bytes), clips, spec)
    try:
        result = _run(reduced, clips, spec)
    except Exception as error:
        report.notes.append(f'{report.precision} file failed to run on this machine: '
                            f'{str(error).splitlines()[0][:200]}')
        return
    report.quantized_max_abs_diff = float(np.abs(result - reference).max())
    report.top1_agreement = float((result.argmax(1) == reference.argmax(1)).mean())
    if labels is not None:
        report.accuracy_fp32 = float((reference.argmax(1) == labels).mean())
        report.accuracy = float((result.argmax(1) == labels).mean())
    else:
        report.notes.append('labels are not those of the synthetic benchmark: accuracy not '
                            'measured, only agreement with fp32')


# ---------------------------------------------------------------------------------------------
# Clips for calibration and evaluation


def synthetic_clips(spec: ModelSpec, num_clips: int, *,
                    seed: int = 0) -> tuple[np.ndarray, np.ndarray | None]:
    """``uint8`` clips ``[N, T, 3, h, w]`` of the synthetic benchmark prepared for ``spec``.

    Labels (``int64 [N]``, indices into ``spec.labels``) are returned when the spec's labels
    are the synthetic benchmark's classes, else ``None``.
    """
    from action_recognition.data.synth import CLASSES
    from action_recognition.data.synth import generate_clips

    size = spec.resize_short
    raw, raw_labels = generate_clips(num_clips, seed=seed, frames=spec.clip_span, size=size)
    picks = spec.frame_stride * np.arange(spec.num_frames)
    clips = np.stack([
        np.stack([prepare_frame(clip[i], spec) for i in picks]) for clip in raw])
    labels = None
    if spec.labels and set(spec.labels) == set(CLASSES):
        index = {label: i for i, label in enumerate(spec.labels)}
        labels = np.array([index[CLASSES[k]] for k in raw_labels], dtype=np.int64)
    return np.ascontiguousarray(clips.transpose(0, 1, 4, 2, 3)), labels


def _read_video(path: Path) -> np.ndarray:
    import cv2

    capture = cv2.VideoCapture(str(path))
    frames = []
    try:
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
    finally:
        capture.release()
    if not frames:
        raise ValueError(f'no frames could be read from {path}')
    return np.stack(frames)


def calibration_clips(directory: str | os.PathLike[str], spec: ModelSpec,
                      num_clips: int) -> np.ndarray:
    """Up to ``num_clips`` clips ``uint8 [N, T, 3, h, w]`` from videos or ``.npy`` clips.

    Files are found recursively (``.avi``, ``.mp4``, ``.mkv``, ``.webm``, ``.mov`` or ``.npy``
    arrays ``uint8 [T, H, W, 3]``), spread evenly over the sorted list; one centre clip per file
    sampled as the spec says.
    """
    from action_recognition.data.sampling import sample_indices

    root = Path(directory)
    if not root.is_dir():
        raise ExportError(f'calibration directory not found: {root}')
    suffixes = {'.avi', '.mp4', '.mkv', '.webm', '.mov', '.npy'}
    files = sorted(p for p in root.rglob('*') if p.suffix.lower() in suffixes)
    if not files:
        raise ExportError(f'no videos or .npy clips in {root}')
    chosen = [files[int(i)] for i in np.unique(
        np.linspace(0, len(files) - 1, min(num_clips, len(files))).round().astype(int))]
    clips = []
    for file in chosen:
        try:
            video = np.load(file) if file.suffix == '.npy' else _read_video(file)
            picks = sample_indices(spec, len(video))
            clips.append(np.stack([prepare_frame(video[i], spec) for i in picks]))
        except Exception as error:
            LOGGER.warning('skipping calibration file %s: %s', file, error)
    if not clips:
        raise ExportError(f'no usable calibration clips in {root}')
    return np.ascontiguousarray(np.stack(clips).transpose(0, 1, 4, 2, 3))


def calibration_clips_from(directory: str | os.PathLike[str] | None, spec: ModelSpec,
                           num_clips: int, *, seed: int = 0) -> np.ndarray:
    if directory is not None:
        return calibration_clips(directory, spec, num_clips)
    return synthetic_clips(spec, num_clips, seed=seed)[0]


# ---------------------------------------------------------------------------------------------
# fp16 and int8


def convert_to_fp16(proto: Any) -> Any:
    """A float16 copy of an fp32 graph that keeps its IO types (uint8 in, float32 out).

    Float initializers, ``Constant`` values, ``ConstantOfShape`` values and ``Cast`` to float
    become float16; the output gets a final ``Cast`` back to float32. ``Resize`` scales stay
    float32, as the operator requires.
    """
    import onnx
    from onnx import helper
    from onnx import numpy_helper

    model = onnx.ModelProto()
    model.CopyFrom(proto)
    graph = model.graph
    float_type = onnx.TensorProto.FLOAT
    half_type = onnx.TensorProto.FLOAT16
    keep_float = {node.input[2] for node in graph.node
                  if node.op_type == 'Resize' and len(node.input) > 2}

    def to_half(tensor: Any) -> Any:
        array = numpy_helper.to_array(tensor).astype(np.float16)
        return numpy_helper.from_array(array, tensor.name)

    for i, init in enumerate(graph.initializer):
        if init.data_type == float_type and init.name not in keep_float:
            graph.initializer[i].CopyFrom(to_half(init))
    for node in graph.node:
        if node.op_type in ('Constant', 'ConstantOfShape'):
            for attribute in node.attribute:
                if attribute.type == onnx.AttributeProto.TENSOR and \
                        attribute.t.data_type == float_type and \
                        not set(node.output) & keep_float:
                    attribute.t.CopyFrom(to_half(attribute.t))
        if node.op_type == 'Cast':
            for attribute in node.attribute:
                if attribute.name == 'to' and attribute.i == float_type:
                    attribute.i = half_type
    for output in graph.output:
        if output.type.tensor_type.elem_type != float_type:
            continue
        internal = output.name + '_fp16'
        for node in graph.node:
            for j, name in enumerate(node.output):
                if name == output.name:
                    node.output[j] = internal
            for j, name in enumerate(node.input):
                if name == output.name:
                    node.input[j] = internal
        graph.node.append(helper.make_node('Cast', [internal], [output.name], to=float_type,
                                           name=output.name + '_to_float32'))
    del graph.value_info[:]
    return onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True)


class _ClipReader:
    """``CalibrationDataReader`` over ``uint8`` clips ``[N, T, 3, h, w]`` (one clip a call)."""

    def __init__(self, clips: np.ndarray) -> None:
        self._clips = clips
        self._iter: Iterator[np.ndarray] = iter(clips)

    def get_next(self) -> dict[str, np.ndarray] | None:
        clip = next(self._iter, None)
        return None if clip is None else {INPUT_NAME: np.ascontiguousarray(clip)}

    def rewind(self) -> None:
        self._iter = iter(self._clips)


def quantize_int8(proto: Any, clips: np.ndarray, *, per_channel: bool = True) -> Any:
    """Static QDQ int8 copy of an fp32 graph calibrated on ``clips`` ``uint8 [N, T, 3, h, w]``.

    Weights int8 (per output channel), activations uint8, MinMax calibration; the uint8 input
    and float32 output are unchanged.
    """
    import onnx
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
        # Batch norms that could not be folded into a convolution stay in float.
        keep_float = [node.name for node in onnx.load(prepared).graph.node
                      if node.op_type == 'BatchNormalization']
        root = logging.getLogger()
        level = root.level
        root.setLevel(logging.ERROR)  # the quantiser logs every bias copy on the root logger
        try:
            with warnings.catch_warnings():
                warnings.simplefilter('ignore')
                quantize_static(
                    str(prepared), str(target), _ClipReader(clips),
                    quant_format=QuantFormat.QDQ, activation_type=QuantType.QUInt8,
                    weight_type=QuantType.QInt8, per_channel=per_channel,
                    calibrate_method=CalibrationMethod.MinMax, nodes_to_exclude=keep_float,
                    extra_options={'ActivationSymmetric': False, 'WeightSymmetric': True})
        finally:
            root.setLevel(level)
        return onnx.load(target)


def evaluate_onnx(path: str | os.PathLike[str], clips: np.ndarray,
                  spec: ModelSpec) -> np.ndarray:
    """Logits ``[N, classes]`` of an ONNX file on ``uint8`` clips ``[N, T, 3, h, w]`` (CPU)."""
    return _run(_session(Path(path)), clips, spec)


# ---------------------------------------------------------------------------------------------
# Command line

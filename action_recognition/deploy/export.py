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
  axis is exercised): the max abs difference of the logits is logged and reported; above
  ``1e-4`` in fp32 the export fails.
- Optional fp16 (weights and activations in float16, ``uint8`` in and float32 out kept) and int8
  (static QDQ, per-channel int8 weights and uint8 activations, calibrated on clips from
  ``--calibration DIR`` or on synthetic clips), see :mod:`~action_recognition.io.quantize`
  and :mod:`~action_recognition.deploy.calibration`; their agreement with fp32 and the accuracy
  change on synthetic clips (:func:`~action_recognition.data.clips.synthetic_clips`) are
  reported.

The graph is made by the package's one exporter, :func:`~action_recognition.deploy.onnx_export.
export_graph`.

Opset 17 (the default) runs on ONNX Runtime 1.14 and later, the versions JetPack 5/6 ship.
"""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field
import logging
import os
from pathlib import Path
import time
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import torch
from torch import nn

from action_recognition.data.clips import synthetic_clips
from action_recognition.deploy.calibration import calibration_clips_from
from action_recognition.deploy.onnx_export import DEFAULT_OPSET
from action_recognition.deploy.onnx_export import export_graph
from action_recognition.deploy.onnx_export import ExportError
from action_recognition.files import atomic_write_bytes
from action_recognition.files import check_output
from action_recognition.io.onnx_check import rank_proof
from action_recognition.io.quantize import convert_to_fp16
from action_recognition.io.quantize import QuantizationError
from action_recognition.io.quantize import quantize_onnx_int8
from action_recognition.io.specs import RankProof
from action_recognition.io.specs import set_onnx_metadata
from action_recognition.models import model_info
from action_recognition.models.deployed import DeployedModel
from action_recognition.spec import ModelSpec

__all__ = ['ExportReport', 'export_onnx', 'evaluate_onnx', 'TOLERANCE']

LOGGER = logging.getLogger(__name__)

TOLERANCE = 1e-4
INPUT_NAME = 'frames'
OUTPUT_NAME = 'logits'
_MAX_PROTO_BYTES = 2 ** 31 - 1


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


def _save(proto: Any, path: Path, *, force: bool) -> None:
    """Write one self-contained file (all weights inline, no external data), atomically
    through a uniquely named temporary; an existing ``path`` only with ``force``."""
    data = proto.SerializeToString()
    if len(data) > _MAX_PROTO_BYTES:
        raise ExportError(f'the model is {len(data) / 1e9:.2f} GB, above the 2 GB a '
                          f'self-contained ONNX file can hold')
    onnx.checker.check_model(proto, full_check=True)
    atomic_write_bytes(path, data, force=force)


def _session(path_or_bytes: Path | bytes, threads: int | None = None) -> Any:
    """An ONNX Runtime session on the CPU (the checks run where the export runs)."""
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
    proto = export_graph(module, example, opset=opset, input_name=INPUT_NAME,
                         output_names=[OUTPUT_NAME], input_axis='batch_x_frames',
                         output_axis='batch')
    proof = rank_proof(proto)
    set_onnx_metadata(proto, spec, proof)
    problems = list(proof.problems)
    if problems and not allow_5d:
        raise ExportError(
            f'the exported graph of {spec.model} is not 4D-only ({len(problems)} problems): '
            + '; '.join(problems[:5]))
    rank = proof.max_rank
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
    LOGGER.info('ONNX Runtime vs PyTorch (fp32): max abs diff %.3g (tolerance %g)', diff,
                tolerance)
    if not diff <= tolerance:
        raise ExportError(f'ONNX Runtime and PyTorch disagree: max abs diff {diff:.3g} > '
                          f'{tolerance:g}')
    report = ExportReport(path=path, precision='fp32', four_d_only=not problems,
                          problems=problems, max_rank=rank, max_abs_diff=diff)
    if not (fp16 or int8):
        _save(proto, path, force=force)
    else:
        final, final_proof = _reduced(proto, spec, fp16=fp16, calibration=calibration,
                                      clips=calibration_clips, seed=seed)
        report.precision = 'fp16' if fp16 else 'int8'
        if final_proof.problems and not allow_5d:
            raise ExportError(f'the {report.precision} graph is not 4D-only: '
                              + '; '.join(final_proof.problems[:5]))
        report.problems = list(final_proof.problems)
        report.four_d_only = final_proof.four_d_only
        report.max_rank = final_proof.max_rank
        _save(final, path, force=force)
        _compare(report, fp32_bytes, path, spec, eval_clips, seed)
    report.size_bytes = path.stat().st_size
    report.seconds = time.perf_counter() - start
    return report


def _reduced(proto: Any, spec: ModelSpec, *, fp16: bool,
             calibration: str | os.PathLike[str] | None, clips: int,
             seed: int) -> tuple[Any, RankProof]:
    """The fp16 or int8 copy of the checked fp32 graph, with its metadata and its own proof."""
    try:
        if fp16:
            final = convert_to_fp16(proto)
        else:
            final = quantize_onnx_int8(proto, calibration_clips_from(calibration, spec, clips,
                                                                     seed=seed))
    except QuantizationError as error:
        raise ExportError(str(error)) from error
    proof = rank_proof(final)
    set_onnx_metadata(final, spec, proof)
    return final, proof


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


def evaluate_onnx(path: str | os.PathLike[str], clips: np.ndarray,
                  spec: ModelSpec) -> np.ndarray:
    """Logits ``[N, classes]`` of an ONNX file on ``uint8`` clips ``[N, T, 3, h, w]`` (CPU)."""
    return _run(_session(Path(path)), clips, spec)

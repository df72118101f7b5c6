"""The OpenVINO target: an IR (``model.xml`` + ``model.bin``) for Intel CPUs, GPUs and NPUs.

- The deployed model (``uint8`` frames ``[T, 3, h, w]`` in, normalisation inside, logits out)
  is exported to ONNX through the package's one exporter with static shapes (one clip: what
  an NPU needs and the fastest on a CPU), proved 4D-only there, and converted with
  ``openvino.convert_model``; the IR's own graph is checked again (no value computed from the
  input above rank 4, :func:`~action_recognition.io.openvino_graph.rank_problems`).
- The spec (labels, sampling, preprocessing) goes inside the IR, in its ``rt_info``
  (:func:`~action_recognition.io.specs.set_ir_spec`), and as JSON beside it; the OpenVINO
  backend (``backend: openvino``) reads it from the IR.
- Weights stay fp32 in the ``.bin`` (``compress_to_fp16=False``: OpenVINO's default halves
  them, which changes the results on the CPU); the precision a device computes in is chosen at
  load (``precision: fp32|bf16|int8``). With ``int8`` the IR is quantised here with NNCF on the
  calibration clips (:func:`~action_recognition.io.quantize.quantize_openvino_int8`, the frame
  normalisation left in floating point), so a device loads it without calibrating.
- Placement: ``openvino.Core.query_model`` on the device (``--accelerator``, ``CPU`` by default):
  the operators the device's plugin takes against those it does not (constants, parameters and
  results are not operators). A device this machine does not have is reported as not measured.
- Parity: the compiled IR (fp32 on the CPU) against PyTorch on the evaluation clips.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
import shutil
import tempfile
import time
from typing import Any

import numpy as np
import onnx
import torch
from torch import nn

from action_recognition.deploy.onnx_export import export_graph
from action_recognition.deploy.onnx_export import ExportError
from action_recognition.deploy.targets.common import write_spec_beside
from action_recognition.deploy.targets.report import parity
from action_recognition.deploy.targets.report import Placement
from action_recognition.deploy.targets.report import TargetReport
from action_recognition.files import atomic_path
from action_recognition.files import check_output
from action_recognition.io.model_files import ir_weights_path
from action_recognition.io.onnx_check import check_onnx_4d_only
from action_recognition.io.openvino_graph import import_openvino
from action_recognition.io.openvino_graph import rank_problems
from action_recognition.io.quantize import quantize_openvino_int8
from action_recognition.io.specs import set_ir_spec
from action_recognition.models.deployed import DeployedModel
from action_recognition.spec import ModelSpec

__all__ = ['export_openvino', 'openvino_placement', 'OPENVINO_DEVICE']

LOGGER = logging.getLogger(__name__)

OPENVINO_DEVICE = 'CPU'
_NOT_OPERATORS = frozenset({'Constant', 'Parameter', 'Result'})


def openvino_placement(core: Any, model: Any, device: str) -> Placement:
    """Operators of ``model`` that ``device``'s plugin takes (``Core.query_model``) or not."""
    supported = core.query_model(model, device)
    operators = [op for op in model.get_ordered_ops() if op.get_type_name() not in _NOT_OPERATORS]
    left = [f'{op.get_type_name()}: not supported by the {device} plugin' for op in operators
            if op.get_friendly_name() not in supported]
    return Placement(accelerator=f'OpenVINO {device}', on_accelerator=len(operators) - len(left),
                     on_cpu=len(left), cpu_operators=sorted(set(left)))


def _convert(module: nn.Module, spec: ModelSpec, ov: Any, workdir: Path) -> Any:
    """The deployed module as an ``openvino.Model`` through a 4D-only ONNX graph (one clip)."""
    height, width = spec.input_size
    example = torch.randint(0, 256, (spec.num_frames, 3, height, width), dtype=torch.uint8)
    proto = export_graph(module, example, input_name='frames', output_names=['logits'],
                         dynamic_batch=False)
    problems = check_onnx_4d_only(proto)
    if problems:
        raise ExportError(f'the exported graph of {spec.model} is not 4D-only: '
                          + '; '.join(problems[:5]))
    onnx_path = workdir / 'model.onnx'
    onnx.save(proto, str(onnx_path))
    return ov.convert_model(str(onnx_path))


def export_openvino(model: nn.Module, spec: ModelSpec, path: str | os.PathLike[str], *,
                    int8: bool = False, calibration: np.ndarray | None = None,
                    eval_clips: np.ndarray | None = None, eval_labels: np.ndarray | None = None,
                    device: str = OPENVINO_DEVICE, force: bool = False) -> TargetReport:
    """Write the IR ``path`` (``.xml``, with its ``.bin`` beside it) and the spec beside it.

    ``calibration``: ``uint8`` clips ``[N, T, 3, h, w]`` for int8 (required with ``int8``);
    ``eval_clips``: clips the IR is compared with PyTorch on (``eval_labels``: their labels, for
    the accuracy of both). Both files are refused when they
    exist, unless ``force``; each is written through a temporary and renamed.
    """
    start = time.perf_counter()
    path = Path(path)
    if path.suffix.lower() != '.xml':
        raise ValueError(f'an OpenVINO IR is written as a .xml file (with its .bin beside it), '
                         f'not {path.name}')
    if int8 and (calibration is None or not len(calibration)):
        raise ValueError('int8 needs calibration clips')
    path = check_output(path, force=force)
    weights = check_output(ir_weights_path(path), force=force)
    ov = import_openvino()
    module = DeployedModel(model, spec).eval()
    with tempfile.TemporaryDirectory(prefix='ar_openvino_') as workdir:
        graph = _convert(module, spec, ov, Path(workdir))
        if int8:
            assert calibration is not None
            graph = quantize_openvino_int8(graph, list(calibration), logger=LOGGER)
        problems = rank_problems(graph)
        if problems:
            raise ExportError('the OpenVINO graph is not 4D-only: ' + '; '.join(problems[:5]))
        set_ir_spec(graph, spec)
        saved = Path(workdir) / 'model.xml'
        ov.save_model(graph, str(saved), compress_to_fp16=False)
        # The .bin first: an .xml is never beside weights that are not its own for long.
        with atomic_path(weights, force=force) as temporary:
            shutil.copyfile(ir_weights_path(saved), temporary)
        with atomic_path(path, force=force) as temporary:
            shutil.copyfile(saved, temporary)
    report = TargetReport(target='openvino', path=path, precision='int8' if int8 else 'fp32',
                          size_bytes=path.stat().st_size + weights.stat().st_size,
                          spec_path=write_spec_beside(path, spec, force=force),
                          notes=[f'OpenVINO {ov.get_version()}; weights {weights}'])
    core = ov.Core()
    written = core.read_model(str(path), str(weights))
    if device in core.available_devices:
        report.placement = openvino_placement(core, written, device)
    else:
        report.notes.append(f'placement not measured: OpenVINO device {device} is not on this '
                            f'machine (available: {", ".join(core.available_devices)})')
    if eval_clips is not None and len(eval_clips):
        request = core.compile_model(written, 'CPU', {'INFERENCE_PRECISION_HINT': 'f32'}) \
            .create_infer_request()
        got = np.concatenate([np.asarray(request.infer({0: clip})[0], np.float32)
                              for clip in eval_clips])
        with torch.inference_mode():
            reference = np.concatenate([module(torch.from_numpy(clip)).numpy()
                                        for clip in eval_clips])
        report.parity = parity(reference, got, eval_labels)
    report.seconds = time.perf_counter() - start
    LOGGER.info('wrote %s in %.1f s', path, report.seconds)
    return report

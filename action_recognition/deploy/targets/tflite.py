"""The TFLite target, for Arm Ethos-U NPUs: PyTorch -> TFLite -> static int8 -> Vela.

- PyTorch to TFLite with ``litert-torch`` (no TensorFlow): the model with its normalisation, on
  float input ``[T, 3, h, w]`` in 0..255 (one clip; the Ethos-U takes int8 input, which the
  quantiser derives from the calibrated float input).
- Static int8 weights and activations with ``ai-edge-quantizer`` (``static_wi8_ai8``),
  calibrated on clips of the synthetic benchmark prepared as the spec says (or the user's): each
  tensor's range is its true minimum and maximum over the clips (:func:`_calibrate`), and the
  input's is 0..255, so that every pixel value is exact in int8 (:func:`_full_range`).
- ``vela`` (Arm's Ethos-U compiler) compiles it for an accelerator configuration
  (``ethos-u55-256`` by default) and reports how many operators run on the NPU and which stay on
  the CPU, with its reasons: that report is the placement.

These tools live in their own environment, ``.venv-edge`` (``make edge-env``): litert-torch
brings packages that clash with the ROS 2 build tools in ``.venv`` (requirements-edge.txt says
which). Run the command there: ``.venv-edge/bin/action-recognition export --target tflite ...``.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
import re
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Any

import numpy as np
import torch
from torch import nn

from action_recognition.deploy.targets.common import write_spec_beside
from action_recognition.deploy.targets.report import parity
from action_recognition.deploy.targets.report import Placement
from action_recognition.deploy.targets.report import TargetReport
from action_recognition.files import atomic_path
from action_recognition.files import check_output
from action_recognition.models.deployed import DeployedModel
from action_recognition.spec import ModelSpec

__all__ = ['export_tflite', 'vela_placement', 'EdgeToolchainError', 'ETHOS_U_CONFIG']

LOGGER = logging.getLogger(__name__)

ETHOS_U_CONFIG = 'ethos-u55-256'


class EdgeToolchainError(RuntimeError):
    """litert-torch, ai-edge-quantizer or vela is not installed in this environment."""


def _toolchain() -> tuple[Any, Any, Any, Any]:
    try:
        # Optional heavy dependencies, installed in .venv-edge only (see the module docstring).
        from ai_edge_litert.interpreter import Interpreter
        from ai_edge_quantizer import quantizer
        from ai_edge_quantizer import recipe
        import litert_torch
    except ImportError as error:
        raise EdgeToolchainError(
            f'the tflite target needs the edge toolchain ({error.name} is missing): `make '
            'edge-env` creates .venv-edge; run .venv-edge/bin/action-recognition export '
            '--target tflite ...') from error
    return litert_torch, quantizer, recipe, Interpreter


def _vela_command() -> str:
    beside = Path(sys.executable).with_name('vela')
    found = str(beside) if beside.is_file() else shutil.which('vela')
    if not found:
        raise EdgeToolchainError('vela (ethos-u-vela) is not installed: `make edge-env`')
    return found


class _FloatInput(nn.Module):
    """The deployed model on float frames ``[T, 3, h, w]`` in 0..255 (what TFLite takes)."""

    def __init__(self, model: nn.Module, spec: ModelSpec) -> None:
        super().__init__()
        self.deployed = DeployedModel(model, spec)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return self.deployed(frames)


def _quantize(values: np.ndarray, details: dict[str, Any]) -> np.ndarray:
    """``values`` in the input's type: int8 inputs take ``round(x / scale) + zero_point``."""
    dtype = np.dtype(details['dtype'])
    if dtype == np.float32:
        return values.astype(np.float32)
    scale, zero_point = details['quantization']
    info = np.iinfo(dtype)
    return np.clip(np.round(values / scale) + zero_point, info.min, info.max).astype(dtype)


def _dequantize(values: np.ndarray, details: dict[str, Any]) -> np.ndarray:
    if np.dtype(details['dtype']) == np.float32:
        return values.astype(np.float32)
    scale, zero_point = details['quantization']
    return ((values.astype(np.float32) - zero_point) * scale).astype(np.float32)


def _full_range(calibration: np.ndarray) -> np.ndarray:
    """The calibration clips as float, with one pixel of the first frame at 0 and one at 255.

    The quantiser takes the input's int8 range from the calibration data; clips whose pixels
    span, say, 0..239 give a scale of 0.94, which rounds every pixel value and clips the
    brighter ones (the default model lost 7% of top-1 agreement with PyTorch to it). With both
    ends present the scale is exactly 1 (zero point -128): every ``uint8`` pixel is represented
    exactly. Two pixels of one frame barely move the other tensors' ranges.
    """
    clips = calibration.astype(np.float32)  # a copy
    clips[0, 0, :, 0, 0] = 0.0
    clips[0, 0, :, 0, 1] = 255.0
    return clips


def _calibrate(quant: Any, key: str, name: str, clips: np.ndarray) -> dict[str, Any]:
    """Every tensor's range over all the calibration clips: the least minimum and the greatest
    maximum, clip by clip.

    Not ``Quantizer.calibrate`` on the clips at once: it merges the samples' ranges with a
    moving average (smoothing 0.95), so the first clips decide them and later ones barely
    widen them (the default model: top-1 93.2% on 44 clips after int8 that way, 97.7% with the
    true ranges, as in PyTorch).
    """
    ranges: dict[str, Any] = {}
    for clip in clips:
        for tensor, found in quant.calibrate({key: [{name: clip}]}).items():
            if tensor not in ranges:
                ranges[tensor] = dict(found)
            else:
                ranges[tensor]['min'] = np.minimum(ranges[tensor]['min'], found['min'])
                ranges[tensor]['max'] = np.maximum(ranges[tensor]['max'], found['max'])
    return ranges


def _run_tflite(interpreter_class: Any, path: Path, clips: np.ndarray) -> np.ndarray:
    """Logits ``[N, classes]`` of a TFLite file on ``clips`` ``[N, T, 3, h, w]`` (0..255)."""
    interpreter = interpreter_class(model_path=str(path))
    signatures = interpreter.get_signature_list()
    key = next(iter(signatures))
    runner = interpreter.get_signature_runner(key)
    name = signatures[key]['inputs'][0]
    input_details = runner.get_input_details()[name]
    output_details = runner.get_output_details()
    outputs = []
    for clip in clips:
        result = runner(**{name: _quantize(clip.astype(np.float32), input_details)})
        (output_name, value), = result.items()
        outputs.append(_dequantize(value, output_details[output_name]))
    return np.concatenate(outputs).astype(np.float32)


def vela_placement(path: str | os.PathLike[str], *,
                   accelerator: str = ETHOS_U_CONFIG) -> Placement:
    """Compile ``path`` (an int8 TFLite file) with Vela; its own operator counts and reasons."""
    with tempfile.TemporaryDirectory(prefix='ar_vela_') as workdir:
        done = subprocess.run(
            [_vela_command(), '--accelerator-config', accelerator, '--output-dir', workdir,
             str(path)], capture_output=True, text=True, check=False)
    text = done.stdout + done.stderr
    if done.returncode != 0:
        raise RuntimeError(f'vela failed on {path} (exit {done.returncode}): '
                           f'{text.strip().splitlines()[-1:]}')
    npu = re.search(r'NPU operators = (\d+)', text)
    cpu = re.search(r'CPU operators = (\d+)', text)
    if npu is None or cpu is None:
        raise RuntimeError(f'vela printed no operator counts for {path}')
    reasons = []
    lines = text.splitlines()
    for index, line in enumerate(lines):
        found = re.match(r'Warning \(supported operators\) operator: (\w+)', line)
        if found:
            why = next((lines[k].removeprefix('Reason: ').strip()
                        for k in range(index + 1, min(index + 4, len(lines)))
                        if lines[k].startswith('Reason')), 'no reason given')
            reasons.append(f'{found.group(1)}: {why}')
    return Placement(accelerator=accelerator, on_accelerator=int(npu.group(1)),
                     on_cpu=int(cpu.group(1)), cpu_operators=sorted(set(reasons)))


def export_tflite(model: nn.Module, spec: ModelSpec, path: str | os.PathLike[str], *,
                  int8: bool = True, calibration: np.ndarray | None = None,
                  eval_clips: np.ndarray | None = None,
                  eval_labels: np.ndarray | None = None, accelerator: str = ETHOS_U_CONFIG,
                  force: bool = False) -> TargetReport:
    """Write ``path`` (``.tflite``) and its spec beside it; report placement and parity.

    ``calibration``: ``uint8`` clips ``[N, T, 3, h, w]`` for int8 (required with ``int8``);
    ``eval_clips``: clips the TFLite model is compared with PyTorch on (``eval_labels``: their
    labels, for the accuracy of both). Vela's placement is
    reported for int8 files (the Ethos-U runs int8 only).
    """
    litert_torch, quantizer, recipe, interpreter = _toolchain()
    start = time.perf_counter()
    path = check_output(path, force=force)
    if int8 and (calibration is None or not len(calibration)):
        raise ValueError('int8 needs calibration clips')
    module = _FloatInput(model, spec).eval()
    height, width = spec.input_size
    example = torch.rand(spec.num_frames, 3, height, width) * 255
    with tempfile.TemporaryDirectory(prefix='ar_tflite_') as workdir:
        float_path = Path(workdir) / 'float.tflite'
        litert_torch.convert(module, (example,)).export(str(float_path))
        final = float_path
        if int8:
            assert calibration is not None
            quant = quantizer.Quantizer(str(float_path))
            quant.load_quantization_recipe(recipe.static_wi8_ai8())
            signatures = interpreter(model_path=str(float_path)).get_signature_list()
            key = next(iter(signatures))
            name = signatures[key]['inputs'][0]
            ranges = _calibrate(quant, key, name, _full_range(calibration))
            final = Path(workdir) / 'int8.tflite'
            quant.quantize(ranges).export_model(str(final), overwrite=True)
        with atomic_path(path, force=force) as temporary:
            shutil.copyfile(final, temporary)
    report = TargetReport(target='tflite', path=path, precision='int8' if int8 else 'fp32',
                          size_bytes=path.stat().st_size,
                          spec_path=write_spec_beside(path, spec, force=force))
    if eval_clips is not None and len(eval_clips):
        with torch.inference_mode():
            reference = np.concatenate([
                module(torch.from_numpy(clip.astype(np.float32))).numpy() for clip in eval_clips])
        report.parity = parity(reference, _run_tflite(interpreter, path, eval_clips), eval_labels)
    if int8:
        report.placement = vela_placement(path, accelerator=accelerator)
    report.seconds = time.perf_counter() - start
    LOGGER.info('wrote %s in %.1f s', path, report.seconds)
    return report

"""The RKNN target, for Rockchip NPUs (rk3588 by default), through rknn-toolkit2's simulator.

rknn-toolkit2 pins numpy<=1.26, onnx<=1.18 and torch<=2.4, so it lives in its own environment,
``.venv-rknn`` (``make rknn-env``), where the package does not run: this module exports the
model to a float-input ONNX graph here (the toolkit's compiler aborts on the uint8 input followed
by a Cast, ``Not Support Dtype: 2``; the normalisation stays inside the graph), writes the
calibration and evaluation clips as ``.npy``, and runs :mod:`rknn_driver` there, which builds
(fp16, or int8 ``w8a8`` calibrated), exports the ``.rknn`` file and runs the clips through the
simulator. Placement is read from the toolkit's own build table (every operator's target, CPU or
NPU); parity compares the simulator's logits with PyTorch's.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
import shutil
import subprocess
import tempfile
import time

import numpy as np
import onnx
import torch
from torch import nn

from action_recognition.deploy.onnx_export import export_graph
from action_recognition.deploy.targets import rknn_driver
from action_recognition.deploy.targets.common import write_spec_beside
from action_recognition.deploy.targets.report import parity
from action_recognition.deploy.targets.report import Placement
from action_recognition.deploy.targets.report import TargetReport
from action_recognition.files import atomic_path
from action_recognition.files import check_output
from action_recognition.models.deployed import DeployedModel
from action_recognition.spec import ModelSpec

__all__ = ['export_rknn', 'rknn_python', 'RknnToolchainError', 'RKNN_PLATFORM']

LOGGER = logging.getLogger(__name__)

RKNN_PLATFORM = 'rk3588'
_REPO = Path(__file__).resolve().parents[3]


class RknnToolchainError(RuntimeError):
    """The RKNN environment (``.venv-rknn``) is missing, or the toolkit failed."""


def rknn_python() -> Path | None:
    """The RKNN environment's Python: ``$ACTION_RECOGNITION_RKNN_PYTHON`` or the checkout's
    ``.venv-rknn``; ``None`` when there is none."""
    given = os.environ.get('ACTION_RECOGNITION_RKNN_PYTHON')
    candidate = Path(given) if given else _REPO / '.venv-rknn' / 'bin' / 'python'
    return candidate if candidate.is_file() else None


def export_float_onnx(model: nn.Module, spec: ModelSpec, path: Path) -> None:
    """The deployed model (normalisation inside) on float frames ``[T, 3, h, w]`` in 0..255."""
    module = DeployedModel(model, spec).eval()
    height, width = spec.input_size
    example = torch.rand(spec.num_frames, 3, height, width) * 255
    proto = export_graph(module, example, input_name='frames', output_names=['logits'],
                         dynamic_batch=False)
    onnx.save(proto, str(path))


def export_rknn(model: nn.Module, spec: ModelSpec, path: str | os.PathLike[str], *,
                platform: str = RKNN_PLATFORM, int8: bool = False,
                calibration: np.ndarray | None = None, eval_clips: np.ndarray | None = None,
                eval_labels: np.ndarray | None = None, force: bool = False) -> TargetReport:
    """Write ``path`` (``.rknn``) and its spec beside it; report placement and parity."""
    python = rknn_python()
    if python is None:
        raise RknnToolchainError('the rknn target needs the RKNN toolchain environment: `make '
                                 'rknn-env` creates .venv-rknn (or set '
                                 'ACTION_RECOGNITION_RKNN_PYTHON)')
    start = time.perf_counter()
    path = check_output(path, force=force)
    if int8 and (calibration is None or not len(calibration)):
        raise ValueError('int8 needs calibration clips')
    with tempfile.TemporaryDirectory(prefix='ar_rknn_') as workdir:
        work = Path(workdir)
        export_float_onnx(model, spec, work / 'model.onnx')
        files: dict[str, list[str]] = {'calibration': [], 'eval': []}
        for kind, clips in (('calibration', calibration if int8 else None),
                            ('eval', eval_clips)):
            for index, clip in enumerate(clips if clips is not None else []):
                clip_path = work / f'{kind}_{index}.npy'
                np.save(clip_path, clip.astype(np.float32))
                files[kind].append(str(clip_path))
        request = {'workdir': workdir, 'onnx': str(work / 'model.onnx'),
                   'output': str(work / 'model.rknn'), 'platform': platform,
                   'precision': 'int8' if int8 else 'fp16', **files}
        (work / 'request.json').write_text(json.dumps(request))
        # The toolkit writes its intermediate graphs (check*.onnx) to the working directory.
        done = subprocess.run([str(python), rknn_driver.__file__, str(work / 'request.json')],
                              capture_output=True, text=True, check=False, cwd=workdir)
        log = done.stdout + done.stderr
        if done.returncode != 0:
            raise RknnToolchainError(f'rknn-toolkit2 failed (exit {done.returncode}): '
                                     f'{log.strip().splitlines()[-3:]}')
        with atomic_path(path, force=force) as temporary:
            shutil.copyfile(work / 'model.rknn', temporary)
        logits = np.load(work / 'logits.npy')
        version = json.loads((work / 'result.json').read_text())['version']
    npu, cpu, output = rknn_driver.placement(log)
    report = TargetReport(
        target='rknn', path=path, precision='int8' if int8 else 'fp16',
        size_bytes=path.stat().st_size, spec_path=write_spec_beside(path, spec, force=force),
        placement=Placement(accelerator=f'{platform} NPU', on_accelerator=len(npu),
                            on_cpu=len(cpu), cpu_operators=cpu, output_layout=output),
        notes=[f'rknn-toolkit2 {version}, simulator'])
    if eval_clips is not None and len(eval_clips):
        module = DeployedModel(model, spec).eval()
        with torch.inference_mode():
            reference = np.concatenate([
                module(torch.from_numpy(clip.astype(np.float32))).numpy() for clip in eval_clips])
        report.parity = parity(reference, logits, eval_labels)
    report.seconds = time.perf_counter() - start
    LOGGER.info('wrote %s in %.1f s', path, report.seconds)
    return report

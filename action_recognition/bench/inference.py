"""``action-recognition bench``: models x backends x clip sizes, side by side in one process.

For every combination (random weights; speed does not depend on them) it measures, at each
thread count asked for (default: all cores, then one):

- latency per clip (batch 1): p50 and p90 of ``--repeats`` timed runs after ``--warmup``;
- clips/s (``1 / p50``) and achieved GMAC/s (the model's MACs per clip / p50), and that as a
  share of the machine's fp32 peak, measured in the same run with a large matrix multiply;
- frames/s sustained in streaming mode: the recogniser fed a stream with a new window every
  ``--hop`` frames (for ``torch-stream`` the 2D-Net runs once per frame and its features are
  cached; the others recompute every window);
- peak resident memory of the process while the combination ran (the table and the chart:
  :mod:`action_recognition.bench.report`);
- for reduced precisions (``onnxruntime-int8``, ``onnxruntime-fp16``, ``torch-bf16``,
  ``openvino-bf16``, ``openvino-int8``): max abs logit difference and top-1 agreement with fp32
  on synthetic clips, and the accuracy change when a checkpoint trained on the synthetic
  benchmark is given (``--checkpoint NAME=PATH``).

Backends: ``torch`` (eager fp32), ``torch-bf16`` (eager, bfloat16 autocast; CPUs with bf16
support), ``torch-stream`` (streaming ECO-Lite), ``onnxruntime`` (fp32), ``onnxruntime-int8``
(static QDQ), ``onnxruntime-fp16``, ``openvino`` (the fp32 ONNX file on OpenVINO's CPU plugin,
fp32), ``openvino-bf16`` (the same, bf16 inference precision), ``openvino-int8`` (quantised at
load by NNCF on ``calibration_clips`` synthetic clips). The machine (CPU model, cores,
bf16/VNNI/AMX flags) and the load average before and after are part of the output: other work
on the machine distorts multi-threaded figures badly.

A model name ``NAME:4d`` is ``NAME`` rewritten by the Conv3d -> 4D converter
(:func:`~action_recognition.deploy.convert.to_4d`, same weights): ``--models x3d_m_5d
x3d_m_5d:4d`` measures a 5D original and its exact 4D-only form side by side on every backend.
``NAME@KEY=VALUE,...`` passes builder options (values read as YAML): ``x3d_m@fused_stem=true``.
"""

from __future__ import annotations

import contextlib
import copy
from dataclasses import asdict
from dataclasses import dataclass
from dataclasses import field
import importlib.metadata
import logging
import os
from pathlib import Path
import platform
import statistics
import tempfile
import time
from typing import Any

import numpy as np
import torch
from torch import nn

from action_recognition.data.clips import synthetic_clips
from action_recognition.data.synth_clips import CLASSES
from action_recognition.deploy.convert import to_4d
from action_recognition.deploy.export import export_onnx
from action_recognition.models import create_model
from action_recognition.models import model_info
from action_recognition.models.analysis import count_macs
from action_recognition.models.registry import parse_builder_options
from action_recognition.runtime.openvino_backend import OpenVinoBackend
from action_recognition.runtime.openvino_backend import OpenVinoPrecision
from action_recognition.runtime.ort_backend import OnnxRuntimeBackend
from action_recognition.runtime.recognizer import Recognizer
from action_recognition.runtime.settings import StreamSettings
from action_recognition.runtime.torch_backend import load_checkpoint_model
from action_recognition.runtime.torch_backend import TorchBackend
from action_recognition.spec import ModelSpec

__all__ = ['BenchRow', 'BenchResult', 'machine_info', 'measure_peak_gmacs', 'run_bench',
           'BACKENDS']

LOGGER = logging.getLogger(__name__)

BACKENDS = ('torch', 'torch-4d', 'torch-bf16', 'torch-stream', 'onnxruntime', 'onnxruntime-int8',
            'onnxruntime-fp16', 'openvino', 'openvino-bf16', 'openvino-int8')
OPENVINO_PRECISIONS: dict[str, OpenVinoPrecision] = {
    'openvino': 'fp32', 'openvino-bf16': 'bf16', 'openvino-int8': 'int8'}
REDUCED_PRECISION = ('torch-bf16', 'onnxruntime-int8', 'onnxruntime-fp16', 'openvino-bf16',
                     'openvino-int8')
DEFAULT_MODELS = ('eco_lite_add', 'eco_lite_conv3d_5d')
DEFAULT_BACKENDS = ('torch', 'torch-stream', 'onnxruntime', 'onnxruntime-int8', 'torch-bf16')


@dataclass
class BenchRow:
    """One model x backend x clip size x thread count."""

    model: str
    backend: str
    frames: int
    size: int
    threads: int
    four_d_only: bool
    gmac_per_clip: float
    latency_p50_ms: float | None = None
    latency_p90_ms: float | None = None
    clips_per_s: float | None = None
    gmacs_per_s: float | None = None
    peak_fraction: float | None = None
    stream_fps: float | None = None
    stream_hop: int = 4
    peak_rss_mb: float | None = None
    max_abs_diff_vs_fp32: float | None = None
    top1_agreement_vs_fp32: float | None = None
    accuracy_fp32: float | None = None
    accuracy: float | None = None
    note: str = ''


@dataclass
class BenchResult:
    machine: dict[str, Any]
    peak_gmacs: dict[str, float]
    load_before: tuple[float, float, float]
    load_after: tuple[float, float, float]
    rows: list[BenchRow] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {'machine': self.machine, 'peak_gmacs': self.peak_gmacs,
                'load_before': list(self.load_before), 'load_after': list(self.load_after),
                'seconds': self.seconds, 'rows': [asdict(r) for r in self.rows]}


# ---------------------------------------------------------------------------------------------
# Machine


def _cpu_flags() -> set[str]:
    try:
        for line in Path('/proc/cpuinfo').read_text().splitlines():
            if line.startswith('flags'):
                return set(line.split(':', 1)[1].split())
    except OSError:
        pass
    return set()


def _openvino_version() -> str | None:
    # From the package's metadata: importing openvino just for its version would send its
    # import telemetry (see io.openvino_graph.import_openvino).
    try:
        return importlib.metadata.version('openvino')
    except importlib.metadata.PackageNotFoundError:
        return None


def machine_info() -> dict[str, Any]:
    """CPU model, cores, relevant ISA flags, library versions."""
    import onnxruntime as ort  # optional heavy dependency: only to report its version

    name = platform.processor() or platform.machine()
    try:
        for line in Path('/proc/cpuinfo').read_text().splitlines():
            if line.startswith('model name'):
                name = line.split(':', 1)[1].strip()
                break
    except OSError:
        pass
    flags = _cpu_flags()
    isa = sorted(f for f in flags if f in {
        'avx2', 'fma', 'avx512f', 'avx512_vnni', 'avx_vnni', 'avx512_bf16', 'amx_bf16',
        'amx_int8', 'avx512_fp16', 'asimd', 'sve'})
    memory_gb = None
    try:
        for line in Path('/proc/meminfo').read_text().splitlines():
            if line.startswith('MemTotal'):
                memory_gb = round(int(line.split()[1]) / 1e6, 1)
    except OSError:
        pass
    return {
        'cpu': name, 'cores': os.cpu_count(), 'isa': isa, 'memory_gb': memory_gb,
        'gpu': torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        'torch': torch.__version__, 'onnxruntime': ort.__version__,
        'openvino': _openvino_version(), 'platform': platform.platform(),
    }


def has_bf16() -> bool:
    flags = _cpu_flags()
    return bool(flags & {'avx512_bf16', 'amx_bf16'}) or torch.cuda.is_available()


def measure_peak_gmacs(threads: int, *, size: int = 2048, repeats: int = 5) -> float:
    """fp32 GMAC/s of a large square matrix multiply at ``threads`` threads (best of runs)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        a = torch.randn(size, size)
        b = torch.randn(size, size)
        torch.mm(a, b)
        best = float('inf')
        for _ in range(repeats):
            start = time.perf_counter()
            torch.mm(a, b)
            best = min(best, time.perf_counter() - start)
        return size ** 3 / best / 1e9
    finally:
        torch.set_num_threads(previous)


def _reset_peak_rss() -> None:
    with contextlib.suppress(OSError):
        Path('/proc/self/clear_refs').write_text('5')


def _peak_rss_mb() -> float | None:
    try:
        for line in Path('/proc/self/status').read_text().splitlines():
            if line.startswith('VmHWM'):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


# ---------------------------------------------------------------------------------------------
# Measuring


CONVERTED_SUFFIX = ':4d'


def _base_name(name: str) -> str:
    """The registry name of a bench model name (``NAME``, ``NAME@K=V,...``, ``NAME:4d``)."""
    return name.removesuffix(CONVERTED_SUFFIX).partition('@')[0]


def _name_options(name: str) -> dict[str, Any]:
    """The builder options of ``NAME@KEY=VALUE,KEY=VALUE`` (as ``--option`` reads them)."""
    _, sep, text = name.removesuffix(CONVERTED_SUFFIX).partition('@')
    return parse_builder_options(text.split(',') if sep else [], f'{name}: each option after @')


def _spec_for(model: str, frames: int, size: int, num_classes: int,
              options: dict[str, Any]) -> ModelSpec:
    labels = CLASSES if num_classes == len(CLASSES) else ()
    return ModelSpec(model=model, num_classes=num_classes, num_frames=frames, labels=labels,
                     input_size=(size, size), resize_short=size, options=options)


def _time_runs(fn: Any, warmup: int, repeats: int) -> list[float]:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def _exported(model: nn.Module, spec: ModelSpec, precision: str, workdir: Path,
              exports: dict[str, Path], calibration_clips: int) -> Path:
    """The model's ONNX file in ``precision`` (``'fp32'``, ``'fp16'``, ``'int8'``), exported
    once per model and clip size (``workdir``: a folder of this model's own)."""
    if precision not in exports:
        path = workdir / f'{spec.model}_{spec.num_frames}x{spec.input_size[0]}_{precision}.onnx'
        export_onnx(model, spec, path, allow_5d=True, fp16=precision == 'fp16',
                    int8=precision == 'int8', calibration_clips=calibration_clips,
                    eval_clips=0 if precision == 'fp32' else 11)
        exports[precision] = path
    return exports[precision]


def _make_backend(name: str, model: nn.Module, spec: ModelSpec, threads: int, workdir: Path,
                  exports: dict[str, Path], calibration_clips: int) -> Any:
    if name == 'torch':
        return TorchBackend(model, spec)
    if name == 'torch-4d':
        # The model as the Conv3d -> 4D converter rewrites it (deploy/convert/): for a 5D
        # model, its exact 4D-only twin, measured beside the original.

        example = torch.randn(spec.num_frames, 3, *spec.input_size)
        return TorchBackend(to_4d(copy.deepcopy(model).eval(), example_input=example), spec)
    if name == 'torch-bf16':
        if not has_bf16():
            raise RuntimeError('this CPU has no bf16 support (avx512_bf16/amx_bf16)')
        # bf16 converts the weights: a copy, so the fp32 model stays for the other backends.
        return TorchBackend(copy.deepcopy(model), spec, precision='bf16')
    if name == 'torch-stream':
        return TorchBackend(model, spec, streaming=True)
    if name in OPENVINO_PRECISIONS:
        precision = OPENVINO_PRECISIONS[name]
        if precision == 'bf16' and not has_bf16():
            raise RuntimeError('this CPU has no bf16 support (avx512_bf16/amx_bf16)')
        # The fp32 ONNX file (shared with onnxruntime); bf16 and int8 are OpenVINO's own.
        # A 5D reference (e.g. eco_lite_conv3d_5d) runs beside its 4D forms: allowed here.
        return OpenVinoBackend(_exported(model, spec, 'fp32', workdir, exports,
                                         calibration_clips),
                               precision=precision, threads=threads,
                               calibration_clips=calibration_clips, allow_5d=True)
    if name.startswith('onnxruntime'):
        stored = name.split('-', 1)[1] if '-' in name else 'fp32'
        return OnnxRuntimeBackend(_exported(model, spec, stored, workdir, exports,
                                            calibration_clips),
                                  providers=['CPUExecutionProvider'], threads=threads,
                                  allow_5d=True)
    raise ValueError(f'unknown backend {name!r}; choose from {", ".join(BACKENDS)}')


def _stream_fps(backend: Any, spec: ModelSpec, hop: int, windows: int) -> float:
    """Frames/s of the recogniser over a stream giving ``windows`` clips every ``hop`` frames."""

    recognizer = Recognizer(backend, StreamSettings(hop=hop, hysteresis=None, smoothing='none',
                                                    score_threshold=0.0))
    rng = np.random.default_rng(0)
    height, width = spec.input_size
    pool = rng.integers(0, 256, (8, height, width, 3), dtype=np.uint8)
    for i in range(spec.clip_span):  # fill the buffer (and the feature cache)
        recognizer.push(pool[i % len(pool)], i * 33_333_333)
    count = hop * windows
    start = time.perf_counter()
    for i in range(spec.clip_span, spec.clip_span + count):
        recognizer.push(pool[i % len(pool)], i * 33_333_333)
    elapsed = time.perf_counter() - start
    clips_run = recognizer.counters().clips_run
    if clips_run != windows + 1:
        raise RuntimeError(f'streaming ran {clips_run} clips, expected {windows + 1}')
    return count / elapsed


def _agreement(backend: Any, reference: Any, spec: ModelSpec, clips: np.ndarray,
               labels: np.ndarray | None, row: BenchRow) -> None:
    got = np.concatenate([backend.infer(c) for c in clips])
    ref = np.concatenate([reference.infer(c) for c in clips])
    row.max_abs_diff_vs_fp32 = float(np.abs(got - ref).max())
    row.top1_agreement_vs_fp32 = float((got.argmax(1) == ref.argmax(1)).mean())
    if labels is not None:
        row.accuracy_fp32 = float((ref.argmax(1) == labels).mean())
        row.accuracy = float((got.argmax(1) == labels).mean())


def _measure(row: BenchRow, backend: Any, spec: ModelSpec, *, warmup: int, repeats: int,
             peak: float, stream_windows: int) -> None:
    """One row's timings: one clip's latency (p50, p90), throughput, the share of the peak,
    the streaming rate and the peak memory."""
    _reset_peak_rss()
    height, width = spec.input_size
    clip = np.random.default_rng(0).integers(0, 256, (spec.num_frames, 3, height, width),
                                             dtype=np.uint8)
    times = _time_runs(lambda: backend.infer(clip), warmup, repeats)
    p50 = statistics.median(times)
    row.latency_p50_ms = p50 * 1e3
    row.latency_p90_ms = float(np.percentile(times, 90)) * 1e3
    row.clips_per_s = 1.0 / p50
    row.gmacs_per_s = row.gmac_per_clip / p50
    row.peak_fraction = row.gmacs_per_s / peak
    if stream_windows:
        row.stream_fps = _stream_fps(backend, spec, row.stream_hop, stream_windows)
    row.peak_rss_mb = _peak_rss_mb()


def run_bench(*, models: list[str], backends: list[str], frames: list[int], sizes: list[int],
              threads: list[int], repeats: int = 5, warmup: int = 2, hop: int = 4,
              stream_windows: int = 3, num_classes: int = 11, calibration_clips: int = 8,
              eval_clips: int = 11, checkpoints: dict[str, str] | None = None,
              progress: bool = True) -> BenchResult:
    """Measure every combination; see the module docstring."""
    from tqdm import tqdm  # progress bar, loaded when a benchmark runs

    start = time.perf_counter()
    checkpoints = checkpoints or {}
    infos = {name: model_info(_base_name(name)) for name in models}  # unknown names fail early
    unknown = sorted(set(backends) - set(BACKENDS))
    if unknown:
        raise ValueError(f'unknown backends {unknown}; choose from {", ".join(BACKENDS)}')
    load_before = os.getloadavg()
    peak = {str(t): measure_peak_gmacs(t) for t in threads}
    result = BenchResult(machine=machine_info(), peak_gmacs=peak, load_before=load_before,
                         load_after=load_before)
    combos = [(m, f, s) for m in models for f in frames for s in sizes]
    bar = tqdm(total=len(combos) * len(backends) * len(threads), disable=not progress,
               desc='bench', unit='run')
    with tempfile.TemporaryDirectory(prefix='ar_bench_') as tmp:
        for index, (model_name, num_frames, size) in enumerate(combos):
            info = infos[model_name]
            workdir = Path(tmp) / str(index)  # NAME and NAME:4d export files of one name
            workdir.mkdir()
            torch.manual_seed(0)
            if model_name in checkpoints:
                model, spec = load_checkpoint_model(checkpoints[model_name])
                num_frames, size = spec.num_frames, spec.input_size[0]
            else:
                spec = _spec_for(_base_name(model_name), num_frames, size, num_classes,
                                 _name_options(model_name))
                model = create_model(_base_name(model_name), num_classes=spec.num_classes,
                                     num_frames=num_frames, **spec.options)
            model.eval()
            example = torch.zeros(num_frames, 3, size, size)
            four_d_only = info.four_d_only
            if model_name.endswith(CONVERTED_SUFFIX):
                model = to_4d(model, example_input=example).eval()
                four_d_only = True
            gmac = count_macs(model, example) / 1e9
            exports: dict[str, Path] = {}
            reference = TorchBackend(model, spec)
            clips, labels = synthetic_clips(spec, eval_clips, seed=123) if eval_clips else (
                np.zeros((0,)), None)
            if model_name not in checkpoints:
                labels = None  # the accuracy of random weights means nothing
            clips = clips.reshape(-1, num_frames, 3, size, size)
            for backend_name in backends:
                for thread_count in threads:
                    bar.set_postfix_str(f'{model_name} {backend_name} {num_frames}x{size} '
                                        f'{thread_count}t')
                    row = BenchRow(model=model_name, backend=backend_name, frames=num_frames,
                                   size=size, threads=thread_count,
                                   four_d_only=four_d_only, gmac_per_clip=gmac,
                                   stream_hop=hop)
                    result.rows.append(row)
                    torch.set_num_threads(thread_count)
                    try:
                        backend = _make_backend(backend_name, model, spec, thread_count,
                                                workdir, exports, calibration_clips)
                        _measure(row, backend, spec, warmup=warmup, repeats=repeats,
                                 peak=peak[str(thread_count)], stream_windows=stream_windows)
                        if backend_name in REDUCED_PRECISION and len(clips):
                            _agreement(backend, reference, spec, clips, labels, row)
                        backend.close()
                    except Exception as error:
                        row.note = f'skipped: {str(error).splitlines()[0][:160]}'
                        LOGGER.warning('%s on %s: %s', model_name, backend_name, row.note)
                    bar.update(1)
    bar.close()
    torch.set_num_threads(max(threads))
    result.load_after = os.getloadavg()
    result.seconds = time.perf_counter() - start
    return result

"""The OpenVINO backend: fp32 parity with ONNX Runtime for every model family, int8 and bf16, the
OpenVINO IR (spec in its rt_info), load errors, and the node core with backend openvino."""

import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from action_recognition.data.clips import synthetic_clips
from action_recognition.deploy.export import export_onnx
from action_recognition.io.openvino_graph import import_openvino
from action_recognition.io.specs import ir_spec
from action_recognition.io.specs import set_ir_spec
from action_recognition.models import create_model
from action_recognition.node.core import NodeCore
from action_recognition.node.parameters import parse_parameters
from action_recognition.runtime.backends import load_backend
from action_recognition.runtime.openvino_backend import openvino_device
from action_recognition.runtime.openvino_backend import OpenVinoBackend
from action_recognition.runtime.ort_backend import OnnxRuntimeBackend
from action_recognition.runtime.protocol import ModelLoadError
from action_recognition.runtime.torch_backend import load_checkpoint_model
from action_recognition.spec import ModelSpec

openvino = import_openvino()  # without its import telemetry

REPO = Path(__file__).resolve().parents[1]
DEFAULT_ONNX = REPO / 'models' / 'action_recognition_default.onnx'
FRAMES = 4
SIZE = 112
# Unused by the default model's training (seeds 7919 * epoch), validation (1000) and evaluation
# (2024), and by the demo.
HELD_OUT_SEED = 88

# Every model family, small: the ECO-Lite 3D-Net variants at a quarter of their widths (the
# Inception 2D-Net once, the benchmark's eco_lite_add; the light 2D-Net for the others), and the
# ResNet-50 models (TSN, CT-Net) at 112x112.
FAMILIES = {
    'eco_lite_add_small': {},
    'eco_lite_add': {'width_mult': 0.25},
    'eco_lite_cat': {'net2d': 'small', 'width_mult': 0.25},
    'eco_lite_r2plus1d': {'net2d': 'small', 'width_mult': 0.25},
    'tsn_r50': {},
    'ct_net_r50': {},
}
SLOW = {'eco_lite_add', 'tsn_r50', 'ct_net_r50'}


def _spec(name, options=None, num_classes=7):
    return ModelSpec(model=name, num_classes=num_classes, num_frames=FRAMES,
                     labels=tuple(f'action{i}' for i in range(num_classes)),
                     options=dict(options or {}), input_size=(SIZE, SIZE), resize_short=SIZE)


def _trained_like(model, spec, seed=0):
    """Weights that look trained: every BatchNorm with random scales and shifts and the running
    statistics of real activations (so each channel is normalised differently and a channel
    permutation anywhere changes the output), and a classifier giving logits of a few units.

    The statistics are those of synthetic clips and of random frames (what the exporter checks
    ONNX Runtime against PyTorch on), so that activations stay in range on both.
    """
    generator = torch.Generator().manual_seed(seed)
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    height, width = spec.input_size
    clips = synthetic_clips(spec, 2, seed=seed + 1)[0].reshape(-1, 3, height, width)
    noise = np.random.default_rng(seed).integers(0, 256, clips.shape, dtype=np.uint8)
    frames = torch.from_numpy(np.concatenate([clips, noise])).float() / 255.0
    frames = (frames - 0.45) / 0.225
    with torch.no_grad():
        for norm in norms:
            count = norm.num_features
            norm.weight.copy_(0.25 + 0.5 * torch.rand(count, generator=generator))
            norm.bias.copy_(0.2 * torch.randn(count, generator=generator))
            norm.reset_running_stats()
            norm.momentum = None  # a cumulative average: the statistics of the batch below
        model.train()
        model(frames)
        model.eval()
        for norm in norms:
            norm.momentum = 0.1
            # A channel silent on this batch (ReLU) would be scaled by 1/sqrt(eps), magnifying
            # rounding 300 times; trained statistics are not that degenerate.
            norm.running_var.clamp_(min=0.01)
        classifier = model.get_classifier()
        classifier.weight.normal_(0.0, 1.0, generator=generator)
        classifier.bias.normal_(0.0, 0.1, generator=generator)
        scale = float(model(frames).abs().max())
        classifier.weight.mul_(5.0 / scale)  # logits up to about 5
    return model


def _export(name, root, options=None):
    torch.manual_seed(0)
    options = FAMILIES[name] if options is None else options
    spec = _spec(name, options)
    model = _trained_like(create_model(name, num_classes=spec.num_classes, num_frames=FRAMES,
                                       **options), spec)
    path = root / f'{name}.onnx'
    export_onnx(model, spec, path, eval_clips=0)
    return path


def _frames(spec, clips=2, seed=HELD_OUT_SEED):
    """``clips`` synthetic clips as frames ``[clips*T, 3, h, w]``."""
    return synthetic_clips(spec, clips, seed=seed)[0].reshape(-1, 3, *spec.input_size)


@pytest.mark.parametrize('name', [pytest.param(name, marks=pytest.mark.slow) if name in SLOW
                                  else name for name in FAMILIES])
def test_fp32_parity_with_onnxruntime(name, tmp_path):
    path = _export(name, tmp_path)
    reference = OnnxRuntimeBackend(path, providers=['CPUExecutionProvider'], threads=1)
    backend = load_backend(path, backend='openvino', threads=1)
    assert isinstance(backend, OpenVinoBackend)
    assert backend.name == 'openvino-cpu' and backend.device == 'cpu'
    assert backend.spec == reference.spec and not backend.streaming
    frames = _frames(backend.spec)  # two clips in one call: run one after the other
    expected = reference.infer(frames)
    got = backend.infer(frames)
    assert got.shape == (2, 7) and got.dtype == np.float32
    # Logits of a few units with clips and channels told apart, so that 1e-4 means something.
    assert 1.0 < np.abs(expected).max() < 100.0
    assert np.abs(expected[0] - expected[1]).max() > 0.1
    np.testing.assert_allclose(got, expected, rtol=0.0, atol=1e-4)
    backend.close()


def test_default_model_parity_and_ir_round_trip(tmp_path):
    reference = OnnxRuntimeBackend(DEFAULT_ONNX, providers=['CPUExecutionProvider'], threads=1)
    backend = load_backend(DEFAULT_ONNX, backend='openvino', threads=1)
    frames = _frames(backend.spec, clips=4)
    expected = reference.infer(frames)
    got = backend.infer(frames)
    np.testing.assert_allclose(got, expected, rtol=0.0, atol=1e-4)
    # The IR (model.xml + model.bin) with the spec in its rt_info under the package's key.
    model = openvino.Core().read_model(DEFAULT_ONNX)
    set_ir_spec(model, backend.spec)
    xml = tmp_path / 'default.xml'
    openvino.save_model(model, xml, compress_to_fp16=False)
    assert 'action_recognition.spec' in xml.read_text()
    from_ir = load_backend(xml, threads=1)  # auto: an .xml is an OpenVINO IR
    assert isinstance(from_ir, OpenVinoBackend) and from_ir.spec == backend.spec
    np.testing.assert_allclose(from_ir.infer(frames), got, rtol=0.0, atol=1e-5)
    assert ir_spec(openvino.Core().read_model(xml), xml) == backend.spec


def test_ir_converted_by_openvino_keeps_the_onnx_metadata(tmp_path):
    # What `ovc model.onnx` or openvino.save_model of the ONNX file writes: the ONNX metadata
    # under rt_info/framework, where the spec is found too.
    xml = tmp_path / 'converted.xml'
    openvino.save_model(openvino.Core().read_model(DEFAULT_ONNX), xml)
    backend = load_backend(xml, threads=1)
    assert backend.spec.model == 'eco_lite_add_small' and backend.spec.num_frames == 16


def test_int8_default_model_keeps_its_accuracy(caplog):
    fp32 = OpenVinoBackend(DEFAULT_ONNX, threads=1)
    with caplog.at_level(logging.INFO):
        int8 = OpenVinoBackend(DEFAULT_ONNX, precision='int8', threads=1)
    assert 'quantising to int8 with NNCF on 32 synthetic clips' in caplog.text
    assert int8.name == 'openvino-cpu-int8' and int8.quantized
    assert any(op.get_type_name() == 'FakeQuantize' for op in int8.model.get_ordered_ops())
    clips, labels = synthetic_clips(fp32.spec, 88, seed=HELD_OUT_SEED)

    def top1(backend):
        return np.concatenate([backend.infer(clip) for clip in clips]).argmax(1)

    accuracy_fp32 = float((top1(fp32) == labels).mean())
    accuracy_int8 = float((top1(int8) == labels).mean())
    # Measured: 98.9% and 98.9% (87 of 88 clips each).
    assert accuracy_fp32 >= 0.9
    assert accuracy_int8 >= accuracy_fp32 - 0.01, (accuracy_fp32, accuracy_int8)


def test_bf16_and_an_already_quantised_file(tmp_path, caplog):
    bf16 = OpenVinoBackend(DEFAULT_ONNX, precision='bf16', threads=1)
    assert bf16.name == 'openvino-cpu-bf16'
    fp32 = OpenVinoBackend(DEFAULT_ONNX, threads=1)
    frames = _frames(fp32.spec, clips=4)
    assert (bf16.infer(frames).argmax(1) == fp32.infer(frames).argmax(1)).all()
    # An int8 ONNX file (QDQ, `export --int8`) runs as it is: it is not quantised again.
    spec = _spec('eco_lite_add_small')
    path = tmp_path / 'int8.onnx'
    export_onnx(create_model(spec.model, num_classes=7, num_frames=FRAMES).eval(), spec, path,
                int8=True, calibration_clips=2, eval_clips=0)
    with caplog.at_level(logging.INFO):
        backend = OpenVinoBackend(path, precision='int8', threads=1)
    assert 'already quantised' in caplog.text and 'NNCF' not in caplog.text
    assert backend.quantized and backend.name == 'openvino-cpu-int8'
    assert OpenVinoBackend(path, threads=1).name == 'openvino-cpu-int8'


def test_load_errors_name_the_file_and_the_reason(tmp_path):
    with pytest.raises(ModelLoadError, match='not found'):
        load_backend(tmp_path / 'missing.onnx', backend='openvino')
    corrupt = tmp_path / 'corrupt.onnx'
    corrupt.write_bytes(b'\x08\x07garbage' * 10)
    with pytest.raises(ModelLoadError, match=r'corrupt\.onnx.*not an ONNX file'):
        load_backend(corrupt, backend='openvino')
    xml = tmp_path / 'corrupt.xml'
    xml.write_text('<?xml version="1.0"?><net name="x" version="11"><layers>')
    xml.with_suffix('.bin').write_bytes(b'')
    with pytest.raises(ModelLoadError, match=r'corrupt\.xml: not a valid OpenVINO IR'):
        load_backend(xml)
    xml.with_suffix('.bin').unlink()
    with pytest.raises(ModelLoadError, match=r'the IR weights file corrupt\.bin is missing'):
        load_backend(xml)
    # An IR without the spec in its rt_info.
    frames = openvino.opset13.parameter([-1, 3, 8, 8], openvino.Type.u8, name='frames')
    pooled = openvino.opset13.reduce_mean(openvino.opset13.convert(frames, 'f32'), [1, 2, 3],
                                          keep_dims=False)
    bare = tmp_path / 'bare.xml'
    openvino.save_model(openvino.Model([pooled], [frames], 'bare'), bare)
    with pytest.raises(ModelLoadError, match=r"bare\.xml has no 'action_recognition.spec'"):
        load_backend(bare)
    with pytest.raises(ModelLoadError,
                       match="backend openvino runs on 'cpu' or an 'openvino:' device"):
        load_backend(DEFAULT_ONNX, backend='openvino', device='cuda')
    with pytest.raises(ModelLoadError, match='precision must be one of'):
        OpenVinoBackend(DEFAULT_ONNX, precision='fp8')


def test_a_device_that_is_not_there_is_refused():
    available = openvino.Core().available_devices
    missing = next(d for d in ('NPU', 'GPU.7') if d not in available)
    with pytest.raises(ModelLoadError, match=f'OpenVINO device {missing} is not available on '
                                             r'this machine \(available: .*CPU'):
        load_backend(DEFAULT_ONNX, device=f'openvino:{missing}')
    assert openvino_device('cpu') == 'CPU' and openvino_device('openvino:GPU.1') == 'GPU.1'


def test_5d_models_are_refused_unless_allowed(tmp_path, caplog):
    name = 'eco_lite_conv3d_5d'
    spec = _spec(name, {'net2d': 'small', 'width_mult': 0.25}, num_classes=3)
    model = create_model(name, num_classes=3, num_frames=FRAMES, **spec.options).eval()
    path = tmp_path / '5d.onnx'
    export_onnx(model, spec, path, allow_5d=True, eval_clips=0)
    with pytest.raises(ModelLoadError, match=r'5d\.onnx is not 4D-only: .*rank 5.*allow_5d'):
        load_backend(path, backend='openvino')
    with caplog.at_level(logging.WARNING):
        allowed = load_backend(path, backend='openvino', allow_5d=True, threads=1)
    assert 'is not 4D-only (allowed by allow_5d)' in caplog.text
    assert allowed.infer(_frames(spec, clips=1)).shape == (1, 3)
    # The same graph as an IR: its ranks are checked too.
    ir = openvino.Core().read_model(path)
    set_ir_spec(ir, spec)
    xml = tmp_path / '5d.xml'
    openvino.save_model(ir, xml)
    with pytest.raises(ModelLoadError, match=r'5d\.xml is not 4D-only: .*has rank 5'):
        load_backend(xml)


# -- the node core with backend openvino ---------------------------------------------------------


@pytest.fixture(scope='module')
def tiny_onnx(tiny_model, tmp_path_factory):
    model, spec = load_checkpoint_model(tiny_model)
    path = tmp_path_factory.mktemp('tiny_onnx') / 'tiny.onnx'
    export_onnx(model.eval(), spec, path, eval_clips=0)
    return path


def _run_core(path, frames, **values):
    params = parse_parameters({'model_path': str(path), 'smoothing': 'none',
                               'score_threshold': 0.0, 'hop': 1, **values})
    core = NodeCore(params, clock=lambda: 100.0)  # time stands still: no rate limit
    results = []
    for index, frame in enumerate(frames):
        if core.on_frame(frame, 1_700_000_000_000_000_000 + index * 50_000_000, 'cam'):
            results += core.step()
    return core, results


def test_node_core_runs_clips_with_backend_openvino(tiny_onnx):
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (24, 32, 3), dtype=np.uint8) for _ in range(6)]
    core, results = _run_core(tiny_onnx, frames, backend='openvino', threads=1)
    _, expected = _run_core(tiny_onnx, frames, backend='onnxruntime', threads=1)
    assert len(results) == len(expected) == 3
    for got, want in zip(results, expected):
        assert [label for label, _ in got.top] == [label for label, _ in want.top]
        np.testing.assert_allclose([s for _, s in got.top], [s for _, s in want.top],
                                   atol=1e-5)
        assert got.stamp_ns == want.stamp_ns and got.frame_id == 'cam'
    values = core.diagnostics().values
    assert values['backend'] == 'openvino-cpu' and values['device'] == 'cpu'
    assert not core.release_accelerator()  # a CPU model stays loaded
    # precision is a reload parameter: int8 quantises on the worker.
    assert core.set_parameters({'precision': 'int8'}) == (True, 'model reload scheduled')
    core.step()
    assert core.reload_error is None and core.slot.reloads == 1
    assert core.diagnostics().values['backend'] == 'openvino-cpu-int8'
    # An OpenVINO device picks the openvino backend under auto.
    core, results = _run_core(tiny_onnx, frames[:4], device='openvino:CPU')
    assert core.slot.model.backend.name == 'openvino-cpu' and len(results) == 1

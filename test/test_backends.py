"""Backends: torch and ONNX Runtime agree; bad model files give ModelLoadError."""

import dataclasses
import logging

import numpy as np
import onnx
import pytest
import torch

from action_recognition.deploy.export import export_onnx
from action_recognition.io.checkpoint import save_checkpoint
from action_recognition.models import create_model
from action_recognition.runtime.backends import load_backend
from action_recognition.runtime.openvino_backend import OpenVinoBackend
from action_recognition.runtime.ort_backend import OnnxRuntimeBackend
from action_recognition.runtime.ort_backend import select_providers
from action_recognition.runtime.ort_backend import tensorrt_cache_key
from action_recognition.runtime.protocol import ModelLoadError
from action_recognition.runtime.torch_backend import TorchBackend
from action_recognition.spec import ModelSpec
from action_recognition.spec import SPEC_METADATA_KEY

SPEC = ModelSpec(model='eco_lite_add_small', num_classes=5, num_frames=4,
                 labels=('a', 'b', 'c', 'd', 'e'), input_size=(112, 112), resize_short=128)


@pytest.fixture(scope='module')
def files(tmp_path_factory):
    torch.manual_seed(0)
    root = tmp_path_factory.mktemp('backends')
    model = create_model(SPEC.model, num_classes=5, num_frames=4).eval()
    checkpoint = save_checkpoint(root / 'model.pt',
                                 {'spec': SPEC.to_dict(), 'model_state': model.state_dict()})
    onnx_path = root / 'model.onnx'
    export_onnx(model, SPEC, onnx_path)
    return checkpoint, onnx_path


def _clips(num, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (num * 4, 3, 112, 112), dtype=np.uint8)


def test_torch_and_onnxruntime_agree(files):
    checkpoint, onnx_path = files
    torch_backend = load_backend(checkpoint)
    ort_backend = load_backend(onnx_path, threads=1)
    assert isinstance(torch_backend, TorchBackend)
    assert isinstance(ort_backend, OnnxRuntimeBackend)
    assert ort_backend.spec == torch_backend.spec == SPEC
    assert ort_backend.name == 'onnxruntime-cpu'
    frames = _clips(2)
    expected = torch_backend.infer(torch.from_numpy(frames))
    got = ort_backend.infer(frames)
    assert got.shape == expected.shape == (2, 5) and got.dtype == np.float32
    np.testing.assert_allclose(got, expected, atol=1e-4)
    assert np.abs(got[0] - got[1]).max() > 0  # different clips, different logits


def test_infer_rejects_malformed_frames(files):
    backend = load_backend(files[1], threads=1)
    with pytest.raises(ValueError, match='multiple of the clip length'):
        backend.infer(np.zeros((3, 3, 112, 112), np.uint8))
    with pytest.raises(ValueError, match='uint8'):
        backend.infer(np.zeros((4, 3, 112, 112), np.float32))
    with pytest.raises(ValueError, match=r'\[B\*T, 3, 112, 112\]'):
        backend.infer(np.zeros((4, 3, 64, 64), np.uint8))


def test_missing_and_corrupt_files(tmp_path):
    with pytest.raises(ModelLoadError, match='not found'):
        load_backend(tmp_path / 'nothing.onnx')
    corrupt_onnx = tmp_path / 'corrupt.onnx'
    corrupt_onnx.write_bytes(b'\x08\x07garbage' * 10)
    with pytest.raises(ModelLoadError, match=r'corrupt\.onnx'):
        load_backend(corrupt_onnx)
    corrupt_pt = tmp_path / 'corrupt.pt'
    corrupt_pt.write_bytes(b'PK\x03\x04 not really a zip')
    with pytest.raises(ModelLoadError, match=r'corrupt\.pt'):
        load_backend(corrupt_pt)
    with pytest.raises(ModelLoadError, match=r"backend must be one of \['auto'"):
        load_backend(corrupt_pt, backend='tensorflow')


def test_label_count_disagreeing_with_output_is_refused(files, tmp_path):
    proto = onnx.load(files[1])
    wrong = dataclasses.replace(SPEC, num_classes=6, labels=tuple('abcdef'))
    for entry in proto.metadata_props:
        if entry.key == SPEC_METADATA_KEY:
            entry.value = wrong.to_json()
    path = tmp_path / 'six_labels.onnx'
    onnx.save(proto, path)
    with pytest.raises(ModelLoadError, match='6 labels'):
        load_backend(path)
    # Without the spec metadata the file cannot be used either.
    del proto.metadata_props[:]
    onnx.save(proto, path)
    with pytest.raises(ModelLoadError, match='metadata'):
        load_backend(path)


def test_checkpoint_whose_weights_do_not_fit(files, tmp_path):
    state = torch.load(files[0], weights_only=False)
    state['spec']['num_classes'] = 7
    state['spec']['labels'] = list('abcdefg')
    path = save_checkpoint(tmp_path / 'bad.pt', state)
    with pytest.raises(ModelLoadError, match=r'bad\.pt'):
        load_backend(path)


def test_provider_fallback_warns_naming_the_fallback(caplog):
    with caplog.at_level(logging.WARNING):
        chosen = select_providers(None, available=['CUDAExecutionProvider',
                                                   'CPUExecutionProvider'])
    assert chosen == ['CUDAExecutionProvider', 'CPUExecutionProvider']
    assert 'TensorrtExecutionProvider' in caplog.text and 'falling back to CUDA' in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        assert select_providers(['CPUExecutionProvider'],
                                available=['CPUExecutionProvider']) == ['CPUExecutionProvider']
    assert caplog.text == ''


def test_tensorrt_cache_key_changes_with_each_part():
    base = dict(trt_version='10.3', gpu='Orin')
    key = tensorrt_cache_key(b'model', (16, 3, 224, 224), **base)
    assert key == tensorrt_cache_key(b'model', (16, 3, 224, 224), **base)
    others = {
        tensorrt_cache_key(b'model2', (16, 3, 224, 224), **base),
        tensorrt_cache_key(b'model', (8, 3, 224, 224), **base),
        tensorrt_cache_key(b'model', (16, 3, 224, 224), trt_version='10.4', gpu='Orin'),
        tensorrt_cache_key(b'model', (16, 3, 224, 224), trt_version='10.3', gpu='RTX 4090'),
    }
    assert key not in others and len(others) == 4
    assert '/' not in key and ' ' not in key


def test_auto_picks_the_backend_from_the_file_and_the_device(files):
    checkpoint, onnx_path = files
    assert isinstance(load_backend(onnx_path, threads=1), OnnxRuntimeBackend)  # .onnx
    openvino = load_backend(onnx_path, device='openvino:CPU', threads=1)
    assert isinstance(openvino, OpenVinoBackend)
    assert openvino.name == 'openvino-cpu' and openvino.device == 'cpu'
    frames = _clips(2)
    np.testing.assert_allclose(openvino.infer(frames), load_backend(checkpoint).infer(frames),
                               atol=1e-4)


@pytest.mark.parametrize(('kwargs', 'reason'), [
    ({'backend': 'onnxruntime', 'device': 'openvino:CPU'},
     'device openvino:CPU is an OpenVINO device: it needs backend openvino'),
    ({'precision': 'bf16'}, 'precision=bf16 needs backend torch or openvino'),
    ({'backend': 'openvino', 'streaming': True}, 'streaming needs a PyTorch checkpoint'),
    ({'backend': 'openvino', 'device': 'cuda'}, "backend openvino runs on 'cpu' or an "
                                                "'openvino:' device"),
])
def test_backend_options_that_do_not_fit_are_refused(files, kwargs, reason):
    with pytest.raises(ModelLoadError, match=reason):
        load_backend(files[1], **kwargs)


def test_int8_is_for_openvino(files):
    with pytest.raises(ModelLoadError, match='precision=int8 needs backend openvino, not torch'):
        load_backend(files[0], precision='int8')

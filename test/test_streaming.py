"""Streaming ECO-Lite: cached 2D features give the same result as full recomputation."""

import numpy as np
import pytest
import torch

from action_recognition.models import create_model
from action_recognition.runtime.protocol import StreamingBackend
from action_recognition.runtime.recognizer import Recognizer
from action_recognition.runtime.settings import StreamSettings
from action_recognition.runtime.torch_backend import TorchBackend
from action_recognition.spec import ModelSpec


def _model(spec):
    torch.manual_seed(0)
    return create_model(spec.model, num_classes=spec.num_classes,
                        num_frames=spec.num_frames).eval()


class Counting(TorchBackend):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, streaming=True, **kwargs)
        self.frames_2d = 0

    def frame_features(self, frames):
        self.frames_2d += frames.shape[0]
        return super().frame_features(frames)


@pytest.mark.parametrize('frame_stride,hop', [(1, 1), (2, 2)])
def test_streaming_equals_full_recomputation(frame_stride, hop):
    spec = ModelSpec(model='eco_lite_add_small', num_classes=6, num_frames=4,
                     frame_stride=frame_stride, input_size=(112, 112), resize_short=112)
    model = _model(spec)
    streaming = Counting(model, spec)
    full = TorchBackend(model, spec)
    settings = StreamSettings(hop=hop, hysteresis=None, smoothing='none', score_threshold=0.0)
    stream_rec = Recognizer(streaming, settings)
    full_rec = Recognizer(full, settings)
    assert stream_rec.streaming and not full_rec.streaming
    rng = np.random.default_rng(1)
    num_frames = 12
    compared = 0
    for i in range(num_frames):
        frame = rng.integers(0, 256, (120, 150, 3), dtype=np.uint8)
        a = stream_rec.push(frame, i * 33_333_333)
        b = full_rec.push(frame, i * 33_333_333)
        assert (a is None) == (b is None)
        if a is not None:
            assert a.frame_index == b.frame_index
            np.testing.assert_allclose(a.raw_scores, b.raw_scores, atol=1e-5, rtol=0)
            compared += 1
    assert compared == stream_rec.counters().clips_run > 1
    # Each frame that is part of a clip ran through the 2D-Net once only.
    sampled = set()
    for end in range(spec.clip_span - 1, num_frames):
        if (end - (spec.clip_span - 1)) % hop == 0:
            sampled |= {end - k * frame_stride for k in range(spec.num_frames)}
    assert streaming.frames_2d == len(sampled)
    if hop < spec.clip_span:  # overlapping windows share frames
        assert streaming.frames_2d < compared * spec.num_frames


def test_streaming_backend_full_infer_matches_model():
    spec = ModelSpec(model='eco_lite_add_small', num_classes=3, num_frames=4,
                     input_size=(112, 112), resize_short=112)
    model = _model(spec)
    backend = TorchBackend(model, spec, streaming=True)
    frames = np.random.default_rng(0).integers(0, 256, (8, 3, 112, 112), dtype=np.uint8)
    expected = TorchBackend(model, spec).infer(frames)
    np.testing.assert_allclose(backend.infer(frames), expected, atol=1e-5)
    with pytest.raises(ValueError, match='whole number of clips'):
        backend.infer_features(backend.frame_features(frames[:3]))


def test_models_without_a_2d_3d_split_are_refused():
    spec = ModelSpec(model='tiny', num_classes=3, num_frames=2, input_size=(8, 8),
                     resize_short=8)
    with pytest.raises(ValueError, match='forward_2d'):
        TorchBackend(torch.nn.Linear(3, 3), spec, streaming=True)


def test_load_backend_streaming_from_a_checkpoint(tmp_path):
    from action_recognition.io.checkpoint import save_checkpoint
    from action_recognition.runtime.backends import load_backend
    from action_recognition.runtime.protocol import ModelLoadError

    spec = ModelSpec(model='eco_lite_add_small', num_classes=3, num_frames=4,
                     input_size=(112, 112), resize_short=112)
    path = save_checkpoint(tmp_path / 'm.pt', {'spec': spec.to_dict(),
                                               'model_state': _model(spec).state_dict()})
    backend = load_backend(path, streaming=True)
    assert isinstance(backend, StreamingBackend) and backend.streaming
    assert Recognizer(backend).streaming
    assert not Recognizer(load_backend(path)).streaming
    bogus = tmp_path / 'm.onnx'
    bogus.write_bytes(b'x')
    with pytest.raises(ModelLoadError, match='streaming'):
        load_backend(bogus, streaming=True)

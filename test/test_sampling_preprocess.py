"""Clip sampling and preprocessing: the one implementation training and inference share."""

import numpy as np
import pytest
import torch

from action_recognition.data.normalize import frames_to_tensor
from action_recognition.data.normalize import Normalize
from action_recognition.data.preprocess import center_crop
from action_recognition.data.preprocess import prepare_frame
from action_recognition.data.preprocess import resize_short_side
from action_recognition.data.sampling import dense_indices
from action_recognition.data.sampling import sample_indices
from action_recognition.data.sampling import segment_indices
from action_recognition.data.sampling import stream_indices
from action_recognition.spec import ModelSpec


def spec(**kwargs):
    base = dict(model='m', num_classes=3, num_frames=4, input_size=(8, 8), resize_short=10)
    base.update(kwargs)
    return ModelSpec(**base)


def test_dense_centre_and_random_start_stay_in_range():
    assert dense_indices(20, 4, 2).tolist() == [6, 8, 10, 12]
    rng = np.random.default_rng(0)
    starts = {int(dense_indices(20, 4, 2, train=True, rng=rng)[0]) for _ in range(200)}
    assert starts == set(range(0, 14))


def test_dense_short_video_repeats_last_frame():
    assert dense_indices(3, 4, 2).tolist() == [0, 2, 2, 2]


def test_segments_centre_and_random():
    assert segment_indices(16, 4).tolist() == [2, 6, 10, 14]
    rng = np.random.default_rng(1)
    for _ in range(50):
        idx = segment_indices(16, 4, train=True, rng=rng)
        assert all(4 * i <= v < 4 * (i + 1) for i, v in enumerate(idx))


def test_multi_clip_dense_spreads_over_video():
    s = spec(frame_stride=1)
    clips = [sample_indices(s, 40, clip_index=i, num_clips=3)[0] for i in range(3)]
    assert clips == [0, 18, 36]


def test_stream_indices_end_on_newest_frame():
    s = spec(frame_stride=2)
    assert stream_indices(s, 10).tolist() == [3, 5, 7, 9]
    with pytest.raises(ValueError, match='need 7 buffered frames'):
        stream_indices(s, 6)


def test_spec_round_trip_and_validation():
    s = spec(labels=('a', 'b', 'c'), frame_stride=2)
    assert ModelSpec.from_json(s.to_json()) == s
    assert s.clip_span == 7
    with pytest.raises(ValueError, match='2 labels given for a model with 3 outputs'):
        spec(labels=('a', 'b'))
    with pytest.raises(ValueError, match='unknown model spec keys'):
        ModelSpec.from_dict({**s.to_dict(), 'bogus': 1})


def test_resize_crop_and_normalise():
    frame = np.zeros((20, 40, 3), np.uint8)
    frame[:, 18:22] = 255
    resized = resize_short_side(frame, 10)
    assert resized.shape == (10, 20, 3)
    out = prepare_frame(frame, spec())
    assert out.shape == (8, 8, 3) and out.dtype == np.uint8
    assert out[:, 3:5].mean() > 200 and out[:, 0].max() == 0  # the bright bar stays centred
    with pytest.raises(ValueError, match='cannot crop'):
        center_crop(frame, (30, 30))
    with pytest.raises(ValueError, match='uint8'):
        resize_short_side(frame.astype(np.float32), 10)
    tensor = frames_to_tensor(np.stack([out, out]))
    assert tensor.shape == (2, 3, 8, 8) and tensor.dtype == torch.uint8
    norm = Normalize((0.5, 0.5, 0.5), (0.25, 0.25, 0.25))(tensor)
    expected = (tensor.float() / 255 - 0.5) / 0.25
    torch.testing.assert_close(norm, expected)

"""ClipBuffer: bounded ring, sampling as the spec says, resets on broken streams."""

import logging

import numpy as np
import pytest

from action_recognition.runtime.clip_buffer import ClipBuffer
from action_recognition.spec import ModelSpec


def _spec(**kwargs):
    base = dict(model='tiny', num_classes=3, num_frames=4, input_size=(8, 8), resize_short=8)
    base.update(kwargs)
    return ModelSpec(**base)


def _ns(seconds):
    return round(seconds * 1e9)


def _frame(value, size=8):
    return np.full((size, size, 3), value % 256, dtype=np.uint8)


def test_dense_clip_with_stride_ends_at_newest_frame():
    buffer = ClipBuffer(_spec(frame_stride=2))
    assert buffer.span == 7 and buffer.capacity == 7
    for i in range(10):
        assert not buffer.ready() or i >= 7
        buffer.push(_frame(i), _ns(i / 30), frame_id=f'f{i}')
    clip = buffer.latest_clip()
    assert clip.frames.shape == (4, 8, 8, 3) and clip.frames.dtype == np.uint8
    assert clip.indices.tolist() == [3, 5, 7, 9]
    assert clip.frames[:, 0, 0, 0].tolist() == [3, 5, 7, 9]
    assert clip.frame_index == 9 and clip.frame_id == 'f9'
    assert clip.stamps_ns.tolist() == [_ns(i / 30) for i in (3, 5, 7, 9)]
    assert clip.stamp_ns == _ns(9 / 30)
    assert buffer.frames_since_last_clip == 0


def test_segment_clip_over_a_window():
    buffer = ClipBuffer(_spec(sampling='segments'), window=16)
    assert buffer.capacity == 16
    for i in range(20):
        buffer.push(_frame(i), _ns(i / 30))
    clip = buffer.latest_clip()
    # TSN centre sampling over the last 16 frames (4..19): segment centres 2, 6, 10, 14.
    assert clip.indices.tolist() == [6, 10, 14, 18]
    assert clip.frames[:, 0, 0, 0].tolist() == [6, 10, 14, 18]


def test_memory_is_bounded_by_capacity():
    buffer = ClipBuffer(_spec(), capacity=6)
    for i in range(5000):
        buffer.push(_frame(i), _ns(i * 0.01))
    assert len(buffer) == 6
    assert buffer.frames_pushed == 5000
    assert buffer.latest_clip().indices.tolist() == [4996, 4997, 4998, 4999]


@pytest.mark.parametrize('reason', ['gap', 'backwards', 'resolution', 'shape'])
def test_broken_stream_resets_with_logged_reason(reason, caplog):
    buffer = ClipBuffer(_spec(), max_gap_s=0.5)
    for i in range(5):
        buffer.push(_frame(i), _ns(10 + i * 0.03), source_shape=(480, 640, 3))
    assert buffer.ready()
    stamp, frame, source = 10.2, _frame(9), (480, 640, 3)
    if reason == 'gap':
        stamp = 11.0
    elif reason == 'backwards':
        stamp = 9.0
    elif reason == 'resolution':
        source = (720, 1280, 3)
    else:
        frame = _frame(9, size=6)
    with caplog.at_level(logging.WARNING):
        buffer.push(frame, _ns(stamp), source_shape=source)
    assert buffer.resets == 1 and buffer.reset_reasons == {reason: 1}
    assert len(buffer) == 1 and not buffer.ready()
    assert reason in caplog.text
    with pytest.raises(ValueError, match='buffered frames'):
        buffer.latest_clip()


def test_a_steady_stream_never_resets():
    buffer = ClipBuffer(_spec(), max_gap_s=0.5)
    for i in range(50):
        buffer.push(_frame(i), _ns(i * 0.4), source_shape=(10, 10, 3))
    assert buffer.resets == 0 and len(buffer) == 4


def test_feature_cache_follows_the_entries():
    buffer = ClipBuffer(_spec())
    for i in range(4):
        buffer.push(_frame(i), _ns(i))
    assert buffer.cache_features(2, 'features-2')
    assert buffer.latest_clip().features == [None, None, 'features-2', None]
    for i in range(4, 7):
        buffer.push(_frame(i), _ns(i))
    assert buffer.latest_clip().features == [None, None, None, None]
    assert not buffer.cache_features(2, 'gone')  # frame 2 has left the ring
    assert buffer.cache_features(6, 'features-6')
    assert buffer.latest_clip().features[-1] == 'features-6'


def test_bad_arguments():
    with pytest.raises(ValueError, match='capacity'):
        ClipBuffer(_spec(frame_stride=2), capacity=3)
    with pytest.raises(ValueError, match='integer nanoseconds'):
        ClipBuffer(_spec()).push(_frame(0), float('nan'))
    with pytest.raises(ValueError, match='integer nanoseconds'):
        ClipBuffer(_spec()).push(_frame(0), 0.5)


def test_the_ring_is_allocated_once_and_a_clip_is_one_gather():
    buffer = ClipBuffer(_spec(frame_stride=2), capacity=9)
    buffer.push(_frame(0), 0)
    ring = buffer._items
    assert ring.shape == (9, 8, 8, 3) and ring.dtype == np.uint8
    for i in range(1, 40):
        buffer.push(_frame(i), _ns(i / 30))
    assert buffer._items is ring  # no reallocation, no growth
    clip = buffer.latest_clip()
    assert clip.frames.flags['C_CONTIGUOUS'] and not np.shares_memory(clip.frames, ring)
    assert clip.frames[:, 0, 0, 0].tolist() == [33, 35, 37, 39]
    # A frame of another shape restarts the ring with a ring of that shape.
    buffer.push(_frame(40, size=6), _ns(40 / 30))
    assert buffer._items.shape == (9, 6, 6, 3) and buffer.reset_reasons == {'shape': 1}

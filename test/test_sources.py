"""Frame sources: video files and rosbag2 recordings (MCAP and sqlite3) made in the test."""

import cv2
from fixtures.image_bombs import jpeg_bomb
from fixtures.ros_data import camera_bag
from fixtures.ros_data import COMPRESSED
from fixtures.ros_data import compressed_msg
from fixtures.ros_data import IMAGE
from fixtures.ros_data import image_msg
from fixtures.ros_data import moving_frames
from fixtures.ros_data import write_bag
from fixtures.ros_data import write_video
import numpy as np
import pytest

from action_recognition.io.messages import action_typestore
from action_recognition.runtime import frames as frames_module
from action_recognition.runtime.sources import BagSource
from action_recognition.runtime.sources import open_source
from action_recognition.runtime.sources import VideoSource


def test_video_source_frames_and_stamps(tmp_path):
    frames = moving_frames(7)
    path = write_video(tmp_path / 'clip.avi', frames, fps=10.0)
    with open_source(str(path)) as source:
        assert isinstance(source, VideoSource)
        assert source.total == 7 and source.fps == pytest.approx(10.0)
        got = list(source)
    assert [f.index for f in got] == list(range(7))
    assert [f.stamp_ns for f in got] == [i * 100_000_000 for i in range(7)]
    assert source.frames_read == 7 and source.frames_dropped == 0
    for frame in got:
        assert frame.image.shape == (24, 32, 3) and frame.image.dtype == np.uint8
        # MJPG is lossy; the frames must still be the right ones in RGB order.
        errors = [np.abs(frame.image.astype(int) - o.astype(int)).mean() for o in frames]
        assert errors[frame.index] < 6 and int(np.argmin(errors)) == frame.index


@pytest.mark.parametrize('storage', ['mcap', 'sqlite3'])
def test_bag_source_mixed_encodings_and_bad_messages(tmp_path, storage):
    typestore = action_typestore()
    frames = moving_frames(6, seed=1)
    topic = '/cam/image_raw'
    stamps = [1_700_000_000_000_000_001 + i * 33_333_333 for i in range(6)]
    msgs = []
    for i, (frame, stamp) in enumerate(zip(frames, stamps)):
        encoding = ['rgb8', 'bgr8', 'rgb8', 'bgr8', 'rgb8', 'bgr8'][i]
        msgs.append((topic, IMAGE, stamp + 5, image_msg(
            typestore, frame, stamp_ns=stamp, frame_id='cam', encoding=encoding, pad=3 * i)))
    bad = image_msg(typestore, frames[0], stamp_ns=stamps[-1] + 1, frame_id='cam')
    bad.encoding = 'bayer_grbg8'
    msgs.insert(2, (topic, IMAGE, stamps[1] + 10, bad))
    msgs.append(('/other', 'std_msgs/msg/String', stamps[0],
                 typestore.types['std_msgs/msg/String'](data='x')))
    path = write_bag(tmp_path / f'bag_{storage}', msgs, storage=storage)

    with open_source(str(path), image_topic=topic) as source:
        assert isinstance(source, BagSource)
        assert source.total == 7
        got = list(source)
    assert len(got) == 6
    assert source.frames_read == 7 and source.frames_dropped == 1
    assert source.drop_reasons == {'unsupported encoding': 1}
    assert [f.stamp_ns for f in got] == stamps
    assert [f.index for f in got] == [0, 1, 3, 4, 5, 6]
    assert {f.frame_id for f in got} == {'cam'}
    for frame, original in zip(got, frames):
        np.testing.assert_array_equal(frame.image, original)


def test_bag_source_compressed_and_storage_file_path(tmp_path, caplog):
    typestore = action_typestore()
    frames = moving_frames(3, seed=2)
    topic = '/cam/image/compressed'
    msgs = [(topic, COMPRESSED, 10 + i, compressed_msg(typestore, f, stamp_ns=0, frame_id='c'))
            for i, f in enumerate(frames)]
    broken = compressed_msg(typestore, frames[0], stamp_ns=5, frame_id='c')
    broken.data = broken.data[:20]
    msgs.append((topic, COMPRESSED, 99, broken))
    path = write_bag(tmp_path / 'cbag', msgs)
    # The .mcap file inside the bag directory is accepted too; the only image topic is found.
    with open_source(str(path / 'cbag.mcap')) as source:
        got = list(source)
    assert len(got) == 3
    # A zero header stamp falls back to the recording time.
    assert [f.stamp_ns for f in got] == [10, 11, 12]
    for frame, original in zip(got, frames):
        np.testing.assert_array_equal(frame.image, original)
    assert source.drop_reasons == {'corrupt png': 1}
    assert 'corrupt PNG' in caplog.text


def _bombed_bag(path):
    """Two good JPEG frames, the 65500x65500 JPEG bomb, two more good frames."""
    typestore = action_typestore()
    frames = moving_frames(4, seed=3)
    topic = '/cam/image/compressed'
    msgs = [(topic, COMPRESSED, 10 + i, compressed_msg(typestore, f, stamp_ns=0, frame_id='c',
                                                       fmt='jpeg'))
            for i, f in enumerate(frames)]
    bomb = compressed_msg(typestore, frames[0], stamp_ns=0, frame_id='c', fmt='jpeg')
    bomb.data = np.frombuffer(jpeg_bomb(65500, 65500), np.uint8).copy()
    msgs.insert(2, (topic, COMPRESSED, 11, bomb))
    return write_bag(path, msgs)


def test_bag_source_drops_images_above_the_limit_and_goes_on(tmp_path, caplog):
    path = _bombed_bag(tmp_path / 'bombed')
    with open_source(str(path)) as source:
        got = list(source)
    assert [f.index for f in got] == [0, 1, 3, 4]
    assert source.frames_read == 5 and source.drop_reasons == {'oversized': 1}
    assert 'message 2: dropping image (oversized): the JPEG image (from its header) is ' \
        '65500x65500' in caplog.text and '(raise --max-image-pixels to accept it)' in caplog.text
    # The limit comes from open_source: 32x24 frames pass at 768 pixels, not at 767.
    with open_source(str(path), max_image_pixels=32 * 24) as source:
        assert source.decoder.max_pixels == 32 * 24
        assert len(list(source)) == 4
    with open_source(str(path), max_image_pixels=32 * 24 - 1) as source:
        assert list(source) == []
        assert source.drop_reasons == {'oversized': 5}


def test_bag_source_survives_any_decoding_error(tmp_path, monkeypatch, caplog):
    path = _bombed_bag(tmp_path / 'bombed')
    calls = []

    def failing(msg, **kwargs):
        calls.append(kwargs)
        if len(calls) == 2:
            raise cv2.error('OpenCV(5.0) error: (-215:Assertion failed) pixels <= '
                            'CV_IO_MAX_IMAGE_PIXELS')
        if len(calls) == 3:
            raise MemoryError('Unable to allocate 16.0 GiB')
        return np.zeros((24, 32, 3), np.uint8)

    monkeypatch.setattr(frames_module, 'compressed_msg_to_rgb', failing)
    with open_source(str(path)) as source:
        got = list(source)
    assert [f.index for f in got] == [0, 3, 4]
    assert source.drop_reasons == {'decoder error': 2}
    assert calls[0] == {'max_pixels': 4096 * 4096}
    assert 'message 1: dropping image (decoder error): converting the image raised cv2.error: ' \
        'OpenCV(5.0) error' in caplog.text


def test_bag_source_topic_errors(tmp_path):
    path, _ = camera_bag(tmp_path / 'bag', moving_frames(2))
    with pytest.raises(ValueError, match=r"no topic '/nope'.*/camera/image_raw"):
        BagSource(path, image_topic='/nope')
    with pytest.raises(ValueError, match='not a rosbag2 recording'):
        BagSource(tmp_path)


def test_open_source_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match=r'missing\.mp4 does not exist'):
        open_source(str(tmp_path / 'missing.mp4'))
    text = tmp_path / 'notes.txt'
    text.write_text('hello')
    with pytest.raises(ValueError, match='cannot open'):
        open_source(str(text))
    with pytest.raises(ValueError, match='--image-topic'):
        open_source(str(text), image_topic='/x')

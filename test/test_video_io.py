"""Video decoding (PyAV, OpenCV fallback) and frame folders."""

import cv2
import numpy as np
import pytest

from action_recognition.data import video as video_io
from action_recognition.data.video import count_frames
from action_recognition.data.video import read_frame_folder
from action_recognition.data.video import read_frames
from action_recognition.data.video import read_video
from action_recognition.data.video import VideoReadError
from action_recognition.data.video import write_video


@pytest.fixture
def clip():
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (7, 24, 32, 3), dtype=np.uint8)
    frames[:, :4] = np.arange(7, dtype=np.uint8)[:, None, None, None] * 30  # frame id stripe
    return frames


def test_lossless_round_trip_and_partial_reads(tmp_path, clip):
    path = tmp_path / 'a.avi'
    write_video(path, clip)
    assert np.array_equal(read_video(path), clip)
    assert count_frames(path) == 7
    got = read_frames(path, [5, 1, 1, 3])
    assert np.array_equal(got, clip[[5, 1, 1, 3]])
    # Containers may overstate their length: indices past the end get the last frame.
    assert np.array_equal(read_frames(path, [2, 9]), clip[[2, 6]])
    with pytest.raises(ValueError, match='>= 0'):
        read_frames(path, [-1])


def test_opencv_fallback_when_pyav_fails(tmp_path, clip, monkeypatch):
    path = tmp_path / 'b.avi'
    write_video(path, clip)

    def broken(*args, **kwargs):
        raise RuntimeError('simulated PyAV failure')

    monkeypatch.setattr(video_io, '_pyav_read', broken)
    monkeypatch.setattr(video_io, '_pyav_count', broken)
    assert np.array_equal(read_frames(path, [0, 4]), clip[[0, 4]])
    assert count_frames(path) == 7


def test_reads_a_video_written_by_opencv(tmp_path, clip):
    path = tmp_path / 'c.avi'
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*'MJPG'), 25, (32, 24))
    for frame in clip:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    video = read_video(path)
    assert video.shape == (7, 24, 32, 3)
    # MJPEG is lossy; the frame-id stripe still identifies the frames.
    assert np.abs(video[:, :4].astype(int).mean((1, 2, 3)) - np.arange(7) * 30).max() < 8


@pytest.mark.parametrize('kind', ['missing', 'empty', 'corrupt', 'folder'])
def test_unreadable_videos_raise_naming_the_file(tmp_path, kind):
    path = tmp_path / f'{kind}.mp4'
    if kind == 'empty':
        path.write_bytes(b'')
    elif kind == 'corrupt':
        path.write_bytes(np.random.default_rng(1).integers(0, 256, 5000, np.uint8).tobytes())
    elif kind == 'folder':
        path.mkdir()
    for reader in (read_video, count_frames, lambda p: read_frames(p, [0])):
        if kind == 'folder' and reader is count_frames:
            continue  # a folder is a frame folder for count_frames (tested below)
        with pytest.raises(VideoReadError) as info:
            reader(path)
        assert str(path) in str(info.value)
        assert info.value.path == str(path)


def test_frame_folders(tmp_path, clip):
    folder = tmp_path / 'frames'
    folder.mkdir()
    for i, frame in enumerate(clip, 1):  # img_1.png ... img_7.png: natural order matters
        cv2.imwrite(str(folder / f'img_{i}.png'), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    (folder / 'notes.txt').write_text('not a frame')
    assert count_frames(folder) == 7
    assert np.array_equal(read_frame_folder(folder, [6, 0, 2]), clip[[6, 0, 2]])
    assert np.array_equal(read_frame_folder(folder, [1, 3], 'img_{}.png'), clip[[1, 3]])
    assert np.array_equal(read_frame_folder(folder, [1], 'img_{}.png', start=2), clip[[2]])
    with pytest.raises(VideoReadError, match=r'img_8\.png'):
        read_frame_folder(folder, [7], 'img_{}.png')
    with pytest.raises(VideoReadError, match='7 images'):
        read_frame_folder(folder, [7])
    empty = tmp_path / 'empty'
    empty.mkdir()
    with pytest.raises(VideoReadError, match='no images'):
        count_frames(empty)

"""Reading videos and frame folders into ``uint8`` RGB arrays ``[N, H, W, 3]``, and writing
clips to video files (:func:`write_video`).

Videos are decoded with PyAV; when PyAV cannot open or decode a file, OpenCV is tried before
giving up. Every failure (missing, empty, unreadable or corrupt file) raises
:class:`VideoReadError`, whose message names the file and the reason, so a data set can skip the
item and say which one it skipped.

Frame folders (one image per frame, e.g. Something-Something V1 ``00001.jpg`` ...) are read
directly with OpenCV: with a ``template`` (``'{:05d}.jpg'``, numbered from ``start``) only the
requested files are opened; without one, the folder's images in natural (numeric) order are the
frames.

:func:`write_video` writes ``uint8`` RGB ``[T, H, W, 3]`` to an AVI file (lossless FFV1 or MJPEG)
that both PyAV and OpenCV read back.
"""

from __future__ import annotations

from collections.abc import Sequence
import os
from pathlib import Path
import re

import av
import cv2
import numpy as np

__all__ = [
    'VideoReadError', 'read_video', 'read_frames', 'count_frames', 'read_frame_folder',
    'count_folder_frames', 'list_frame_files', 'CODECS', 'write_video',
]

IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp')


class VideoReadError(RuntimeError):
    """A video or frame folder could not be read; ``path`` and ``reason`` say which and why."""

    def __init__(self, path: str | os.PathLike[str], reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f'cannot read {self.path}: {reason}')


def _check_file(path: Path) -> None:
    if not path.exists():
        raise VideoReadError(path, 'no such file')
    if path.is_dir():
        raise VideoReadError(path, 'is a directory, not a video file')
    if path.stat().st_size == 0:
        raise VideoReadError(path, 'empty file (0 bytes)')


def _as_indices(indices: Sequence[int] | np.ndarray) -> np.ndarray:
    array = np.asarray(indices, dtype=np.int64).reshape(-1)
    if array.size and array.min() < 0:
        raise ValueError(f'frame indices must be >= 0, got {array.min()}')
    return array


# ---------------------------------------------------------------------------------------------
# PyAV


def _pyav_count(path: Path) -> int:
    with av.open(str(path)) as container:
        if not container.streams.video:
            raise VideoReadError(path, 'no video stream')
        stream = container.streams.video[0]
        if stream.frames and stream.frames > 0:
            return int(stream.frames)
        stream.thread_type = 'AUTO'
        return sum(1 for _ in container.decode(stream))


def _pyav_read(path: Path, wanted: set[int] | None, last: int | None) -> dict[int, np.ndarray]:
    """Decode frames ``0..last`` (all when ``last`` is None), keeping those in ``wanted``."""
    out: dict[int, np.ndarray] = {}
    previous = None
    index = -1
    with av.open(str(path)) as container:
        if not container.streams.video:
            raise VideoReadError(path, 'no video stream')
        stream = container.streams.video[0]
        stream.thread_type = 'AUTO'
        for index, frame in enumerate(container.decode(stream)):
            previous = frame
            if wanted is None or index in wanted:
                out[index] = frame.to_ndarray(format='rgb24')
            if last is not None and index >= last:
                break
        if previous is not None and index not in out:  # the video ended early: keep its end
            out[index] = previous.to_ndarray(format='rgb24')
    return out


# ---------------------------------------------------------------------------------------------
# OpenCV


def _cv2_count(path: Path) -> int:
    capture = cv2.VideoCapture(str(path))
    try:
        if not capture.isOpened():
            raise VideoReadError(path, 'OpenCV cannot open it')
        count = 0
        while capture.grab():
            count += 1
        return count
    finally:
        capture.release()


def _cv2_read(path: Path, wanted: set[int] | None, last: int | None) -> dict[int, np.ndarray]:
    capture = cv2.VideoCapture(str(path))
    out: dict[int, np.ndarray] = {}
    try:
        if not capture.isOpened():
            raise VideoReadError(path, 'OpenCV cannot open it')
        index = 0
        previous = None
        while last is None or index <= last:
            if not capture.grab():
                break
            ok, frame = capture.retrieve()
            if not ok:
                break
            previous = frame
            if wanted is None or index in wanted:
                out[index] = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
            index += 1
        if previous is not None and index - 1 not in out:  # the video ended early
            out[index - 1] = cv2.cvtColor(previous, cv2.COLOR_BGR2RGB)
    finally:
        capture.release()
    return out


def _decode(path: Path, wanted: set[int] | None, last: int | None) -> dict[int, np.ndarray]:
    _check_file(path)
    reasons = []
    for name, reader in (('PyAV', _pyav_read), ('OpenCV', _cv2_read)):
        try:
            frames = reader(path, wanted, last)
        except VideoReadError as error:
            reasons.append(f'{name}: {error.reason}')
            continue
        except Exception as error:  # decoder libraries raise many kinds
            reasons.append(f'{name}: {type(error).__name__}: {error}')
            continue
        if frames:
            return frames
        reasons.append(f'{name}: no frames decoded')
    raise VideoReadError(path, '; '.join(reasons))


def read_video(path: str | os.PathLike[str]) -> np.ndarray:
    """All frames of a video as ``uint8`` RGB ``[N, H, W, 3]``."""
    frames = _decode(Path(path), None, None)
    return np.stack([frames[i] for i in sorted(frames)])


def read_frames(path: str | os.PathLike[str], indices: Sequence[int] | np.ndarray) -> np.ndarray:
    """Frames ``indices`` (any order, repeats allowed) of a video: ``uint8`` RGB ``[K, H, W, 3]``.

    Decoding stops after the largest index and only requested frames are converted to RGB.
    An index past the last decodable frame (containers can overstate their frame count) gets the
    last decoded frame.
    """
    wanted_arr = _as_indices(indices)
    if wanted_arr.size == 0:
        raise ValueError('no frame indices given')
    wanted = {int(i) for i in wanted_arr}
    last = int(wanted_arr.max())
    frames = _decode(Path(path), wanted | {last}, last)
    available = sorted(frames)
    out = []
    for i in wanted_arr.tolist():
        if i in frames:
            out.append(frames[i])
        else:
            out.append(frames[available[-1]] if i > available[-1] else _nearest(frames, i))
    return np.stack(out)


def _nearest(frames: dict[int, np.ndarray], index: int) -> np.ndarray:
    keys = np.array(sorted(frames))
    return frames[int(keys[np.abs(keys - index).argmin()])]


def count_frames(path: str | os.PathLike[str]) -> int:
    """Number of frames of a video (container metadata, else a decode count); or of a folder."""
    path = Path(path)
    if path.is_dir():
        return count_folder_frames(path)
    _check_file(path)
    reasons = []
    for name, counter in (('PyAV', _pyav_count), ('OpenCV', _cv2_count)):
        try:
            count = counter(path)
        except VideoReadError as error:
            reasons.append(f'{name}: {error.reason}')
            continue
        except Exception as error:
            reasons.append(f'{name}: {type(error).__name__}: {error}')
            continue
        if count > 0:
            return count
        reasons.append(f'{name}: no frames')
    raise VideoReadError(path, '; '.join(reasons))


# ---------------------------------------------------------------------------------------------
# Frame folders


def _natural_key(name: str) -> list[int | str]:
    return [int(part) if part.isdigit() else part for part in re.split(r'(\d+)', name)]


def list_frame_files(folder: str | os.PathLike[str]) -> list[Path]:
    """Image files of a frame folder in natural order (``img_2`` before ``img_10``)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise VideoReadError(folder, 'no such frame folder')
    names = [n for n in os.listdir(folder) if n.lower().endswith(IMAGE_EXTENSIONS)]
    if not names:
        raise VideoReadError(folder, 'frame folder holds no images')
    return [folder / n for n in sorted(names, key=_natural_key)]


def count_folder_frames(folder: str | os.PathLike[str]) -> int:
    """Number of images in a frame folder."""
    return len(list_frame_files(folder))


def _read_image(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        reason = 'no such frame file' if not path.exists() else 'not a readable image'
        raise VideoReadError(path, reason)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def read_frame_folder(folder: str | os.PathLike[str], indices: Sequence[int] | np.ndarray,
                      template: str | None = None, *, start: int = 1) -> np.ndarray:
    """Frames ``indices`` (0-based) of a frame folder: ``uint8`` RGB ``[K, H, W, 3]``.

    Args:
        folder: the folder of images.
        indices: 0-based frame indices.
        template: file name pattern, e.g. ``'{:05d}.jpg'`` or ``'img_{:05d}.jpg'``; frame ``i``
            is ``template.format(i + start)``. ``None``: the folder's images in natural order.
        start: number of the first frame file (1 for Something-Something and TSN folders).
    """
    folder = Path(folder)
    wanted = _as_indices(indices)
    if wanted.size == 0:
        raise ValueError('no frame indices given')
    if not folder.is_dir():
        raise VideoReadError(folder, 'no such frame folder')
    cache: dict[int, np.ndarray] = {}
    if template is None:
        files = list_frame_files(folder)
        if wanted.max() >= len(files):
            raise VideoReadError(
                folder, f'frame {int(wanted.max())} asked for, folder has {len(files)} images')
        paths = {int(i): files[int(i)] for i in wanted}
    else:
        paths = {int(i): folder / template.format(int(i) + start) for i in wanted}
    for i, path in paths.items():
        cache[i] = _read_image(path)
    shapes = {image.shape for image in cache.values()}
    if len(shapes) > 1:
        raise VideoReadError(folder, f'frames of different sizes {sorted(shapes)}')
    return np.stack([cache[int(i)] for i in wanted])


# ---------------------------------------------------------------------------------------------
# Writing


CODECS: tuple[str, ...] = ('ffv1', 'mjpeg')


def write_video(path: str | os.PathLike[str], clip: np.ndarray, *, fps: float = 25.0,
                codec: str = 'ffv1') -> None:
    """Write ``uint8`` RGB ``[T, H, W, 3]`` to an AVI file that PyAV and OpenCV both read.

    ``codec='ffv1'``: lossless (decodes to exactly ``clip``; about 290 KB for 16 x 112 x 112
    frames with sensor noise). ``'mjpeg'``: about 4x smaller, mean absolute error ~2 levels.
    """
    array = np.ascontiguousarray(clip)
    if array.ndim != 4 or array.shape[3] != 3 or array.dtype != np.uint8:
        raise ValueError(f'expected uint8 frames [T, H, W, 3], got {array.dtype} {array.shape}')
    if codec not in CODECS:
        raise ValueError(f'unknown codec {codec!r}; expected one of {CODECS}')
    with av.open(str(path), 'w') as container:
        stream = container.add_stream(codec, rate=round(fps))
        if not isinstance(stream, av.VideoStream):  # pragma: no cover - both codecs are video
            raise TypeError(f'{codec} did not give a video stream')
        stream.width = array.shape[2]
        stream.height = array.shape[1]
        if codec == 'ffv1':
            stream.pix_fmt = 'bgr0'
        else:
            stream.pix_fmt = 'yuvj444p'
            stream.options = {'qmin': '1', 'qmax': '2'}
        for frame in array:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format='rgb24')):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)

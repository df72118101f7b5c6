"""Frame sources for offline runs: a video file, a camera, a rosbag2 recording.

Every source yields checked :class:`~action_recognition.runtime.frames.Frame` objects (``uint8``
RGB ``[H, W, 3]`` with a stamp in integer nanoseconds, a frame id and the frame's index in the
source) and counts what it read and what it had to skip. A rosbag2 recording (MCAP or sqlite3)
is read through rosbags with the real ROS 2 message definitions (those stored in the bag, else
ROS 2 Humble's); its ``sensor_msgs/msg/Image`` and ``CompressedImage`` messages go through the
node's own decoder (:class:`~action_recognition.runtime.frames.FrameDecoder`). A frame that
cannot be used is counted by kind in :attr:`FrameSource.drop_reasons` and skipped with a
warning naming why (throttled per kind).
"""

from __future__ import annotations

from collections.abc import Iterator
import logging
import os
from pathlib import Path
import time
from types import TracebackType
from typing import Any

import cv2
import numpy as np
from rosbags.highlevel import AnyReader

from action_recognition.data.images import DEFAULT_MAX_PIXELS
from action_recognition.io.messages import action_typestore
from action_recognition.logs import one_line
from action_recognition.runtime.frames import Drops
from action_recognition.runtime.frames import Frame
from action_recognition.runtime.frames import FrameDecoder

__all__ = ['FrameSource', 'VideoSource', 'CameraSource', 'BagSource', 'open_source',
           'SourceError', 'IMAGE_TYPES', 'BAG_SUFFIXES']

_LOGGER = logging.getLogger(__name__)

IMAGE_TYPES = ('sensor_msgs/msg/Image', 'sensor_msgs/msg/CompressedImage')


class SourceError(ValueError):
    """A source that cannot be opened, or that breaks while it is read.

    Attributes:
        frames_read: frames (messages) read before it broke (0 when it could not be opened).
    """

    def __init__(self, message: str, *, frames_read: int = 0) -> None:
        super().__init__(message)
        self.frames_read = frames_read
BAG_SUFFIXES = ('.mcap', '.db3')


class FrameSource:
    """Base class: iterate to get frames; counters say what was read and skipped."""

    name: str = 'source'

    def __init__(self, *, max_image_pixels: int = DEFAULT_MAX_PIXELS) -> None:
        self.frames_read = 0
        self.drops = Drops(_LOGGER)
        self.decoder = FrameDecoder(self.drops, max_pixels=max_image_pixels,
                                    oversize_hint=' (raise --max-image-pixels to accept it)')
        self._total: int | None = None  # set by a source that knows its length
        self._fps: float | None = None  # and its nominal rate

    @property
    def frames_dropped(self) -> int:
        """Messages or frames that could not be decoded and were skipped."""
        return self.drops.total

    @property
    def drop_reasons(self) -> dict[str, int]:
        """Skipped messages or frames by kind (``'oversized'``, ``'corrupt jpeg'``, ...)."""
        return self.drops.counts()

    @property
    def total(self) -> int | None:
        """Number of frames expected (``None`` for a live camera without ``max_frames``)."""
        return self._total

    @property
    def fps(self) -> float | None:
        """Nominal frame rate, if known."""
        return self._fps

    def _frame(self, image: np.ndarray, stamp_ns: int, frame_id: str,
               index: int) -> Frame | None:
        """The checked frame of a video or camera, or ``None`` with the refusal counted."""
        return self.decoder.checked(image, stamp_ns, frame_id, index,
                                    where=f'{self.name}: frame {index}: ')

    def __iter__(self) -> Iterator[Frame]:
        raise NotImplementedError

    def close(self) -> None:
        """Release the underlying file or device."""

    def __enter__(self) -> FrameSource:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()


class VideoSource(FrameSource):
    """A video file read with OpenCV; frame ``i`` is stamped ``i / fps`` seconds."""

    def __init__(self, path: str | os.PathLike[str], *, frame_id: str = '',
                 fps: float | None = None) -> None:
        super().__init__()
        self.path = Path(path)
        self.name = str(self.path)
        if not self.path.is_file():
            raise FileNotFoundError(f'video file {self.path} does not exist')
        self._capture = cv2.VideoCapture(str(self.path))
        if not self._capture.isOpened():
            raise ValueError(f'OpenCV cannot open {self.path} as a video')
        nominal = float(self._capture.get(cv2.CAP_PROP_FPS) or 0.0)
        self.rate = float(fps) if fps else (nominal if nominal > 0 else 30.0)
        self._fps = self.rate
        count = int(self._capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        self._total = count if count > 0 else None
        self.frame_id = frame_id

    def __iter__(self) -> Iterator[Frame]:
        index = 0
        while True:
            ok, bgr = self._capture.read()
            if not ok or bgr is None:
                break
            self.frames_read += 1
            rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB) if bgr.ndim == 3 and \
                bgr.shape[2] == 3 and bgr.size else bgr
            frame = self._frame(rgb, round(index * 1e9 / self.rate), self.frame_id, index)
            if frame is not None:
                yield frame
            index += 1

    def close(self) -> None:
        self._capture.release()


class CameraSource(FrameSource):
    """A live camera (OpenCV index or device path), stamped with the wall clock."""

    def __init__(self, device: int | str, *, frame_id: str = 'camera', max_failures: int = 30,
                 max_frames: int | None = None) -> None:
        super().__init__()
        self.device = device
        self.name = f'camera {device}'
        self._capture = cv2.VideoCapture(device)
        if not self._capture.isOpened():
            raise ValueError(f'OpenCV cannot open camera {device!r} (index or device path)')
        self.frame_id = frame_id
        self.max_failures = max_failures
        self.max_frames = max_frames
        nominal = float(self._capture.get(cv2.CAP_PROP_FPS) or 0.0)
        self._fps = nominal if nominal > 0 else None
        self._total = max_frames

    def __iter__(self) -> Iterator[Frame]:
        index = 0
        failures = 0
        while self.max_frames is None or index < self.max_frames:
            ok, bgr = self._capture.read()
            if not ok or bgr is None:
                failures += 1
                if failures >= self.max_failures:
                    _LOGGER.warning('%s: no frame after %d tries, stopping', self.name, failures)
                    break
                time.sleep(0.01)
                continue
            failures = 0
            self.frames_read += 1
            if bgr.ndim == 2:
                bgr = cv2.cvtColor(bgr, cv2.COLOR_GRAY2BGR)
            frame = self._frame(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), time.time_ns(),
                                self.frame_id, index)
            if frame is not None:
                yield frame
            index += 1

    def close(self) -> None:
        self._capture.release()


def _bag_dir(path: Path) -> Path:
    """The rosbag2 directory of ``path`` (the directory, or the one holding a storage file)."""
    if path.is_dir():
        if not (path / 'metadata.yaml').is_file():
            raise ValueError(f'{path} is a directory but not a rosbag2 recording '
                             '(no metadata.yaml)')
        return path
    if path.suffix in BAG_SUFFIXES and (path.parent / 'metadata.yaml').is_file():
        return path.parent
    raise ValueError(f'{path} is not a rosbag2 recording: expected a directory with '
                     'metadata.yaml (or a .mcap/.db3 file inside one)')


class BagSource(FrameSource):
    """Images from one topic of a rosbag2 recording (MCAP or sqlite3).

    Args:
        path: the bag directory (or its ``.mcap``/``.db3`` file).
        image_topic: topic of ``sensor_msgs/msg/Image`` or ``CompressedImage`` messages; may be
            omitted when the bag has exactly one image topic.
        max_image_pixels: images of more pixels are dropped before decoding.

    A recording that cannot be opened (a truncated or garbage storage file, a broken
    ``metadata.yaml``) raises :class:`SourceError` naming the file and the reason. One that
    breaks while it is read (a corrupt sqlite3 page midway) raises :class:`SourceError` from the
    iteration, saying after how many messages: the frames before it were yielded as usual.
    """

    def __init__(self, path: str | os.PathLike[str], *, image_topic: str | None = None,
                 max_image_pixels: int = DEFAULT_MAX_PIXELS) -> None:
        super().__init__(max_image_pixels=max_image_pixels)
        self.path = _bag_dir(Path(path))
        self.name = f'{self.path}'
        self._reader: Any = AnyReader([self.path], default_typestore=action_typestore())
        try:
            self._reader.open()
        except Exception as error:  # rosbags', YAML's and sqlite3's own errors alike
            raise SourceError(f'cannot read the rosbag2 recording {self.path}'
                              f'{_storage_files(self.path)}: {one_line(error)}') from error
        try:
            self.connections = self._pick(image_topic)
        except BaseException:
            self.close()
            raise
        self.topic = self.connections[0].topic
        self.msgtype = self.connections[0].msgtype
        self.name = f'{self.path} {self.topic}'
        self._total = sum(int(c.msgcount) for c in self.connections)
        duration = float(self._reader.duration) * 1e-9
        self._fps = (self._total - 1) / duration if self._total > 1 and duration > 0 else None

    def _pick(self, image_topic: str | None) -> list[Any]:
        connections = list(self._reader.connections)
        images = sorted({c.topic for c in connections if c.msgtype in IMAGE_TYPES})
        if image_topic is None:
            if len(images) != 1:
                raise ValueError(f'{self.path}: give --image-topic; image topics in the bag: '
                                 f'{images or "none"}')
            image_topic = images[0]
        chosen = [c for c in connections if c.topic == image_topic]
        if not chosen:
            raise ValueError(f'{self.path}: no topic {image_topic!r}; image topics in the bag: '
                             f'{images or "none"}')
        types = {c.msgtype for c in chosen}
        if len(types) != 1 or not types <= set(IMAGE_TYPES):
            raise ValueError(f'{self.path}: topic {image_topic!r} carries {sorted(types)}, '
                             f'expected one of {list(IMAGE_TYPES)}')
        return chosen

    def _messages(self) -> Iterator[tuple[Any, int, bytes]]:
        """The topic's raw messages; a storage error becomes a :class:`SourceError`."""
        messages = self._reader.messages(connections=self.connections)
        read = 0
        while True:
            try:
                item = next(messages)
            except StopIteration:
                return
            except Exception as error:
                raise SourceError(
                    f'the rosbag2 recording {self.path} is corrupt after {read} of '
                    f'{self._total} messages on {self.topic}: {one_line(error)}',
                    frames_read=read) from error
            read += 1
            yield item

    def __iter__(self) -> Iterator[Frame]:
        compressed = self.msgtype.endswith('CompressedImage')
        for index, (connection, log_time, raw) in enumerate(self._messages()):
            self.frames_read += 1
            where = f'{self.name}: message {index}: '
            try:
                msg = self._reader.deserialize(raw, connection.msgtype)
            except Exception as error:
                self.drops.add('undeserialisable', f'{connection.msgtype}: {one_line(error)}',
                               where=where)
                continue
            stamp = self.decoder.stamp_of(msg)
            if stamp == 0:  # a driver that sets no stamp: the recording time stands in
                stamp = int(log_time)
            frame = self.decoder.decode(msg, compressed=compressed, index=index,
                                        stamp_ns=stamp, where=where)
            if frame is not None:
                yield frame

    def close(self) -> None:
        if getattr(self._reader, 'stack', None) is not None:
            try:
                self._reader.close()
            except Exception as error:  # a corrupt file may fail to close too
                _LOGGER.warning('%s: closing the recording failed: %s', self.path,
                                one_line(error))


def _storage_files(path: Path) -> str:
    files = sorted(p.name for p in path.iterdir() if p.suffix in BAG_SUFFIXES)
    return f' ({", ".join(files)})' if files else ''


def open_source(source: str, *, image_topic: str | None = None, frame_id: str = '',
                max_frames: int | None = None,
                max_image_pixels: int = DEFAULT_MAX_PIXELS) -> FrameSource:
    """Open ``source``: a camera index (``'0'``) or device path (``/dev/video0``), a rosbag2
    recording (directory, or ``.mcap``/``.db3`` inside one), or a video file.

    A recording's images of more than ``max_image_pixels`` pixels are dropped before decoding.
    """
    text = str(source)
    if text.isdigit():
        return CameraSource(int(text), frame_id=frame_id or 'camera', max_frames=max_frames)
    path = Path(text)
    if text.startswith('/dev/'):
        if not path.exists():
            raise FileNotFoundError(f'camera device {text} does not exist')
        return CameraSource(text, frame_id=frame_id or 'camera', max_frames=max_frames)
    if not path.exists():
        raise FileNotFoundError(f'source {text} does not exist (expected a video file, a camera '
                                'index or device path, or a rosbag2 recording)')
    if path.is_dir() or path.suffix in BAG_SUFFIXES:
        return BagSource(path, image_topic=image_topic, max_image_pixels=max_image_pixels)
    if image_topic is not None:
        raise ValueError(f'--image-topic {image_topic} given, but {text} is not a rosbag2 '
                         'recording')
    return VideoSource(path, frame_id=frame_id)

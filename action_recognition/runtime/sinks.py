"""Outputs of offline runs: JSON lines, a rosbag2 MCAP recording, an annotated video.

Every sink receives the recogniser's result type,
:class:`~action_recognition.runtime.results.Recognition` (one per window), through
:meth:`Sink.write`, and every source frame through :meth:`Sink.write_frame` (only the video sink
uses frames). Formats:

- ``.jsonl``: one JSON object per line: ``{"frame": index of the clip's last frame, "stamp":
  seconds, "stamp_ns": the exact stamp in integer nanoseconds, "frame_id": ..., "top":
  [{"label": ..., "score": ...}, ...], "events": [...]}``, best score first.
- ``.mcap``: a rosbag2 recording (directory ``FILE`` without the suffix, holding
  ``FILE.mcap`` and ``metadata.yaml``) with ``vision_msgs/msg/Classification`` on
  ``/action_recognition/actions`` (header: stamp and frame_id of the clip's last frame) and one
  ``vision_msgs/msg/LabelInfo`` on ``/action_recognition/label_info``.
- ``.mp4`` / ``.avi`` / ``.mkv``: the input frames with the latest recognition drawn on them.

No output is written in place: each sink writes a temporary with a unique name beside its
target (:mod:`action_recognition.files`) and publishes it under the final name when it is
closed, also when the run ends early (Ctrl-C, a recording that is corrupt midway), so what was
recognised up to there is kept, complete and valid. An existing output is refused unless
``force`` (``--force``) is given; with ``force`` it is replaced in one step at the end.
"""

from __future__ import annotations

from collections.abc import Sequence
import contextlib
import json
import os
from pathlib import Path
from types import TracebackType
from typing import Any
from typing import TextIO

import cv2
import numpy as np
from rosbags.rosbag2 import StoragePlugin
from rosbags.rosbag2 import Writer

from action_recognition.files import atomic_dir
from action_recognition.files import atomic_path
from action_recognition.files import check_output
from action_recognition.files import OutputExistsError
from action_recognition.io.messages import action_typestore
from action_recognition.io.messages import ACTIONS_TOPIC
from action_recognition.io.messages import build_classification
from action_recognition.io.messages import build_label_info
from action_recognition.io.messages import LABEL_INFO_TOPIC
from action_recognition.io.messages import rosbags_message_types
from action_recognition.runtime.annotate import annotate
from action_recognition.runtime.results import Recognition

__all__ = [
    'Sink', 'JsonLinesSink', 'McapSink', 'VideoSink', 'open_sink', 'mcap_bag_dir',
    'VIDEO_SUFFIXES', 'output_target',
]

VIDEO_SUFFIXES = ('.mp4', '.avi', '.mkv')


class _Pending:
    """A temporary file or directory that becomes ``path`` when :meth:`publish` is called."""

    def __init__(self, path: Path, *, force: bool, directory: bool = False) -> None:
        self._stack = contextlib.ExitStack()
        opener = atomic_dir if directory else atomic_path
        self.temporary: Path = self._stack.enter_context(opener(path, force=force))

    def publish(self) -> None:
        self._stack.close()

    def discard(self) -> None:
        self._stack.__exit__(RuntimeError, RuntimeError('discarded'), None)


class Sink:
    """Base class of the outputs; use as a context manager."""

    path: Path

    def write_frame(self, image: np.ndarray, latest: Recognition | None) -> None:
        """One source frame (``uint8`` RGB ``[H, W, 3]``) and the latest recognition so far."""

    def write(self, record: Recognition) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Finish the file."""

    def __enter__(self) -> Sink:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()


class JsonLinesSink(Sink):
    """One JSON object per recognition, one per line, flushed as written."""

    def __init__(self, path: str | os.PathLike[str], *, force: bool = False) -> None:
        self.path = check_output(path, force=force)
        self.count = 0
        self._pending = _Pending(self.path, force=force)
        self._handle: TextIO | None = self._pending.temporary.open('w', encoding='utf-8')

    def write(self, record: Recognition) -> None:
        if self._handle is None:
            raise RuntimeError(f'{self.path} is closed')
        self._handle.write(json.dumps(record.to_json()) + '\n')
        self._handle.flush()
        self.count += 1

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None
            self._pending.publish()


def mcap_bag_dir(path: str | os.PathLike[str]) -> Path:
    """The rosbag2 directory written for ``--output FILE.mcap``: ``FILE`` without the suffix."""
    path = Path(path)
    return path.with_suffix('') if path.suffix == '.mcap' else path


class McapSink(Sink):
    """A rosbag2 MCAP recording of ``vision_msgs/msg/Classification`` and ``LabelInfo``.

    Args:
        path: ``FILE.mcap``; the rosbag2 directory ``FILE`` is created. It must not exist, or,
            with ``force``, be a rosbag2 recording of MCAP files (which is replaced; any other
            directory is refused).
        labels: the model's labels, in output order (for ``LabelInfo``).
        threshold: the score threshold in force (for ``LabelInfo``).
    """

    def __init__(self, path: str | os.PathLike[str], *, labels: Sequence[str],
                 threshold: float, force: bool = False) -> None:

        self.path = mcap_bag_dir(path)
        if self.path.exists() and not force:
            raise OutputExistsError(f'{self.path} exists already (the MCAP output is written as '
                                    'a rosbag2 directory); pass --force to replace it')
        if self.path.exists() and not _is_mcap_recording(self.path):
            raise OutputExistsError(f'{self.path} exists and is not a rosbag2 MCAP recording; '
                                    'refusing to replace it even with --force')
        self.labels = list(labels)
        self.threshold = float(threshold)
        self.count = 0
        self._typestore = action_typestore()
        self._types = rosbags_message_types(self._typestore)
        self._pending = _Pending(self.path, force=force, directory=True)
        try:
            self._writer: Any = Writer(self._pending.temporary, version=8,
                                       storage_plugin=StoragePlugin.MCAP)
            self._writer.open()
        except BaseException:
            self._pending.discard()
            raise
        self._actions = self._writer.add_connection(
            ACTIONS_TOPIC, 'vision_msgs/msg/Classification', typestore=self._typestore)
        self._label_info = self._writer.add_connection(
            LABEL_INFO_TOPIC, 'vision_msgs/msg/LabelInfo', typestore=self._typestore)
        self._label_info_written = False

    @property
    def storage_file(self) -> Path:
        """The ``.mcap`` file inside the rosbag2 directory."""
        return self.path / f'{self.path.name}.mcap'

    def _write_label_info(self, stamp_ns: int) -> None:
        msg = build_label_info(self._types, labels=self.labels, threshold=self.threshold,
                               stamp=stamp_ns)
        self._writer.write(self._label_info, stamp_ns,
                           self._typestore.serialize_cdr(msg, 'vision_msgs/msg/LabelInfo'))
        self._label_info_written = True

    def write(self, record: Recognition) -> None:
        if not self._label_info_written:
            self._write_label_info(record.stamp_ns)
        msg = build_classification(self._types, stamp=record.stamp_ns,
                                   frame_id=record.frame_id, top=record.top)
        self._writer.write(self._actions, record.stamp_ns,
                           self._typestore.serialize_cdr(msg, 'vision_msgs/msg/Classification'))
        self.count += 1

    def close(self) -> None:
        if self._writer is None:
            return
        if not self._label_info_written:
            self._write_label_info(0)
        self._writer.close()
        self._writer = None
        self._pending.publish()


def _is_mcap_recording(path: Path) -> bool:
    """Whether ``path`` is a directory holding only a rosbag2 ``metadata.yaml`` and MCAP files
    (what :class:`McapSink` writes), so that ``--force`` may replace it."""
    if not path.is_dir() or path.is_symlink():
        return False
    names = [child.name for child in path.iterdir()]
    return 'metadata.yaml' in names and all(
        name == 'metadata.yaml' or name.endswith('.mcap') for name in names)


class VideoSink(Sink):
    """The source frames with the latest recognition drawn on them.

    The writer opens on the first frame (its size is the video's size); frames of another size
    are resized to it. ``.mp4`` uses the ``mp4v`` codec, ``.avi`` MJPG, ``.mkv`` XVID. A run
    that gives no frame writes no file.
    """

    _FOURCC = {'.mp4': 'mp4v', '.avi': 'MJPG', '.mkv': 'XVID'}

    def __init__(self, path: str | os.PathLike[str], *, fps: float, force: bool = False) -> None:
        self.path = Path(path)
        if self.path.suffix not in self._FOURCC:
            raise ValueError(f'video output must end in one of {list(self._FOURCC)}, '
                             f'got {self.path}')
        if fps <= 0:
            raise ValueError(f'fps must be > 0, got {fps}')
        check_output(self.path, force=force)
        self.fps = float(fps)
        self.count = 0
        self.frames_written = 0
        self._writer: Any = None
        self._size: tuple[int, int] | None = None
        self._pending: _Pending | None = _Pending(self.path, force=force)

    def write_frame(self, image: np.ndarray, latest: Recognition | None) -> None:
        height, width = image.shape[:2]
        if self._pending is None:
            raise RuntimeError(f'{self.path} is closed')
        if self._writer is None:
            fourcc = cv2.VideoWriter.fourcc(*self._FOURCC[self.path.suffix])
            self._writer = cv2.VideoWriter(str(self._pending.temporary), fourcc, self.fps,
                                           (width, height))
            if not self._writer.isOpened():
                self._writer = None
                raise OSError(f'OpenCV cannot write video {self.path}')
            self._size = (width, height)
        if self._size != (width, height):
            image = cv2.resize(image, self._size)
        drawn = annotate(image, latest.top if latest is not None else [])
        self._writer.write(cv2.cvtColor(drawn, cv2.COLOR_RGB2BGR))
        self.frames_written += 1

    def write(self, record: Recognition) -> None:
        self.count += 1

    def close(self) -> None:
        if self._pending is None:
            return
        if self._writer is not None:
            self._writer.release()
            self._writer = None
        if self.frames_written:
            self._pending.publish()
        else:
            self._pending.discard()
        self._pending = None


def output_target(path: str | os.PathLike[str]) -> Path:
    """What ``--output path`` creates: the file itself, or the rosbag2 directory of ``.mcap``."""
    return mcap_bag_dir(path) if Path(path).suffix.lower() == '.mcap' else Path(path)


def open_sink(path: str | os.PathLike[str], *, labels: Sequence[str], threshold: float,
              fps: float, force: bool = False) -> Sink:
    """The sink for ``path``'s suffix: ``.jsonl``, ``.mcap`` or a video suffix.

    An existing output is refused unless ``force`` (:class:`~action_recognition.files.
    OutputExistsError`).
    """
    suffix = Path(path).suffix.lower()
    if suffix in ('.jsonl', '.json'):
        return JsonLinesSink(path, force=force)
    if suffix == '.mcap':
        return McapSink(path, labels=labels, threshold=threshold, force=force)
    if suffix in VIDEO_SUFFIXES:
        return VideoSink(path, fps=fps, force=force)
    raise ValueError(f'unknown output type {path}: expected .jsonl, .mcap or '
                     f'{", ".join(VIDEO_SUFFIXES)}')

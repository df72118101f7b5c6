"""Frames, checked once where they enter: the one decoder of ROS image messages, and drops.

- :class:`Frame`: a ``uint8`` RGB ``[H, W, 3]`` image with its stamp in integer nanoseconds, its
  frame id and its index in the source. :func:`make_frame` is the one check of a frame from
  outside (an array handed to the node or the recogniser, a video's or camera's frame): shape,
  dtype, size and an integer stamp; what is past it is trusted.
- :class:`FrameDecoder`: a ``sensor_msgs/msg/Image`` or ``CompressedImage`` (rclpy's or
  rosbags') to a :class:`Frame`, for the node and for recordings alike: the header's stamp
  (:func:`header_stamp_ns`) and frame id, the size checked against ``max_pixels`` before
  anything is decoded (:mod:`action_recognition.data.images`), every encoding. Nothing raised by
  a message escapes: a message that cannot be used is counted in :class:`Drops` by kind, with
  its whole reason, and logged (throttled per kind).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
import logging
import threading
from typing import Any

import numpy as np

from action_recognition.data.images import compressed_msg_to_rgb
from action_recognition.data.images import DEFAULT_MAX_PIXELS
from action_recognition.data.images import image_msg_to_rgb
from action_recognition.data.images import ImageDecodeError
from action_recognition.data.preprocess import frame_problem
from action_recognition.logs import describe_error
from action_recognition.logs import Throttle

__all__ = ['Frame', 'FrameError', 'make_frame', 'is_stamp_ns', 'header_stamp_ns', 'Drops',
           'FrameDecoder',
           'BAD_FRAME']

#: The :class:`Drops` kind of a frame refused by :func:`make_frame`.
BAD_FRAME = 'bad frame'


@dataclass(frozen=True, slots=True)
class Frame:
    """One frame, checked (:func:`make_frame`, or decoded by :class:`FrameDecoder`).

    Attributes:
        image: ``uint8`` RGB ``[H, W, 3]``, at least 2x2.
        stamp_ns: its stamp in integer nanoseconds (exact: message headers are built from it).
        frame_id: coordinate frame of the camera (``header.frame_id``).
        index: position of the frame in its source (a video's frame number, a recording's
            message number on its topic, the node's count of images received).
    """

    image: np.ndarray
    stamp_ns: int
    frame_id: str = ''
    index: int = 0

    @property
    def stamp(self) -> float:
        """The stamp in seconds (for display)."""
        return self.stamp_ns * 1e-9


class FrameError(ValueError):
    """A frame refused by :func:`make_frame`; the message says why."""


def make_frame(image: Any, stamp_ns: Any, frame_id: str = '', index: int = 0) -> Frame:
    """A :class:`Frame`, or :class:`FrameError` saying what is wrong with ``image`` or
    ``stamp_ns`` (not ``uint8`` RGB ``[H, W, 3]`` of at least 2x2, or a stamp that is not an
    integer number of nanoseconds)."""
    problem = frame_problem(image, min_side=2)
    if problem is not None:
        raise FrameError(problem)
    if not is_stamp_ns(stamp_ns):
        raise FrameError(f'stamp {stamp_ns!r} is not integer nanoseconds')
    return Frame(image, int(stamp_ns), frame_id, int(index))


def is_stamp_ns(value: Any) -> bool:
    """Whether ``value`` is a stamp in integer nanoseconds (an int or numpy integer, not a
    bool or a float)."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def header_stamp_ns(header: Any) -> int:
    """A ``std_msgs/Header``'s stamp in integer nanoseconds (exact)."""
    stamp = header.stamp
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


class Drops:
    """Frames that could not be used: a count per kind, the latest whole reason of each, and a
    warning per kind at most every few seconds (``'dropping image (<kind>): <reason>'``).

    Thread safe: the node counts on its subscription thread and reads on its timer's.
    """

    def __init__(self, logger: logging.Logger, *, prefix: str = '') -> None:
        self.logger = logger
        self.prefix = prefix
        self.throttle = Throttle(logger)
        self._counts: Counter[str] = Counter()
        self._reasons: dict[str, str] = {}
        self._lock = threading.Lock()

    def add(self, kind: str, reason: str, *, hint: str = '', where: str = '') -> None:
        """Count one dropped frame of ``kind`` and log ``reason`` (throttled per kind)."""
        with self._lock:
            self._counts[kind] += 1
            self._reasons[kind] = reason
        self.throttle.warning(kind, f'{self.prefix}{where}dropping image ({kind}): '
                                    f'{reason}{hint}')

    @property
    def total(self) -> int:
        with self._lock:
            return sum(self._counts.values())

    def counts(self) -> dict[str, int]:
        """Dropped frames by kind."""
        with self._lock:
            return dict(self._counts)

    def reasons(self) -> dict[str, str]:
        """The latest whole reason of each kind."""
        with self._lock:
            return dict(self._reasons)


class FrameDecoder:
    """ROS image messages to :class:`Frame`: the one decoder of the node and of recordings.

    Args:
        drops: where unusable messages are counted (its logger logs them).
        max_pixels: images of more pixels are dropped as ``'oversized'`` before decoding (the
            owner may change it at any time: it is read for every message).
        oversize_hint: appended to an ``'oversized'`` reason (which setting raises the limit).
    """

    def __init__(self, drops: Drops, *, max_pixels: int = DEFAULT_MAX_PIXELS,
                 oversize_hint: str = '') -> None:
        self.drops = drops
        self.max_pixels = max_pixels
        self.oversize_hint = oversize_hint

    @staticmethod
    def stamp_of(msg: Any) -> int | None:
        """The stamp of ``msg``'s header in integer nanoseconds; ``None`` when it has no usable
        header (:meth:`decode` then counts it)."""
        try:
            return header_stamp_ns(msg.header)
        except Exception:
            return None

    def decode(self, msg: Any, *, compressed: bool, index: int = 0,
               stamp_ns: int | None = None, where: str = '') -> Frame | None:
        """The frame of ``msg`` (a raw ``Image``, or a ``CompressedImage`` when
        ``compressed``), stamped ``stamp_ns`` or, without it, with its header's stamp; ``None``
        (counted, logged) when the message cannot be used. Never raises."""
        try:
            stamp = header_stamp_ns(msg.header) if stamp_ns is None else stamp_ns
            frame_id = str(msg.header.frame_id)
        except Exception as error:  # a message without a usable header
            self.drops.add('bad header', f'its header cannot be read: {describe_error(error)}',
                           where=where)
            return None
        convert = compressed_msg_to_rgb if compressed else image_msg_to_rgb
        try:
            image = convert(msg, max_pixels=self.max_pixels)
        except ImageDecodeError as error:
            hint = self.oversize_hint if error.kind == 'oversized' else ''
            self.drops.add(error.kind, str(error), hint=hint, where=where)
            return None
        except Exception as error:  # cv2.error, MemoryError, a malformed message: never out
            self.drops.add('decoder error', f'converting the image raised '
                                            f'{describe_error(error)}', where=where)
            return None
        return self.checked(image, stamp, frame_id, index, where=where)

    def frame(self, image: Any, stamp_ns: Any, frame_id: str = '', index: int = 0, *,
              where: str = '') -> Frame | None:
        """:func:`make_frame` of an array, its size checked against ``max_pixels``; ``None``
        (counted, logged) when it is refused."""
        shape: tuple[int, ...] = tuple(getattr(image, 'shape', ()))
        if len(shape) >= 2 and shape[0] * shape[1] > self.max_pixels:
            self.drops.add('oversized', f'the frame is {shape[1]}x{shape[0]} = '
                                        f'{shape[0] * shape[1]} pixels, more than the limit of '
                                        f'{self.max_pixels} pixels', hint=self.oversize_hint,
                           where=where)
            return None
        return self.checked(image, stamp_ns, frame_id, index, where=where)

    def checked(self, image: Any, stamp_ns: Any, frame_id: str = '', index: int = 0, *,
                where: str = '') -> Frame | None:
        """:func:`make_frame`, or ``None`` with the refusal counted as ``'bad frame'``."""
        try:
            return make_frame(image, stamp_ns, frame_id, index)
        except FrameError as error:
            self.drops.add(BAD_FRAME, str(error), where=where)
            return None

"""Frame intake: a camera's images into checked frames, with every drop counted once.

:class:`FrameIntake` is where an image enters the node (the subscription callback): a message is
decoded once by the one decoder (:class:`~action_recognition.runtime.frames.FrameDecoder`, its
size checked against ``max_image_pixels`` before anything is decoded), an array handed over
directly is checked once (:meth:`FrameIntake.array`); what cannot be used is counted by kind in
:attr:`FrameIntake.drops` with its whole reason. It also keeps the counts diagnostics need
(images received, their stamps' gaps: :class:`~action_recognition.node.diagnostics.
SequenceMonitor`) and, while someone watches ``~/debug_image``, the last few frames it passed on,
so that a result's debug image shows its window's own last frame.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
import logging
import threading
from typing import Any

import numpy as np

from action_recognition.node.diagnostics import SequenceMonitor
from action_recognition.runtime.frames import Drops
from action_recognition.runtime.frames import Frame
from action_recognition.runtime.frames import FrameDecoder

__all__ = ['FrameIntake', 'DEBUG_FRAMES']

DEBUG_FRAMES = 8  # frames kept for ~/debug_image while it has subscribers


class FrameIntake:
    """Images in, checked frames out, drops counted (see the module docstring).

    Args:
        logger: where drops are logged (throttled per kind).
        clock: monotonic seconds (when the last image arrived).
        max_pixels: the largest image accepted (:meth:`configure` changes it).
        max_gap_ns: a larger gap between stamps is a restart, not images lost.
    """

    def __init__(self, *, logger: logging.Logger, clock: Callable[[], float], max_pixels: int,
                 max_gap_ns: int) -> None:
        self.clock = clock
        self.drops = Drops(logger)
        self.decoder = FrameDecoder(self.drops, max_pixels=max_pixels,
                                    oversize_hint=' (the limit is the max_image_pixels '
                                                  'parameter)')
        self.sequence = SequenceMonitor()
        self.max_gap_ns = max_gap_ns
        self.frames_received = 0
        self.frames_disabled = 0
        self.last_frame_time: float | None = None
        self._lock = threading.Lock()
        self._debug: deque[tuple[int, np.ndarray]] = deque(maxlen=DEBUG_FRAMES)

    def configure(self, *, max_pixels: int, max_gap_ns: int) -> None:
        """New limits, from the next image on."""
        self.decoder.max_pixels = max_pixels
        self.max_gap_ns = max_gap_ns

    def _received(self, stamp_ns: int | None = None) -> int:
        """Count one image, and its stamp (its index: the images received before it)."""
        with self._lock:
            index = self.frames_received
            self.frames_received += 1
            self.last_frame_time = self.clock()
            if stamp_ns is not None:
                self.sequence.add(stamp_ns, max_gap_ns=self.max_gap_ns)
        return index

    def message(self, msg: Any, *, compressed: bool) -> Frame | None:
        """The frame of a ``sensor_msgs/Image`` (or ``CompressedImage``); ``None`` when it
        cannot be used (counted, logged). Never raises."""
        stamp = self.decoder.stamp_of(msg)  # counted for the losses even if the image is bad
        index = self._received(stamp)
        return self.decoder.decode(msg, compressed=compressed, index=index, stamp_ns=stamp)

    def array(self, image: Any, stamp_ns: Any, frame_id: str) -> Frame | None:
        """The frame of an RGB ``uint8 [H, W, 3]`` array with its stamp in integer
        nanoseconds; ``None`` when it is refused (counted, logged)."""
        frame = self.decoder.frame(image, stamp_ns, frame_id, self._received())
        if frame is not None:
            with self._lock:
                self.sequence.add(frame.stamp_ns, max_gap_ns=self.max_gap_ns)
        return frame

    def disabled(self) -> None:
        """A frame that arrived while processing is disabled (not passed on)."""
        with self._lock:
            self.frames_disabled += 1
            self._debug.clear()

    def passed_on(self, frame: Frame, *, keep_for_debug: bool) -> None:
        """``frame`` went to the recogniser: keep it for the debug image while one is wanted."""
        if not keep_for_debug and not self._debug:
            return  # nobody watches, nothing kept: the common case, without the lock
        with self._lock:
            if keep_for_debug:
                self._debug.append((frame.index, frame.image))
            else:
                self._debug.clear()

    def debug_frame(self, index: int) -> np.ndarray | None:
        """The kept frame of source index ``index`` (``None`` when no longer kept)."""
        with self._lock:
            for kept, image in reversed(self._debug):
                if kept == index:
                    return image
        return None

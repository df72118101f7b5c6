"""The recogniser: independent streams over one loaded backend, their due windows in one call.

A :class:`Recognizer` holds any number of :class:`~action_recognition.runtime.stream.Stream`
objects (one per camera; one per tracked person), each with its own ring, schedule, smoothing
and hysteresis, over one backend. :meth:`Recognizer.run_due` takes every stream's due window and
runs them through the backend in one call, ``uint8 [B*T, 3, h, w]`` for ``B`` windows: one batch
where the backend batches (PyTorch, ONNX Runtime), one clip after another inside that call where
it is compiled for one clip (OpenVINO's static shapes); a backend with a ``max_batch`` gets
batches of at most that many windows. Each window's logits go back to its own stream, so the
results equal those of separate runs (``test_recognizer``).

With a :class:`~action_recognition.runtime.protocol.StreamingBackend` (a torch backend with
``streaming=True``), the per-frame 2D features are cached in the rings, so each window runs the
2D-Net only on the frames it has not seen, the frames of all due windows in one call.

One stream, the ``''`` one, is there from the start: a camera or a file needs nothing else
(:meth:`~Recognizer.push` = :meth:`~Recognizer.submit_image` then :meth:`~Recognizer.run_due`).
Bad input never raises: a frame refused by the frame check, a failed or non-finite inference are
logged (throttled) and counted in the stream's :class:`~action_recognition.runtime.stream.
StreamCounters`.
"""

from __future__ import annotations

from collections.abc import Iterable
import logging
import threading
import time
from typing import Any

import numpy as np

from action_recognition.runtime.frames import Frame
from action_recognition.runtime.frames import FrameError
from action_recognition.runtime.frames import make_frame
from action_recognition.runtime.protocol import Backend
from action_recognition.runtime.protocol import StreamingBackend
from action_recognition.runtime.results import Recognition
from action_recognition.runtime.settings import StreamSettings
from action_recognition.runtime.stream import Stream
from action_recognition.runtime.stream import StreamCounters
from action_recognition.runtime.stream import Window
from action_recognition.spec import ModelSpec

__all__ = ['Recognizer', 'DEFAULT_STREAM']

#: The key of the stream every recogniser starts with.
DEFAULT_STREAM = ''


class Recognizer:
    """Streams of frames in, :class:`~action_recognition.runtime.results.Recognition` out.

    Args:
        backend: a :class:`~action_recognition.runtime.protocol.Backend` (a
            :class:`~action_recognition.runtime.protocol.StreamingBackend` when it streams).
        settings: every stream's settings (:class:`StreamSettings`; default: its defaults).
        spec: the model's spec, when it differs from ``backend.spec`` (labels from a label file).
    """

    def __init__(self, backend: Backend, settings: StreamSettings | None = None, *,
                 spec: ModelSpec | None = None, logger: logging.Logger | None = None) -> None:
        self.backend = backend
        self.spec = spec or backend.spec
        self.settings = settings or StreamSettings()
        self.logger = logger or logging.getLogger(__name__)
        self._stream_backend: StreamingBackend | None = \
            backend if backend.streaming and isinstance(backend, StreamingBackend) else None
        self._lock = threading.Lock()
        self._infer_lock = threading.Lock()
        self._streams: dict[str, Stream] = {}
        self._retired = StreamCounters()
        self.stream(DEFAULT_STREAM)

    @property
    def streaming(self) -> bool:
        """Whether per-frame features are cached (a streaming backend)."""
        return self._stream_backend is not None

    # -- streams -----------------------------------------------------------------------------

    def stream(self, key: str = DEFAULT_STREAM) -> Stream:
        """The stream ``key``, made with the recogniser's settings on first use."""
        found = self._streams.get(key)  # one dict lookup: atomic, no lock needed to find it
        if found is not None:
            return found
        with self._lock:
            found = self._streams.get(key)
            if found is None:
                found = Stream(self.spec, self.settings, key=key, logger=self.logger)
                self._streams[key] = found
            return found

    def keys(self) -> list[str]:
        with self._lock:
            return list(self._streams)

    def _all(self) -> list[Stream]:
        """The streams now (a copy: one may be added while the caller goes through them)."""
        with self._lock:
            return list(self._streams.values())

    def remove_stream(self, key: str) -> None:
        """Forget stream ``key`` (its counters stay in :meth:`counters`)."""
        with self._lock:
            gone = self._streams.pop(key, None)
            if gone is not None:
                self._retired = self._retired + gone.counters

    def apply(self, settings: StreamSettings) -> None:
        """New settings for every stream (a run-time change)."""
        self.settings = settings  # for streams made from now on
        for stream in self._all():
            stream.apply(settings)

    def counters(self) -> StreamCounters:
        """The totals of every stream, removed ones included."""
        with self._lock:  # the removed streams' and the others' at one moment
            total = self._retired
            streams = list(self._streams.values())
        for stream in streams:
            total = total + stream.counters
        return total

    def reset(self) -> None:
        """Forget every stream's frames, smoothing and active actions (counters kept)."""
        for stream in self._all():
            stream.reset()

    # -- frames in ---------------------------------------------------------------------------

    def submit(self, frame: Frame, *, stream: str = DEFAULT_STREAM) -> bool:
        """Buffer a checked frame in stream ``stream``; whether a window is now due there."""
        return self.stream(stream).submit(frame)

    def submit_image(self, image: Any, stamp_ns: int, frame_id: str = '', *,
                     index: int | None = None, stream: str = DEFAULT_STREAM) -> bool:
        """Check an RGB ``uint8 [H, W, 3]`` image with its stamp in integer nanoseconds
        (:func:`~action_recognition.runtime.frames.make_frame`) and buffer it; a refused one is
        counted in the stream's ``frames_dropped`` and logged. ``index``: its index in the
        source (default: its position in the stream)."""
        target = self.stream(stream)
        try:
            frame = make_frame(image, stamp_ns, frame_id,
                               target.buffer.frames_pushed if index is None else index)
        except FrameError as error:
            target.refuse(str(error), frame_id)
            return False
        return target.submit(frame)

    def push(self, image: Any, stamp_ns: int, frame_id: str = '', *, index: int | None = None,
             stream: str = DEFAULT_STREAM) -> Recognition | None:
        """:meth:`submit_image`, then run that stream's window if one is due (one thread)."""
        if not self.submit_image(image, stamp_ns, frame_id, index=index, stream=stream):
            return None
        results = self.run_due([stream])
        return results[0] if results else None

    # -- inference ---------------------------------------------------------------------------

    def run_latest(self) -> Recognition | None:
        """Run the default stream's due window, if any (the node and ``run`` have one)."""
        results = self.run_due([DEFAULT_STREAM])
        return results[0] if results else None

    def run_due(self, streams: Iterable[str] | None = None) -> list[Recognition]:
        """Run the due window of every stream (or of ``streams``) in one backend call; their
        recognitions, in stream order. Never raises (see the module docstring)."""
        with self._lock:
            chosen = list(self._streams.values()) if streams is None else \
                [self._streams[key] for key in streams if key in self._streams]
        windows = [window for stream in chosen if (window := stream.take()) is not None]
        limit = self.backend.max_batch or len(windows)
        if len(windows) <= limit:
            return self._run(windows) if windows else []
        results = []
        for start in range(0, len(windows), limit):
            results += self._run(windows[start:start + limit])
        return results

    def _run(self, windows: list[Window]) -> list[Recognition]:
        with self._infer_lock:
            start = time.perf_counter()
            try:
                logits = np.asarray(self._infer(windows))
            except Exception as error:
                for window in windows:
                    window.stream.failed(window, error)
                return []
            inference_s = time.perf_counter() - start
        if logits.ndim != 2 or len(logits) != len(windows):
            logits = np.stack([logits] * len(windows))  # malformed: each stream drops it
        results = []
        for index, window in enumerate(windows):
            result = window.stream.finish(window, logits[index], inference_s)
            if result is not None:
                results.append(result)
        return results

    def _infer(self, windows: list[Window]) -> np.ndarray:
        if self._stream_backend is None:
            frames = windows[0].clip.frames if len(windows) == 1 else \
                np.concatenate([window.clip.frames for window in windows])
            return self.backend.infer(frames)
        return self._infer_streaming(self._stream_backend, windows)

    @staticmethod
    def _infer_streaming(backend: StreamingBackend, windows: list[Window]) -> np.ndarray:
        """The 2D-Net on the frames no window has seen (one call), then the clip head."""
        features: list[list[Any]] = [list(window.clip.features) for window in windows]
        missing = [(w, row) for w, window in enumerate(windows)
                   for row, cached in enumerate(window.clip.features) if cached is None]
        if missing:
            new = backend.frame_features(np.stack([windows[w].clip.frames[row]
                                                   for w, row in missing]))
            for i, (w, row) in enumerate(missing):
                features[w][row] = new[i:i + 1]
                windows[w].stream.cache_features(windows[w], row, features[w][row])
        return backend.infer_features([item for clip in features for item in clip])

"""A bounded, preallocated ring of timestamped frames and the clips sampled from it.

The ring is one ``uint8`` array ``[capacity, *item]`` allocated for the first frame's shape
(the recogniser pushes prepared frames ``[3, h, w]``), with integer-nanosecond stamps, source
indices and frame ids beside it: a frame is copied into its slot once, and a clip is a single
gather of ``num_frames`` slots, ``[T, *item]``, never a stack of per-frame arrays. Memory never
grows with the length of a stream.

Clips are sampled as the model was trained, from the model's own
:class:`~action_recognition.spec.ModelSpec` (:func:`~action_recognition.data.sampling.
stream_indices`): dense clips of ``num_frames`` frames ``frame_stride`` apart ending at the
newest frame, or TSN segments over the last ``window`` frames.

The ring restarts (with a logged reason, counted in :attr:`ClipBuffer.resets`) when the stream
breaks: a gap in time longer than ``max_gap_s``, a stamp going backwards, or a change of the
item's shape or of the source resolution (frames of a different field of view must not be mixed
into one clip). Each slot can also hold a cached per-frame feature (a streaming backend's 2D-Net
output, :meth:`ClipBuffer.cache_features`).

Thread safety: all methods take an internal lock, so one thread may push while another samples.
"""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field
import logging
import threading
from typing import Any

import numpy as np

from action_recognition.data.sampling import stream_indices
from action_recognition.runtime.frames import is_stamp_ns
from action_recognition.spec import ModelSpec

__all__ = ['ClipBuffer', 'Clip']


@dataclass
class Clip:
    """One clip sampled from the ring.

    Attributes:
        frames: the sampled items, oldest first: ``uint8 [T, *item]`` (prepared frames
            ``[T, 3, h, w]``), a fresh array (one gather).
        stamps_ns: ``int64 [T]`` stamps of the sampled items, in nanoseconds.
        indices: ``int64 [T]`` stream positions of the items (0 = first item ever pushed).
        source_indices: ``int64 [T]`` indices the items have in their source (a video's frame
            number, a recording's message number, the node's count of images received).
        frame_index: source index of the newest item in the ring (the clip's last frame).
        frame_id: frame id of the newest item.
        features: cached per-item features of the sampled items (``None`` where not cached).
        generation: :attr:`ClipBuffer.generation` when the clip was taken: clips of different
            generations are separated by a restart and belong to different streams.
    """

    frames: np.ndarray
    stamps_ns: np.ndarray
    indices: np.ndarray
    source_indices: np.ndarray
    frame_index: int
    frame_id: str
    features: list[Any] = field(default_factory=list)
    generation: int = 0

    @property
    def stamp_ns(self) -> int:
        """Stamp of the clip's last frame (integer nanoseconds)."""
        return int(self.stamps_ns[-1])

    def __len__(self) -> int:
        return len(self.frames)


class ClipBuffer:
    """Bounded ring of the latest frames of one stream.

    Args:
        spec: the model's spec: sampling mode, clip length and frame stride.
        capacity: ring size in items; defaults to the frames one clip spans (``window`` for
            segment sampling). Must be at least that.
        window: for segment (TSN) sampling, the number of latest frames the segments cover
            (default ``spec.clip_span``).
        max_gap_s: a jump of more than this many seconds between consecutive stamps restarts
            the ring (``None``: never).
        logger: where reasons for resets go.
    """

    def __init__(self, spec: ModelSpec, *, capacity: int | None = None,
                 window: int | None = None, max_gap_s: float | None = 1.0,
                 logger: logging.Logger | None = None) -> None:
        self.spec = spec
        if window is not None and window < spec.num_frames:
            raise ValueError(
                f'window {window} is shorter than the clip length {spec.num_frames}')
        self.window = window if spec.sampling == 'segments' else None
        self.span = spec.clip_span if spec.sampling == 'dense' else (window or spec.clip_span)
        if capacity is None:
            capacity = self.span
        if capacity < self.span:
            raise ValueError(f'capacity {capacity} is smaller than one clip span {self.span}')
        if max_gap_s is not None and max_gap_s <= 0:
            raise ValueError(f'max_gap_s must be > 0 or None, got {max_gap_s}')
        self.capacity = capacity
        self.max_gap_s = max_gap_s
        self.logger = logger or logging.getLogger(__name__)
        self._lock = threading.Lock()
        self._items: np.ndarray | None = None  # [capacity, *item], allocated on the first push
        self._stamps = np.zeros(capacity, np.int64)
        self._positions = np.zeros(capacity, np.int64)
        self._sources = np.zeros(capacity, np.int64)
        self._frame_ids: list[str] = [''] * capacity
        self._features: list[Any] = [None] * capacity
        self._count = 0  # items held (<= capacity); the newest is at (_next_position - 1)
        self._source_shape: tuple[int, ...] | None = None
        self._last_stamp: int | None = None
        self._next_position = 0
        self.resets = 0
        self.reset_reasons: dict[str, int] = {}
        self.frames_since_last_clip = 0
        self.generation = 0  # incremented whenever the ring is emptied (clear or reset)

    def __len__(self) -> int:
        return self._count

    @property
    def frames_pushed(self) -> int:
        """Items pushed since construction (the next item's stream position)."""
        return self._next_position

    def clear(self) -> None:
        """Empty the ring (not counted as a reset)."""
        with self._lock:
            self._clear()

    def _clear(self) -> None:
        self._count = 0
        self._features = [None] * self.capacity
        self._source_shape = None
        self._last_stamp = None
        self.frames_since_last_clip = 0
        self.generation += 1

    def _reset(self, reason: str, detail: str) -> None:
        if self._count:
            self.resets += 1
            self.reset_reasons[reason] = self.reset_reasons.get(reason, 0) + 1
            self.logger.warning('clip buffer reset (%s): %s; dropping %d buffered frames',
                                reason, detail, self._count)
        self._clear()

    def push(self, item: np.ndarray, stamp_ns: int, frame_id: str = '', *,
             index: int | None = None, source_shape: tuple[int, ...] | None = None) -> int:
        """Copy one item (a prepared ``uint8`` frame ``[3, h, w]``) into the ring.

        ``stamp_ns`` is the frame's stamp in integer nanoseconds; ``index`` its index in the
        source (default: its stream position); ``source_shape`` the frame's shape before
        preparation (a change of it restarts the ring). Returns the item's stream position.
        """
        if not is_stamp_ns(stamp_ns):
            raise ValueError(f'stamp_ns must be integer nanoseconds, got {stamp_ns!r}')
        stamp = int(stamp_ns)
        shape = tuple(int(s) for s in item.shape)
        with self._lock:
            if self._last_stamp is not None:
                if stamp < self._last_stamp:
                    self._reset('backwards', f'timestamp went backwards from '
                                f'{self._last_stamp * 1e-9:.6f} to {stamp * 1e-9:.6f} s')
                elif self.max_gap_s is not None and \
                        stamp - self._last_stamp > self.max_gap_s * 1e9:
                    self._reset('gap', f'gap of {(stamp - self._last_stamp) * 1e-9:.3f} s > '
                                f'{self.max_gap_s:.3f} s')
            if self._items is not None and self._items.shape[1:] != shape:
                if self._count:
                    self._reset('shape', f'item shape changed from {self._items.shape[1:]} '
                                f'to {shape}')
                self._items = None
            if source_shape is not None and self._source_shape is not None and \
                    tuple(source_shape) != self._source_shape:
                self._reset('resolution', f'source resolution changed from '
                            f'{self._source_shape} to {tuple(source_shape)}')
            if self._items is None:
                self._items = np.empty((self.capacity, *shape), dtype=item.dtype)
            position = self._next_position
            slot = position % self.capacity
            self._items[slot] = item
            self._stamps[slot] = stamp
            self._positions[slot] = position
            self._sources[slot] = position if index is None else int(index)
            self._frame_ids[slot] = frame_id
            self._features[slot] = None
            self._next_position += 1
            self._count = min(self._count + 1, self.capacity)
            if source_shape is not None:
                self._source_shape = tuple(source_shape)
            self._last_stamp = stamp
            self.frames_since_last_clip += 1
            return position

    def ready(self) -> bool:
        """Whether the ring holds enough frames for a clip."""
        return self._count >= self.span

    def latest_clip(self, *, mark: bool = True) -> Clip:
        """The clip ending at the newest frame; ``ValueError`` when not :meth:`ready`.

        ``mark`` restarts :attr:`frames_since_last_clip` (a caller that schedules clips itself
        passes ``False``).
        """
        with self._lock:
            if self._items is None or not self.ready():
                raise ValueError(f'{self._count} buffered frames, a clip needs {self.span}')
            oldest = self._next_position - self._count
            picks = stream_indices(self.spec, self._count, self.window)
            slots = (oldest + np.asarray(picks, dtype=np.int64)) % self.capacity
            newest = (self._next_position - 1) % self.capacity
            if mark:
                self.frames_since_last_clip = 0
            return Clip(
                frames=np.take(self._items, slots, axis=0),
                stamps_ns=self._stamps[slots].copy(), indices=self._positions[slots].copy(),
                source_indices=self._sources[slots].copy(),
                frame_index=int(self._sources[newest]), frame_id=self._frame_ids[newest],
                features=[self._features[int(s)] for s in slots], generation=self.generation)

    def cache_features(self, position: int, features: Any) -> bool:
        """Store ``features`` with the item at stream position ``position`` if still held."""
        with self._lock:
            oldest = self._next_position - self._count
            if not oldest <= position < self._next_position:
                return False
            slot = position % self.capacity
            if self._positions[slot] != position:
                return False
            self._features[slot] = features
            return True

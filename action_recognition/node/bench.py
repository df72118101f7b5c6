"""The node core's per-frame CPU cost, without ROS: ``action-recognition bench --node-core``.

Frames of the synthetic benchmark go in as ``sensor_msgs/Image``-shaped messages (rgb8) through
:meth:`~action_recognition.node.core.NodeCore.on_image_msg`, and :meth:`~action_recognition.
node.core.NodeCore.step` runs after each, as the worker would; with ``hop`` 1 every frame makes
a window. The process CPU time per frame is measured in total and without the backend's own
inference (the core's overhead: decoding, preparing, the ring, scheduling, smoothing,
bookkeeping), best of ``repeats`` runs. The package's INFO log lines (actions starting and
ending) are held back while it measures, so the figure is the core's, not the terminal's.
"""

from __future__ import annotations

from dataclasses import dataclass
import logging
import time
from types import SimpleNamespace
from typing import Any

import numpy as np

from action_recognition.data.synth_clips import clip_rng
from action_recognition.data.synth_clips import generate_clip
from action_recognition.node.core import NodeCore
from action_recognition.node.parameters import parse_parameters
from action_recognition.runtime.backends import load_backend

__all__ = ['NodeCoreCost', 'measure_node_core']


@dataclass
class NodeCoreCost:
    """Microseconds of process CPU time per frame."""

    size: int
    hop: int
    frames: int
    total_us: float
    overhead_us: float
    inference_us: float


def _message(frame: np.ndarray, stamp_ns: int) -> Any:
    stamp = SimpleNamespace(sec=stamp_ns // 1_000_000_000, nanosec=stamp_ns % 1_000_000_000)
    height, width = frame.shape[:2]
    return SimpleNamespace(header=SimpleNamespace(stamp=stamp, frame_id='camera'),
                           height=height, width=width, encoding='rgb8', is_bigendian=0,
                           step=width * 3, data=frame.tobytes())


def measure_node_core(*, model_path: str = '', size: int = 64, hop: int = 1,
                      frames: int = 900, repeats: int = 3, warmup: int = 100) -> NodeCoreCost:
    """Feed ``frames`` frames of ``size`` x ``size`` through a node core (``threads`` 1)."""
    logger = logging.getLogger('action_recognition')
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        return _measure(model_path=model_path, size=size, hop=hop, frames=frames,
                        repeats=repeats, warmup=warmup)
    finally:
        logger.setLevel(level)


def _measure(*, model_path: str, size: int, hop: int, frames: int, repeats: int,
             warmup: int) -> NodeCoreCost:
    clip = generate_clip('move_left', rng=clip_rng(0, 1), frames=64, size=size)
    inference = [0.0]

    def timed_load(path: Any, *args: Any, **kwargs: Any) -> Any:
        """The backend, its inference timed (what the core's own cost leaves out)."""
        backend = load_backend(path, *args, **kwargs)
        infer = backend.infer

        def timed(batch: Any) -> np.ndarray:
            start = time.process_time()
            try:
                return infer(batch)
            finally:
                inference[0] += time.process_time() - start

        backend.infer = timed  # type: ignore[method-assign,assignment]
        return backend

    core = NodeCore(parse_parameters({'model_path': model_path, 'hop': hop, 'threads': 1}),
                    load=timed_load)
    period = 33_333_333

    def stream(first: int, count: int) -> list[Any]:
        return [_message(clip[i % len(clip)], 10**18 + i * period)
                for i in range(first, first + count)]

    for msg in stream(0, warmup):
        core.on_image_msg(msg)
        core.step()
    best: tuple[float, float] | None = None
    for repeat in range(repeats):
        messages = stream(warmup + repeat * frames, frames)  # the stream goes on
        inference[0] = 0.0
        start = time.process_time()
        for msg in messages:
            core.on_image_msg(msg)
            core.step()
        cpu = time.process_time() - start
        if best is None or cpu < best[0]:
            best = (cpu, inference[0])
    assert best is not None
    cpu, inferred = best
    core.close()
    return NodeCoreCost(size=size, hop=hop, frames=frames, total_us=cpu / frames * 1e6,
                        overhead_us=(cpu - inferred) / frames * 1e6,
                        inference_us=inferred / frames * 1e6)

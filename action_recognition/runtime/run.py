"""Offline runs: every frame of a source through the recogniser into the sinks.

What ``action-recognition run`` (:mod:`action_recognition.cli.run`) does: a
:class:`~action_recognition.runtime.sources.FrameSource` (video, camera, rosbag2 recording)
yields checked frames with their stamps in integer nanoseconds and their index in the source;
the same :class:`~action_recognition.runtime.recognizer.Recognizer` as the ROS node (built by
:mod:`action_recognition.runtime.pipeline`) turns them into
:class:`~action_recognition.runtime.results.Recognition` results (one clip every ``hop``
frames, the first as soon as a clip is buffered, so a video of exactly one clip span gives
exactly one recognition), which go to every sink as they are. A progress bar runs on inputs of
known length and a :class:`RunSummary` ends the run.
"""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field
import sys
import time

from action_recognition.runtime.frames import BAD_FRAME
from action_recognition.runtime.recognizer import Recognizer
from action_recognition.runtime.results import Recognition
from action_recognition.runtime.sinks import Sink
from action_recognition.runtime.sources import FrameSource
from action_recognition.runtime.sources import SourceError

__all__ = ['RunSummary', 'run_stream']


@dataclass
class RunSummary:
    """What a run did."""

    frames_read: int = 0
    frames_dropped: int = 0
    recognitions: int = 0
    clips_dropped: int = 0
    errors: int = 0
    seconds: float = 0.0
    drop_reasons: dict[str, int] = field(default_factory=dict)
    source_error: str | None = None  # why the source broke off before its end, if it did

    @property
    def fps(self) -> float:
        return self.frames_read / self.seconds if self.seconds > 0 else 0.0

    def text(self) -> str:
        reasons = ''
        if self.drop_reasons:
            reasons = ' (' + ', '.join(f'{k}: {v}' for k, v in self.drop_reasons.items()) + ')'
        text = (f'frames read {self.frames_read}, dropped {self.frames_dropped}{reasons}, '
                f'recognitions {self.recognitions}, clips dropped {self.clips_dropped}, '
                f'inference errors {self.errors}, {self.fps:.1f} frames/s over '
                f'{self.seconds:.1f} s')
        if self.source_error is not None:
            text += f'; the source broke off: {self.source_error}'
        return text


def run_stream(source: FrameSource, recognizer: Recognizer, sinks: list[Sink], *,
               progress: bool = True, max_frames: int | None = None) -> RunSummary:
    """Every frame of ``source`` through ``recognizer`` into ``sinks``; returns the summary.

    A source that breaks midway (:class:`~action_recognition.runtime.sources.SourceError`, e.g.
    a recording corrupt after some messages) ends the run early: the summary says why
    (``source_error``) and the sinks keep everything written up to there.
    """
    from tqdm import tqdm  # progress bar: loaded when a run starts

    summary = RunSummary()
    latest: Recognition | None = None
    total = source.total if max_frames is None else min(source.total or max_frames, max_frames)
    start = time.perf_counter()
    bar = tqdm(total=total, unit='frame', disable=not progress, dynamic_ncols=True,
               file=sys.stderr)
    frames = iter(source)
    count = -1
    try:
        while True:
            count += 1
            try:
                frame = next(frames)
            except StopIteration:
                break
            except SourceError as error:
                summary.source_error = str(error)
                break
            if max_frames is not None and count >= max_frames:
                break
            result = recognizer.run_latest() if recognizer.submit(frame) else None
            if result is not None:
                latest = result
                for sink in sinks:
                    sink.write(result)
                summary.recognitions += 1
            for sink in sinks:
                sink.write_frame(frame.image, latest)
            bar.update(1)
            if latest is not None and latest.top:
                bar.set_postfix_str(f'{latest.top[0][0]} {latest.top[0][1]:.2f}', refresh=False)
    finally:
        bar.close()
        counters = recognizer.counters()
        summary.seconds = time.perf_counter() - start
        summary.frames_read = source.frames_read
        summary.frames_dropped = source.frames_dropped + counters.frames_dropped
        summary.drop_reasons = source.drop_reasons
        if counters.frames_dropped:
            summary.drop_reasons[BAD_FRAME] = summary.drop_reasons.get(BAD_FRAME, 0) + \
                counters.frames_dropped
        summary.clips_dropped = counters.clips_dropped
        summary.errors = counters.errors
    return summary

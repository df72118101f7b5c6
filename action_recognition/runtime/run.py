"""``action-recognition run``: recognise actions in a video, a camera or a rosbag2 recording.

::

    action-recognition run --source clip.mp4 --output actions.jsonl
    action-recognition run --source 0 --output annotated.mp4 --max-frames 300
    action-recognition run --source recording/ --image-topic /camera/image_raw \\
        --model model.onnx --backend onnxruntime --output actions.mcap

Frames go through the same :class:`~action_recognition.runtime.recognizer.Recognizer` as the
ROS node (one clip every ``--hop`` frames, the first as soon as a clip is buffered, so a video of
exactly one clip span gives exactly one recognition). Without ``--model`` the shipped default
model is used (:func:`default_model_path`). A progress bar runs on inputs of known length and a
summary (frames read, dropped, recognitions, clips dropped, fps) ends the run.
"""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field
import logging
import os
from pathlib import Path
import sys
import time
from typing import Any

from action_recognition.runtime.sinks import RecognitionRecord
from action_recognition.runtime.sinks import Sink
from action_recognition.runtime.sinks import StampLedger
from action_recognition.runtime.sources import FrameSource

__all__ = [
    'DEFAULT_MODEL_NAMES', 'default_model_path', 'RunSummary',
    'run_stream', 'build_recognizer',
]

LOGGER = logging.getLogger('action_recognition.run')

DEFAULT_MODEL_NAMES = ('action_recognition_default.onnx', 'action_recognition_default.pt')
PACKAGE = 'action_recognition'


def _model_dirs() -> list[Path]:
    """Where the shipped model may be: ament prefixes' ``share/``, an install tree, the repo."""
    dirs = []
    for prefix in os.environ.get('AMENT_PREFIX_PATH', '').split(os.pathsep):
        if prefix:
            dirs.append(Path(prefix) / 'share' / PACKAGE / 'models')
    package_dir = Path(__file__).resolve().parents[1]
    # <prefix>/lib/pythonX.Y/site-packages/action_recognition -> <prefix>/share/...
    dirs.append(package_dir.parents[2] / 'share' / PACKAGE / 'models')
    dirs.append(Path(sys.prefix) / 'share' / PACKAGE / 'models')
    # A source checkout (editable install): <repo>/models
    dirs.append(package_dir.parent / 'models')
    unique: list[Path] = []
    for path in dirs:
        if path not in unique:
            unique.append(path)
    return unique


def default_model_path() -> Path:
    """The shipped default model (ONNX preferred); ``FileNotFoundError`` naming where it looked.
    """
    searched = _model_dirs()
    for directory in searched:
        for name in DEFAULT_MODEL_NAMES:
            candidate = directory / name
            if candidate.is_file():
                return candidate
    places = ', '.join(str(d) for d in searched)
    raise FileNotFoundError(
        f'the shipped default model ({" or ".join(DEFAULT_MODEL_NAMES)}) was not found in '
        f'{places}; pass --model FILE.onnx|FILE.pt (train one with `action-recognition train` '
        'and export it with `action-recognition export`)')


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


def build_recognizer(backend: Any, *, hop: int, top_k: int, threshold: float,
                     smoothing: str) -> Any:
    """The :class:`Recognizer` shared by the runner and the node core (same settings)."""
    from action_recognition.runtime.recognizer import Recognizer

    return Recognizer(backend, hop=hop, top_k=top_k, score_threshold=threshold,
                      smoothing=smoothing,  # type: ignore[arg-type]
                      logger=logging.getLogger('action_recognition.recognizer'))


def run_stream(source: FrameSource, recognizer: Any, sinks: list[Sink], *,
               progress: bool = True, max_frames: int | None = None) -> RunSummary:
    """Every frame of ``source`` through ``recognizer`` into ``sinks``; returns the summary.

    A source that breaks midway (:class:`~action_recognition.runtime.sources.SourceError`, e.g.
    a recording corrupt after some messages) ends the run early: the summary says why
    (``source_error``) and the sinks keep everything written up to there.
    """
    from tqdm import tqdm

    from action_recognition.runtime.sources import SourceError

    ledger = StampLedger(capacity=max(1024, 4 * recognizer.buffer.capacity))
    summary = RunSummary()
    latest: RecognitionRecord | None = None
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
            stamp = ledger.add(frame.stamp_ns, frame.index)
            result = recognizer.push(frame.image, stamp, frame.frame_id)
            if result is not None:
                latest = ledger.record(stamp=result.stamp, frame_id=result.frame_id,
                                       frame_index=result.frame_index, top=result.top,
                                       events=result.events)
                for sink in sinks:
                    sink.write(latest)
                summary.recognitions += 1
            for sink in sinks:
                sink.write_frame(frame.image, latest)
            bar.update(1)
            if latest is not None and latest.top:
                bar.set_postfix_str(f'{latest.top[0][0]} {latest.top[0][1]:.2f}', refresh=False)
    finally:
        bar.close()
        summary.seconds = time.perf_counter() - start
        summary.frames_read = source.frames_read
        summary.frames_dropped = source.frames_dropped + recognizer.frames_dropped
        summary.drop_reasons = dict(source.drop_reasons)
        if recognizer.frames_dropped:
            summary.drop_reasons['bad frame'] = recognizer.frames_dropped
        summary.clips_dropped = recognizer.clips_dropped
        summary.errors = recognizer.errors
    return summary

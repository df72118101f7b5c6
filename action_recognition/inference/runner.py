"""``action-recognition run``: recognise actions in a video, a camera or a rosbag2 recording.

::

    action-recognition run --source clip.mp4 --output actions.jsonl
    action-recognition run --source 0 --output annotated.mp4 --max-frames 300
    action-recognition run --source recording/ --image-topic /camera/image_raw \\
        --model model.onnx --backend onnxruntime --output actions.mcap

Frames go through the same :class:`~action_recognition.inference.recognizer.Recognizer` as the
ROS node (one clip every ``--hop`` frames, the first as soon as a clip is buffered, so a video of
exactly one clip span gives exactly one recognition). Without ``--model`` the shipped default
model is used (:func:`default_model_path`). A progress bar runs on inputs of known length and a
summary (frames read, dropped, recognitions, clips dropped, fps) ends the run.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from dataclasses import field
import logging
import os
from pathlib import Path
import sys
import time
from typing import Any

from action_recognition.files import check_output
from action_recognition.inference.images import DEFAULT_MAX_PIXELS
from action_recognition.inference.sinks import output_target
from action_recognition.inference.sinks import RecognitionRecord
from action_recognition.inference.sinks import Sink
from action_recognition.inference.sinks import StampLedger
from action_recognition.inference.sources import FrameSource

__all__ = [
    'DEFAULT_MODEL_NAMES', 'default_model_path', 'add_arguments', 'run', 'RunSummary',
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


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--source', required=True,
                        help='video file, camera index (0) or device path (/dev/video0), or a '
                             'rosbag2 recording (directory, or its .mcap/.db3 file)')
    parser.add_argument('--image-topic', default=None,
                        help='image topic in the bag (sensor_msgs/msg/Image or CompressedImage);'
                             ' may be omitted when the bag has one image topic')
    parser.add_argument('--model', default=None,
                        help='FILE.onnx or FILE.pt (training checkpoint); default: the shipped '
                             'model')
    parser.add_argument('--backend', default='auto', choices=['auto', 'torch', 'onnxruntime'],
                        help='inference backend (auto: from the model file)')
    parser.add_argument('--device', default='cpu', help="'cpu' or 'cuda[:N]'")
    parser.add_argument('--half', action='store_true', help='fp16 (torch backend on CUDA)')
    parser.add_argument('--threads', type=int, default=None, help='CPU threads for inference')
    parser.add_argument('--output', required=True,
                        help='FILE.jsonl (one line per recognition), FILE.mcap (rosbag2 '
                             'directory FILE/ with vision_msgs/Classification), or FILE.mp4 '
                             '(annotated video)')
    parser.add_argument('--hop', type=int, default=4,
                        help='run a clip every HOP frames (default 4)')
    parser.add_argument('--top-k', type=int, default=5, help='labels reported per clip')
    parser.add_argument('--threshold', type=float, default=0.0,
                        help='leave out labels scoring below this (0..1)')
    parser.add_argument('--smoothing', default='none', choices=['none', 'mean', 'ema'],
                        help='temporal smoothing of scores over windows')
    parser.add_argument('--frame-id', default='',
                        help='header frame_id for video and camera frames')
    parser.add_argument('--max-frames', type=int, default=None,
                        help='stop after this many frames (cameras run until Ctrl-C otherwise)')
    parser.add_argument('--max-image-pixels', type=int, default=DEFAULT_MAX_PIXELS,
                        help='drop bag images of more pixels (width x height, read before '
                             f'decoding; default {DEFAULT_MAX_PIXELS} = 4096x4096)')
    parser.add_argument('--fps', type=float, default=None,
                        help='frame rate of the annotated video (default: the source rate)')
    parser.add_argument('--no-progress', action='store_true', help='no progress bar')
    parser.add_argument('--force', action='store_true',
                        help='replace an existing output (without it an existing output is '
                             'refused); the output is never allowed to be the source')
    parser.add_argument('--allow-5d', action='store_true',
                        help='run a model that is not 4D-only (refused otherwise)')


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
    from action_recognition.inference.recognizer import Recognizer

    return Recognizer(backend, hop=hop, top_k=top_k, score_threshold=threshold,
                      smoothing=smoothing,  # type: ignore[arg-type]
                      logger=logging.getLogger('action_recognition.recognizer'))


def run_stream(source: FrameSource, recognizer: Any, sinks: list[Sink], *,
               progress: bool = True, max_frames: int | None = None) -> RunSummary:
    """Every frame of ``source`` through ``recognizer`` into ``sinks``; returns the summary.

    A source that breaks midway (:class:`~action_recognition.inference.sources.SourceError`, e.g.
    a recording corrupt after some messages) ends the run early: the summary says why
    (``source_error``) and the sinks keep everything written up to there.
    """
    from tqdm import tqdm

    from action_recognition.inference.sources import SourceError

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


def run(args: argparse.Namespace) -> int:
    from action_recognition.inference.backends import load_backend
    from action_recognition.inference.backends import ModelLoadError
    from action_recognition.inference.sinks import open_sink
    from action_recognition.inference.sources import open_source

    problems = []
    if args.hop < 1:
        problems.append(f'--hop must be >= 1, got {args.hop}')
    if args.top_k < 1:
        problems.append(f'--top-k must be >= 1, got {args.top_k}')
    if not 0.0 <= args.threshold <= 1.0:
        problems.append(f'--threshold must be in [0, 1], got {args.threshold}')
    if args.max_frames is not None and args.max_frames < 1:
        problems.append(f'--max-frames must be >= 1, got {args.max_frames}')
    if args.max_image_pixels < 1:
        problems.append(f'--max-image-pixels must be >= 1, got {args.max_image_pixels}')
    if problems:
        for problem in problems:
            LOGGER.error('%s', problem)
        return 2
    try:
        model_path = Path(args.model) if args.model else default_model_path()
    except FileNotFoundError as error:
        LOGGER.error('%s', error)
        return 1
    try:
        # Before any work: the output must not be the source (or inside a recording) nor the
        # model, and must not exist unless --force.
        check_output(output_target(args.output), force=args.force, what='--output',
                     inputs=[None if str(args.source).isdigit() else args.source, model_path])
    except (FileExistsError, ValueError) as error:
        LOGGER.error('%s', error)
        return 1
    try:
        backend = load_backend(model_path, backend=args.backend, device=args.device,
                               half=args.half, threads=args.threads, allow_5d=args.allow_5d,
                               logger=LOGGER)
    except (ModelLoadError, ValueError) as error:
        LOGGER.error('cannot load model: %s', error)
        return 1
    spec = backend.spec
    LOGGER.info('model %s: %s, %d classes, %d frames (stride %d) of %dx%d, backend %s',
                model_path, spec.model, spec.num_classes, spec.num_frames, spec.frame_stride,
                spec.input_size[0], spec.input_size[1], getattr(backend, 'name', args.backend))
    try:
        source = open_source(args.source, image_topic=args.image_topic, frame_id=args.frame_id,
                             max_frames=args.max_frames, max_image_pixels=args.max_image_pixels)
    except (FileNotFoundError, ValueError) as error:
        LOGGER.error('%s', error)
        return 1
    recognizer = build_recognizer(backend, hop=args.hop, top_k=args.top_k,
                                  threshold=args.threshold, smoothing=args.smoothing)
    with source:
        try:
            sink = open_sink(args.output, labels=spec.label_names, threshold=args.threshold,
                             fps=args.fps or source.fps or 30.0, force=args.force)
        except (FileExistsError, ValueError, OSError) as error:
            LOGGER.error('%s', error)
            return 1
        with sink:
            summary = run_stream(source, recognizer, [sink],
                                 progress=not args.no_progress and sys.stderr.isatty(),
                                 max_frames=args.max_frames)
    LOGGER.info('%s', summary.text())
    if sink.path.exists():
        LOGGER.info('wrote %s', sink.path)
    if summary.source_error is not None:
        LOGGER.error('%s broke off after %d frames: %s; %s holds the %d recognitions up to '
                     'there', args.source, summary.frames_read, summary.source_error,
                     sink.path, summary.recognitions)
        return 1
    if summary.frames_read == 0:
        LOGGER.error('no frames were read from %s', args.source)
        return 1
    return 0

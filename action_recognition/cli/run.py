"""``action-recognition run``: recognise actions in a video, a camera or a rosbag2 recording.

::
    action-recognition run --source clip.mp4 --output actions.jsonl
    action-recognition run --source 0 --output annotated.mp4 --max-frames 300
    action-recognition run --source recording/ --image-topic /camera/image_raw \\
        --model model.onnx --backend onnxruntime --output actions.mcap
    action-recognition run --source clip.mp4 --backend openvino --precision int8 \\
        --output actions.jsonl
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
import sys

from action_recognition.data.images import DEFAULT_MAX_PIXELS
from action_recognition.files import check_output
from action_recognition.io.model_files import default_model_path
from action_recognition.io.model_files import ir_weights_path
from action_recognition.runtime.backends import BACKEND_NAMES
from action_recognition.runtime.backends import load_backend
from action_recognition.runtime.backends import ModelLoadError
from action_recognition.runtime.run import build_recognizer
from action_recognition.runtime.run import run_stream
from action_recognition.runtime.sinks import open_sink
from action_recognition.runtime.sinks import output_target
from action_recognition.runtime.sources import open_source

LOGGER = logging.getLogger('action_recognition.run')


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--source', required=True,
                        help='video file, camera index (0) or device path (/dev/video0), or a '
                             'rosbag2 recording (directory, or its .mcap/.db3 file)')
    parser.add_argument('--image-topic', default=None,
                        help='image topic in the bag (sensor_msgs/msg/Image or CompressedImage);'
                             ' may be omitted when the bag has one image topic')
    parser.add_argument('--model', default=None,
                        help='FILE.onnx, FILE.pt (training checkpoint) or FILE.xml (OpenVINO IR '
                             'with FILE.bin); default: the shipped model')
    parser.add_argument('--backend', default='auto', choices=list(BACKEND_NAMES),
                        help='inference backend (auto: from the model file, openvino for an '
                             'openvino: device)')
    parser.add_argument('--device', default='cpu',
                        help="'cpu', 'cuda[:N]' or 'openvino:CPU|GPU|GPU.N|NPU'")
    parser.add_argument('--half', action='store_true', help='fp16 (torch backend on CUDA)')
    parser.add_argument('--precision', default='fp32', choices=['fp32', 'bf16', 'int8'],
                        help='bf16: torch or openvino; int8: openvino (NNCF post-training '
                             'quantisation at load on synthetic clips, unless the file is int8)')
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


def run(args: argparse.Namespace) -> int:
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
        # model (an OpenVINO IR's weights file included), and must not exist unless --force.
        model_files = [model_path] + ([ir_weights_path(model_path)]
                                      if model_path.suffix.lower() == '.xml' else [])
        check_output(output_target(args.output), force=args.force, what='--output',
                     inputs=[None if str(args.source).isdigit() else args.source,
                             *model_files])
    except (FileExistsError, ValueError) as error:
        LOGGER.error('%s', error)
        return 1
    try:
        backend = load_backend(model_path, backend=args.backend, device=args.device,
                               half=args.half, precision=args.precision, threads=args.threads,
                               allow_5d=args.allow_5d, logger=LOGGER)
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

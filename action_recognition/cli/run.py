"""``action-recognition run``: recognise actions in a video, a camera or a rosbag2 recording.

::
    action-recognition run --source clip.mp4 --output actions.jsonl
    action-recognition run --source 0 --output annotated.mp4 --max-frames 300
    action-recognition run --source recording/ --image-topic /camera/image_raw \\
        --model model.onnx --backend onnxruntime --output actions.mcap
    action-recognition run --source clip.mp4 --backend openvino --precision int8 \\
        --output actions.jsonl

Its settings are the node's parameters, as flags of the same names (``--hop``,
``--score-threshold``, ``--max-gap-s``, ``--labels``, ``--clip-length``, ...), derived from the
same declarations and checked by the same pipeline (:mod:`action_recognition.runtime.pipeline`);
the defaults differ where an offline run wants it (:data:`RUN_DEFAULTS`). ``--model`` is
``model_path``, ``--labels`` ``labels_path``, ``--threshold`` an alias of ``--score-threshold``.
"""

from __future__ import annotations

import argparse
import logging
import sys

from action_recognition.files import check_output
from action_recognition.io.model_files import ir_weights_path
from action_recognition.runtime.pipeline import load_model
from action_recognition.runtime.pipeline import LoadedModel
from action_recognition.runtime.pipeline import model_file
from action_recognition.runtime.protocol import ModelLoadError
from action_recognition.runtime.run import run_stream
from action_recognition.runtime.settings import BackendSettings
from action_recognition.runtime.settings import InputSettings
from action_recognition.runtime.settings import ModelSettings
from action_recognition.runtime.settings import precision_with_half
from action_recognition.runtime.settings import StreamSettings
from action_recognition.runtime.sinks import open_sink
from action_recognition.runtime.sinks import output_target
from action_recognition.runtime.sources import open_source
from action_recognition.settings import add_arguments as add_setting_arguments
from action_recognition.settings import from_arguments
from action_recognition.settings import SettingsError
from action_recognition.settings import SettingValue

LOGGER = logging.getLogger('action_recognition.run')

#: The settings ``run`` takes as flags: the pipeline's.
GROUPS = (ModelSettings, BackendSettings, StreamSettings, InputSettings)
#: Where ``run``'s defaults differ from the node's: every CPU thread, every label, no smoothing.
RUN_DEFAULTS: dict[str, SettingValue] = {'threads': 0, 'score_threshold': 0.0,
                                         'smoothing': 'none'}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--source', required=True,
                        help='video file, camera index (0) or device path (/dev/video0), or a '
                             'rosbag2 recording (directory, or its .mcap/.db3 file)')
    parser.add_argument('--image-topic', default=None,
                        help='image topic in the bag (sensor_msgs/msg/Image or CompressedImage);'
                             ' may be omitted when the bag has one image topic')
    parser.add_argument('--output', required=True,
                        help='FILE.jsonl (one line per recognition), FILE.mcap (rosbag2 '
                             'directory FILE/ with vision_msgs/Classification), or FILE.mp4 '
                             '(annotated video)')
    for group in GROUPS:
        add_setting_arguments(parser, group, defaults=RUN_DEFAULTS)
    parser.add_argument('--half', action='store_true',
                        help='deprecated: use --precision fp16')
    parser.add_argument('--frame-id', default='',
                        help='header frame_id for video and camera frames')
    parser.add_argument('--max-frames', type=int, default=None,
                        help='stop after this many frames (cameras run until Ctrl-C otherwise)')
    parser.add_argument('--fps', type=float, default=None,
                        help='frame rate of the annotated video (default: the source rate)')
    parser.add_argument('--no-progress', action='store_true', help='no progress bar')
    parser.add_argument('--force', action='store_true',
                        help='replace an existing output (without it an existing output is '
                             'refused); the output is never allowed to be the source')


def _settings(args: argparse.Namespace) -> tuple[ModelSettings, BackendSettings,
                                                 StreamSettings, InputSettings]:
    """The pipeline's settings from the flags; :class:`SettingsError` with every refusal."""
    problems = []
    if args.half:
        LOGGER.warning('--half is deprecated: use --precision fp16')
        try:
            args.precision = precision_with_half(args.precision, True)
        except SettingsError as error:
            problems.append(str(error).replace('half=true and precision=', '--half and '
                                               '--precision '))
    if args.max_frames is not None and args.max_frames < 1:
        problems.append(f'--max-frames must be >= 1, got {args.max_frames}')
    groups = []
    for group in GROUPS:
        try:
            groups.append(from_arguments(group, args))
        except SettingsError as error:
            problems.append(str(error))
    if problems:
        raise SettingsError('; '.join(problems))
    model, backend, stream, image_input = groups
    return model, backend, stream, image_input  # type: ignore[return-value]


def run(args: argparse.Namespace) -> int:
    try:
        model_settings, backend_settings, stream_settings, input_settings = _settings(args)
    except SettingsError as error:
        for problem in str(error).split('; '):
            LOGGER.error('%s', problem)
        return 2
    try:
        model_path = model_file(model_settings.model_path)
        # Before any work: the output must not be the source (or inside a recording) nor the
        # model (an OpenVINO IR's weights file included), and must not exist unless --force.
        model_files = [model_path] + ([ir_weights_path(model_path)]
                                      if model_path.suffix.lower() == '.xml' else [])
        check_output(output_target(args.output), force=args.force, what='--output',
                     inputs=[None if str(args.source).isdigit() else args.source,
                             *model_files])
    except (ModelLoadError, FileExistsError, ValueError) as error:
        LOGGER.error('%s', error)
        return 1
    try:
        model = load_model(model_settings, backend_settings, logger=LOGGER)
    except ModelLoadError as error:
        LOGGER.error('cannot load model: %s', error)
        return 1
    try:
        return _run(args, model, stream_settings, input_settings)
    finally:
        model.close()


def _run(args: argparse.Namespace, model: LoadedModel, stream_settings: StreamSettings,
         input_settings: InputSettings) -> int:
    try:
        source = open_source(args.source, image_topic=args.image_topic, frame_id=args.frame_id,
                             max_frames=args.max_frames,
                             max_image_pixels=input_settings.max_image_pixels)
    except (FileNotFoundError, ValueError) as error:
        LOGGER.error('%s', error)
        return 1
    recognizer = model.recognizer(stream_settings,
                                  logger=logging.getLogger('action_recognition.recognizer'))
    with source:
        try:
            sink = open_sink(args.output, labels=model.spec.label_names,
                             threshold=stream_settings.score_threshold,
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

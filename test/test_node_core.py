"""The ROS-free node core: parameter validation, frames in / results out, run-time changes,
model reloads on the worker, diagnostics, and the worker thread."""

import ast
from pathlib import Path
import threading
import time

import cv2
from fixtures.image_bombs import jpeg_bomb
from fixtures.image_bombs import JPEG_BOMBS
from fixtures.image_bombs import png_bomb
from fixtures.image_bombs import RAW_STEP_BOMBS
from fixtures.ros_data import COMPRESSED
from fixtures.ros_data import compressed_msg
from fixtures.ros_data import IMAGE
from fixtures.ros_data import image_msg
from fixtures.ros_data import moving_frames
from fixtures.ros_data import tiny_checkpoint
import numpy as np
import pytest
import torch
import yaml

from action_recognition.data.images import compressed_msg_to_rgb
from action_recognition.io.messages import action_typestore
from action_recognition.node.core import NodeCore
from action_recognition.node.diagnostics import ERROR
from action_recognition.node.diagnostics import OK
from action_recognition.node.diagnostics import WARN
from action_recognition.node.parameters import default_yaml
from action_recognition.node.parameters import NodeSettings
from action_recognition.node.parameters import ParameterError
from action_recognition.node.parameters import PARAMETERS
from action_recognition.node.parameters import parse_parameters
from action_recognition.node.scheduler import Scheduler
from action_recognition.node.worker import InferenceWorker
from action_recognition.runtime import frames as frames_module
from action_recognition.runtime.annotate import annotate
from action_recognition.runtime.backends import load_backend
from action_recognition.runtime.protocol import ModelLoadError
from action_recognition.runtime.recognizer import Recognizer
from action_recognition.runtime.settings import StreamSettings

START_NS = 1_700_000_000_000_000_007
PERIOD_NS = 50_000_000


class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


@pytest.fixture(scope='module')
def models(tmp_path_factory):
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp('models')
    return {
        'a': tiny_checkpoint(root / 'a.pt', num_frames=4),
        'b': tiny_checkpoint(root / 'b.pt', num_frames=4, labels=('x', 'y'), seed=1),
        'unlabelled': tiny_checkpoint(root / 'u.pt', num_frames=4, labels=(), num_classes=3),
    }


@pytest.fixture(scope='module')
def typestore():
    return action_typestore()


def _core(models, clock=None, **values):
    params = parse_parameters({'model_path': str(models['a']), 'smoothing': 'none',
                               'score_threshold': 0.0, 'hop': 1, **values})
    return NodeCore(params, clock=clock or FakeClock())


def _step(core):
    """The worker's step: the one stream's result, or ``None``."""
    results = core.step()
    assert len(results) <= 1
    return results[0] if results else None


def _undecodable(core):
    return {kind: n for kind, n in core.intake.drops.counts().items() if kind != 'bad frame'}


def _frames_in(core):
    return core.slot.recognizer.counters().frames_in


def _direct(path):
    """The node's recogniser over ``path``, used directly."""
    return Recognizer(load_backend(path), StreamSettings(hop=1, top_k=5, score_threshold=0.0,
                                                         smoothing='none'))


def _feed(core, typestore, frames, *, start=0, clock=None, debug=False):
    due = []
    for i, frame in enumerate(frames, start):
        if clock is not None:
            clock.now += 0.05
        msg = image_msg(typestore, frame, stamp_ns=START_NS + i * PERIOD_NS, frame_id='cam')
        due.append(core.on_image_msg(msg, debug=debug))
    return due


def test_no_parameters_are_the_defaults():
    assert parse_parameters({}) == NodeSettings()


@pytest.mark.parametrize(('values', 'reason'), [
    ({'score_threshold': 1.5}, 'score_threshold must be <= 1.0'),
    ({'top_k': 0}, 'top_k must be >= 1'),
    ({'top_k': 2.5}, 'top_k must be an integer'),
    ({'smoothing': 'median'}, "smoothing must be one of ['none', 'mean', 'ema']"),
    ({'backend': 'tensorflow'}, 'backend must be one of'),
    ({'device': 'gpu0'}, "device must be 'cpu', 'cuda' or 'cuda:N' (torch, onnxruntime), or "
                         "'openvino:DEVICE' (DEVICE: CPU, GPU, GPU.N, NPU)"),
    ({'device': 'openvino:TPU'}, "device must be 'cpu', 'cuda' or 'cuda:N'"),
    ({'backend': 'torch', 'device': 'openvino:GPU'},
     'device openvino:GPU is an OpenVINO device: it needs backend openvino (or auto)'),
    ({'backend': 'openvino', 'device': 'cuda:0'},
     "backend openvino runs on 'cpu' or an 'openvino:' device"),
    ({'precision': 'fp8'}, "precision must be one of ['fp32', 'fp16', 'bf16', 'int8']"),
    ({'precision': 'fp16'}, 'precision=fp16 needs a CUDA device (torch) or backend openvino'),
    ({'precision': 'int8', 'backend': 'onnxruntime'}, 'precision=int8 needs backend openvino'),
    ({'precision': 'bf16', 'backend': 'onnxruntime'}, 'precision=bf16 needs backend torch or '
                                                      'openvino'),
    ({'half': True, 'device': 'cuda', 'precision': 'bf16'}, 'half=true and precision=bf16'),
    ({'half': True}, 'precision=fp16 needs a CUDA device (torch) or backend openvino'),
    ({'half': 1}, 'half must be a bool'),
    ({'enabled': 'yes'}, 'enabled must be a bool'),
    ({'qos_depth': 0}, 'qos_depth must be >= 1'),
    ({'nonsense': 1}, "unknown parameter 'nonsense'"),
])
def test_invalid_parameters_are_refused_with_a_reason(values, reason):
    with pytest.raises(ParameterError) as info:
        parse_parameters(values)
    assert reason in str(info.value)


def test_openvino_parameters_are_accepted():
    params = parse_parameters({'backend': 'openvino', 'device': 'openvino:GPU.1',
                               'precision': 'int8'})
    backend = params.backend
    assert (backend.backend, backend.device, backend.precision) == ('openvino', 'openvino:GPU.1',
                                                                    'int8')
    for device in ('cpu', 'openvino:CPU', 'openvino:NPU', 'openvino:GPU'):
        assert parse_parameters({'device': device}).backend.device == device  # auto: openvino
    assert parse_parameters({'backend': 'torch', 'precision': 'bf16'}).backend.precision == \
        'bf16'


def test_startup_fails_fast_on_missing_or_incompatible_model(models, tmp_path):
    with pytest.raises(ModelLoadError, match=r'missing\.onnx'):
        NodeCore(parse_parameters({'model_path': str(tmp_path / 'missing.onnx')}))
    with pytest.raises(ModelLoadError, match="clip_length 16 != the model's 4"):
        NodeCore(parse_parameters({'model_path': str(models['a']), 'clip_length': 16}))
    with pytest.raises(ModelLoadError, match="input_size 64 != the model's 32x32"):
        NodeCore(parse_parameters({'model_path': str(models['a']), 'input_size': 64}))
    labels = tmp_path / 'labels.txt'
    labels.write_text('one\ntwo\n')
    with pytest.raises(ModelLoadError, match='has 2 labels for a model with 3 outputs'):
        NodeCore(parse_parameters({'model_path': str(models['unlabelled']),
                                   'labels_path': str(labels)}))
    labels.write_text('# actions\none\ntwo\nthree\n')
    core = NodeCore(parse_parameters({'model_path': str(models['unlabelled']),
                                      'labels_path': str(labels)}))
    assert core.labels == ('one', 'two', 'three')


def test_frames_in_results_out_with_exact_header(models, typestore):
    core = _core(models)
    frames = moving_frames(6)
    due = _feed(core, typestore, frames[:4])
    assert due == [False, False, False, True]
    result = _step(core)
    assert result is not None
    assert result.stamp_ns == START_NS + 3 * PERIOD_NS
    assert result.frame_id == 'cam' and result.frame_index == 3
    assert len(result.top) == 3
    assert _step(core) is None  # nothing due
    # The same clip gives the same result as the recogniser used directly.
    direct = _direct(models['a'])
    expected = None
    for i, frame in enumerate(frames[:4]):
        expected = direct.push(frame, START_NS + i * PERIOD_NS, 'cam') or expected
    assert result.top == expected.top


def test_bad_frames_are_counted_and_dropped(models, typestore, caplog):
    core = _core(models)
    good = moving_frames(1)[0]
    bad = image_msg(typestore, good, stamp_ns=START_NS, frame_id='cam')
    bad.encoding = '32FC1'
    assert core.on_image_msg(bad) is False
    broken = compressed_msg(typestore, good, stamp_ns=START_NS, frame_id='cam')
    broken.data = broken.data[:30]
    assert core.on_compressed_msg(broken) is False
    assert sum(_undecodable(core).values()) == 2
    assert "unsupported image encoding '32FC1'" in caplog.text
    ok = compressed_msg(typestore, good, stamp_ns=START_NS, frame_id='cam')
    core.on_compressed_msg(ok)
    assert _frames_in(core) == 1
    assert core.diagnostics().values['frames_undecodable'] == '2'


def test_run_time_changes(models, typestore):
    core = _core(models)
    assert core.set_parameters({'score_threshold': 0.9, 'top_k': 1}) == (True, '')
    settings = core.slot.recognizer.stream().settings
    assert settings.score_threshold == 0.9 and settings.top_k == 1
    assert core.set_parameters({'smoothing': 'mean', 'hop': 3, 'max_gap_s': 0.5}) == (True, '')
    settings = core.slot.recognizer.stream().settings
    assert (settings.smoothing, settings.hop, settings.max_gap_s) == ('mean', 3, 0.5)
    assert core.slot.recognizer.stream().buffer.max_gap_s == 0.5  # no reload for it
    assert core.slot.reloads == 0
    ok, reason = core.set_parameters({'top_k': -1})
    assert not ok and 'top_k must be >= 1' in reason
    assert core.slot.recognizer.stream().settings.top_k == 1  # unchanged
    ok, reason = core.set_parameters({'image_transport': 'compressed'})
    assert not ok and 'only be set at start-up' in reason
    ok, reason = core.set_parameters({'model_path': '/nonexistent/model.onnx'})
    assert not ok and 'does not exist' in reason
    # enabled=false: frames are not buffered.
    assert core.set_parameters({'enabled': False}) == (True, '')
    _feed(core, typestore, moving_frames(5))
    assert _frames_in(core) == 0 and core.intake.frames_disabled == 5
    assert core.diagnostics().message.startswith('disabled')
    core.set_parameters({'enabled': True, 'score_threshold': 0.0, 'top_k': 5, 'hop': 1,
                         'smoothing': 'none'})
    _feed(core, typestore, moving_frames(4))
    assert _step(core) is not None


def test_model_reload_on_the_worker_and_failed_reload(models, typestore, tmp_path):
    core = _core(models)
    _feed(core, typestore, moving_frames(4))
    first = _step(core)
    assert {label for label, _ in first.top} == {'wave', 'walk', 'idle'}
    ok, reason = core.set_parameters({'model_path': str(models['b'])})
    assert ok and 'reload' in reason
    assert core.labels == ('wave', 'walk', 'idle')  # not yet: the worker reloads
    assert _step(core) is None
    assert core.labels == ('x', 'y') and core.slot.reloads == 1
    _feed(core, typestore, moving_frames(4), start=4)
    second = _step(core)
    assert {label for label, _ in second.top} == {'x', 'y'}
    # A file that exists but is not a model: the reload fails, the old model stays.
    corrupt = tmp_path / 'corrupt.pt'
    corrupt.write_bytes(b'not a checkpoint')
    assert core.set_parameters({'model_path': str(corrupt)})[0]
    _step(core)
    assert core.labels == ('x', 'y')
    report = core.diagnostics()
    assert report.level == ERROR and 'model reload failed' in report.message
    assert 'corrupt.pt' in report.message


def test_diagnostics_levels(models, typestore):
    clock = FakeClock()
    core = _core(models, clock=clock, stale_input_s=1.0)
    report = core.diagnostics()
    assert report.level == OK and report.message == 'waiting for images'
    clock.now += 2.0
    assert core.diagnostics().level == WARN
    _feed(core, typestore, moving_frames(4), clock=clock)
    assert _step(core) is not None
    report = core.diagnostics()
    assert report.level == OK, report.message
    for key in ('input_rate_hz', 'inference_rate_hz', 'latency_p50_ms', 'latency_p99_ms',
                'frames_dropped', 'clips_dropped', 'backend', 'device'):
        assert key in report.values
    assert float(report.values['input_rate_hz']) > 0
    assert report.values['device'] == 'cpu' and 'torch' in report.values['backend']
    # Input stops.
    clock.now += 5.0
    report = core.diagnostics()
    assert report.level == WARN and 'no image for 5.0 s' in report.message
    # Inference falls behind: every frame makes a clip due, none is run.
    _feed(core, typestore, moving_frames(6), start=4, clock=clock)
    report = core.diagnostics()
    assert report.level == WARN and 'falls behind' in report.message
    assert int(report.values['clips_dropped']) == 5


def test_inference_error_is_reported_and_the_core_keeps_running(models, typestore):
    calls = {'n': 0}

    def flaky_load(path, *args, **kwargs):
        backend = load_backend(path, *args, **kwargs)
        infer = backend.infer

        def failing(frames):
            calls['n'] += 1
            if calls['n'] == 1:
                raise RuntimeError('CUDA error: device lost')
            return infer(frames)

        backend.infer = failing
        return backend

    params = parse_parameters({'model_path': str(models['a']), 'hop': 1})
    core = NodeCore(params, load=flaky_load, clock=FakeClock())
    _feed(core, typestore, moving_frames(4))
    assert _step(core) is None
    report = core.diagnostics()
    assert report.level == ERROR and 'inference errors' in report.message
    assert report.values['inference_errors'] == '1'
    _feed(core, typestore, moving_frames(1), start=4)
    assert _step(core) is not None
    assert core.diagnostics().level != ERROR


def test_inference_rate_mode(models, typestore):
    clock = FakeClock()
    core = _core(models, clock=clock, inference_rate_hz=2.0)
    _feed(core, typestore, moving_frames(4), clock=clock)
    assert _step(core) is not None
    _feed(core, typestore, moving_frames(1), start=4, clock=clock)
    assert core.scheduler.seconds_until_due() == pytest.approx(0.45)
    assert _step(core) is None  # too early
    clock.now += 0.5
    assert _step(core) is not None


def test_worker_thread_publishes_results(models, typestore):
    core = _core(models, hop=2)
    results = []
    published = threading.Semaphore(0)

    def publish(result):
        results.append(result)
        published.release()

    worker = InferenceWorker(core, publish, idle_s=0.01)
    worker.start()
    try:
        _feed(core, typestore, moving_frames(4), debug=True)
        assert published.acquire(timeout=10)
        _feed(core, typestore, moving_frames(2, seed=3), start=4, debug=True)
        assert published.acquire(timeout=10)
    finally:
        worker.stop()
    assert not worker.alive
    assert [r.frame_index for r in results] == [3, 5]
    assert [r.stamp_ns for r in results] == [START_NS + 3 * PERIOD_NS,
                                                    START_NS + 5 * PERIOD_NS]
    frame = core.debug_image(results[-1])
    assert frame.shape == (24, 32, 3) and frame.dtype == np.uint8


# -- images that claim huge sizes ----------------------------------------------------------------

def _header(typestore, stamp_ns, frame_id='cam'):
    types = typestore.types
    sec, nanosec = divmod(stamp_ns, 1_000_000_000)
    return types['std_msgs/msg/Header'](
        stamp=types['builtin_interfaces/msg/Time'](sec=sec, nanosec=nanosec), frame_id=frame_id)


def _compressed_bytes(typestore, data, fmt='jpeg', stamp_ns=START_NS):
    return typestore.types[COMPRESSED](header=_header(typestore, stamp_ns), format=fmt,
                                       data=np.frombuffer(data, np.uint8).copy())


def _raw_step_bomb(typestore, step, stamp_ns=START_NS):
    return typestore.types[IMAGE](header=_header(typestore, stamp_ns), height=1, width=1,
                                  encoding='rgb8', is_bigendian=0, step=step,
                                  data=np.array([16, 32, 48], np.uint8))


def test_image_bombs_are_dropped_counted_and_the_stream_goes_on(models, typestore, caplog):
    core = _core(models)
    frames = moving_frames(4)
    stamps = [START_NS + i * PERIOD_NS for i in range(4)]

    def good(i):
        return core.on_compressed_msg(compressed_msg(typestore, frames[i], stamp_ns=stamps[i],
                                                     frame_id='cam'))

    assert [good(0), good(1)] == [False, False]
    # The 65500x65500 JPEG first (on the code before the limit it raised cv2.error out of the
    # callback), then the others: each returns at once, nothing raises.
    bombs = [_compressed_bytes(typestore, jpeg_bomb(h, w), stamp_ns=stamps[1] + 1)
             for h, w in JPEG_BOMBS]
    bombs.append(_compressed_bytes(typestore, png_bomb(65500, 65500), 'png', stamps[1] + 2))
    for bomb in bombs:
        start = time.perf_counter()
        assert core.on_compressed_msg(bomb) is False
        assert time.perf_counter() - start < 0.5
    for step in RAW_STEP_BOMBS:
        start = time.perf_counter()
        assert core.on_image_msg(_raw_step_bomb(typestore, step, stamps[1] + 3)) is False
        assert time.perf_counter() - start < 0.5
    assert _undecodable(core) == {'oversized': 6}
    values = core.diagnostics().values
    assert values['frames_oversized'] == '6' and values['frames_undecodable'] == '6'
    assert 'dropping image (oversized): the JPEG image (from its header) is 65500x65500' in \
        caplog.text and 'max_image_pixels' in caplog.text
    # The clip buffer was not disturbed: the next good frames complete the clip, and it is the
    # clip of the four good frames.
    assert [good(2), good(3)] == [False, True]
    result = _step(core)
    assert result is not None
    assert result.stamp_ns == stamps[3] and result.frame_index == 2 + 6 + 1
    direct = _direct(models['a'])
    expected = None
    for frame, stamp in zip(frames, stamps):
        msg = compressed_msg(typestore, frame, stamp_ns=stamp, frame_id='cam')
        expected = direct.push(compressed_msg_to_rgb(msg), stamp, 'cam') or expected
    assert result.top == expected.top
    assert core.diagnostics().values['frames_received'] == str(4 + 6)


def test_unexpected_conversion_errors_are_counted_not_raised(models, typestore, monkeypatch,
                                                             caplog):
    core = _core(models)
    core.intake.drops.throttle.period_s = 0.0  # log every drop (else throttled per kind)
    good = moving_frames(1)[0]

    def opencv_fails(msg, **kwargs):
        raise cv2.error('OpenCV(5.0) error: (-4:Insufficient memory)\nFailed to allocate')

    def out_of_memory(msg, **kwargs):
        raise MemoryError('Unable to allocate 3.64 TiB')

    monkeypatch.setattr(frames_module, 'compressed_msg_to_rgb', opencv_fails)
    assert core.on_compressed_msg(compressed_msg(typestore, good, stamp_ns=START_NS,
                                                 frame_id='cam')) is False
    monkeypatch.setattr(frames_module, 'image_msg_to_rgb', out_of_memory)
    assert core.on_image_msg(image_msg(typestore, good, stamp_ns=START_NS,
                                       frame_id='cam')) is False
    assert _undecodable(core) == {'decoder error': 2}
    assert 'dropping image (decoder error): converting the image raised cv2.error: OpenCV(5.0) ' \
        'error: (-4:Insufficient memory) Failed to allocate' in caplog.text
    assert 'dropping image (decoder error): converting the image raised MemoryError: Unable to ' \
        'allocate 3.64 TiB' in caplog.text


def test_refusals_are_keyed_by_kind_with_the_whole_reason_logged(models, typestore, caplog):
    core = _core(models)
    good = moving_frames(1)[0]
    bad = image_msg(typestore, good, stamp_ns=START_NS, frame_id='cam')
    bad.encoding = 'bayer_rggb8'
    core.on_image_msg(bad)
    short = image_msg(typestore, good, stamp_ns=START_NS, frame_id='cam')
    short.data = short.data[:100]
    core.on_image_msg(short)
    corrupt = _compressed_bytes(typestore, b'\xff\xd8\xff\xe0\x00\x02\xff\xd9')
    core.on_compressed_msg(corrupt)
    assert _undecodable(core) == {'unsupported encoding': 1, 'truncated data': 1,
                                       'corrupt jpeg': 1}
    assert "dropping image (unsupported encoding): unsupported image encoding 'bayer_rggb8'" \
        in caplog.text
    assert 'dropping image (truncated data): rgb8 image 32x24 with step 96 needs 2304 bytes, ' \
        'got 100' in caplog.text
    assert 'dropping image (corrupt jpeg): corrupt JPEG header: the end of image comes before ' \
        'the frame header' in caplog.text
    report = core.diagnostics()
    assert report.level == WARN
    assert '1 unsupported encoding (unsupported image encoding' in report.message
    assert '; 1 truncated data (rgb8 image 32x24 with step 96 needs 2304 bytes, got 100)' \
        in report.message
    assert report.message.endswith('; 1 corrupt jpeg (corrupt JPEG header: the end of image '
                                   'comes before the frame header (SOFn))')


def test_max_image_pixels_parameter(models, typestore):
    assert NodeSettings().input.max_image_pixels == 4096 * 4096
    with pytest.raises(ParameterError, match='max_image_pixels must be >= 1'):
        parse_parameters({'max_image_pixels': 0})
    core = _core(models, max_image_pixels=32 * 24)
    frames = moving_frames(4)
    _feed(core, typestore, frames[:1])
    assert _frames_in(core) == 1 and not _undecodable(core)
    # A run-time change applies from the next image, for raw and compressed images and for
    # frames pushed directly.
    assert core.set_parameters({'max_image_pixels': 32 * 24 - 1}) == (True, '')
    _feed(core, typestore, frames[1:2], start=1)
    core.on_compressed_msg(compressed_msg(typestore, frames[2], stamp_ns=START_NS + 2 * PERIOD_NS,
                                          frame_id='cam', fmt='jpeg'))
    assert core.on_frame(frames[3], START_NS + 3 * PERIOD_NS, 'cam') is False
    assert _undecodable(core) == {'oversized': 3}
    assert _frames_in(core) == 1
    assert core.diagnostics().values['frames_oversized'] == '3'


def test_debug_image_shows_the_windows_own_last_frame(models, typestore):
    # Before the fix the debug image drew the latest frame but carried the stamp of the
    # window's last frame, which with a slow model or hop > 1 is an older one.
    core = _core(models, hop=2)
    frames = moving_frames(9)
    core.on_frame(frames[0], START_NS, 'cam')
    assert core.intake.debug_frame(0) is None  # nothing is kept while nobody subscribes
    results = []
    for i, frame in enumerate(frames[1:], 1):
        core.on_frame(frame, START_NS + i * PERIOD_NS, 'cam', debug=True)
        if i in (5, 7):  # windows are due at frames 3, 5, 7 (hop 2)
            results.append(_step(core))
    # Frame 8 arrives after the window ending at 7 ran: its pixels must not be drawn for it.
    assert [r.frame_index for r in results] == [5, 7]
    for result in results:
        expected = annotate(frames[result.frame_index], result.top)
        np.testing.assert_array_equal(core.debug_image(result), expected)
        assert result.stamp_ns == START_NS + result.frame_index * PERIOD_NS
    # A frame the recogniser refuses is not kept; nothing is kept while disabled.
    core.on_frame(np.zeros((1, 1, 3), np.uint8), START_NS + 9 * PERIOD_NS, 'cam', debug=True)
    assert core.intake.debug_frame(9) is None and core.intake.debug_frame(8) is not None
    assert core.set_parameters({'enabled': False}) == (True, '')
    core.on_frame(frames[0], START_NS + 10 * PERIOD_NS, 'cam', debug=True)
    assert core.intake.debug_frame(8) is None and core.debug_image(results[-1]) is None


def test_rates_are_exact_at_any_rate(models):
    # Before the fix the rates came from the last 1000 stamps over a 5 s window: at 228-271
    # windows/s they read 200.00.
    clock = FakeClock()
    core = _core(models, clock=clock)
    core.diagnostics()
    frames = moving_frames(2)
    for i in range(1500):  # 1500 frames in 5 s: 300 Hz
        clock.now += 5.0 / 1500
        core.on_frame(frames[i % 2], START_NS + i * 3_333_333, 'cam')
        _step(core)
    values = core.diagnostics().values
    assert float(values['input_rate_hz']) == pytest.approx(300.0, rel=1e-6)
    assert float(values['inference_rate_hz']) == pytest.approx(1497 / 5.0, rel=1e-6)
    clock.now += 2.0
    for i in range(1500, 1520):
        core.on_frame(frames[i % 2], START_NS + i * 3_333_333, 'cam')
    assert float(core.diagnostics().values['input_rate_hz']) == pytest.approx(10.0)


def test_images_lost_in_transport_are_reported(models, typestore):
    clock = FakeClock()
    core = _core(models, clock=clock)
    frames = moving_frames(2)
    stamps = [START_NS + i * 33_333_333 for i in range(300) if i < 20 or i % 3 == 0]
    for i, stamp in enumerate(stamps):
        clock.now += 0.01
        core.on_image_msg(image_msg(typestore, frames[i % 2], stamp_ns=stamp, frame_id='cam'))
    report = core.diagnostics()
    assert report.level == WARN and 'lost before they reached the node' in report.message
    assert 'qos_reliability: reliable' in report.message
    # The first gap (frame 19 to 21) lacks one image, every later one two.
    assert int(report.values['frames_missing']) == 2 * (len(stamps) - 20) - 1
    assert int(report.values['input_gaps']) == len(stamps) - 20
    # A steady stream afterwards is fine again; a restart-sized gap is not a loss.
    start = stamps[-1] + 5 * 10**9
    for i in range(30):
        clock.now += 0.01
        core.on_image_msg(image_msg(typestore, frames[i % 2], stamp_ns=start + i * 33_333_333,
                                    frame_id='cam'))
        _step(core)
    report = core.diagnostics()
    assert report.level == OK, report.message
    assert int(report.values['frames_missing']) == 2 * (len(stamps) - 20) - 1


def test_all_dropped_warning_gives_whole_reasons_with_counts(models, typestore):
    clock = FakeClock()
    core = _core(models, clock=clock)
    frame = moving_frames(1)[0]
    for i in range(3):
        msg = image_msg(typestore, frame, stamp_ns=START_NS + i * PERIOD_NS, frame_id='cam')
        msg.encoding = 'bayer_rggb8'
        core.on_image_msg(msg)
    msg = image_msg(typestore, frame, stamp_ns=START_NS + 3 * PERIOD_NS, frame_id='cam')
    msg.step = 10
    core.on_image_msg(msg)
    clock.now += 0.5
    report = core.diagnostics()
    assert report.level == WARN
    assert report.message.startswith('every image since the last report was dropped: '
                                     "3 unsupported encoding (unsupported image encoding "
                                     "'bayer_rggb8'")
    assert '; 1 bad step (step 10 is shorter than a row' in report.message


# -- deployment files: the YAML configs and the launch file -------------------------------------

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize('name', ['action_recognition.yaml', 'eco_lite_add_gpu.yaml',
                                  'ct_net_r50_gpu.yaml'])
def test_config_files_set_every_parameter_with_its_type(name):
    data = yaml.safe_load((REPO / 'config' / name).read_text())
    values = data['/**']['ros__parameters']
    assert set(values) == {d.name for d in PARAMETERS}
    for definition in PARAMETERS:
        # rclpy refuses an int for a double parameter (and the reverse): types must be exact.
        assert type(values[definition.name]) is definition.type, definition.name
    params = parse_parameters(values)
    if 'gpu' in name:
        assert params.backend.device == 'cuda' and params.backend.backend == 'onnxruntime'
        assert params.model.clip_length > 0 and params.model.input_size > 0
    else:
        assert params.backend.device == 'cpu' and params.model.model_path == ''


def test_the_shipped_config_is_written_from_the_declarations():
    # `python -m action_recognition.node.parameters > config/action_recognition.yaml` after a
    # parameter changes; the file must not drift from the declarations.
    assert (REPO / 'config' / 'action_recognition.yaml').read_text() == default_yaml()
    values = yaml.safe_load(default_yaml())['/**']['ros__parameters']
    assert parse_parameters(values) == NodeSettings()


def test_half_is_a_deprecated_alias_of_precision_fp16(caplog):
    settings = parse_parameters({'half': True, 'device': 'cuda'})
    assert settings.backend.precision == 'fp16'
    assert 'the half parameter is deprecated: use precision fp16' in caplog.text
    assert parse_parameters({'half': False, 'precision': 'bf16'}).backend.precision == 'bf16'
    assert parse_parameters({'half': True, 'precision': 'fp16', 'device': 'cuda'}) == settings
    with pytest.raises(ParameterError, match='half=true and precision=int8: choose one'):
        parse_parameters({'half': True, 'precision': 'int8', 'backend': 'openvino'})
    assert 'half' not in {info.name for info in PARAMETERS}  # not a setting of its own


def test_launch_file_arguments_are_described():
    tree = ast.parse((REPO / 'launch' / 'action_recognition.launch.py').read_text())
    declared = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, 'id', '') == \
                'DeclareLaunchArgument':
            keywords = {k.arg: k.value for k in node.keywords}
            description = keywords['description']
            text = ''.join(part.value for part in ast.walk(description)
                           if isinstance(part, ast.Constant) and isinstance(part.value, str))
            declared[node.args[0].value] = text
    assert set(declared) == {'params_file', 'image_topic', 'namespace', 'model_path',
                             'backend', 'device', 'precision', 'autostart'}
    assert all(len(text) > 20 for text in declared.values()), declared


def test_label_info_changes_are_announced_not_polled(models):
    announced = []
    core = NodeCore(parse_parameters({'model_path': str(models['a'])}), clock=FakeClock(),
                    on_labels=lambda labels, threshold: announced.append((labels, threshold)))
    assert core.set_parameters({'score_threshold': 0.5, 'model_path': str(models['b'])}) == \
        (True, 'model reload scheduled')
    assert announced == [(('wave', 'walk', 'idle'), 0.5)]  # at once, before the reload
    assert core.step() == []
    assert announced[-1] == (('x', 'y'), 0.5) and core.slot.reloads == 1
    assert core.set_parameters({'top_k': 2}) == (True, '') and len(announced) == 2


def test_rate_mode_sleeps_until_a_frame_when_there_is_nothing_to_run():
    # Before the fix the worker woke every millisecond while no window could run.
    scheduler = Scheduler(time.monotonic, rate_hz=100.0)
    start = time.monotonic()
    scheduler.wait(0.2)  # never ran: due at once
    assert time.monotonic() - start < 0.1
    scheduler.starved()
    start = time.monotonic()
    scheduler.wait(0.2)
    assert time.monotonic() - start >= 0.15
    scheduler.frame_arrived(False)  # a frame: wake, and due again at the rate
    start = time.monotonic()
    scheduler.wait(0.2)
    assert time.monotonic() - start < 0.1

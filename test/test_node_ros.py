"""``action_recognition_node`` under real ROS 2: a separate process, talked to over DDS.

The node runs as ``ros2 run`` would start it (its console script with ``--ros-args``, a params
file, a remap and a namespace); the test talks to it through rclpy from this process: camera
frames of known synthetic clips in several encodings, ``~/actions``, ``~/label_info`` (a late
joiner), ``/diagnostics``, the real parameter services, bad frames, QoS, and SIGINT/SIGTERM.
Results are compared with ``action-recognition run`` on the same messages written to a
rosbag2 recording. The default model (trained on the synthetic benchmark) recognises the clips.
"""

from __future__ import annotations

import json
from pathlib import Path
import signal
import time

from fixtures.ros_data import IMAGE
from fixtures.ros_data import tiny_checkpoint
from fixtures.ros_data import write_bag
import numpy as np
import pytest
from ros_harness import NodeProcess
from ros_harness import Probe
from ros_harness import require_ros
from ros_harness import ros_process_environment
import yaml

require_ros()

import cv2  # noqa: E402
from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from lifecycle_msgs.msg import Transition  # noqa: E402
from lifecycle_msgs.srv import ChangeState  # noqa: E402
from lifecycle_msgs.srv import GetState  # noqa: E402
from rcl_interfaces.msg import ParameterType  # noqa: E402
from rcl_interfaces.srv import DescribeParameters  # noqa: E402
from rcl_interfaces.srv import GetParameters  # noqa: E402
from rcl_interfaces.srv import SetParameters  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from rclpy.parameter import parameter_value_to_python  # noqa: E402
from rclpy.qos import DurabilityPolicy  # noqa: E402
from rclpy.qos import QoSProfile  # noqa: E402
from rclpy.qos import ReliabilityPolicy  # noqa: E402
from sensor_msgs.msg import CompressedImage  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402
from vision_msgs.msg import Classification  # noqa: E402
from vision_msgs.msg import LabelInfo  # noqa: E402

from action_recognition import cli  # noqa: E402
from action_recognition.data.images import rgb_to_compressed  # noqa: E402
from action_recognition.data.images import rgb_to_raw  # noqa: E402
from action_recognition.data.synth_clips import CLASSES  # noqa: E402
from action_recognition.data.synth_clips import clip_rng  # noqa: E402
from action_recognition.data.synth_clips import generate_clip  # noqa: E402
from action_recognition.io.messages import action_typestore  # noqa: E402
from action_recognition.runtime.annotate import annotate  # noqa: E402

pytestmark = pytest.mark.slow

NAMESPACE = '/robot1'
NODE = f'{NAMESPACE}/action_recognition_node'
CAMERA = '/cam/image_raw'
CLIP_FRAMES = 24   # 16-frame windows at frames 15, 19 and 23 of each clip (hop 4)
WINDOW = 16
HOP = 4
PERIOD_NS = 33_333_333
CLIP_GAP_NS = 2_000_000_000  # > max_gap_s: each clip starts a fresh buffer
# The default best-effort subscription (the QoS test needs it), with a deeper queue than the
# default 2 so that a scheduling hiccup on this shared 2-core machine loses no frame of the
# clips whose every window the tests compare.
NODE_PARAMS = {'threads': 1, 'hop': HOP, 'smoothing': 'none', 'score_threshold': 0.0,
               'top_k': len(CLASSES), 'stale_input_s': 1.0, 'diagnostics_period_s': 0.25,
               'qos_depth': 50}


def _params_file(path: Path, **values: object) -> Path:
    path.write_text(yaml.safe_dump({'/**': {'ros__parameters': values}}))
    return path


@pytest.fixture(scope='module')
def ros(tmp_path_factory):
    with ros_process_environment(tmp_path_factory.mktemp('ros_logs')) as env:
        probe = Probe('action_recognition_test_probe')
        try:
            yield env, probe
        finally:
            probe.close()


def _start(env, folder: Path, *ros_args: str, namespace: str = NAMESPACE,
           **params: object) -> NodeProcess:
    params_file = _params_file(folder / 'params.yaml', **{**NODE_PARAMS, **params})
    node = NodeProcess(['--params-file', str(params_file), '-r', f'__ns:={namespace}',
                        *ros_args], env=env, log=folder / 'node.log')
    assert node.wait_for_output('active: listening on', 90), node.output
    return node


@pytest.fixture(scope='module')
def raw_node(ros, tmp_path_factory):
    env, _ = ros
    node = _start(env, tmp_path_factory.mktemp('raw_node'), '-r', f'image:={CAMERA}')
    yield node
    # Ends with SIGINT while it is up: exit code 0, no traceback, within 2 s (see the test).
    node.stop()


def _connect(probe, publisher) -> None:
    """Wait until the node's subscription matched ``publisher``. The publisher sees the match
    first; the node's reader may discover the publisher a little later and ignore what comes
    before, so give discovery a moment on both sides."""
    assert probe.wait(lambda: publisher.get_subscription_count() > 0, 10)
    time.sleep(0.5)


def _clips(labels: list[str], seed: int) -> list[np.ndarray]:
    # Seeds and labels below were chosen so that the default model gets every window right.
    return [generate_clip(label, rng=clip_rng(seed, CLASSES.index(label)), frames=CLIP_FRAMES,
                          size=64) for label in labels]


# -- messages: the same bytes for rclpy and for the recording that `run` reads ---------------

def _raw_fields(frame: np.ndarray, encoding: str) -> tuple[int, bytes]:
    if encoding == 'yuv422_yuy2':
        packed = np.ascontiguousarray(cv2.cvtColor(frame, cv2.COLOR_RGB2YUV_YUY2))
        return int(packed.strides[0]), packed.tobytes()
    return rgb_to_raw(frame, encoding)


def _ros_image(frame, stamp_ns, frame_id, encoding, *, step=None, data=None):
    msg = Image()
    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp_ns, 1_000_000_000)
    msg.header.frame_id = frame_id
    msg.height, msg.width = frame.shape[:2]
    msg.encoding = encoding
    fields = _raw_fields(frame, encoding) if encoding in ('rgb8', 'bgr8', 'yuv422_yuy2') \
        else (frame.shape[1] * 3, frame.tobytes())
    msg.step = fields[0] if step is None else step
    msg.data = fields[1] if data is None else data
    return msg


def _bag_image(typestore, msg):
    types = typestore.types
    sec, nanosec = msg.header.stamp.sec, msg.header.stamp.nanosec
    header = types['std_msgs/msg/Header'](
        stamp=types['builtin_interfaces/msg/Time'](sec=sec, nanosec=nanosec),
        frame_id=msg.header.frame_id)
    return types[IMAGE](header=header, height=msg.height, width=msg.width,
                        encoding=msg.encoding, is_bigendian=0, step=msg.step,
                        data=np.frombuffer(bytes(msg.data), np.uint8).copy())


def _stamp_ns(header) -> int:
    return header.stamp.sec * 1_000_000_000 + header.stamp.nanosec


def _stream(probe, publisher, messages, actions, *, due) -> None:
    """Publish ``messages``; after each whose index is in ``due``, wait for its window's result
    (so no window is superseded while the worker is busy: every window gives one result)."""
    for index, msg in enumerate(messages):
        publisher.publish(msg)
        time.sleep(0.004)
        if index in due:
            stamp = _stamp_ns(msg.header)
            assert probe.wait(lambda s=stamp: any(_stamp_ns(a.header) == s for a in actions),
                              10.0), f'no result for the window ending at message {index}'


def _clip_messages(clips, make, *, start_ns, frame_id):
    """Messages of every clip (frames 33 ms apart, clips 2 s apart) and the due indices."""
    messages, due, stamp = [], set(), start_ns
    for clip in clips:
        for i, frame in enumerate(clip):
            messages.append(make(frame, stamp, frame_id))
            if i >= WINDOW - 1 and (i - WINDOW + 1) % HOP == 0:
                due.add(len(messages) - 1)
            stamp += PERIOD_NS
        stamp += CLIP_GAP_NS
    return messages, due


def _run_on_bag(tmp_path: Path, topic: str, msgtype: str, bag_messages) -> list[dict]:
    bag = write_bag(tmp_path / 'recording', [(topic, msgtype, _stamp_ns_bag(m), m)
                                             for m in bag_messages])
    out = tmp_path / 'run.jsonl'
    assert cli.main(['run', '--no-progress', '--source', str(bag), '--image-topic', topic,
                     '--output', str(out), '--hop', str(HOP), '--top-k', str(len(CLASSES)),
                     '--threshold', '0', '--smoothing', 'none', '--threads', '1']) == 0
    return [json.loads(line) for line in out.read_text().splitlines()]


def _stamp_ns_bag(msg) -> int:
    return msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec


def _assert_same_as_run(actions, expected, labels_per_window) -> None:
    assert len(actions) == len(expected) == len(labels_per_window)
    for msg, line, label in zip(actions, expected, labels_per_window):
        assert _stamp_ns(msg.header) == line['stamp_ns']
        assert msg.header.frame_id == line['frame_id']
        got = {h.class_id: h.score for h in msg.results}
        want = {entry['label']: entry['score'] for entry in line['top']}
        assert got.keys() == want.keys()
        for name, score in want.items():
            assert got[name] == pytest.approx(score, abs=2e-5)
        best = max(got, key=got.get)
        assert best == label, (best, label)


LABELS = ['move_left', 'rotate_cw', 'grow', 'appear']


@pytest.mark.parametrize('encoding', ['rgb8', 'bgr8', 'yuv422_yuy2'])
def test_raw_frames_give_one_result_per_window_equal_to_run(encoding, ros, raw_node, tmp_path):
    _, probe = ros
    actions = probe.subscribe(Classification, f'{NODE}/actions', 50)
    publisher = probe.node.create_publisher(Image, CAMERA, 50)
    _connect(probe, publisher)
    clips = _clips(LABELS, seed=8)
    start = 1_800_000_000_000_000_000 + 10**12 * ['rgb8', 'bgr8', 'yuv422_yuy2'].index(encoding)
    messages, due = _clip_messages(
        clips, lambda f, s, fid: _ros_image(f, s, fid, encoding), start_ns=start,
        frame_id=f'camera_{encoding}')
    before = len(actions)
    _stream(probe, publisher, messages, actions, due=due)
    time.sleep(0.3)
    got = actions[before:]
    typestore = action_typestore()
    expected = _run_on_bag(tmp_path, CAMERA, IMAGE, [_bag_image(typestore, m) for m in messages])
    windows = (CLIP_FRAMES - WINDOW) // HOP + 1
    assert len(got) == len(clips) * windows
    _assert_same_as_run(got, expected, [label for label in LABELS for _ in range(windows)])
    probe.node.destroy_publisher(publisher)


def test_label_info_reaches_a_late_joiner_and_follows_the_threshold(ros, raw_node):
    _, probe = ros
    latched = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL,
                         reliability=ReliabilityPolicy.RELIABLE)
    infos = probe.subscribe(LabelInfo, f'{NODE}/label_info', latched)
    assert probe.wait(lambda: len(infos) >= 1, 10)
    assert [c.class_name for c in infos[-1].class_map] == list(CLASSES)
    assert [c.class_id for c in infos[-1].class_map] == list(range(len(CLASSES)))
    assert infos[-1].threshold == pytest.approx(0.0)
    response = _set(probe, score_threshold=0.25)
    assert response.results[0].successful
    assert probe.wait(lambda: infos[-1].threshold == pytest.approx(0.25), 10)
    assert _set(probe, score_threshold=0.0).results[0].successful
    assert probe.wait(lambda: infos[-1].threshold == pytest.approx(0.0), 10)


def _set(probe, node=NODE, **values):
    request = SetParameters.Request()
    request.parameters = [Parameter(name, value=value).to_parameter_msg()
                          for name, value in values.items()]
    return probe.call(SetParameters, f'{node}/set_parameters', request)


def _get(probe, *names):
    request = GetParameters.Request()
    request.names = list(names)
    values = probe.call(GetParameters, f'{NODE}/get_parameters', request).values
    return [parameter_value_to_python(value) for value in values]


def test_parameters_through_the_real_services(ros, raw_node):
    _, probe = ros
    request = DescribeParameters.Request()
    request.names = ['hop', 'score_threshold', 'image_transport', 'smoothing', 'model_path']
    hop, threshold, transport, smoothing, model = probe.call(
        DescribeParameters, f'{NODE}/describe_parameters', request).descriptors
    assert hop.type == ParameterType.PARAMETER_INTEGER
    assert (hop.integer_range[0].from_value, hop.integer_range[0].to_value) == (1, 10000)
    assert (threshold.floating_point_range[0].from_value,
            threshold.floating_point_range[0].to_value) == (0.0, 1.0)
    assert transport.read_only and not hop.read_only
    assert smoothing.additional_constraints == 'one of: none, mean, ema'
    assert 'reloads the model' in model.additional_constraints
    # Valid changes are applied; invalid ones refused with their reason.
    assert _set(probe, top_k=3).results[0].successful
    assert _get(probe, 'top_k') == [3]
    refused = _set(probe, smoothing='median').results[0]
    assert not refused.successful
    assert refused.reason == "smoothing must be one of ['none', 'mean', 'ema'], got 'median'"
    refused = _set(probe, image_transport='compressed').results[0]
    assert (not refused.successful and 'read-only' in refused.reason.lower()) or \
        'start-up' in refused.reason
    refused = _set(probe, model_path='/does/not/exist.onnx').results[0]
    assert not refused.successful and 'does not exist' in refused.reason
    assert _get(probe, 'smoothing', 'image_transport') == ['none', 'raw']
    assert _set(probe, top_k=len(CLASSES)).results[0].successful


def test_half_is_read_into_precision_and_the_parameters_say_what_runs(ros, raw_node):
    _, probe = ros
    assert _get(probe, 'half', 'precision') == [False, 'fp32']
    refused = _set(probe, half=True).results[0]  # fp16 on the CPU, backend auto: no
    assert not refused.successful and 'precision=fp16 needs a CUDA device (torch) or backend ' \
        'openvino' in refused.reason
    # On OpenVINO it reloads in fp16, and the parameters are set to what runs: precision
    # fp16, half back to false.
    assert _set(probe, backend='openvino', half=True).results[0].successful
    assert probe.wait(lambda: _get(probe, 'precision', 'half') == ['fp16', False], 30), \
        _get(probe, 'precision', 'half')
    assert 'the half parameter is deprecated' in raw_node.output
    results = _set(probe, precision='fp32', backend='auto').results  # one by one, in order
    assert all(result.successful for result in results)


def _latest_status(statuses):
    return statuses[-1].status[0] if statuses else None


def _values(status) -> dict[str, str]:
    return {kv.key: kv.value for kv in status.values}


def test_diagnostics_warn_when_input_stops_and_error_after_a_failed_reload(ros, raw_node,
                                                                           tmp_path):
    _, probe = ros
    statuses = probe.subscribe(DiagnosticArray, '/diagnostics', 20)
    assert probe.wait(lambda: _latest_status(statuses) is not None, 10)
    status = _latest_status(statuses)
    assert status.name == f'{NODE}: action recognition'
    values = _values(status)
    for key in ('input_rate_hz', 'inference_rate_hz', 'latency_p50_ms', 'latency_p99_ms',
                'frames_received', 'frames_dropped', 'frames_undecodable', 'frames_oversized',
                'frames_missing', 'clips_run', 'clips_dropped', 'inference_errors', 'backend',
                'device', 'model', 'lifecycle_state'):
        assert key in values, key
    assert values['backend'] == 'onnxruntime-cpu' and values['lifecycle_state'] == 'active'
    # No image for longer than stale_input_s (1 s): WARN.
    assert probe.wait(lambda: _latest_status(statuses).level == b'\x01'
                      and 'no image' in _latest_status(statuses).message, 10)
    # A failed reload: ERROR with the reason, the old model keeps running and the parameter
    # says so again (reverted).
    corrupt = tmp_path / 'corrupt.onnx'
    corrupt.write_bytes(b'not a model' * 100)
    old_model = _get(probe, 'model_path')[0]
    assert _set(probe, model_path=str(corrupt)).results[0].successful  # checked on the worker
    assert probe.wait(lambda: _latest_status(statuses).level == b'\x02'
                      and 'model reload failed' in _latest_status(statuses).message, 15)
    assert 'reverted' in _latest_status(statuses).message
    assert probe.wait(lambda: _get(probe, 'model_path') == [old_model], 10)


def test_bad_frames_do_not_stop_the_node_and_the_next_clips_are_right(ros, raw_node, tmp_path):
    _, probe = ros
    actions = probe.subscribe(Classification, f'{NODE}/actions', 50)
    publisher = probe.node.create_publisher(Image, CAMERA, 50)
    _connect(probe, publisher)
    frame = np.zeros((64, 64, 3), np.uint8)
    stamp = 1_810_000_000_000_000_000
    bad = [_ros_image(frame, stamp, 'bad', 'bayer_rggb8'),                  # wrong encoding
           _ros_image(frame, stamp + 1, 'bad', 'rgb8', data=b'\x00' * 100),   # truncated
           _ros_image(np.zeros((0, 0, 3), np.uint8), stamp + 2, 'bad', 'rgb8'),  # zero size
           _ros_image(frame, stamp + 3, 'bad', 'rgb8', step=4_000_000_000)]  # a bomb
    for msg in bad:
        publisher.publish(msg)
        time.sleep(0.02)
    clips = _clips(['move_up', 'shrink'], seed=5)
    messages, due = _clip_messages(
        clips, lambda f, s, fid: _ros_image(f, s, fid, 'rgb8'), start_ns=stamp + 10**10,
        frame_id='camera')
    before = len(actions)
    _stream(probe, publisher, messages, actions, due=due)
    time.sleep(0.3)
    assert raw_node.process.poll() is None
    typestore = action_typestore()
    expected = _run_on_bag(tmp_path, CAMERA, IMAGE, [_bag_image(typestore, m) for m in messages])
    windows = (CLIP_FRAMES - WINDOW) // HOP + 1
    _assert_same_as_run(actions[before:], expected,
                        [label for label in ('move_up', 'shrink') for _ in range(windows)])
    output = raw_node.output
    assert 'dropping image (unsupported encoding)' in output
    assert 'dropping image (truncated data)' in output
    assert 'Traceback' not in output
    probe.node.destroy_publisher(publisher)


@pytest.mark.parametrize('reliability', ['best_effort', 'reliable'])
def test_best_effort_and_reliable_publishers_reach_the_default_subscription(
        reliability, ros, raw_node):
    _, probe = ros
    actions = probe.subscribe(Classification, f'{NODE}/actions', 50)
    qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.BEST_EFFORT
                     if reliability == 'best_effort' else ReliabilityPolicy.RELIABLE)
    publisher = probe.node.create_publisher(Image, CAMERA, qos)
    _connect(probe, publisher)
    clip = _clips(['move_right'], seed=3)[0]
    stamp = 1_820_000_000_000_000_000 + (10**12 if reliability == 'reliable' else 0)
    before = len(actions)
    for i, frame in enumerate(clip[:WINDOW]):
        publisher.publish(_ros_image(frame, stamp + i * PERIOD_NS, 'camera', 'rgb8'))
        time.sleep(0.01)
    assert probe.wait(lambda: len(actions) > before, 10)
    probe.node.destroy_publisher(publisher)


def test_debug_image_carries_the_pixels_of_the_frame_whose_stamp_it_has(ros, raw_node):
    _, probe = ros
    actions = probe.subscribe(Classification, f'{NODE}/actions', 50)
    debug = probe.subscribe(Image, f'{NODE}/debug_image', 50)
    publisher = probe.node.create_publisher(Image, CAMERA, 50)
    _connect(probe, publisher)
    clip = _clips(['move_left'], seed=8)[0]
    start = 1_825_000_000_000_000_000
    frames = {start + i * PERIOD_NS: frame for i, frame in enumerate(clip)}
    # Frames go out faster than windows run, so newer frames arrive while a window is inferred.
    for stamp, frame in frames.items():
        publisher.publish(_ros_image(frame, stamp, 'camera', 'rgb8'))
        time.sleep(0.002)
    assert probe.wait(lambda: len(debug) >= 1, 10)
    time.sleep(0.5)
    by_stamp = {_stamp_ns(a.header): a for a in actions}
    for image in debug:
        stamp = _stamp_ns(image.header)
        assert stamp in frames and stamp in by_stamp
        top = [(h.class_id, h.score) for h in by_stamp[stamp].results]
        expected = annotate(frames[stamp], top)
        got = np.frombuffer(bytes(image.data), np.uint8).reshape(image.height, image.width, 3)
        assert image.encoding == 'rgb8'
        np.testing.assert_array_equal(got, expected)
    probe.node.destroy_publisher(publisher)


def test_compressed_transport_equal_to_run_and_garbage_jpeg_survived(ros, tmp_path_factory,
                                                                     tmp_path):
    env, probe = ros
    node = _start(env, tmp_path_factory.mktemp('compressed_node'), '-r',
                  f'image/compressed:={CAMERA}/compressed', namespace='/robot2',
                  image_transport='compressed')
    try:
        actions = probe.subscribe(Classification, '/robot2/action_recognition_node/actions', 50)
        publisher = probe.node.create_publisher(CompressedImage, f'{CAMERA}/compressed', 50)
        _connect(probe, publisher)

        def make(frame, stamp, frame_id):
            msg = CompressedImage()
            msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp, 1_000_000_000)
            msg.header.frame_id = frame_id
            msg.format, msg.data = rgb_to_compressed(frame, 'jpeg', quality=95)
            return msg

        garbage = make(np.zeros((64, 64, 3), np.uint8), 1_830_000_000_000_000_000, 'bad')
        garbage.data = b'\xff\xd8\xff\xe0' + bytes(range(256)) * 4
        publisher.publish(garbage)
        clips = _clips(['appear', 'move_down'], seed=8)
        messages, due = _clip_messages(clips, make, start_ns=1_830_000_000_000_000_000 + 10**10,
                                       frame_id='camera')
        _stream(probe, publisher, messages, actions, due=due)
        time.sleep(0.3)
        typestore = action_typestore()
        types = typestore.types
        bag_messages = []
        for msg in messages:
            header = types['std_msgs/msg/Header'](
                stamp=types['builtin_interfaces/msg/Time'](sec=msg.header.stamp.sec,
                                                           nanosec=msg.header.stamp.nanosec),
                frame_id=msg.header.frame_id)
            bag_messages.append(types['sensor_msgs/msg/CompressedImage'](
                header=header, format=msg.format,
                data=np.frombuffer(bytes(msg.data), np.uint8).copy()))
        expected = _run_on_bag(tmp_path, f'{CAMERA}/compressed',
                               'sensor_msgs/msg/CompressedImage', bag_messages)
        windows = (CLIP_FRAMES - WINDOW) // HOP + 1
        _assert_same_as_run(actions, expected,
                            [label for label in ('appear', 'move_down') for _ in range(windows)])
        assert 'dropping image (corrupt jpeg)' in node.output
        # SIGTERM while it is up: exit code 0, no traceback, within 2 s.
        for i, frame in enumerate(clips[0]):
            publisher.publish(make(frame, 1_840_000_000_000_000_000 + i * PERIOD_NS, 'camera'))
        code, seconds = node.signal(signal.SIGTERM)
        assert code == 0 and seconds < 2.0, (code, seconds, node.output[-3000:])
        assert 'Traceback' not in node.output
    finally:
        node.stop()


def test_sigint_while_streaming_exits_cleanly(ros, raw_node):
    _, probe = ros
    publisher = probe.node.create_publisher(Image, CAMERA, 50)
    _connect(probe, publisher)
    clip = _clips(['static'], seed=1)[0]
    for i, frame in enumerate(clip):
        publisher.publish(_ros_image(frame, 1_850_000_000_000_000_000 + i * PERIOD_NS, 'camera',
                                     'rgb8'))
    code, seconds = raw_node.signal(signal.SIGINT)
    assert code == 0 and seconds < 2.0, (code, seconds, raw_node.output[-3000:])
    assert 'Traceback' not in raw_node.output


def test_start_up_failures_exit_1_with_one_fatal_line(ros, tmp_path):
    env, _ = ros
    corrupt = tmp_path / 'corrupt.onnx'
    corrupt.write_bytes(b'garbage' * 50)
    other = tiny_checkpoint(tmp_path / 'other.pt', num_frames=4)
    from ros_harness import run_node

    cases = {
        'missing model': (['-p', 'model_path:=/nonexistent/model.onnx'],
                          'model file not found: /nonexistent/model.onnx'),
        'corrupt model': (['-p', f'model_path:={corrupt}'], 'not an ONNX file'),
        'incompatible model': (['-p', f'model_path:={other}', '-p', 'clip_length:=8'],
                               "clip_length 8 != the model's 4"),
        'clip_length': (['-p', 'clip_length:=8'], "clip_length 8 != the model's 16"),
        'choice': (['-p', 'smoothing:=bogus'], 'smoothing must be one of'),
        'half on cpu': (['-p', 'half:=true'],
                        'precision=fp16 needs a CUDA device (torch) or backend openvino'),
        'device': (['-p', 'device:=gpu'], "device must be 'cpu', 'cuda' or 'cuda:N'"),
        'type': (['-p', 'score_threshold:=1'], "'score_threshold' to '1' of type 'INTEGER'"),
        'range': (['-p', 'top_k:=0'], 'Parameter top_k out of range'),
    }
    for name, (args, words) in cases.items():
        code, output = run_node(args, env=env, log=tmp_path / f'{name}.log')
        fatal = [line for line in output.splitlines() if '[FATAL]' in line]
        assert code == 1, (name, output)
        assert len(fatal) == 1 and 'cannot start: ' in fatal[0] and words in fatal[0], \
            (name, output)
        assert 'Traceback' not in output, (name, output)


def _state(probe, node) -> str:
    return probe.call(GetState, f'{node}/get_state', GetState.Request()).current_state.label


def _transition(probe, node, transition: int) -> bool:
    request = ChangeState.Request()
    request.transition.id = transition
    return bool(probe.call(ChangeState, f'{node}/change_state', request).success)


def test_managed_node_through_the_real_lifecycle_services(ros, tmp_path):
    env, probe = ros
    name = '/managed/action_recognition_node'
    params = _params_file(tmp_path / 'params.yaml', **NODE_PARAMS)
    node = NodeProcess(['--params-file', str(params), '-r', '__ns:=/managed', '-r',
                        'image:=/managed_cam', '-p', 'autostart:=false'],
                       env=env, log=tmp_path / 'node.log')
    try:
        statuses = probe.subscribe(DiagnosticArray, '/diagnostics', 50)
        actions = probe.subscribe(Classification, f'{name}/actions', 50)
        assert probe.wait(lambda: _connected_service(probe, f'{name}/get_state'), 60)
        assert _state(probe, name) == 'unconfigured'
        assert 'loaded' not in node.output  # nothing loaded before configure
        # A refused parameter value while unconfigured, and a valid one that configure reads.
        assert not _set(probe, name, hop=0).results[0].successful
        assert _set(probe, name, hop=8).results[0].successful

        assert _transition(probe, name, Transition.TRANSITION_CONFIGURE)
        assert _state(probe, name) == 'inactive' and 'loaded' in node.output
        publisher = probe.node.create_publisher(Image, '/managed_cam', 50)
        clip = _clips(['move_left'], seed=8)[0]

        def send(start: int) -> None:
            for i, frame in enumerate(clip):
                publisher.publish(_ros_image(frame, start + i * PERIOD_NS, 'camera', 'rgb8'))
                time.sleep(0.005)

        # Inactive: no subscription yet, nothing published; diagnostics say it.
        assert publisher.get_subscription_count() == 0
        assert probe.wait(lambda: any(
            s.status[0].message.startswith('inactive') for s in statuses), 10)

        assert _transition(probe, name, Transition.TRANSITION_ACTIVATE)
        assert _state(probe, name) == 'active'
        _connect(probe, publisher)
        send(1_860_000_000_000_000_000)
        # 24 frames, hop 8 (set while unconfigured): windows at frames 15 and 23.
        assert probe.wait(lambda: len(actions) == 2, 10), len(actions)
        assert actions[-1].results[0].class_id == 'move_left'

        assert _transition(probe, name, Transition.TRANSITION_DEACTIVATE)
        assert _state(probe, name) == 'inactive'
        assert probe.wait(lambda: publisher.get_subscription_count() == 0, 10)
        send(1_870_000_000_000_000_000)
        time.sleep(0.5)
        assert len(actions) == 2  # inference stopped

        assert _transition(probe, name, Transition.TRANSITION_ACTIVATE)
        _connect(probe, publisher)
        send(1_880_000_000_000_000_000)
        assert probe.wait(lambda: len(actions) == 4, 10), len(actions)

        assert _transition(probe, name, Transition.TRANSITION_DEACTIVATE)
        assert _transition(probe, name, Transition.TRANSITION_CLEANUP)
        assert _state(probe, name) == 'unconfigured'
        # A bad configuration fails the transition and leaves it unconfigured.
        assert _set(probe, name, model_path=str(tmp_path / 'missing.onnx')).results[0].successful
        assert not _transition(probe, name, Transition.TRANSITION_CONFIGURE)
        assert _state(probe, name) == 'unconfigured'
        assert 'configure failed: model file not found' in node.output
        assert _transition(probe, name, Transition.TRANSITION_UNCONFIGURED_SHUTDOWN)
        assert _state(probe, name) == 'finalized'
        code, seconds = node.signal(signal.SIGINT)
        assert code == 0 and seconds < 2.0
        assert 'Traceback' not in node.output
        probe.node.destroy_publisher(publisher)
    finally:
        node.stop()


def _connected_service(probe, name: str) -> bool:
    client = probe.node.create_client(GetState, name)
    try:
        return client.service_is_ready() or client.wait_for_service(timeout_sec=0.5)
    finally:
        probe.node.destroy_client(client)

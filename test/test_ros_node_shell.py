"""The ROS shell (``action_recognition/ros/node.py``) run against a minimal in-process stand-in
for rclpy and the message packages, so its wiring (parameters with descriptors, subscription,
publishers, parameter callback, diagnostics timer, debug image, worker, start-up failure) is
exercised where ROS 2 is not installed. Where rclpy is installed, test_launch_node.py runs the
real node instead."""

import importlib
import importlib.util
import sys
import threading
import time
import types

from fixtures.ros_data import image_msg
from fixtures.ros_data import moving_frames
from fixtures.ros_data import tiny_checkpoint
import pytest
import torch

from action_recognition.inference.messages import action_typestore

pytestmark = pytest.mark.skipif(importlib.util.find_spec('rclpy') is not None,
                                reason='rclpy is installed: test_launch_node.py runs the node')


class _Msg:
    """A message class: keeps the keyword fields it is built with."""

    def __init__(self, **fields):
        self.__dict__.update(fields)


def _message_module(name, *classes):
    module = types.ModuleType(name)
    for cls in classes:
        setattr(module, cls, type(cls, (_Msg,), {}))
    return module


class _Publisher:
    def __init__(self, msg_type, topic, qos):
        self.msg_type, self.topic_name, self.qos = msg_type, topic, qos
        self.sent = []
        self.subscribers = 0
        self.lock = threading.Lock()

    def publish(self, msg):
        with self.lock:
            self.sent.append(msg)

    def get_subscription_count(self):
        return self.subscribers


class _Logger:
    def __init__(self):
        self.lines = []

    def __getattr__(self, level):
        return lambda message: self.lines.append((level, message))


class _FakeNode:
    def __init__(self, name, *, parameter_overrides=()):
        self.name = name
        self.overrides = {p.name: p.value for p in parameter_overrides}
        self.descriptors = {}
        self.publishers = {}
        self.subscriptions = []
        self.timers = []
        self.parameter_callbacks = []
        self.logger = _Logger()
        self.destroyed = False

    def declare_parameter(self, name, value, descriptor):
        self.descriptors[name] = descriptor
        return types.SimpleNamespace(value=self.overrides.get(name, value))

    def get_logger(self):
        return self.logger

    def create_publisher(self, msg_type, topic, qos):
        self.publishers[topic] = _Publisher(msg_type, topic, qos)
        return self.publishers[topic]

    def create_subscription(self, msg_type, topic, callback, qos, *, callback_group=None):
        sub = types.SimpleNamespace(msg_type=msg_type, topic_name=topic, callback=callback,
                                    qos=qos, callback_group=callback_group)
        self.subscriptions.append(sub)
        return sub

    def add_on_set_parameters_callback(self, callback):
        self.parameter_callbacks.append(callback)

    def create_timer(self, period, callback):
        self.timers.append((period, callback))

    def get_clock(self):
        return types.SimpleNamespace(
            now=lambda: types.SimpleNamespace(nanoseconds=time.time_ns()))

    def get_fully_qualified_name(self):
        return '/' + self.name

    def destroy_node(self):
        self.destroyed = True


@pytest.fixture
def fake_ros(monkeypatch):
    rclpy = types.ModuleType('rclpy')
    state = {'spun': [], 'shutdown': 0, 'fatal': []}
    rclpy.init = lambda args=None: None
    rclpy.spin = lambda node: state['spun'].append(node)
    rclpy.try_shutdown = lambda: state.__setitem__('shutdown', state['shutdown'] + 1)
    modules = {'rclpy': rclpy}
    for name, attrs in {
        'rclpy.node': {'Node': _FakeNode},
        'rclpy.callback_groups': {'MutuallyExclusiveCallbackGroup': type('Group', (), {})},
        'rclpy.executors': {'ExternalShutdownException': type('Shutdown', (Exception,), {})},
        'rclpy.logging': {'get_logger': lambda name: types.SimpleNamespace(
            fatal=state['fatal'].append)},
        'rclpy.parameter': {'Parameter': lambda name, value=None: types.SimpleNamespace(
            name=name, value=value)},
        'rclpy.qos': {
            'QoSProfile': lambda **kwargs: types.SimpleNamespace(**kwargs),
            'DurabilityPolicy': types.SimpleNamespace(TRANSIENT_LOCAL='transient_local',
                                                      VOLATILE='volatile'),
            'HistoryPolicy': types.SimpleNamespace(KEEP_LAST='keep_last'),
            'ReliabilityPolicy': types.SimpleNamespace(BEST_EFFORT='best_effort',
                                                       RELIABLE='reliable')},
    }.items():
        module = types.ModuleType(name)
        module.__dict__.update(attrs)
        modules[name] = module
    for package, classes in {
        'rcl_interfaces.msg': ('FloatingPointRange', 'IntegerRange', 'ParameterDescriptor',
                               'SetParametersResult'),
        'sensor_msgs.msg': ('Image', 'CompressedImage'),
        'vision_msgs.msg': ('Classification', 'LabelInfo', 'ObjectHypothesis', 'VisionClass'),
        'diagnostic_msgs.msg': ('DiagnosticArray', 'DiagnosticStatus', 'KeyValue'),
        'std_msgs.msg': ('Header',),
        'builtin_interfaces.msg': ('Time',),
    }.items():
        modules[package.split('.')[0]] = types.ModuleType(package.split('.')[0])
        modules[package] = _message_module(package, *classes)
    for name, module in modules.items():
        monkeypatch.setitem(sys.modules, name, module)
    monkeypatch.delitem(sys.modules, 'action_recognition.ros.node', raising=False)
    node_module = importlib.import_module('action_recognition.ros.node')
    yield node_module, state
    sys.modules.pop('action_recognition.ros.node', None)


@pytest.fixture(scope='module')
def model(tmp_path_factory):
    torch.set_num_threads(1)
    return tiny_checkpoint(tmp_path_factory.mktemp('m') / 'tiny.pt', num_frames=4)


def _wait_for(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return False


def _node(node_module, **values):
    overrides = [types.SimpleNamespace(name=k, value=v) for k, v in values.items()]
    return node_module.ActionRecognitionNode(parameter_overrides=overrides)


def test_node_wiring(fake_ros, model):
    node_module, _ = fake_ros
    node = _node(node_module, model_path=str(model), hop=1, score_threshold=0.0,
                 smoothing='none')
    try:
        # Every parameter declared once, described, ranged, start-up ones read-only.
        assert set(node.descriptors) == {d.name for d in node_module.PARAMETERS}
        threshold = node.descriptors['score_threshold']
        assert threshold.floating_point_range[0].to_value == 1.0
        assert node.descriptors['top_k'].integer_range[0].from_value == 1
        assert node.descriptors['qos_depth'].read_only is True
        assert node.descriptors['top_k'].read_only is False
        assert 'one of: none, mean, ema' in node.descriptors['smoothing'].additional_constraints
        # Topics and QoS.
        assert set(node.publishers) == {'~/actions', '~/label_info', '/diagnostics',
                                        '~/debug_image'}
        assert node.publishers['~/label_info'].qos.durability == 'transient_local'
        (sub,) = node.subscriptions
        assert sub.topic_name == 'image'
        assert sub.qos.reliability == 'best_effort' and sub.qos.depth == 2
        label_info = node.publishers['~/label_info'].sent
        assert [c.class_name for c in label_info[-1].class_map] == ['wave', 'walk', 'idle']

        # Images in (through the subscription callback), actions out (from the worker).
        typestore = action_typestore()
        node.publishers['~/debug_image'].subscribers = 1
        stamps = [1_700_000_000_000_000_003 + i * 40_000_000 for i in range(4)]
        for frame, stamp in zip(moving_frames(4), stamps):
            sub.callback(image_msg(typestore, frame, stamp_ns=stamp, frame_id='cam'))
        actions = node.publishers['~/actions'].sent
        assert _wait_for(lambda: len(actions) == 1)
        header = actions[0].header
        assert (header.stamp.sec, header.stamp.nanosec) == divmod(stamps[-1], 1_000_000_000)
        assert header.frame_id == 'cam'
        assert {h.class_id for h in actions[0].results} == {'wave', 'walk', 'idle'}
        debug = node.publishers['~/debug_image'].sent
        assert _wait_for(lambda: len(debug) == 1)
        assert (debug[0].height, debug[0].width, debug[0].encoding) == (24, 32, 'rgb8')

        # Parameters at run time: accepted (LabelInfo republished) or refused with a reason.
        (callback,) = node.parameter_callbacks
        param = types.SimpleNamespace
        result = callback([param(name='score_threshold', value=0.5)])
        assert result.successful and label_info[-1].threshold == 0.5
        result = callback([param(name='smoothing', value='median')])
        assert not result.successful and 'smoothing must be one of' in result.reason

        # Diagnostics.
        ((period, on_diagnostics),) = node.timers
        assert period == 1.0
        on_diagnostics()
        (status,) = node.publishers['/diagnostics'].sent[-1].status
        assert status.level in (b'\x00', b'\x01') and status.hardware_id == 'cpu'
        assert {kv.key for kv in status.values} >= {'input_rate_hz', 'latency_p99_ms',
                                                   'clips_dropped'}
    finally:
        node.destroy_node()
    assert node.destroyed and not node.worker.alive


def test_compressed_transport_subscribes_to_image_compressed(fake_ros, model):
    node_module, _ = fake_ros
    node = _node(node_module, model_path=str(model), image_transport='compressed',
                 qos_reliability='reliable', qos_depth=5)
    try:
        (sub,) = node.subscriptions
        assert sub.topic_name == 'image/compressed'
        assert sub.qos.reliability == 'reliable' and sub.qos.depth == 5
    finally:
        node.destroy_node()


def test_main_fails_fast_on_a_missing_model(fake_ros, tmp_path, monkeypatch):
    node_module, state = fake_ros
    original = node_module.ActionRecognitionNode.__init__

    def init(self, **kwargs):
        overrides = [types.SimpleNamespace(name='model_path',
                                           value=str(tmp_path / 'missing.onnx'))]
        original(self, parameter_overrides=overrides)

    monkeypatch.setattr(node_module.ActionRecognitionNode, '__init__', init)
    with pytest.raises(SystemExit) as info:
        node_module.main([])
    assert info.value.code == 1
    assert 'missing.onnx' in state['fatal'][0] and state['shutdown'] == 1
    assert state['spun'] == []


def test_runtime_logging_is_restored(fake_ros, model, tmp_path):
    import logging

    node_module, _ = fake_ros
    runtime_logger = logging.getLogger('action_recognition')
    before = (runtime_logger.level, runtime_logger.propagate, list(runtime_logger.handlers))
    node = _node(node_module, model_path=str(model))
    assert runtime_logger.propagate is False  # records go to the node's rclpy logger
    logging.getLogger('action_recognition.node').warning('through rclpy')
    assert ('warning', 'through rclpy') in node.logger.lines
    node.destroy_node()
    assert (runtime_logger.level, runtime_logger.propagate, runtime_logger.handlers) == before
    with pytest.raises(node_module.ModelLoadError):
        _node(node_module, model_path=str(tmp_path / 'missing.pt'))
    assert (runtime_logger.level, runtime_logger.propagate, runtime_logger.handlers) == before

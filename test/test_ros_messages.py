"""Message builders and parsers, checked with the real ROS 2 message definitions and CDR round
trips through rosbags (no ROS installation needed)."""

import importlib.util

import numpy as np
import pytest

from action_recognition.data.images import image_msg_to_rgb
from action_recognition.io.messages import action_typestore
from action_recognition.io.messages import build_classification
from action_recognition.io.messages import build_diagnostic_array
from action_recognition.io.messages import build_image
from action_recognition.io.messages import build_label_info
from action_recognition.io.messages import parse_classification
from action_recognition.io.messages import parse_label_info
from action_recognition.io.messages import rosbags_message_types
from action_recognition.io.messages import stamp_to_parts
from action_recognition.ros import messages


@pytest.fixture(scope='module')
def store():
    return action_typestore()


@pytest.fixture(scope='module')
def types(store):
    return rosbags_message_types(store)


def _round_trip(store, msg, typename):
    raw = store.serialize_cdr(msg, typename)
    return store.deserialize_cdr(raw, typename)


def test_vision_msgs_definitions_have_the_real_fields(store):
    def field_names(name):
        return [f for f in store.types[name].__dataclass_fields__ if not f.startswith('__')]

    assert field_names('vision_msgs/msg/Classification') == ['header', 'results']
    assert field_names('vision_msgs/msg/ObjectHypothesis') == ['class_id', 'score']
    assert field_names('vision_msgs/msg/LabelInfo') == ['header', 'class_map', 'threshold']
    assert field_names('vision_msgs/msg/VisionClass') == ['class_id', 'class_name']
    # The rosbag2 message definition text is generated from them (used by MCAP recordings).
    text, _ = store.generate_msgdef('vision_msgs/msg/Classification', ros_version=2)
    assert 'vision_msgs/ObjectHypothesis[] results' in text
    assert 'float64 score' in text


def test_classification_round_trip_keeps_exact_stamp(store, types):
    stamp_ns = 1_700_000_000_987_654_321
    msg = build_classification(types, stamp=stamp_ns, frame_id='camera_optical',
                               top=[('wave', 0.75), ('walk', 0.125)])
    back = _round_trip(store, msg, 'vision_msgs/msg/Classification')
    stamp, frame_id, top = parse_classification(back)
    assert stamp == (1_700_000_000, 987_654_321)
    assert frame_id == 'camera_optical'
    assert top == [('wave', 0.75), ('walk', 0.125)]
    empty = _round_trip(store, build_classification(types, stamp=0, frame_id='', top=[]),
                        'vision_msgs/msg/Classification')
    assert parse_classification(empty) == ((0, 0), '', [])


def test_stamp_conversion():
    assert stamp_to_parts(1_500_000_001) == (1, 500_000_001)
    assert stamp_to_parts(np.int64(2_000_000_000)) == (2, 0)
    assert stamp_to_parts(12.25) == (12, 250_000_000)
    with pytest.raises(ValueError, match='finite'):
        stamp_to_parts(float('nan'))


def test_label_info_round_trip(store, types):
    msg = build_label_info(types, labels=['wave', 'walk', 'idle'], threshold=0.35,
                           stamp=5_000_000_000)
    back = _round_trip(store, msg, 'vision_msgs/msg/LabelInfo')
    labels, threshold = parse_label_info(back)
    assert labels == ['wave', 'walk', 'idle']
    assert threshold == pytest.approx(0.35)
    assert [c.class_id for c in back.class_map] == [0, 1, 2]
    assert back.header.stamp.sec == 5


def test_diagnostic_array_round_trip(store, types):
    msg = build_diagnostic_array(
        types, stamp=3_000_000_001, name='/robot/action_recognition_node: action recognition',
        hardware_id='cuda:0', level=1, message='no image for 3.0 s',
        values={'input_rate_hz': '0.00', 'clips_dropped': 4})
    back = _round_trip(store, msg, 'diagnostic_msgs/msg/DiagnosticArray')
    status = back.status[0]
    assert status.level == 1 and status.message == 'no image for 3.0 s'
    assert status.hardware_id == 'cuda:0'
    assert [(kv.key, kv.value) for kv in status.values] == [
        ('input_rate_hz', '0.00'), ('clips_dropped', '4')]
    assert (back.header.stamp.sec, back.header.stamp.nanosec) == (3, 1)
    with pytest.raises(ValueError, match='diagnostic level'):
        build_diagnostic_array(types, stamp=0, name='x', hardware_id='', level=7, message='',
                               values={})


def test_debug_image_round_trip(store, types):
    frame = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    msg = build_image(types, frame_rgb=frame, stamp=1_000, frame_id='cam')
    back = _round_trip(store, msg, 'sensor_msgs/msg/Image')
    assert back.encoding == 'rgb8' and back.step == 21
    np.testing.assert_array_equal(image_msg_to_rgb(back), frame)
    with pytest.raises(ValueError, match='uint8 RGB'):
        build_image(types, frame_rgb=frame[:, :, 0], stamp=0, frame_id='')


def test_rclpy_messages_and_the_rosbags_definitions_agree_on_the_wire(store):
    """With ROS 2 (make test installs it): a Classification and a LabelInfo built with rclpy's
    classes, serialised by rclpy, read back by rosbags with this package's definitions (the
    ones `run` writes recordings with), and the other way round. Without ROS the rclpy classes
    cannot be had, and ros_message_types says so."""
    if importlib.util.find_spec('rclpy') is None:
        with pytest.raises(ImportError):
            messages.ros_message_types()
        return
    from rclpy.serialization import deserialize_message
    from rclpy.serialization import serialize_message
    from vision_msgs.msg import Classification
    from vision_msgs.msg import LabelInfo

    ros = messages.ros_message_types()
    top = [('wave', 0.75), ('walk', 0.125)]
    msg = build_classification(ros, stamp=1_700_000_000_123_456_789, frame_id='cam', top=top)
    assert isinstance(msg, Classification)
    back = store.deserialize_cdr(serialize_message(msg), 'vision_msgs/msg/Classification')
    assert parse_classification(back) == ((1_700_000_000, 123_456_789), 'cam', top)
    info = build_label_info(rosbags_message_types(store), labels=['a', 'b'], threshold=0.25,
                            stamp=5)
    raw = store.serialize_cdr(info, 'vision_msgs/msg/LabelInfo')
    ros_info = deserialize_message(bytes(raw), LabelInfo)
    assert [(c.class_id, c.class_name) for c in ros_info.class_map] == [(0, 'a'), (1, 'b')]
    assert ros_info.threshold == pytest.approx(0.25)

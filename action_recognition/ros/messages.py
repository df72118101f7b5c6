"""The node's messages: the ROS-free builders and parsers, plus rclpy's message classes.

Everything but :func:`ros_message_types` comes from
:mod:`action_recognition.runtime.messages` (ROS-free, also used with rosbags' classes by the
offline runner and the tests); :func:`ros_message_types` bundles rclpy's classes for the node.
"""

from __future__ import annotations

import array

from action_recognition.runtime.messages import action_typestore
from action_recognition.runtime.messages import ACTIONS_TOPIC
from action_recognition.runtime.messages import build_classification
from action_recognition.runtime.messages import build_diagnostic_array
from action_recognition.runtime.messages import build_header
from action_recognition.runtime.messages import build_image
from action_recognition.runtime.messages import build_label_info
from action_recognition.runtime.messages import DIAGNOSTIC_LEVELS
from action_recognition.runtime.messages import LABEL_INFO_TOPIC
from action_recognition.runtime.messages import MessageTypes
from action_recognition.runtime.messages import parse_classification
from action_recognition.runtime.messages import parse_label_info
from action_recognition.runtime.messages import parts_to_stamp
from action_recognition.runtime.messages import rosbags_message_types
from action_recognition.runtime.messages import stamp_to_parts
from action_recognition.runtime.messages import VISION_MSGS_DEFINITIONS

__all__ = [
    'ACTIONS_TOPIC', 'LABEL_INFO_TOPIC', 'VISION_MSGS_DEFINITIONS', 'MessageTypes',
    'ros_message_types', 'rosbags_message_types', 'action_typestore', 'stamp_to_parts',
    'parts_to_stamp', 'build_header', 'build_classification', 'parse_classification',
    'build_label_info', 'parse_label_info', 'build_diagnostic_array', 'build_image',
    'DIAGNOSTIC_LEVELS',
]


def ros_message_types() -> MessageTypes:
    """The rclpy message classes (imports ROS; only the node calls this)."""
    # Imported here, not at the top: the builders re-exported above serve recordings and tests
    # where ROS is not installed, and importing this module must work there too.
    from builtin_interfaces.msg import Time
    from diagnostic_msgs.msg import DiagnosticArray
    from diagnostic_msgs.msg import DiagnosticStatus
    from diagnostic_msgs.msg import KeyValue
    from sensor_msgs.msg import Image
    from std_msgs.msg import Header
    from vision_msgs.msg import Classification
    from vision_msgs.msg import LabelInfo
    from vision_msgs.msg import ObjectHypothesis
    from vision_msgs.msg import VisionClass

    return MessageTypes(
        Time=Time, Header=Header, ObjectHypothesis=ObjectHypothesis,
        Classification=Classification, VisionClass=VisionClass, LabelInfo=LabelInfo,
        KeyValue=KeyValue, DiagnosticStatus=DiagnosticStatus, DiagnosticArray=DiagnosticArray,
        Image=Image, level=lambda value: bytes([value]), byte_array=_uint8_array)


def _uint8_array(data: bytes) -> array.array[int]:
    # rclpy stores uint8[] as array.array('B'); passing one skips its per-element checks.
    return array.array('B', data)

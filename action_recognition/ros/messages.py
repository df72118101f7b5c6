"""rclpy's message classes for the ROS-free message builders.

The builders and parsers live in :mod:`action_recognition.io.messages` (ROS-free: recordings and
tests fill rosbags' classes with them); :func:`ros_message_types` bundles rclpy's classes for the
node and its benchmark.
"""

from __future__ import annotations

import array

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

from action_recognition.io.messages import MessageTypes

__all__ = ['ros_message_types']


def ros_message_types() -> MessageTypes:
    """The rclpy message classes the node publishes."""
    return MessageTypes(
        Time=Time, Header=Header, ObjectHypothesis=ObjectHypothesis,
        Classification=Classification, VisionClass=VisionClass, LabelInfo=LabelInfo,
        KeyValue=KeyValue, DiagnosticStatus=DiagnosticStatus, DiagnosticArray=DiagnosticArray,
        Image=Image, level=lambda value: bytes([value]), byte_array=_uint8_array)


def _uint8_array(data: bytes) -> array.array[int]:
    # rclpy stores uint8[] as array.array('B'); passing one skips its per-element checks.
    return array.array('B', data)

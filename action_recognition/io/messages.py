"""ROS-free builders and parsers of the ROS 2 messages the node publishes and recordings hold.

The builders take the message classes as a :class:`MessageTypes` bundle, so one implementation
fills rosbags messages here (offline runs, recordings, tests: :func:`rosbags_message_types`,
pure Python) and rclpy messages in the node (the ROS layer builds the bundle from rclpy's
classes). This module imports no ROS package.

Topics:

- ``~/actions``: ``vision_msgs/msg/Classification``; ``header`` is the stamp and frame_id of the
  clip's last frame; ``results`` holds the top-k ``ObjectHypothesis`` above the threshold, best
  first, with ``class_id`` set to the label name.
- ``~/label_info``: ``vision_msgs/msg/LabelInfo``; ``class_map`` maps each model output index
  to its label name; ``threshold`` is the active score threshold.
- ``/diagnostics``: ``diagnostic_msgs/msg/DiagnosticArray`` with one status.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
import math
from typing import Any

import numpy as np

__all__ = [
    'ACTIONS_TOPIC', 'LABEL_INFO_TOPIC', 'VISION_MSGS_DEFINITIONS', 'MessageTypes',
    'rosbags_message_types', 'action_typestore', 'stamp_to_parts',
    'parts_to_stamp', 'build_header', 'build_classification', 'parse_classification',
    'build_label_info', 'parse_label_info', 'build_diagnostic_array', 'build_image',
    'DIAGNOSTIC_LEVELS',
]

ACTIONS_TOPIC = '/action_recognition/actions'
LABEL_INFO_TOPIC = '/action_recognition/label_info'

# diagnostic_msgs/msg/DiagnosticStatus levels
DIAGNOSTIC_LEVELS = {'OK': 0, 'WARN': 1, 'ERROR': 2, 'STALE': 3}

# The real definitions from ros-perception/vision_msgs (ROS 2, 4.x), for rosbags' typestore.
VISION_MSGS_DEFINITIONS: dict[str, str] = {
    'vision_msgs/msg/ObjectHypothesis': """
# An object hypothesis that contains no pose information.
string class_id
# The probability or confidence value of the detected object. By convention,
#   this value should lie in the range [0-1].
float64 score
""",
    'vision_msgs/msg/Classification': """
# Defines a classification result.
std_msgs/Header header
# A list of class probabilities.
vision_msgs/ObjectHypothesis[] results
""",
    'vision_msgs/msg/VisionClass': """
# A key value pair that maps an integer class_id to a string class label.
uint16 class_id
string class_name
""",
    'vision_msgs/msg/LabelInfo': """
# Provides meta-information about a visual pipeline.
std_msgs/Header header
# An array of uint16 keys and string values containing the association
# between class identifiers and their names.
vision_msgs/VisionClass[] class_map
# The value between 0-1 used as confidence threshold for the inference.
float32 threshold
""",
}


@dataclass(frozen=True)
class MessageTypes:
    """The message classes the builders fill (rclpy's or rosbags')."""

    Time: Callable[..., Any]
    Header: Callable[..., Any]
    ObjectHypothesis: Callable[..., Any]
    Classification: Callable[..., Any]
    VisionClass: Callable[..., Any]
    LabelInfo: Callable[..., Any]
    KeyValue: Callable[..., Any]
    DiagnosticStatus: Callable[..., Any]
    DiagnosticArray: Callable[..., Any]
    Image: Callable[..., Any]
    # DiagnosticStatus.level is ``byte``: ``bytes`` of length 1 in rclpy, ``int`` in rosbags.
    level: Callable[[int], Any]
    # uint8[] data: ``array.array('B')`` for rclpy, a numpy uint8 array for rosbags.
    byte_array: Callable[[bytes], Any]


def action_typestore(store: str = 'ROS2_HUMBLE') -> Any:
    """A rosbags typestore with the ROS 2 messages of ``store`` plus vision_msgs registered."""
    # rosbags is needed for recordings only; the ROS node builds messages with rclpy's classes
    # (this module is shared with it), so it is imported here, where a recording needs it.
    from rosbags.typesys import get_types_from_msg
    from rosbags.typesys import get_typestore
    from rosbags.typesys import Stores

    typestore = get_typestore(getattr(Stores, store))
    types: dict[str, Any] = {}
    for name, text in VISION_MSGS_DEFINITIONS.items():
        types.update(get_types_from_msg(text, name))
    typestore.register(types)
    return typestore


def rosbags_message_types(typestore: Any) -> MessageTypes:
    """The rosbags message classes of ``typestore`` (see :func:`action_typestore`)."""
    types = typestore.types

    def byte_array(data: bytes) -> np.ndarray:
        return np.frombuffer(data, dtype=np.uint8).copy()

    return MessageTypes(
        Time=types['builtin_interfaces/msg/Time'], Header=types['std_msgs/msg/Header'],
        ObjectHypothesis=types['vision_msgs/msg/ObjectHypothesis'],
        Classification=types['vision_msgs/msg/Classification'],
        VisionClass=types['vision_msgs/msg/VisionClass'],
        LabelInfo=types['vision_msgs/msg/LabelInfo'],
        KeyValue=types['diagnostic_msgs/msg/KeyValue'],
        DiagnosticStatus=types['diagnostic_msgs/msg/DiagnosticStatus'],
        DiagnosticArray=types['diagnostic_msgs/msg/DiagnosticArray'],
        Image=types['sensor_msgs/msg/Image'], level=int, byte_array=byte_array)


def stamp_to_parts(stamp: float | int) -> tuple[int, int]:
    """Seconds (float) or nanoseconds (int) -> ``(sec, nanosec)`` of ``builtin_interfaces/Time``.

    An ``int`` is taken as nanoseconds and converted exactly; a ``float`` as seconds, rounded to
    the nearest nanosecond.
    """
    if isinstance(stamp, (int, np.integer)):
        total = int(stamp)
    else:
        value = float(stamp)
        if not math.isfinite(value):
            raise ValueError(f'stamp must be finite, got {stamp}')
        total = round(value * 1e9)
    sec, nanosec = divmod(total, 1_000_000_000)
    return int(sec), int(nanosec)


def parts_to_stamp(sec: int, nanosec: int) -> float:
    """``(sec, nanosec)`` -> seconds as a float."""
    return int(sec) + int(nanosec) * 1e-9


def build_header(types: MessageTypes, *, stamp: float | int, frame_id: str) -> Any:
    """A ``std_msgs/Header``; ``stamp`` in seconds (float) or nanoseconds (int)."""
    sec, nanosec = stamp_to_parts(stamp)
    return types.Header(stamp=types.Time(sec=sec, nanosec=nanosec), frame_id=str(frame_id))


def build_classification(types: MessageTypes, *, stamp: float | int, frame_id: str,
                         top: Sequence[tuple[str, float]]) -> Any:
    """A ``vision_msgs/Classification`` from ``top``: ``(label, score)`` pairs, best first."""
    results = [types.ObjectHypothesis(class_id=str(label), score=float(score))
               for label, score in top]
    return types.Classification(header=build_header(types, stamp=stamp, frame_id=frame_id),
                                results=results)


def parse_classification(msg: Any) -> tuple[tuple[int, int], str, list[tuple[str, float]]]:
    """``vision_msgs/Classification`` -> ``((sec, nanosec), frame_id, [(label, score), ...])``."""
    header = msg.header
    top = [(str(h.class_id), float(h.score)) for h in msg.results]
    return (int(header.stamp.sec), int(header.stamp.nanosec)), str(header.frame_id), top


def build_label_info(types: MessageTypes, *, labels: Sequence[str], threshold: float,
                     stamp: float | int = 0, frame_id: str = '') -> Any:
    """A ``vision_msgs/LabelInfo``: output index -> label name, and the active threshold."""
    if len(labels) > 65536:
        raise ValueError(f'LabelInfo class ids are uint16; {len(labels)} labels do not fit')
    class_map = [types.VisionClass(class_id=index, class_name=str(name))
                 for index, name in enumerate(labels)]
    return types.LabelInfo(header=build_header(types, stamp=stamp, frame_id=frame_id),
                           class_map=class_map, threshold=float(threshold))


def parse_label_info(msg: Any) -> tuple[list[str], float]:
    """``vision_msgs/LabelInfo`` -> ``(labels in class_id order, threshold)``."""
    pairs = sorted((int(c.class_id), str(c.class_name)) for c in msg.class_map)
    return [name for _, name in pairs], float(msg.threshold)


def build_diagnostic_array(types: MessageTypes, *, stamp: float | int, name: str,
                           hardware_id: str, level: int, message: str,
                           values: Mapping[str, object]) -> Any:
    """A ``diagnostic_msgs/DiagnosticArray`` holding one status (level 0 OK .. 3 STALE)."""
    if level not in DIAGNOSTIC_LEVELS.values():
        raise ValueError(f'diagnostic level must be one of {DIAGNOSTIC_LEVELS}, got {level}')
    key_values = [types.KeyValue(key=str(key), value=str(value)) for key, value in values.items()]
    status = types.DiagnosticStatus(level=types.level(level), name=name, message=message,
                                    hardware_id=hardware_id, values=key_values)
    return types.DiagnosticArray(header=build_header(types, stamp=stamp, frame_id=''),
                                 status=[status])


def build_image(types: MessageTypes, *, frame_rgb: np.ndarray, stamp: float | int,
                frame_id: str) -> Any:
    """``uint8`` RGB ``[H, W, 3]`` -> ``sensor_msgs/Image`` in ``rgb8``."""
    if frame_rgb.ndim != 3 or frame_rgb.shape[2] != 3 or frame_rgb.dtype != np.uint8:
        raise ValueError(f'expected a uint8 RGB frame [H, W, 3], got '
                         f'{frame_rgb.dtype} {frame_rgb.shape}')
    frame = np.ascontiguousarray(frame_rgb)
    height, width = frame.shape[:2]
    return types.Image(header=build_header(types, stamp=stamp, frame_id=frame_id),
                       height=int(height), width=int(width), encoding='rgb8', is_bigendian=0,
                       step=int(width * 3), data=types.byte_array(frame.tobytes()))

# Copyright 2026 action_recognition maintainers
#
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#
#     http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS,
# WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and
# limitations under the License.
"""``action_recognition_node``: camera images in, recognised actions out.

A thin ROS 2 shell over :class:`~action_recognition.inference.node_core.NodeCore` (the same
runtime as ``action-recognition run``):

- subscribes to ``image`` (``sensor_msgs/msg/Image``) or, with ``image_transport: compressed``,
  to ``image/compressed`` (``sensor_msgs/msg/CompressedImage``), with the QoS from parameters
  (best effort, depth 2 by default, like the sensor-data profile); the callback only converts the
  image and pushes it into the clip buffer;
- inference runs on the core's worker thread on the latest clip only;
- publishes ``~/actions`` (``vision_msgs/msg/Classification``), ``~/label_info``
  (``vision_msgs/msg/LabelInfo``, transient local), ``/diagnostics``
  (``diagnostic_msgs/msg/DiagnosticArray``) and, only while someone subscribes,
  ``~/debug_image`` (``sensor_msgs/msg/Image``, the latest frame with the labels drawn).

Run it with ``ros2 run action_recognition action_recognition_node --ros-args -r
image:=/camera/image_raw --params-file config/action_recognition.yaml`` or with
``ros2 launch action_recognition action_recognition.launch.py``.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import FloatingPointRange
from rcl_interfaces.msg import IntegerRange
from rcl_interfaces.msg import ParameterDescriptor
from rcl_interfaces.msg import SetParametersResult
import rclpy
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.executors import ExternalShutdownException
from rclpy.logging import get_logger
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy
from rclpy.qos import HistoryPolicy
from rclpy.qos import QoSProfile
from rclpy.qos import ReliabilityPolicy
from sensor_msgs.msg import CompressedImage
from sensor_msgs.msg import Image
from vision_msgs.msg import Classification
from vision_msgs.msg import LabelInfo

from action_recognition.inference.backends import ModelLoadError
from action_recognition.inference.node_core import InferenceWorker
from action_recognition.inference.node_core import NodeCore
from action_recognition.inference.node_core import NodeParameters
from action_recognition.inference.node_core import NodeResult
from action_recognition.inference.node_core import ParameterDefinition
from action_recognition.inference.node_core import ParameterError
from action_recognition.inference.node_core import PARAMETERS
from action_recognition.inference.node_core import parse_parameters
from action_recognition.ros.messages import build_classification
from action_recognition.ros.messages import build_diagnostic_array
from action_recognition.ros.messages import build_image
from action_recognition.ros.messages import build_label_info
from action_recognition.ros.messages import MessageTypes
from action_recognition.ros.messages import ros_message_types

__all__ = ['ActionRecognitionNode', 'main', 'descriptor_for']

NODE_NAME = 'action_recognition_node'


def descriptor_for(definition: ParameterDefinition) -> ParameterDescriptor:
    """The ``ParameterDescriptor`` (description, range or choices, read-only) of a parameter."""
    constraints = ''
    if definition.choices:
        constraints = 'one of: ' + ', '.join(definition.choices)
    elif definition.applies == 'reload':
        constraints = 'a change reloads the model on the inference worker'
    descriptor = ParameterDescriptor(
        description=definition.description, additional_constraints=constraints,
        read_only=definition.applies == 'startup')
    if definition.minimum is not None and definition.maximum is not None:
        if definition.type is int:
            descriptor.integer_range = [IntegerRange(
                from_value=int(definition.minimum), to_value=int(definition.maximum), step=0)]
        elif definition.type is float:
            descriptor.floating_point_range = [FloatingPointRange(
                from_value=float(definition.minimum), to_value=float(definition.maximum),
                step=0.0)]
    return descriptor


class _RosLogHandler(logging.Handler):
    """Forwards the runtime's Python log records to the node's rclpy logger."""

    def __init__(self, node: Node) -> None:
        super().__init__()
        self._logger = node.get_logger()

    def emit(self, record: logging.LogRecord) -> None:
        message = self.format(record)
        if record.levelno >= logging.ERROR:
            self._logger.error(message)
        elif record.levelno >= logging.WARNING:
            self._logger.warning(message)
        elif record.levelno >= logging.INFO:
            self._logger.info(message)
        else:
            self._logger.debug(message)


class ActionRecognitionNode(Node):
    """Camera images in, ``vision_msgs/Classification`` out; see the module docstring."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(NODE_NAME, **kwargs)
        self._log_handler = _RosLogHandler(self)
        runtime_logger = logging.getLogger('action_recognition')
        self._saved_logging = (runtime_logger.level, runtime_logger.propagate)
        runtime_logger.addHandler(self._log_handler)
        runtime_logger.setLevel(logging.INFO)
        runtime_logger.propagate = False

        values = {d.name: self.declare_parameter(d.name, d.default, descriptor_for(d)).value
                  for d in PARAMETERS}
        try:
            params = parse_parameters(values)  # ParameterError: start-up fails with the reasons
            self.core = NodeCore(params, logger=runtime_logger.getChild('node'))  # ModelLoadError
        except BaseException:
            self._restore_logging()
            raise
        self.types: MessageTypes = ros_message_types()
        self._label_state: tuple[tuple[str, ...], float] | None = None
        self._reloads_seen = 0

        self.actions_pub = self.create_publisher(Classification, '~/actions', 10)
        latched = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL,
                             reliability=ReliabilityPolicy.RELIABLE)
        self.label_info_pub = self.create_publisher(LabelInfo, '~/label_info', latched)
        self.diagnostics_pub = self.create_publisher(DiagnosticArray, '/diagnostics', 10)
        self.debug_pub = self.create_publisher(Image, '~/debug_image', 1)

        image_qos = self._image_qos(params)
        self._callback_group = MutuallyExclusiveCallbackGroup()
        if params.image_transport == 'compressed':
            self.image_sub = self.create_subscription(
                CompressedImage, 'image/compressed', self._on_compressed, image_qos,
                callback_group=self._callback_group)
        else:
            self.image_sub = self.create_subscription(
                Image, 'image', self._on_image, image_qos, callback_group=self._callback_group)
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self.diagnostics_timer = self.create_timer(params.diagnostics_period_s,
                                                   self._on_diagnostics)
        self._publish_label_info()
        self.worker = InferenceWorker(self.core, self._publish_result)
        self.worker.start()
        self.get_logger().info(
            f'listening on {self.image_sub.topic_name} ({params.image_transport}, '
            f'{params.qos_reliability}, depth {params.qos_depth}); publishing '
            f'{self.actions_pub.topic_name}')

    @staticmethod
    def _image_qos(params: NodeParameters) -> QoSProfile:
        reliability = ReliabilityPolicy.BEST_EFFORT if params.qos_reliability == 'best_effort' \
            else ReliabilityPolicy.RELIABLE
        return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=params.qos_depth,
                          reliability=reliability, durability=DurabilityPolicy.VOLATILE)

    # -- callbacks ----------------------------------------------------------------------------

    def _on_image(self, msg: Image) -> None:
        self.core.debug_enabled = self.debug_pub.get_subscription_count() > 0
        self.core.on_image_msg(msg)

    def _on_compressed(self, msg: CompressedImage) -> None:
        self.core.debug_enabled = self.debug_pub.get_subscription_count() > 0
        self.core.on_compressed_msg(msg)

    def _on_set_parameters(self, parameters: list[Parameter]) -> SetParametersResult:
        changes = {parameter.name: parameter.value for parameter in parameters}
        successful, reason = self.core.set_parameters(changes)
        if successful:
            self._publish_label_info()
        else:
            self.get_logger().warning(f'parameter change refused: {reason}')
        return SetParametersResult(successful=successful, reason=reason)

    def _on_diagnostics(self) -> None:
        report = self.core.diagnostics()
        msg = build_diagnostic_array(
            self.types, stamp=self.get_clock().now().nanoseconds,
            name=f'{self.get_fully_qualified_name()}: action recognition',
            hardware_id=report.values.get('device', ''), level=report.level,
            message=report.message, values=report.values)
        self.diagnostics_pub.publish(msg)
        if self.core.reloads != self._reloads_seen:
            self._publish_label_info()

    # -- outputs (worker thread) --------------------------------------------------------------

    def _publish_label_info(self) -> None:
        self._reloads_seen = self.core.reloads
        state = (self.core.labels, self.core.params.score_threshold)
        if state == self._label_state:
            return
        self._label_state = state
        msg = build_label_info(self.types, labels=state[0], threshold=state[1],
                               stamp=self.get_clock().now().nanoseconds)
        self.label_info_pub.publish(msg)

    def _publish_result(self, result: NodeResult) -> None:
        record = result.record
        self.actions_pub.publish(build_classification(
            self.types, stamp=record.stamp_ns, frame_id=record.frame_id, top=record.top))
        if self.core.reloads != self._reloads_seen:
            self._publish_label_info()
        if self.debug_pub.get_subscription_count() > 0:
            frame = self.core.debug_image(result)
            if frame is not None:
                self.debug_pub.publish(build_image(
                    self.types, frame_rgb=frame, stamp=record.stamp_ns,
                    frame_id=record.frame_id))

    def destroy_node(self) -> None:
        self.worker.stop()
        self._restore_logging()
        super().destroy_node()

    def _restore_logging(self) -> None:
        runtime_logger = logging.getLogger('action_recognition')
        runtime_logger.removeHandler(self._log_handler)
        runtime_logger.setLevel(self._saved_logging[0])
        runtime_logger.propagate = self._saved_logging[1]


def main(args: list[str] | None = None) -> None:
    rclpy.init(args=args)
    node: ActionRecognitionNode | None = None
    try:
        node = ActionRecognitionNode()
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except (ModelLoadError, ParameterError) as error:
        get_logger(NODE_NAME).fatal(f'cannot start: {error}')
        sys.exit(1)
    finally:
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()


if __name__ == '__main__':
    main()

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
"""``action_recognition_node``: camera images in, recognised actions out; a managed node.

A thin ROS 2 shell over :class:`~action_recognition.node.core.NodeCore` (the same
runtime as ``action-recognition run``), offered as a lifecycle (managed) node:

- ``configure`` reads the parameters, loads the model and checks it (a dummy clip), creates the
  publishers and the diagnostics timer;
- ``activate`` subscribes to ``image`` (``sensor_msgs/msg/Image``) or, with ``image_transport:
  compressed``, to ``image/compressed``, starts the inference worker and enables
  ``~/actions`` (``vision_msgs/msg/Classification``), ``~/label_info`` (``LabelInfo``,
  transient local) and ``~/debug_image`` (only built while someone subscribes);
- ``deactivate`` drops the subscription, stops inference and frees accelerator memory (a model
  on a GPU is closed and reloaded on activation; a CPU model stays loaded);
- ``cleanup``/``shutdown`` release everything.

With ``autostart`` (default true) the node configures and activates itself at start-up, so one
``ros2 run``/``ros2 launch`` brings it up as before; a start-up failure (missing, corrupt or
incompatible model, invalid parameter) then ends the process with exit code 1 and one FATAL
line. ``/diagnostics`` (``diagnostic_msgs/msg/DiagnosticArray``) is published while configured.

Run it with ``ros2 run action_recognition action_recognition_node --ros-args -r
image:=/camera/image_raw --params-file config/action_recognition.yaml`` or with
``ros2 launch action_recognition action_recognition.launch.py``.
"""

from __future__ import annotations

import logging
import sys
import threading
from typing import Any

from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import FloatingPointRange
from rcl_interfaces.msg import IntegerRange
from rcl_interfaces.msg import ParameterDescriptor
from rcl_interfaces.msg import SetParametersResult
import rclpy
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.exceptions import InvalidParameterTypeException
from rclpy.exceptions import InvalidParameterValueException
from rclpy.exceptions import ParameterException
from rclpy.executors import ExternalShutdownException
from rclpy.lifecycle import LifecycleNode
from rclpy.lifecycle import LifecycleState
from rclpy.lifecycle import TransitionCallbackReturn
from rclpy.logging import get_logger
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy
from rclpy.qos import HistoryPolicy
from rclpy.qos import QoSProfile
from rclpy.qos import ReliabilityPolicy
from sensor_msgs.msg import CompressedImage
from sensor_msgs.msg import Image
from vision_msgs.msg import Classification
from vision_msgs.msg import LabelInfo

from action_recognition.node import DiagnosticsReport
from action_recognition.node import InferenceWorker
from action_recognition.node import NodeCore
from action_recognition.node import NodeParameters
from action_recognition.node import OK
from action_recognition.node import ParameterDefinition
from action_recognition.node import ParameterError
from action_recognition.node import PARAMETERS
from action_recognition.node import ParameterValue
from action_recognition.node import parse_parameters
from action_recognition.ros.messages import build_classification
from action_recognition.ros.messages import build_diagnostic_array
from action_recognition.ros.messages import build_image
from action_recognition.ros.messages import build_label_info
from action_recognition.ros.messages import MessageTypes
from action_recognition.ros.messages import ros_message_types
from action_recognition.runtime.protocol import ModelLoadError
from action_recognition.runtime.recognizer import Recognition

__all__ = ['ActionRecognitionNode', 'main', 'descriptor_for']

NODE_NAME = 'action_recognition_node'
SUCCESS = TransitionCallbackReturn.SUCCESS
FAILURE = TransitionCallbackReturn.FAILURE


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

    def __init__(self, node: LifecycleNode) -> None:
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


class ActionRecognitionNode(LifecycleNode):
    """Camera images in, ``vision_msgs/Classification`` out; see the module docstring."""

    def __init__(self, **kwargs: Any) -> None:
        # Everything destroy_node() touches exists before anything can fail.
        self.core: NodeCore | None = None
        self.worker: InferenceWorker | None = None
        self.image_sub: Any = None
        self.diagnostics_timer: Any = None
        self.actions_pub: Any = None
        self.label_info_pub: Any = None
        self.debug_pub: Any = None
        self.diagnostics_pub: Any = None
        self.startup_error: str | None = None
        self._active = False
        self._autostarting = False
        self._label_state: tuple[tuple[str, ...], float] | None = None
        self._reloads_seen = 0
        self._reverts: dict[str, ParameterValue] = {}
        self._reverts_lock = threading.Lock()
        self._log_handler: _RosLogHandler | None = None
        super().__init__(NODE_NAME, **kwargs)
        self._log_handler = _RosLogHandler(self)
        runtime_logger = logging.getLogger('action_recognition')
        self._saved_logging = (runtime_logger.level, runtime_logger.propagate)
        runtime_logger.addHandler(self._log_handler)
        runtime_logger.setLevel(logging.INFO)
        runtime_logger.propagate = False
        self.types: MessageTypes = ros_message_types()
        # rclpy refuses an override of the wrong type or out of range here
        # (InvalidParameterTypeException / InvalidParameterValueException).
        self.autostart = bool(self.declare_parameter(
            'autostart', True, ParameterDescriptor(
                description='Configure and activate at start-up (false: wait for lifecycle '
                            'transitions, e.g. from a lifecycle manager).',
                read_only=True)).value)
        for definition in PARAMETERS:
            self.declare_parameter(definition.name, definition.default,
                                   descriptor_for(definition))
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self._revert_guard = self.create_guard_condition(self._apply_reverts)
        self._callback_group = MutuallyExclusiveCallbackGroup()

    # -- lifecycle transitions ----------------------------------------------------------------

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        values = {d.name: self.get_parameter(d.name).value for d in PARAMETERS}
        try:
            params = parse_parameters(values)  # ParameterError: every refused value
            core = NodeCore(params, logger=logging.getLogger('action_recognition.node'))
        except (ParameterError, ModelLoadError) as error:
            self.startup_error = str(error)
            if not self._autostarting:  # with autostart, main() reports it once, as FATAL
                self.get_logger().error(f'configure failed: {error}')
            return FAILURE
        core.on_revert = self._schedule_revert
        self.core = core
        self.startup_error = None
        self.actions_pub = self.create_lifecycle_publisher(Classification, '~/actions', 10)
        latched = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL,
                             reliability=ReliabilityPolicy.RELIABLE)
        self.label_info_pub = self.create_lifecycle_publisher(LabelInfo, '~/label_info', latched)
        self.debug_pub = self.create_lifecycle_publisher(Image, '~/debug_image', 1)
        self.diagnostics_pub = self.create_publisher(DiagnosticArray, '/diagnostics', 10)
        self.diagnostics_timer = self.create_timer(params.diagnostics_period_s,
                                                   self._on_diagnostics)
        return SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        core = self.core
        if core is None:
            return FAILURE
        try:
            core.resume()
        except ModelLoadError as error:
            self.startup_error = str(error)
            self.get_logger().error(f'activate failed: {error}')
            return FAILURE
        params = core.params
        qos = self._image_qos(params)
        if params.image_transport == 'compressed':
            self.image_sub = self.create_subscription(
                CompressedImage, 'image/compressed', self._on_compressed, qos,
                callback_group=self._callback_group)
        else:
            self.image_sub = self.create_subscription(
                Image, 'image', self._on_image, qos, callback_group=self._callback_group)
        result = super().on_activate(state)  # enables the lifecycle publishers
        self._active = True
        self.worker = InferenceWorker(core, self._publish_result)
        self.worker.start()
        self._label_state = None
        self._publish_label_info()
        self.get_logger().info(
            f'active: listening on {self.image_sub.topic_name} ({params.image_transport}, '
            f'{params.qos_reliability}, depth {params.qos_depth}); publishing '
            f'{self.actions_pub.topic_name}')
        return result

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_processing()
        if self.core is not None:
            self.core.release_accelerator()
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        return SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        return SUCCESS

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        return SUCCESS

    def _stop_processing(self) -> None:
        self._active = False
        if self.image_sub is not None:
            self.destroy_subscription(self.image_sub)
            self.image_sub = None
        if self.worker is not None:
            self.worker.stop()
            self.worker = None

    def _release(self) -> None:
        self._stop_processing()
        if self.diagnostics_timer is not None:
            self.destroy_timer(self.diagnostics_timer)
            self.diagnostics_timer = None
        for name in ('actions_pub', 'label_info_pub', 'debug_pub'):
            publisher = getattr(self, name)
            if publisher is not None:
                self.destroy_lifecycle_publisher(publisher)
                setattr(self, name, None)
        if self.diagnostics_pub is not None:
            self.destroy_publisher(self.diagnostics_pub)
            self.diagnostics_pub = None
        if self.core is not None:
            self.core.close()
            self.core = None

    @staticmethod
    def _image_qos(params: NodeParameters) -> QoSProfile:
        reliability = ReliabilityPolicy.BEST_EFFORT if params.qos_reliability == 'best_effort' \
            else ReliabilityPolicy.RELIABLE
        return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=params.qos_depth,
                          reliability=reliability, durability=DurabilityPolicy.VOLATILE)

    # -- callbacks (executor thread) ------------------------------------------------------------

    def _on_image(self, msg: Image) -> None:
        core = self.core
        if core is not None and self._active:
            core.debug_enabled = self.debug_pub.get_subscription_count() > 0
            core.on_image_msg(msg)

    def _on_compressed(self, msg: CompressedImage) -> None:
        core = self.core
        if core is not None and self._active:
            core.debug_enabled = self.debug_pub.get_subscription_count() > 0
            core.on_compressed_msg(msg)

    def _on_set_parameters(self, parameters: list[Parameter]) -> SetParametersResult:
        changes = {parameter.name: parameter.value for parameter in parameters
                   if parameter.name != 'autostart'}
        core = self.core
        if core is None:  # not configured: check the values, configure reads them
            try:
                values = {d.name: self.get_parameter(d.name).value for d in PARAMETERS}
                parse_parameters({**values, **changes})
            except ParameterError as error:
                return SetParametersResult(successful=False, reason=str(error))
            return SetParametersResult(successful=True, reason='')
        successful, reason = core.set_parameters(changes)
        if successful:
            self._publish_label_info()
        else:
            self.get_logger().warning(f'parameter change refused: {reason}')
        return SetParametersResult(successful=successful, reason=reason)

    def _schedule_revert(self, reverted: dict[str, ParameterValue]) -> None:
        """After a failed reload (worker thread): set the parameters back on the executor."""
        with self._reverts_lock:
            self._reverts.update(reverted)
        self._revert_guard.trigger()

    def _apply_reverts(self) -> None:
        with self._reverts_lock:
            reverted, self._reverts = self._reverts, {}
        if reverted:
            self.set_parameters([Parameter(name, value=value)
                                 for name, value in reverted.items()])
            shown = ', '.join(f'{name}={value!r}' for name, value in reverted.items())
            self.get_logger().warning(f'the model reload failed; parameters set back to the '
                                      f'model that runs: {shown}')

    def _on_diagnostics(self) -> None:
        core = self.core
        if core is None or self.diagnostics_pub is None:
            return
        report = core.diagnostics()
        report.values['lifecycle_state'] = 'active' if self._active else 'inactive'
        if not self._active:
            report = DiagnosticsReport(OK, 'inactive (lifecycle): not processing images',
                                       report.values)
        msg = build_diagnostic_array(
            self.types, stamp=self.get_clock().now().nanoseconds,
            name=f'{self.get_fully_qualified_name()}: action recognition',
            hardware_id=report.values.get('device', ''), level=report.level,
            message=report.message, values=report.values)
        self.diagnostics_pub.publish(msg)
        if core.reloads != self._reloads_seen:
            self._publish_label_info()

    # -- outputs --------------------------------------------------------------------------------

    def _publish_label_info(self) -> None:
        core = self.core
        if core is None or self.label_info_pub is None or not self._active:
            return
        self._reloads_seen = core.reloads
        state = (core.labels, core.params.score_threshold)
        if state == self._label_state:
            return
        self._label_state = state
        msg = build_label_info(self.types, labels=state[0], threshold=state[1],
                               stamp=self.get_clock().now().nanoseconds)
        self.label_info_pub.publish(msg)

    def _publish_result(self, result: Recognition) -> None:
        """The worker thread's output: ``~/actions`` and, with subscribers, ``~/debug_image``."""
        core = self.core
        actions_pub, debug_pub = self.actions_pub, self.debug_pub
        if core is None or actions_pub is None or debug_pub is None:
            return
        actions_pub.publish(build_classification(
            self.types, stamp=result.stamp_ns, frame_id=result.frame_id, top=result.top))
        if core.reloads != self._reloads_seen:
            self._publish_label_info()
        if debug_pub.get_subscription_count() > 0:
            frame = core.debug_image(result)
            if frame is not None:
                debug_pub.publish(build_image(
                    self.types, frame_rgb=frame, stamp=result.stamp_ns,
                    frame_id=result.frame_id))

    # -- start-up and teardown ------------------------------------------------------------------

    def start(self) -> bool:
        """``autostart``: configure, then activate; ``False`` (reason in
        :attr:`startup_error`) when a transition fails."""
        self._autostarting = True
        try:
            if self.trigger_configure() != SUCCESS:
                self.startup_error = self.startup_error or 'configure failed'
                return False
            if self.trigger_activate() != SUCCESS:
                self.startup_error = self.startup_error or 'activate failed'
                return False
            return True
        finally:
            self._autostarting = False

    def destroy_node(self) -> None:
        self._release()
        self._restore_logging()
        super().destroy_node()

    def _restore_logging(self) -> None:
        if self._log_handler is None:
            return
        runtime_logger = logging.getLogger('action_recognition')
        runtime_logger.removeHandler(self._log_handler)
        runtime_logger.setLevel(self._saved_logging[0])
        runtime_logger.propagate = self._saved_logging[1]
        self._log_handler = None


def main(args: list[str] | None = None) -> None:
    """``ros2 run action_recognition action_recognition_node``: exit code 0 on SIGINT/SIGTERM,
    1 (one FATAL line, no traceback) when the node cannot start."""
    rclpy.init(args=args)
    node: ActionRecognitionNode | None = None
    failure: str | None = None
    try:
        node = ActionRecognitionNode()
        if node.autostart and not node.start():
            failure = node.startup_error
        else:
            rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except (InvalidParameterTypeException, InvalidParameterValueException,
            ParameterException) as error:
        failure = f'invalid parameter: {" ".join(str(error).split())}'
    except (ModelLoadError, ParameterError) as error:
        failure = str(error)
    except RuntimeError:
        # rclpy's deferred signal handler can shut the context down while the executor builds
        # its wait set: RCLError 'the given context is not valid' instead of
        # ExternalShutdownException (ros2/rclpy#1166, ros2/ros2cli#854). Seen in CI on SIGTERM.
        if rclpy.ok():
            raise
    finally:
        if node is not None:
            node.destroy_node()
        if failure is not None:
            get_logger(NODE_NAME).fatal(f'cannot start: {failure}')
        rclpy.try_shutdown()
    if failure is not None:
        sys.exit(1)


if __name__ == '__main__':
    main()

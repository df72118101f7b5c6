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
from rclpy.exceptions import InvalidParameterTypeException
from rclpy.exceptions import InvalidParameterValueException
from rclpy.exceptions import ParameterException
from rclpy.executors import ExternalShutdownException
from rclpy.executors import SingleThreadedExecutor
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

from action_recognition.io.messages import build_classification
from action_recognition.io.messages import build_diagnostic_array
from action_recognition.io.messages import build_image
from action_recognition.io.messages import build_label_info
from action_recognition.io.messages import MessageTypes
from action_recognition.node.core import NodeCore
from action_recognition.node.diagnostics import DiagnosticsReport
from action_recognition.node.diagnostics import OK
from action_recognition.node.parameters import HALF
from action_recognition.node.parameters import NodeSettings
from action_recognition.node.parameters import ParameterError
from action_recognition.node.parameters import PARAMETERS
from action_recognition.node.parameters import parse_parameters
from action_recognition.node.worker import InferenceWorker
from action_recognition.ros.messages import ros_message_types
from action_recognition.runtime.protocol import ModelLoadError
from action_recognition.runtime.results import Recognition
from action_recognition.settings import SettingInfo
from action_recognition.settings import SettingValue

__all__ = ['ActionRecognitionNode', 'main', 'descriptor_for']

NODE_NAME = 'action_recognition_node'
SUCCESS = TransitionCallbackReturn.SUCCESS
FAILURE = TransitionCallbackReturn.FAILURE


def descriptor_for(definition: SettingInfo) -> ParameterDescriptor:
    """The ``ParameterDescriptor`` (description, range or choices, read-only) of a parameter."""
    constraints = ''
    if definition.choices:
        constraints = 'one of: ' + ', '.join(definition.choices)
    elif definition.pattern_hint:
        constraints = definition.pattern_hint
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
    """Camera images in, ``vision_msgs/Classification`` out; see the module docstring.

    Threads: the executor's thread (``main`` spins one ``SingleThreadedExecutor``) runs every
    ROS callback: the image subscription (:meth:`NodeCore.on_image_msg
    <action_recognition.node.core.NodeCore.on_image_msg>`: decode, prepare into the ring),
    parameter changes, the diagnostics timer, the lifecycle transitions and the guard condition
    that sets parameters back. The inference worker's thread
    (:class:`~action_recognition.node.worker.InferenceWorker`) runs the windows, model reloads
    and :meth:`_publish_result`. What both threads touch here is guarded by ``_lock``: the
    parameters to set back and the state of ``~/label_info``. The worker is stopped (joined)
    before the publishers it uses are destroyed.
    """

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
        self._lock = threading.Lock()
        self._label_state: tuple[tuple[str, ...], float] | None = None
        self._parameter_sync: dict[str, SettingValue] = {}
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
        for definition in (*PARAMETERS, HALF):
            self.declare_parameter(definition.name, definition.default,
                                   descriptor_for(definition))
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self._sync_guard = self.create_guard_condition(self._apply_parameter_sync)

    def _values(self) -> dict[str, Any]:
        return {d.name: self.get_parameter(d.name).value for d in (*PARAMETERS, HALF)}

    # -- lifecycle transitions ----------------------------------------------------------------

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        values = self._values()
        try:
            settings = parse_parameters(values)  # ParameterError: every refused value
            core = NodeCore(settings, logger=logging.getLogger('action_recognition.node'),
                            on_revert=self._on_revert, on_labels=self._publish_label_info)
        except (ParameterError, ModelLoadError) as error:
            self.startup_error = str(error)
            if not self._autostarting:  # with autostart, main() reports it once, as FATAL
                self.get_logger().error(f'configure failed: {error}')
            return FAILURE
        if values[HALF.name]:
            self._schedule_parameter_sync({'precision': settings.backend.precision,
                                           HALF.name: False})
        self.core = core
        self.startup_error = None
        self.actions_pub = self.create_lifecycle_publisher(Classification, '~/actions', 10)
        latched = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL,
                             reliability=ReliabilityPolicy.RELIABLE)
        self.label_info_pub = self.create_lifecycle_publisher(LabelInfo, '~/label_info', latched)
        self.debug_pub = self.create_lifecycle_publisher(Image, '~/debug_image', 1)
        self.diagnostics_pub = self.create_publisher(DiagnosticArray, '/diagnostics', 10)
        self.diagnostics_timer = self.create_timer(settings.node.diagnostics_period_s,
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
        subscription = core.settings.subscription
        qos = self._image_qos(core.settings)
        if subscription.image_transport == 'compressed':
            self.image_sub = self.create_subscription(CompressedImage, 'image/compressed',
                                                      self._on_compressed, qos)
        else:
            self.image_sub = self.create_subscription(Image, 'image', self._on_image, qos)
        result = super().on_activate(state)  # enables the lifecycle publishers
        self._active = True
        self.worker = InferenceWorker(core, self._publish_result)
        self.worker.start()
        with self._lock:
            self._label_state = None
        self._publish_label_info(core.labels, core.settings.stream.score_threshold)
        self.get_logger().info(
            f'active: listening on {self.image_sub.topic_name} '
            f'({subscription.image_transport}, {subscription.qos_reliability}, depth '
            f'{subscription.qos_depth}); publishing {self.actions_pub.topic_name}')
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
            self.worker.stop()  # joined: nothing publishes after this
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
    def _image_qos(settings: NodeSettings) -> QoSProfile:
        subscription = settings.subscription
        reliability = ReliabilityPolicy.BEST_EFFORT \
            if subscription.qos_reliability == 'best_effort' else ReliabilityPolicy.RELIABLE
        return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=subscription.qos_depth,
                          reliability=reliability, durability=DurabilityPolicy.VOLATILE)

    # -- callbacks (executor thread) ------------------------------------------------------------

    def _debug_wanted(self) -> bool:
        publisher = self.debug_pub
        return publisher is not None and publisher.get_subscription_count() > 0

    def _on_image(self, msg: Image) -> None:
        core = self.core
        if core is not None and self._active:
            core.on_image_msg(msg, debug=self._debug_wanted())

    def _on_compressed(self, msg: CompressedImage) -> None:
        core = self.core
        if core is not None and self._active:
            core.on_compressed_msg(msg, debug=self._debug_wanted())

    def _on_set_parameters(self, parameters: list[Parameter]) -> SetParametersResult:
        changes = {parameter.name: parameter.value for parameter in parameters
                   if parameter.name != 'autostart'}
        core = self.core
        if core is None:  # not configured: check the values, configure reads them
            try:
                parse_parameters({**self._values(), **changes})
            except ParameterError as error:
                return SetParametersResult(successful=False, reason=str(error))
            return SetParametersResult(successful=True, reason='')
        successful, reason = core.set_parameters(changes)
        if not successful:
            self.get_logger().warning(f'parameter change refused: {reason}')
        elif changes.get(HALF.name):  # the deprecated alias: precision says what runs
            self._schedule_parameter_sync({'precision': core.settings.backend.precision,
                                           HALF.name: False})
        return SetParametersResult(successful=successful, reason=reason)

    def _on_revert(self, reverted: dict[str, SettingValue]) -> None:
        """After a failed reload (worker thread): set the parameters back on the executor."""
        self._schedule_parameter_sync(reverted)

    def _schedule_parameter_sync(self, values: dict[str, SettingValue]) -> None:
        with self._lock:
            self._parameter_sync.update(values)
        self._sync_guard.trigger()

    def _apply_parameter_sync(self) -> None:
        with self._lock:
            values, self._parameter_sync = self._parameter_sync, {}
        if values:
            self.set_parameters([Parameter(name, value=value) for name, value in values.items()])
            shown = ', '.join(f'{name}={value!r}' for name, value in values.items())
            self.get_logger().warning(f'parameters set to what runs: {shown}')

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

    # -- outputs (either thread) ----------------------------------------------------------------

    def _publish_label_info(self, labels: tuple[str, ...], threshold: float) -> None:
        """``~/label_info`` when the labels or the threshold change (executor or worker)."""
        publisher = self.label_info_pub
        if publisher is None or not self._active:
            return
        with self._lock:
            if (labels, threshold) == self._label_state:
                return
            self._label_state = (labels, threshold)
        publisher.publish(build_label_info(self.types, labels=labels, threshold=threshold,
                                           stamp=self.get_clock().now().nanoseconds))

    def _publish_result(self, result: Recognition) -> None:
        """The worker thread's output: ``~/actions`` and, with subscribers, ``~/debug_image``."""
        core = self.core
        actions_pub, debug_pub = self.actions_pub, self.debug_pub
        if core is None or actions_pub is None or debug_pub is None:
            return
        actions_pub.publish(build_classification(
            self.types, stamp=result.stamp_ns, frame_id=result.frame_id, top=result.top))
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
            executor = SingleThreadedExecutor()  # every ROS callback on this thread
            executor.add_node(node)
            executor.spin()
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

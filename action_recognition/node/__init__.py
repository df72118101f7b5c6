"""The ROS-free node: parameters, the core (frames in, results out), the worker, diagnostics.

:mod:`action_recognition.ros.node` is the thin rclpy shell around it.
"""

from action_recognition.node.core import NodeCore
from action_recognition.node.diagnostics import DiagnosticsReport
from action_recognition.node.diagnostics import ERROR
from action_recognition.node.diagnostics import OK
from action_recognition.node.diagnostics import WARN
from action_recognition.node.parameters import NodeParameters
from action_recognition.node.parameters import ParameterDefinition
from action_recognition.node.parameters import ParameterError
from action_recognition.node.parameters import PARAMETERS
from action_recognition.node.parameters import ParameterValue
from action_recognition.node.parameters import parse_parameters
from action_recognition.node.parameters import validate_value
from action_recognition.node.worker import InferenceWorker

__all__ = [
    'NodeCore', 'InferenceWorker', 'NodeParameters', 'ParameterDefinition', 'ParameterError',
    'PARAMETERS', 'ParameterValue', 'parse_parameters', 'validate_value', 'DiagnosticsReport',
    'OK', 'WARN', 'ERROR',
]

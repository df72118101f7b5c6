"""The ROS-free node: its parameters, its core (one part per concern), the worker, diagnostics.

- :mod:`~action_recognition.node.parameters`: the parameters, declared once by group;
- :mod:`~action_recognition.node.core`: :class:`~action_recognition.node.core.NodeCore`, images
  in and recognitions out, made of the :mod:`~action_recognition.node.intake` (frames in),
  the :mod:`~action_recognition.node.slot` (the model), the :mod:`~action_recognition.node.
  scheduler` (when inference runs) and :mod:`~action_recognition.node.diagnostics`;
- :mod:`~action_recognition.node.worker`: the inference thread.

:mod:`action_recognition.ros.node` is the thin rclpy shell around it. Import from the modules.
"""

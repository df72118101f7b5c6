"""The ROS-free node: parameters, the core (frames in, results out), the worker, diagnostics.

:mod:`action_recognition.ros.node` is the thin rclpy shell around it.
"""

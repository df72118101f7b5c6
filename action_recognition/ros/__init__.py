"""The ROS 2 layer: the only part of the package that imports ROS (rclpy and message packages).

- :mod:`action_recognition.ros.node`: ``action_recognition_node``, a thin shell over the ROS-free
  :mod:`action_recognition.inference.node_core`.
- :mod:`action_recognition.ros.messages`: the ROS-free message builders of
  :mod:`action_recognition.inference.messages`, plus ``ros_message_types()`` (rclpy's classes).
"""

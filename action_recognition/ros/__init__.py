"""The ROS 2 layer: the only part of the package that imports ROS (rclpy and message packages).

- :mod:`action_recognition.ros.node`: ``action_recognition_node``, a thin lifecycle shell over
  the ROS-free :mod:`action_recognition.node`.
- :mod:`action_recognition.ros.messages`: ``ros_message_types()``, rclpy's classes for the
  ROS-free message builders of :mod:`action_recognition.io.messages`.
- :mod:`action_recognition.ros.bench`: the node's benchmark over DDS.
"""

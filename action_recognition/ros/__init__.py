"""The ROS 2 layer: the only part of the package that imports ROS (rclpy and message packages).

- :mod:`action_recognition.ros.node`: ``action_recognition_node``, a thin lifecycle shell over
  the ROS-free :mod:`action_recognition.node`.
- :mod:`action_recognition.ros.messages`: the ROS-free message builders of
  :mod:`action_recognition.runtime.messages`, plus ``ros_message_types()`` (rclpy's classes).
- :mod:`action_recognition.ros.bench`: the node's benchmark over DDS.
"""

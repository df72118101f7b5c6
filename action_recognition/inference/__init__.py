"""The inference runtime (no ROS): clip sampling, preprocessing, backends and the recogniser."""

"""The launch file on a ROS 2 installation: ``ros2 launch``'s way of starting the node.

Runs where ``launch`` and ``launch_ros`` are installed (a robot's ``colcon test`` after
``colcon build``; they are not on PyPI, so it is skipped here). It runs
``launch/action_recognition.launch.py`` through ``launch.LaunchService`` in a separate process,
with its launch arguments (params_file, image_topic, namespace, model_path), publishes camera
images and waits for ``~/actions`` and the latched ``~/label_info``, then stops it with SIGINT.

This is a plain pytest test: it does not need the launch_testing pytest plugin, which pytest 9
refuses at start-up (``PluginValidationError`` on its ``pytest_pycollect_makemodule(path,
parent)`` hook) and whose ``launch_test`` marker ``--strict-markers`` rejects; pyproject.toml
disables that plugin (``-p no:launch_testing``) so ``colcon test`` runs wherever it is
installed.
"""

from __future__ import annotations

from pathlib import Path
import signal
import subprocess
import sys
import textwrap
import time

from fixtures.ros_data import tiny_checkpoint
import numpy as np
import pytest
from ros_harness import Probe
from ros_harness import require_ros
from ros_harness import ros_process_environment
import yaml

require_ros()
pytest.importorskip('launch', reason='launch is not installed (not on PyPI; ROS 2 has it)')
pytest.importorskip('launch_ros', reason='launch_ros is not installed (ROS 2 has it)')

from rclpy.qos import DurabilityPolicy  # noqa: E402
from rclpy.qos import QoSProfile  # noqa: E402
from rclpy.qos import ReliabilityPolicy  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402
from vision_msgs.msg import Classification  # noqa: E402
from vision_msgs.msg import LabelInfo  # noqa: E402

from action_recognition.io.messages import build_image  # noqa: E402
from action_recognition.ros.messages import ros_message_types  # noqa: E402

LAUNCH_FILE = Path(__file__).resolve().parents[1] / 'launch' / 'action_recognition.launch.py'
IMAGE_TOPIC = '/test_camera/image_raw'
FRAME_ID = 'test_camera_optical'

RUNNER = textwrap.dedent("""
    import sys
    from launch import LaunchService
    from launch.actions import IncludeLaunchDescription
    from launch.launch_description_sources import PythonLaunchDescriptionSource
    service = LaunchService()
    arguments = dict(item.split(':=', 1) for item in sys.argv[2:])
    service.include_launch_description(IncludeLaunchDescription(
        PythonLaunchDescriptionSource(sys.argv[1]), launch_arguments=arguments.items()))
    sys.exit(service.run())
""")


def test_launch_file_brings_the_node_up(tmp_path):
    model = tiny_checkpoint(tmp_path / 'tiny.pt', num_frames=4)
    params = tmp_path / 'params.yaml'
    params.write_text(yaml.safe_dump({'/**': {'ros__parameters': {
        'hop': 1, 'score_threshold': 0.0, 'smoothing': 'none', 'threads': 1,
        'qos_reliability': 'reliable'}}}))
    with ros_process_environment(tmp_path / 'logs') as env:
        launch = subprocess.Popen(
            [sys.executable, '-c', RUNNER, str(LAUNCH_FILE), f'params_file:={params}',
             f'image_topic:={IMAGE_TOPIC}', 'namespace:=launched', f'model_path:={model}'],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        probe = Probe('action_recognition_launch_probe')
        try:
            node = '/launched/action_recognition_node'
            actions = probe.subscribe(Classification, f'{node}/actions', 10)
            latched = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL,
                                 reliability=ReliabilityPolicy.RELIABLE)
            infos = probe.subscribe(LabelInfo, f'{node}/label_info', latched)
            publisher = probe.node.create_publisher(Image, IMAGE_TOPIC, 10)
            types = ros_message_types()
            sent = set()
            deadline = time.monotonic() + 90.0
            index = 0
            while time.monotonic() < deadline and not (actions and infos):
                frame = np.full((48, 64, 3), (index * 9) % 255, dtype=np.uint8)
                stamp = 1_700_000_000_000_000_000 + index * 50_000_000
                publisher.publish(build_image(types, frame_rgb=frame, stamp=stamp,
                                              frame_id=FRAME_ID))
                sent.add(divmod(stamp, 1_000_000_000))
                index += 1
                time.sleep(0.05)
            assert actions, 'no vision_msgs/Classification on ~/actions within 90 s'
            assert infos, 'no LabelInfo on ~/label_info'
            msg = actions[0]
            assert msg.header.frame_id == FRAME_ID
            assert (msg.header.stamp.sec, msg.header.stamp.nanosec) in sent
            assert {h.class_id for h in msg.results} == {'wave', 'walk', 'idle'}
            assert [c.class_name for c in infos[0].class_map] == ['wave', 'walk', 'idle']
        finally:
            probe.close()
            launch.send_signal(signal.SIGINT)
            output, _ = launch.communicate(timeout=30)
        assert launch.returncode == 0, output
        assert 'Traceback' not in output, output

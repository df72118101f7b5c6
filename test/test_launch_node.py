"""launch_testing: start ``action_recognition_node``, publish camera images, wait for actions.

Runs where ROS 2 is installed (``colcon test`` or ``launch_test test/test_launch_node.py``);
skipped elsewhere. The model is a small real network made for the test.
"""

import tempfile
import time
import unittest

import pytest

rclpy = pytest.importorskip('rclpy')
pytest.importorskip('launch_testing')
pytest.importorskip('vision_msgs')

from pathlib import Path  # noqa: E402

import launch  # noqa: E402
import launch_ros.actions  # noqa: E402
import launch_testing  # noqa: E402
import launch_testing.actions  # noqa: E402
import launch_testing.asserts  # noqa: E402
from rclpy.qos import QoSDurabilityPolicy  # noqa: E402
from rclpy.qos import QoSProfile  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402
from vision_msgs.msg import Classification  # noqa: E402
from vision_msgs.msg import LabelInfo  # noqa: E402

from action_recognition.ros.messages import build_image  # noqa: E402
from action_recognition.ros.messages import ros_message_types  # noqa: E402

IMAGE_TOPIC = '/test_camera/image_raw'
FRAME_ID = 'test_camera_optical'


def _tiny_model(directory):
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    from fixtures.ros_data import tiny_checkpoint

    return tiny_checkpoint(Path(directory) / 'tiny.pt', num_frames=4)


@pytest.mark.launch_test
def generate_test_description():
    model = _tiny_model(tempfile.mkdtemp(prefix='action_recognition_test_'))
    node = launch_ros.actions.Node(
        package='action_recognition', executable='action_recognition_node',
        name='action_recognition_node',
        parameters=[{'model_path': str(model), 'hop': 1, 'score_threshold': 0.0,
                     'smoothing': 'none', 'qos_reliability': 'reliable'}],
        remappings=[('image', IMAGE_TOPIC)], output='screen')
    return launch.LaunchDescription([node, launch_testing.actions.ReadyToTest()]), {'node': node}


class TestActionsArePublished(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        rclpy.init()

    @classmethod
    def tearDownClass(cls):
        rclpy.shutdown()

    def setUp(self):
        self.probe = rclpy.create_node('action_recognition_probe')

    def tearDown(self):
        self.probe.destroy_node()

    def test_images_in_actions_out(self, proc_output):
        actions, label_infos, sent = [], [], []
        self.probe.create_subscription(Classification, '/action_recognition_node/actions',
                                       actions.append, 10)
        latched = QoSProfile(depth=1, durability=QoSDurabilityPolicy.TRANSIENT_LOCAL)
        self.probe.create_subscription(LabelInfo, '/action_recognition_node/label_info',
                                       label_infos.append, latched)
        publisher = self.probe.create_publisher(Image, IMAGE_TOPIC, 10)
        types = ros_message_types()
        import numpy as np

        deadline = time.monotonic() + 60.0
        index = 0
        while time.monotonic() < deadline and not (actions and label_infos):
            frame = np.full((48, 64, 3), (index * 9) % 255, dtype=np.uint8)
            stamp = 1_700_000_000_000_000_000 + index * 50_000_000
            publisher.publish(build_image(types, frame_rgb=frame, stamp=stamp,
                                          frame_id=FRAME_ID))
            sent.append(divmod(stamp, 1_000_000_000))
            index += 1
            rclpy.spin_once(self.probe, timeout_sec=0.05)
        self.assertTrue(actions, 'no vision_msgs/Classification on ~/actions within 60 s')
        self.assertTrue(label_infos, 'no LabelInfo on ~/label_info')
        msg = actions[0]
        self.assertEqual(msg.header.frame_id, FRAME_ID)
        self.assertIn((msg.header.stamp.sec, msg.header.stamp.nanosec), sent)
        self.assertEqual({h.class_id for h in msg.results}, {'wave', 'walk', 'idle'})
        self.assertEqual([c.class_name for c in label_infos[0].class_map],
                         ['wave', 'walk', 'idle'])


@launch_testing.post_shutdown_test()
class TestShutdown(unittest.TestCase):

    def test_exit_code(self, proc_info):
        launch_testing.asserts.assertExitCodes(proc_info)

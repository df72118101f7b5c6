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
"""Launch ``action_recognition_node`` with its parameters from a YAML file.

::

    ros2 launch action_recognition action_recognition.launch.py image_topic:=/camera/image_raw
    ros2 launch action_recognition action_recognition.launch.py \\
        params_file:=<prefix>/share/action_recognition/config/eco_lite_add_gpu.yaml \\
        model_path:=/models/eco_lite_add.onnx namespace:=robot1

Every parameter comes from ``params_file``; ``model_path``, ``backend``, ``device`` and
``precision`` override it when given (empty: keep the file's value). The node is a lifecycle
(managed) node; with ``autostart:=true`` (the default) it configures and activates itself, with
``autostart:=false`` it waits for a lifecycle manager (``ros2 lifecycle set
/action_recognition_node configure``).
"""

from __future__ import annotations

from launch import LaunchContext
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.actions import OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch.substitutions import PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

PACKAGE = 'action_recognition'
OVERRIDES = ('model_path', 'backend', 'device', 'precision')


def _node(context: LaunchContext) -> list[Node]:
    image_topic = LaunchConfiguration('image_topic').perform(context)
    overrides = {name: LaunchConfiguration(name).perform(context) for name in OVERRIDES}
    autostart = LaunchConfiguration('autostart').perform(context).strip().lower()
    if autostart not in ('true', 'false'):
        raise ValueError(f"autostart must be 'true' or 'false', got {autostart!r}")
    return [Node(
        package=PACKAGE,
        executable='action_recognition_node',
        name='action_recognition_node',
        namespace=LaunchConfiguration('namespace').perform(context),
        parameters=[LaunchConfiguration('params_file').perform(context),
                    {name: value for name, value in overrides.items() if value},
                    {'autostart': autostart == 'true'}],
        remappings=[
            # The node subscribes to `image` (raw) or `image/compressed` (image_transport:
            # compressed); both follow the camera's topic.
            ('image', image_topic),
            ('image/compressed', image_topic + '/compressed'),
        ],
        output='screen',
        emulate_tty=True,
    )]


def generate_launch_description() -> LaunchDescription:
    default_params = PathJoinSubstitution(
        [FindPackageShare(PACKAGE), 'config', 'action_recognition.yaml'])
    return LaunchDescription([
        DeclareLaunchArgument(
            'params_file', default_value=default_params,
            description='YAML file with the node parameters (config/action_recognition.yaml: '
                        'the shipped model on the CPU; eco_lite_add_gpu.yaml and '
                        'ct_net_r50_gpu.yaml: the paper models on a GPU)'),
        DeclareLaunchArgument(
            'image_topic', default_value='/camera/image_raw',
            description='camera topic (sensor_msgs/msg/Image); with image_transport: '
                        'compressed, <image_topic>/compressed is used'),
        DeclareLaunchArgument(
            'namespace', default_value='',
            description='namespace of the node (its topics become <namespace>/'
                        'action_recognition_node/actions, ...)'),
        DeclareLaunchArgument(
            'model_path', default_value='',
            description='model file (.onnx, .pt, or an OpenVINO IR .xml) overriding '
                        'params_file; empty: keep it'),
        DeclareLaunchArgument(
            'backend', default_value='',
            description='auto, torch, onnxruntime or openvino, overriding params_file; empty: '
                        'keep it'),
        DeclareLaunchArgument(
            'device', default_value='',
            description="'cpu', 'cuda[:N]', 'openvino:CPU', 'openvino:GPU[.N]' or "
                        "'openvino:NPU', overriding params_file; empty: keep it"),
        DeclareLaunchArgument(
            'precision', default_value='',
            description='fp32, fp16, bf16 or int8 (see the parameter), overriding params_file; '
                        'empty: keep it'),
        DeclareLaunchArgument(
            'autostart', default_value='true',
            description='true: configure and activate at start-up; false: wait for lifecycle '
                        'transitions (a lifecycle manager)'),
        OpaqueFunction(function=_node),
    ])

"""ament_python package that also installs with plain pip (``pip install -e .``)."""

from glob import glob
import os

from setuptools import find_packages
from setuptools import setup

package_name = 'action_recognition'


def _files(pattern: str) -> list[str]:
    return sorted(path for path in glob(pattern) if os.path.isfile(path))


def _requirements() -> list[str]:
    here = os.path.dirname(os.path.abspath(__file__))
    with open(os.path.join(here, 'requirements.txt'), encoding='utf-8') as handle:
        lines = [line.split('#', 1)[0].strip() for line in handle]
    return [line for line in lines if line]


setup(
    name=package_name,
    version='0.1.0',
    packages=find_packages(exclude=['test', 'test.*']),
    package_data={package_name: ['py.typed']},
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + package_name]),
        ('share/' + package_name, ['package.xml']),
        ('share/' + package_name + '/launch', _files('launch/*.launch.py')),
        ('share/' + package_name + '/config', _files('config/*.yaml')),
        ('share/' + package_name + '/config/training', _files('config/training/*.yaml')),
        ('share/' + package_name + '/models', _files('models/*')),
    ],
    install_requires=_requirements(),
    python_requires='>=3.10',
    zip_safe=True,
    maintainer='action_recognition maintainers',
    maintainer_email='maintainers@action-recognition.invalid',
    description='Human action recognition for ROS 2 with 4D-only video models.',
    license='Apache-2.0',
    tests_require=['pytest'],
    entry_points={
        'console_scripts': [
            'action-recognition = action_recognition.cli:main',
            'action_recognition_node = action_recognition.ros.node:main',
        ],
    },
)

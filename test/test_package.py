"""Package layout promises: ROS stays in ros/, pinned requirements, ament data, CLI commands."""

import ast
import importlib
from pathlib import Path
import xml.etree.ElementTree as ET

import pytest

from action_recognition import cli

ROOT = Path(__file__).resolve().parents[1]
ROS_MODULES = {'rclpy', 'sensor_msgs', 'std_msgs', 'vision_msgs', 'diagnostic_msgs',
               'rcl_interfaces', 'builtin_interfaces', 'launch', 'launch_ros', 'cv_bridge',
               'launch_testing', 'message_filters', 'lifecycle_msgs', 'composition_interfaces'}


def imported_roots(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding='utf-8'))
    roots = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split('.')[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split('.')[0])
    return roots


def test_ros_imports_only_in_ros_subpackage():
    offenders = []
    for path in sorted((ROOT / 'action_recognition').rglob('*.py')):
        if 'ros' in path.relative_to(ROOT / 'action_recognition').parts[:1]:
            continue
        bad = imported_roots(path) & ROS_MODULES
        if bad:
            offenders.append(f'{path.relative_to(ROOT)}: {sorted(bad)}')
    assert not offenders, offenders


def test_core_never_imports_ros_layer():
    offenders = []
    for path in sorted((ROOT / 'action_recognition').rglob('*.py')):
        if path.relative_to(ROOT / 'action_recognition').parts[0] == 'ros':
            continue
        roots = {name for name in _imported_modules(path)
                 if name.startswith('action_recognition.ros')}
        if roots:
            offenders.append(f'{path.relative_to(ROOT)}: {sorted(roots)}')
    assert not offenders, offenders


def _imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding='utf-8'))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names |= {f'{node.module}.{alias.name}' for alias in node.names} | {node.module}
    return names


def test_requirements_are_pinned_and_torch_is_the_cpu_pin():
    lines = [line.split('#')[0].strip()
             for line in (ROOT / 'requirements.txt').read_text().splitlines()]
    reqs = [line for line in lines if line]
    assert 'torch==2.13.0' in reqs
    unpinned = [req for req in reqs if '==' not in req]
    assert not unpinned, unpinned
    assert not any(req.lower().startswith('torchvision') for req in reqs)


def test_package_xml_is_format_3_with_robot_dependencies():
    root = ET.parse(ROOT / 'package.xml').getroot()
    assert root.get('format') == '3'
    assert root.findtext('name') == 'action_recognition'
    deps = {element.text for element in root if element.tag.endswith('depend')}
    for needed in ('rclpy', 'sensor_msgs', 'vision_msgs', 'diagnostic_msgs', 'std_msgs',
                   'python3-numpy', 'python3-opencv'):
        assert needed in deps, needed
    assert root.find('export/build_type').text == 'ament_python'


def test_ament_layout_exists():
    for path in ('resource/action_recognition', 'setup.cfg', 'launch', 'config', 'models',
                 'action_recognition/data', 'action_recognition/models', 'action_recognition/io',
                 'action_recognition/runtime', 'action_recognition/deploy',
                 'action_recognition/training', 'action_recognition/node',
                 'action_recognition/bench', 'action_recognition/ros', 'action_recognition/cli'):
        assert (ROOT / path).exists(), path
    setup_text = (ROOT / 'setup.py').read_text()
    for data_dir in ("'/launch'", "'/config'", "'/models'", "'resource/'"):
        assert data_dir in setup_text


@pytest.mark.parametrize('command', sorted(cli.COMMANDS))
def test_every_cli_command_module_has_its_contract(command):
    module = importlib.import_module(cli.COMMANDS[command][0])
    assert callable(module.add_arguments) and callable(module.run)


def test_cli_without_command_prints_help(capsys):
    assert cli.main([]) == 2
    out = capsys.readouterr().out
    for command in cli.COMMANDS:
        assert command in out

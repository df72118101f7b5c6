"""Running ``action_recognition_node`` as a separate process and talking to it over DDS.

The tests that use this module start the node with its console script and ``--ros-args`` (a
params file, remaps, a namespace), exactly as ``ros2 run`` would, and talk to it from an
in-process rclpy node (:class:`Probe`) through topics and the real parameter and lifecycle
services, as a robot's other nodes would.

DDS stays on this machine: every process gets ``ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST`` and a
``ROS_DOMAIN_ID`` of this test run's own (:func:`ros_environment`), so nothing leaves the host and
parallel runs do not see each other. ROS logs go to a temporary folder.

Where rclpy is not installed the tests are skipped, unless ``ACTION_RECOGNITION_REQUIRE_ROS=1``
(set by ``make test``, which installs ROS 2 into the project's .venv first): then a missing ROS
is a failure, so CI can never pass by skipping them.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Iterator
import contextlib
import importlib.util
import os
from pathlib import Path
import random
import signal
import subprocess
import sys
import threading
import time
from typing import Any

import pytest

REQUIRE_ROS = os.environ.get('ACTION_RECOGNITION_REQUIRE_ROS') == '1'
NODE_SCRIPT = Path(sys.executable).with_name('action_recognition_node')


def require_ros() -> None:
    """Skip the calling test module where ROS 2 is absent (fail under ``make test``)."""
    missing = [name for name in ('rclpy', 'vision_msgs', 'lifecycle_msgs')
               if importlib.util.find_spec(name) is None]
    if not missing:
        return
    reason = (f'ROS 2 is not installed ({", ".join(missing)} missing); `make ros-setup` installs '
              'it into .venv')
    if REQUIRE_ROS:
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason, allow_module_level=True)


_DOMAIN: int | None = None


def ros_environment(log_dir: Path) -> dict[str, str]:
    """``os.environ`` with DDS kept on this host, on this test run's own domain."""
    global _DOMAIN
    if _DOMAIN is None:
        # Domain ids 1..200 are valid for Fast DDS's default ports; one per test run.
        _DOMAIN = random.Random(os.getpid() ^ time.time_ns()).randint(1, 200)
    env = dict(os.environ)
    env.update(ROS_DOMAIN_ID=str(_DOMAIN), ROS_AUTOMATIC_DISCOVERY_RANGE='LOCALHOST',
               ROS_LOG_DIR=str(log_dir), RCUTILS_COLORIZED_OUTPUT='0',
               RCUTILS_LOGGING_BUFFERED_STREAM='0', PYTHONUNBUFFERED='1')
    env.pop('ROS_STATIC_PEERS', None)
    if env.get('ROS_DISTRO') in ('humble', 'iron'):  # the older spelling of the same setting
        env['ROS_LOCALHOST_ONLY'] = '1'
    return env


@contextlib.contextmanager
def ros_process_environment(log_dir: Path) -> Iterator[dict[str, str]]:
    """Set :func:`ros_environment` on this process too (for its rclpy), restored afterwards."""
    env = ros_environment(log_dir)
    keys = ('ROS_DOMAIN_ID', 'ROS_AUTOMATIC_DISCOVERY_RANGE', 'ROS_LOCALHOST_ONLY',
            'ROS_LOG_DIR')
    saved = {key: os.environ.get(key) for key in keys}
    os.environ.update({key: env[key] for key in keys if key in env})
    try:
        yield env
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


class NodeProcess:
    """``action_recognition_node --ros-args ...`` in its own process, output in a file."""

    def __init__(self, ros_args: list[str], *, env: dict[str, str], log: Path) -> None:
        self.log = log
        self._stream = log.open('wb')
        self.command = [str(NODE_SCRIPT), '--ros-args', *ros_args]
        self.process = subprocess.Popen(self.command, env=env, stdout=self._stream,
                                        stderr=subprocess.STDOUT)

    @property
    def output(self) -> str:
        if not self._stream.closed:
            self._stream.flush()
        return self.log.read_text(errors='replace')

    def wait_for_output(self, text: str, timeout: float = 30.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.output:
                return True
            if self.process.poll() is not None:
                return text in self.output
            time.sleep(0.05)
        return False

    def wait(self, timeout: float = 30.0) -> int:
        try:
            return self.process.wait(timeout)
        finally:
            self._stream.close()

    def signal(self, sig: int) -> tuple[int, float]:
        """Send ``sig``; returns ``(exit code, seconds until the process ended)``."""
        start = time.monotonic()
        self.process.send_signal(sig)
        code = self.wait(10.0)
        return code, time.monotonic() - start

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(5.0)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._stream.close()


def run_node(ros_args: list[str], *, env: dict[str, str], log: Path,
             timeout: float = 60.0) -> tuple[int, str]:
    """Run the node to its end (a start-up failure); ``(exit code, output)``."""
    node = NodeProcess(ros_args, env=env, log=log)
    try:
        code = node.wait(timeout)
    except subprocess.TimeoutExpired:
        node.stop()
        raise
    return code, node.output


class Probe:
    """An in-process rclpy node spun on its own thread: subscriptions that collect messages,
    publishers, and blocking service calls."""

    def __init__(self, name: str) -> None:
        import rclpy
        from rclpy.context import Context
        from rclpy.executors import SingleThreadedExecutor

        self.context = Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node(name, context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.changed = threading.Condition()
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        from rclpy.executors import ExternalShutdownException

        with contextlib.suppress(ExternalShutdownException):
            while self.context.ok():
                self.executor.spin_once(timeout_sec=0.05)

    def subscribe(self, msg_type: Any, topic: str, qos: Any = 10) -> list[Any]:
        """A subscription whose messages are appended to the returned list."""
        received: list[Any] = []

        def on_message(msg: Any) -> None:
            with self.changed:
                received.append(msg)
                self.changed.notify_all()

        self.node.create_subscription(msg_type, topic, on_message, qos)
        return received

    def wait(self, predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        with self.changed:
            while not predicate():
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.changed.wait(min(left, 0.1))
        return True

    def call(self, srv_type: Any, name: str, request: Any, timeout: float = 15.0) -> Any:
        client = self.node.create_client(srv_type, name)
        try:
            if not client.wait_for_service(timeout_sec=timeout):
                raise TimeoutError(f'service {name} did not appear')
            future = client.call_async(request)
            deadline = time.monotonic() + timeout
            while not future.done():
                if time.monotonic() > deadline:
                    raise TimeoutError(f'service {name} did not answer')
                time.sleep(0.01)
            return future.result()
        finally:
            self.node.destroy_client(client)

    def close(self) -> None:
        import rclpy

        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)
        self._thread.join(2.0)


def wait_until(predicate: Callable[[], bool], timeout: float = 10.0,
               interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()

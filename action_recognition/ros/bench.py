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
"""Benchmark of ``action_recognition_node`` over DDS: latency, throughput and CPU.

::
    python -m action_recognition.ros.bench                       # the shipped model
    python -m action_recognition.ros.bench --configs 1:off 2:off 2:on --json node_bench.json

For each configuration (inference threads, ONNX Runtime thread spinning) the node runs as its own
process (``--ros-args``, as ``ros2 run`` starts it) and a probe node in this process publishes
synthetic frames (``sensor_msgs/Image`` rgb8, reliable) and subscribes to ``~/actions``:
- **camera rate**: frames at ``--fps`` (30) with a window every ``--hop`` frames (1: every
  frame) until ``--clips`` windows ran; end-to-end latency from publishing a window's last frame
  to receiving its ``Classification`` (p50, p99), and the node process's CPU use in cores
  (``/proc``);
- **sustained**: frames as fast as the node takes them, hop 1, for ``--seconds``; windows/s
  received.

Everything stays on this host (``ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST``, a random domain).
Prints a markdown table; this is a measurement tool, not a test.
"""

from __future__ import annotations

import argparse
from dataclasses import asdict
from dataclasses import dataclass
import json
import os
from pathlib import Path
import random
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any

import numpy as np
from rcl_interfaces.srv import SetParameters
import rclpy
from rclpy.context import Context
from rclpy.executors import ExternalShutdownException
from rclpy.executors import SingleThreadedExecutor
from rclpy.parameter import Parameter
from sensor_msgs.msg import Image
from vision_msgs.msg import Classification

from action_recognition.data.synth_clips import clip_rng
from action_recognition.data.synth_clips import generate_clip
from action_recognition.io.messages import build_image
from action_recognition.ros.messages import ros_message_types
from action_recognition.runtime.frames import header_stamp_ns

__all__ = ['NodeBenchRow', 'bench_node', 'main']


@dataclass
class NodeBenchRow:
    """One configuration's figures."""

    threads: int
    spinning: bool
    fps: float
    hop: int
    windows: int
    latency_p50_ms: float
    latency_p99_ms: float
    cpu_cores: float
    sustained_windows_per_s: float


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process (``/proc/<pid>/stat``)."""
    fields = Path(f'/proc/{pid}/stat').read_text().rsplit(')', 1)[1].split()
    ticks = os.sysconf('SC_CLK_TCK')
    return (int(fields[11]) + int(fields[12])) / ticks


def _frames(count: int, size: int) -> list[np.ndarray]:
    clip = generate_clip('move_left', rng=clip_rng(0, 1), frames=max(count, 2), size=size)
    return [np.ascontiguousarray(frame) for frame in clip[:count]]


class _Probe:
    """Publishes frames and records when each window's result arrives."""

    def __init__(self, namespace: str) -> None:
        self.context = Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node('action_recognition_bench_probe', context=self.context)
        self.received: dict[int, float] = {}
        self.lock = threading.Lock()
        self.node.create_subscription(
            Classification, f'{namespace}/action_recognition_node/actions', self._on_result,
            100)
        self.publisher = self.node.create_publisher(Image, '/bench_camera/image_raw', 100)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        try:
            while self.context.ok():
                self.executor.spin_once(timeout_sec=0.05)
        except ExternalShutdownException:
            pass

    def _on_result(self, msg: Any) -> None:
        now = time.perf_counter()
        stamp = header_stamp_ns(msg.header)
        with self.lock:
            self.received[stamp] = now

    def publish(self, frame: np.ndarray, stamp_ns: int) -> float:
        msg = build_image(ros_message_types(), frame_rgb=frame, stamp=stamp_ns,
                          frame_id='bench_camera')
        sent = time.perf_counter()
        self.publisher.publish(msg)
        return sent

    def wait_connected(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.publisher.get_subscription_count() > 0:
                time.sleep(0.5)  # let the node's reader discover this writer too
                return True
            time.sleep(0.05)
        return False

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)


def bench_node(*, threads: int, spinning: bool, fps: float, hop: int, clips: int,
               seconds: float, model: str, env: dict[str, str], log_dir: Path) -> NodeBenchRow:
    """Start the node with this configuration and measure it (see the module docstring)."""
    namespace = f'/bench_t{threads}_{"spin" if spinning else "nospin"}'
    command = [sys.executable, '-m', 'action_recognition.ros.node', '--ros-args',
               '-r', f'__ns:={namespace}', '-r', 'image:=/bench_camera/image_raw',
               '-p', f'threads:={threads}', '-p', f'thread_spinning:={str(spinning).lower()}',
               '-p', f'hop:={hop}', '-p', 'smoothing:=none', '-p', 'score_threshold:=0.0',
               '-p', 'qos_reliability:=reliable', '-p', 'qos_depth:=10',
               '-p', 'diagnostics_period_s:=1.0']
    if model:
        command += ['-p', f'model_path:={model}']
    log = (log_dir / f'{namespace.strip("/")}.log').open('wb')
    process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    probe = _Probe(namespace)
    try:
        if not probe.wait_connected(90.0):
            raise RuntimeError(f'the node did not come up; see {log.name}')
        frames = _frames(64, 64)
        period_ns = round(1e9 / fps)
        stamp = 1_900_000_000_000_000_000
        # Warm-up: fill the clip buffer and run a few windows.
        for i in range(24):
            probe.publish(frames[i % len(frames)], stamp)
            stamp += period_ns
            time.sleep(1.0 / fps)
        time.sleep(0.5)
        # Camera rate, a window every `hop` frames.
        sent: dict[int, float] = {}
        cpu_start, wall_start = _cpu_seconds(process.pid), time.perf_counter()
        next_time = time.perf_counter()
        for i in range(clips * hop):
            next_time += 1.0 / fps
            sent[stamp] = probe.publish(frames[i % len(frames)], stamp)
            stamp += period_ns
            time.sleep(max(0.0, next_time - time.perf_counter()))
        time.sleep(0.5)
        cpu = (_cpu_seconds(process.pid) - cpu_start) / (time.perf_counter() - wall_start)
        with probe.lock:
            latencies = [(probe.received[s] - t) * 1e3 for s, t in sent.items()
                         if s in probe.received]
        # Sustained: as fast as the node takes them (a window per frame).
        _set_hop(probe, namespace, 1)
        with probe.lock:
            before = len(probe.received)
        start = time.perf_counter()
        i = 0
        while time.perf_counter() - start < seconds:
            probe.publish(frames[i % len(frames)], stamp)
            stamp += period_ns
            i += 1
            time.sleep(0.0005)
        elapsed = time.perf_counter() - start
        time.sleep(0.3)
        with probe.lock:
            sustained = (len(probe.received) - before) / elapsed
    finally:
        probe.close()
        process.terminate()
        process.wait(10)
        log.close()
    values = np.asarray(latencies or [float('nan')])
    return NodeBenchRow(threads=threads, spinning=spinning, fps=fps, hop=hop,
                        windows=len(latencies),
                        latency_p50_ms=float(np.percentile(values, 50)),
                        latency_p99_ms=float(np.percentile(values, 99)),
                        cpu_cores=cpu, sustained_windows_per_s=sustained)


def _set_hop(probe: _Probe, namespace: str, hop: int) -> None:
    client = probe.node.create_client(SetParameters,
                                      f'{namespace}/action_recognition_node/set_parameters')
    try:
        if not client.wait_for_service(timeout_sec=10.0):
            raise RuntimeError('the node has no parameter service')
        request = SetParameters.Request()
        request.parameters = [Parameter('hop', value=hop).to_parameter_msg()]
        future = client.call_async(request)
        deadline = time.monotonic() + 10.0
        while not future.done() and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        probe.node.destroy_client(client)


def _table(rows: list[NodeBenchRow]) -> str:
    lines = ['| threads | spinning | hop | windows at the camera rate | latency p50 ms | '
             'latency p99 ms | CPU cores at the camera rate | sustained windows/s (hop 1) |',
             '|---|---|---|---|---|---|---|---|']
    for row in rows:
        lines.append(f'| {row.threads} | {"on" if row.spinning else "off"} | {row.hop} | '
                     f'{row.windows} | '
                     f'{row.latency_p50_ms:.1f} | {row.latency_p99_ms:.1f} | '
                     f'{row.cpu_cores:.2f} | {row.sustained_windows_per_s:.0f} |')
    return '\n'.join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog='python -m action_recognition.ros.bench',
                                     description=__doc__.split('\n\n')[0] if __doc__ else None)
    parser.add_argument('--configs', nargs='+', default=['1:off', '2:off', '2:on'],
                        metavar='THREADS:SPIN', help='threads and spinning (on/off) to measure')
    parser.add_argument('--fps', type=float, default=30.0, help='camera rate (default 30)')
    parser.add_argument('--hops', type=int, nargs='+', default=[1],
                        help='window every HOP frames at the camera rate (default 1)')
    parser.add_argument('--clips', type=int, default=150,
                        help='windows measured at the camera rate (default 150)')
    parser.add_argument('--seconds', type=float, default=5.0,
                        help='duration of the sustained phase (default 5)')
    parser.add_argument('--model', default='', help='model file (default: the shipped one)')
    parser.add_argument('--json', type=Path, default=None, help='also write the rows here')
    args = parser.parse_args(argv)
    configs = []
    for item in args.configs:
        threads, _, spin = item.partition(':')
        configs.append((int(threads), spin == 'on'))
    with tempfile.TemporaryDirectory(prefix='ar_node_bench_') as tmp:
        env = dict(os.environ)
        env.update(ROS_DOMAIN_ID=str(random.randint(1, 200)),
                   ROS_AUTOMATIC_DISCOVERY_RANGE='LOCALHOST', ROS_LOG_DIR=tmp,
                   RCUTILS_COLORIZED_OUTPUT='0')
        os.environ.update({k: env[k] for k in ('ROS_DOMAIN_ID', 'ROS_AUTOMATIC_DISCOVERY_RANGE',
                                               'ROS_LOG_DIR')})
        rows = []
        for hop in args.hops:
            for threads, spinning in configs:
                row = bench_node(threads=threads, spinning=spinning, fps=args.fps, hop=hop,
                                 clips=args.clips, seconds=args.seconds, model=args.model,
                                 env=env, log_dir=Path(tmp))
                print(f'threads {threads}, spinning {"on" if spinning else "off"}, hop {hop}: '
                      f'p50 {row.latency_p50_ms:.1f} ms, p99 {row.latency_p99_ms:.1f} ms, '
                      f'{row.cpu_cores:.2f} cores, {row.sustained_windows_per_s:.0f} windows/s',
                      flush=True)
                rows.append(row)
    print(f'\nmachine: {os.cpu_count()} CPUs; camera {args.fps:g} fps, {args.clips} windows '
          f'per row; sustained for {args.seconds:g} s\n')
    print(_table(rows))
    if args.json is not None:
        args.json.write_text(json.dumps([asdict(row) for row in rows], indent=1))
    return 0


if __name__ == '__main__':
    sys.exit(main())

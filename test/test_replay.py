"""Replay: a rosbag2 MCAP of camera images through the node core gives the same recognitions
as ``action-recognition run`` on the same bag."""

import json

from fixtures.ros_data import IMAGE
from fixtures.ros_data import image_msg
from fixtures.ros_data import moving_frames
from fixtures.ros_data import tiny_checkpoint
from fixtures.ros_data import write_bag
import pytest
from rosbags.highlevel import AnyReader
import torch

from action_recognition import cli
from action_recognition.io.messages import action_typestore
from action_recognition.io.messages import ACTIONS_TOPIC
from action_recognition.io.messages import parse_classification
from action_recognition.node.core import NodeCore
from action_recognition.node.parameters import parse_parameters

TOPIC = '/camera/image_raw'
SETTINGS = {'hop': 3, 'top_k': 2, 'threshold': 0.1, 'smoothing': 'ema'}


@pytest.fixture(scope='module')
def recording(tmp_path_factory):
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp('replay')
    model = tiny_checkpoint(root / 'model.pt', num_frames=4, frame_stride=2)
    typestore = action_typestore()
    frames = moving_frames(20, seed=4)
    messages = []
    for i, frame in enumerate(frames):
        stamp = 1_700_000_000_000_000_011 + i * 33_333_333
        msg = image_msg(typestore, frame, stamp_ns=stamp, frame_id='head_camera',
                        encoding='bgr8' if i % 2 else 'rgb8', pad=2 * (i % 3))
        if i == 9:
            msg.encoding = 'bayer_rggb8'  # undecodable: skipped by both
        messages.append((TOPIC, IMAGE, stamp + 1_000, msg))
    bag = write_bag(root / 'camera', messages)
    return model, bag


def _runner(model, bag, out):
    argv = ['run', '--no-progress', '--source', str(bag), '--image-topic', TOPIC,
            '--model', str(model), '--output', str(out)]
    for key, value in SETTINGS.items():
        argv += [f'--{key.replace("_", "-")}', str(value)]
    assert cli.main(argv) == 0


def _node_core(model, bag):
    params = parse_parameters({
        'model_path': str(model), 'hop': SETTINGS['hop'], 'top_k': SETTINGS['top_k'],
        'score_threshold': SETTINGS['threshold'], 'smoothing': SETTINGS['smoothing']})
    core = NodeCore(params)
    results = []
    with AnyReader([bag], default_typestore=action_typestore()) as reader:
        connections = [c for c in reader.connections if c.topic == TOPIC]
        for connection, _, raw in reader.messages(connections=connections):
            core.on_image_msg(reader.deserialize(raw, connection.msgtype))
            results += core.step()  # the worker, run synchronously
    assert core.intake.drops.total == 1
    return results


def test_node_core_replay_equals_offline_run(recording, tmp_path):
    model, bag = recording
    _runner(model, bag, tmp_path / 'run.mcap')
    _runner(model, bag, tmp_path / 'run.jsonl')
    with AnyReader([tmp_path / 'run'], default_typestore=action_typestore()) as reader:
        connections = [c for c in reader.connections if c.topic == ACTIONS_TOPIC]
        offline = [parse_classification(reader.deserialize(raw, c.msgtype))
                   for c, _, raw in reader.messages(connections=connections)]
    lines = [json.loads(line) for line in (tmp_path / 'run.jsonl').read_text().splitlines()]

    replay = _node_core(model, bag)
    assert len(replay) == len(offline) == len(lines) >= 4
    for record, (stamp, frame_id, top), line in zip(replay, offline, lines):
        assert divmod(record.stamp_ns, 1_000_000_000) == stamp
        assert record.frame_id == frame_id == 'head_camera'
        assert [label for label, _ in record.top] == [label for label, _ in top]
        assert [score for _, score in record.top] == [score for _, score in top]
        assert record.frame_index == line['frame']
    # Frames are positions in the bag: message 9 is skipped, so the second clip (three decoded
    # frames after the first) ends at 10.
    assert [line['frame'] for line in lines][:2] == [6, 9 + 1]

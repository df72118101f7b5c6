"""Outputs: JSON lines, rosbag2 MCAP (read back with rosbags), annotated video."""

import json

import cv2
import numpy as np
import pytest
from rosbags.highlevel import AnyReader

from action_recognition.io.messages import action_typestore
from action_recognition.io.messages import ACTIONS_TOPIC
from action_recognition.io.messages import LABEL_INFO_TOPIC
from action_recognition.io.messages import parse_classification
from action_recognition.io.messages import parse_label_info
from action_recognition.runtime.annotate import annotate
from action_recognition.runtime.results import ActionEvent
from action_recognition.runtime.results import Recognition
from action_recognition.runtime.sinks import JsonLinesSink
from action_recognition.runtime.sinks import McapSink
from action_recognition.runtime.sinks import open_sink
from action_recognition.runtime.sinks import VideoSink


def _recognition(frame, stamp_ns, top, events=()):
    scores = np.zeros(3, np.float32)
    return Recognition(frame_index=frame, stamp_ns=stamp_ns, frame_id='cam', top=top,
                       scores=scores, raw_scores=scores, events=list(events))


RECORDS = [
    _recognition(15, 1_700_000_000_123_456_789, [('walk', 0.25), ('wave', 0.7)],
                 [ActionEvent('started', 'wave', 0, 1_700_000_000_123_456_789, 0.7)]),
    _recognition(19, 1_700_000_000_523_456_789, [('idle', 0.9)]),
]


def test_jsonl_lines_sorted_by_score(tmp_path):
    with JsonLinesSink(tmp_path / 'out.jsonl') as sink:
        for record in RECORDS:
            sink.write(record)
    lines = [json.loads(line) for line in (tmp_path / 'out.jsonl').read_text().splitlines()]
    assert len(lines) == 2
    assert lines[0]['frame'] == 15
    assert lines[0]['stamp'] == pytest.approx(1_700_000_000.123456789, abs=1e-6)
    assert lines[0]['stamp_ns'] == 1_700_000_000_123_456_789
    assert lines[0]['top'] == [{'label': 'wave', 'score': 0.7}, {'label': 'walk', 'score': 0.25}]
    assert lines[0]['events'] == ['started:wave']
    assert lines[1]['top'] == [{'label': 'idle', 'score': 0.9}]


def test_mcap_classification_headers_and_label_info(tmp_path):
    sink = open_sink(tmp_path / 'actions.mcap', labels=['wave', 'walk', 'idle'], threshold=0.4,
                     fps=10)
    assert isinstance(sink, McapSink)
    with sink:
        for record in RECORDS:
            sink.write(record)
    bag = tmp_path / 'actions'
    assert (bag / 'actions.mcap').is_file() and (bag / 'metadata.yaml').is_file()
    with AnyReader([bag], default_typestore=action_typestore()) as reader:
        topics = {c.topic: c.msgtype for c in reader.connections}
        assert topics == {ACTIONS_TOPIC: 'vision_msgs/msg/Classification',
                          LABEL_INFO_TOPIC: 'vision_msgs/msg/LabelInfo'}
        got = []
        for connection, log_time, raw in reader.messages():
            msg = reader.deserialize(raw, connection.msgtype)
            got.append((connection.topic, log_time, msg))
    label_infos = [m for t, _, m in got if t == LABEL_INFO_TOPIC]
    assert len(label_infos) == 1
    labels, threshold = parse_label_info(label_infos[0])
    assert labels == ['wave', 'walk', 'idle'] and threshold == pytest.approx(0.4)
    actions = [(log_time, m) for t, log_time, m in got if t == ACTIONS_TOPIC]
    assert len(actions) == 2
    for (log_time, msg), record in zip(actions, RECORDS):
        stamp, frame_id, top = parse_classification(msg)
        assert stamp == divmod(record.stamp_ns, 1_000_000_000)
        assert log_time == record.stamp_ns
        assert frame_id == 'cam'
        assert top == [(label, pytest.approx(score)) for label, score in record.top]
    with pytest.raises(FileExistsError, match='exists already'):
        McapSink(tmp_path / 'actions.mcap', labels=['a'], threshold=0.0)


def test_video_sink_is_readable_and_annotated(tmp_path):
    frames = [np.full((48, 64, 3), 30 * i, np.uint8) for i in range(5)]
    with VideoSink(tmp_path / 'out.mp4', fps=10) as sink:
        for i, frame in enumerate(frames):
            sink.write_frame(frame, RECORDS[0] if i >= 2 else None)
    capture = cv2.VideoCapture(str(tmp_path / 'out.mp4'))
    assert capture.isOpened()
    count = 0
    while True:
        ok, image = capture.read()
        if not ok:
            break
        assert image.shape == (48, 64, 3)
        count += 1
    capture.release()
    assert count == 5
    drawn = annotate(frames[1], [('wave', 0.7)])
    assert drawn.shape == frames[1].shape and not np.array_equal(drawn, frames[1])
    assert np.array_equal(drawn[-5:], frames[1][-5:])  # only the top band is drawn on


def test_open_sink_rejects_unknown_suffix(tmp_path):
    with pytest.raises(ValueError, match=r'unknown output type .*\.txt'):
        open_sink(tmp_path / 'out.txt', labels=['a'], threshold=0.0, fps=10)

"""``action-recognition run`` end to end with a tiny real model made in the test."""

import json

import cv2
from fixtures.ros_data import camera_bag
from fixtures.ros_data import moving_frames
from fixtures.ros_data import tiny_checkpoint
from fixtures.ros_data import write_video
import pytest
from rosbags.highlevel import AnyReader

from action_recognition import cli
from action_recognition.io import model_files
from action_recognition.io.messages import action_typestore
from action_recognition.io.messages import ACTIONS_TOPIC
from action_recognition.io.messages import parse_classification


@pytest.fixture(scope='module')
def model(tiny_model_stride2):
    # 4 frames, stride 2: one clip spans 7 frames.
    return tiny_model_stride2


def _run(*argv):
    return cli.main(['run', '--no-progress', *[str(a) for a in argv]])


def _jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_video_of_one_clip_span_gives_exactly_one_recognition(tmp_path, model):
    video = write_video(tmp_path / 'one_clip.avi', moving_frames(7), fps=10)
    out = tmp_path / 'out.jsonl'
    assert _run('--source', video, '--model', model, '--output', out, '--hop', 3) == 0
    lines = _jsonl(out)
    assert len(lines) == 1
    assert lines[0]['frame'] == 6 and lines[0]['stamp'] == pytest.approx(0.6)
    scores = [entry['score'] for entry in lines[0]['top']]
    assert scores == sorted(scores, reverse=True) and len(scores) == 3
    assert {entry['label'] for entry in lines[0]['top']} == {'wave', 'walk', 'idle'}
    # One frame short of a clip: nothing.
    short = write_video(tmp_path / 'short.avi', moving_frames(6), fps=10)
    assert _run('--source', short, '--model', model, '--output', tmp_path / 's.jsonl') == 0
    assert _jsonl(tmp_path / 's.jsonl') == []


def test_hop_threshold_and_top_k(tmp_path, model):
    video = write_video(tmp_path / 'v.avi', moving_frames(15), fps=10)
    out = tmp_path / 'out.jsonl'
    assert _run('--source', video, '--model', model, '--output', out, '--hop', 4,
                '--top-k', 2, '--threshold', 0.2) == 0
    lines = _jsonl(out)
    # First clip when 7 frames are buffered (frame 6), then every 4 frames.
    assert [line['frame'] for line in lines] == [6, 10, 14]
    for line in lines:
        assert 1 <= len(line['top']) <= 2
        assert all(entry['score'] >= 0.2 for entry in line['top'])


def test_bag_to_mcap_headers_are_the_clip_last_frame(tmp_path, model):
    bag, stamps = camera_bag(tmp_path / 'cam', moving_frames(9), frame_id='cam_optical')
    out = tmp_path / 'actions.mcap'
    assert _run('--source', bag, '--image-topic', '/camera/image_raw', '--model', model,
                '--output', out, '--hop', 2) == 0
    with AnyReader([tmp_path / 'actions'], default_typestore=action_typestore()) as reader:
        connections = [c for c in reader.connections if c.topic == ACTIONS_TOPIC]
        messages = [reader.deserialize(raw, c.msgtype)
                    for c, _, raw in reader.messages(connections=connections)]
    assert len(messages) == 2  # clips ending at frames 6 and 8
    for msg, last in zip(messages, (6, 8)):
        stamp, frame_id, top = parse_classification(msg)
        assert stamp == divmod(stamps[last], 1_000_000_000)  # exact nanoseconds
        assert frame_id == 'cam_optical'
        assert len(top) == 3


def test_annotated_video_output(tmp_path, model):
    video = write_video(tmp_path / 'v.avi', moving_frames(9), fps=10)
    out = tmp_path / 'annotated.mp4'
    assert _run('--source', video, '--model', model, '--output', out) == 0
    capture = cv2.VideoCapture(str(out))
    count = 0
    while capture.read()[0]:
        count += 1
    capture.release()
    assert count == 9


def test_missing_default_model_is_named(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(model_files, 'model_dirs', lambda: [tmp_path / 'models'])
    video = write_video(tmp_path / 'v.avi', moving_frames(3), fps=10)
    assert _run('--source', video, '--output', tmp_path / 'o.jsonl') == 1
    assert 'action_recognition_default.onnx' in caplog.text
    assert str(tmp_path / 'models') in caplog.text and '--model' in caplog.text
    (tmp_path / 'models').mkdir()
    (tmp_path / 'models' / 'action_recognition_default.pt').write_bytes(b'x')
    assert model_files.default_model_path() == \
        tmp_path / 'models' / 'action_recognition_default.pt'


def test_bad_inputs_fail_clearly(tmp_path, model, caplog):
    assert _run('--source', tmp_path / 'nope.mp4', '--model', model,
                '--output', tmp_path / 'o.jsonl') == 1
    assert 'nope.mp4 does not exist' in caplog.text
    video = write_video(tmp_path / 'v.avi', moving_frames(3), fps=10)
    assert _run('--source', video, '--model', tmp_path / 'missing.pt',
                '--output', tmp_path / 'o.jsonl') == 1
    assert 'missing.pt' in caplog.text
    assert _run('--source', video, '--model', model, '--output', tmp_path / 'o.txt') == 1
    assert 'unknown output type' in caplog.text
    assert _run('--source', video, '--model', model, '--output', tmp_path / 'o.jsonl',
                '--threshold', 2) == 2


def test_run_takes_the_nodes_settings_and_makes_the_nodes_checks(tmp_path, model, caplog):
    """The same settings as the node (flags derived from the same declarations), and the
    pipeline's checks: before, run had no --max-gap-s, --labels or --clip-length and checked
    nothing of the model against them."""
    video = write_video(tmp_path / 'v.avi', moving_frames(9), fps=10)
    out = tmp_path / 'o.jsonl'
    assert _run('--source', video, '--model', model, '--output', out, '--clip-length', 8) == 1
    assert "clip_length 8 != the model's 4" in caplog.text and not out.exists()
    assert _run('--source', video, '--model', model, '--output', out, '--input-size', 64) == 1
    assert "input_size 64 != the model's 32x32" in caplog.text
    assert _run('--source', video, '--model', model, '--output', out, '--clip-length', 4,
                '--frame-stride', 2, '--input-size', 32, '--max-gap-s', 0.05) == 0
    # Frames 0.1 s apart with max_gap_s 0.05: every frame restarts the clip, no recognition.
    assert _jsonl(out) == [] and 'clip buffer reset (gap)' in caplog.text
    caplog.clear()
    for flags, reason in ((['--hop', 0], '--hop must be >= 1'),
                          (['--smoothing', 'ema', '--score-threshold', 1.5],
                           '--score-threshold must be <= 1.0'),
                          (['--max-gap-s', 0], '--max-gap-s must be >= 0.001'),
                          (['--half', '--precision', 'bf16'], '--half and --precision bf16')):
        assert _run('--source', video, '--model', model, '--output', tmp_path / 'x.jsonl',
                    *flags) == 2, flags
        assert reason in caplog.text, (flags, caplog.text)


def test_run_reads_a_label_file_for_a_model_without_labels(tmp_path, caplog):
    unlabelled = tiny_checkpoint(tmp_path / 'u.pt', num_frames=4, labels=(), num_classes=3)
    video = write_video(tmp_path / 'v.avi', moving_frames(5), fps=10)
    labels = tmp_path / 'labels.txt'
    labels.write_text('jump\nsit\nstand\n')
    out = tmp_path / 'o.jsonl'
    assert _run('--source', video, '--model', unlabelled, '--output', out, '--labels',
                labels) == 0
    assert {entry['label'] for entry in _jsonl(out)[0]['top']} == {'jump', 'sit', 'stand'}
    labels.write_text('jump\nsit\n')
    assert _run('--source', video, '--model', unlabelled, '--output', tmp_path / 'p.jsonl',
                '--labels', labels) == 1
    assert 'has 2 labels for a model with 3 outputs' in caplog.text

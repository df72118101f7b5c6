"""Corrupt recordings give a clear error naming the file, never a library traceback; a recording
that breaks midway keeps what was written valid and says how far it got (issue 11, item 7)."""

import json
import logging
import os
from pathlib import Path
import shutil

from fixtures.ros_data import camera_bag
from fixtures.ros_data import moving_frames
import pytest
from rosbags.highlevel import AnyReader

from action_recognition import cli
from action_recognition.io.messages import action_typestore
from action_recognition.io.messages import ACTIONS_TOPIC
from action_recognition.runtime.sources import BagSource
from action_recognition.runtime.sources import SourceError


@pytest.fixture(scope='module')
def model(tiny_model):
    return tiny_model


@pytest.fixture(scope='module')
def bags(tmp_path_factory):
    root = tmp_path_factory.mktemp('recordings')
    frames = moving_frames(120, height=48, width=64)
    mcap, _ = camera_bag(root / 'good_mcap', frames[:20])
    sqlite, _ = camera_bag(root / 'good_sqlite', frames, storage='sqlite3')
    return {'mcap': mcap, 'sqlite': sqlite, 'root': root}


def _copy(bag: Path, target: Path) -> tuple[Path, Path]:
    shutil.copytree(bag, target)
    storage = next(p for p in target.iterdir() if p.suffix in ('.mcap', '.db3'))
    return target, storage


def _corrupt_page(storage: Path, page: int) -> None:
    data = bytearray(storage.read_bytes())
    offset = page * 4096
    data[offset:offset + 12] = b'\x0d' + b'\xff' * 11  # a b-tree page header that lies
    storage.write_bytes(bytes(data))


def _broken(kind: str, bags, tmp_path: Path) -> Path:
    if kind == 'truncated mcap':
        bag, storage = _copy(bags['mcap'], tmp_path / 'bag')
        storage.write_bytes(storage.read_bytes()[:storage.stat().st_size // 2])
    elif kind == 'garbage mcap':
        bag, storage = _copy(bags['mcap'], tmp_path / 'bag')
        storage.write_bytes(os.urandom(storage.stat().st_size))
    elif kind == 'broken metadata':
        bag, _ = _copy(bags['mcap'], tmp_path / 'bag')
        (bag / 'metadata.yaml').write_text('rosbag2_bagfile_information: [\n  : :')
    else:  # 'corrupt sqlite'
        bag, storage = _copy(bags['sqlite'], tmp_path / 'bag')
        data = bytearray(storage.read_bytes())
        data[4096:] = os.urandom(len(data) - 4096)
        storage.write_bytes(bytes(data))
    return bag


@pytest.mark.parametrize('kind', ['truncated mcap', 'garbage mcap', 'broken metadata',
                                  'corrupt sqlite'])
def test_corrupt_recording_is_a_clear_error(kind, bags, model, tmp_path, caplog, capsys):
    bag = _broken(kind, bags, tmp_path)
    with pytest.raises(SourceError, match=f'cannot read the rosbag2 recording {bag}'):
        BagSource(bag)
    out = tmp_path / 'out.jsonl'
    with caplog.at_level(logging.ERROR):
        assert cli.main(['run', '--no-progress', '--source', str(bag), '--model', str(model),
                         '--output', str(out)]) == 1
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and str(bag) in errors[0].getMessage()
    assert errors[0].exc_info is None
    assert 'Traceback' not in capsys.readouterr().err
    assert not out.exists()


def _broken_midway(bags, tmp_path: Path) -> tuple[Path, int]:
    """A copy of the sqlite3 bag with one corrupt page that reading reaches after 10+ messages."""
    source = next(p for p in bags['sqlite'].iterdir() if p.suffix == '.db3')
    pages = source.stat().st_size // 4096
    for page in range(1, pages):
        target = tmp_path / f'mid{page}'
        bag, storage = _copy(bags['sqlite'], target)
        _corrupt_page(storage, page)
        try:
            with BagSource(bag) as reader:
                for _frame in reader:
                    pass
        except SourceError as error:
            if error.frames_read >= 10:
                return bag, error.frames_read
        shutil.rmtree(target)
    raise AssertionError('no page gives a midway failure')


@pytest.mark.parametrize('suffix', ['.jsonl', '.mcap'])
def test_recording_corrupt_midway_keeps_a_valid_output_and_says_how_far(
        suffix, bags, model, tmp_path, caplog):
    bag, reached = _broken_midway(bags, tmp_path)
    out = tmp_path / f'actions{suffix}'
    with caplog.at_level(logging.INFO):
        assert cli.main(['run', '--no-progress', '--source', str(bag), '--model', str(model),
                         '--output', str(out), '--hop', '2']) == 1
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert f'corrupt after {reached} of 120 messages' in errors[0]
    if suffix == '.jsonl':
        lines = [json.loads(line) for line in out.read_text().splitlines()]
        frames = [line['frame'] for line in lines]
    else:
        with AnyReader([out.with_suffix('')], default_typestore=action_typestore()) as reader:
            connections = [c for c in reader.connections if c.topic == ACTIONS_TOPIC]
            frames = list(range(len(list(reader.messages(connections=connections)))))
    # Clips of 4 frames every 2 frames, up to the last message read before the corruption.
    expected = len(range(3, reached, 2))
    assert len(frames) == expected > 0
    assert f'{expected} recognitions' in errors[0]

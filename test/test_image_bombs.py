"""``action-recognition run`` on rosbag2 recordings holding images whose headers claim huge
sizes: the run goes on past them (exit 0, every good frame processed, each bomb counted as
'oversized' in the summary) in bounded time and memory, measured on a child process."""

import json
import logging
import re

from fixtures.image_bombs import jpeg_bomb
from fixtures.image_bombs import PYTHON
from fixtures.image_bombs import run_measured
from fixtures.ros_data import COMPRESSED
from fixtures.ros_data import compressed_msg
from fixtures.ros_data import IMAGE
from fixtures.ros_data import image_msg
from fixtures.ros_data import moving_frames
from fixtures.ros_data import write_bag
import numpy as np
import pytest

from action_recognition import cli
from action_recognition.io.messages import action_typestore

START_NS = 1_700_000_000_000_000_000
PERIOD_NS = 50_000_000
GOOD = 12  # good frames in each bag
BOMB_AT = 6  # the bomb's position on the topic
# A run that decodes a bomb (or pads a raw buffer to its claimed size) needs gigabytes; a
# harmless run of these small bags needs a few hundred MB (torch). The child's address space is
# capped so that a regression fails there rather than exhausting the machine.
MAX_GROWTH_MB = 100
ADDRESS_SPACE_GB = 8
MAX_PEAK_MB = 600


@pytest.fixture(scope='module')
def model(tiny_model_stride2):
    return tiny_model_stride2


def _header(typestore, stamp_ns):
    types = typestore.types
    sec, nanosec = divmod(stamp_ns, 1_000_000_000)
    return types['std_msgs/msg/Header'](
        stamp=types['builtin_interfaces/msg/Time'](sec=sec, nanosec=nanosec), frame_id='cam')


def _stamps():
    return [START_NS + i * PERIOD_NS for i in range(GOOD + 1)]


def _compressed_bag(path, *, bomb):
    """GOOD JPEG frames on /cam/image/compressed, the 65500x65500 JPEG bomb at BOMB_AT."""
    typestore = action_typestore()
    frames = moving_frames(GOOD)
    stamps = _stamps()
    topic = '/cam/image/compressed'
    messages = []
    for i, stamp in enumerate(stamps):
        if i == BOMB_AT:
            if not bomb:
                continue
            msg = typestore.types[COMPRESSED](
                header=_header(typestore, stamp), format='jpeg',
                data=np.frombuffer(jpeg_bomb(65500, 65500), np.uint8).copy())
        else:
            frame = frames[i if i < BOMB_AT else i - 1]
            msg = compressed_msg(typestore, frame, stamp_ns=stamp, frame_id='cam', fmt='jpeg')
        messages.append((topic, COMPRESSED, stamp, msg))
    return write_bag(path, messages)


def _raw_bag(path, *, bomb):
    """GOOD rgb8 frames on /cam/image_raw, at BOMB_AT a 1x1 image of 3 bytes claiming rows of
    4,000,000,000 bytes (step is a uint32 in a bag), then a 65535x65535 one of 3 bytes."""
    typestore = action_typestore()
    frames = moving_frames(GOOD)
    stamps = _stamps()
    topic = '/cam/image_raw'
    messages = []
    for i, stamp in enumerate(stamps):
        if i == BOMB_AT:
            if not bomb:
                continue
            for step, size in ((4_000_000_000, 1), (3 * 65535, 65535)):
                msg = typestore.types[IMAGE](
                    header=_header(typestore, stamp), height=size, width=size, encoding='rgb8',
                    is_bigendian=0, step=step, data=np.array([16, 32, 48], np.uint8))
                messages.append((topic, IMAGE, stamp, msg))
            continue
        frame = frames[i if i < BOMB_AT else i - 1]
        messages.append((topic, IMAGE, stamp,
                         image_msg(typestore, frame, stamp_ns=stamp, frame_id='cam')))
    return write_bag(path, messages)


def _run_child(tmp_path, bag, model, name):
    out = tmp_path / f'{name}.jsonl'
    argv = [PYTHON, '-m', 'action_recognition.cli', 'run', '--no-progress', '--source', str(bag),
            '--model', str(model), '--output', str(out), '--hop', '1']
    code, peak_mb, output = run_measured(argv, cwd=tmp_path, timeout_s=300,
                                         address_space_gb=ADDRESS_SPACE_GB)
    lines = [json.loads(line) for line in out.read_text().splitlines()] if out.exists() else []
    return code, peak_mb, output, lines


def _summary(output):
    match = re.search(r'frames read (\d+), dropped (\d+)( \(([^)]*)\))?', output)
    assert match, output
    return int(match.group(1)), int(match.group(2)), match.group(4) or ''


@pytest.mark.slow
@pytest.mark.parametrize(('make', 'bombs'), [(_compressed_bag, 1), (_raw_bag, 2)],
                         ids=['compressed', 'raw'])
def test_run_goes_past_bombs_in_a_bag_in_bounded_memory(tmp_path, model, make, bombs, capsys):
    harmless = make(tmp_path / 'harmless', bomb=False)
    bombed = make(tmp_path / 'bombed', bomb=True)
    code, base_mb, output, clean = _run_child(tmp_path, harmless, model, 'harmless')
    assert code == 0, output
    assert _summary(output) == (GOOD, 0, '')
    code, peak_mb, output, lines = _run_child(tmp_path, bombed, model, 'bombed')
    with capsys.disabled():
        print(f'\n{make.__name__}: peak RSS of the run {peak_mb:.0f} MB with the bomb, '
              f'{base_mb:.0f} MB without')
    assert code == 0, output
    assert 'Traceback' not in output
    assert _summary(output) == (GOOD + bombs, bombs, f'oversized: {bombs}')
    assert '16777216 pixels' in output and '(raise --max-image-pixels to accept it)' in output
    assert peak_mb < base_mb + MAX_GROWTH_MB and peak_mb < MAX_PEAK_MB
    # Every good frame went through: the same recognitions as without the bomb, the frame
    # indices (positions on the topic) shifted past it.
    assert len(lines) == len(clean) == GOOD - 7 + 1 > 0  # one clip spans 7 frames; hop 1
    for with_bomb, without in zip(lines, clean):
        assert with_bomb['stamp'] == without['stamp']
        assert with_bomb['top'] == without['top']
        assert with_bomb['frame'] == without['frame'] + (bombs if without['frame'] >= BOMB_AT
                                                         else 0)


def test_max_image_pixels_option(tmp_path, model, caplog):
    caplog.set_level(logging.INFO)
    bag = _compressed_bag(tmp_path / 'bag', bomb=False)
    out = tmp_path / 'small.jsonl'
    argv = ['run', '--no-progress', '--source', str(bag), '--model', str(model), '--output',
            str(out), '--max-image-pixels', str(32 * 24 - 1)]
    assert cli.main(argv) == 0
    assert out.read_text() == ''
    assert f'frames read {GOOD}, dropped {GOOD} (oversized: {GOOD})' in caplog.text
    argv[-1] = str(32 * 24)
    argv[argv.index(str(out))] = str(tmp_path / 'exact.jsonl')
    assert cli.main(argv) == 0
    assert f'frames read {GOOD}, dropped 0,' in caplog.text
    argv[-1] = '0'
    assert cli.main(argv) == 2
    assert '--max-image-pixels must be >= 1, got 0' in caplog.text

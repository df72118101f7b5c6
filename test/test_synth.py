"""The synthetic temporal-actions benchmark: determinism, class semantics in image coordinates,
equal single-frame distributions within reversal pairs, and the UCF-101 layout on disk."""

import re

import cv2
import numpy as np
import pytest

from action_recognition.cli import main as cli_main
from action_recognition.data.clips import synthetic_clips
from action_recognition.data.synth_clips import CLASSES
from action_recognition.data.synth_clips import clip_rng
from action_recognition.data.synth_clips import generate_clip
from action_recognition.data.synth_clips import generate_clip_with_meta
from action_recognition.data.synth_clips import generate_clips
from action_recognition.data.synth_clips import HFLIP_SWAP
from action_recognition.data.synth_clips import REVERSAL_PAIRS
from action_recognition.data.synth_clips import REVERSE_SWAP
from action_recognition.data.synth_clips import VFLIP_SWAP
from action_recognition.data.synth_files import write_dataset
from action_recognition.data.video import read_video
from action_recognition.spec import ModelSpec
from action_recognition.training.datasets import ClipDataset
from action_recognition.training.readers import read_ucf101

SIZE = 48
FRAMES = 8
MOTION = ('move_left', 'move_right', 'move_up', 'move_down', 'rotate_cw', 'rotate_ccw', 'grow',
          'shrink')


def _frame_stats(label, count, seed, size=SIZE, frames=FRAMES):
    """Per-frame actor statistics ``[count, T, 4]``: centroid x, y (fractions of the frame, y =
    row) and area fraction measured on the rendered actor masks, and the angle modulo 360."""
    out = np.zeros((count, frames, 4))
    for i in range(count):
        _, meta = generate_clip_with_meta(label, rng=clip_rng(seed, i), frames=frames,
                                          size=size, masks=True)
        assert meta.masks is not None
        for t in range(frames):
            ys, xs = np.nonzero(meta.masks[t])
            assert len(xs) > 0
            out[i, t] = (xs.mean() / size, ys.mean() / size, len(xs) / size**2,
                         meta.angle[t] % 360)
    return out


@pytest.fixture(scope='module')
def stats():
    return {label: _frame_stats(label, 120, seed=10 + c) for c, label in enumerate(CLASSES)
            if label not in ('appear', 'disappear')}


def _summary(frames):
    """Mean and standard deviation of x, y, area over frames ``[N, 4]`` (angle separately)."""
    return np.concatenate([frames[:, :3].mean(0), frames[:, :3].std(0)])


def test_class_list_and_label_maps():
    assert len(CLASSES) == 11 and CLASSES[0] == 'static'
    idx = CLASSES.index
    assert HFLIP_SWAP[idx('move_left')] == idx('move_right')
    assert HFLIP_SWAP[idx('rotate_cw')] == idx('rotate_ccw')
    assert HFLIP_SWAP[idx('move_up')] == idx('move_up')
    assert VFLIP_SWAP[idx('move_up')] == idx('move_down')
    assert VFLIP_SWAP[idx('rotate_ccw')] == idx('rotate_cw')
    assert VFLIP_SWAP[idx('move_left')] == idx('move_left')
    for a, b in REVERSAL_PAIRS:
        assert REVERSE_SWAP[idx(a)] == idx(b) and REVERSE_SWAP[idx(b)] == idx(a)
    assert REVERSE_SWAP[idx('static')] == idx('static')


def test_generator_is_deterministic_and_seed_dependent():
    a = generate_clip('rotate_cw', rng=np.random.default_rng(3), frames=6, size=32)
    b = generate_clip('rotate_cw', rng=np.random.default_rng(3), frames=6, size=32)
    c = generate_clip('rotate_cw', rng=np.random.default_rng(4), frames=6, size=32)
    assert a.dtype == np.uint8 and a.shape == (6, 32, 32, 3)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)
    clips, labels = generate_clips(13, seed=5, frames=4, size=32)
    again, _ = generate_clips(2, seed=5, frames=4, size=32, start=11)
    assert clips.shape == (13, 4, 32, 32, 3)
    assert labels.tolist() == [i % 11 for i in range(13)]
    assert np.array_equal(clips[11:], again)


def test_bad_arguments_are_rejected():
    with pytest.raises(ValueError, match='unknown class'):
        generate_clip('jump', rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match='at least 2 frames'):
        generate_clip('static', rng=np.random.default_rng(0), frames=1)


@pytest.mark.parametrize('pair', REVERSAL_PAIRS)
def test_partner_is_the_time_reversed_clip(pair):
    for seed in range(3):
        first = generate_clip(pair[0], rng=np.random.default_rng(seed), frames=5, size=32)
        second = generate_clip(pair[1], rng=np.random.default_rng(seed), frames=5, size=32)
        assert np.array_equal(first[::-1], second)
        assert not np.array_equal(first, second)


@pytest.mark.parametrize('pair', REVERSAL_PAIRS[:4])
def test_reversal_partners_share_single_frame_distribution(stats, pair):
    first, second = (stats[label].reshape(-1, 4) for label in pair)
    diff = np.abs(_summary(first) - _summary(second))
    # Means and spreads of position (fraction of the frame) and area agree closely ...
    assert diff[[0, 1, 3, 4]].max() < 0.045, diff
    assert diff[[2, 5]].max() < 0.2 * _summary(first)[2], diff
    # ... and so do the angles (uniform on the circle): compare circular means.
    for frames in (first, second):
        angle = np.deg2rad(frames[:, 3])
        assert abs(np.cos(angle).mean()) < 0.1 and abs(np.sin(angle).mean()) < 0.1
    # The same statistic does see the difference when time is not pooled: early frames of the
    # two classes differ (the actor starts at the other end, or at the other size).
    early_a = stats[pair[0]][:, :2].reshape(-1, 4)
    early_b = stats[pair[1]][:, :2].reshape(-1, 4)
    if pair[0].startswith('move'):
        assert np.abs(_summary(early_a) - _summary(early_b))[:2].max() > 0.1
    if pair[0] == 'grow':
        assert early_b[:, 2].mean() > 2 * early_a[:, 2].mean()


def test_static_frames_match_the_moving_classes(stats):
    moving = np.concatenate([stats[label].reshape(-1, 4) for label in MOTION])
    static = stats['static'].reshape(-1, 4)
    diff = np.abs(_summary(moving) - _summary(static))
    assert diff[[0, 1, 3, 4]].max() < 0.045, diff
    assert diff[[2, 5]].max() < 0.2 * _summary(moving)[2], diff
    # Static really is static: the actor mask does not move or change size within a clip
    # (apart from camera shake/pan of a few pixels).
    per_clip = stats['static']
    assert np.abs(per_clip[:, :, :2] - per_clip[:, :1, :2]).max() < 0.1
    assert np.ptp(per_clip[:, :, 3], axis=1).max() == 0


@pytest.mark.parametrize(('label', 'axis', 'sign'), [
    ('move_right', 0, 1), ('move_left', 0, -1), ('move_down', 1, 1), ('move_up', 1, -1)])
def test_moves_are_in_image_coordinates(stats, label, axis, sign):
    track = stats[label]
    shift = track[:, -1, :2] - track[:, 0, :2]  # (dx, dy) in fractions, y = row index
    along = sign * shift[:, axis]
    across = shift[:, 1 - axis]
    # 25-50% of the frame, +- rasterisation, camera pan (< 2.5%) and shake (1 pixel)
    assert along.min() > 0.2
    assert along.max() < 0.6
    angle = np.degrees(np.arctan2(np.abs(across), along))
    assert angle.max() < 15 + 10  # +-15 degrees, plus pan, shake and pixel rounding
    assert np.median(angle) < 10


@pytest.mark.parametrize(('label', 'ratio'), [('grow', 1), ('shrink', -1)])
def test_grow_and_shrink_change_area(label, ratio):
    # At 96 pixels even the smallest actor's thin parts are resolved by the mask.
    area = _frame_stats(label, 10, seed=3, size=96)[:, :, 2]
    change = np.exp(np.log(area[:, -1] / area[:, 0]) * ratio)  # area ratio = size ratio ** 2
    assert change.min() > 1.7**2 * 0.85
    assert change.max() < 2.6**2 * 1.15


def _best_rotation(mask_a, mask_b):
    """Angle (cv2 convention, degrees counter-clockwise on screen) that best maps a to b."""
    ys, xs = np.nonzero(mask_a)
    yb, xb = np.nonzero(mask_b)
    a = mask_a.astype(np.float32)
    scores = []
    angles = np.arange(-40, 41, 2)
    for angle in angles:
        matrix = cv2.getRotationMatrix2D((float(xs.mean()), float(ys.mean())), float(angle), 1.0)
        matrix[:, 2] += (xb.mean() - xs.mean(), yb.mean() - ys.mean())
        warped = cv2.warpAffine(a, matrix, a.shape[::-1]) > 0.5
        scores.append((warped & mask_b).sum() / max((warped | mask_b).sum(), 1))
    return float(angles[int(np.argmax(scores))])


@pytest.mark.parametrize(('label', 'clockwise'), [('rotate_cw', True), ('rotate_ccw', False)])
def test_rotation_direction_on_screen(label, clockwise):
    for i in range(6):
        _, meta = generate_clip_with_meta(label, rng=clip_rng(77, i), frames=8, size=64,
                                          masks=True)
        assert meta.masks is not None
        steps = np.diff(meta.angle)
        total = meta.angle[-1] - meta.angle[0]
        assert 100 <= abs(total) <= 250 and np.abs(steps).max() <= 35 + 1e-9
        for t in np.flatnonzero(np.abs(steps) >= 12)[:3]:
            measured = _best_rotation(meta.masks[t], meta.masks[t + 1])
            # cv2 counts counter-clockwise as positive: clockwise on screen is negative.
            assert (measured < 0) == clockwise, (i, t, measured, steps[t])


def test_appear_and_disappear_fade():
    for label, sign in (('appear', 1), ('disappear', -1)):
        for i in range(5):
            clip, meta = generate_clip_with_meta(label, rng=clip_rng(5, i), frames=8, size=48,
                                                 masks=True)
            assert sign * (meta.alpha[-1] - meta.alpha[0]) == pytest.approx(1.0)
            assert np.all(sign * np.diff(meta.alpha) >= 0)
            assert meta.masks is not None
            # The actor's pixels are visibly different from where it is absent.
            shown, hidden = (-1, 0) if sign > 0 else (0, -1)
            mask = meta.masks[shown]
            diff = np.abs(clip[shown].astype(int) - clip[hidden].astype(int)).sum(-1)
            assert diff[mask].mean() > 40


def test_write_dataset_layout_determinism_and_reader(tmp_path):
    out = write_dataset(tmp_path / 'a', per_class=4, seed=9, frames=4, size=32, progress=False)
    videos = sorted((out / 'videos').rglob('*.avi'))
    assert len(videos) == 4 * 11
    assert (out / 'videos' / 'move_left' / 'v_move_left_g01_c01.avi').is_file()
    assert max(p.stat().st_size for p in videos) < 40_000
    lists = out / 'ucfTrainTestlist'
    assert (lists / 'classInd.txt').read_text().splitlines()[1] == '2 move_left'
    train, classes = read_ucf101(out, split=1, train=True)
    test, _ = read_ucf101(out, split=1, train=False)
    assert classes == list(CLASSES)
    assert len(train) + len(test) == 44 and len(test) > 0
    group = {re.search(r'_g(\d+)_c', item.path.name)[1] for item in train}
    assert group.isdisjoint({re.search(r'_g(\d+)_c', item.path.name)[1] for item in test})
    assert all(item.path.is_file() and item.path.parent.name == classes[item.label]
               for item in train + test)
    # Lossless and deterministic: the files decode to exactly the generator's clips.
    c = CLASSES.index('rotate_cw')
    expected = generate_clip('rotate_cw', rng=clip_rng(9, c * 1_000_000 + 1), frames=4, size=32)
    assert np.array_equal(read_video(out / 'videos' / 'rotate_cw' / 'v_rotate_cw_g02_c01.avi'),
                          expected)
    spec = ModelSpec(model='m', num_classes=11, num_frames=4, input_size=(32, 32),
                     resize_short=32, labels=CLASSES)
    clip, label = ClipDataset(test[:1], spec, train=False)[0]
    assert clip.shape == (4, 3, 32, 32) and label == test[0].label
    # Same seed, second run: identical decoded frames everywhere.
    again = write_dataset(tmp_path / 'b', per_class=4, seed=9, frames=4, size=32, progress=False)
    for path in videos[::7]:
        assert np.array_equal(read_video(path), read_video(again / path.relative_to(out)))


def test_synth_command(tmp_path, capsys):
    code = cli_main(['synth', '--out', str(tmp_path), '--per-class', '2', '--frames', '3',
                     '--size', '16', '--seed', '1', '--splits', '2', '--codec', 'mjpeg',
                     '--no-progress'])
    assert code == 0
    assert 'wrote 22 clips' in capsys.readouterr().out
    assert (tmp_path / 'ucfTrainTestlist' / 'testlist02.txt').is_file()
    video = read_video(tmp_path / 'videos' / 'grow' / 'v_grow_g02_c01.avi')
    c = CLASSES.index('grow')
    expected = generate_clip('grow', rng=clip_rng(1, c * 1_000_000 + 1), frames=3, size=16)
    assert video.shape == (3, 16, 16, 3)
    assert np.abs(video.astype(int) - expected).mean() < 6  # MJPEG: close, not exact
    assert cli_main(['synth', '--out', str(tmp_path), '--per-class', '1']) == 2


def test_synthetic_clips_are_the_generated_clips_prepared_for_the_spec():
    labels = tuple(reversed(CLASSES))
    spec = ModelSpec(model='tiny', num_classes=11, num_frames=4, frame_stride=2, labels=labels,
                     input_size=(32, 32), resize_short=36)
    clips, got = synthetic_clips(spec, 3, seed=5)
    raw, raw_labels = generate_clips(3, seed=5, frames=spec.clip_span, size=36)
    assert clips.shape == (3, 4, 3, 32, 32) and clips.dtype == np.uint8
    # Frame t of a clip is raw frame stride * t, centre-cropped (36 -> 32), channels first.
    assert np.array_equal(clips[1, 2], raw[1, 4, 2:34, 2:34].transpose(2, 0, 1))
    assert got is not None and [labels[i] for i in got] == [CLASSES[k] for k in raw_labels]
    other = ModelSpec(model='tiny', num_classes=2, num_frames=4, labels=('a', 'b'),
                      input_size=(32, 32), resize_short=36)
    assert synthetic_clips(other, 2, seed=5)[1] is None

"""Clip augmentation: one crop for all frames, label-swapping flips, test-time crops."""

import numpy as np
import pytest

from action_recognition.data.synth_clips import CLASSES
from action_recognition.data.synth_clips import clip_rng
from action_recognition.data.synth_clips import generate_clip_with_meta
from action_recognition.data.synth_clips import HFLIP_SWAP
from action_recognition.data.synth_clips import REVERSE_SWAP
from action_recognition.data.synth_clips import VFLIP_SWAP
from action_recognition.training.transforms import CenterCrop
from action_recognition.training.transforms import Compose
from action_recognition.training.transforms import MultiScaleCrop
from action_recognition.training.transforms import RandomHorizontalFlip
from action_recognition.training.transforms import RandomTimeReversal
from action_recognition.training.transforms import RandomVerticalFlip
from action_recognition.training.transforms import ThreeCrop


def _coordinate_clip(frames=3, height=40, width=60):
    """Pixel (t, y, x) holds (t, y, x): shows exactly which source pixel ended where."""
    t, y, x = np.meshgrid(np.arange(frames), np.arange(height), np.arange(width), indexing='ij')
    return np.stack([t, y, x], -1).astype(np.uint8)


def test_multiscale_crop_same_window_for_all_frames_and_varied_scales():
    clip = _coordinate_clip()
    crop = MultiScaleCrop(16, scales=(1.0, 0.875, 0.75, 0.66))
    rng = np.random.default_rng(0)
    boxes = set()
    for _ in range(60):
        box = crop.crop_box(40, 60, rng)
        top, left, h, w = box
        assert top >= 0 and top + h <= 40 and left >= 0 and left + w <= 60
        assert {h, w} <= {40, 35, 30, 26}
        boxes.add(box)
    assert len({(h, w) for _, _, h, w in boxes}) >= 6
    assert len({(t, left) for t, left, _, _ in boxes}) >= 6
    out, label = crop(clip, 4, np.random.default_rng(1))
    assert out.shape == (3, 16, 16, 3) and out.dtype == np.uint8 and label == 4
    # Same window in every frame: the y/x coordinate channels agree across frames.
    assert np.array_equal(out[0, ..., 1:], out[2, ..., 1:])
    assert out[2, ..., 0].min() == 2


def test_flip_swaps_move_left_to_move_right_and_the_motion_agrees():
    clip, meta = generate_clip_with_meta('move_left', rng=clip_rng(0, 1), frames=6, size=48,
                                         masks=True)
    label = CLASSES.index('move_left')
    flip = RandomHorizontalFlip(1.0, HFLIP_SWAP)
    out, new_label = flip(clip, label, np.random.default_rng(0))
    assert CLASSES[new_label] == 'move_right'
    assert np.array_equal(out, clip[:, :, ::-1])
    assert meta.masks is not None
    flipped_masks = meta.masks[:, :, ::-1]
    xs = [np.nonzero(m)[1].mean() for m in flipped_masks]
    assert xs[-1] - xs[0] > 0.2 * 48  # the flipped actor moves right
    rotate = CLASSES.index('rotate_cw')
    assert flip(clip, rotate, np.random.default_rng(0))[1] == CLASSES.index('rotate_ccw')
    up = CLASSES.index('move_up')
    assert flip(clip, up, np.random.default_rng(0))[1] == up


def test_flip_can_be_switched_off_and_keeps_labels_without_a_map():
    clip = _coordinate_clip()
    label = CLASSES.index('move_left')
    off = RandomHorizontalFlip(1.0, HFLIP_SWAP, enabled=False)
    out, new = off(clip, label, np.random.default_rng(0))
    assert out is clip and new == label
    plain = RandomHorizontalFlip(1.0)
    out, new = plain(clip, label, np.random.default_rng(0))
    assert new == label and np.array_equal(out, clip[:, :, ::-1])
    half = RandomHorizontalFlip(0.5, HFLIP_SWAP)
    rng = np.random.default_rng(3)
    flips = sum(half(clip, label, rng)[1] != label for _ in range(200))
    assert 70 < flips < 130
    with pytest.raises(ValueError, match='probability'):
        RandomHorizontalFlip(1.5)


def test_vertical_flip_and_time_reversal_swap_their_pairs():
    clip = _coordinate_clip()
    rng = np.random.default_rng(0)
    out, label = RandomVerticalFlip(1.0, VFLIP_SWAP)(clip, CLASSES.index('move_up'), rng)
    assert CLASSES[label] == 'move_down' and np.array_equal(out, clip[:, ::-1])
    out, label = RandomTimeReversal(1.0, REVERSE_SWAP)(clip, CLASSES.index('appear'), rng)
    assert CLASSES[label] == 'disappear' and np.array_equal(out, clip[::-1])
    pipeline = Compose([RandomHorizontalFlip(1.0, HFLIP_SWAP),
                        RandomVerticalFlip(1.0, VFLIP_SWAP)])
    out, label = pipeline(clip, CLASSES.index('rotate_cw'), rng)
    assert CLASSES[label] == 'rotate_cw'  # two mirrors make a half turn: direction kept


def test_test_time_crops():
    clip = _coordinate_clip(height=40, width=60)
    (centre,) = CenterCrop(40).views(clip)
    assert centre.shape == (3, 40, 40, 3) and centre[0, 0, 0, 2] == 10
    views = ThreeCrop(40).views(clip)
    assert [int(v[0, 0, 0, 2]) for v in views] == [0, 10, 20]
    tall = _coordinate_clip(height=60, width=40)
    assert [int(v[0, 0, 0, 1]) for v in ThreeCrop(40).views(tall)] == [0, 10, 20]
    with pytest.raises(ValueError, match='cannot crop'):
        CenterCrop(50).views(clip)
    with pytest.raises(ValueError, match='uint8'):
        CenterCrop(8).views(clip.astype(np.float32))

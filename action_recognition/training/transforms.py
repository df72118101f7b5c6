"""Clip augmentation: the same spatial transform for every frame of a clip.

All transforms take a ``uint8`` RGB clip ``[T, H, W, 3]`` (numpy), and return a clip of the same
kind. Training transforms are called as ``transform(clip, label, rng) -> (clip, label)`` because
some change the label: a horizontal flip turns "move left" into "move right" (Something-Something
and the synthetic benchmark have such classes), so :class:`RandomHorizontalFlip` takes a label
map and can be switched off. Test-time crops (:class:`CenterCrop`, :class:`ThreeCrop`) have
``views(clip) -> list of clips`` for multi-crop testing.

Normalisation is not done here: clips stay ``uint8`` up to the device, where
:class:`action_recognition.data.normalize.Normalize` (mean/std from the model's spec) turns
them into floats.
"""

from __future__ import annotations

from collections.abc import Mapping
from collections.abc import Sequence
from typing import Protocol

import cv2
import numpy as np

from action_recognition.data.preprocess import center_crop

__all__ = [
    'ClipTransform', 'Compose', 'MultiScaleCrop', 'RandomHorizontalFlip', 'RandomVerticalFlip',
    'RandomTimeReversal', 'Resize', 'CenterCrop', 'ThreeCrop', 'resize_clip', 'check_clip',
]


class ClipTransform(Protocol):
    """``(clip [T, H, W, 3] uint8, label, rng) -> (clip, label)``."""

    def __call__(self, clip: np.ndarray, label: int,
                 rng: np.random.Generator) -> tuple[np.ndarray, int]: ...


def _pair(size: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(size, int):
        return size, size
    height, width = (int(s) for s in size)
    return height, width


def check_clip(clip: np.ndarray) -> None:
    """Raise ``ValueError`` unless ``clip`` is ``uint8`` ``[T, H, W, 3]`` with ``T >= 1``."""
    if not isinstance(clip, np.ndarray) or clip.ndim != 4 or clip.shape[3] != 3:
        shape = getattr(clip, 'shape', None)
        raise ValueError(f'expected a clip [T, H, W, 3], got {type(clip).__name__} {shape}')
    if clip.dtype != np.uint8:
        raise ValueError(f'expected a uint8 clip, got {clip.dtype}')
    if min(clip.shape[:3]) < 1:
        raise ValueError(f'empty clip of shape {clip.shape}')


def resize_clip(clip: np.ndarray, size: int | Sequence[int]) -> np.ndarray:
    """Resize every frame of ``[T, H, W, 3]`` to ``size = (h, w)``."""
    height, width = _pair(size)
    if clip.shape[1:3] == (height, width):
        return clip
    shrinking = height * width < clip.shape[1] * clip.shape[2]
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    return np.stack([cv2.resize(f, (width, height), interpolation=interpolation) for f in clip])


class Compose:
    """Apply training transforms in order."""

    def __init__(self, transforms: Sequence[ClipTransform]) -> None:
        self.transforms = list(transforms)

    def __call__(self, clip: np.ndarray, label: int,
                 rng: np.random.Generator) -> tuple[np.ndarray, int]:
        for transform in self.transforms:
            clip, label = transform(clip, label, rng)
        return clip, label

    def __repr__(self) -> str:
        return f'Compose({self.transforms!r})'


class Resize:
    """Resize every frame to ``size = (h, w)`` (deterministic)."""

    def __init__(self, size: int | Sequence[int]) -> None:
        self.size = _pair(size)

    def __call__(self, clip: np.ndarray, label: int,
                 rng: np.random.Generator) -> tuple[np.ndarray, int]:
        check_clip(clip)
        return resize_clip(clip, self.size), label


class MultiScaleCrop:
    """TSN's multi-scale crop: a crop of random scale and aspect, resized to ``size``.

    The crop's height and width are each ``scale * min(H, W)`` for scales from ``scales``, at
    most ``max_distort`` steps apart in the list (so aspect ratios stay moderate). With
    ``fix_crop`` the crop sits at one of 5 fixed places (4 corners, centre; 13 with
    ``more_fix_crop``), otherwise anywhere. The same crop is used for every frame.
    """

    def __init__(self, size: int | Sequence[int], *,
                 scales: Sequence[float] = (1.0, 0.875, 0.75, 0.66), max_distort: int = 1,
                 fix_crop: bool = True, more_fix_crop: bool = True) -> None:
        self.size = _pair(size)
        if not scales or min(scales) <= 0 or max(scales) > 1:
            raise ValueError(f'scales must be in (0, 1], got {scales}')
        self.scales = tuple(float(s) for s in scales)
        self.max_distort = int(max_distort)
        self.fix_crop = fix_crop
        self.more_fix_crop = more_fix_crop

    def crop_box(self, height: int, width: int,
                 rng: np.random.Generator) -> tuple[int, int, int, int]:
        """A random ``(top, left, crop_h, crop_w)`` for a ``height x width`` frame."""
        base = min(height, width)
        sizes = [max(1, int(base * s)) for s in self.scales]
        pairs = [(h, w) for i, h in enumerate(sizes) for j, w in enumerate(sizes)
                 if abs(i - j) <= self.max_distort]
        crop_h, crop_w = pairs[int(rng.integers(len(pairs)))]
        if not self.fix_crop:
            top = int(rng.integers(0, height - crop_h + 1))
            left = int(rng.integers(0, width - crop_w + 1))
            return top, left, crop_h, crop_w
        offsets = self._fixed_offsets(height, width, crop_h, crop_w)
        top, left = offsets[int(rng.integers(len(offsets)))]
        return top, left, crop_h, crop_w

    def _fixed_offsets(self, height: int, width: int, crop_h: int,
                       crop_w: int) -> list[tuple[int, int]]:
        h_step = (height - crop_h) // 4
        w_step = (width - crop_w) // 4
        offsets = [(0, 0), (0, 4 * w_step), (4 * h_step, 0), (4 * h_step, 4 * w_step),
                   (2 * h_step, 2 * w_step)]
        if self.more_fix_crop:
            offsets += [(2 * h_step, 0), (2 * h_step, 4 * w_step), (4 * h_step, 2 * w_step),
                        (0, 2 * w_step), (h_step, w_step), (h_step, 3 * w_step),
                        (3 * h_step, w_step), (3 * h_step, 3 * w_step)]
        return offsets

    def __call__(self, clip: np.ndarray, label: int,
                 rng: np.random.Generator) -> tuple[np.ndarray, int]:
        check_clip(clip)
        top, left, crop_h, crop_w = self.crop_box(clip.shape[1], clip.shape[2], rng)
        cropped = clip[:, top:top + crop_h, left:left + crop_w]
        return np.ascontiguousarray(resize_clip(cropped, self.size)), label

    def __repr__(self) -> str:
        return f'MultiScaleCrop(size={self.size}, scales={self.scales})'


class _RandomFlip:
    axis = 2
    name = 'flip'

    def __init__(self, p: float = 0.5, label_map: Mapping[int, int] | None = None, *,
                 enabled: bool = True) -> None:
        if not 0.0 <= p <= 1.0:
            raise ValueError(f'flip probability must be in [0, 1], got {p}')
        self.p = float(p)
        self.label_map = dict(label_map) if label_map is not None else None
        self.enabled = enabled

    def __call__(self, clip: np.ndarray, label: int,
                 rng: np.random.Generator) -> tuple[np.ndarray, int]:
        check_clip(clip)
        if not self.enabled or self.p == 0.0 or rng.random() >= self.p:
            return clip, label
        flipped = np.ascontiguousarray(np.flip(clip, axis=self.axis))
        if self.label_map is not None:
            label = int(self.label_map.get(int(label), label))
        return flipped, label

    def __repr__(self) -> str:
        mapped = 'none' if self.label_map is None else f'{len(self.label_map)} entries'
        return (f'{type(self).__name__}(p={self.p}, enabled={self.enabled}, '
                f'label_map={mapped})')


class RandomHorizontalFlip(_RandomFlip):
    """Mirror left-right with probability ``p``; ``label_map`` swaps labels (e.g. left<->right).

    ``enabled=False`` (or ``p=0``) switches the flip off, for data sets whose classes a mirror
    would change and that have no label map. Labels missing from the map are kept.
    """

    axis = 2


class RandomVerticalFlip(_RandomFlip):
    """Mirror top-bottom with probability ``p``; ``label_map`` swaps labels (e.g. up<->down)."""

    axis = 1


class RandomTimeReversal(_RandomFlip):
    """Play the clip backwards with probability ``p``; ``label_map`` swaps reversal partners.

    Only meaningful with a map that covers every class whose meaning changes when reversed
    (e.g. :data:`action_recognition.data.synth_clips.REVERSE_SWAP`).
    """

    axis = 0


class CenterCrop:
    """The centre ``size = (h, w)`` crop of every frame (test time, one view)."""

    def __init__(self, size: int | Sequence[int]) -> None:
        self.size = _pair(size)

    def views(self, clip: np.ndarray) -> list[np.ndarray]:
        check_clip(clip)
        return [np.ascontiguousarray(center_crop(clip, self.size))]

    def __call__(self, clip: np.ndarray, label: int,
                 rng: np.random.Generator) -> tuple[np.ndarray, int]:
        return self.views(clip)[0], label


class ThreeCrop:
    """Three ``size`` crops along the longer side: start, centre, end (test-time multi-crop).

    For a square frame the crops run along the width (left, centre, right); ``views`` returns
    them in that order.
    """

    def __init__(self, size: int | Sequence[int]) -> None:
        self.size = _pair(size)

    def views(self, clip: np.ndarray) -> list[np.ndarray]:
        check_clip(clip)
        crop_h, crop_w = self.size
        height, width = clip.shape[1:3]
        if height < crop_h or width < crop_w:
            raise ValueError(f'cannot crop {crop_h}x{crop_w} from {height}x{width} frames')
        top, left = (height - crop_h) // 2, (width - crop_w) // 2
        if height > width:
            boxes = [(0, left), (top, left), (height - crop_h, left)]
        else:
            boxes = [(top, 0), (top, left), (top, width - crop_w)]
        return [np.ascontiguousarray(clip[:, y:y + crop_h, x:x + crop_w]) for y, x in boxes]

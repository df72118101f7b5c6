"""The synthetic temporal-actions benchmark: a seeded generator of clips that need motion.

No public video data set can be downloaded where this package is tested, so this generator gives
a quick, honest check that a model learns motion. Every clip shows one *actor* (a flat polygon
without rotational symmetry) doing one of 11 actions, defined in image coordinates (x to the
right, y = row index growing downwards):

- ``static``: the actor is present and does not change (a frozen frame of a moving clip, so its
  position, size and angle follow the same distribution as in the moving classes).
- ``move_left``, ``move_right``, ``move_up``, ``move_down``: the actor translates by 25-50% of the
  frame side across the clip, its direction within +-15 degrees of the named one.
- ``rotate_cw``, ``rotate_ccw``: the actor turns by 100-250 degrees, clockwise as seen on screen
  (at most 35 degrees per frame, to avoid aliasing; so clips of fewer than 4 frames turn by
  less than 100 degrees).
- ``grow``, ``shrink``: the actor's size changes by a ratio of 1.7-2.6.
- ``appear``, ``disappear``: the actor fades in / out.

Each moving class and its time-reversed partner (:data:`REVERSAL_PAIRS`) share the same
distribution of single frames, by construction: a clip of the second class of a pair is a clip
of the first, generated the same way, played backwards (the whole scene, background, camera,
distractors and noise included; with the same random generator state the partner's clip is
exactly the reversed clip). So no single frame, taken at a random time, tells the members
of a pair apart; only the order of frames does.

Nuisances varied per clip: background (solid, gradient, noise, stripes, clutter), actor shape
(8 kinds, mirrored at random), colour (at least :data:`~action_recognition.data.synth_scene.
MIN_COLOUR_DISTANCE` from the background colours), size, speed and speed profile, 0-2
distractor objects of the same shapes drifting slowly, camera pan (well below the slowest actor
speed) and shake, blur and sensor noise. The shapes, colours and backgrounds are drawn by
:mod:`~action_recognition.data.synth_scene`.

Clips are ``uint8`` RGB arrays ``[T, size, size, 3]``; :func:`generate_clips` makes a batch
``[N, T, size, size, 3]`` in memory. Writing the data set to disk is
:mod:`~action_recognition.data.synth_files`'s.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
import math
from typing import Any

import cv2
import numpy as np

from action_recognition.data.synth_scene import BACKGROUNDS
from action_recognition.data.synth_scene import far_colour
from action_recognition.data.synth_scene import fixed_point
from action_recognition.data.synth_scene import make_background
from action_recognition.data.synth_scene import MIN_DISTRACTOR_DISTANCE
from action_recognition.data.synth_scene import place_polygon
from action_recognition.data.synth_scene import random_polygon
from action_recognition.data.synth_scene import SHIFT

__all__ = [
    'CLASSES', 'REVERSAL_PAIRS', 'HFLIP_SWAP', 'VFLIP_SWAP', 'REVERSE_SWAP', 'ClipMeta',
    'generate_clip', 'generate_clip_with_meta', 'generate_clips', 'clip_rng',
]

CLASSES: tuple[str, ...] = (
    'static', 'move_left', 'move_right', 'move_up', 'move_down', 'rotate_cw', 'rotate_ccw',
    'grow', 'shrink', 'appear', 'disappear',
)

# (canonical, reversed): the second class is the first played backwards.
REVERSAL_PAIRS: tuple[tuple[str, str], ...] = (
    ('move_right', 'move_left'),
    ('move_down', 'move_up'),
    ('rotate_cw', 'rotate_ccw'),
    ('grow', 'shrink'),
    ('appear', 'disappear'),
)


def _swap_map(pairs: Sequence[tuple[str, str]]) -> dict[int, int]:
    mapping = {i: i for i in range(len(CLASSES))}
    for a, b in pairs:
        mapping[CLASSES.index(a)] = CLASSES.index(b)
        mapping[CLASSES.index(b)] = CLASSES.index(a)
    return mapping


# Label maps (class index -> class index) for augmentations that change the action.
HFLIP_SWAP: dict[int, int] = _swap_map([('move_left', 'move_right'), ('rotate_cw', 'rotate_ccw')])
VFLIP_SWAP: dict[int, int] = _swap_map([('move_up', 'move_down'), ('rotate_cw', 'rotate_ccw')])
REVERSE_SWAP: dict[int, int] = _swap_map(REVERSAL_PAIRS)

_CANONICAL = {a: a for a, _ in REVERSAL_PAIRS} | {b: a for a, b in REVERSAL_PAIRS}
_REVERSED = {b for _, b in REVERSAL_PAIRS}
_MOTION_CANONICAL = ('move_right', 'move_down', 'rotate_cw', 'grow')

# Action ranges from the benchmark's definition.
_MOVE_FRACTION = (0.25, 0.50)
_MOVE_DIRECTION_JITTER = 15.0
_ROTATION_DEGREES = (100.0, 250.0)
_MAX_DEGREES_PER_FRAME = 35.0
_GROW_RATIO = (1.7, 2.6)
# Actor size: diameter of the bounding circle as a fraction of the frame side.
_ACTOR_SIZE = (0.26, 0.40)
_GROW_MID_SIZE = (0.27, 0.33)
_PAN_FRACTION_OF_SLOWEST = 0.1
_DISTRACTOR_DRIFT = 0.3  # distractor speed, fraction of the slowest actor speed
_DISTRACTOR_SPIN = 0.2  # distractor spin, fraction of the slowest actor rotation
_BORDER = 0.03  # the actor's bounding circle stays this far inside the frame (camera shake)


@dataclass
class ClipMeta:
    """Ground truth of one generated clip (image coordinates, per frame).

    Attributes:
        label: class name.
        shape: actor shape name (one of :data:`~action_recognition.data.synth_scene.SHAPES`).
        mirrored: whether the shape is flipped.
        background: background kind (one of :data:`~action_recognition.data.synth_scene.
            BACKGROUNDS`).
        center: ``[T, 2]`` actor centre ``(x, y)`` in pixels of the frame (y = row).
        size: ``[T]`` actor bounding-circle diameter as a fraction of the frame side.
        angle: ``[T]`` actor angle in degrees; growing angle = clockwise on screen.
        alpha: ``[T]`` actor opacity in ``[0, 1]``.
        masks: ``[T, S, S]`` bool actor masks, pixels at least half covered by the actor (only
            when asked for; the actor is drawn on top, so nothing hides it).
    """

    label: str
    shape: str
    mirrored: bool
    background: str
    center: np.ndarray
    size: np.ndarray
    angle: np.ndarray
    alpha: np.ndarray
    masks: np.ndarray | None = None


@dataclass
class _Track:
    """Per-frame pose of one object in world pixels (camera offset not applied)."""

    cx: np.ndarray
    cy: np.ndarray
    radius: np.ndarray  # bounding radius in pixels
    angle: np.ndarray  # degrees, clockwise on screen
    alpha: np.ndarray

    def reversed(self) -> _Track:
        return _Track(self.cx[::-1], self.cy[::-1], self.radius[::-1], self.angle[::-1],
                      self.alpha[::-1])

    def frozen(self, t: int) -> _Track:
        n = len(self.cx)
        return _Track(np.full(n, self.cx[t]), np.full(n, self.cy[t]),
                      np.full(n, self.radius[t]), np.full(n, self.angle[t]), np.ones(n))


# ---------------------------------------------------------------------------------------------
# Motion


def _progress(rng: np.random.Generator, frames: int) -> np.ndarray:
    """Monotone progress ``[T]`` from 0 to 1: linear or eased, over all or part of the clip."""
    t = np.linspace(0.0, 1.0, frames)
    if rng.random() < 0.5:
        start, end = 0.0, 1.0
    else:
        start, end = rng.uniform(0.0, 0.2), rng.uniform(0.8, 1.0)
    u = np.clip((t - start) / (end - start), 0.0, 1.0)
    if rng.random() < 0.5:
        u = u * u * (3 - 2 * u)
    return u


def _track(label: str, rng: np.random.Generator, frames: int, size: int) -> _Track:
    """Actor track of a canonical class (first member of a pair, or a frozen one)."""
    ones = np.ones(frames)
    if label in ('static', 'appear'):
        source = _track(_MOTION_CANONICAL[int(rng.integers(len(_MOTION_CANONICAL)))], rng,
                        frames, size)
        track = source.frozen(int(rng.integers(frames)))
        if label == 'appear':
            start, end = rng.uniform(0.0, 0.3), rng.uniform(0.7, 1.0)
            t = np.linspace(0.0, 1.0, frames)
            track.alpha = np.clip((t - start) / (end - start), 0.0, 1.0)
        return track
    angle0 = rng.uniform(0.0, 360.0)
    if label == 'grow':
        ratio = rng.uniform(*_GROW_RATIO)
        mid = rng.uniform(*_GROW_MID_SIZE)
        sizes = mid / math.sqrt(ratio) * ratio ** _progress(rng, frames)
        radius = sizes * size / 2
        margin = radius.max() + _BORDER * size
        cx, cy = rng.uniform(margin, size - margin, 2)
        return _Track(cx * ones, cy * ones, radius, angle0 * ones, ones.copy())
    radius0 = rng.uniform(*_ACTOR_SIZE) * size / 2
    margin = radius0 + _BORDER * size
    if label == 'rotate_cw':
        progress = _progress(rng, frames)
        step = float(np.diff(progress).max()) if frames > 1 else 1.0
        cap = _MAX_DEGREES_PER_FRAME / max(step, 1e-9)
        if cap < _ROTATION_DEGREES[0]:
            progress = np.linspace(0.0, 1.0, frames)
            cap = _MAX_DEGREES_PER_FRAME * (frames - 1)
        total = min(rng.uniform(*_ROTATION_DEGREES), cap)
        cx, cy = rng.uniform(margin, size - margin, 2)
        return _Track(cx * ones, cy * ones, radius0 * ones, angle0 + total * progress,
                      ones.copy())
    if label in ('move_right', 'move_down'):
        base = 0.0 if label == 'move_right' else 90.0
        direction = np.deg2rad(base + rng.uniform(-_MOVE_DIRECTION_JITTER, _MOVE_DIRECTION_JITTER))
        length = rng.uniform(*_MOVE_FRACTION) * size
        dx, dy = length * np.cos(direction), length * np.sin(direction)
        mx = rng.uniform(margin + abs(dx) / 2, size - margin - abs(dx) / 2)
        my = rng.uniform(margin + abs(dy) / 2, size - margin - abs(dy) / 2)
        progress = _progress(rng, frames) - 0.5
        return _Track(mx + dx * progress, my + dy * progress, radius0 * ones, angle0 * ones,
                      ones.copy())
    raise ValueError(f'unknown class {label!r}; expected one of {CLASSES}')



# ---------------------------------------------------------------------------------------------
# Clips


def _camera(rng: np.random.Generator, size: int, slowest: float,
            centred_t: np.ndarray) -> np.ndarray:
    """The camera's offset per frame, integer ``[T, 2]``: a slow pan (well below the slowest
    actor speed) plus integer shake."""
    frames = len(centred_t)
    pan_speed = rng.uniform(0, _PAN_FRACTION_OF_SLOWEST * slowest) if rng.random() < 0.6 else 0.0
    pan_dir = rng.uniform(0, 2 * np.pi)
    shake = (int(rng.integers(1, 3)) if size >= 96 else 1) if rng.random() < 0.2 else 0
    cam = np.stack([pan_speed * np.cos(pan_dir) * centred_t,
                    pan_speed * np.sin(pan_dir) * centred_t], 1)
    if shake:
        cam += rng.integers(-shake, shake + 1, (frames, 2))
    return np.round(cam).astype(np.int64)


def _distractors(rng: np.random.Generator, actor_colour: np.ndarray, size: int, slowest: float,
                 centred_t: np.ndarray) -> list[tuple[Any, ...]]:
    """0-2 distractors: the same shapes, smaller, drifting and turning slowly; each
    ``(polygon, colour, radius, x [T], y [T], angle [T])``."""
    frames = len(centred_t)
    distractors = []
    for _ in range(int(rng.choice(3, p=[0.4, 0.35, 0.25]))):
        _, _, dpoly = random_polygon(rng)
        colour = far_colour(rng, actor_colour[None], MIN_DISTRACTOR_DISTANCE)
        radius = rng.uniform(0.5, 0.8) * rng.uniform(*_ACTOR_SIZE) * size / 2
        speed = rng.uniform(0, _DISTRACTOR_DRIFT * slowest)
        heading = rng.uniform(0, 2 * np.pi)
        start = rng.uniform(0, size, 2)
        spin = rng.uniform(-1, 1) * _DISTRACTOR_SPIN * _ROTATION_DEGREES[0] / (frames - 1)
        angle0 = rng.uniform(0, 360)
        distractors.append((dpoly, tuple(float(c) for c in colour), radius,
                            start[0] + speed * np.cos(heading) * centred_t,
                            start[1] + speed * np.sin(heading) * centred_t,
                            angle0 + spin * centred_t))
    return distractors


def _paint_actor(frame: np.ndarray, pts: np.ndarray, alpha: float,
                 colour: tuple[float, ...]) -> None:
    """Draw the actor's polygon ``pts`` into ``frame`` with opacity ``alpha`` (in place)."""
    if alpha >= 1.0:
        cv2.fillPoly(frame, fixed_point(pts), colour, cv2.LINE_AA, SHIFT)
    elif alpha > 0.0:
        cover = np.zeros(frame.shape[:2], np.uint8)
        cv2.fillPoly(cover, fixed_point(pts), 255, cv2.LINE_AA, SHIFT)
        ys, xs = np.nonzero(cover)
        if len(ys):
            y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
            weight = cover[y0:y1, x0:x1, None].astype(np.float32) * (alpha / 255.0)
            patch = frame[y0:y1, x0:x1].astype(np.float32)
            patch += weight * (np.asarray(colour, np.float32) - patch)
            frame[y0:y1, x0:x1] = np.round(patch).astype(np.uint8)


def generate_clip_with_meta(label: str, *, rng: np.random.Generator, frames: int = 8,
                            size: int = 64, masks: bool = False,
                            ) -> tuple[np.ndarray, ClipMeta]:
    """One clip of class ``label`` and its ground truth.

    Args:
        label: one of :data:`CLASSES`.
        rng: the random generator (the only source of randomness).
        frames: clip length ``T`` (>= 2).
        size: frame side ``S`` in pixels (>= 16).
        masks: also return the actor's per-frame masks in ``meta.masks``.

    Returns:
        ``uint8`` RGB clip ``[T, S, S, 3]`` and its :class:`ClipMeta`.
    """
    if label not in CLASSES:
        raise ValueError(f'unknown class {label!r}; expected one of {CLASSES}')
    if frames < 2:
        raise ValueError(f'a clip needs at least 2 frames, got {frames}')
    if size < 16:
        raise ValueError(f'frame size must be >= 16 pixels, got {size}')
    canonical = _CANONICAL.get(label, label)
    actor = _track(canonical, rng, frames, size)
    shape, mirrored, poly = random_polygon(rng)
    actor_colour = rng.uniform(0, 255, 3)

    slowest = _MOVE_FRACTION[0] * size / (frames - 1)
    centred_t = np.arange(frames) - (frames - 1) / 2
    cam = _camera(rng, size, slowest, centred_t)
    pad = int(np.abs(cam).max()) + 1
    side = size + 2 * pad

    kind = BACKGROUNDS[int(rng.integers(len(BACKGROUNDS)))]
    background = make_background(rng, kind, side, size, actor_colour)

    distractors = _distractors(rng, actor_colour, size, slowest, centred_t)

    blur = rng.uniform(0.3, 0.9) * size / 112 if rng.random() < 0.3 else 0.0
    noise = rng.uniform(1.0, 4.0) if rng.random() < 0.5 else 0.0

    if label in _REVERSED:  # play the whole scene backwards
        actor = actor.reversed()
        cam = cam[::-1]
        distractors = [(p, c, r, x[::-1], y[::-1], a[::-1]) for p, c, r, x, y, a in distractors]

    clip = np.empty((frames, size, size, 3), np.uint8)
    mask_out = np.zeros((frames, size, size), bool) if masks else None
    colour_t = tuple(float(c) for c in actor_colour)
    for t in range(frames):
        ox, oy = int(cam[t, 0]), int(cam[t, 1])
        frame = np.ascontiguousarray(
            background[pad + oy:pad + oy + size, pad + ox:pad + ox + size])
        for dpoly, dcolour, dradius, dx, dy, da in distractors:
            pts = place_polygon(dpoly, dx[t] - ox, dy[t] - oy, dradius, da[t])
            cv2.fillPoly(frame, fixed_point(pts), dcolour, cv2.LINE_AA, SHIFT)
        pts = place_polygon(poly, actor.cx[t] - ox, actor.cy[t] - oy, actor.radius[t],
                            actor.angle[t])
        _paint_actor(frame, pts, float(actor.alpha[t]), colour_t)
        if blur > 0:
            frame = cv2.GaussianBlur(frame, (0, 0), blur)
        clip[t] = frame
        if mask_out is not None:
            cover = np.zeros((size, size), np.uint8)
            cv2.fillPoly(cover, fixed_point(pts), 255, cv2.LINE_AA, SHIFT)
            mask_out[t] = cover >= 128  # pixels at least half covered
    if noise > 0:
        jitter = rng.standard_normal(clip.shape, dtype=np.float32) * noise
        if label in _REVERSED:
            jitter = jitter[::-1]
        clip = np.clip(clip + jitter, 0, 255).astype(np.uint8)

    meta = ClipMeta(
        label=label, shape=shape, mirrored=mirrored, background=kind,
        center=np.stack([actor.cx - cam[:, 0], actor.cy - cam[:, 1]], 1),
        size=actor.radius * 2 / size, angle=actor.angle.copy(), alpha=actor.alpha.copy(),
        masks=mask_out)
    return clip, meta


def generate_clip(label: str, *, rng: np.random.Generator, frames: int = 8,
                  size: int = 64) -> np.ndarray:
    """One ``uint8`` RGB clip ``[T, S, S, 3]`` of class ``label`` (see the module docstring)."""
    return generate_clip_with_meta(label, rng=rng, frames=frames, size=size)[0]


def clip_rng(seed: int, index: int) -> np.random.Generator:
    """The generator of clip ``index`` of a seeded stream: independent of every other clip."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), int(index)]))


def generate_clips(num_clips: int, *, seed: int = 0, frames: int = 8, size: int = 64,
                   labels: Sequence[int] | None = None, start: int = 0,
                   ) -> tuple[np.ndarray, np.ndarray]:
    """A batch of clips in memory (no disk), deterministic in ``seed``.

    Clip ``i`` uses :func:`clip_rng` ``(seed, start + i)``; its label is ``labels[i]`` when given,
    else ``(start + i) % 11`` (balanced classes).

    Returns:
        ``uint8`` clips ``[N, T, S, S, 3]`` and ``int64`` labels ``[N]`` (indices into
        :data:`CLASSES`).
    """
    if labels is not None and len(labels) != num_clips:
        raise ValueError(f'{len(labels)} labels given for {num_clips} clips')
    label_arr = np.array(
        [labels[i] if labels is not None else (start + i) % len(CLASSES)
         for i in range(num_clips)], dtype=np.int64)
    if label_arr.size and (label_arr.min() < 0 or label_arr.max() >= len(CLASSES)):
        raise ValueError(f'labels must be in [0, {len(CLASSES)}), got {label_arr.tolist()}')
    clips = np.empty((num_clips, frames, size, size, 3), np.uint8)
    for i in range(num_clips):
        clips[i] = generate_clip(CLASSES[label_arr[i]], rng=clip_rng(seed, start + i),
                                 frames=frames, size=size)
    return clips, label_arr

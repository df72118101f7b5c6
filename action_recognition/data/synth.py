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
(8 kinds, mirrored at random), colour (at least :data:`MIN_COLOUR_DISTANCE` from the background
colours), size, speed and speed profile, 0-2 distractor objects of the same shapes drifting
slowly, camera pan (well below the slowest actor speed) and shake, blur and sensor noise.

Clips are ``uint8`` RGB arrays ``[T, size, size, 3]``. :func:`write_dataset` writes a data set
in the UCF-101 layout (class folders of lossless FFV1 ``.avi`` files plus ``ucfTrainTestlist``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
import logging
import math
from pathlib import Path

import cv2
import numpy as np

__all__ = [
    'CLASSES', 'REVERSAL_PAIRS', 'HFLIP_SWAP', 'VFLIP_SWAP', 'REVERSE_SWAP', 'SHAPES',
    'BACKGROUNDS', 'MIN_COLOUR_DISTANCE', 'ClipMeta', 'generate_clip', 'generate_clip_with_meta',
    'generate_clips', 'clip_rng', 'video_name', 'CODECS', 'write_video', 'write_dataset',
]

_LOG = logging.getLogger(__name__)

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

# Polygons in (x, y) image orientation, none with rotational symmetry; centred and scaled to a
# bounding radius of 1 below.
_RAW_SHAPES: dict[str, list[tuple[float, float]]] = {
    'ell': [(0, 0), (0.4, 0), (0.4, 0.7), (0.9, 0.7), (0.9, 1.05), (0, 1.05)],
    'arrow': [(0, 0.35), (0.6, 0.35), (0.6, 0.08), (1.05, 0.5), (0.6, 0.92), (0.6, 0.65),
              (0, 0.65)],
    'flag': [(0, 0), (0.95, 0.2), (0.28, 0.48), (0.28, 1.0), (0, 1.0)],
    'boot': [(0.1, 0), (0.45, 0), (0.45, 0.6), (1.0, 0.68), (1.0, 1.0), (0.1, 1.0)],
    'triangle': [(0, 0), (1.0, 0), (0.2, 0.75)],
    'kite': [(0, 0.3), (0.5, 0), (1.0, 0.35), (0.3, 1.0)],
    'tee': [(0, 0), (1, 0), (1, 0.32), (0.38, 0.32), (0.38, 1.0), (0.1, 1.0), (0.1, 0.32),
            (0, 0.32)],
}


def _normalise_polygon(points: np.ndarray) -> np.ndarray:
    """Move the area centroid of a polygon ``[K, 2]`` to 0 and scale its bounding radius to 1."""
    x, y = points[:, 0], points[:, 1]
    xn, yn = np.roll(x, -1), np.roll(y, -1)
    cross = x * yn - xn * y
    area = cross.sum() / 2
    cx = ((x + xn) * cross).sum() / (6 * area)
    cy = ((y + yn) * cross).sum() / (6 * area)
    centred = points - np.array([cx, cy])
    return centred / np.linalg.norm(centred, axis=1).max()


_SHAPE_POLYGONS = {name: _normalise_polygon(np.array(p, dtype=np.float64))
                   for name, p in _RAW_SHAPES.items()}
SHAPES: tuple[str, ...] = (*_RAW_SHAPES, 'blob')
BACKGROUNDS: tuple[str, ...] = ('solid', 'gradient', 'noise', 'stripes', 'clutter')

MIN_COLOUR_DISTANCE = 100.0  # RGB euclidean distance, actor colour to background colours
_MIN_DISTRACTOR_DISTANCE = 60.0

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
        shape: actor shape name (one of :data:`SHAPES`); ``mirrored`` if flipped.
        background: background kind (one of :data:`BACKGROUNDS`).
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
# Colours and backgrounds


def _segment_distance(point: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    """Distance from colour ``point`` to the segment of colours between ``a`` and ``b``."""
    ab = b - a
    denom = float(ab @ ab)
    t = 0.0 if denom == 0 else float(np.clip((point - a) @ ab / denom, 0.0, 1.0))
    return float(np.linalg.norm(point - (a + t * ab)))


def _far_colour(rng: np.random.Generator, avoid: np.ndarray, distance: float) -> np.ndarray:
    """A random RGB colour at least ``distance`` from every colour in ``avoid`` ``[K, 3]``."""
    for _ in range(1000):
        colour = rng.uniform(0, 255, 3)
        if np.all(np.linalg.norm(avoid - colour, axis=1) >= distance):
            return colour
    raise RuntimeError('could not find a distinct colour')  # pragma: no cover


def _background_pair(rng: np.random.Generator, actor: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two background colours whose whole blend stays far from the actor colour."""
    first = _far_colour(rng, actor[None], MIN_COLOUR_DISTANCE)
    for _ in range(1000):
        second = rng.uniform(0, 255, 3)
        if (np.linalg.norm(second - first) > 40
                and _segment_distance(actor, first, second) >= MIN_COLOUR_DISTANCE):
            return first, second
    return first, first  # pragma: no cover


def _make_background(rng: np.random.Generator, kind: str, side: int, size: int,
                     actor_colour: np.ndarray) -> np.ndarray:
    """A ``uint8`` ``[side, side, 3]`` background canvas (``size`` = visible frame side)."""
    c1, c2 = _background_pair(rng, actor_colour)
    ys, xs = np.mgrid[0:side, 0:side].astype(np.float32) / size
    if kind in ('solid', 'clutter'):
        field = np.zeros((side, side), np.float32)
    elif kind == 'gradient':
        a = rng.uniform(0, 2 * np.pi)
        proj = xs * np.cos(a) + ys * np.sin(a)
        field = (proj - proj.min()) / max(float(proj.max() - proj.min()), 1e-6)
    elif kind == 'noise':
        cells = int(rng.integers(3, 9))
        grid = rng.random((cells, cells)).astype(np.float32)
        field = np.clip(cv2.resize(grid, (side, side), interpolation=cv2.INTER_CUBIC), 0, 1)
    elif kind == 'stripes':
        a = rng.uniform(0, np.pi)
        freq = rng.uniform(2.0, 7.0)
        wave = np.sin(2 * np.pi * freq * (xs * np.cos(a) + ys * np.sin(a)) + rng.uniform(0, 6.3))
        field = (wave > 0).astype(np.float32) if rng.random() < 0.5 else 0.5 + 0.5 * wave
    else:
        raise ValueError(f'unknown background kind {kind!r}; expected one of {BACKGROUNDS}')
    canvas = c1[None, None] + field[..., None] * (c2 - c1)[None, None]
    if kind == 'noise':
        canvas += rng.normal(0, 6, (side, side, 3))
    canvas = np.clip(canvas, 0, 255).astype(np.uint8)
    if kind == 'clutter':
        for _ in range(int(rng.integers(12, 30))):
            colour = _far_colour(rng, actor_colour[None], MIN_COLOUR_DISTANCE)
            colour_t = tuple(float(v) for v in colour)
            centre = (int(rng.integers(0, side)), int(rng.integers(0, side)))
            extent = max(1, int(rng.uniform(0.02, 0.07) * size))
            if rng.random() < 0.5:
                axes = (extent, max(1, int(extent * rng.uniform(0.3, 1.0))))
                cv2.ellipse(canvas, centre, axes, float(rng.uniform(0, 180)), 0, 360, colour_t,
                            -1, cv2.LINE_AA)
            else:
                end = (centre[0] + int(rng.integers(-2, 3) * extent),
                       centre[1] + int(rng.integers(-2, 3) * extent))
                cv2.line(canvas, centre, end, colour_t, max(1, extent // 3), cv2.LINE_AA)
    return canvas


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


def _polygon(rng: np.random.Generator) -> tuple[str, bool, np.ndarray]:
    """A random actor shape: name, mirrored flag and unit polygon ``[K, 2]``."""
    name = SHAPES[int(rng.integers(len(SHAPES)))]
    if name == 'blob':
        count = int(rng.integers(5, 8))
        # Keep the gaps between vertices moderate so the blob is a solid, asymmetric polygon.
        angles = np.sort((np.arange(count) + rng.uniform(-0.3, 0.3, count)) * 2 * np.pi / count)
        radii = rng.uniform(0.55, 1.0, count)
        points = np.stack([radii * np.cos(angles), radii * np.sin(angles)], 1)
        poly = _normalise_polygon(points)
    else:
        poly = _SHAPE_POLYGONS[name].copy()
    mirrored = bool(rng.random() < 0.5)
    if mirrored:
        poly = poly * np.array([-1.0, 1.0])
    return name, mirrored, poly


def _place(poly: np.ndarray, cx: float, cy: float, radius: float, angle: float) -> np.ndarray:
    """Polygon vertices in pixels; a positive angle turns clockwise on screen (y down)."""
    a = np.deg2rad(angle)
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    return poly @ rot.T * radius + np.array([cx, cy])


_SHIFT = 4  # sub-pixel bits for cv2 drawing


def _fixed_point(points: np.ndarray) -> list[np.ndarray]:
    # cv2 pixel centres are at integer coordinates; our continuous coordinates put them at +0.5.
    return [np.round((points - 0.5) * (1 << _SHIFT)).astype(np.int32)]


# ---------------------------------------------------------------------------------------------
# Clips


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
    shape, mirrored, poly = _polygon(rng)
    actor_colour = rng.uniform(0, 255, 3)

    # Camera: a slow pan (well below the slowest actor speed) plus integer shake.
    slowest = _MOVE_FRACTION[0] * size / (frames - 1)
    pan_speed = rng.uniform(0, _PAN_FRACTION_OF_SLOWEST * slowest) if rng.random() < 0.6 else 0.0
    pan_dir = rng.uniform(0, 2 * np.pi)
    shake = (int(rng.integers(1, 3)) if size >= 96 else 1) if rng.random() < 0.2 else 0
    centred_t = np.arange(frames) - (frames - 1) / 2
    cam = np.stack([pan_speed * np.cos(pan_dir) * centred_t,
                    pan_speed * np.sin(pan_dir) * centred_t], 1)
    if shake:
        cam += rng.integers(-shake, shake + 1, (frames, 2))
    cam = np.round(cam).astype(np.int64)
    pad = int(np.abs(cam).max()) + 1
    side = size + 2 * pad

    kind = BACKGROUNDS[int(rng.integers(len(BACKGROUNDS)))]
    background = _make_background(rng, kind, side, size, actor_colour)

    # Distractors: the same shapes, smaller, drifting and turning slowly.
    distractors = []
    for _ in range(int(rng.choice(3, p=[0.4, 0.35, 0.25]))):
        _, _, dpoly = _polygon(rng)
        colour = _far_colour(rng, actor_colour[None], _MIN_DISTRACTOR_DISTANCE)
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
            pts = _place(dpoly, dx[t] - ox, dy[t] - oy, dradius, da[t])
            cv2.fillPoly(frame, _fixed_point(pts), dcolour, cv2.LINE_AA, _SHIFT)
        pts = _place(poly, actor.cx[t] - ox, actor.cy[t] - oy, actor.radius[t], actor.angle[t])
        alpha = float(actor.alpha[t])
        if alpha >= 1.0:
            cv2.fillPoly(frame, _fixed_point(pts), colour_t, cv2.LINE_AA, _SHIFT)
        elif alpha > 0.0:
            cover = np.zeros((size, size), np.uint8)
            cv2.fillPoly(cover, _fixed_point(pts), 255, cv2.LINE_AA, _SHIFT)
            ys, xs = np.nonzero(cover)
            if len(ys):
                y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
                weight = cover[y0:y1, x0:x1, None].astype(np.float32) * (alpha / 255.0)
                patch = frame[y0:y1, x0:x1].astype(np.float32)
                patch += weight * (actor_colour.astype(np.float32) - patch)
                frame[y0:y1, x0:x1] = np.round(patch).astype(np.uint8)
        if blur > 0:
            frame = cv2.GaussianBlur(frame, (0, 0), blur)
        clip[t] = frame
        if mask_out is not None:
            cover = np.zeros((size, size), np.uint8)
            cv2.fillPoly(cover, _fixed_point(pts), 255, cv2.LINE_AA, _SHIFT)
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


# ---------------------------------------------------------------------------------------------
# Files


def video_name(label: str, group: int, clip: int) -> str:
    """UCF-101 style file name ``v_<Class>_g<GG>_c<CC>.avi``."""
    return f'v_{label}_g{group:02d}_c{clip:02d}.avi'


CODECS: tuple[str, ...] = ('ffv1', 'mjpeg')


def write_video(path: str | Path, clip: np.ndarray, *, fps: float = 25.0,
                codec: str = 'ffv1') -> None:
    """Write ``uint8`` RGB ``[T, H, W, 3]`` to an AVI file that PyAV and OpenCV both read.

    ``codec='ffv1'``: lossless (decodes to exactly ``clip``; about 290 KB for 16 x 112 x 112
    frames with sensor noise). ``'mjpeg'``: about 4x smaller, mean absolute error ~2 levels.
    """
    import av

    array = np.ascontiguousarray(clip)
    if array.ndim != 4 or array.shape[3] != 3 or array.dtype != np.uint8:
        raise ValueError(f'expected uint8 frames [T, H, W, 3], got {array.dtype} {array.shape}')
    if codec not in CODECS:
        raise ValueError(f'unknown codec {codec!r}; expected one of {CODECS}')
    with av.open(str(path), 'w') as container:
        stream = container.add_stream(codec, rate=round(fps))
        if not isinstance(stream, av.VideoStream):  # pragma: no cover - both codecs are video
            raise TypeError(f'{codec} did not give a video stream')
        stream.width = array.shape[2]
        stream.height = array.shape[1]
        if codec == 'ffv1':
            stream.pix_fmt = 'bgr0'
        else:
            stream.pix_fmt = 'yuvj444p'
            stream.options = {'qmin': '1', 'qmax': '2'}
        for frame in array:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format='rgb24')):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def _groups(per_class: int) -> list[tuple[int, int]]:
    """(group, clip) numbers (1-based) for ``per_class`` clips: up to 25 groups like UCF-101."""
    num_groups = min(25, per_class)
    out = []
    for i in range(per_class):
        out.append((i % num_groups + 1, i // num_groups + 1))
    return sorted(out)


def _test_groups(num_groups: int, split: int) -> set[int]:
    """Held-out groups of split ``split`` (1-based): a block of ~28% of the groups (7 of 25)."""
    block = max(1, round(num_groups * 7 / 25))
    start = ((split - 1) * block) % num_groups
    return {(start + k) % num_groups + 1 for k in range(block)}


def write_dataset(out_dir: str | Path, *, per_class: int = 20, seed: int = 0, frames: int = 16,
                  size: int = 112, splits: int = 1, fps: float = 25.0, codec: str = 'ffv1',
                  progress: bool = True) -> Path:
    """Write the benchmark in the UCF-101 layout and return ``out_dir``.

    Layout: ``out/videos/<class>/v_<class>_g<GG>_c<CC>.avi`` (lossless FFV1, or MJPEG, see
    :func:`write_video`),
    ``out/ucfTrainTestlist/classInd.txt`` (``1 static`` ...), ``trainlist0N.txt``
    (``<class>/<file> <index>``) and ``testlist0N.txt`` (``<class>/<file>``) for ``N`` in
    ``1..splits``. Each split holds out a different block of groups, so no group is in both the
    train and the test list of a split. Clip ``(class c, number i)`` uses
    :func:`clip_rng` ``(seed, c * 1_000_000 + i)``: the same seed gives identical frames.
    """
    from tqdm import tqdm

    if per_class < 2:
        raise ValueError(f'per_class must be >= 2 (a train and a test group), got {per_class}')
    if codec not in CODECS:
        raise ValueError(f'unknown codec {codec!r}; expected one of {CODECS}')
    if not 1 <= splits <= 3:
        raise ValueError(f'splits must be 1, 2 or 3, got {splits}')
    out = Path(out_dir)
    videos = out / 'videos'
    lists = out / 'ucfTrainTestlist'
    lists.mkdir(parents=True, exist_ok=True)
    numbers = _groups(per_class)
    num_groups = min(25, per_class)
    entries: list[tuple[int, int, str]] = []  # (class index, group, relative path)
    bar = tqdm(total=per_class * len(CLASSES), desc='synth', unit='clip', disable=not progress)
    for c, label in enumerate(CLASSES):
        (videos / label).mkdir(parents=True, exist_ok=True)
        for i, (group, number) in enumerate(numbers):
            clip = generate_clip(label, rng=clip_rng(seed, c * 1_000_000 + i), frames=frames,
                                 size=size)
            name = video_name(label, group, number)
            write_video(videos / label / name, clip, fps=fps, codec=codec)
            entries.append((c, group, f'{label}/{name}'))
            bar.update(1)
    bar.close()
    (lists / 'classInd.txt').write_text(
        ''.join(f'{c + 1} {label}\n' for c, label in enumerate(CLASSES)))
    for split in range(1, splits + 1):
        held_out = _test_groups(num_groups, split)
        train = [f'{path} {c + 1}\n' for c, g, path in entries if g not in held_out]
        test = [f'{path}\n' for _, g, path in entries if g in held_out]
        (lists / f'trainlist{split:02d}.txt').write_text(''.join(train))
        (lists / f'testlist{split:02d}.txt').write_text(''.join(test))
    _LOG.info('wrote %d clips (%d classes) to %s', len(entries), len(CLASSES), out)
    return out

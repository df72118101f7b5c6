"""The drawing side of the synthetic benchmark: actor shapes, colours, backgrounds, polygons.

Coordinates are image coordinates (x to the right, y = row index growing downwards); frames are
``uint8`` RGB ``[S, S, 3]``. The clip generator (:mod:`~action_recognition.data.synth_clips`)
draws with these.
"""

from __future__ import annotations

import cv2
import numpy as np

__all__ = [
    'SHAPES', 'BACKGROUNDS', 'MIN_COLOUR_DISTANCE', 'MIN_DISTRACTOR_DISTANCE',
    'normalise_polygon', 'far_colour', 'make_background', 'random_polygon', 'place_polygon',
    'SHIFT', 'fixed_point',
]

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


def normalise_polygon(points: np.ndarray) -> np.ndarray:
    """Move the area centroid of a polygon ``[K, 2]`` to 0 and scale its bounding radius to 1."""
    x, y = points[:, 0], points[:, 1]
    xn, yn = np.roll(x, -1), np.roll(y, -1)
    cross = x * yn - xn * y
    area = cross.sum() / 2
    cx = ((x + xn) * cross).sum() / (6 * area)
    cy = ((y + yn) * cross).sum() / (6 * area)
    centred = points - np.array([cx, cy])
    return centred / np.linalg.norm(centred, axis=1).max()


_SHAPE_POLYGONS = {name: normalise_polygon(np.array(p, dtype=np.float64))
                   for name, p in _RAW_SHAPES.items()}
SHAPES: tuple[str, ...] = (*_RAW_SHAPES, 'blob')
BACKGROUNDS: tuple[str, ...] = ('solid', 'gradient', 'noise', 'stripes', 'clutter')

MIN_COLOUR_DISTANCE = 100.0  # RGB euclidean distance, actor colour to background colours
MIN_DISTRACTOR_DISTANCE = 60.0

# ---------------------------------------------------------------------------------------------
# Colours and backgrounds


def _segment_distance(point: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    """Distance from colour ``point`` to the segment of colours between ``a`` and ``b``."""
    ab = b - a
    denom = float(ab @ ab)
    t = 0.0 if denom == 0 else float(np.clip((point - a) @ ab / denom, 0.0, 1.0))
    return float(np.linalg.norm(point - (a + t * ab)))


def far_colour(rng: np.random.Generator, avoid: np.ndarray, distance: float) -> np.ndarray:
    """A random RGB colour at least ``distance`` from every colour in ``avoid`` ``[K, 3]``."""
    for _ in range(1000):
        colour = rng.uniform(0, 255, 3)
        if np.all(np.linalg.norm(avoid - colour, axis=1) >= distance):
            return colour
    raise RuntimeError('could not find a distinct colour')  # pragma: no cover


def _background_pair(rng: np.random.Generator, actor: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two background colours whose whole blend stays far from the actor colour."""
    first = far_colour(rng, actor[None], MIN_COLOUR_DISTANCE)
    for _ in range(1000):
        second = rng.uniform(0, 255, 3)
        if (np.linalg.norm(second - first) > 40
                and _segment_distance(actor, first, second) >= MIN_COLOUR_DISTANCE):
            return first, second
    return first, first  # pragma: no cover


def make_background(rng: np.random.Generator, kind: str, side: int, size: int,
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
            colour = far_colour(rng, actor_colour[None], MIN_COLOUR_DISTANCE)
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
# Polygons


def random_polygon(rng: np.random.Generator) -> tuple[str, bool, np.ndarray]:
    """A random actor shape: name, mirrored flag and unit polygon ``[K, 2]``."""
    name = SHAPES[int(rng.integers(len(SHAPES)))]
    if name == 'blob':
        count = int(rng.integers(5, 8))
        # Keep the gaps between vertices moderate so the blob is a solid, asymmetric polygon.
        angles = np.sort((np.arange(count) + rng.uniform(-0.3, 0.3, count)) * 2 * np.pi / count)
        radii = rng.uniform(0.55, 1.0, count)
        points = np.stack([radii * np.cos(angles), radii * np.sin(angles)], 1)
        poly = normalise_polygon(points)
    else:
        poly = _SHAPE_POLYGONS[name].copy()
    mirrored = bool(rng.random() < 0.5)
    if mirrored:
        poly = poly * np.array([-1.0, 1.0])
    return name, mirrored, poly


def place_polygon(poly: np.ndarray, cx: float, cy: float, radius: float,
                  angle: float) -> np.ndarray:
    """Polygon vertices in pixels; a positive angle turns clockwise on screen (y down)."""
    a = np.deg2rad(angle)
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    return poly @ rot.T * radius + np.array([cx, cy])


SHIFT = 4  # sub-pixel bits for cv2 drawing


def fixed_point(points: np.ndarray) -> list[np.ndarray]:
    """Vertices ``[K, 2]`` as cv2's fixed-point polygon list (:data:`SHIFT` fraction bits)."""
    # cv2 pixel centres are at integer coordinates; our continuous coordinates put them at +0.5.
    return [np.round((points - 0.5) * (1 << SHIFT)).astype(np.int32)]

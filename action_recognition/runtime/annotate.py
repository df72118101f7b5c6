"""Drawing a recognition on a frame (the annotated video and the node's ``~/debug_image``)."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

__all__ = ['annotate']


def annotate(image: np.ndarray, top: Sequence[tuple[str, float]], *,
             lines: int = 3) -> np.ndarray:
    """A copy of ``uint8`` RGB ``[H, W, 3]`` with the top ``lines`` labels and scores drawn."""
    out = np.ascontiguousarray(image).copy()
    height, width = out.shape[:2]
    scale = max(0.4, min(height, width) / 480.0)
    thickness = max(1, round(scale * 2))
    line_height = int(28 * scale)
    shown = list(top)[:lines] or [('-', 0.0)]
    box_h = line_height * len(shown) + int(10 * scale)
    cv2.rectangle(out, (0, 0), (width, box_h), (0, 0, 0), thickness=-1)
    for row, (label, score) in enumerate(shown):
        text = f'{label} {score:.2f}' if label != '-' else 'no action'
        colour = (255, 255, 0) if row == 0 else (255, 255, 255)
        cv2.putText(out, text, (int(8 * scale), line_height * (row + 1)),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.8 * scale, colour, thickness, cv2.LINE_AA)
    return out

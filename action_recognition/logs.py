"""Logging helpers shared by the layers above: a per-reason throttle for repeated warnings, and
exceptions as one short line."""

from __future__ import annotations

from collections import Counter
import logging
import time

__all__ = ['Throttle', 'one_line', 'describe_error']


class Throttle:
    """Log a repeated problem at most once per ``period_s`` per key, with a count of the rest.

    A camera sending bad frames at 30 Hz would otherwise flood the log; each key (a reason kind)
    is logged when it first happens and then every ``period_s`` at most, saying how many similar
    messages were suppressed in between.
    """

    def __init__(self, logger: logging.Logger, period_s: float = 5.0) -> None:
        self.logger = logger
        self.period_s = period_s
        self._last: dict[str, float] = {}
        self._suppressed: Counter[str] = Counter()

    def warning(self, key: str, message: str) -> None:
        now = time.monotonic()
        last = self._last.get(key)
        if last is not None and now - last < self.period_s:
            self._suppressed[key] += 1
            return
        suppressed = self._suppressed.pop(key, 0)
        extra = f' ({suppressed} similar suppressed)' if suppressed else ''
        self.logger.warning('%s%s', message, extra)
        self._last[key] = now


def one_line(error: BaseException) -> str:
    """An exception's message as one short line (OpenCV's and storage libraries' span several)."""
    text = ' '.join(str(error).split()) or type(error).__name__
    return text if len(text) <= 300 else text[:297] + '...'


def describe_error(error: BaseException) -> str:
    """``'<type>: <message on one line>'``, e.g. ``'cv2.error: OpenCV(...) ...'``, for logs."""
    kind = type(error)
    name = kind.__name__ if kind.__module__ == 'builtins' else f'{kind.__module__}.{kind.__name__}'
    return f'{name}: {one_line(error)}'

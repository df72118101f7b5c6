"""When the inference worker runs: a window falls due, or the rate's next tick comes.

With ``hop`` scheduling the recogniser says when a window is due (a frame's
:meth:`~action_recognition.runtime.recognizer.Recognizer.submit` returns ``True``); with
``inference_rate_hz`` the latest window runs at that rate, whatever the frames do. The
:class:`Scheduler` owns the event that wakes the worker: the intake, a parameter change and the
worker's stop :meth:`~Scheduler.notify` it; only the worker :meth:`~Scheduler.wait` s on it.
"""

from __future__ import annotations

from collections.abc import Callable
import threading

__all__ = ['Scheduler']


class Scheduler:
    """The worker's wake event and the rate mode's timing.

    Args:
        clock: monotonic seconds.
        rate_hz: ``inference_rate_hz`` (0: windows run when due, every ``hop`` frames).
    """

    def __init__(self, clock: Callable[[], float], rate_hz: float = 0.0) -> None:
        self.clock = clock
        self.rate_hz = rate_hz
        self._wake = threading.Event()
        self._last_run: float | None = None
        self._starved = False  # rate mode: the last try found no new frame to run

    def configure(self, rate_hz: float) -> None:
        self.rate_hz = rate_hz

    def notify(self) -> None:
        """Wake the worker (a window is due, a reload was asked, the worker stops)."""
        self._wake.set()

    def frame_arrived(self, due: bool) -> None:
        """A frame went to the recogniser; ``due``: a window fell due with it."""
        if due or self.rate_hz > 0:
            self._starved = False
            self._wake.set()

    def seconds_until_due(self) -> float | None:
        """In rate mode, seconds until the next run may start; else ``None``."""
        if self.rate_hz <= 0:
            return None
        if self._last_run is None:
            return 0.0
        return max(0.0, self._last_run + 1.0 / self.rate_hz - self.clock())

    def may_run(self) -> bool:
        """Whether the worker may run a window now (always, unless the rate says wait)."""
        wait = self.seconds_until_due()
        return wait is None or wait <= 0

    def ran(self) -> None:
        """A window ran now (the rate counts from here)."""
        self._last_run = self.clock()

    def starved(self) -> None:
        """The worker found nothing to run: in rate mode it sleeps until the next frame (or
        ``idle_s``) rather than polling at every tick of the rate."""
        self._starved = True

    def wait(self, idle_s: float) -> None:
        """The worker's sleep: until notified, the rate's next tick, or ``idle_s``."""
        wait = None if self._starved else self.seconds_until_due()
        timeout = idle_s if wait is None else min(idle_s, max(wait, 0.001))
        self._wake.wait(timeout)
        self._wake.clear()

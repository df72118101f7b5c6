"""The inference worker: runs the node core's windows on its own thread.

The worker thread is the only one that runs inference, reloads the model and calls ``publish``;
it sleeps in :meth:`NodeCore.wait_for_work <action_recognition.node.core.NodeCore.
wait_for_work>` until the core's scheduler wakes it.
"""

from __future__ import annotations

from collections.abc import Callable
import threading

from action_recognition.node.core import NodeCore
from action_recognition.runtime.results import Recognition

__all__ = ['InferenceWorker']


class InferenceWorker:
    """Runs :meth:`NodeCore.step` on its own thread and hands each result to ``publish``.

    It sleeps until the core's scheduler wakes it (a window fell due, a reload was asked) or
    ``idle_s`` passes; in ``inference_rate_hz`` mode it also wakes for the next run. Exceptions
    from ``publish`` are logged and do not stop the thread.
    """

    def __init__(self, core: NodeCore, publish: Callable[[Recognition], None], *,
                 idle_s: float = 0.1) -> None:
        self.core = core
        self.publish = publish
        self.idle_s = idle_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name='action_recognition_worker',
                                        daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self.core.wake()
        if self._thread.is_alive():
            self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def _loop(self) -> None:
        core = self.core
        while not self._stop.is_set():
            core.wait_for_work(self.idle_s)
            if self._stop.is_set():
                break
            try:
                for result in core.step():
                    self.publish(result)
            except Exception as error:  # the worker must outlive any single failure
                core.logger.error(f'inference worker: {type(error).__name__}: {error}')

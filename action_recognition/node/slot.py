"""The node's model slot: the running model and its recogniser, loaded, reloaded, released.

:class:`ModelSlot` builds the pipeline (:func:`~action_recognition.runtime.pipeline.load_model`:
the model file, its backend, every compatibility check) and keeps its
:class:`~action_recognition.runtime.recognizer.Recognizer`. A change of a reload-type parameter
is queued (:meth:`~ModelSlot.request_reload`) and carried out on the inference worker
(:meth:`~ModelSlot.reload_if_pending`): a model that fails to load leaves the running one in
place, and the slot says which parameters to set back to what runs. The counters of a replaced
recogniser are carried over (:class:`~action_recognition.runtime.stream.StreamCounters`), so
the node's totals span reloads. :meth:`~ModelSlot.release` frees accelerator memory while the
node is inactive; :meth:`~ModelSlot.resume` loads the model again.
"""

from __future__ import annotations

from collections.abc import Callable
import logging
import threading

from action_recognition.node.parameters import NodeSettings
from action_recognition.node.parameters import PARAMETERS
from action_recognition.runtime.pipeline import load_model
from action_recognition.runtime.pipeline import LoadedModel
from action_recognition.runtime.protocol import Backend
from action_recognition.runtime.recognizer import Recognizer
from action_recognition.runtime.stream import StreamCounters

__all__ = ['ModelSlot', 'RELOAD_PARAMETERS']

#: The parameters whose change reloads the model.
RELOAD_PARAMETERS = tuple(info.name for info in PARAMETERS if info.applies == 'reload')


class ModelSlot:
    """The running model (see the module docstring).

    Args:
        settings: the node's settings (model, backend, streams).
        load: a ``load_backend``-like callable (tests inject failures with it).

    Raises :class:`~action_recognition.runtime.protocol.ModelLoadError` when the model cannot
    be loaded or does not fit the settings (start-up fails fast).
    """

    def __init__(self, settings: NodeSettings, *, logger: logging.Logger,
                 load: Callable[..., Backend] | None = None) -> None:
        self.logger = logger
        self._load = load
        self._lock = threading.Lock()
        self._pending: NodeSettings | None = None
        self._released = False
        self._retired = StreamCounters()
        self.reloads = 0
        self.model, self.recognizer = self._open(settings)
        self.loaded_with = settings

    def _open(self, settings: NodeSettings) -> tuple[LoadedModel, Recognizer]:
        model = load_model(settings.model, settings.backend, logger=self.logger,
                           load=self._load)
        return model, model.recognizer(settings.stream_settings,
                                       logger=logging.getLogger('action_recognition.recognizer'))

    @property
    def labels(self) -> tuple[str, ...]:
        return self.model.spec.label_names

    @property
    def released(self) -> bool:
        """Whether :meth:`release` freed the model (:meth:`resume` loads it again)."""
        return self._released

    def counters(self) -> StreamCounters:
        """Totals over the node's life, across reloads."""
        with self._lock:
            return self._retired + self.recognizer.counters()

    def request_reload(self, settings: NodeSettings) -> None:
        """Load the model of ``settings`` on the worker's next step."""
        with self._lock:
            self._pending = settings

    @property
    def reload_requested(self) -> bool:
        """Whether a reload waits for the worker."""
        return self._pending is not None

    def cancel_reload(self) -> None:
        """Forget a requested reload that has not started."""
        with self._lock:
            self._pending = None

    def reload_if_pending(self) -> str | None:
        """Carry out a requested reload (the worker calls this); on failure the running model
        (:attr:`loaded_with`) stays and the result says why."""
        with self._lock:
            pending, self._pending = self._pending, None
        if pending is None:
            return None
        try:
            model, recognizer = self._open(pending)
        except Exception as error:  # any failure keeps the running model (MemoryError too)
            return str(error)
        self._swap(model, recognizer, pending)
        self.reloads += 1
        return None

    def _swap(self, model: LoadedModel, recognizer: Recognizer,
              settings: NodeSettings) -> None:
        with self._lock:
            old = self.model
            self._retired = self._retired + self.recognizer.counters()
            self.model, self.recognizer, self.loaded_with = model, recognizer, settings
        if old is not model and not self._released:
            old.close()

    def release(self) -> bool:
        """Free accelerator memory (lifecycle ``deactivate``): a model on a GPU or another
        accelerator is closed (:meth:`resume` loads it again); a CPU model stays loaded (there
        is nothing to free, and reactivation is immediate). Whether it was released."""
        device = self.model.backend.device
        if device == 'cpu' or self._released:
            return False
        self.model.close()
        self._released = True
        self.logger.info(f'released the model on {device} (reloaded on activation)')
        return True

    def resume(self, settings: NodeSettings) -> None:
        """Load a model freed by :meth:`release`; ``ModelLoadError`` if it fails."""
        if not self._released:
            return
        self.cancel_reload()  # ``settings`` are the latest: one load, not two
        model, recognizer = self._open(settings)
        self._swap(model, recognizer, settings)  # the released model is closed already
        self._released = False

    def close(self) -> None:
        """Release the model (lifecycle ``cleanup``/``shutdown``); the slot is done."""
        if not self._released:
            self.model.close()
            self._released = True

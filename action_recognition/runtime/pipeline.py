"""The one constructor of the inference pipeline: model file -> backend -> recogniser.

``run``, ``demo`` and the node (and, through the node core, its benchmark) build their pipeline
here from typed settings (:mod:`action_recognition.runtime.settings`), and every compatibility
check is made here, once:

1. the model file: ``model_path``, or the shipped default model;
2. the backend, device and precision, against each other and against the file, and the 4D-only
   proof (:func:`~action_recognition.runtime.backends.load_backend`);
3. the model against what the settings expect: clip length, frame stride, input size (0: take
   the model's);
4. the labels: a label file for a model without labels, its count against the model's outputs;
   a model that carries labels keeps them.

:func:`load_model` does 1-4 and gives a :class:`LoadedModel`; its :meth:`~LoadedModel.
recognizer` puts a :class:`~action_recognition.runtime.recognizer.Recognizer` on it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import replace
import logging
import os
from pathlib import Path

from action_recognition.io.model_files import default_model_path
from action_recognition.io.model_files import load_labels
from action_recognition.runtime.backends import load_backend
from action_recognition.runtime.protocol import Backend
from action_recognition.runtime.protocol import ModelLoadError
from action_recognition.runtime.recognizer import Recognizer
from action_recognition.runtime.settings import BackendSettings
from action_recognition.runtime.settings import ModelSettings
from action_recognition.runtime.settings import StreamSettings
from action_recognition.spec import ModelSpec

__all__ = ['LoadedModel', 'load_model', 'model_file', 'model_problems']

LOGGER = logging.getLogger(__name__)


@dataclass
class LoadedModel:
    """A model file opened by its backend and checked against the settings.

    Attributes:
        path: the model file.
        backend: the backend that runs it.
        spec: its spec, with the labels of a label file where the model carries none.
    """

    path: Path
    backend: Backend
    spec: ModelSpec

    def recognizer(self, settings: StreamSettings | None = None, *,
                   logger: logging.Logger | None = None) -> Recognizer:
        """A recogniser of streams over this model (``settings``: every stream's)."""
        return Recognizer(self.backend, settings, spec=self.spec, logger=logger)

    def describe(self) -> str:
        """One line for the log: what was loaded and where it runs."""
        spec = self.spec
        return (f'loaded {self.path}: {spec.model}, {spec.num_classes} classes, '
                f'{spec.num_frames} frames (stride {spec.frame_stride}) of '
                f'{spec.input_size[0]}x{spec.input_size[1]}, backend {self.backend.name} on '
                f'{self.backend.device}')

    def close(self) -> None:
        """Release the backend (and the accelerator memory it holds)."""
        self.backend.close()


def model_file(model_path: str) -> Path:
    """The file ``model_path`` names (``~`` expanded), or the shipped default model when it is
    empty; :class:`ModelLoadError` when there is none."""
    if model_path:
        return Path(os.path.expanduser(model_path))
    try:
        return default_model_path()
    except FileNotFoundError as error:
        raise ModelLoadError(f'model_path is empty and {error}') from error


def model_problems(spec: ModelSpec, settings: ModelSettings) -> list[str]:
    """Where ``spec`` differs from what ``settings`` expect (clip length, frame stride, input
    size; 0 expects nothing)."""
    problems = []
    if settings.clip_length and settings.clip_length != spec.num_frames:
        problems.append(f"clip_length {settings.clip_length} != the model's {spec.num_frames}")
    if settings.frame_stride and settings.frame_stride != spec.frame_stride:
        problems.append(f"frame_stride {settings.frame_stride} != the model's "
                        f'{spec.frame_stride}')
    if settings.input_size and (settings.input_size, settings.input_size) != spec.input_size:
        problems.append(f"input_size {settings.input_size} != the model's "
                        f'{spec.input_size[0]}x{spec.input_size[1]}')
    return problems


def _with_labels(spec: ModelSpec, settings: ModelSettings, path: Path,
                 problems: list[str], logger: logging.Logger) -> ModelSpec:
    if not settings.labels_path:
        return spec
    if spec.labels:
        logger.info(f'labels_path {settings.labels_path} ignored: {path} carries its own '
                    'labels')
        return spec
    try:
        labels = load_labels(settings.labels_path)
    except (OSError, ValueError) as error:
        problems.append(str(error))
        return spec
    if len(labels) != spec.num_classes:
        problems.append(f'labels file {settings.labels_path} has {len(labels)} labels for a '
                        f'model with {spec.num_classes} outputs')
        return spec
    return replace(spec, labels=tuple(labels))


def load_model(model: ModelSettings, backend: BackendSettings, *, streaming: bool = False,
               logger: logging.Logger | None = None,
               load: Callable[..., Backend] | None = None) -> LoadedModel:
    """Open and check a model (see the module docstring); :class:`ModelLoadError` naming the
    file and every problem. Any failure, out-of-memory included, is a ``ModelLoadError``.

    ``streaming``: a torch backend that caches per-frame features; ``load``: a
    ``load_backend``-like callable (tests inject failures with it).
    """
    logger = logger or LOGGER
    path = model_file(model.model_path)
    try:
        opened = (load or load_backend)(path, backend, streaming=streaming, logger=logger)
    except ModelLoadError:
        raise
    except Exception as error:  # MemoryError, a library's own error: still a load error
        raise ModelLoadError(f'cannot load the model: {type(error).__name__}: '
                             f'{error}') from error
    problems = model_problems(opened.spec, model)
    spec = _with_labels(opened.spec, model, path, problems, logger)
    if problems:
        opened.close()
        raise ModelLoadError(f'model {path} is incompatible with the parameters: '
                             + '; '.join(problems))
    loaded = LoadedModel(path, opened, spec)
    logger.info(loaded.describe())
    return loaded

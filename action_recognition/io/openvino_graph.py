"""OpenVINO models as data: importing OpenVINO (and NNCF) without telemetry, and the 4D-only
check of a graph (NNCF's int8 quantisation: :mod:`action_recognition.io.quantize`).

Shared by the OpenVINO backend (:mod:`action_recognition.runtime.openvino_backend`, which
runs a model) and the OpenVINO deployment target (:mod:`action_recognition.deploy.targets.
openvino`, which writes one). openvino and nncf are optional dependencies, imported on first
use.

No telemetry: ``import openvino`` reports usage (an event, a client id under ``~/intel``) and so
does ``import nncf``, unless ``openvino_telemetry`` cannot be imported; both are imported here
with it blocked (:func:`import_openvino`), so they fall back to stubs that send nothing (code
that imports ``openvino`` itself first is out of this module's hands). NNCF's log messages go
to the ``nncf`` logger through the application's handlers and its progress bars are not printed
(captured, logged at DEBUG).
"""

from __future__ import annotations

from collections.abc import Iterator
import contextlib
import logging
import sys
from typing import Any

__all__ = ['OpenVinoMissingError', 'import_nncf', 'import_openvino', 'rank_problems']

LOGGER = logging.getLogger(__name__)


class OpenVinoMissingError(ImportError):
    """openvino (or nncf) is not installed; the message names the package to install."""


@contextlib.contextmanager
def _telemetry_blocked() -> Iterator[None]:
    """``import openvino_telemetry`` fails inside: ``None`` in ``sys.modules`` for a moment.

    ``import openvino`` sends a usage event ("general_import", through its converter's
    package) and creates a client id under ``~/intel`` unless ``openvino_telemetry`` cannot be
    imported; ``import nncf`` creates its own client. Both fall back to a stub that sends
    nothing when the import fails.
    """
    saved = sys.modules.get('openvino_telemetry')
    sys.modules['openvino_telemetry'] = None  # type: ignore[assignment]
    try:
        yield
    finally:
        if saved is None:
            sys.modules.pop('openvino_telemetry', None)
        else:
            sys.modules['openvino_telemetry'] = saved


def import_openvino() -> Any:
    """The ``openvino`` module, imported without its telemetry (see :func:`_telemetry_blocked`;
    a process that imported ``openvino`` before has it as it was imported then).

    Raises :class:`OpenVinoMissingError` naming the package when it is not installed.
    """
    if 'openvino' in sys.modules:
        return sys.modules['openvino']
    try:
        with _telemetry_blocked():
            # optional heavy dependency: only the openvino backend needs it
            import openvino
    except ImportError as error:
        raise OpenVinoMissingError('OpenVINO is not installed: the openvino package is needed '
                                   f'(pip install openvino, see requirements.txt): '
                                   f'{error}') from error
    return openvino


def import_nncf() -> Any:
    """NNCF without its telemetry, its log messages through the app's logging handlers."""
    import_openvino()
    logger_class = logging.getLoggerClass()
    try:
        with _telemetry_blocked():
            # optional heavy dependency: only int8 quantisation at load needs it
            import nncf
    except ImportError as error:
        raise OpenVinoMissingError('int8 quantisation needs the nncf package (pip install nncf, '
                                   f'see requirements.txt): {error}') from error
    finally:
        logging.setLoggerClass(logger_class)  # NNCF sets its own class for every new logger
    nncf_logger = logging.getLogger('nncf')
    for handler in list(nncf_logger.handlers):  # NNCF prints to stdout; the app's handlers log
        nncf_logger.removeHandler(handler)
    nncf_logger.propagate = True
    nncf_logger.setLevel(logging.WARNING)
    return nncf


def rank_problems(model: Any) -> list[str]:
    """Values computed from the input with a rank above 4 (or an unknown rank).

    Only the input's path counts: weights are not activations, and OpenVINO's own opset keeps
    a grouped 2D convolution's weights as ``[groups, out, in, kh, kw]`` (rank 5 by definition;
    the ONNX graph it was read from has them at rank 4). A 3D convolution has rank-5
    activations, which are found.
    """
    from_input: set[str] = set()
    problems = []
    for op in model.get_ordered_ops():
        sources = {op.input_value(i).get_node().get_name() for i in range(op.get_input_size())}
        if op.get_type_name() != 'Parameter' and not sources & from_input:
            continue
        from_input.add(op.get_name())
        for index in range(op.get_output_size()):
            rank = op.get_output_partial_shape(index).rank
            if rank.is_dynamic:
                problems.append(f"value '{op.get_friendly_name()}' has an unknown rank")
            elif rank.get_length() > 4:
                problems.append(f"value '{op.get_friendly_name()}' ({op.get_type_name()}) has "
                                f'rank {rank.get_length()}')
    return problems

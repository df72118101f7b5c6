"""Reading pretrained weights (ImageNet 2D-Nets, other models) from a local file: one reader.

Nothing is downloaded. A file is read with ``torch.load(weights_only=True)``
(:func:`~action_recognition.serialization.safe_load`): one holding pickled Python objects is
refused and nothing in it runs. The state dict may be wrapped (``{'state_dict': ...}``,
``{'model': ...}``, ``{'model_state': ...}``) and its keys prefixed with ``module.``
(DataParallel); module extra state (``..._extra_state``) is not a weight and is skipped.
"""

from __future__ import annotations

from collections.abc import Mapping
import os
from typing import Any

from torch import Tensor

from action_recognition.serialization import safe_load

__all__ = ['read_state_dict']

_WRAPPERS = ('state_dict', 'model', 'model_state')


def read_state_dict(path_or_state_dict: str | os.PathLike[str] | Mapping[str, Any], *,
                    what: str, missing_hint: str) -> tuple[dict[str, Tensor], str]:
    """``(name -> tensor, where it came from)`` of a local weights file or a given state dict.

    ``what`` names the weights in messages (``'Inception-V3 weights'``); ``missing_hint`` says
    what to put where a file is missing. Raises ``FileNotFoundError`` for a missing file and
    ``ValueError`` for anything that is not a state dict of tensors.
    """
    if isinstance(path_or_state_dict, Mapping):
        state: Any = path_or_state_dict
        source = 'the given state dict'
    else:
        path = os.fspath(path_or_state_dict)
        if not os.path.isfile(path):
            raise FileNotFoundError(f'{what} {path!r} not found ({missing_hint})')
        state = safe_load(path, 'cpu', what=what)
        source = repr(path)
    for wrapper in _WRAPPERS:
        if isinstance(state, Mapping) and isinstance(state.get(wrapper), Mapping) and \
                not any(isinstance(value, Tensor) for value in state.values()):
            state = state[wrapper]
            break
    if not isinstance(state, Mapping):
        raise ValueError(f'{source} does not hold a state dict (got {type(state).__name__})')
    out: dict[str, Tensor] = {}
    for key, value in state.items():
        if not isinstance(key, str):
            raise ValueError(f'{source}: key {key!r} is not a parameter name')
        if key.endswith('_extra_state'):
            continue  # module extra state (e.g. a transform flag), not a weight
        if not isinstance(value, Tensor):
            raise ValueError(f'{source}: entry {key!r} is a {type(value).__name__}, not a tensor')
        out[key] = value
    if out and all(key.startswith('module.') for key in out):
        out = {key[len('module.'):]: value for key, value in out.items()}
    return out, source

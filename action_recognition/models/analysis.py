"""Measuring models: tensor ranks seen in a forward pass, parameters and MACs.

- :class:`RankRecorder`: a ``TorchDispatchMode`` that records the rank of every tensor an
  operator receives or produces (parameters included), at the ATen level, so nothing a model does
  escapes it. The 4D-only property is ``recorder.max_rank <= 4``.
- :func:`count_macs`: multiply-accumulates (the papers' "GFLOPs") of convolutions, matrix
  products and batch normalisation, optionally restricted to one sub-module (the ECO-Lite tables
  count the 3D-Net only).
- :func:`count_params`, :func:`check_4d_only_structure`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field
import math
from typing import Any

import torch
from torch import nn
from torch import Tensor
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

__all__ = [
    'RankRecorder', 'RankViolation', 'count_macs', 'count_params', 'check_4d_only_structure',
    'assert_4d_only',
]

aten = torch.ops.aten


@dataclass
class RankViolation:
    op: str
    rank: int
    shape: tuple[int, ...]


@dataclass
class RankRecorder(TorchDispatchMode):
    """Records tensor ranks of every ATen operator call while active.

    Use as a context manager around a forward (and backward) pass::

        with RankRecorder() as ranks:
            model(x)
        assert ranks.max_rank <= 4, ranks.violations[:3]
    """

    limit: int = 4
    max_rank: int = 0
    ops: int = 0
    violations: list[RankViolation] = field(default_factory=list)

    def __post_init__(self) -> None:
        super().__init__()

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (),
                           kwargs: Any = None) -> Any:
        out = func(*args, **(kwargs or {}))
        self.ops += 1
        flat, _ = tree_flatten((args, kwargs, out))
        for item in flat:
            if isinstance(item, Tensor):
                rank = item.dim()
                self.max_rank = max(self.max_rank, rank)
                if rank > self.limit and len(self.violations) < 100:
                    self.violations.append(RankViolation(str(func), rank, tuple(item.shape)))
        return out


def count_params(module: nn.Module) -> int:
    """Number of parameters (trainable or not)."""
    return sum(p.numel() for p in module.parameters())


def check_4d_only_structure(model: nn.Module) -> list[str]:
    """Problems that break the 4D-only property without running the model.

    Returns a list of messages: 3D layers (``Conv3d``, ``BatchNorm3d``, 3D pooling) and
    parameters or buffers of rank above 4. Empty means the structure is 4D-only.
    """
    problems = []
    banned = (nn.Conv3d, nn.ConvTranspose3d, nn.BatchNorm3d, nn.InstanceNorm3d, nn.MaxPool3d,
              nn.AvgPool3d, nn.AdaptiveAvgPool3d, nn.AdaptiveMaxPool3d, nn.LazyConv3d)
    for name, module in model.named_modules():
        if isinstance(module, banned):
            problems.append(f'{name or "<root>"}: {type(module).__name__}')
    for name, tensor in [*model.named_parameters(), *model.named_buffers()]:
        if tensor.dim() > 4:
            problems.append(f'{name}: rank {tensor.dim()} {tuple(tensor.shape)}')
    return problems


def assert_4d_only(model: nn.Module, x: Tensor, *, backward: bool = False) -> RankRecorder:
    """Run ``model(x)`` (and a backward pass) and raise ``AssertionError`` on any rank > 4."""
    problems = check_4d_only_structure(model)
    if problems:
        raise AssertionError('not 4D-only: ' + '; '.join(problems[:5]))
    with RankRecorder() as recorder:
        out = model(x)
        if backward:
            out.float().sum().backward()
    if recorder.max_rank > 4:
        first = '; '.join(f'{v.op} rank {v.rank} {v.shape}' for v in recorder.violations[:3])
        raise AssertionError(f'tensor of rank {recorder.max_rank} in the forward pass: {first}')
    return recorder


def _conv_macs(args: Any, out: Tensor) -> int:
    weight: Tensor = args[1]
    return out.numel() * math.prod(weight.shape[1:])


def _mm_macs(args: Any, out: Tensor) -> int:
    a, b = args[0], args[1]
    return a.shape[0] * a.shape[1] * b.shape[1]


def _addmm_macs(args: Any, out: Tensor) -> int:
    return _mm_macs(args[1:], out)


def _bmm_macs(args: Any, out: Tensor) -> int:
    a, b = args[0], args[1]
    return a.shape[0] * a.shape[1] * a.shape[2] * b.shape[2]


def _bn_macs(args: Any, out: Any) -> int:
    return int(args[0].numel())


_MAC_RULES: dict[Any, Callable[[Any, Any], int]] = {
    aten.convolution.default: _conv_macs,
    aten.mm.default: _mm_macs,
    aten.addmm.default: _addmm_macs,
    aten.bmm.default: _bmm_macs,
    aten.native_batch_norm.default: _bn_macs,
    aten._native_batch_norm_legit.default: _bn_macs,
    aten._native_batch_norm_legit_no_training.default: _bn_macs,
    aten._native_batch_norm_legit.no_stats: _bn_macs,
}


class _MacCounter(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.active = True
        self.macs = 0
        self.by_op: dict[str, int] = {}

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (),
                           kwargs: Any = None) -> Any:
        out = func(*args, **(kwargs or {}))
        rule = _MAC_RULES.get(func)
        if rule is not None and self.active:
            macs = rule(args, out)
            self.macs += macs
            name = func.overloadpacket.__name__
            self.by_op[name] = self.by_op.get(name, 0) + macs
        return out


@torch.no_grad()
def count_macs(model: nn.Module, x: Tensor, *, scope: str = '') -> int:
    """Multiply-accumulates of ``model(x)`` in eval mode.

    Counted: convolutions (output elements x input channels per group x kernel elements),
    matrix products (linear layers, ``mm``/``addmm``/``bmm``) and batch normalisation (one per
    element). Element-wise operations, pooling and activations are not counted, following the
    papers. With ``scope``, only what runs inside ``model.get_submodule(scope)`` counts.
    """
    was_training = model.training
    model.eval()
    counter = _MacCounter()
    handles = []
    if scope:
        target = model.get_submodule(scope)
        counter.active = False

        def _enter(*_: Any) -> None:
            counter.active = True

        def _leave(*_: Any) -> None:
            counter.active = False

        handles = [target.register_forward_pre_hook(_enter), target.register_forward_hook(_leave)]
    try:
        with counter:
            model(x)
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    return counter.macs

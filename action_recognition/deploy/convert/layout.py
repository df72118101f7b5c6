"""What the converter's modules share: the 4D representations of a 5D value, node helpers,
folding of clips into frames, and train/eval modes.

A 5D value ``[s0, s1, s2, s3, s4]`` of the traced graph lives in the converted graph in one of
two rank-4 representations (see :mod:`action_recognition.deploy.convert`):

- :class:`Frames`: a clip ``[B, C, T, H, W]`` stored as frames ``[B*T, C, H, W]``;
- :class:`Merged`: any 5D tensor stored as ``[s0*s1, s2, s3, s4]``.

:class:`ShapeOf` marks the ``.shape``/``.size()`` of a 5D value (a tuple, not a tensor).
"""

from __future__ import annotations

from dataclasses import dataclass
import operator
import os
from typing import Any
from typing import TypeAlias

import torch
from torch import fx
from torch import nn
from torch import Tensor

__all__ = [
    'ConversionError', 'Frames', 'Merged', 'ShapeOf', 'Layout', 'refuse', 'meta_shape',
    'flat_nodes', 'dims_of', 'is_inplace', 'has_side_effects', 'with_args', 'fold_input',
    'unfold_output', 'fold_outputs', 'Modes',
]


class ConversionError(RuntimeError):
    """The model holds an operation that cannot be converted exactly (the message names it)."""


@dataclass(frozen=True)
class Frames:
    """A clip ``[B, C, T, H, W]`` (``shape``) stored as frames ``[B*T, C, H, W]``."""

    shape: tuple[int, ...]

    @property
    def frames(self) -> int:
        """``T``, the axis merged into the batch."""
        return self.shape[2]


@dataclass(frozen=True)
class Merged:
    """A 5D tensor ``[s0, s1, s2, s3, s4]`` (``shape``) stored as ``[s0*s1, s2, s3, s4]``."""

    shape: tuple[int, ...]


@dataclass(frozen=True)
class ShapeOf:
    """The ``.shape`` / ``.size()`` of a 5D tensor ``shape``; its value in the new graph is the
    tuple ``(batch, *shape[1:])`` with the batch size computed from the frames."""

    shape: tuple[int, ...]


# How a value of the traced graph is held in the new one; None: as it is (rank <= 4 or no
# tensor).
Layout: TypeAlias = Frames | Merged | ShapeOf | None


# -- nodes ------------------------------------------------------------------------------------


def _target_name(node: fx.Node) -> str:
    if node.op in ('call_module', 'call_method', 'get_attr'):
        return str(node.target)
    target = node.target
    module = getattr(target, '__module__', None)
    name = getattr(target, '__qualname__', None) or getattr(target, '__name__', None)
    if name is None:
        return repr(target)
    return f'{module}.{name}' if module else str(name)


def _node_origin(node: fx.Node) -> str:
    """Where a node comes from: the sub-module path and the last source line known."""
    if node.op == 'call_module':
        path = str(node.target)
    else:
        stack = node.meta.get('nn_module_stack') or {}
        path = list(stack)[-1] if stack else ''
    where = f'in module {path!r}' if path else 'in the top-level forward'
    trace = node.meta.get('stack_trace') or node.stack_trace
    if trace:
        lines = [line.strip() for line in str(trace).strip().splitlines() if line.strip()]
        # The user's frame comes first; fx's own frames follow it.
        files = [line for line in lines if line.startswith('File ')
                 and f'{os.sep}torch{os.sep}' not in line]
        if files:
            where += f' ({files[0]})'
    return where


def refuse(node: fx.Node, why: str) -> ConversionError:
    """The error for a node that cannot be converted: its name, operation, module path and
    source line, and ``why``."""
    return ConversionError(
        f'cannot convert node {node.name!r} ({node.op} {_target_name(node)}) '
        f'{_node_origin(node)}: {why}')


def meta_shape(node: Any) -> tuple[int, ...] | None:
    """The static shape shape propagation recorded for a node (``None``: not a tensor)."""
    if not isinstance(node, fx.Node):
        return None
    meta = node.meta.get('tensor_meta')
    shape = getattr(meta, 'shape', None)
    return None if shape is None else tuple(int(s) for s in shape)


def flat_nodes(value: Any) -> list[fx.Node]:
    """The nodes in a (nested) argument structure."""
    found: list[fx.Node] = []
    fx.node.map_arg(value, lambda n: found.append(n) or n)  # type: ignore[func-returns-value]
    return found


def dims_of(value: Any, rank: int) -> tuple[int, ...] | None:
    """Normalised dims of a ``dim`` argument (``None`` = all dims)."""
    if value is None:
        return None
    items = [value] if isinstance(value, int) else list(value)
    if not all(isinstance(d, int) for d in items):
        raise TypeError(f'dims must be ints, got {value!r}')
    return tuple(sorted({d + rank if d < 0 else d for d in items}))


def is_inplace(node: fx.Node) -> bool:
    """Whether a node updates a tensor in place (``inplace=True``, ``x.add_``, ``+=``)."""
    if node.kwargs.get('inplace') is True:
        return True
    if node.op == 'call_method':
        return str(node.target).endswith('_')
    if node.op == 'call_function':
        return node.target in (operator.iadd, operator.isub, operator.imul, operator.itruediv,
                               torch.relu_)
    return False


def has_side_effects(node: fx.Node) -> bool:
    """Nodes dead code elimination must keep although nothing uses their result: modules
    (in-place activations, batch statistics), in-place operations and fx's impure nodes."""
    return node.op not in ('call_function', 'call_method', 'get_attr') or is_inplace(
        node) or node.is_impure()


def with_args(node: fx.Node, args: tuple[Any, ...]) -> fx.Node:
    """A stand-in node for a functional 3D layer: same name and meta, only the input argument."""
    graph = fx.Graph()
    fake = graph.create_node(node.op, node.target, args, {}, name=node.name)
    fake.meta = node.meta
    return fake


# -- folding ----------------------------------------------------------------------------------


def fold_input(x: Tensor) -> Tensor:
    """What the converted model takes for the original's input ``x``: a clip
    ``[B, C, T, H, W]`` becomes frames ``[B*T, C, H, W]``; other inputs are unchanged."""
    if x.dim() != 5:
        return x
    batch, channels, frames, height, width = x.shape
    return x.transpose(1, 2).reshape(batch * frames, channels, height, width)


def unfold_output(y: Tensor, num_frames: int) -> Tensor:
    """Frames ``[B*T, C, H, W]`` -> clip ``[B, C, T, H, W]`` (the inverse of the folding)."""
    _, channels, height, width = y.shape
    return y.reshape(-1, num_frames, channels, height, width).transpose(1, 2)


def fold_outputs(value: Any) -> list[Tensor]:
    """Flat list of the tensors of an output structure, 5D ones ``[B, C, T, H, W]`` folded
    into frames ``[B*T, C, H, W]``."""
    flat, _ = torch.utils._pytree.tree_flatten(value)
    return [fold_input(t) for t in flat if isinstance(t, Tensor)]


# -- modes ------------------------------------------------------------------------------------


@dataclass
class Modes:
    """The train/eval flags of every sub-module of one module (to put back after eval)."""

    modes: dict[str, bool]

    @classmethod
    def eval_all(cls, *modules: nn.Module) -> list[Modes]:
        """Save the modes of ``modules`` (one :class:`Modes` each) and put them in eval mode."""
        saved = [cls({name: m.training for name, m in module.named_modules()})
                 for module in modules]
        for module in modules:
            module.eval()
        return saved

    def restore(self, module: nn.Module) -> None:
        """Give ``module``'s sub-modules back the modes saved."""
        for name, sub in module.named_modules():
            if name in self.modes:
                sub.training = self.modes[name]

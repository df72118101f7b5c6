"""The rewrite rules of the converter: how each kind of operation on a 5D value is emitted in
the 4D graph.

:class:`GraphRules` holds the state of one rewrite (the new graph, and for every node of the
traced graph its value there with its :data:`~action_recognition.deploy.convert.layout.Layout`)
and one method per kind of operation: element-wise (with broadcasting), reshapes, permutes,
softmax and other operations along one axis, concatenation on channels, reductions over
space-time, ``size``/``shape`` and attributes. :class:`~action_recognition.deploy.convert.
rewrite.Converter` dispatches every node of the traced graph to one of them (or to a 3D layer's
4D replacement). A rule that meets a case it cannot convert exactly raises
:class:`~action_recognition.deploy.convert.layout.ConversionError` (:func:`~action_recognition.
deploy.convert.layout.refuse`).

Shapes: a :class:`~action_recognition.deploy.convert.layout.Frames` value ``[B, C, T, H, W]`` is
stored ``[B*T, C, H, W]``; a :class:`~action_recognition.deploy.convert.layout.Merged` value
``[s0, s1, s2, s3, s4]`` is stored ``[s0*s1, s2, s3, s4]``.
"""

from __future__ import annotations

from collections.abc import Callable
import math
import operator
from typing import Any
from typing import TypeAlias

import torch
from torch import fx
from torch import nn
import torch.nn.functional as F

from action_recognition.deploy.convert.layout import dims_of
from action_recognition.deploy.convert.layout import flat_nodes
from action_recognition.deploy.convert.layout import Frames
from action_recognition.deploy.convert.layout import is_inplace
from action_recognition.deploy.convert.layout import Layout
from action_recognition.deploy.convert.layout import Merged
from action_recognition.deploy.convert.layout import meta_shape
from action_recognition.deploy.convert.layout import refuse
from action_recognition.deploy.convert.layout import ShapeOf
from action_recognition.models import layers3d_as_4d as l4
from action_recognition.models.layers import from_temporal
from action_recognition.models.layers import to_temporal

__all__ = ['GraphRules']

# Emits an operation in the new graph from its mapped (args, kwargs).
Emit: TypeAlias = Callable[[tuple[Any, ...], dict[str, Any]], Any]


class GraphRules:
    """The state of one rewrite of ``gm`` and the rules for each kind of operation."""

    def __init__(self, gm: fx.GraphModule) -> None:
        self.gm = gm
        self.graph = fx.Graph()
        self.env: dict[fx.Node, tuple[Any, Layout]] = {}
        # Target in the new graph -> module: replacements keep the original module's path.
        self.new_modules: dict[str, nn.Module] = {}
        # Attributes of rank 5 (leading 1) now stored with rank 4 -> their 5D shape.
        self.stored_5d: dict[str, tuple[int, ...]] = {}
        self._counter = 0

    # -- helpers ------------------------------------------------------------------------------

    def value(self, node: Any) -> Any:
        """A node's value in the new graph (constants are their own value)."""
        return self.env[node][0] if isinstance(node, fx.Node) else node

    def layout(self, node: Any) -> Layout:
        return self.env[node][1] if isinstance(node, fx.Node) else None

    def call(self, target: Callable[..., Any], *args: Any) -> fx.Node:
        return self.graph.call_function(target, args)

    def method(self, name: str, *args: Any) -> fx.Node:
        return self.graph.call_method(name, args)

    def add_module(self, base: str, module: nn.Module) -> str:
        """Register a module for a functional 3D layer under a fresh top-level name."""
        name = f'{base}_4d'
        while name in self.new_modules or hasattr(self.gm, name):
            self._counter += 1
            name = f'{base}_4d_{self._counter}'
        self.new_modules[name] = module
        return name

    def as_frames(self, node: fx.Node, value: Any, layout: Layout) -> tuple[Any, Frames]:
        """The frames representation ``[B*T, C, H, W]`` of a 5D value."""
        if isinstance(layout, Frames):
            return value, layout
        if isinstance(layout, Merged):
            return self.call(l4.merged_to_frames, value, layout.shape[1]), Frames(layout.shape)
        raise refuse(node, 'expected a 5D tensor here')

    def as_merged(self, value: Any, layout: Frames | Merged) -> Any:
        """The merged representation ``[s0*s1, s2, s3, s4]`` of a 5D value."""
        if isinstance(layout, Merged):
            return value
        return self.call(l4.frames_to_merged, value, layout.frames)

    def as_rowmajor(self, value: Any, layout: Frames | Merged) -> Any:
        """A 4D tensor whose row-major order is the 5D tensor's row-major order."""
        if isinstance(layout, Merged):
            return value
        return self.call(l4.frames_to_rowmajor, value, layout.frames)

    def batch_of(self, value: Any, layout: Frames | Merged) -> fx.Node:
        """The batch size ``s0`` of a 5D value, computed from its stored leading axis."""
        size0 = self.method('size', value, 0)
        per = layout.frames if isinstance(layout, Frames) else layout.shape[1]
        return self.call(operator.floordiv, size0, per)

    def shape_of(self, value: Any, layout: Frames | Merged) -> tuple[Any, Layout]:
        return (self.batch_of(value, layout), *layout.shape[1:]), ShapeOf(layout.shape)

    def copy_plain(self, node: fx.Node, out_shape: tuple[int, ...] | None) -> tuple[Any, Layout]:
        """The node as it is (it makes no 5D tensor)."""
        if out_shape is not None and len(out_shape) >= 5:
            raise refuse(node, f'makes a tensor of rank {len(out_shape)} {out_shape} in a way '
                               'the converter does not handle')
        return self.graph.node_copy(node, self.value), None

    def copy_plain_or_enter(self, node: fx.Node, out_shape: tuple[int, ...] | None,
                            reshape_like: bool) -> tuple[Any, Layout]:
        """A node on plain tensors: copied, or, when it reshapes one into 5D, the entry into
        the merged representation."""
        if out_shape is not None and len(out_shape) == 5 and reshape_like:
            # A plain tensor reshaped into 5D: the merged representation is a reshape to
            # [s0*s1, s2, s3, s4] of the same data.
            value = self.value(node.args[0])
            new = self.method('reshape', value, (-1, *out_shape[2:]))
            return new, Merged(out_shape)
        return self.copy_plain(node, out_shape)

    # -- shapes and attributes ----------------------------------------------------------------

    def self_only(self, node: fx.Node, emit: Emit) -> tuple[Any, Layout]:
        """An operation on its receiver's values only (``clone``, ``to``, ``zeros_like``)."""
        layout = self.layout(node.args[0])
        for other in flat_nodes((node.args[1:], node.kwargs)):
            if isinstance(self.layout(other), ShapeOf):
                raise refuse(node, 'uses the shape of a 5D tensor as an argument')
        args = fx.node.map_arg(node.args, self.value)
        kwargs = fx.node.map_arg(node.kwargs, self.value)
        return emit(tuple(args), dict(kwargs)), layout

    def attribute(self, node: fx.Node) -> tuple[Any, Layout]:
        """``x.shape``, ``x.ndim``, ``x.dtype`` ... of a 5D ``x``."""
        value, layout = self.env[node.args[0]]  # type: ignore[index]
        name = node.args[1]
        if not isinstance(layout, (Frames, Merged)):
            raise refuse(node, f'attribute {name!r} of a shape')
        if name == 'shape':
            return self.shape_of(value, layout)
        if name == 'ndim':
            return 5, None
        if name in ('dtype', 'device', 'is_cuda', 'requires_grad'):
            return self.graph.call_function(getattr, (value, name)), None
        raise refuse(node, f'attribute {name!r} of a 5D tensor is not supported')

    def size(self, node: fx.Node, args: tuple[Any, ...],
             kwargs: dict[str, Any]) -> tuple[Any, Layout]:
        """``x.size()`` or ``x.size(dim)`` of a 5D ``x``."""
        value, layout = self.env[node.args[0]]  # type: ignore[index]
        assert isinstance(layout, (Frames, Merged))
        dim = args[0] if args else kwargs.get('dim')
        if dim is None:
            return self.shape_of(value, layout)
        if not isinstance(dim, int):
            raise refuse(node, 'size() with a computed dim')
        dim = dim + 5 if dim < 0 else dim
        if dim == 0:
            return self.batch_of(value, layout), None
        return layout.shape[dim], None

    def getitem(self, node: fx.Node) -> tuple[Any, Layout]:
        """An entry (or slice) of the shape of a 5D tensor."""
        source, index = node.args
        entries = self.value(source)
        if isinstance(index, int):
            return entries[index], None
        if isinstance(index, slice) and all(
                isinstance(i, (int, type(None))) for i in (index.start, index.stop, index.step)):
            return tuple(entries[index]), None
        raise refuse(node, 'indexing the shape of a 5D tensor with a computed index')

    # -- values -------------------------------------------------------------------------------

    def elementwise(self, node: fx.Node, out_shape: tuple[int, ...] | None, emit: Emit, *,
                    force_frames: bool = False) -> tuple[Any, Layout]:
        """An element-wise operation with a 5D operand (broadcasting as the original did)."""
        if out_shape is None or len(out_shape) != 5:
            raise refuse(node, f'element-wise operation with a 5D operand gives {out_shape}, '
                               'expected a 5D tensor')
        operands = [n for n in flat_nodes((node.args, node.kwargs))
                    if meta_shape(n) is not None or self.layout(n) is not None]
        five_d = [n for n in operands if self.layout(n) is not None]
        if any(isinstance(self.layout(n), ShapeOf) for n in five_d):
            raise refuse(node, 'uses the shape of a 5D tensor as an operand')
        kinds = {type(self.layout(n)) for n in five_d}
        shapes = {meta_shape(n) for n in five_d}
        scalars = all(math.prod(meta_shape(n) or ()) <= 1 for n in operands
                      if self.layout(n) is None)
        if not force_frames and len(kinds) == 1 and shapes == {out_shape} and scalars:
            # 5D operands of one shape and representation, and scalars: the operation does not
            # care about the layout, so keep the representation (in-place updates stay shared).
            layout = self.layout(five_d[0])
            args = fx.node.map_arg(node.args, self.value)
            kwargs = fx.node.map_arg(node.kwargs, self.value)
            return emit(tuple(args), dict(kwargs)), layout
        frames = out_shape[2]
        mapped: dict[fx.Node, Any] = {}
        for operand in operands:
            value, layout = self.env[operand]
            shape = meta_shape(operand)
            if isinstance(layout, (Frames, Merged)):
                value, frames_layout = self.as_frames(operand, value, layout)
                shape = frames_layout.shape
                if shape[0] == 1 and shape[2] == 1 and out_shape[0] != 1:
                    pass  # [1, C, 1, h, w] is stored as [1, C, h, w]: it broadcasts as it is
                elif shape[0] != out_shape[0]:
                    raise refuse(node, f'broadcasts a 5D operand {shape} over the batch axis')
                elif shape[2] != frames:
                    if shape[2] != 1:
                        raise refuse(node, f'cannot broadcast {shape} to {out_shape}')
                    value = self.call(l4.repeat_frames, value, frames)
                mapped[operand] = value
            elif shape is not None and len(shape) > 0 and math.prod(shape) > 1:
                padded = (1,) * (5 - len(shape)) + shape
                if padded[2] != 1:
                    raise refuse(node, f'broadcasts a tensor {shape} along time against a 5D '
                                       f'tensor {out_shape}')
                mapped[operand] = self.method('reshape', value,
                                              (padded[1], padded[3], padded[4]))
            else:
                mapped[operand] = value
        receiver = node.args[0] if node.args else None
        if (is_inplace(node) and isinstance(receiver, fx.Node) and receiver in mapped
                and mapped[receiver] is not self.value(receiver)):
            raise refuse(node, 'in-place operation on a 5D tensor whose 4D form had to be '
                               'rearranged first; use the out-of-place operation')

        def pick(n: fx.Node) -> Any:
            return mapped[n] if n in mapped else self.value(n)

        args = fx.node.map_arg(node.args, pick)
        kwargs = fx.node.map_arg(node.kwargs, pick)
        return emit(tuple(args), dict(kwargs)), Frames(out_shape)

    def reshape(self, node: fx.Node, out_shape: tuple[int, ...] | None) -> tuple[Any, Layout]:
        """``view``/``reshape``/``flatten``/``squeeze``/``unsqueeze``/``unflatten`` with a 5D
        input or output."""
        source = node.args[0] if node.args else node.kwargs.get('input')
        if not isinstance(source, fx.Node):
            raise refuse(node, 'expected a tensor to reshape')
        value, layout = self.env[source]
        if out_shape is None:
            raise refuse(node, 'output shape unknown')
        if isinstance(layout, ShapeOf):
            raise refuse(node, 'reshapes the shape of a 5D tensor')
        as_other = str(node.target) in ('view_as', 'reshape_as')
        for other in flat_nodes((node.args[1:], node.kwargs)):
            if isinstance(self.layout(other), (Frames, Merged)) and not as_other:
                raise refuse(node, 'a 5D tensor used as a reshape argument')
        if layout is None:
            if len(out_shape) == 5:
                return self.method('reshape', value, (-1, *out_shape[2:])), Merged(out_shape)
            return self.copy_plain(node, out_shape)
        if len(out_shape) > 5:
            raise refuse(node, f'reshape to rank {len(out_shape)}')
        if len(out_shape) == 5:
            if out_shape == layout.shape:
                return value, layout
            if isinstance(layout, Merged) and out_shape[2:] == layout.shape[2:]:
                return value, Merged(out_shape)
            merged = self.as_merged(value, layout)
            return self.method('reshape', merged, (-1, *out_shape[2:])), Merged(out_shape)
        rowmajor = self.as_rowmajor(value, layout)
        target = (-1, *out_shape[1:]) if out_shape else ()
        return self.method('reshape', rowmajor, target), None

    def permute(self, node: fx.Node, out_shape: tuple[int, ...] | None) -> tuple[Any, Layout]:
        """A permute or transpose of a 5D tensor that keeps the batch first."""
        source = node.args[0]
        value, layout = self.env[source]  # type: ignore[index]
        if not isinstance(layout, (Frames, Merged)) or out_shape is None:
            raise refuse(node, 'expected a 5D tensor')
        rest: list[Any] = list(node.args[1:])
        for key in ('dims', 'dim0', 'dim1'):
            if key in node.kwargs:
                rest.append(node.kwargs[key])
        if len(rest) == 1 and isinstance(rest[0], (list, tuple)):
            rest = list(rest[0])
        if not all(isinstance(d, int) for d in rest):
            raise refuse(node, 'permute/transpose needs constant dims')
        dims = [int(d) + 5 if int(d) < 0 else int(d) for d in rest]
        if node.target in ('transpose', torch.transpose):
            if len(dims) != 2:
                raise refuse(node, 'transpose needs two dims')
            perm = list(range(5))
            perm[dims[0]], perm[dims[1]] = perm[dims[1]], perm[dims[0]]
        else:
            perm = dims
        if perm == [0, 1, 2, 3, 4]:
            return value, layout
        if perm[0] != 0 or sorted(perm) != [0, 1, 2, 3, 4]:
            raise refuse(node, f'permutation {tuple(perm)} of a 5D tensor moves the batch axis')
        # Frames merge semantic axis 2 (time) into the batch, merged values axis 1. Whatever
        # keeps that axis next to the batch (merged) or at position 2 (frames) is a permute of
        # the three stored axes left, e.g. (0, 2, 3, 4, 1) (channels last) or (0, 2, 1, 3, 4).
        if isinstance(layout, Frames):
            inner, stored_axis = 2, {1: 1, 3: 2, 4: 3}
        else:
            inner, stored_axis = 1, {2: 1, 3: 2, 4: 3}
        result: type[Frames] | type[Merged]
        if perm[1] == inner:
            rest, result = [perm[2], perm[3], perm[4]], Merged
        elif perm[2] == inner:
            rest, result = [perm[1], perm[3], perm[4]], Frames
        else:
            raise refuse(node, f'permutation {tuple(perm)} of a 5D tensor is not supported '
                               f'(the axis merged into the batch, {inner}, must go to position '
                               '1 or 2)')
        order = [stored_axis[d] for d in rest]
        new = value if order == [1, 2, 3] else self.method('permute', value, (0, *order))
        return new, result(out_shape)

    def softmax(self, node: fx.Node, name: str,
                out_shape: tuple[int, ...] | None) -> tuple[Any, Layout]:
        """``softmax``/``log_softmax`` of a 5D tensor along one axis."""
        dim = node.args[1] if len(node.args) > 1 else node.kwargs.get('dim')
        extra = {k: v for k, v in node.kwargs.items() if k not in ('input', 'dim')}
        if len(node.args) > 2 or any(isinstance(v, fx.Node) for v in extra.values()):
            raise refuse(node, 'softmax options must be constant keywords')
        function = F.softmax if name == 'softmax' else F.log_softmax
        return self.along_dim(node, dim, out_shape, lambda x, d: self.graph.call_function(
            function, (x,), {'dim': d, **extra}))

    def along_dim(self, node: fx.Node, dim: Any, out_shape: tuple[int, ...] | None,
                  emit: Callable[[Any, int], Any]) -> tuple[Any, Layout]:
        """An operation along one axis (softmax, a linear layer on the last axis): the same
        operation along the stored axis that holds it."""
        source = node.args[0] if node.args else node.kwargs.get('input')
        if not isinstance(source, fx.Node) or not isinstance(dim, int) or out_shape is None:
            raise refuse(node, 'expected a 5D tensor and a constant dim')
        value, layout = self.env[source]
        if not isinstance(layout, (Frames, Merged)) or len(out_shape) != 5:
            raise refuse(node, 'expected a 5D tensor')
        dim = dim + 5 if dim < 0 else dim
        if isinstance(layout, Merged) and dim == 1:
            value, layout = self.as_frames(node, value, layout)
        stored = ({1: 1, 3: 2, 4: 3} if isinstance(layout, Frames) else {2: 1, 3: 2, 4: 3})
        if dim not in stored:
            raise refuse(node, f'an operation along axis {dim} (the axis merged into the batch)')
        return emit(value, stored[dim]), type(layout)(out_shape)

    def cat(self, node: fx.Node, out_shape: tuple[int, ...] | None) -> tuple[Any, Layout]:
        """Concatenation of 5D tensors on channels (dim 1)."""
        tensors = node.args[0] if node.args else node.kwargs.get('tensors')
        dim = node.args[1] if len(node.args) > 1 else node.kwargs.get('dim', 0)
        if not isinstance(tensors, (list, tuple)) or not isinstance(dim, int):
            raise refuse(node, 'expected a list of tensors and a constant dim')
        if out_shape is None or len(out_shape) != 5:
            raise refuse(node, 'expected 5D tensors')
        if (dim + 5 if dim < 0 else dim) != 1:
            raise refuse(node, f'concatenation of 5D tensors on dim {dim}; only dim 1 '
                               '(channels) is supported')
        parts = []
        for item in tensors:
            if not isinstance(item, fx.Node) or not isinstance(self.layout(item),
                                                               (Frames, Merged)):
                raise refuse(node, 'concatenates a 5D tensor with something else')
            value, layout = self.as_frames(item, *self.env[item])
            if layout.frames != out_shape[2]:
                raise refuse(node, 'concatenated clips differ in length')
            parts.append(value)
        return self.graph.call_function(torch.cat, (parts, 1)), Frames(out_shape)

    def reduce(self, node: fx.Node, op: str,
               out_shape: tuple[int, ...] | None) -> tuple[Any, Layout]:
        """``mean``/``sum``/``amax`` of a 5D tensor over all axes, over space-time (with or
        without channels and batch), or over channels and one spatial axis."""
        source = node.args[0] if node.args else node.kwargs.get('input')
        value, layout = self.env[source]  # type: ignore[index]
        if not isinstance(layout, (Frames, Merged)) or out_shape is None:
            raise refuse(node, 'expected a 5D tensor')
        dim_arg = node.args[1] if len(node.args) > 1 else node.kwargs.get('dim')
        keepdim = node.args[2] if len(node.args) > 2 else node.kwargs.get('keepdim', False)
        extra = {k: v for k, v in node.kwargs.items() if k not in ('input', 'dim', 'keepdim')}
        if any(isinstance(v, fx.Node) for v in extra.values()) or not isinstance(keepdim, bool):
            raise refuse(node, 'reduction options must be constants')
        try:
            dims = dims_of(dim_arg, 5)
        except TypeError as error:
            raise refuse(node, str(error)) from None
        if dims is None or dims == (0, 1, 2, 3, 4):
            if keepdim:
                raise refuse(node, 'full reduction with keepdim=True')
            return self.graph.call_method(op, (value,), extra), None
        frames_value, frames_layout = self.as_frames(node, value, layout)
        frames = frames_layout.frames
        spatial = {3, 4} & set(dims)
        if spatial in (set(), {3, 4}):
            # On [B, C, T, H*W]: dims 0, 1, 2 map to themselves, (3, 4) to 3.
            mapped = tuple(sorted({min(d, 3) for d in dims}))
            temporal = self.call(to_temporal, frames_value, frames)
            kept = self.graph.call_method(op, (temporal, mapped), {'keepdim': True, **extra})
            if keepdim:
                return (self.call(from_temporal, kept, out_shape[3], out_shape[4]),
                        Frames(out_shape))
        elif not {0, 2} & set(dims):
            # Channels and one spatial axis: reduce the frames directly.
            mapped = tuple(d - 1 if d > 2 else d for d in dims)
            kept_frames = self.graph.call_method(op, (frames_value, mapped),
                                                 {'keepdim': True, **extra})
            if keepdim:
                return kept_frames, Frames(out_shape)
            kept = self.call(to_temporal, kept_frames, frames)
        else:
            raise refuse(node, f'reduction over dims {dims} of a 5D tensor is not supported')
        target = out_shape if 0 in dims else (-1, *out_shape[1:])
        return self.method('reshape', kept, tuple(target)), None

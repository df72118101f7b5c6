"""Convert a 3D CNN into an exact 4D-only model: :func:`to_4d`.

The model is traced with ``torch.fx`` and its graph rewritten so that no tensor of rank 5 and no
3D operator remains, without retraining and without a change in its outputs:

- A clip input ``[B, C, T, H, W]`` becomes frames ``[B*T, C, H, W]`` (:func:`fold_input`); a 5D
  output comes back folded the same way; pooled or flattened outputs are unchanged. A model that
  takes frames and makes 5D tensors itself (``view`` to ``[B, T, C, H, W]``, then
  ``permute(0, 2, 1, 3, 4)``) keeps its input; that entry into 5D, and the way back, cost nothing.
- Tracing runs the example input alongside (:class:`_ConcreteTracer`), so checks on *shapes* in
  ``forward`` (``if x.dim() != 4: raise``) are decided by the example; the converted model is
  specialised to the example's clip length and frame size, while the batch size stays free.
  ``torch.nn`` layers and subclasses that keep their ``forward`` (torchvision's
  ``Conv3DSimple(nn.Conv3d)``) are leaves.
- Every 5D value of the graph is tracked with its static shape (shape propagation) in one of two
  4D representations:

  * *frames*: the clip ``[B, C, T, H, W]`` stored as ``[B*T, C, H, W]``;
  * *merged*: any 5D tensor ``[s0, s1, s2, s3, s4]`` stored as ``[s0*s1, s2, s3, s4]`` (what a
    reshape of frames into ``[B, T, C, H, W]`` gives; a permute ``(0, 2, 1, 3, 4)`` turns one
    representation into the other for free).

- Rewritten: ``Conv3d`` (any kernel, stride, padding, dilation, groups) ->
  :class:`~action_recognition.models.layers.Conv3dAs4d`; ``BatchNorm3d`` -> ``BatchNorm2d``
  (eval and train); ``MaxPool3d``/``AvgPool3d``/``AdaptiveAvgPool3d``/``AdaptiveMaxPool3d``
  (modules or functionals) and ``Dropout3d`` -> :mod:`~action_recognition.models.layers3d_as_4d`;
  element-wise operations and activations (with broadcasting, e.g. squeeze-excitation),
  residual additions, concatenation on channels, reshape/view/flatten/squeeze/unsqueeze/
  unflatten, permutes that keep the batch first (e.g. ``(0, 2, 1, 3, 4)`` and channels-last
  ``(0, 2, 3, 4, 1)``, as pytorchvideo's heads use around their ``Linear``), ``Linear`` and
  ``LayerNorm`` on the last axis, softmax along an axis, ``size``/``shape``,
  ``mean``/``sum``/``amax`` over space-time, and parameters or buffers of shape
  ``[1, C, T, H, W]`` (stored as ``[C, T, H, W]``). Operations that never see a 5D tensor (2D
  layers, ``Linear`` heads, dropout) are kept as they are.
- Anything else that touches a 5D tensor raises :class:`ConversionError` naming the graph node,
  its operation, the module it sits in and its source line; nothing is converted approximately.
  After conversion the result is checked against the original on the example input at twice its
  batch size (so a batch size baked into a reshape is caught) and for tensors of rank 5.

:func:`export_onnx_4d` exports a converted model and runs the rank-4 proof
(:func:`check_onnx_4d_only`, the same proof as ``action-recognition export``).
"""

from __future__ import annotations

from collections.abc import Callable
import copy
from dataclasses import dataclass
import operator
import os
from pathlib import Path
from typing import Any
from typing import TypeAlias

import torch
from torch import fx
from torch import nn
from torch import Tensor
import torch.nn.functional as F

from action_recognition.models import layers3d_as_4d as l4
from action_recognition.models.analysis import check_4d_only_structure
from action_recognition.models.analysis import RankRecorder
from action_recognition.models.layers import Conv3dAs4d
from action_recognition.models.layers import from_temporal
from action_recognition.models.layers import to_temporal

__all__ = [
    'ConversionError', 'to_4d', 'fold_input', 'unfold_output', 'check_onnx_4d_only',
    'export_onnx_4d', 'max_abs_diff',
]


class ConversionError(RuntimeError):
    """The model holds an operation that cannot be converted exactly (the message names it)."""


@dataclass(frozen=True)
class _Frames:
    """A clip ``[B, C, T, H, W]`` (``shape``) stored as frames ``[B*T, C, H, W]``."""

    shape: tuple[int, ...]

    @property
    def frames(self) -> int:
        return self.shape[2]


@dataclass(frozen=True)
class _Merged:
    """A 5D tensor ``[s0, s1, s2, s3, s4]`` (``shape``) stored as ``[s0*s1, s2, s3, s4]``."""

    shape: tuple[int, ...]


@dataclass(frozen=True)
class _ShapeOf:
    """The ``.shape`` / ``.size()`` of a 5D tensor ``shape``; its value in the new graph is the
    tuple ``(batch, *shape[1:])`` with the batch size computed from the frames."""

    shape: tuple[int, ...]


_Layout: TypeAlias = '_Frames | _Merged | _ShapeOf | None'

_5D_MODULES = (nn.Conv3d, nn.BatchNorm3d, nn.MaxPool3d, nn.AvgPool3d, nn.AdaptiveAvgPool3d,
               nn.AdaptiveMaxPool3d, nn.Dropout3d)

_ELEMENTWISE_MODULES = (
    nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.ELU, nn.SELU, nn.CELU, nn.GELU, nn.SiLU, nn.Mish,
    nn.Hardswish, nn.Hardsigmoid, nn.Hardtanh, nn.Sigmoid, nn.Tanh, nn.Softplus, nn.Identity,
    nn.Dropout, nn.AlphaDropout)

_ELEMENTWISE_FUNCTIONS: set[Any] = {
    operator.add, operator.sub, operator.mul, operator.truediv, operator.neg, operator.pow,
    operator.iadd, operator.isub, operator.imul, operator.itruediv,
    torch.add, torch.sub, torch.mul, torch.div, torch.neg, torch.relu, torch.relu_,
    torch.sigmoid, torch.tanh, torch.exp, torch.abs, torch.clamp, torch.clip, torch.minimum,
    torch.maximum, torch.sqrt, torch.rsqrt, torch.square, torch.where,
    F.relu, F.relu6, F.gelu, F.silu, F.mish, F.hardswish, F.hardsigmoid, F.hardtanh,
    F.leaky_relu, F.elu, F.selu, F.celu, F.sigmoid, F.tanh, F.softplus, F.dropout,
}

_ELEMENTWISE_METHODS = {
    'add', 'add_', 'sub', 'sub_', 'mul', 'mul_', 'div', 'div_', 'relu', 'relu_', 'sigmoid',
    'sigmoid_', 'tanh', 'tanh_', 'clamp', 'clamp_', 'clamp_min', 'clamp_min_', 'clamp_max',
    'clip', 'exp', 'abs', 'neg', 'pow', 'sqrt', 'rsqrt', 'square', 'where',
}

# Methods that act on their receiver's values only, the other arguments being options.
_SELF_ONLY_METHODS = {'contiguous', 'clone', 'detach', 'float', 'half', 'double', 'to',
                      'type_as'}
_SELF_ONLY_FUNCTIONS: set[Any] = {torch.clone, torch.zeros_like, torch.ones_like,
                                  torch.empty_like, torch.rand_like, torch.randn_like}

_RESHAPE_METHODS = {'view', 'reshape', 'flatten', 'squeeze', 'unsqueeze', 'unflatten',
                    'view_as', 'reshape_as'}
_RESHAPE_FUNCTIONS: set[Any] = {torch.flatten, torch.reshape, torch.squeeze, torch.unsqueeze,
                                torch.unflatten}

_PERMUTE_METHODS = {'permute', 'transpose'}
_PERMUTE_FUNCTIONS: set[Any] = {torch.permute, torch.transpose}

_CAT_FUNCTIONS: set[Any] = {torch.cat, torch.concat, torch.concatenate}

_REDUCE_METHODS = {'mean', 'sum', 'amax'}
_REDUCE_FUNCTIONS: dict[Any, str] = {torch.mean: 'mean', torch.sum: 'sum', torch.amax: 'amax'}

_SOFTMAX_FUNCTIONS: dict[Any, str] = {
    F.softmax: 'softmax', F.log_softmax: 'log_softmax', torch.softmax: 'softmax',
    torch.log_softmax: 'log_softmax'}

# Functional 3D pooling -> (module class, parameter names after the input).
_POOL_FUNCTIONS: dict[Any, tuple[type[nn.Module], tuple[str, ...]]] = {
    F.max_pool3d: (nn.MaxPool3d, ('kernel_size', 'stride', 'padding', 'dilation', 'ceil_mode',
                                  'return_indices')),
    F.avg_pool3d: (nn.AvgPool3d, ('kernel_size', 'stride', 'padding', 'ceil_mode',
                                  'count_include_pad', 'divisor_override')),
    F.adaptive_avg_pool3d: (nn.AdaptiveAvgPool3d, ('output_size',)),
    F.adaptive_max_pool3d: (nn.AdaptiveMaxPool3d, ('output_size', 'return_indices')),
}


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


def _refuse(node: fx.Node, why: str) -> ConversionError:
    return ConversionError(
        f'cannot convert node {node.name!r} ({node.op} {_target_name(node)}) '
        f'{_node_origin(node)}: {why}')


def _meta_shape(node: Any) -> tuple[int, ...] | None:
    if not isinstance(node, fx.Node):
        return None
    meta = node.meta.get('tensor_meta')
    shape = getattr(meta, 'shape', None)
    return None if shape is None else tuple(int(s) for s in shape)


def _flat_nodes(value: Any) -> list[fx.Node]:
    found: list[fx.Node] = []
    fx.node.map_arg(value, lambda n: found.append(n) or n)  # type: ignore[func-returns-value]
    return found


def _dims(value: Any, rank: int) -> tuple[int, ...] | None:
    """Normalised dims of a ``dim`` argument (``None`` = all dims)."""
    if value is None:
        return None
    items = [value] if isinstance(value, int) else list(value)
    if not all(isinstance(d, int) for d in items):
        raise TypeError(f'dims must be ints, got {value!r}')
    return tuple(sorted({d + rank if d < 0 else d for d in items}))


class _Converter:
    """Rewrites one traced graph; see the module docstring."""

    def __init__(self, gm: fx.GraphModule) -> None:
        self.gm = gm
        self.graph = fx.Graph()
        self.env: dict[fx.Node, tuple[Any, _Layout]] = {}
        # Target in the new graph -> module: replacements keep the original module's path.
        self.new_modules: dict[str, nn.Module] = {}
        # Attributes of rank 5 (leading 1) now stored with rank 4 -> their 5D shape.
        self.stored_5d: dict[str, tuple[int, ...]] = {}
        self._counter = 0

    # -- helpers ------------------------------------------------------------------------------

    def value(self, node: Any) -> Any:
        return self.env[node][0] if isinstance(node, fx.Node) else node

    def layout(self, node: Any) -> _Layout:
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

    def as_frames(self, node: fx.Node, value: Any, layout: _Layout) -> tuple[Any, _Frames]:
        """The frames representation of a 5D value."""
        if isinstance(layout, _Frames):
            return value, layout
        if isinstance(layout, _Merged):
            return self.call(l4.merged_to_frames, value, layout.shape[1]), _Frames(layout.shape)
        raise _refuse(node, 'expected a 5D tensor here')

    def as_merged(self, value: Any, layout: _Frames | _Merged) -> Any:
        if isinstance(layout, _Merged):
            return value
        return self.call(l4.frames_to_merged, value, layout.frames)

    def as_rowmajor(self, value: Any, layout: _Frames | _Merged) -> Any:
        """A 4D tensor whose row-major order is the 5D tensor's row-major order."""
        if isinstance(layout, _Merged):
            return value
        return self.call(l4.frames_to_rowmajor, value, layout.frames)

    def batch_of(self, value: Any, layout: _Frames | _Merged) -> fx.Node:
        size0 = self.method('size', value, 0)
        per = layout.frames if isinstance(layout, _Frames) else layout.shape[1]
        return self.call(operator.floordiv, size0, per)

    def shape_of(self, value: Any, layout: _Frames | _Merged) -> tuple[Any, _Layout]:
        return (self.batch_of(value, layout), *layout.shape[1:]), _ShapeOf(layout.shape)

    # -- the pass -----------------------------------------------------------------------------

    def run(self) -> fx.GraphModule:
        for node in self.gm.graph.nodes:
            self.env[node] = self.convert(node)
        for new_node in self.graph.nodes:
            # Annotations may be strings (postponed evaluation), which a GraphModule cannot
            # pickle; the converted graph does not need them.
            new_node.type = None
        root = self.gm
        for name, module in self.new_modules.items():
            if '.' in name:
                root.set_submodule(name, module)
            else:
                root.add_module(name, module)
        new_gm = fx.GraphModule(root, self.graph, self.gm.__class__.__name__ + 'As4d')
        new_gm.graph.eliminate_dead_code(_has_side_effects)
        new_gm.recompile()
        # GraphModule keeps the leaf modules themselves (with their modes); set its own mode.
        new_gm.training = self.gm.training
        return new_gm

    def convert(self, node: fx.Node) -> tuple[Any, _Layout]:
        if node.op == 'placeholder':
            new = self.graph.node_copy(node, self.value)
            shape = _meta_shape(node)
            if shape is not None and len(shape) == 5:
                return new, _Frames(shape)
            if shape is not None and len(shape) > 5:
                raise _refuse(node, f'input of rank {len(shape)}')
            return new, None
        if node.op == 'get_attr':
            return self.get_attr(node)
        if node.op == 'output':
            return self.convert_output(node), None
        inputs = _flat_nodes((node.args, node.kwargs))
        touches = any(isinstance(self.layout(n), (_Frames, _Merged)) for n in inputs)
        out_shape = _meta_shape(node)
        first = node.args[0] if node.args else None
        if isinstance(self.layout(first), _ShapeOf):
            if node.op == 'call_function' and node.target is operator.getitem:
                return self.getitem(node)
            raise _refuse(node, 'only indexing is supported on the shape of a 5D tensor')
        if node.op == 'call_module':
            return self.convert_module(node, touches, out_shape)
        if node.op == 'call_method':
            return self.convert_method(node, touches, out_shape)
        if node.op == 'call_function':
            return self.convert_function(node, touches, out_shape)
        raise _refuse(node, 'unknown node kind')

    def get_attr(self, node: fx.Node) -> tuple[Any, _Layout]:
        """Parameters, buffers and constants; a 5D one of shape ``[1, s1, s2, s3, s4]`` is
        stored as ``[s1, s2, s3, s4]`` (its merged representation)."""
        path = str(node.target)
        owner_path, _, name = path.rpartition('.')
        owner = self.gm.get_submodule(owner_path)
        attr = getattr(owner, name)
        if not isinstance(attr, Tensor) or attr.dim() <= 4:
            if path in self.stored_5d:
                return self.graph.node_copy(node, self.value), _Merged(self.stored_5d[path])
            return self.graph.node_copy(node, self.value), None
        if attr.dim() > 5 or attr.shape[0] != 1:
            raise _refuse(node, f'parameter or buffer of rank {attr.dim()} {tuple(attr.shape)}; '
                                'only rank <= 4, or rank 5 with a leading 1, can be stored')
        shape = tuple(int(s) for s in attr.shape)
        squeezed = attr.detach().reshape(shape[1:]).clone()
        if isinstance(attr, nn.Parameter):
            owner.register_parameter(name, nn.Parameter(squeezed,
                                                        requires_grad=attr.requires_grad))
        elif name in owner._buffers:
            owner.register_buffer(name, squeezed, persistent=name not in
                                  owner._non_persistent_buffers_set)
        else:
            setattr(owner, name, squeezed)
        self.stored_5d[path] = shape
        return self.graph.node_copy(node, self.value), _Merged(shape)

    def copy_plain(self, node: fx.Node, out_shape: tuple[int, ...] | None) -> tuple[Any, _Layout]:
        if out_shape is not None and len(out_shape) >= 5:
            raise _refuse(node, f'makes a tensor of rank {len(out_shape)} {out_shape} in a way '
                                'the converter does not handle')
        return self.graph.node_copy(node, self.value), None

    def convert_output(self, node: fx.Node) -> Any:
        def fold(arg: fx.Node) -> Any:
            value, layout = self.env[arg]
            if isinstance(layout, (_Frames, _Merged)):
                return self.as_frames(arg, value, layout)[0]
            if isinstance(layout, _ShapeOf):
                raise _refuse(node, 'returns the shape of a 5D tensor')
            return value

        return self.graph.output(fx.node.map_arg(node.args[0], fold))

    # -- modules ------------------------------------------------------------------------------

    def convert_module(self, node: fx.Node, touches: bool,
                       out_shape: tuple[int, ...] | None) -> tuple[Any, _Layout]:
        module = self.gm.get_submodule(str(node.target))
        if not touches:
            if isinstance(module, (nn.Flatten, nn.Unflatten)):
                return self.copy_plain_or_enter(node, out_shape, True)
            if isinstance(module, _5D_MODULES):
                raise _refuse(node, f'{type(module).__name__} on an input that is not a batched '
                                    '5D clip')
            return self.copy_plain(node, out_shape)
        if isinstance(module, _ELEMENTWISE_MODULES) and not node.kwargs and len(node.args) == 1:
            return self.elementwise(node, out_shape, lambda args, kwargs: self.graph.call_module(
                str(node.target), args, kwargs))
        if isinstance(module, nn.PReLU):
            # The weight broadcasts over dim 1: channels, as in frames.
            return self.elementwise(node, out_shape, lambda args, kwargs: self.graph.call_module(
                str(node.target), args, kwargs), force_frames=True)
        if isinstance(module, (nn.Flatten, nn.Unflatten)):
            return self.reshape(node, out_shape)
        if (isinstance(module, nn.Linear) or (isinstance(module, nn.LayerNorm)
                                              and len(module.normalized_shape) == 1)):
            # On the last axis, which is the last stored axis in both representations.
            return self.along_dim(node, -1, out_shape, lambda x, _: self.graph.call_module(
                str(node.target), (x,)))
        if isinstance(module, (nn.Softmax, nn.LogSoftmax)) and module.dim is not None:
            function = F.softmax if isinstance(module, nn.Softmax) else F.log_softmax
            return self.along_dim(node, module.dim, out_shape,
                                  lambda x, d: self.graph.call_function(function, (x,),
                                                                        {'dim': d}))
        if isinstance(module, _5D_MODULES):
            return self.layer_5d(node, module, str(node.target), out_shape)
        raise _refuse(node, f'{type(module).__name__} on a 5D tensor is not supported')

    def layer_5d(self, node: fx.Node, module: nn.Module, path: str | None,
                 out_shape: tuple[int, ...] | None) -> tuple[Any, _Layout]:
        """Replace a 3D layer (``path`` in the model, ``None`` for a functional call)."""
        if len(node.args) != 1 or node.kwargs:
            raise _refuse(node, 'expected one input tensor')
        arg = node.args[0]
        if not isinstance(arg, fx.Node) or self.layout(arg) is None:
            raise _refuse(node, 'expected a 5D input')
        if out_shape is None or len(out_shape) != 5:
            raise _refuse(node, f'expected a 5D output, got {out_shape}')
        x, layout = self.as_frames(node, *self.env[arg])
        replacement: nn.Module
        try:
            if isinstance(module, nn.Conv3d):
                replacement = Conv3dAs4d.from_conv3d(module)
            elif isinstance(module, nn.BatchNorm3d):
                replacement = l4.batch_norm_2d_from_3d(module)
            elif isinstance(module, nn.MaxPool3d):
                replacement = l4.MaxPool3dAs4d.from_module(module)
            elif isinstance(module, nn.AvgPool3d):
                replacement = l4.AvgPool3dAs4d.from_module(module)
            elif isinstance(module, nn.AdaptiveAvgPool3d):
                replacement = l4.AdaptiveAvgPool3dAs4d.from_module(module)
            elif isinstance(module, nn.AdaptiveMaxPool3d):
                replacement = l4.AdaptiveMaxPool3dAs4d.from_module(module)
            elif isinstance(module, nn.Dropout3d):
                replacement = l4.Dropout3dAs4d.from_module(module)
            else:  # pragma: no cover - _5D_MODULES and this chain list the same types
                raise ValueError(f'{type(module).__name__} is not supported')
        except ValueError as error:
            raise _refuse(node, str(error)) from None
        replacement.train(module.training)
        if path is None:
            key = self.add_module(node.name, replacement)
        else:
            key = path
            self.new_modules.setdefault(key, replacement)  # a shared layer is replaced once
        if isinstance(module, nn.BatchNorm3d):
            new = self.graph.call_module(key, (x,))
        else:
            new = self.graph.call_module(key, (x, layout.frames))
        return new, _Frames(out_shape)

    # -- methods and functions ----------------------------------------------------------------

    def convert_method(self, node: fx.Node, touches: bool,
                       out_shape: tuple[int, ...] | None) -> tuple[Any, _Layout]:
        name = str(node.target)
        self_layout = self.layout(node.args[0]) if node.args else None
        if not touches:
            return self.copy_plain_or_enter(node, out_shape, name in _RESHAPE_METHODS)
        if name == 'size' and self_layout is not None:
            return self.size(node, node.args[1:], node.kwargs)
        if name == 'dim' and self_layout is not None:
            return 5, None
        if name in _SELF_ONLY_METHODS and self_layout is not None:
            return self.self_only(node, lambda args, kwargs: self.graph.call_method(
                name, args, kwargs))
        if name in _ELEMENTWISE_METHODS:
            return self.elementwise(node, out_shape, lambda args, kwargs: self.graph.call_method(
                name, args, kwargs))
        if name in _RESHAPE_METHODS:
            return self.reshape(node, out_shape)
        if name in _PERMUTE_METHODS:
            return self.permute(node, out_shape)
        if name in _REDUCE_METHODS:
            return self.reduce(node, name, out_shape)
        if name in ('softmax', 'log_softmax'):
            return self.softmax(node, name, out_shape)
        raise _refuse(node, f'method {name!r} on a 5D tensor is not supported')

    def convert_function(self, node: fx.Node, touches: bool,
                         out_shape: tuple[int, ...] | None) -> tuple[Any, _Layout]:
        target = node.target
        assert callable(target)
        if not touches:
            return self.copy_plain_or_enter(node, out_shape, target in _RESHAPE_FUNCTIONS)
        if target is getattr:
            return self.attribute(node)
        if target is operator.getitem:
            raise _refuse(node, 'indexing or slicing a 5D tensor is not supported')
        if target in _SELF_ONLY_FUNCTIONS and len(node.args) == 1:
            return self.self_only(node, lambda args, kwargs: self.graph.call_function(
                target, args, kwargs))
        if target in _ELEMENTWISE_FUNCTIONS:
            return self.elementwise(node, out_shape, lambda args, kwargs: self.graph.call_function(
                target, args, kwargs))
        if target in _RESHAPE_FUNCTIONS:
            return self.reshape(node, out_shape)
        if target in _PERMUTE_FUNCTIONS:
            return self.permute(node, out_shape)
        if target in _CAT_FUNCTIONS:
            return self.cat(node, out_shape)
        if target in _REDUCE_FUNCTIONS:
            return self.reduce(node, _REDUCE_FUNCTIONS[target], out_shape)
        if target in _SOFTMAX_FUNCTIONS:
            return self.softmax(node, _SOFTMAX_FUNCTIONS[target], out_shape)
        if target is F.linear:
            if any(isinstance(self.layout(n), (_Frames, _Merged))
                   for n in _flat_nodes((node.args[1:], node.kwargs))):
                raise _refuse(node, 'a 5D tensor as linear weight')
            return self.along_dim(node, -1, out_shape, lambda x, _: self.graph.call_function(
                F.linear, (x, *fx.node.map_arg(node.args[1:], self.value)),
                dict(fx.node.map_arg(node.kwargs, self.value))))
        if target in _POOL_FUNCTIONS:
            cls, names = _POOL_FUNCTIONS[target]
            options = dict(zip(names, node.args[1:]))
            options.update({k: v for k, v in node.kwargs.items() if k != 'input'})
            if any(isinstance(v, fx.Node) for v in options.values()):
                raise _refuse(node, 'pooling options must be constants')
            try:
                module = cls(**options)
            except TypeError as error:
                raise _refuse(node, str(error)) from None
            fake = _with_args(node, (node.args[0] if node.args else node.kwargs['input'],))
            return self.layer_5d(fake, module, None, out_shape)
        raise _refuse(node, 'this operation on a 5D tensor is not supported')

    def copy_plain_or_enter(self, node: fx.Node, out_shape: tuple[int, ...] | None,
                            reshape_like: bool) -> tuple[Any, _Layout]:
        if out_shape is not None and len(out_shape) == 5 and reshape_like:
            # A plain tensor reshaped into 5D: the merged representation is a reshape to
            # [s0*s1, s2, s3, s4] of the same data.
            value = self.value(node.args[0])
            new = self.method('reshape', value, (-1, *out_shape[2:]))
            return new, _Merged(out_shape)
        return self.copy_plain(node, out_shape)

    def self_only(self, node: fx.Node,
                  emit: Callable[[tuple[Any, ...], dict[str, Any]], Any]) -> tuple[Any, _Layout]:
        layout = self.layout(node.args[0])
        for other in _flat_nodes((node.args[1:], node.kwargs)):
            if isinstance(self.layout(other), _ShapeOf):
                raise _refuse(node, 'uses the shape of a 5D tensor as an argument')
        args = fx.node.map_arg(node.args, self.value)
        kwargs = fx.node.map_arg(node.kwargs, self.value)
        return emit(tuple(args), dict(kwargs)), layout

    def attribute(self, node: fx.Node) -> tuple[Any, _Layout]:
        value, layout = self.env[node.args[0]]  # type: ignore[index]
        name = node.args[1]
        if not isinstance(layout, (_Frames, _Merged)):
            raise _refuse(node, f'attribute {name!r} of a shape')
        if name == 'shape':
            return self.shape_of(value, layout)
        if name == 'ndim':
            return 5, None
        if name in ('dtype', 'device', 'is_cuda', 'requires_grad'):
            return self.graph.call_function(getattr, (value, name)), None
        raise _refuse(node, f'attribute {name!r} of a 5D tensor is not supported')

    def size(self, node: fx.Node, args: tuple[Any, ...],
             kwargs: dict[str, Any]) -> tuple[Any, _Layout]:
        value, layout = self.env[node.args[0]]  # type: ignore[index]
        assert isinstance(layout, (_Frames, _Merged))
        dim = args[0] if args else kwargs.get('dim')
        if dim is None:
            return self.shape_of(value, layout)
        if not isinstance(dim, int):
            raise _refuse(node, 'size() with a computed dim')
        dim = dim + 5 if dim < 0 else dim
        if dim == 0:
            return self.batch_of(value, layout), None
        return layout.shape[dim], None

    def getitem(self, node: fx.Node) -> tuple[Any, _Layout]:
        """An entry (or slice) of the shape of a 5D tensor."""
        source, index = node.args
        entries = self.value(source)
        if isinstance(index, int):
            return entries[index], None
        if isinstance(index, slice) and all(
                isinstance(i, (int, type(None))) for i in (index.start, index.stop, index.step)):
            return tuple(entries[index]), None
        raise _refuse(node, 'indexing the shape of a 5D tensor with a computed index')

    def elementwise(self, node: fx.Node, out_shape: tuple[int, ...] | None,
                    emit: Callable[[tuple[Any, ...], dict[str, Any]], Any], *,
                    force_frames: bool = False) -> tuple[Any, _Layout]:
        if out_shape is None or len(out_shape) != 5:
            raise _refuse(node, f'element-wise operation with a 5D operand gives {out_shape}, '
                                'expected a 5D tensor')
        operands = [n for n in _flat_nodes((node.args, node.kwargs))
                    if _meta_shape(n) is not None or self.layout(n) is not None]
        five_d = [n for n in operands if self.layout(n) is not None]
        if any(isinstance(self.layout(n), _ShapeOf) for n in five_d):
            raise _refuse(node, 'uses the shape of a 5D tensor as an operand')
        kinds = {type(self.layout(n)) for n in five_d}
        shapes = {_meta_shape(n) for n in five_d}
        scalars = all(math_prod(_meta_shape(n) or ()) <= 1 for n in operands
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
            shape = _meta_shape(operand)
            if isinstance(layout, (_Frames, _Merged)):
                value, frames_layout = self.as_frames(operand, value, layout)
                shape = frames_layout.shape
                if shape[0] == 1 and shape[2] == 1 and out_shape[0] != 1:
                    pass  # [1, C, 1, h, w] is stored as [1, C, h, w]: it broadcasts as it is
                elif shape[0] != out_shape[0]:
                    raise _refuse(node, f'broadcasts a 5D operand {shape} over the batch axis')
                elif shape[2] != frames:
                    if shape[2] != 1:
                        raise _refuse(node, f'cannot broadcast {shape} to {out_shape}')
                    value = self.call(l4.repeat_frames, value, frames)
                mapped[operand] = value
            elif shape is not None and len(shape) > 0 and math_prod(shape) > 1:
                padded = (1,) * (5 - len(shape)) + shape
                if padded[2] != 1:
                    raise _refuse(node, f'broadcasts a tensor {shape} along time against a 5D '
                                        f'tensor {out_shape}')
                mapped[operand] = self.method('reshape', value,
                                              (padded[1], padded[3], padded[4]))
            else:
                mapped[operand] = value
        receiver = node.args[0] if node.args else None
        if (_is_inplace(node) and isinstance(receiver, fx.Node) and receiver in mapped
                and mapped[receiver] is not self.value(receiver)):
            raise _refuse(node, 'in-place operation on a 5D tensor whose 4D form had to be '
                                'rearranged first; use the out-of-place operation')

        def pick(n: fx.Node) -> Any:
            return mapped[n] if n in mapped else self.value(n)

        args = fx.node.map_arg(node.args, pick)
        kwargs = fx.node.map_arg(node.kwargs, pick)
        return emit(tuple(args), dict(kwargs)), _Frames(out_shape)

    def reshape(self, node: fx.Node, out_shape: tuple[int, ...] | None) -> tuple[Any, _Layout]:
        source = node.args[0] if node.args else node.kwargs.get('input')
        if not isinstance(source, fx.Node):
            raise _refuse(node, 'expected a tensor to reshape')
        value, layout = self.env[source]
        if out_shape is None:
            raise _refuse(node, 'output shape unknown')
        if isinstance(layout, _ShapeOf):
            raise _refuse(node, 'reshapes the shape of a 5D tensor')
        as_other = str(node.target) in ('view_as', 'reshape_as')
        for other in _flat_nodes((node.args[1:], node.kwargs)):
            if isinstance(self.layout(other), (_Frames, _Merged)) and not as_other:
                raise _refuse(node, 'a 5D tensor used as a reshape argument')
        if layout is None:
            if len(out_shape) == 5:
                return self.method('reshape', value, (-1, *out_shape[2:])), _Merged(out_shape)
            return self.copy_plain(node, out_shape)
        if len(out_shape) > 5:
            raise _refuse(node, f'reshape to rank {len(out_shape)}')
        if len(out_shape) == 5:
            if out_shape == layout.shape:
                return value, layout
            if isinstance(layout, _Merged) and out_shape[2:] == layout.shape[2:]:
                return value, _Merged(out_shape)
            merged = self.as_merged(value, layout)
            return self.method('reshape', merged, (-1, *out_shape[2:])), _Merged(out_shape)
        rowmajor = self.as_rowmajor(value, layout)
        target = (-1, *out_shape[1:]) if out_shape else ()
        return self.method('reshape', rowmajor, target), None

    def permute(self, node: fx.Node, out_shape: tuple[int, ...] | None) -> tuple[Any, _Layout]:
        source = node.args[0]
        value, layout = self.env[source]  # type: ignore[index]
        if not isinstance(layout, (_Frames, _Merged)) or out_shape is None:
            raise _refuse(node, 'expected a 5D tensor')
        rest: list[Any] = list(node.args[1:])
        for key in ('dims', 'dim0', 'dim1'):
            if key in node.kwargs:
                rest.append(node.kwargs[key])
        if len(rest) == 1 and isinstance(rest[0], (list, tuple)):
            rest = list(rest[0])
        if not all(isinstance(d, int) for d in rest):
            raise _refuse(node, 'permute/transpose needs constant dims')
        dims = [int(d) + 5 if int(d) < 0 else int(d) for d in rest]
        if node.target in ('transpose', torch.transpose):
            if len(dims) != 2:
                raise _refuse(node, 'transpose needs two dims')
            perm = list(range(5))
            perm[dims[0]], perm[dims[1]] = perm[dims[1]], perm[dims[0]]
        else:
            perm = dims
        if perm == [0, 1, 2, 3, 4]:
            return value, layout
        if perm[0] != 0 or sorted(perm) != [0, 1, 2, 3, 4]:
            raise _refuse(node, f'permutation {tuple(perm)} of a 5D tensor moves the batch axis')
        # Frames merge semantic axis 2 (time) into the batch, merged values axis 1. Whatever
        # keeps that axis next to the batch (merged) or at position 2 (frames) is a permute of
        # the three stored axes left, e.g. (0, 2, 3, 4, 1) (channels last) or (0, 2, 1, 3, 4).
        if isinstance(layout, _Frames):
            inner, stored_axis = 2, {1: 1, 3: 2, 4: 3}
        else:
            inner, stored_axis = 1, {2: 1, 3: 2, 4: 3}
        result: type[_Frames] | type[_Merged]
        if perm[1] == inner:
            rest, result = [perm[2], perm[3], perm[4]], _Merged
        elif perm[2] == inner:
            rest, result = [perm[1], perm[3], perm[4]], _Frames
        else:
            raise _refuse(node, f'permutation {tuple(perm)} of a 5D tensor is not supported '
                                f'(the axis merged into the batch, {inner}, must go to position '
                                '1 or 2)')
        order = [stored_axis[d] for d in rest]
        new = value if order == [1, 2, 3] else self.method('permute', value, (0, *order))
        return new, result(out_shape)

    def softmax(self, node: fx.Node, name: str,
                out_shape: tuple[int, ...] | None) -> tuple[Any, _Layout]:
        dim = node.args[1] if len(node.args) > 1 else node.kwargs.get('dim')
        extra = {k: v for k, v in node.kwargs.items() if k not in ('input', 'dim')}
        if len(node.args) > 2 or any(isinstance(v, fx.Node) for v in extra.values()):
            raise _refuse(node, 'softmax options must be constant keywords')
        function = F.softmax if name == 'softmax' else F.log_softmax
        return self.along_dim(node, dim, out_shape, lambda x, d: self.graph.call_function(
            function, (x,), {'dim': d, **extra}))

    def along_dim(self, node: fx.Node, dim: Any, out_shape: tuple[int, ...] | None,
                  emit: Callable[[Any, int], Any]) -> tuple[Any, _Layout]:
        """An operation along one axis (softmax, a linear layer on the last axis): the same
        operation along the stored axis that holds it."""
        source = node.args[0] if node.args else node.kwargs.get('input')
        if not isinstance(source, fx.Node) or not isinstance(dim, int) or out_shape is None:
            raise _refuse(node, 'expected a 5D tensor and a constant dim')
        value, layout = self.env[source]
        if not isinstance(layout, (_Frames, _Merged)) or len(out_shape) != 5:
            raise _refuse(node, 'expected a 5D tensor')
        dim = dim + 5 if dim < 0 else dim
        if isinstance(layout, _Merged) and dim == 1:
            value, layout = self.as_frames(node, value, layout)
        stored = ({1: 1, 3: 2, 4: 3} if isinstance(layout, _Frames) else {2: 1, 3: 2, 4: 3})
        if dim not in stored:
            raise _refuse(node, f'an operation along axis {dim} (the axis merged into the batch)')
        return emit(value, stored[dim]), type(layout)(out_shape)

    def cat(self, node: fx.Node, out_shape: tuple[int, ...] | None) -> tuple[Any, _Layout]:
        tensors = node.args[0] if node.args else node.kwargs.get('tensors')
        dim = node.args[1] if len(node.args) > 1 else node.kwargs.get('dim', 0)
        if not isinstance(tensors, (list, tuple)) or not isinstance(dim, int):
            raise _refuse(node, 'expected a list of tensors and a constant dim')
        if out_shape is None or len(out_shape) != 5:
            raise _refuse(node, 'expected 5D tensors')
        if (dim + 5 if dim < 0 else dim) != 1:
            raise _refuse(node, f'concatenation of 5D tensors on dim {dim}; only dim 1 '
                                '(channels) is supported')
        parts = []
        for item in tensors:
            if not isinstance(item, fx.Node) or not isinstance(self.layout(item),
                                                               (_Frames, _Merged)):
                raise _refuse(node, 'concatenates a 5D tensor with something else')
            value, layout = self.as_frames(item, *self.env[item])
            if layout.frames != out_shape[2]:
                raise _refuse(node, 'concatenated clips differ in length')
            parts.append(value)
        return self.graph.call_function(torch.cat, (parts, 1)), _Frames(out_shape)

    def reduce(self, node: fx.Node, op: str,
               out_shape: tuple[int, ...] | None) -> tuple[Any, _Layout]:
        source = node.args[0] if node.args else node.kwargs.get('input')
        value, layout = self.env[source]  # type: ignore[index]
        if not isinstance(layout, (_Frames, _Merged)) or out_shape is None:
            raise _refuse(node, 'expected a 5D tensor')
        dim_arg = node.args[1] if len(node.args) > 1 else node.kwargs.get('dim')
        keepdim = node.args[2] if len(node.args) > 2 else node.kwargs.get('keepdim', False)
        extra = {k: v for k, v in node.kwargs.items() if k not in ('input', 'dim', 'keepdim')}
        if any(isinstance(v, fx.Node) for v in extra.values()) or not isinstance(keepdim, bool):
            raise _refuse(node, 'reduction options must be constants')
        try:
            dims = _dims(dim_arg, 5)
        except TypeError as error:
            raise _refuse(node, str(error)) from None
        if dims is None or dims == (0, 1, 2, 3, 4):
            if keepdim:
                raise _refuse(node, 'full reduction with keepdim=True')
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
                        _Frames(out_shape))
        elif not {0, 2} & set(dims):
            # Channels and one spatial axis: reduce the frames directly.
            mapped = tuple(d - 1 if d > 2 else d for d in dims)
            kept_frames = self.graph.call_method(op, (frames_value, mapped),
                                                 {'keepdim': True, **extra})
            if keepdim:
                return kept_frames, _Frames(out_shape)
            kept = self.call(to_temporal, kept_frames, frames)
        else:
            raise _refuse(node, f'reduction over dims {dims} of a 5D tensor is not supported')
        target = out_shape if 0 in dims else (-1, *out_shape[1:])
        return self.method('reshape', kept, tuple(target)), None


def _is_inplace(node: fx.Node) -> bool:
    if node.kwargs.get('inplace') is True:
        return True
    if node.op == 'call_method':
        return str(node.target).endswith('_')
    if node.op == 'call_function':
        return node.target in (operator.iadd, operator.isub, operator.imul, operator.itruediv,
                               torch.relu_)
    return False


def _has_side_effects(node: fx.Node) -> bool:
    """Nodes dead code elimination must keep although nothing uses their result: modules
    (in-place activations, batch statistics), in-place operations and fx's impure nodes."""
    return node.op not in ('call_function', 'call_method', 'get_attr') or _is_inplace(
        node) or node.is_impure()


def math_prod(shape: tuple[int, ...]) -> int:
    total = 1
    for size in shape:
        total *= size
    return total


def _with_args(node: fx.Node, args: tuple[Any, ...]) -> fx.Node:
    """A stand-in node for a functional 3D layer: same name and meta, only the input argument."""
    graph = fx.Graph()
    fake = graph.create_node(node.op, node.target, args, {}, name=node.name)
    fake.meta = node.meta
    return fake


# -- public API -------------------------------------------------------------------------------


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


def _fold_outputs(value: Any) -> list[Tensor]:
    """Flat list of tensors of an output structure, 5D ones folded into frames."""
    flat, _ = torch.utils._pytree.tree_flatten(value)
    return [fold_input(t) for t in flat if isinstance(t, Tensor)]


def max_abs_diff(original: nn.Module, converted: nn.Module, example_input: Tensor) -> float:
    """Largest absolute difference between the outputs (5D ones folded) on ``example_input``
    (the original's input), computed without gradients and in each module's current mode."""
    with torch.no_grad():
        expected = _fold_outputs(original(example_input))
        got = _fold_outputs(converted(fold_input(example_input)))
    if len(expected) != len(got):
        raise ConversionError(f'{len(got)} outputs instead of {len(expected)}')
    worst = 0.0
    for a, b in zip(expected, got):
        if a.shape != b.shape:
            raise ConversionError(f'output shape {tuple(b.shape)} instead of {tuple(a.shape)}')
        if a.numel():
            worst = max(worst, float((a.double() - b.double()).abs().max()))
    return worst


@dataclass
class _Modes:
    modes: dict[str, bool]

    @classmethod
    def eval_all(cls, *modules: nn.Module) -> list[_Modes]:
        saved = [cls({name: m.training for name, m in module.named_modules()})
                 for module in modules]
        for module in modules:
            module.eval()
        return saved

    def restore(self, module: nn.Module) -> None:
        for name, sub in module.named_modules():
            if name in self.modes:
                sub.training = self.modes[name]


_VALUE = '_to4d_value'
_SHAPE_ONLY = '_to4d_shape_only'
_UNKNOWN = object()
_SHAPE_OPERATORS: set[Any] = {
    operator.getitem, operator.add, operator.sub, operator.mul, operator.floordiv,
    operator.truediv, operator.mod, operator.eq, operator.ne, operator.lt, operator.le,
    operator.gt, operator.ge, operator.and_, operator.or_, operator.not_, operator.neg, len,
}


class _ConcreteTracer(fx.Tracer):
    """``torch.fx`` tracing that also runs the example input through the model, so control flow
    on *shapes* (``if x.dim() != 4: raise ...``) is decided by the example's shapes (the
    converted model is specialised to them anyway). Control flow on tensor *values* still fails
    to trace. Every node gets its example value in ``meta`` while tracing."""

    def __init__(self, example_input: Tensor) -> None:
        super().__init__()
        self.record_stack_traces = True
        self.example_input = example_input
        self._placeholders = 0
        self._raw_getattr = False
        self._leaf_forward: Callable[..., Any] | None = None

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        """``torch.nn`` layers, and subclasses of them that keep their ``forward`` (such as
        torchvision's ``Conv3DSimple(nn.Conv3d)``), are leaves."""
        if super().is_leaf_module(m, module_qualified_name):
            return True
        forward = type(m).forward
        return not isinstance(m, nn.Sequential) and any(
            base.__module__.startswith('torch.nn.') and base is not nn.Module
            and vars(base)['forward'] is forward
            for base in type(m).__mro__[1:] if 'forward' in vars(base))

    def getattr(self, attr: str, attr_val: Any, parameter_proxy_cache: dict[str, Any]) -> Any:
        if self._raw_getattr:
            return attr_val
        return super().getattr(attr, attr_val, parameter_proxy_cache)

    def call_module(self, m: nn.Module, forward: Callable[..., Any], args: tuple[Any, ...],
                    kwargs: dict[str, Any]) -> Any:
        self._leaf_forward = forward
        return super().call_module(m, forward, args, kwargs)

    def to_bool(self, obj: fx.Proxy) -> bool:
        meta = obj.node.meta
        if meta.get(_SHAPE_ONLY) and meta.get(_VALUE, _UNKNOWN) is not _UNKNOWN:
            return bool(meta[_VALUE])
        return super().to_bool(obj)

    def create_proxy(self, kind: str, target: Any, args: tuple[Any, ...], kwargs: dict[str, Any],
                     name: str | None = None, type_expr: Any | None = None,
                     proxy_factory_fn: Callable[[fx.Node], fx.Proxy] | None = None) -> fx.Proxy:
        proxy = super().create_proxy(kind, target, args, kwargs, name, type_expr,
                                     proxy_factory_fn)
        node = proxy.node
        node.meta[_SHAPE_ONLY] = self._shape_only(kind, target, args)
        try:
            node.meta[_VALUE] = self._evaluate(kind, target, args, kwargs)
        except Exception:
            node.meta[_VALUE] = _UNKNOWN
        return proxy

    @staticmethod
    def _shape_only(kind: str, target: Any, args: tuple[Any, ...]) -> bool:
        if kind == 'call_method':
            return target in ('size', 'dim', 'numel')
        if kind != 'call_function':
            return False
        if target is getattr:
            return len(args) > 1 and args[1] in ('shape', 'ndim')
        if target not in _SHAPE_OPERATORS:
            return False
        proxies = [a for a in args if isinstance(a, fx.Proxy)]
        return all(bool(p.node.meta.get(_SHAPE_ONLY)) for p in proxies)

    def _evaluate(self, kind: str, target: Any, args: tuple[Any, ...],
                  kwargs: dict[str, Any]) -> Any:
        if kind == 'placeholder':
            self._placeholders += 1
            if self._placeholders == 1:
                return self.example_input
            return args[0] if args else _UNKNOWN
        unknown = False

        def concrete(a: Any) -> Any:
            nonlocal unknown
            if isinstance(a, fx.Proxy):
                value = a.node.meta.get(_VALUE, _UNKNOWN)
                unknown = unknown or value is _UNKNOWN
                return value
            return a

        values = fx.node.map_aggregate(args, concrete)
        kwvalues = fx.node.map_aggregate(kwargs, concrete)
        if unknown:
            return _UNKNOWN
        self._raw_getattr = True
        try:
            if kind == 'get_attr':
                attr: Any = self.root
                for part in str(target).split('.'):
                    attr = getattr(attr, part)
                return attr
            if kind == 'call_function':
                return target(*values, **kwvalues)
            if kind == 'call_method':
                return getattr(values[0], target)(*values[1:], **kwvalues)
            if kind == 'call_module' and self._leaf_forward is not None:
                return self._leaf_forward(*values, **kwvalues)
        finally:
            self._raw_getattr = False
        return _UNKNOWN


def _trace(model: nn.Module, example_input: Tensor) -> fx.GraphModule:
    tracer = _ConcreteTracer(example_input)
    try:
        with torch.no_grad():
            graph = tracer.trace(model)
    except Exception as error:
        raise ConversionError(
            f'torch.fx could not trace {type(model).__name__} ({type(error).__name__}: {error}); '
            'control flow on tensor values cannot be converted') from error
    for node in graph.nodes:
        node.meta.pop(_VALUE, None)
        node.meta.pop(_SHAPE_ONLY, None)
    gm = fx.GraphModule(tracer.root, graph, type(model).__name__)
    gm.graph.eliminate_dead_code(_has_side_effects)
    gm.recompile()
    return gm


def _verify(original: nn.Module, converted: fx.GraphModule, example_input: Tensor,
            tolerance: float) -> None:
    problems = check_4d_only_structure(converted)
    if problems:
        raise ConversionError('converted model is not 4D-only: ' + '; '.join(problems[:5]))
    doubled = torch.cat([example_input, example_input.flip(-1)], dim=0)
    saved = _Modes.eval_all(original, converted)
    try:
        with torch.no_grad():
            try:
                expected = _fold_outputs(original(doubled))
            except Exception:
                # The original itself takes only its example's batch size: check at that one.
                doubled = example_input
                expected = _fold_outputs(original(doubled))
            frames = fold_input(doubled)
            try:
                with RankRecorder() as ranks:
                    raw = converted(frames)
            except Exception as error:
                raise ConversionError(
                    f'the converted model fails on the example input at batch size '
                    f'{doubled.shape[0]} ({type(error).__name__}: {error}); a batch size fixed '
                    'inside the model?') from error
            got = _fold_outputs(raw)
    finally:
        saved[0].restore(original)
        saved[1].restore(converted)
    if ranks.max_rank > 4:
        first = '; '.join(f'{v.op} {v.shape}' for v in ranks.violations[:3])
        raise ConversionError(f'converted model makes a tensor of rank {ranks.max_rank}: {first}')
    if len(expected) != len(got):
        raise ConversionError(f'converted model returns {len(got)} tensors instead of '
                              f'{len(expected)}')
    for index, (a, b) in enumerate(zip(expected, got)):
        if a.shape != b.shape:
            raise ConversionError(
                f'output {index}: shape {tuple(b.shape)} instead of {tuple(a.shape)} at batch '
                f'size {doubled.shape[0]} (a batch size fixed inside the model?)')
        if a.is_floating_point() and a.numel():
            scale = max(1.0, float(a.abs().max()))
            diff = float((a.double() - b.double()).abs().max())
            if not diff <= tolerance * scale:
                raise ConversionError(
                    f'output {index}: converted model differs from the original by {diff:.3g} '
                    f'(allowed {tolerance * scale:.3g}); torch.fx does not record some Python '
                    'behaviour (e.g. `+=` on a view of another tensor is traced as an '
                    'out-of-place add); otherwise please report this model')
        elif not torch.equal(a, b):
            raise ConversionError(f'output {index} differs from the original')


def to_4d(model: nn.Module, *, example_input: Tensor, verify: bool = True,
          tolerance: float = 1e-4) -> fx.GraphModule:
    """An exact 4D-only copy of ``model`` (which is left unchanged).

    Args:
        model: any ``nn.Module`` that ``torch.fx`` can trace, taking one tensor.
        example_input: an input of the original model, e.g. a clip ``[B, C, T, H, W]`` (or
            frames ``[B*T, C, H, W]`` for a model that folds them into 5D itself). The
            converted model is specialised to its clip length and frame size; the batch size
            stays free.
        verify: compare the converted model with the original (eval mode, the example input at
            twice its batch size) and check that it never makes a tensor of rank 5.
        tolerance: largest difference allowed by ``verify``, relative to
            ``max(1, max |output|)``.

    Returns:
        A ``torch.fx.GraphModule`` in the original's train/eval mode that takes
        :func:`fold_input` of the original's input (a 5D clip as frames ``[B*T, C, H, W]``) and
        returns the original's outputs, 5D outputs ``[B, C, T, H, W]`` as ``[B*T, C, H, W]``.
        Weights are copied (rank <= 4 storage).

    Note:
        Layers keep their train/eval behaviour (``BatchNorm2d`` in train mode uses batch
        statistics exactly as ``BatchNorm3d`` did). As with any ``torch.fx`` trace, a functional
        call given ``self.training`` (``F.dropout(x, p, self.training)``) keeps the mode the
        model had when it was converted.

    Raises:
        ConversionError: an operation cannot be converted exactly (the message names the graph
            node, its operation, module path and source line), or verification failed.
    """
    if not isinstance(example_input, Tensor):
        raise TypeError(f'example_input must be a tensor, got {type(example_input).__name__}')
    work = copy.deepcopy(model)
    state = copy.deepcopy(work.state_dict())
    with torch.random.fork_rng(devices=[]):
        # Tracing runs the example through the model in its own mode (fx bakes
        # `self.training` into functional calls); the state it may touch is put back.
        gm = _trace(work, example_input)
        work.load_state_dict(state)
        saved = _Modes.eval_all(gm)
        try:
            with torch.no_grad():
                fx.passes.shape_prop.ShapeProp(gm).propagate(example_input)
        except Exception as error:
            cause = error.__cause__ or error
            first = (str(cause).strip().splitlines() or [''])[0]
            raise ConversionError(f'the model does not run on example_input of shape '
                                  f'{tuple(example_input.shape)}: {type(cause).__name__}: '
                                  f'{first}') from error
        finally:
            saved[0].restore(gm)
    converted = _Converter(gm).run()
    if verify:
        _verify(model, converted, example_input, tolerance)
    return converted


# -- ONNX -------------------------------------------------------------------------------------


def check_onnx_4d_only(model_proto: Any) -> list[str]:
    """Problems that keep an ONNX model from being 4D-only; empty means proven 4D-only.

    After ONNX shape inference every input, output, intermediate value, initializer and constant
    must have a known rank of at most 4 and no convolution may have a 3D kernel. This is the
    proof ``action-recognition export`` runs: the one implementation lives in
    :func:`action_recognition.io.onnx_check.check_onnx_4d_only`.
    """
    from action_recognition.io.onnx_check import check_onnx_4d_only as check

    return check(model_proto)


def export_onnx_4d(converted: nn.Module, example_frames: Tensor, path: str | Path, *,
                   opset: int = 17, dynamic_batch: bool = True,
                   exporter: str = 'auto') -> list[str]:
    """Export a converted model (in eval mode) to ONNX and return :func:`check_onnx_4d_only`'s
    problems (empty: proven 4D-only).

    ``example_frames`` is the converted model's input (:func:`fold_input` of a clip). The input
    is named ``frames`` and the outputs ``output``/``output_<i>``; with ``dynamic_batch`` the
    leading axis is dynamic. ``exporter``: ``'torchscript'`` (``dynamo=False``), ``'dynamo'``
    (``torch.export``-based) or ``'auto'`` (the first, then the second if it fails).
    """
    import warnings

    import onnx

    if exporter not in ('auto', 'torchscript', 'dynamo'):
        raise ValueError(f"exporter must be 'auto', 'torchscript' or 'dynamo', got {exporter!r}")
    path = Path(path)
    saved = _Modes.eval_all(converted)
    errors: list[str] = []
    try:
        with torch.no_grad():
            outputs = _fold_outputs(converted(example_frames))
        output_names = (['output'] if len(outputs) == 1
                        else [f'output_{i}' for i in range(len(outputs))])
        if exporter in ('auto', 'torchscript'):
            axes = {name: {0: 'batch'} for name in ['frames', *output_names]}
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter('ignore')  # the TorchScript exporter is deprecated
                    torch.onnx.export(
                        converted, (example_frames,), str(path), dynamo=False,
                        input_names=['frames'], output_names=output_names,
                        opset_version=opset, dynamic_axes=axes if dynamic_batch else None)
            except Exception as error:
                errors.append(f'TorchScript-based exporter: {type(error).__name__}: {error}')
        if exporter == 'dynamo' or (exporter == 'auto' and errors):
            try:
                dynamic = ({0: torch.export.Dim('batch')},) if dynamic_batch else None
                program = torch.onnx.export(
                    converted, (example_frames,), dynamo=True, input_names=['frames'],
                    output_names=output_names, opset_version=opset, dynamic_shapes=dynamic)
                assert program is not None
                program.save(str(path), external_data=False)
                errors.clear()
            except Exception as error:
                errors.append(f'torch.export-based exporter: {type(error).__name__}: {error}')
        if errors:
            raise RuntimeError('ONNX export failed: ' + '; '.join(errors))
    finally:
        saved[0].restore(converted)
    return check_onnx_4d_only(onnx.load(str(path)))

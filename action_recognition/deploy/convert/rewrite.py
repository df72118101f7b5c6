"""The rewrite pass of the converter: every node of the traced graph, in order, to the 4D graph.

:class:`Converter` walks the traced graph (with its static shapes, see
:mod:`~action_recognition.deploy.convert.trace`) and decides per node: a placeholder of rank 5
(a clip ``[B, C, T, H, W]``) becomes frames ``[B*T, C, H, W]``; a 3D layer (module or
functional) is replaced by its 4D form (:class:`~action_recognition.models.layers.Conv3dAs4d`,
``BatchNorm2d``, :mod:`~action_recognition.models.layers3d_as_4d`); a parameter or buffer
``[1, C, T, H, W]`` is stored as ``[C, T, H, W]``; an operation that touches a 5D value goes to
its rule (:class:`~action_recognition.deploy.convert.rules.GraphRules`); anything else is
copied, and what cannot be converted exactly is refused naming the node. The tables below list
what is supported.
"""

from __future__ import annotations

import operator
from typing import Any

import torch
from torch import fx
from torch import nn
from torch import Tensor
import torch.nn.functional as F

from action_recognition.deploy.convert.layout import flat_nodes
from action_recognition.deploy.convert.layout import Frames
from action_recognition.deploy.convert.layout import has_side_effects
from action_recognition.deploy.convert.layout import Layout
from action_recognition.deploy.convert.layout import Merged
from action_recognition.deploy.convert.layout import meta_shape
from action_recognition.deploy.convert.layout import refuse
from action_recognition.deploy.convert.layout import ShapeOf
from action_recognition.deploy.convert.layout import with_args
from action_recognition.deploy.convert.rules import GraphRules
from action_recognition.models import layers3d_as_4d as l4
from action_recognition.models.layers import Conv3dAs4d

__all__ = ['Converter', 'rewrite_graph']

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


def rewrite_graph(gm: fx.GraphModule) -> fx.GraphModule:
    """The 4D-only graph module of a traced graph whose nodes carry their static shapes (see
    :class:`Converter`); ``gm``'s modules are reused (and 3D ones replaced) in place."""
    return Converter(gm).run()


class Converter(GraphRules):
    """Rewrites one traced graph; see the module docstring."""

    def run(self) -> fx.GraphModule:
        """Convert every node; the new graph module (named ``<Model>As4d``)."""
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
        new_gm.graph.eliminate_dead_code(has_side_effects)
        new_gm.recompile()
        # GraphModule keeps the leaf modules themselves (with their modes); set its own mode.
        new_gm.training = self.gm.training
        return new_gm

    def convert(self, node: fx.Node) -> tuple[Any, Layout]:
        """One node: its value in the new graph and its layout."""
        if node.op == 'placeholder':
            new = self.graph.node_copy(node, self.value)
            shape = meta_shape(node)
            if shape is not None and len(shape) == 5:
                return new, Frames(shape)
            if shape is not None and len(shape) > 5:
                raise refuse(node, f'input of rank {len(shape)}')
            return new, None
        if node.op == 'get_attr':
            return self.get_attr(node)
        if node.op == 'output':
            return self.convert_output(node), None
        inputs = flat_nodes((node.args, node.kwargs))
        touches = any(isinstance(self.layout(n), (Frames, Merged)) for n in inputs)
        out_shape = meta_shape(node)
        first = node.args[0] if node.args else None
        if isinstance(self.layout(first), ShapeOf):
            if node.op == 'call_function' and node.target is operator.getitem:
                return self.getitem(node)
            raise refuse(node, 'only indexing is supported on the shape of a 5D tensor')
        if node.op == 'call_module':
            return self.convert_module(node, touches, out_shape)
        if node.op == 'call_method':
            return self.convert_method(node, touches, out_shape)
        if node.op == 'call_function':
            return self.convert_function(node, touches, out_shape)
        raise refuse(node, 'unknown node kind')

    def get_attr(self, node: fx.Node) -> tuple[Any, Layout]:
        """Parameters, buffers and constants; a 5D one of shape ``[1, s1, s2, s3, s4]`` is
        stored as ``[s1, s2, s3, s4]`` (its merged representation)."""
        path = str(node.target)
        owner_path, _, name = path.rpartition('.')
        owner = self.gm.get_submodule(owner_path)
        attr = getattr(owner, name)
        if not isinstance(attr, Tensor) or attr.dim() <= 4:
            if path in self.stored_5d:
                return self.graph.node_copy(node, self.value), Merged(self.stored_5d[path])
            return self.graph.node_copy(node, self.value), None
        if attr.dim() > 5 or attr.shape[0] != 1:
            raise refuse(node, f'parameter or buffer of rank {attr.dim()} {tuple(attr.shape)}; '
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
        return self.graph.node_copy(node, self.value), Merged(shape)

    def convert_output(self, node: fx.Node) -> Any:
        """The outputs, 5D ones as frames ``[B*T, C, H, W]``."""
        def fold(arg: fx.Node) -> Any:
            value, layout = self.env[arg]
            if isinstance(layout, (Frames, Merged)):
                return self.as_frames(arg, value, layout)[0]
            if isinstance(layout, ShapeOf):
                raise refuse(node, 'returns the shape of a 5D tensor')
            return value

        return self.graph.output(fx.node.map_arg(node.args[0], fold))

    # -- modules ------------------------------------------------------------------------------

    def convert_module(self, node: fx.Node, touches: bool,
                       out_shape: tuple[int, ...] | None) -> tuple[Any, Layout]:
        module = self.gm.get_submodule(str(node.target))
        if not touches:
            if isinstance(module, (nn.Flatten, nn.Unflatten)):
                return self.copy_plain_or_enter(node, out_shape, True)
            if isinstance(module, _5D_MODULES):
                raise refuse(node, f'{type(module).__name__} on an input that is not a batched '
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
        raise refuse(node, f'{type(module).__name__} on a 5D tensor is not supported')

    def layer_5d(self, node: fx.Node, module: nn.Module, path: str | None,
                 out_shape: tuple[int, ...] | None) -> tuple[Any, Layout]:
        """Replace a 3D layer (``path`` in the model, ``None`` for a functional call)."""
        if len(node.args) != 1 or node.kwargs:
            raise refuse(node, 'expected one input tensor')
        arg = node.args[0]
        if not isinstance(arg, fx.Node) or self.layout(arg) is None:
            raise refuse(node, 'expected a 5D input')
        if out_shape is None or len(out_shape) != 5:
            raise refuse(node, f'expected a 5D output, got {out_shape}')
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
            raise refuse(node, str(error)) from None
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
        return new, Frames(out_shape)

    # -- methods and functions ----------------------------------------------------------------

    def convert_method(self, node: fx.Node, touches: bool,
                       out_shape: tuple[int, ...] | None) -> tuple[Any, Layout]:
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
        raise refuse(node, f'method {name!r} on a 5D tensor is not supported')

    def convert_function(self, node: fx.Node, touches: bool,
                         out_shape: tuple[int, ...] | None) -> tuple[Any, Layout]:
        target = node.target
        assert callable(target)
        if not touches:
            return self.copy_plain_or_enter(node, out_shape, target in _RESHAPE_FUNCTIONS)
        if target is getattr:
            return self.attribute(node)
        if target is operator.getitem:
            raise refuse(node, 'indexing or slicing a 5D tensor is not supported')
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
            if any(isinstance(self.layout(n), (Frames, Merged))
                   for n in flat_nodes((node.args[1:], node.kwargs))):
                raise refuse(node, 'a 5D tensor as linear weight')
            return self.along_dim(node, -1, out_shape, lambda x, _: self.graph.call_function(
                F.linear, (x, *fx.node.map_arg(node.args[1:], self.value)),
                dict(fx.node.map_arg(node.kwargs, self.value))))
        if target in _POOL_FUNCTIONS:
            cls, names = _POOL_FUNCTIONS[target]
            options = dict(zip(names, node.args[1:]))
            options.update({k: v for k, v in node.kwargs.items() if k != 'input'})
            if any(isinstance(v, fx.Node) for v in options.values()):
                raise refuse(node, 'pooling options must be constants')
            try:
                module = cls(**options)
            except TypeError as error:
                raise refuse(node, str(error)) from None
            fake = with_args(node, (node.args[0] if node.args else node.kwargs['input'],))
            return self.layer_5d(fake, module, None, out_shape)
        raise refuse(node, 'this operation on a 5D tensor is not supported')

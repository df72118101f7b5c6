"""Tracing a model with ``torch.fx`` for the converter, with the example's shapes on every node.

:func:`trace_with_shapes` traces a copy of the model with :class:`ConcreteTracer` (which runs
the example input alongside, so control flow on *shapes* is decided by the example) and then
records every node's static shape (``node.meta['tensor_meta']``, shape propagation): the rewrite
(:mod:`~action_recognition.deploy.convert.rewrite`) tracks ``T`` through the graph with them.
"""

from __future__ import annotations

from collections.abc import Callable
import copy
import operator
from typing import Any

import torch
from torch import fx
from torch import nn
from torch import Tensor

from action_recognition.deploy.convert.layout import ConversionError
from action_recognition.deploy.convert.layout import has_side_effects
from action_recognition.deploy.convert.layout import Modes

__all__ = ['ConcreteTracer', 'trace', 'trace_with_shapes']

_VALUE = '_to4d_value'
_SHAPE_ONLY = '_to4d_shape_only'
_UNKNOWN = object()
_SHAPE_OPERATORS: set[Any] = {
    operator.getitem, operator.add, operator.sub, operator.mul, operator.floordiv,
    operator.truediv, operator.mod, operator.eq, operator.ne, operator.lt, operator.le,
    operator.gt, operator.ge, operator.and_, operator.or_, operator.not_, operator.neg, len,
}


class ConcreteTracer(fx.Tracer):
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


def trace(model: nn.Module, example_input: Tensor) -> fx.GraphModule:
    """The ``torch.fx`` graph of ``model`` on ``example_input`` (:class:`ConcreteTracer`),
    without dead code; ``model`` becomes the graph module's root (pass a copy)."""
    tracer = ConcreteTracer(example_input)
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
    gm.graph.eliminate_dead_code(has_side_effects)
    gm.recompile()
    return gm


def trace_with_shapes(model: nn.Module, example_input: Tensor) -> fx.GraphModule:
    """:func:`trace` of a copy of ``model`` (left unchanged), every node's static shape recorded
    in ``meta['tensor_meta']`` by running ``example_input`` (e.g. a clip ``[B, C, T, H, W]``)
    through it in eval mode; the graph module keeps the model's train/eval modes."""
    work = copy.deepcopy(model)
    state = copy.deepcopy(work.state_dict())
    with torch.random.fork_rng(devices=[]):
        # Tracing runs the example through the model in its own mode (fx bakes
        # `self.training` into functional calls); the state it may touch is put back.
        gm = trace(work, example_input)
        work.load_state_dict(state)
        saved = Modes.eval_all(gm)
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
    return gm

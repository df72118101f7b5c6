"""The 4D-only proof of an ONNX graph (the one implementation; export and converter use it).

:func:`check_onnx_4d_only` runs ONNX shape inference (with data propagation, so shapes computed
from ``Shape`` -> ``Gather`` -> ``Concat`` chains are known) and then checks every tensor the
graph names: graph inputs and outputs, every intermediate value, every initializer and every
``Constant`` node's value, in the main graph and in any sub-graph (``If``/``Loop``/``Scan``).
A model passes when

- every tensor has a known rank, and that rank is at most 4 (a tensor whose rank shape inference
  cannot determine is reported: it cannot be proven 4D-only), and
- no ``Conv``/``ConvTranspose``/``ConvInteger``/``QLinearConv`` has a kernel with more than two
  spatial axes (a 3D convolution).

The function returns a list of human-readable problems; an empty list is the proof.
:func:`rank_proof` is what an exported file records of it (the runtime checks that record at
load, bound to the graph by its hash, instead of running this again).
"""

from __future__ import annotations

from collections.abc import Iterator
import hashlib
from typing import Any

import onnx
from onnx import shape_inference

from action_recognition.io.specs import RankProof

__all__ = ['check_onnx_4d_only', 'max_rank', 'rank_proof', 'MAX_RANK']

MAX_RANK = 4

_CONV_OPS = {'Conv', 'ConvTranspose', 'ConvInteger', 'QLinearConv', 'DeformConv'}
# Index of the weight input of each convolution operator.
_CONV_WEIGHT_INPUT = {'Conv': 1, 'ConvTranspose': 1, 'ConvInteger': 1, 'QLinearConv': 3,
                      'DeformConv': 1}


def _subgraphs(graph: Any) -> Iterator[tuple[str, Any]]:
    """``(path, graph)`` for ``graph`` and, recursively, every sub-graph of its nodes."""

    stack = [('', graph)]
    while stack:
        path, current = stack.pop()
        yield path, current
        for node in current.node:
            for attribute in node.attribute:
                if attribute.type == onnx.AttributeProto.GRAPH:
                    stack.append((f'{path}{node.name or node.op_type}.{attribute.name}/',
                                  attribute.g))
                elif attribute.type == onnx.AttributeProto.GRAPHS:
                    for i, sub in enumerate(attribute.graphs):
                        stack.append((f'{path}{node.name or node.op_type}.{attribute.name}[{i}]/',
                                      sub))


def _value_rank(value_info: Any) -> int | None:
    """Rank of a ``ValueInfoProto`` of tensor type, ``None`` when unknown; -1 for non-tensors."""
    type_proto = value_info.type
    kind = type_proto.WhichOneof('value')
    if kind != 'tensor_type':
        return -1
    tensor_type = type_proto.tensor_type
    if not tensor_type.HasField('shape'):
        return None
    return len(tensor_type.shape.dim)


def _infer(model_proto: Any) -> Any:

    try:
        return shape_inference.infer_shapes(model_proto, check_type=True, strict_mode=True,
                                            data_prop=True)
    except (onnx.shape_inference.InferenceError, RuntimeError, ValueError):
        # Strict mode fails on some operator domains (e.g. com.microsoft after ORT optimisation);
        # fall back to lenient inference: tensors it cannot type are then reported as unknown.
        return shape_inference.infer_shapes(model_proto, data_prop=True)


def check_onnx_4d_only(model_proto: Any, *, limit: int = MAX_RANK) -> list[str]:
    """Problems that keep ``model_proto`` (an ``onnx.ModelProto``) from being 4D-only.

    Returns an empty list when, after shape inference, every input, output, intermediate value,
    initializer and constant has a known rank ``<= limit`` and no convolution has a 3D kernel.
    """

    return _problems(_infer(_checked_proto(model_proto)), limit)


def _checked_proto(model_proto: Any) -> Any:
    if not isinstance(model_proto, onnx.ModelProto):
        raise TypeError(f'expected an onnx.ModelProto, got {type(model_proto).__name__}')
    return model_proto


def _problems(inferred: Any, limit: int) -> list[str]:
    """:func:`check_onnx_4d_only` of a graph after shape inference."""
    problems: list[str] = []
    for path, graph in _subgraphs(inferred.graph):
        ranks: dict[str, int] = {}
        for init in graph.initializer:
            ranks[init.name] = len(init.dims)
            if len(init.dims) > limit:
                problems.append(
                    f'{path}initializer {init.name!r} has rank {len(init.dims)} '
                    f'{tuple(init.dims)}')
        for sparse in graph.sparse_initializer:
            if len(sparse.dims) > limit:
                problems.append(f'{path}sparse initializer {sparse.values.name!r} has rank '
                                f'{len(sparse.dims)}')
        declared: dict[str, tuple[str, int | None]] = {}
        for kind, values in (('input', graph.input), ('output', graph.output),
                             ('value', graph.value_info)):
            for value in values:
                declared.setdefault(value.name, (kind, _value_rank(value)))
        for name, (kind, rank) in declared.items():
            if rank is None and name not in ranks:
                problems.append(f'{path}{kind} {name!r} has unknown rank after shape inference')
            elif rank is not None and rank > limit:
                problems.append(f'{path}{kind} {name!r} has rank {rank}')
            if rank is not None:
                ranks.setdefault(name, rank)
        for node in graph.node:
            label = f'{path}{node.op_type} node {node.name or "<unnamed>"!r}'
            if node.op_type == 'Constant':
                for attribute in node.attribute:
                    if attribute.type == onnx.AttributeProto.TENSOR and \
                            len(attribute.t.dims) > limit:
                        problems.append(
                            f'{label} makes a constant of rank {len(attribute.t.dims)}')
            for output in node.output:
                if output and output not in ranks and output not in declared:
                    problems.append(
                        f'{label}: output {output!r} has unknown rank after shape inference')
            if node.op_type in _CONV_OPS:
                kernel = next((list(a.ints) for a in node.attribute if a.name == 'kernel_shape'),
                              None)
                index = _CONV_WEIGHT_INPUT[node.op_type]
                weight_rank = ranks.get(node.input[index]) if len(node.input) > index else None
                if kernel is not None and len(kernel) > 2:
                    problems.append(f'{label} has a 3D kernel {tuple(kernel)}')
                elif weight_rank is not None and weight_rank > 4:
                    problems.append(f'{label} has a weight of rank {weight_rank} (3D kernel)')
    return problems


def max_rank(model_proto: Any) -> int:
    """The largest known tensor rank in ``model_proto`` after shape inference (for reports)."""
    return _max_rank(_infer(model_proto))


def _max_rank(inferred: Any) -> int:
    best = 0
    for _path, graph in _subgraphs(inferred.graph):
        for init in graph.initializer:
            best = max(best, len(init.dims))
        for values in (graph.input, graph.output, graph.value_info):
            for value in values:
                rank = _value_rank(value)
                if rank is not None:
                    best = max(best, rank)
    return best


def rank_proof(model_proto: Any) -> RankProof:
    """The 4D-only proof of ``model_proto`` as an exported file records it
    (:class:`~action_recognition.io.specs.RankProof`): the problems :func:`check_onnx_4d_only`
    finds (a check that cannot run is a problem too), the largest rank and the graph's hash."""
    try:
        inferred = _infer(_checked_proto(model_proto))  # once, for both
        problems, rank = _problems(inferred, MAX_RANK), _max_rank(inferred)
    except Exception as error:
        problems, rank = [f'the rank check could not run ({type(error).__name__}: {error})'], 0
    digest = hashlib.sha256(model_proto.graph.SerializeToString()).hexdigest()
    return RankProof(tuple(problems), rank, digest)

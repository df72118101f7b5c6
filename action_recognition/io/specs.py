"""A model's spec in its files, written and read here for every format, with the 4D-only proof.

The :class:`~action_recognition.spec.ModelSpec` travels inside every model file:

- a ``.pt`` checkpoint: ``state['spec']``, a plain dict (:func:`put_checkpoint_spec`,
  :func:`checkpoint_spec`);
- an exported ONNX file: its ``metadata_props``, the spec as JSON under
  :data:`~action_recognition.spec.SPEC_METADATA_KEY` with readable copies of its fields, and the
  exporter's 4D-only proof under :data:`PROOF_METADATA_KEY` (:func:`onnx_metadata`,
  :func:`set_onnx_metadata`). The runtime reads them straight from the file's bytes
  (:func:`read_onnx_metadata`, :func:`metadata_spec`, :func:`metadata_proof`), without the
  ``onnx`` package;
- an OpenVINO IR: the spec in the model's ``rt_info`` under the same key (:func:`set_ir_spec`,
  :func:`ir_spec`); an IR that OpenVINO converted from an exported ONNX file (``ovc``,
  ``openvino.save_model``) keeps the ONNX metadata under ``rt_info/framework``, read from there.

The proof (:class:`RankProof`) is what the exporter's rank check found (its problems, empty for a
4D-only graph, and the highest rank), bound to the graph it was made on by the SHA-256 of the
file's serialised ``graph`` field (:func:`read_onnx_metadata`): a graph changed after the export
no longer matches its proof, and the runtime checks it again.
"""

from __future__ import annotations

from collections.abc import Iterator
from collections.abc import Mapping
from dataclasses import dataclass
import hashlib
import json
import os
from typing import Any

from action_recognition.spec import ModelSpec
from action_recognition.spec import SPEC_METADATA_KEY

__all__ = ['PROOF_METADATA_KEY', 'IR_SPEC_KEYS', 'MissingSpecError', 'RankProof',
           'checkpoint_spec', 'put_checkpoint_spec', 'onnx_metadata', 'set_onnx_metadata',
           'metadata_spec', 'metadata_proof', 'read_onnx_metadata', 'ir_spec', 'set_ir_spec']

PROOF_METADATA_KEY = 'action_recognition.rank_proof'

#: Where an OpenVINO model's ``rt_info`` holds the spec JSON, in the order they are looked up:
#: the package's own key (what :func:`set_ir_spec` writes), then the ONNX metadata that OpenVINO
#: carries over from an exported ONNX file (read directly, or converted to an IR).
IR_SPEC_KEYS: tuple[tuple[str, ...], ...] = ((SPEC_METADATA_KEY,),
                                             ('framework', SPEC_METADATA_KEY))

_LAYOUT = ('frames uint8 [batch*T, 3, H, W] RGB, T frames of a clip contiguous -> logits '
           'float32 [batch, num_classes]')
_MAX_PROBLEMS = 20


class MissingSpecError(ValueError):
    """A model file without the ``action_recognition.spec`` metadata."""


@dataclass(frozen=True)
class RankProof:
    """The exporter's 4D-only check of an ONNX graph.

    Attributes:
        problems: what it found (tensors of rank above 4, 3D convolutions); empty: 4D-only.
        max_rank: the highest tensor rank in the graph.
        graph_sha256: SHA-256 of the serialised ``graph`` field the check ran on.
    """

    problems: tuple[str, ...]
    max_rank: int
    graph_sha256: str

    @property
    def four_d_only(self) -> bool:
        return not self.problems

    def to_json(self) -> str:
        return json.dumps({'problems': list(self.problems[:_MAX_PROBLEMS]),
                           'max_rank': self.max_rank, 'graph_sha256': self.graph_sha256},
                          sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> RankProof:
        data = json.loads(text)
        problems, rank, digest = data['problems'], data['max_rank'], data['graph_sha256']
        if not (isinstance(problems, list) and all(isinstance(p, str) for p in problems)
                and isinstance(rank, int) and isinstance(digest, str)):
            raise ValueError('malformed 4D-only proof')
        return cls(tuple(problems), rank, digest)


# -- .pt checkpoints ----------------------------------------------------------------------------

def put_checkpoint_spec(state: dict[str, Any], spec: ModelSpec) -> dict[str, Any]:
    """``state`` with ``spec`` stored in it (as a plain dict, readable with weights_only)."""
    state['spec'] = spec.to_dict()
    return state


def checkpoint_spec(state: Mapping[str, Any], path: str | os.PathLike[str] = '<checkpoint>'
                    ) -> ModelSpec:
    """The spec of a loaded checkpoint; ``ValueError`` naming ``path`` when it is invalid."""
    try:
        return ModelSpec.from_dict(state['spec'])
    except (TypeError, ValueError, KeyError) as error:
        raise ValueError(f'checkpoint {path} has an invalid model spec: {error}') from error


# -- ONNX ---------------------------------------------------------------------------------------

def onnx_metadata(spec: ModelSpec, proof: RankProof | None) -> dict[str, str]:
    """An exported ONNX file's ``metadata_props``: the spec (JSON, what the runtime reads), its
    fields readable one by one, the graph's layout and, when given, the 4D-only proof."""
    metadata = {
        SPEC_METADATA_KEY: spec.to_json(),
        'model': spec.model,
        'labels': json.dumps(list(spec.label_names)),
        'num_classes': str(spec.num_classes),
        'clip_length': str(spec.num_frames),
        'frame_stride': str(spec.frame_stride),
        'sampling': spec.sampling,
        'input_size': f'{spec.input_size[0]}x{spec.input_size[1]}',
        'resize_short': str(spec.resize_short),
        'mean': json.dumps(list(spec.mean)),
        'std': json.dumps(list(spec.std)),
        'layout': _LAYOUT,
    }
    if proof is not None:
        metadata[PROOF_METADATA_KEY] = proof.to_json()
    return metadata


def set_onnx_metadata(proto: Any, spec: ModelSpec, proof: RankProof | None) -> None:
    """Replace an ``onnx.ModelProto``'s metadata with :func:`onnx_metadata`."""
    del proto.metadata_props[:]
    for key, value in onnx_metadata(spec, proof).items():
        entry = proto.metadata_props.add()
        entry.key = key
        entry.value = value
    proto.producer_name = 'action_recognition'
    proto.doc_string = f'{spec.model}: {spec.num_classes} classes, {spec.num_frames} frames'


def metadata_spec(metadata: Mapping[str, str], path: str | os.PathLike[str] = '<model>'
                  ) -> ModelSpec:
    """The spec in an ONNX file's metadata (ONNX Runtime's ``custom_metadata_map``, or
    ``metadata_props`` as a dict): :class:`MissingSpecError` without one, ``ValueError`` (naming
    ``path``) when it is invalid or claims sizes above the spec's bounds."""
    if SPEC_METADATA_KEY not in metadata:
        raise MissingSpecError(f'{path} has no {SPEC_METADATA_KEY!r} metadata; export it with '
                               '`action-recognition export`')
    try:
        return ModelSpec.from_json(metadata[SPEC_METADATA_KEY])
    except ValueError as error:
        raise ValueError(f'{path}: invalid model metadata: {error}') from error


def metadata_proof(metadata: Mapping[str, str], graph_sha256: str) -> RankProof | None:
    """The 4D-only proof an ONNX file carries, if it has one that is well formed and was made
    on the graph whose hash is ``graph_sha256`` (:func:`read_onnx_metadata`); else ``None``."""
    text = metadata.get(PROOF_METADATA_KEY)
    if text is None:
        return None
    try:
        proof = RankProof.from_json(text)
    except (ValueError, KeyError, TypeError):
        return None
    return proof if proof.graph_sha256 == graph_sha256 else None


def _varint(data: memoryview, at: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if at >= len(data) or shift > 63:
            raise ValueError('truncated protobuf varint')
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, at


def _length_fields(data: memoryview) -> Iterator[tuple[int, memoryview]]:
    """``(field number, bytes)`` of a protobuf message's length-delimited fields, in order; the
    others are skipped. Bounded by ``data``: ``ValueError`` when it is not protobuf."""
    at = 0
    while at < len(data):
        key, at = _varint(data, at)
        number, wire = key >> 3, key & 7
        if wire == 0:
            _, at = _varint(data, at)
        elif wire in (1, 5):
            at += 8 if wire == 1 else 4
        elif wire == 2:
            length, at = _varint(data, at)
            if at + length > len(data):
                raise ValueError('truncated protobuf field')
            yield number, data[at:at + length]
            at += length
        else:
            raise ValueError(f'unexpected protobuf wire type {wire}')
    if at != len(data):
        raise ValueError('truncated protobuf field')


def read_onnx_metadata(model_bytes: bytes) -> tuple[dict[str, str], str]:
    """``(metadata_props as a dict, SHA-256 of the graph field)`` of a serialised
    ``onnx.ModelProto`` (fields 14 and 7), read without the ``onnx`` package; the hash is that
    of ``proto.graph.SerializeToString()``. ``ValueError`` when the bytes are not an ONNX
    model, and for a file that holds the graph field twice (a protobuf parser merges the two,
    so a hash of one would not be of the graph that runs) or a metadata key twice."""
    metadata: dict[str, str] = {}
    graph: memoryview | None = None
    for number, value in _length_fields(memoryview(model_bytes)):
        if number == 7:
            if graph is not None:
                raise ValueError('the graph field appears twice')
            graph = value
        elif number == 14:
            entry = {field: bytes(text).decode('utf-8', 'replace')
                     for field, text in _length_fields(value)}
            key = entry.get(1, '')
            if key in metadata:
                raise ValueError(f'metadata key {key!r} appears twice')
            metadata[key] = entry.get(2, '')
    if graph is None:
        raise ValueError('not an ONNX model (no graph)')
    return metadata, hashlib.sha256(graph).hexdigest()


# -- OpenVINO -----------------------------------------------------------------------------------

def ir_spec(model: Any, path: str | os.PathLike[str] = '<model>') -> ModelSpec:
    """The spec in an ``openvino.Model``'s ``rt_info`` (an IR, or an ONNX file OpenVINO read).

    Looked up at :data:`IR_SPEC_KEYS`. Raises :class:`MissingSpecError` when there is none and
    ``ValueError`` (naming ``path``) when it is invalid or claims sizes above the spec's bounds.
    """
    for key in IR_SPEC_KEYS:
        if model.has_rt_info(list(key)):
            text = model.get_rt_info(list(key)).astype(str)
            try:
                return ModelSpec.from_json(text)
            except ValueError as error:
                raise ValueError(f'{path}: invalid model metadata in rt_info/'
                                 f'{"/".join(key)}: {error}') from error
    raise MissingSpecError(f'{path} has no {SPEC_METADATA_KEY!r} in its rt_info; write it with '
                           '`action_recognition.io.specs.set_ir_spec` before saving the IR, or '
                           'convert a file written by `action-recognition export`')


def set_ir_spec(model: Any, spec: ModelSpec) -> None:
    """Store ``spec`` in an ``openvino.Model``'s ``rt_info`` (saved with the IR's ``.xml``)."""
    model.set_rt_info(spec.to_json(), [SPEC_METADATA_KEY])

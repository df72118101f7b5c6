"""An exported ONNX file as the ONNX Runtime and OpenVINO backends read it: bytes, spec, proof.

:func:`read_onnx_model` reads the file once; its spec and the 4D-only proof recorded at export
come from the file's metadata (:mod:`action_recognition.io.specs`, no ``onnx`` package needed).
The proof counts only if it was made on this very graph (its hash); a file without one (exported
before proofs were recorded, or changed since) is checked here with the exporter's check, which
needs the ``onnx`` package. A graph that is not 4D-only is refused unless ``allow_5d``.
"""

from __future__ import annotations

from dataclasses import dataclass
import logging
import os
from pathlib import Path

from action_recognition.io.specs import metadata_proof
from action_recognition.io.specs import metadata_spec
from action_recognition.io.specs import RankProof
from action_recognition.io.specs import read_onnx_metadata
from action_recognition.runtime.protocol import ModelLoadError
from action_recognition.runtime.protocol import refuse_not_4d
from action_recognition.spec import ModelSpec

__all__ = ['OnnxModelFile', 'read_onnx_model']


@dataclass(frozen=True)
class OnnxModelFile:
    """An exported ONNX file, read and checked.

    Attributes:
        path: the file.
        data: its bytes.
        spec: the spec in its metadata.
        proof: its 4D-only proof (recorded at export, or made at load).
    """

    path: Path
    data: bytes
    spec: ModelSpec
    proof: RankProof


def read_onnx_model(path: str | os.PathLike[str], *, allow_5d: bool,
                    logger: logging.Logger) -> OnnxModelFile:
    """Read and check ``path`` (see the module docstring); :class:`ModelLoadError` naming the
    file and the reason."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as error:
        raise ModelLoadError(f'cannot read model {path}: {error}') from error
    try:
        metadata, digest = read_onnx_metadata(data)
    except ValueError as error:
        raise ModelLoadError(f'cannot read model {path}: not an ONNX file ({error})') from error
    try:
        spec = metadata_spec(metadata, path)
    except ValueError as error:
        raise ModelLoadError(str(error)) from error
    proof = metadata_proof(metadata, digest) or _check_here(data, path, allow_5d=allow_5d,
                                                            logger=logger)
    refuse_not_4d(list(proof.problems), path, allow_5d=allow_5d, logger=logger)
    return OnnxModelFile(path, data, spec, proof)


def _check_here(data: bytes, path: Path, *, allow_5d: bool, logger: logging.Logger) -> RankProof:
    """The exporter's 4D-only check, run on a file that carries no proof of its own graph."""
    try:
        # Only a file without a recorded proof needs onnx at run time (an optional package).
        import onnx

        from action_recognition.io.onnx_check import rank_proof
    except ImportError:
        reason = (f'{path} carries no 4D-only proof of its graph (written by `action-recognition '
                  'export`), and the onnx package that could check it here is not installed')
        if not allow_5d:
            raise ModelLoadError(f'{reason}: re-export it, install onnx, or set allow_5d to run '
                                 'it unchecked') from None
        return RankProof(('not checked: ' + reason,), 0, '')
    logger.info('%s carries no 4D-only proof of its graph: checking it now', path)
    try:
        proto = onnx.load_from_string(data)
    except Exception as error:
        raise ModelLoadError(f'cannot read model {path}: not an ONNX file '
                             f'({type(error).__name__}: {error})') from error
    return rank_proof(proto)

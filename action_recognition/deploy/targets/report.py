"""What a deployment target's export reports: placement, parity with PyTorch, file size.

Placement comes from the toolchain's own output (Vela's operator counts, OpenVINO's compiled
model, RKNN's build log), parity from running the exported model beside the PyTorch model on
clips of the synthetic benchmark prepared as the spec says (real clips: moving shapes, not
noise): max abs difference of the logits, their cosine similarity and top-1 agreement.
"""

from __future__ import annotations

from dataclasses import asdict
from dataclasses import dataclass
from dataclasses import field
import json
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ['Parity', 'Placement', 'TargetReport', 'parity']


@dataclass
class Parity:
    """The exported model against PyTorch on ``clips`` clips."""

    clips: int
    max_abs_diff: float
    cosine: float
    top1_agreement: float
    #: Top-1 accuracy against the clips' labels, of PyTorch and of the exported model (when the
    #: model's labels are the synthetic benchmark's classes).
    accuracy_reference: float | None = None
    accuracy: float | None = None

    def text(self) -> str:
        text = (f'max abs diff {self.max_abs_diff:.3g}, cosine {self.cosine:.6f}, top-1 '
                f'agreement {self.top1_agreement:.1%} on {self.clips} synthetic clips')
        if self.accuracy is not None and self.accuracy_reference is not None:
            text += (f'; top-1 accuracy {self.accuracy_reference:.1%} (PyTorch) -> '
                     f'{self.accuracy:.1%}')
        return text


@dataclass
class Placement:
    """Operators on the accelerator and on the CPU, as the toolchain reports them."""

    accelerator: str
    on_accelerator: int
    on_cpu: int
    cpu_operators: list[str] = field(default_factory=list)  # 'OP: reason'
    #: Operators the toolchain runs on the CPU only to lay the output out (a reshape of the
    #: logits), counted in neither figure and named in the text.
    output_layout: list[str] = field(default_factory=list)

    @property
    def fraction(self) -> float:
        total = self.on_accelerator + self.on_cpu
        return self.on_accelerator / total if total else 0.0

    def text(self) -> str:
        text = (f'{self.on_accelerator}/{self.on_accelerator + self.on_cpu} operators on the '
                f'{self.accelerator} ({self.fraction:.1%})')
        if self.cpu_operators:
            text += '; on the CPU: ' + '; '.join(self.cpu_operators[:8])
        if self.output_layout:
            text += '; the output laid out on the CPU by ' + ', '.join(self.output_layout)
        return text


@dataclass
class TargetReport:
    """What ``export --target`` wrote and measured."""

    target: str
    path: Path
    precision: str
    size_bytes: int = 0
    spec_path: Path | None = None
    placement: Placement | None = None
    parity: Parity | None = None
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        lines = [f'{self.target} ({self.precision}): wrote {self.path} '
                 f'({self.size_bytes / 1e6:.2f} MB) in {self.seconds:.1f} s']
        if self.spec_path is not None:
            lines.append(f'spec (labels, sampling, preprocessing): {self.spec_path}')
        if self.placement is not None:
            lines.append(f'placement: {self.placement.text()}')
        if self.parity is not None:
            lines.append(f'parity with PyTorch: {self.parity.text()}')
        lines += self.notes
        return '\n'.join(lines)

    def to_json(self) -> str:
        data: dict[str, Any] = asdict(self)
        data['path'] = str(self.path)
        data['spec_path'] = None if self.spec_path is None else str(self.spec_path)
        return json.dumps(data, indent=1)


def parity(reference: np.ndarray, got: np.ndarray,
           labels: np.ndarray | None = None) -> Parity:
    """Logits ``[N, classes]`` of the exported model against PyTorch's (and both against the
    clips' ``labels`` ``[N]``, when given)."""
    reference = np.asarray(reference, dtype=np.float64)
    got = np.asarray(got, dtype=np.float64)
    if reference.shape != got.shape:
        raise ValueError(f'logits of shape {got.shape}, expected {reference.shape}')
    a, b = reference.reshape(-1), got.reshape(-1)
    cosine = float(a @ b / max(np.linalg.norm(a) * np.linalg.norm(b), 1e-12))
    agreement = float(np.mean(reference.argmax(1) == got.argmax(1)))
    result = Parity(clips=len(reference), max_abs_diff=float(np.abs(a - b).max()),
                    cosine=cosine, top1_agreement=agreement)
    if labels is not None:
        labels = np.asarray(labels).reshape(-1)
        if labels.shape != (len(reference),):
            raise ValueError(f'{labels.shape[0]} labels for {len(reference)} clips')
        result.accuracy_reference = float(np.mean(reference.argmax(1) == labels))
        result.accuracy = float(np.mean(got.argmax(1) == labels))
    return result

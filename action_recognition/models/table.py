"""``action-recognition models``: the model zoo with parameters and GMAC next to the papers'.

Each registered model is built at the settings its paper reports (classes, frames, input size)
and measured: parameters for the whole model, multiply-accumulates (the papers' "GFLOPs") over
the paper's scope (the 3D-Net alone for the ECO-Lite tables). MACs are counted on the ``meta``
device, so no arithmetic runs and the table takes seconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from action_recognition.models.analysis import count_macs
from action_recognition.models.analysis import count_params
from action_recognition.models.ctnet import ABLATION_REFERENCES
from action_recognition.models.registry import create_model
from action_recognition.models.registry import list_models
from action_recognition.models.registry import model_info
from action_recognition.models.registry import PaperReference

__all__ = ['ModelRow', 'measure', 'measure_reference', 'model_rows', 'format_table']


@dataclass
class ModelRow:
    name: str
    family: str
    four_d_only: bool
    settings: str
    params_m: float
    gmac: float
    mac_scope: str
    paper: str = ''
    paper_params_m: float | None = None
    paper_gmac: float | None = None
    counted_params_m: float | None = None
    counted_gmac: float | None = None
    note: str = ''


def measure(model: torch.nn.Module, *, num_frames: int, input_size: tuple[int, int],
            scope: str = '', batch: int = 1) -> tuple[int, int]:
    """``(parameters, MACs)`` of ``model`` on ``batch`` clips, counted on the meta device."""
    params = count_params(model)
    meta_model = model.to('meta')
    x = torch.empty(batch * num_frames, 3, *input_size, device='meta')
    return params, count_macs(meta_model, x, scope=scope)


def measure_reference(name: str, reference: PaperReference,
                      options: dict[str, Any] | None = None) -> tuple[int, int]:
    """``(parameters, MACs)`` of model ``name`` at the settings of ``reference``."""
    model = create_model(name, num_classes=reference.num_classes,
                         num_frames=reference.num_frames, **{**reference.options,
                                                             **(options or {})})
    return measure(model, num_frames=reference.num_frames, input_size=reference.input_size,
                   scope=reference.mac_scope)


def _row(name: str, label: str, reference: PaperReference | None, four_d_only: bool,
         family: str, options: dict[str, Any] | None = None) -> ModelRow:
    if reference is None:
        model = create_model(name, num_classes=400, num_frames=16)
        size = getattr(model, 'default_input_size', (224, 224))
        params, macs = measure(model, num_frames=16, input_size=tuple(size))
        return ModelRow(label, family, four_d_only, f'16x{size[0]}x{size[1]}, 400 classes',
                        params / 1e6, macs / 1e9, '')
    params, macs = measure_reference(name, reference, options)
    height, width = reference.input_size
    return ModelRow(
        name=label, family=family, four_d_only=four_d_only,
        settings=f'{reference.num_frames}x{height}x{width}, {reference.num_classes} classes',
        params_m=params / 1e6, gmac=macs / 1e9, mac_scope=reference.mac_scope,
        paper=reference.paper, paper_params_m=reference.params_m, paper_gmac=reference.gmac,
        counted_params_m=reference.counted_params_m, counted_gmac=reference.counted_gmac,
        note=reference.note)


def model_rows(names: list[str] | None = None, *, ablations: bool = True) -> list[ModelRow]:
    """One row per registered model (and per CT-Net ablation), measured now."""
    rows = []
    for name in names or list_models():
        info = model_info(name)
        rows.append(_row(name, name, info.reference, info.four_d_only, info.family))
    if ablations and (names is None or 'ct_net_r50' in names):
        for label, (options, reference) in ABLATION_REFERENCES.items():
            rows.append(_row('ct_net_r50', label, reference, True, 'ctnet', options))
    return rows


def _fmt(value: float | None, digits: int = 2) -> str:
    return '-' if value is None else f'{value:.{digits}f}'


def format_table(rows: list[ModelRow]) -> str:
    """A Markdown table of ``rows``."""
    lines = [
        '| model | 4D-only | settings | params (M) | paper | counted | GMAC | scope | paper '
        '| counted |',
        '|---|---|---|---|---|---|---|---|---|---|',
    ]
    for row in rows:
        lines.append(
            f'| {row.name} | {"yes" if row.four_d_only else "no (5D)"} | {row.settings} '
            f'| {row.params_m:.2f} | {_fmt(row.paper_params_m, 1)} '
            f'| {_fmt(row.counted_params_m)} | {row.gmac:.2f} | {row.mac_scope or "all"} '
            f'| {_fmt(row.paper_gmac, 1)} | {_fmt(row.counted_gmac)} |')
    notes: dict[str, list[str]] = {}
    for row in rows:
        if row.note:
            notes.setdefault(row.note, []).append(row.name)
    if notes:
        lines += ['', *(f'- {", ".join(names)}: {note}' for note, names in notes.items())]
    return '\n'.join(lines)

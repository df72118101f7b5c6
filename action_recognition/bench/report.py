"""The benchmark's results for people: a markdown table and a bar chart of clips/s."""

from __future__ import annotations

import os

from action_recognition.bench.inference import BenchResult

__all__ = ['format_table', 'plot']


def _f(value: float | None, digits: int = 1) -> str:
    return '-' if value is None else f'{value:.{digits}f}'


def format_table(result: BenchResult) -> str:
    machine = result.machine
    lines = [
        f'machine: {machine["cpu"]}, {machine["cores"]} cores, {machine["memory_gb"]} GB, '
        f'ISA {" ".join(machine["isa"])}; torch {machine["torch"]}, onnxruntime '
        f'{machine["onnxruntime"]}'
        + (f', openvino {machine["openvino"]}' if machine.get('openvino') else ''),
        'load average (1/5/15 min) before: {:.2f} {:.2f} {:.2f}, after: {:.2f} {:.2f} {:.2f}'
        .format(*result.load_before, *result.load_after),
        'fp32 peak (2048^3 matmul): ' + ', '.join(
            f'{t} thread{"s" if t != "1" else ""}: {g:.1f} GMAC/s'
            for t, g in result.peak_gmacs.items()),
        '',
    ]
    header = ('| model | backend | T x S | thr | GMAC | p50 ms | p90 ms | clips/s | GMAC/s | '
              '% peak | stream fps (hop) | peak RSS MB | vs fp32: top-1 agree / max diff | '
              'synthetic acc fp32 -> this |')
    lines += [header, '|' + '---|' * (header.count('|') - 1)]
    for r in result.rows:
        if r.note:
            lines.append(f'| {r.model} | {r.backend} | {r.frames}x{r.size} | {r.threads} | '
                         f'{r.gmac_per_clip:.1f} | {r.note} |' + ' |' * 9)
            continue
        agree = '-' if r.top1_agreement_vs_fp32 is None else \
            f'{r.top1_agreement_vs_fp32:.0%} / {r.max_abs_diff_vs_fp32:.3g}'
        acc = '-' if r.accuracy is None or r.accuracy_fp32 is None else \
            f'{r.accuracy_fp32:.0%} -> {r.accuracy:.0%}'
        stream = '-' if r.stream_fps is None else f'{r.stream_fps:.1f} ({r.stream_hop})'
        lines.append(
            f'| {r.model} | {r.backend} | {r.frames}x{r.size} | {r.threads} | '
            f'{r.gmac_per_clip:.1f} | {_f(r.latency_p50_ms)} | {_f(r.latency_p90_ms)} | '
            f'{_f(r.clips_per_s, 2)} | {_f(r.gmacs_per_s)} | '
            f'{_f(None if r.peak_fraction is None else r.peak_fraction * 100, 0)} | {stream} | '
            f'{_f(r.peak_rss_mb, 0)} | {agree} | {acc} |')
    lines.append(f'\n{len(result.rows)} runs in {result.seconds:.0f} s')
    return '\n'.join(lines)


def plot(result: BenchResult, path: str | os.PathLike[str]) -> None:
    """A bar chart of clips/s per model and backend (one panel per thread count)."""
    import matplotlib  # optional heavy dependency: only for the chart

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    thread_counts = sorted({r.threads for r in result.rows}, reverse=True)
    most = max((sum(r.threads == t for r in result.rows) for t in thread_counts), default=1)
    fig, axes = plt.subplots(1, len(thread_counts),
                             figsize=(7 * len(thread_counts), 1.5 + 0.3 * most), squeeze=False)
    for ax, threads in zip(axes[0], thread_counts, strict=True):
        rows = [r for r in result.rows if r.threads == threads and r.clips_per_s]
        labels = [f'{r.model} / {r.backend} / {r.frames}x{r.size}' for r in rows]
        ax.barh(range(len(rows)), [r.clips_per_s or 0.0 for r in rows])
        ax.set_yticks(range(len(rows)), labels, fontsize=7)
        ax.invert_yaxis()
        ax.set_xlabel('clips/s (batch 1, higher is better)')
        ax.set_title(f'{threads} thread{"s" if threads != 1 else ""}')
    fig.suptitle(f'{result.machine["cpu"]} (load {result.load_before[0]:.1f})', fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)

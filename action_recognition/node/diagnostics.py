"""What the node reports on ``/diagnostics``: rates, latencies, drops, losses, and a level.

:class:`Diagnostics` compares each :class:`Snapshot` of the node core's counters with the
previous one: rates are counts since the previous report over its time (exact at any rate, no
window to saturate), and the level says what a user should look at: WARN when the input stops,
when every image since the last report was dropped (each reason whole, with its count), when
images go missing in transport (:class:`SequenceMonitor`), or when inference falls behind; ERROR
on inference errors or after a failed model reload.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from action_recognition.node.parameters import NodeSettings

__all__ = ['OK', 'WARN', 'ERROR', 'LOSS_WARN_FRACTION', 'DiagnosticsReport', 'Snapshot',
           'Diagnostics', 'SequenceMonitor']

OK, WARN, ERROR = 0, 1, 2
LOSS_WARN_FRACTION = 0.05  # WARN when more of the images since the last report went missing


class SequenceMonitor:
    """Estimates images lost before they reached the node from gaps in their header stamps.

    The expected period is the median of the latest intervals between stamps; an interval of
    more than 1.5 periods (and at most ``max_gap_ns``, above which the stream restarts rather
    than loses images) counts ``round(interval / period) - 1`` missing images. Stamps going
    backwards are a restart too. Transport losses (best effort over DDS dropping fragments of
    large raw images) are otherwise invisible to the node.
    """

    def __init__(self, history: int = 31) -> None:
        self._intervals: deque[int] = deque(maxlen=history)
        self._last: int | None = None
        self.period_ns = 0.0
        self.missing = 0
        self.gaps = 0

    def add(self, stamp_ns: int, *, max_gap_ns: int) -> None:
        last, self._last = self._last, stamp_ns
        if last is None or stamp_ns <= last:
            return
        interval = stamp_ns - last
        if interval > max_gap_ns:
            return
        if len(self._intervals) >= 5 and interval > 1.5 * self.period_ns > 0:
            self.missing += max(1, round(interval / self.period_ns) - 1)
            self.gaps += 1
        else:
            self._intervals.append(interval)
            self.period_ns = float(np.median(self._intervals))


@dataclass
class DiagnosticsReport:
    """What ``/diagnostics`` says: level (0 OK, 1 WARN, 2 ERROR), message, key/values."""

    level: int
    message: str
    values: dict[str, str]


@dataclass
class Snapshot:
    """The node core's state for one report.

    Attributes:
        now, started, last_frame_time: monotonic seconds (``None``: no image yet).
        counters: totals over the node's life (``frames_received``, ``frames_dropped``,
            ``frames_undecodable``, ``frames_missing``, ``clips_run``, ``clips_dropped``,
            ``errors``, ``recognitions``).
        drop_kinds: undecodable images counted by kind (``'oversized'``, ...).
        drop_reasons: the latest whole reason of each kind.
        latencies: recent latencies in seconds.
        input_gaps, period_ns: from the :class:`SequenceMonitor`.
        backend, device, model: what runs.
        settings: the parameters in force.
        reload_error: why the last reload failed (``None`` after a successful one).
        reloads: successful reloads so far.
    """

    now: float
    started: float
    last_frame_time: float | None
    counters: Mapping[str, int]
    drop_kinds: Mapping[str, int]
    drop_reasons: Mapping[str, str]
    latencies: list[float]
    input_gaps: int
    period_ns: float
    backend: str
    device: str
    model: str
    settings: NodeSettings
    reload_error: str | None
    reloads: int


def _percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values, dtype=np.float64), q)) if values else 0.0


class Diagnostics:
    """Reports from successive snapshots (see the module docstring)."""

    def __init__(self, started: float) -> None:
        self._previous: dict[str, int] = {}
        self._previous_kinds: dict[str, int] = {}
        self._previous_time = started

    def report(self, snap: Snapshot) -> DiagnosticsReport:
        counters = dict(snap.counters)
        delta = {key: value - self._previous.get(key, 0) for key, value in counters.items()}
        self._previous = counters
        kinds = dict(snap.drop_kinds)
        kinds_delta = {kind: count - self._previous_kinds.get(kind, 0)
                       for kind, count in kinds.items()
                       if count > self._previous_kinds.get(kind, 0)}
        self._previous_kinds = kinds
        elapsed = max(snap.now - self._previous_time, 1e-9)
        self._previous_time = snap.now
        input_hz = delta['frames_received'] / elapsed
        inference_hz = delta['recognitions'] / elapsed
        options = snap.settings.node
        values = {
            'input_rate_hz': f'{input_hz:.2f}',
            'inference_rate_hz': f'{inference_hz:.2f}',
            'latency_p50_ms': f'{_percentile(snap.latencies, 50) * 1e3:.1f}',
            'latency_p99_ms': f'{_percentile(snap.latencies, 99) * 1e3:.1f}',
            'frames_received': str(counters['frames_received']),
            'frames_dropped': str(counters['frames_dropped'] + counters['frames_undecodable']),
            'frames_undecodable': str(counters['frames_undecodable']),
            'frames_oversized': str(kinds.get('oversized', 0)),
            'frames_missing': str(counters['frames_missing']),
            'input_gaps': str(snap.input_gaps),
            'clips_run': str(counters['clips_run']),
            'clips_dropped': str(counters['clips_dropped']),
            'inference_errors': str(counters['errors']),
            'recognitions': str(counters['recognitions']),
            'backend': snap.backend,
            'device': snap.device,
            'model': snap.model,
            'enabled': str(options.enabled).lower(),
            'model_reloads': str(snap.reloads),
        }

        def result(level: int, message: str) -> DiagnosticsReport:
            return DiagnosticsReport(level, message, values)

        if snap.reload_error is not None:
            return result(ERROR, snap.reload_error)
        if delta['errors'] > 0:
            return result(ERROR, f'{delta["errors"]} inference errors since the last report '
                                 '(see the log); still running')
        if not options.enabled:
            return result(OK, 'disabled (enabled:=false)')
        if snap.last_frame_time is None:
            if snap.now - snap.started > options.stale_input_s:
                return result(WARN, 'no image received yet')
            return result(OK, 'waiting for images')
        silent = snap.now - snap.last_frame_time
        if silent > options.stale_input_s:
            return result(WARN, f'no image for {silent:.1f} s')
        dropped = delta['frames_undecodable'] + delta['frames_dropped']
        if 0 < dropped >= delta['frames_received']:
            summary = '; '.join(
                f'{count} {kind} ({snap.drop_reasons.get(kind, "see the log")})'
                for kind, count in sorted(kinds_delta.items(), key=lambda kv: -kv[1]))
            return result(WARN, f'every image since the last report was dropped: {summary}')
        missing, received = delta['frames_missing'], delta['frames_received']
        if 0 < missing >= LOSS_WARN_FRACTION * (missing + received):
            return result(
                WARN, f'about {missing} of {missing + received} images were lost before they '
                'reached the node since the last report (gaps in the header stamps at '
                f'{snap.period_ns / 1e6:.1f} ms per image); raw full-resolution images over '
                'best effort lose fragments: use qos_reliability: reliable or '
                'image_transport: compressed')
        rate = options.inference_rate_hz
        if rate > 0:
            if counters['recognitions'] > 1 and snap.now - snap.started > 2.0 / rate and \
                    inference_hz < 0.8 * rate and input_hz >= rate:
                return result(WARN, f'inference falls behind: {inference_hz:.1f} Hz of '
                                    f'{rate:.1f} Hz')
        elif 0 < delta['clips_dropped'] >= delta['clips_run']:
            return result(WARN, f'inference falls behind: {delta["clips_dropped"]} windows '
                                f'dropped, {delta["clips_run"]} run since the last report')
        return result(OK, 'running')

"""Recognizer: scheduling, top-k, smoothing, hysteresis and bad input, with scripted backends."""

import logging
import threading

import numpy as np
import pytest

from action_recognition.runtime.recognizer import Hysteresis
from action_recognition.runtime.recognizer import Recognizer
from action_recognition.runtime.recognizer import Smoother
from action_recognition.runtime.recognizer import softmax
from action_recognition.spec import ModelSpec

LABELS = ('walk', 'run', 'jump', 'sit')


def _spec(**kwargs):
    base = dict(model='scripted', num_classes=4, num_frames=4, labels=LABELS,
                input_size=(16, 16), resize_short=16)
    base.update(kwargs)
    return ModelSpec(**base)


class ScriptedBackend:
    """Returns logits from a script; records the clips it was given."""

    def __init__(self, spec, script=None):
        self.spec = spec
        self.device = 'cpu'
        self.streaming = False
        self.name = 'scripted'
        self.script = list(script or [])
        self.calls = []

    def infer(self, frames):
        frames = np.asarray(frames)
        self.calls.append(frames.copy())
        if self.script:
            item = self.script.pop(0)
            if isinstance(item, Exception):
                raise item
            return np.asarray(item, dtype=np.float32)[None]
        return np.zeros((1, self.spec.num_classes), np.float32)

    def close(self):
        pass


def _ns(seconds):
    return round(seconds * 1e9)


def _frame(value=0, shape=(24, 32)):
    return np.full((*shape, 3), value, dtype=np.uint8)


def _logits_for(probs):
    return np.log(np.asarray(probs, dtype=np.float64))


def test_one_recognition_for_one_clip_span_and_hop_schedule():
    spec = _spec(frame_stride=2)  # span 7
    backend = ScriptedBackend(spec)
    recognizer = Recognizer(backend, hop=spec.clip_span)
    results = [recognizer.push(_frame(i), _ns(i / 30), f'f{i}') for i in range(spec.clip_span)]
    produced = [r for r in results if r is not None]
    assert len(produced) == 1 and results[-1] is produced[0]
    assert produced[0].frame_index == 6 and produced[0].frame_id == 'f6'
    assert backend.calls[0].shape == (4, 3, 16, 16) and backend.calls[0].dtype == np.uint8
    assert backend.calls[0][:, 0, 0, 0].tolist() == [0, 2, 4, 6]  # dense, stride 2

    backend = ScriptedBackend(spec)
    recognizer = Recognizer(backend, hop=3)
    indices = [r.frame_index for i in range(20)
               if (r := recognizer.push(_frame(i), _ns(i / 30))) is not None]
    assert indices == [6, 9, 12, 15, 18]
    assert recognizer.clips_run == 5 and recognizer.frames_in == 20


def test_top_k_and_threshold_and_runtime_settings():
    spec = _spec(num_frames=1)
    probs = [0.1, 0.6, 0.25, 0.05]
    backend = ScriptedBackend(spec, [_logits_for(probs)] * 3)
    recognizer = Recognizer(backend, top_k=2, hysteresis=None)
    result = recognizer.push(_frame(), _ns(0.0))
    assert [label for label, _ in result.top] == ['run', 'jump']
    np.testing.assert_allclose([s for _, s in result.top], [0.6, 0.25], atol=1e-6)
    np.testing.assert_allclose(result.scores.sum(), 1.0, atol=1e-6)
    recognizer.top_k = 4
    recognizer.score_threshold = 0.2
    assert [label for label, _ in recognizer.push(_frame(), _ns(0.1)).top] == ['run', 'jump']
    recognizer.score_threshold = 0.7
    assert recognizer.push(_frame(), _ns(0.2)).top == []
    with pytest.raises(ValueError):
        recognizer.top_k = 0
    with pytest.raises(ValueError):
        recognizer.hop = 0


def test_smoothing_mean_and_ema():
    a = np.array([1.0, 0.0, 0.0, 0.0], np.float32)
    b = np.array([0.0, 1.0, 0.0, 0.0], np.float32)
    mean = Smoother('mean', window=2)
    mean(a)
    np.testing.assert_allclose(mean(b), [0.5, 0.5, 0, 0])
    np.testing.assert_allclose(mean(b), [0.0, 1.0, 0, 0])
    ema = Smoother('ema', alpha=0.25)
    ema(a)
    np.testing.assert_allclose(ema(b), [0.75, 0.25, 0, 0])
    with pytest.raises(ValueError):
        Smoother('median')


def test_hysteresis_reports_start_and_end_once_on_a_noisy_sequence():
    rng = np.random.default_rng(0)
    spec = _spec(num_frames=1)
    # 'jump' rises from ~0.1 to ~0.8 and back; noise of +-0.15 crosses 0.5 many times
    # around the transitions.
    level = np.concatenate([np.full(20, 0.1), np.linspace(0.1, 0.8, 15), np.full(20, 0.8),
                            np.linspace(0.8, 0.1, 15), np.full(20, 0.1)])
    noisy = np.clip(level + rng.uniform(-0.15, 0.15, level.size), 0.01, 0.97)
    script = [_logits_for([(1 - p) / 3, (1 - p) / 3, p, (1 - p) / 3]) for p in noisy]
    raw_crossings = int(np.sum(np.diff((noisy >= 0.5).astype(int)) != 0))
    assert raw_crossings > 2  # the raw scores flicker
    recognizer = Recognizer(ScriptedBackend(spec, script), smoothing='ema', ema_alpha=0.3,
                            hysteresis=(0.55, 0.35))
    events = []
    for i in range(len(script)):
        result = recognizer.push(_frame(), _ns(i * 0.1))
        events += result.events
    assert [(e.kind, e.label) for e in events] == [('started', 'jump'), ('ended', 'jump')]
    assert events[0].stamp_ns < events[1].stamp_ns
    assert recognizer.active_actions == []


def test_hysteresis_thresholds_are_checked():
    with pytest.raises(ValueError):
        Hysteresis(0.3, 0.5)


def test_bad_frames_are_dropped_and_counted(caplog):
    spec = _spec(num_frames=2)
    backend = ScriptedBackend(spec)
    recognizer = Recognizer(backend)
    bad = [None, np.zeros((0, 0, 3), np.uint8), np.zeros((24, 32), np.uint8),
           np.zeros((24, 32, 4), np.uint8), np.zeros((24, 32, 3), np.float32), 'frame']
    with caplog.at_level(logging.WARNING):
        for i, frame in enumerate(bad):
            assert recognizer.push(frame, _ns(i * 0.03)) is None
        assert recognizer.push(_frame(), float('inf')) is None
    assert recognizer.frames_dropped == len(bad) + 1 and recognizer.frames_in == len(bad) + 1
    assert 'dropping frame' in caplog.text
    assert recognizer.push(_frame(), _ns(1.0)) is None
    assert recognizer.push(_frame(), _ns(1.03)) is not None
    assert backend.calls[0].shape == (2, 3, 16, 16)


def test_non_finite_output_and_backend_errors_are_dropped():
    spec = _spec(num_frames=1)
    script = [[np.nan, 0, 0, 0], [np.inf, 0, 0, 0], RuntimeError('device lost'), [0, 0, 0],
              [0, 5, 0, 0]]
    recognizer = Recognizer(ScriptedBackend(spec, script))
    results = [recognizer.push(_frame(), _ns(i * 0.03)) for i in range(5)]
    assert results[:4] == [None] * 4
    assert results[4].top[0][0] == 'run'
    assert recognizer.clips_dropped == 3 and recognizer.errors == 1
    assert recognizer.clips_run == 1


def test_resolution_change_restarts_the_clip():
    spec = _spec(num_frames=3)
    backend = ScriptedBackend(spec)
    recognizer = Recognizer(backend)
    for i in range(3):
        recognizer.push(_frame(i, shape=(24, 32)), _ns(i * 0.03))
    assert recognizer.clips_run == 1
    assert recognizer.push(_frame(9, shape=(48, 64)), _ns(0.1)) is None
    assert recognizer.push(_frame(9, shape=(48, 64)), _ns(0.13)) is None
    assert recognizer.buffer.reset_reasons == {'resolution': 1}
    assert recognizer.push(_frame(9, shape=(48, 64)), _ns(0.16)) is not None
    assert backend.calls[-1][:, 0, 0, 0].tolist() == [9, 9, 9]


def test_submit_and_run_latest_drop_stale_clips():
    spec = _spec(num_frames=2)
    backend = ScriptedBackend(spec)
    recognizer = Recognizer(backend, hop=1)
    due = [recognizer.submit(_frame(i), _ns(i * 0.03)) for i in range(6)]
    assert due == [False, True, True, True, True, True]
    result = recognizer.run_latest()
    assert result.frame_index == 5
    assert backend.calls[0][:, 0, 0, 0].tolist() == [4, 5]
    assert recognizer.clips_dropped == 4 and recognizer.run_latest() is None


def test_threaded_producer_and_consumer():
    spec = _spec(num_frames=2)
    recognizer = Recognizer(ScriptedBackend(spec), hop=1)
    done = threading.Event()
    results = []

    def consume():
        while not done.is_set():
            result = recognizer.run_latest()
            if result is not None:
                results.append(result.frame_index)
        result = recognizer.run_latest()
        if result is not None:
            results.append(result.frame_index)

    worker = threading.Thread(target=consume)
    worker.start()
    for i in range(300):
        recognizer.submit(_frame(i % 256), _ns(i * 0.01))
    done.set()
    worker.join(timeout=10)
    assert results and results == sorted(results) and results[-1] == 299
    assert recognizer.clips_run + recognizer.clips_dropped == 299
    assert recognizer.errors == 0


def test_reset_forgets_state():
    spec = _spec(num_frames=1)
    recognizer = Recognizer(ScriptedBackend(spec, [_logits_for([0.05, 0.9, 0.03, 0.02])]))
    assert recognizer.push(_frame(), _ns(0.0)).events[0].kind == 'started'
    recognizer.reset()
    assert recognizer.active_actions == [] and len(recognizer.buffer) == 0


def test_softmax_is_stable():
    out = softmax(np.array([1000.0, 1000.0, -1000.0]))
    np.testing.assert_allclose(out, [0.5, 0.5, 0.0])


@pytest.mark.parametrize('reason', ['gap', 'backwards', 'resolution'])
def test_smoothing_and_hysteresis_start_afresh_after_a_buffer_restart(reason):
    # Before the fix, a move_left clip after a gap was published at half its own score, half of
    # it the previous stream's (EMA), and the previous stream's action stayed active.
    walk = _logits_for([0.97, 0.01, 0.01, 0.01])
    jump = _logits_for([0.01, 0.01, 0.97, 0.01])
    spec = _spec()
    backend = ScriptedBackend(spec, script=[walk, walk, jump])
    recognizer = Recognizer(backend, hop=4, smoothing='ema', ema_alpha=0.5,
                            hysteresis=(0.5, 0.3), max_gap_s=1.0)
    results = [recognizer.push(_frame(i), _ns(i / 30)) for i in range(8)]
    assert [r.top[0][0] for r in results if r is not None] == ['walk', 'walk']
    assert recognizer.active_actions == ['walk']
    start = {'gap': 10.0, 'backwards': -5.0, 'resolution': 8 / 30}[reason]
    shape = (48, 64) if reason == 'resolution' else (24, 32)
    after = [recognizer.push(_frame(i, shape), _ns(start + i / 30)) for i in range(4)]
    assert recognizer.buffer.resets == 1
    result = after[-1]
    assert result is not None
    assert result.top[0] == ('jump', pytest.approx(0.97, abs=1e-5))
    assert np.allclose(result.scores, result.raw_scores)
    kinds = [(event.kind, event.label) for event in result.events]
    assert kinds == [('ended', 'walk'), ('started', 'jump')]
    assert recognizer.active_actions == ['jump']


def test_stamps_stay_exact_nanoseconds_and_results_carry_the_source_index():
    # Float seconds cannot hold these stamps exactly (1 ms apart, odd nanoseconds); the stamp
    # travels as integer nanoseconds from the source to the result.
    spec = _spec()
    recognizer = Recognizer(ScriptedBackend(spec), hop=1)
    stamps_ns = [1_700_000_000_000_000_001 + i * 1_000_001 for i in range(6)]
    assert round(stamps_ns[5] * 1e-9 * 1e9) != stamps_ns[5]
    results = [recognizer.push(_frame(i), stamp, 'cam', index=100 + 2 * i)
               for i, stamp in enumerate(stamps_ns)]
    last = results[-1]
    assert last.stamp_ns == stamps_ns[5] and isinstance(last.stamp_ns, int)
    assert last.frame_index == 110  # the index the source gave, not the stream position
    assert last.to_json()['stamp_ns'] == stamps_ns[5]
    # Float stamps are refused (dropped and counted), never rounded silently.
    assert recognizer.push(_frame(), 1.5) is None and recognizer.frames_dropped == 1

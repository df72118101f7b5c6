"""Recognizer: scheduling, top-k, smoothing, hysteresis and bad input, with scripted backends."""

from dataclasses import replace
import logging
from pathlib import Path
import threading

import numpy as np
import pytest

from action_recognition.runtime.recognizer import Recognizer
from action_recognition.runtime.scoring import Smoother
from action_recognition.runtime.scoring import softmax
from action_recognition.runtime.settings import StreamSettings
from action_recognition.settings import SettingsError
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
        self.max_batch = None
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


def _recognizer(backend, **settings):
    """A recogniser with every label reported, no smoothing and a window every frame unless
    ``settings`` say otherwise."""
    base = {'hop': 1, 'score_threshold': 0.0, 'smoothing': 'none'}
    return Recognizer(backend, StreamSettings(**{**base, **settings}))


def _ns(seconds):
    return round(seconds * 1e9)


def _frame(value=0, shape=(24, 32)):
    return np.full((*shape, 3), value, dtype=np.uint8)


def _logits_for(probs):
    return np.log(np.asarray(probs, dtype=np.float64))


def test_one_recognition_for_one_clip_span_and_hop_schedule():
    spec = _spec(frame_stride=2)  # span 7
    backend = ScriptedBackend(spec)
    recognizer = _recognizer(backend, hop=spec.clip_span)
    results = [recognizer.push(_frame(i), _ns(i / 30), f'f{i}') for i in range(spec.clip_span)]
    produced = [r for r in results if r is not None]
    assert len(produced) == 1 and results[-1] is produced[0]
    assert produced[0].frame_index == 6 and produced[0].frame_id == 'f6'
    assert backend.calls[0].shape == (4, 3, 16, 16) and backend.calls[0].dtype == np.uint8
    assert backend.calls[0][:, 0, 0, 0].tolist() == [0, 2, 4, 6]  # dense, stride 2

    backend = ScriptedBackend(spec)
    recognizer = _recognizer(backend, hop=3)
    indices = [r.frame_index for i in range(20)
               if (r := recognizer.push(_frame(i), _ns(i / 30))) is not None]
    assert indices == [6, 9, 12, 15, 18]
    assert recognizer.counters().clips_run == 5 and recognizer.counters().frames_in == 20


def test_top_k_and_threshold_and_runtime_settings():
    spec = _spec(num_frames=1)
    probs = [0.1, 0.6, 0.25, 0.05]
    backend = ScriptedBackend(spec, [_logits_for(probs)] * 3)
    recognizer = _recognizer(backend, top_k=2, hysteresis=None)
    result = recognizer.push(_frame(), _ns(0.0))
    assert [label for label, _ in result.top] == ['run', 'jump']
    np.testing.assert_allclose([s for _, s in result.top], [0.6, 0.25], atol=1e-6)
    np.testing.assert_allclose(result.scores.sum(), 1.0, atol=1e-6)
    recognizer.apply(replace(recognizer.settings, top_k=4, score_threshold=0.2))
    assert [label for label, _ in recognizer.push(_frame(), _ns(0.1)).top] == ['run', 'jump']
    recognizer.apply(replace(recognizer.settings, score_threshold=0.7))
    assert recognizer.push(_frame(), _ns(0.2)).top == []
    with pytest.raises(SettingsError, match='top_k must be >= 1'):
        replace(recognizer.settings, top_k=0)
    with pytest.raises(SettingsError, match='hop must be >= 1'):
        replace(recognizer.settings, hop=0)


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
    with pytest.raises(SettingsError, match='smoothing must be one of'):
        StreamSettings(smoothing='median')


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
    recognizer = _recognizer(ScriptedBackend(spec, script), smoothing='ema', ema_alpha=0.3,
                            hysteresis=(0.55, 0.35))
    events = []
    for i in range(len(script)):
        result = recognizer.push(_frame(), _ns(i * 0.1))
        events += result.events
    assert [(e.kind, e.label) for e in events] == [('started', 'jump'), ('ended', 'jump')]
    assert events[0].stamp_ns < events[1].stamp_ns
    assert recognizer.stream().active_actions == []


def test_hysteresis_thresholds_are_checked():
    with pytest.raises(SettingsError, match='hysteresis needs 0 <= off <= on <= 1'):
        StreamSettings(hysteresis=(0.3, 0.5))


def test_bad_frames_are_dropped_and_counted(caplog):
    spec = _spec(num_frames=2)
    backend = ScriptedBackend(spec)
    recognizer = _recognizer(backend)
    bad = [None, np.zeros((0, 0, 3), np.uint8), np.zeros((24, 32), np.uint8),
           np.zeros((24, 32, 4), np.uint8), np.zeros((24, 32, 3), np.float32), 'frame']
    with caplog.at_level(logging.WARNING):
        for i, frame in enumerate(bad):
            assert recognizer.push(frame, _ns(i * 0.03)) is None
        assert recognizer.push(_frame(), float('inf')) is None
    counters = recognizer.counters()
    assert counters.frames_dropped == len(bad) + 1 and counters.frames_in == len(bad) + 1
    assert 'dropping frame' in caplog.text
    assert recognizer.push(_frame(), _ns(1.0)) is None
    assert recognizer.push(_frame(), _ns(1.03)) is not None
    assert backend.calls[0].shape == (2, 3, 16, 16)


def test_non_finite_output_and_backend_errors_are_dropped():
    spec = _spec(num_frames=1)
    script = [[np.nan, 0, 0, 0], [np.inf, 0, 0, 0], RuntimeError('device lost'), [0, 0, 0],
              [0, 5, 0, 0]]
    recognizer = _recognizer(ScriptedBackend(spec, script))
    results = [recognizer.push(_frame(), _ns(i * 0.03)) for i in range(5)]
    assert results[:4] == [None] * 4
    assert results[4].top[0][0] == 'run'
    assert recognizer.counters().clips_dropped == 3 and recognizer.counters().errors == 1
    assert recognizer.counters().clips_run == 1


def test_resolution_change_restarts_the_clip():
    spec = _spec(num_frames=3)
    backend = ScriptedBackend(spec)
    recognizer = _recognizer(backend)
    for i in range(3):
        recognizer.push(_frame(i, shape=(24, 32)), _ns(i * 0.03))
    assert recognizer.counters().clips_run == 1
    assert recognizer.push(_frame(9, shape=(48, 64)), _ns(0.1)) is None
    assert recognizer.push(_frame(9, shape=(48, 64)), _ns(0.13)) is None
    assert recognizer.stream().buffer.reset_reasons == {'resolution': 1}
    assert recognizer.push(_frame(9, shape=(48, 64)), _ns(0.16)) is not None
    assert backend.calls[-1][:, 0, 0, 0].tolist() == [9, 9, 9]


def test_submit_and_run_latest_drop_stale_clips():
    spec = _spec(num_frames=2)
    backend = ScriptedBackend(spec)
    recognizer = _recognizer(backend, hop=1)
    due = [recognizer.submit_image(_frame(i), _ns(i * 0.03)) for i in range(6)]
    assert due == [False, True, True, True, True, True]
    result = recognizer.run_latest()
    assert result.frame_index == 5
    assert backend.calls[0][:, 0, 0, 0].tolist() == [4, 5]
    assert recognizer.counters().clips_dropped == 4 and recognizer.run_latest() is None


def test_threaded_producer_and_consumer():
    spec = _spec(num_frames=2)
    recognizer = _recognizer(ScriptedBackend(spec), hop=1)
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
        recognizer.submit_image(_frame(i % 256), _ns(i * 0.01))
    done.set()
    worker.join(timeout=10)
    assert results and results == sorted(results) and results[-1] == 299
    assert recognizer.counters().clips_run + recognizer.counters().clips_dropped == 299
    assert recognizer.counters().errors == 0


def test_reset_forgets_state():
    spec = _spec(num_frames=1)
    recognizer = _recognizer(ScriptedBackend(spec, [_logits_for([0.05, 0.9, 0.03, 0.02])]))
    assert recognizer.push(_frame(), _ns(0.0)).events[0].kind == 'started'
    recognizer.reset()
    assert recognizer.stream().active_actions == [] and len(recognizer.stream().buffer) == 0


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
    recognizer = _recognizer(backend, hop=4, smoothing='ema', ema_alpha=0.5,
                            hysteresis=(0.5, 0.3), max_gap_s=1.0)
    results = [recognizer.push(_frame(i), _ns(i / 30)) for i in range(8)]
    assert [r.top[0][0] for r in results if r is not None] == ['walk', 'walk']
    assert recognizer.stream().active_actions == ['walk']
    start = {'gap': 10.0, 'backwards': -5.0, 'resolution': 8 / 30}[reason]
    shape = (48, 64) if reason == 'resolution' else (24, 32)
    after = [recognizer.push(_frame(i, shape), _ns(start + i / 30)) for i in range(4)]
    assert recognizer.stream().buffer.resets == 1
    result = after[-1]
    assert result is not None
    assert result.top[0] == ('jump', pytest.approx(0.97, abs=1e-5))
    assert np.allclose(result.scores, result.raw_scores)
    kinds = [(event.kind, event.label) for event in result.events]
    assert kinds == [('ended', 'walk'), ('started', 'jump')]
    assert recognizer.stream().active_actions == ['jump']


def test_stamps_stay_exact_nanoseconds_and_results_carry_the_source_index():
    # Float seconds cannot hold these stamps exactly (1 ms apart, odd nanoseconds); the stamp
    # travels as integer nanoseconds from the source to the result.
    spec = _spec()
    recognizer = _recognizer(ScriptedBackend(spec), hop=1)
    stamps_ns = [1_700_000_000_000_000_001 + i * 1_000_001 for i in range(6)]
    assert round(stamps_ns[5] * 1e-9 * 1e9) != stamps_ns[5]
    results = [recognizer.push(_frame(i), stamp, 'cam', index=100 + 2 * i)
               for i, stamp in enumerate(stamps_ns)]
    last = results[-1]
    assert last.stamp_ns == stamps_ns[5] and isinstance(last.stamp_ns, int)
    assert last.frame_index == 110  # the index the source gave, not the stream position
    assert last.to_json()['stamp_ns'] == stamps_ns[5]
    # Float stamps are refused (dropped and counted), never rounded silently.
    assert recognizer.push(_frame(), 1.5) is None and recognizer.counters().frames_dropped == 1


# -- many streams over one backend --------------------------------------------------------------

DEFAULT_ONNX = Path(__file__).resolve().parents[1] / 'models' / 'action_recognition_default.onnx'


def test_due_windows_of_several_streams_go_to_the_backend_in_one_call():
    spec = _spec(num_frames=2)

    class Batched(ScriptedBackend):
        def infer(self, frames):
            self.calls.append(np.asarray(frames).copy())
            clips = len(frames) // spec.num_frames
            return np.stack([np.eye(4, dtype=np.float32)[int(frames[i * 2, 0, 0, 0]) % 4]
                             for i in range(clips)])

    backend = Batched(spec)
    recognizer = _recognizer(backend, hop=2)
    for i in range(2):
        assert recognizer.submit_image(_frame(1), _ns(i / 30), stream='a') == (i == 1)
        assert recognizer.submit_image(_frame(2), _ns(i / 30), stream='b') == (i == 1)
    results = recognizer.run_due()
    assert len(backend.calls) == 1 and backend.calls[0].shape == (4, 3, 16, 16)
    assert [(r.stream, r.top[0][0]) for r in results] == [('a', 'run'), ('b', 'jump')]
    assert recognizer.run_due() == []
    assert sorted(recognizer.keys()) == ['', 'a', 'b']
    # A backend built for at most one clip per call gets one call per window.
    backend.max_batch = 1
    for i in range(2, 4):
        recognizer.submit_image(_frame(1), _ns(i / 30), stream='a')
        recognizer.submit_image(_frame(2), _ns(i / 30), stream='b')
    assert len(recognizer.run_due()) == 2
    assert [call.shape[0] for call in backend.calls[1:]] == [2, 2]
    recognizer.remove_stream('a')
    assert recognizer.counters().clips_run == 4 and recognizer.keys() == ['', 'b']


def _two_camera_feed():
    """Frames of two cameras: different actions, B starting 3 frames after A, and a 2 s gap in
    B's stamps (a restart of its ring) at tick 30; ``(tick, stream, frame, stamp_ns)``."""
    from action_recognition.data.synth_clips import clip_rng
    from action_recognition.data.synth_clips import generate_clip

    a = generate_clip('move_left', rng=clip_rng(5, 0), frames=48, size=80)
    b = np.concatenate([generate_clip('grow', rng=clip_rng(5, 1), frames=27, size=64),
                        generate_clip('rotate_cw', rng=clip_rng(5, 2), frames=21, size=64)])
    feed = []
    for tick in range(48):
        feed.append((tick, 'a', a[tick], 10**18 + tick * 33_333_333))
        if tick >= 3:
            gap = 2 * 10**9 if tick >= 30 else 0
            feed.append((tick, 'b', b[tick - 3], 5 * 10**17 + tick * 40_000_000 + gap))
    return feed


def _run_feed(feed, recognizers, *, run_every=2):
    """Feed frames to ``recognizers`` (stream key -> recogniser), running the due windows every
    ``run_every`` ticks; the results by stream."""
    results = {'a': [], 'b': []}
    for tick in range(48):
        for when, key, frame, stamp in feed:
            if when == tick:
                recognizers[key].submit_image(frame, stamp, 'cam_' + key, stream=key)
        if tick % run_every == run_every - 1:
            for recognizer in {id(r): r for r in recognizers.values()}.values():
                for result in recognizer.run_due():
                    results[result.stream].append(result)
    return results


def test_two_streams_batched_on_onnx_runtime_equal_two_separate_runs():
    """The real ONNX Runtime backend and the shipped model: two streams with different frames,
    different phases and a ring restart in one of them give, batched, the results of two
    separate runs."""
    from action_recognition.runtime.backends import load_backend

    settings = StreamSettings(hop=4, smoothing='ema', score_threshold=0.0)
    shared = load_backend(DEFAULT_ONNX, threads=1)
    sizes = []
    infer = shared.infer

    def recorded(frames):
        sizes.append(len(frames) // shared.spec.num_frames)
        return infer(frames)

    shared.infer = recorded
    together = Recognizer(shared, settings)
    batched = _run_feed(_two_camera_feed(), {'a': together, 'b': together})
    alone = _run_feed(_two_camera_feed(), {
        key: Recognizer(load_backend(DEFAULT_ONNX, threads=1), settings) for key in 'ab'})
    assert max(sizes) == 2, sizes  # windows of both streams went in one call
    assert together.stream('b').buffer.reset_reasons == {'gap': 1}
    for key in 'ab':
        assert len(batched[key]) == len(alone[key]) >= 4
        for got, expected in zip(batched[key], alone[key]):
            assert (got.stream, got.frame_index, got.stamp_ns, got.frame_id) == \
                (expected.stream, expected.frame_index, expected.stamp_ns, expected.frame_id)
            np.testing.assert_allclose(got.raw_scores, expected.raw_scores, atol=1e-5, rtol=0)
            np.testing.assert_allclose(got.scores, expected.scores, atol=1e-5, rtol=0)
            assert [str(e) for e in got.events] == [str(e) for e in expected.events]
    # The restart ended B's actions and started its smoothing afresh (only B's).
    restart = next(r for r in batched['b'] if r.stamp_ns > 5 * 10**17 + 30 * 40_000_000)
    assert np.allclose(restart.scores, restart.raw_scores)
    assert not np.allclose(batched['a'][-1].scores, batched['b'][-1].scores, atol=1e-3)


def test_latest_schedule_runs_each_new_frame_once_also_with_segments():
    # TSN segments sample the last frame of each segment: the newest sampled frame is not the
    # newest frame. Before the fix a stream asked for its latest window ran the same window
    # again and again while no frame came.
    spec = _spec(num_frames=4, sampling='segments')
    recognizer = _recognizer(ScriptedBackend(spec), schedule='latest', window=10)
    stream = recognizer.stream()
    for i in range(10):
        assert recognizer.submit_image(_frame(i), _ns(i / 30)) is False  # never due by itself
    assert stream.take() is not None
    assert stream.take() is None and recognizer.run_due() == []  # no new frame: nothing
    recognizer.submit_image(_frame(10), _ns(10 / 30))
    assert len(recognizer.run_due()) == 1 and recognizer.run_due() == []
    assert recognizer.counters().clips_dropped == 0


def test_a_frame_that_cannot_be_prepared_is_refused_not_raised(caplog):
    spec = _spec(num_frames=2)
    recognizer = _recognizer(ScriptedBackend(spec))
    with caplog.at_level(logging.WARNING):
        # 2 x 300000: resized to a short side of 16 it would be 16 x 2.4 million pixels.
        assert recognizer.submit_image(np.zeros((2, 300_000, 3), np.uint8), _ns(0)) is False
    assert 'more than 16 times as wide as high' in caplog.text
    assert recognizer.counters().frames_dropped == 1

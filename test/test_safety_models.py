"""Trust in model files: sizes a spec claims are bounded before anything is allocated, a model
that is not 4D-only is refused at load unless allowed, and a failed run-time reload leaves the
parameters describing the model that runs (issue 11, items 5, 6 and 10)."""

import json
import logging
from pathlib import Path
import subprocess
import sys
import textwrap
import time

from fixtures.ros_data import image_msg
from fixtures.ros_data import moving_frames
from fixtures.ros_data import tiny_checkpoint
import onnx
import pytest
import torch

from action_recognition import cli
from action_recognition.deploy.export import export_onnx
from action_recognition.io.checkpoint import save_checkpoint
from action_recognition.io.messages import action_typestore
from action_recognition.models import create_model
from action_recognition.node.core import NodeCore
from action_recognition.node.diagnostics import ERROR
from action_recognition.node.parameters import parse_parameters
from action_recognition.runtime.backends import load_backend
from action_recognition.runtime.backends import verify_backend
from action_recognition.runtime.protocol import ModelLoadError
from action_recognition.spec import MAX_CLIP_PIXELS
from action_recognition.spec import ModelSpec
from action_recognition.spec import SPEC_METADATA_KEY

REPO = Path(__file__).resolve().parents[1]
DEFAULT_ONNX = REPO / 'models' / 'action_recognition_default.onnx'


@pytest.fixture(scope='module')
def models(tmp_path_factory):
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp('safety_models')
    spec5 = ModelSpec(model='eco_lite_conv3d_5d', num_classes=3, num_frames=4,
                      labels=('a', 'b', 'c'), input_size=(32, 32), resize_short=32,
                      options={'net2d': 'small', 'width_mult': 0.25})
    torch.manual_seed(0)
    model5 = create_model(spec5.model, num_classes=3, num_frames=4, **spec5.options).eval()
    onnx5 = root / 'five_d.onnx'
    export_onnx(model5, spec5, onnx5, allow_5d=True)
    pt5 = save_checkpoint(root / 'five_d.pt', {'spec': spec5.to_dict(),
                                                'model_state': model5.state_dict()})
    return {'good': tiny_checkpoint(root / 'good.pt', num_frames=4),
            'other': tiny_checkpoint(root / 'other.pt', num_frames=4, labels=('x', 'y'), seed=1),
            'onnx5': onnx5, 'pt5': pt5, 'root': root}


def _with_spec(source: Path, target: Path, **changes) -> Path:
    """A copy of an exported ONNX file whose metadata spec says ``changes``."""
    proto = onnx.load(str(source))
    for entry in proto.metadata_props:
        if entry.key == SPEC_METADATA_KEY:
            data = json.loads(entry.value)
            data.update(changes)
            entry.value = json.dumps(data)
    onnx.save(proto, str(target))
    return target


# -- item 5: bounded sizes -------------------------------------------------------------------

def test_spec_sizes_are_bounded_when_read():
    base = ModelSpec(model='eco_lite_add_small', num_classes=3, num_frames=16).to_dict()
    for changes, words in (({'input_size': [20000, 20000]}, 'input_size sides'),
                           ({'num_frames': 100000}, 'num_frames'),
                           ({'num_classes': 10**9}, 'num_classes'),
                           ({'frame_stride': 10**6}, 'frame_stride'),
                           ({'num_frames': 1024, 'input_size': [2048, 2048],
                             'resize_short': 2048}, 'pixels, above the limit'),
                           ({'num_frames': '16'}, 'must be an integer'),
                           ({'input_size': 'big'}, 'must be a list'),
                           ({'labels': ['x' * 5000] * 3}, 'longer than')):
        with pytest.raises(ValueError, match=words):
            ModelSpec.from_dict({**base, **changes})
    assert MAX_CLIP_PIXELS > 16 * 243 * 243  # the papers' settings stay far inside


def test_oversized_onnx_spec_is_a_load_error_without_allocating(tmp_path):
    bomb = _with_spec(DEFAULT_ONNX, tmp_path / 'bomb.onnx', input_size=[20000, 20000],
                      resize_short=20000)
    code = textwrap.dedent(f"""
        import resource, sys
        from action_recognition.runtime.backends import load_backend
        from action_recognition.runtime.protocol import ModelLoadError
        try:
            load_backend({str(bomb)!r})
        except ModelLoadError as error:
            print('refused:', error)
        # VmHWM: this process's own peak. ru_maxrss would report pytest's, since the child is
        # spawned with vfork and Linux carries the old memory's high-water mark across exec.
        hwm = [line for line in open('/proc/self/status') if line.startswith('VmHWM')]
        print('maxrss_kb', hwm[0].split()[1] if hwm else
              resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
    """)
    start = time.perf_counter()
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                         timeout=120, check=True).stdout
    assert time.perf_counter() - start < 60
    assert 'refused:' in out and 'input_size sides must be in' in out, out
    peak_mb = int(out.split('maxrss_kb')[1]) / 1024
    # The old code allocated 17.9 GiB for the dummy clip; importing torch alone is ~400 MB.
    assert peak_mb < 1500, peak_mb


def test_oversized_checkpoint_spec_is_refused(tmp_path, models):
    state = torch.load(models['good'], weights_only=True)
    state['spec'] = {**state['spec'], 'input_size': [20000, 20000], 'resize_short': 20000}
    bomb = save_checkpoint(tmp_path / 'bomb.pt', state)
    with pytest.raises(ModelLoadError, match='input_size sides'):
        load_backend(bomb)


def test_checkpoint_options_claiming_a_huge_model_are_refused_before_building_it(tmp_path,
                                                                                 models):
    # The options decide the model's size; the file's tensors do not fit a 64x wider model, and
    # that is found on the meta device, before gigabytes of parameters would be allocated.
    state = torch.load(models['good'], weights_only=True)
    state['spec'] = {**state['spec'], 'options': {'width_mult': 64.0}}
    bomb = save_checkpoint(tmp_path / 'wide.pt', state)
    with pytest.raises(ModelLoadError, match='the weights do not fit'):
        load_backend(bomb)


class _OomBackend:
    spec = ModelSpec(model='eco_lite_add_small', num_classes=3, num_frames=4,
                     input_size=(32, 32), resize_short=32)
    device = 'cpu'
    streaming = False
    max_batch = None
    name = 'oom'

    def infer(self, frames):
        raise MemoryError('Unable to allocate 17.9 GiB')

    def close(self):
        pass


def test_any_failure_of_the_load_time_check_is_a_load_error():
    with pytest.raises(ModelLoadError, match='MemoryError'):
        verify_backend(_OomBackend(), 'oom.onnx')


def test_node_start_up_and_reload_turn_memory_errors_into_load_errors(models):
    def oom_load(path, *args, **kwargs):
        raise MemoryError('Unable to allocate 17.9 GiB')

    params = parse_parameters({'model_path': str(models['good'])})
    with pytest.raises(ModelLoadError, match='MemoryError'):
        NodeCore(params, load=oom_load)
    real_load = load_backend

    def flaky_load(path, *args, **kwargs):
        if Path(path) == models['other']:
            raise MemoryError('Unable to allocate 17.9 GiB')
        return real_load(path, *args, **kwargs)

    core = NodeCore(params, load=flaky_load)
    assert core.set_parameters({'model_path': str(models['other'])})[0]
    core.step()
    report = core.diagnostics()
    assert report.level == ERROR and 'MemoryError' in report.message
    assert core.slot.model.path == models['good']


# -- item 6: 5D models are refused at load ---------------------------------------------------

def test_5d_onnx_and_checkpoint_are_refused_unless_allowed(models, caplog):
    for path in (models['onnx5'], models['pt5']):
        with pytest.raises(ModelLoadError, match='not 4D-only'):
            load_backend(path)
        with caplog.at_level(logging.WARNING):
            backend = load_backend(path, allow_5d=True)
        assert 'allowed by allow_5d' in caplog.text
        backend.close()
        caplog.clear()
    # The proof names what it found.
    with pytest.raises(ModelLoadError, match='rank 5'):
        load_backend(models['onnx5'])


def test_5d_model_in_run_and_node(tmp_path, models):
    video = tmp_path / 'v.avi'
    from fixtures.ros_data import write_video

    write_video(video, moving_frames(8, height=32, width=32))
    out = tmp_path / 'out.jsonl'
    assert cli.main(['run', '--no-progress', '--source', str(video), '--model',
                     str(models['onnx5']), '--output', str(out)]) == 1
    assert not out.exists()
    assert cli.main(['run', '--no-progress', '--source', str(video), '--model',
                     str(models['onnx5']), '--output', str(out), '--allow-5d']) == 0
    assert out.read_text().strip()
    with pytest.raises(ModelLoadError, match='not 4D-only'):
        NodeCore(parse_parameters({'model_path': str(models['onnx5'])}))
    core = NodeCore(parse_parameters({'model_path': str(models['onnx5']), 'allow_5d': True}))
    assert core.slot.model.path == models['onnx5']


# -- item 10: a failed reload leaves the parameters describing what runs ---------------------

def test_failed_reload_reverts_parameters_and_later_changes_apply(tmp_path, models):
    corrupt = tmp_path / 'corrupt.onnx'
    corrupt.write_bytes(b'not an onnx file' * 10)
    core = NodeCore(parse_parameters({'model_path': str(models['good']), 'smoothing': 'none',
                                      'hop': 1, 'score_threshold': 0.0}))
    reverted = []
    core.on_revert = reverted.append
    assert core.set_parameters({'model_path': str(corrupt)}) == (True, 'model reload scheduled')
    core.step()
    # The old model keeps running and the parameters say so again.
    assert core.slot.model.path == models['good']
    assert core.settings.model.model_path == str(models['good'])
    assert reverted == [{'model_path': str(models['good'])}]
    report = core.diagnostics()
    assert report.level == ERROR and 'reverted' in report.message
    # A wrong backend for the file fails too, and is reverted.
    assert core.set_parameters({'backend': 'onnxruntime'})[0]
    core.step()
    assert core.settings.backend.backend == 'auto' and reverted[-1] == {'backend': 'auto'}
    # A later reload-type change takes effect (it no longer retries the bad file).
    assert core.set_parameters({'model_path': str(models['other'])})[0]
    core.step()
    assert core.slot.model.path == models['other'] and core.labels == ('x', 'y')
    assert core.settings.model.model_path == str(models['other'])
    assert core.diagnostics().level != ERROR
    # And frames flow through the new model.
    typestore = action_typestore()
    for i, frame in enumerate(moving_frames(6, height=32, width=32)):
        core.on_image_msg(image_msg(typestore, frame, stamp_ns=10**18 + i * 10**8,
                                    frame_id='cam'))
    results = core.step()
    assert results and {label for label, _ in results[0].top} <= {'x', 'y'}


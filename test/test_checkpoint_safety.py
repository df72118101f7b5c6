"""No code runs from a model file: every path that reads a ``.pt`` refuses pickled objects.

A malicious file is a checkpoint (``torch.save`` of a dictionary with a real ``spec`` and
``model_state``) or a plain whole-file pickle, holding an object whose unpickling runs
``os.system('touch MARKER')``. Every loading path (the commands ``run``, ``eval``, ``export``,
``bench``, ``demo``, ``convert``, ``train --resume`` and ``train`` with ``model.pretrained``, the
node core at start-up and at a run-time reload, the default model found through an
``AMENT_PREFIX_PATH`` overlay, and the library functions under them) must refuse it with an error
naming the file and the reason, and the marker must never appear. With
``torch.load(weights_only=False)`` (the code before this test) the marker appears on every path
but the pretrained one, which gave a raw ``UnpicklingError`` traceback instead of an error.
"""

import logging
import os
import pickle
import shlex

from fixtures.ros_data import tiny_checkpoint
import pytest
import torch

from action_recognition import cli
from action_recognition.io import checkpoint as ckpt
from action_recognition.io.model_files import default_model_path
from action_recognition.models import create_model
from action_recognition.node.core import NodeCore
from action_recognition.node.diagnostics import ERROR
from action_recognition.node.parameters import parse_parameters
from action_recognition.runtime import backends
from action_recognition.runtime.protocol import ModelLoadError
from action_recognition.runtime.torch_backend import load_checkpoint_model
from action_recognition.serialization import CheckpointError
from action_recognition.serialization import safe_load
from action_recognition.serialization import UnsafeCheckpointError
from action_recognition.spec import ModelSpec
from action_recognition.training.model import load_pretrained

SPEC = ModelSpec(model='eco_lite_add_small', num_classes=3, num_frames=4,
                 labels=('a', 'b', 'c'), input_size=(32, 32), resize_short=32)
REFUSED = 'refused by the safe loader'

# The tiny synthetic run of test_train.py (2 steps per epoch).
TINY = ['model.name=eco_lite_add_small', 'model.options={width_mult: 0.125, dropout: 0.5}',
        'model.num_frames=4', 'model.input_size=[32,32]', 'model.resize_short=32',
        'dataset.format=synthetic', 'dataset.train_per_class=2', 'dataset.val_per_class=1',
        'batch_size=8', 'epochs=2', 'optim.optimizer=sgd', 'optim.lr=0.05',
        'optim.warmup_epochs=0.5', 'progress=false', 'threads=1', 'tensorboard=false']


class RunsCode:
    """Unpickling this runs a shell command that creates ``marker``: an attacker's payload."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f'touch {shlex.quote(str(self.marker))}',))


class Evil:
    """A malicious file and the marker its payload would create."""

    def __init__(self, path, marker, kind):
        self.path = path
        self.marker = marker
        self.kind = kind

    def assert_not_run(self):
        assert not self.marker.exists(), f'code from {self.path} ran'


def write_evil(path, marker, kind):
    if kind == 'checkpoint':
        torch.manual_seed(0)
        model = create_model(SPEC.model, num_classes=3, num_frames=4)
        torch.save({'spec': SPEC.to_dict(), 'model_state': model.state_dict(),
                    'metrics': {'note': RunsCode(marker)}}, path)
    else:  # a whole-file pickle
        with open(path, 'wb') as stream:
            pickle.dump(RunsCode(marker), stream, protocol=2)
    return Evil(path, marker, kind)


@pytest.fixture(params=['checkpoint', 'pickle'])
def evil(request, tmp_path):
    torch.set_num_threads(1)
    found = write_evil(tmp_path / 'evil.pt', tmp_path / 'MARKER', request.param)
    yield found
    found.assert_not_run()


def _assert_clear(message, evil):
    assert REFUSED in message and str(evil.path) in message, message
    assert 'nothing in it was run' in message
    if evil.kind == 'checkpoint' or 'GLOBAL' in message:
        assert 'GLOBAL posix.system' in message or 'GLOBAL nt.system' in message, message


# -- the library functions every path goes through ----------------------------------------------


def test_loaders_refuse_pickled_objects(evil):
    for load in (ckpt.load_checkpoint, ckpt.load_model_from_checkpoint, safe_load):
        with pytest.raises(UnsafeCheckpointError) as caught:
            load(evil.path)
        _assert_clear(str(caught.value), evil)
        evil.assert_not_run()
    with pytest.raises(UnsafeCheckpointError):
        ckpt.write_model_file(evil.path, evil.path.parent / 'model.pt')
    assert not (evil.path.parent / 'model.pt').exists()
    with pytest.raises(ModelLoadError) as caught:
        load_checkpoint_model(evil.path)
    _assert_clear(str(caught.value), evil)
    for streaming in (False, True):
        with pytest.raises(ModelLoadError) as caught:
            backends.load_backend(evil.path, streaming=streaming)
        _assert_clear(str(caught.value), evil)


def test_refusal_is_not_mistaken_for_corruption(tmp_path):
    path = tmp_path / 'evil.pt'
    marker = tmp_path / 'MARKER'
    # The default pickle protocol: refused by opcode before any GLOBAL is read.
    with open(path, 'wb') as stream:
        pickle.dump(RunsCode(marker), stream)
    with pytest.raises(UnsafeCheckpointError, match=REFUSED):
        ckpt.load_checkpoint(path)
    assert not marker.exists()
    corrupt = tmp_path / 'corrupt.pt'
    corrupt.write_bytes(b'\x00garbage' * 100)
    with pytest.raises(CheckpointError, match='corrupt') as caught:
        ckpt.load_checkpoint(corrupt)
    assert not isinstance(caught.value, UnsafeCheckpointError)


# -- the commands ---------------------------------------------------------------------------------


def test_run_command(evil, tmp_path, caplog):
    with caplog.at_level(logging.ERROR):
        rc = cli.main(['run', '--model', str(evil.path), '--source', str(tmp_path / 'x.mp4'),
                       '--output', str(tmp_path / 'out.jsonl'), '--no-progress'])
    assert rc == 1
    _assert_clear(caplog.text, evil)
    assert not (tmp_path / 'out.jsonl').exists()


def test_eval_command(evil, capsys):
    assert cli.main(['eval', '--checkpoint', str(evil.path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith('error: ')
    _assert_clear(err, evil)


def test_export_command(evil, tmp_path, capsys):
    rc = cli.main(['export', '--model', 'eco_lite_add_small', '--checkpoint', str(evil.path),
                   '--output', str(tmp_path / 'model.onnx')])
    assert rc == 1
    _assert_clear(capsys.readouterr().out, evil)
    assert not (tmp_path / 'model.onnx').exists()


def test_bench_command(evil, monkeypatch, capsys):
    from action_recognition.bench import inference as bench

    monkeypatch.setattr(bench, 'measure_peak_gmacs', lambda threads: 1.0)
    rc = cli.main(['bench', '--models', 'eco_lite_add_small', '--backends', 'torch',
                   '--checkpoint', f'eco_lite_add_small={evil.path}', '--frames', '4',
                   '--size', '32', '--threads', '1', '--repeats', '1', '--warmup', '0',
                   '--no-progress'])
    assert rc == 1
    _assert_clear(capsys.readouterr().out, evil)


def test_demo_command(evil, tmp_path, capsys):
    rc = cli.main(['demo', '--model', str(evil.path), '--output', str(tmp_path / 'demo')])
    assert rc == 1
    _assert_clear(capsys.readouterr().err, evil)


def test_convert_command(evil, tmp_path, capsys):
    rc = cli.main(['convert', '--module-file', str(evil.path), '--frames', '4', '--size', '8',
                   '--output', str(tmp_path / 'out.pt')])
    assert rc == 2
    err = capsys.readouterr().err
    assert '--trust-module-file' in err and 'runs code' in err
    assert not (tmp_path / 'out.pt').exists()


def test_train_resume_refuses_a_malicious_last_pt(evil, tmp_path, capsys):
    run_dir = tmp_path / 'run'
    run_dir.mkdir()
    os.replace(evil.path, run_dir / 'last.pt')
    evil.path = run_dir / 'last.pt'
    rc = cli.main(['train', *TINY, f'output_dir={run_dir}', '--resume'])
    assert rc == 2
    err = capsys.readouterr().err
    assert err.startswith('error: ')
    _assert_clear(err, evil)
    assert not (run_dir / 'model.pt').exists()


def test_train_pretrained_refuses_a_malicious_file(evil, capsys):
    rc = cli.main(['train', *TINY, f'output_dir={evil.path.parent / "run"}',
                   f'model.pretrained={evil.path}'])
    assert rc == 2
    err = capsys.readouterr().err
    assert err.startswith('error: pretrained weights')
    _assert_clear(err, evil)
    # The zoo's own ImageNet loaders read files the same way.
    from action_recognition.models.inception import load_inception_v3_imagenet
    from action_recognition.models.resnet import load_resnet_imagenet

    inception = create_model('eco_lite_add', num_classes=3, num_frames=4)
    with pytest.raises(UnsafeCheckpointError) as caught:
        load_inception_v3_imagenet(inception, evil.path)
    _assert_clear(str(caught.value), evil)
    resnet = create_model('tsn_r50', num_classes=3, num_frames=4)
    with pytest.raises(UnsafeCheckpointError) as caught:
        load_resnet_imagenet(resnet, evil.path)
    _assert_clear(str(caught.value), evil)
    with pytest.raises(UnsafeCheckpointError) as caught:
        load_pretrained(resnet, evil.path)
    _assert_clear(str(caught.value), evil)


# -- the node -------------------------------------------------------------------------------------


def test_node_refuses_a_malicious_model_at_start_up_and_at_reload(evil, tmp_path):
    with pytest.raises(ModelLoadError) as caught:
        NodeCore(parse_parameters({'model_path': str(evil.path)}))
    _assert_clear(str(caught.value), evil)
    evil.assert_not_run()

    good = tiny_checkpoint(tmp_path / 'good.pt', num_frames=4)
    core = NodeCore(parse_parameters({'model_path': str(good)}))
    ok, reason = core.set_parameters({'model_path': str(evil.path)})
    assert ok and 'reload' in reason
    core.step()  # the worker reloads: refused, the running model stays
    evil.assert_not_run()
    assert core.slot.model.path == good
    report = core.diagnostics()
    assert report.level == ERROR and 'model reload failed' in report.message
    _assert_clear(report.message, evil)


# -- the default model through an AMENT_PREFIX_PATH overlay --------------------------------------


def test_default_model_from_an_overlay_is_refused(evil, tmp_path, monkeypatch, caplog, capsys):
    prefix = tmp_path / 'overlay'
    models = prefix / 'share' / 'action_recognition' / 'models'
    models.mkdir(parents=True)
    planted = models / 'action_recognition_default.pt'
    os.replace(evil.path, planted)
    evil.path = planted
    monkeypatch.setenv('AMENT_PREFIX_PATH', str(prefix))
    assert default_model_path() == planted

    with caplog.at_level(logging.ERROR):
        rc = cli.main(['run', '--source', str(tmp_path / 'x.mp4'),
                       '--output', str(tmp_path / 'out.jsonl'), '--no-progress'])
    assert rc == 1
    _assert_clear(caplog.text, evil)
    assert cli.main(['demo', '--output', str(tmp_path / 'demo')]) == 1
    _assert_clear(capsys.readouterr().err, evil)
    with pytest.raises(ModelLoadError) as caught:
        NodeCore(parse_parameters({'model_path': ''}))
    _assert_clear(str(caught.value), evil)

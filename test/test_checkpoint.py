"""Checkpoints: atomic writes, clear errors, and models rebuilt from the stored spec."""

from pathlib import Path

import pytest
import torch

from action_recognition.io import checkpoint as ckpt
from action_recognition.models import create_model
from action_recognition.serialization import CheckpointError
from action_recognition.serialization import plain_data
from action_recognition.spec import ModelSpec

SPEC = ModelSpec(model='eco_lite_add_small', num_classes=4, num_frames=4,
                 labels=('a', 'b', 'c', 'd'), options={'width_mult': 0.125, 'dropout': 0.0},
                 input_size=(32, 32), resize_short=32)


def _model():
    torch.manual_seed(0)
    return create_model(SPEC.model, num_classes=SPEC.num_classes, num_frames=SPEC.num_frames,
                        **SPEC.options).eval()


def test_round_trip_rebuilds_the_same_model(tmp_path):
    model = _model()
    path = ckpt.save_checkpoint(tmp_path / 'run' / 'last.pt',
                                {'spec': SPEC.to_dict(), 'model_state': model.state_dict(),
                                 'epoch': 3})
    assert sorted(p.name for p in path.parent.iterdir()) == ['last.pt']  # no temporary left
    loaded, spec = ckpt.load_model_from_checkpoint(path)
    assert spec == SPEC
    assert not loaded.training
    x = torch.randn(2 * SPEC.num_frames, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x))
    assert ckpt.load_checkpoint(path)['epoch'] == 3


def test_distributed_prefix_is_removed(tmp_path):
    model = _model()
    state = {f'module.{k}': v for k, v in model.state_dict().items()}
    path = ckpt.save_checkpoint(tmp_path / 'ddp.pt',
                                {'spec': SPEC.to_dict(), 'model_state': state})
    loaded, _ = ckpt.load_model_from_checkpoint(path)
    for key, value in model.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[key], value)


def test_failed_write_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / 'last.pt'
    ckpt.save_checkpoint(path, {'spec': SPEC.to_dict(), 'model_state': {}, 'epoch': 1})

    def broken_save(obj, stream):
        stream.write(b'partial')
        raise OSError('disk full')

    monkeypatch.setattr(torch, 'save', broken_save)
    with pytest.raises(OSError, match='disk full'):
        ckpt.save_checkpoint(path, {'spec': SPEC.to_dict(), 'model_state': {}, 'epoch': 2})
    monkeypatch.undo()
    assert ckpt.load_checkpoint(path)['epoch'] == 1
    assert [p.name for p in tmp_path.iterdir()] == ['last.pt']


def test_save_needs_spec_and_weights(tmp_path):
    with pytest.raises(ValueError, match='spec'):
        ckpt.save_checkpoint(tmp_path / 'x.pt', {'model_state': {}})


def test_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match='does not exist'):
        ckpt.load_model_from_checkpoint(tmp_path / 'absent.pt')
    with pytest.raises(CheckpointError, match='not a file'):
        ckpt.load_checkpoint(tmp_path)


def test_corrupt_file(tmp_path):
    path = tmp_path / 'corrupt.pt'
    path.write_bytes(b'\x00garbage' * 100)
    with pytest.raises(CheckpointError, match='corrupt'):
        ckpt.load_model_from_checkpoint(path)
    # A checkpoint cut short (a copy interrupted half-way) is reported the same way.
    good = ckpt.save_checkpoint(tmp_path / 'good.pt',
                                {'spec': SPEC.to_dict(), 'model_state': _model().state_dict()})
    truncated = tmp_path / 'truncated.pt'
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(CheckpointError, match='corrupt'):
        ckpt.load_checkpoint(truncated)


def test_not_an_action_recognition_checkpoint(tmp_path):
    plain = tmp_path / 'plain.pt'
    torch.save(_model().state_dict(), plain)
    with pytest.raises(CheckpointError, match='missing'):
        ckpt.load_checkpoint(plain)
    tensor = tmp_path / 'tensor.pt'
    torch.save(torch.zeros(3), tensor)
    with pytest.raises(CheckpointError, match='expected a dictionary'):
        ckpt.load_checkpoint(tensor)


def test_unknown_model_and_wrong_weights(tmp_path):
    unknown = {**SPEC.to_dict(), 'model': 'no_such_model'}
    path = ckpt.save_checkpoint(tmp_path / 'u.pt', {'spec': unknown, 'model_state': {}})
    with pytest.raises(CheckpointError, match='no_such_model'):
        ckpt.load_model_from_checkpoint(path)
    wrong = {**SPEC.to_dict(), 'num_classes': 5, 'labels': ['a', 'b', 'c', 'd', 'e']}
    path = ckpt.save_checkpoint(tmp_path / 'w.pt',
                                {'spec': wrong, 'model_state': _model().state_dict()})
    with pytest.raises(CheckpointError, match='do not fit'):
        ckpt.load_model_from_checkpoint(path)
    bad_spec = {**SPEC.to_dict(), 'num_frames': 0}
    path = ckpt.save_checkpoint(tmp_path / 's.pt', {'spec': bad_spec, 'model_state': {}})
    with pytest.raises(CheckpointError, match='invalid model spec'):
        ckpt.load_model_from_checkpoint(path)


def _assert_plain(value, where='checkpoint'):
    """Only tensors and plain data, nothing NumPy (what weights_only=True reads back)."""
    if isinstance(value, dict):
        for key, item in value.items():
            _assert_plain(key, f'{where} key')
            _assert_plain(item, f'{where}[{key!r}]')
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            _assert_plain(item, f'{where}[{index}]')
    else:
        assert value is None or isinstance(value, bool | int | float | str | torch.Tensor), (
            where, type(value))


def test_a_real_training_checkpoint_loads_with_weights_only(tmp_path):
    from action_recognition.training.config import load_config
    from action_recognition.training.train import train

    config = load_config(None, [
        'model.name=eco_lite_add_small', 'model.options={width_mult: 0.125}',
        'model.num_frames=4', 'model.input_size=[32,32]', 'model.resize_short=32',
        'dataset.format=synthetic', 'dataset.train_per_class=2', 'dataset.val_per_class=1',
        'batch_size=8', 'epochs=1', 'optim.optimizer=adamw', 'progress=false', 'threads=1',
        'tensorboard=false', f'output_dir={tmp_path}'])
    train(config)
    for name in ('last.pt', 'best.pt', 'model.pt'):
        state = torch.load(tmp_path / name, map_location='cpu', weights_only=True)
        for key in ('spec', 'config', 'metrics'):
            _assert_plain(state[key], f'{name}[{key!r}]')
        assert state['metrics']['best_epoch'] == 1
        assert len(state['metrics']['last']['confusion_matrix']) == 11
    last = torch.load(tmp_path / 'last.pt', map_location='cpu', weights_only=True)
    for key in ('optimizer', 'scheduler', 'rng_state'):
        _assert_plain(last[key], key)
    assert last['optimizer']['state'] and last['scaler'] is None
    assert set(last['rng_state']) >= {'python', 'numpy', 'torch'}


def test_rng_state_is_plain_data_and_restores_every_generator(tmp_path):
    import random

    import numpy as np

    from action_recognition.training.state import rng_state
    from action_recognition.training.state import set_rng_state

    random.seed(1)
    np.random.seed(2)
    np.random.randn()  # a cached Gaussian is part of NumPy's state
    torch.manual_seed(3)
    saved = rng_state()

    def draw():
        return (random.random(), random.gauss(0, 1), float(np.random.rand()),
                float(np.random.randn()), torch.rand(3).tolist())

    expected = draw()
    path = ckpt.save_checkpoint(tmp_path / 'rng.pt', {'spec': SPEC.to_dict(), 'model_state': {},
                                                      'rng_state': saved})
    loaded = torch.load(path, weights_only=True)['rng_state']
    _assert_plain(loaded)
    draw()
    set_rng_state(loaded)
    assert draw() == expected


def test_plain_data_converts_numpy_and_refuses_objects(tmp_path):
    import numpy as np

    model = _model()
    state_dict = model.state_dict()
    converted = plain_data({'model_state': state_dict, 'top1': np.float64(50.0),
                                 'counts': np.arange(3), 'pair': (np.int64(1), 'a')})
    assert converted['model_state'] is state_dict  # unchanged: keeps its _metadata
    assert converted['top1'] == 50.0 and type(converted['top1']) is float
    assert converted['counts'] == [0, 1, 2] and converted['pair'] == (1, 'a')
    assert type(converted['pair'][0]) is int

    class Custom:
        pass

    with pytest.raises(ValueError, match=r"checkpoint\['metrics'\]\['note'\].*plain data"):
        plain_data({'metrics': {'note': Custom()}})
    with pytest.raises(ValueError, match='plain data'):
        ckpt.save_checkpoint(tmp_path / 'x.pt', {'spec': SPEC.to_dict(), 'model_state': {},
                                                 'extra': Custom()})
    assert list(tmp_path.iterdir()) == []
    # NumPy values in a state are saved as plain data.
    path = ckpt.save_checkpoint(tmp_path / 'np.pt', {'spec': SPEC.to_dict(), 'model_state': {},
                                                     'metrics': {'top1': np.float32(0.5)}})
    assert torch.load(path, weights_only=True)['metrics'] == {'top1': 0.5}


def test_temporaries_of_a_killed_save_are_recognised(tmp_path, monkeypatch):
    from action_recognition.files import remove_stale_temporaries

    seen = []

    def killed_save(obj, stream):
        seen.append(stream.name)
        stream.write(b'partial')
        raise KeyboardInterrupt  # as near to a kill as a test gets in-process

    monkeypatch.setattr(torch, 'save', killed_save)
    with pytest.raises(KeyboardInterrupt):
        ckpt.save_checkpoint(tmp_path / 'last.pt', {'spec': SPEC.to_dict(), 'model_state': {}})
    monkeypatch.undo()
    # What a SIGKILL would have left: the temporary, under the name save_checkpoint chose.
    leftover = Path(seen[0])
    leftover.write_bytes(b'partial')
    assert leftover.name.startswith('.last.pt.') and leftover.name.endswith('.tmp')
    assert remove_stale_temporaries(tmp_path / 'last.pt') == [leftover]
    assert list(tmp_path.iterdir()) == []

"""Checkpoints: atomic writes, clear errors, and models rebuilt from the stored spec."""

import pytest
import torch

from action_recognition.models import create_model
from action_recognition.spec import ModelSpec
from action_recognition.training import checkpoint as ckpt

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
    with pytest.raises(ckpt.CheckpointError, match='does not exist'):
        ckpt.load_model_from_checkpoint(tmp_path / 'absent.pt')
    with pytest.raises(ckpt.CheckpointError, match='not a file'):
        ckpt.load_checkpoint(tmp_path)


def test_corrupt_file(tmp_path):
    path = tmp_path / 'corrupt.pt'
    path.write_bytes(b'\x00garbage' * 100)
    with pytest.raises(ckpt.CheckpointError, match='corrupt'):
        ckpt.load_model_from_checkpoint(path)
    # A checkpoint cut short (a copy interrupted half-way) is reported the same way.
    good = ckpt.save_checkpoint(tmp_path / 'good.pt',
                                {'spec': SPEC.to_dict(), 'model_state': _model().state_dict()})
    truncated = tmp_path / 'truncated.pt'
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(ckpt.CheckpointError, match='corrupt'):
        ckpt.load_checkpoint(truncated)


def test_not_an_action_recognition_checkpoint(tmp_path):
    plain = tmp_path / 'plain.pt'
    torch.save(_model().state_dict(), plain)
    with pytest.raises(ckpt.CheckpointError, match='missing'):
        ckpt.load_checkpoint(plain)
    tensor = tmp_path / 'tensor.pt'
    torch.save(torch.zeros(3), tensor)
    with pytest.raises(ckpt.CheckpointError, match='expected a dictionary'):
        ckpt.load_checkpoint(tensor)


def test_unknown_model_and_wrong_weights(tmp_path):
    unknown = {**SPEC.to_dict(), 'model': 'no_such_model'}
    path = ckpt.save_checkpoint(tmp_path / 'u.pt', {'spec': unknown, 'model_state': {}})
    with pytest.raises(ckpt.CheckpointError, match='no_such_model'):
        ckpt.load_model_from_checkpoint(path)
    wrong = {**SPEC.to_dict(), 'num_classes': 5, 'labels': ['a', 'b', 'c', 'd', 'e']}
    path = ckpt.save_checkpoint(tmp_path / 'w.pt',
                                {'spec': wrong, 'model_state': _model().state_dict()})
    with pytest.raises(ckpt.CheckpointError, match='do not fit'):
        ckpt.load_model_from_checkpoint(path)
    bad_spec = {**SPEC.to_dict(), 'num_frames': 0}
    path = ckpt.save_checkpoint(tmp_path / 's.pt', {'spec': bad_spec, 'model_state': {}})
    with pytest.raises(ckpt.CheckpointError, match='invalid model spec'):
        ckpt.load_model_from_checkpoint(path)

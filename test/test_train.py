"""Training and evaluation: the synthetic CI check, exact resume, DDP, schedule, BN freezing.

The accuracy test trains the shipped CI config (``config/training/synthetic_ci.yaml``): a small
4D-only Proposed-Add ECO-Lite on in-memory synthetic clips, on the CPU, for 1,507 steps. It must
clearly learn motion: held-out top-1 of at least ``MIN_TOP1`` (above the 54.5% that an
order-blind model could reach at best: static plus one member of each of the 5 reversal pairs),
telling reversal partners apart, and recognising a clip played backwards as its partner class.
(Measured on 2 shared cores with the contrast-symmetric 2D-Net of the config: 80.9% top-1,
88.3% pair accuracy, 83.7% reversed clips as the partner. The direction of rotation needs about
3,000 steps, twice this budget, so the issue's 90% top-1 is held by the shipped default model,
trained longer, in ``test_default_model.py``; see ``docs/synthetic_rotation.md``.) A TSN-style
model (a 2D CNN whose frame logits are averaged over the clip) trained the same way
cannot tell reversal partners apart: it is exactly invariant to frame order, and picks the
right partner about half the time.
"""

import itertools
import json
import os
from pathlib import Path
import socket

import numpy as np
import pytest
import torch
from torch import nn
import torch.multiprocessing as mp

from action_recognition import cli
from action_recognition.data import synth_clips as synth
from action_recognition.data.normalize import Normalize
from action_recognition.io import checkpoint as ckpt
from action_recognition.training.config import load_config
from action_recognition.training.config import make_spec
from action_recognition.training.data import build_dataset
from action_recognition.training.model import build_model
from action_recognition.training.model import load_pretrained
from action_recognition.training.model import set_bn_mode
from action_recognition.training.optim import build_optimizer
from action_recognition.training.optim import lr_factor
from action_recognition.training.train import train

ROOT = Path(__file__).resolve().parents[1]
CI_CONFIG = ROOT / 'config' / 'training' / 'synthetic_ci.yaml'
MIN_TOP1 = 70.0
MIN_PAIR_ACCURACY = 80.0
MIN_REVERSED_AS_PARTNER = 70.0
PAIRS = [(synth.CLASSES.index(a), synth.CLASSES.index(b)) for a, b in synth.REVERSAL_PAIRS]

# A tiny run for the mechanics tests: 22 clips of 4 frames at 32x32, 2 steps per epoch.
TINY = ['model.name=eco_lite_add_small', 'model.options={width_mult: 0.125, dropout: 0.5}',
        'model.num_frames=4', 'model.input_size=[32,32]', 'model.resize_short=32',
        'dataset.format=synthetic', 'dataset.train_per_class=2', 'dataset.val_per_class=1',
        'batch_size=8', 'epochs=2', 'optim.optimizer=sgd', 'optim.lr=0.05',
        'optim.warmup_epochs=0.5', 'optim.clip_grad_norm=5', 'progress=false', 'threads=1']


class FrameAverage(nn.Module):
    """TSN-style: a 2D CNN on each frame ``[B*T, 3, H, W]``, logits averaged over the T frames."""

    def __init__(self, num_classes: int, num_frames: int) -> None:
        super().__init__()
        self.num_frames = num_frames

        def block(cin, cout):
            return [nn.Conv2d(cin, cout, 3, stride=2, padding=1, bias=False),
                    nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]

        self.features = nn.Sequential(*block(3, 24), *block(24, 48), *block(48, 96),
                                      nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.fc = nn.Linear(96, num_classes)

    def forward(self, x):
        logits = self.fc(self.features(x))
        return logits.reshape(-1, self.num_frames, logits.shape[-1]).mean(dim=1)


class TinyNoBn(nn.Module):
    """A deterministic model without batch norm or dropout, for the DDP equivalence test."""

    def __init__(self, num_classes: int, num_frames: int) -> None:
        super().__init__()
        self.num_frames = num_frames
        self.conv = nn.Conv2d(3, 4, 5, stride=4)
        self.fc = nn.Linear(4 * 4 * num_frames, num_classes)

    def forward(self, x):
        f = nn.functional.adaptive_avg_pool2d(torch.relu(self.conv(x)), 2)
        return self.fc(f.reshape(-1, self.num_frames * f.shape[1] * 4))


def _build_tiny(spec):
    return TinyNoBn(spec.num_classes, spec.num_frames)


def _held_out(config, spec, reverse=False):
    split = build_dataset(config, spec, train=False)
    clips, labels = zip(*(split.dataset[i] for i in range(len(split.dataset))))
    clips = torch.stack(clips)
    if reverse:
        clips = clips.flip(1)
    return clips, torch.tensor(labels)


@torch.no_grad()
def _probs(model, clips, spec):
    model.eval()
    normalize = Normalize.from_spec(spec)
    return torch.cat([model(normalize(clips[i:i + 32].flatten(0, 1))).softmax(1)
                      for i in range(0, len(clips), 32)])


def _pair_accuracy(probs, labels):
    """How often the true member of a reversal pair scores above its partner (percent)."""
    hits = []
    for a, b in PAIRS:
        for label, other in ((a, b), (b, a)):
            rows = labels == label
            hits.append((probs[rows, label] > probs[rows, other]).float())
    return torch.cat(hits).mean().item() * 100


@pytest.mark.slow
def test_4d_model_learns_motion_and_tsn_does_not(tmp_path):
    overrides = [f'output_dir={tmp_path / "eco"}', 'progress=false', 'tensorboard=false']
    config = load_config(CI_CONFIG, overrides)
    assert config.model.name == 'eco_lite_add_small'
    result = train(config)
    print('4D model:', [(r['epoch'], r.get('val_top1')) for r in result['history']])
    print('per class:', dict(zip(synth.CLASSES, result['last']['per_class_top1'])))
    assert result['last']['top1'] >= MIN_TOP1, result['history']

    model, spec = ckpt.load_model_from_checkpoint(tmp_path / 'eco' / 'last.pt')
    clips, labels = _held_out(config, spec)
    probs = _probs(model, clips, spec)
    assert (probs.argmax(1) == labels).float().mean().item() * 100 == pytest.approx(
        result['last']['top1'], abs=1e-3)
    print('pair accuracy', _pair_accuracy(probs, labels))
    assert _pair_accuracy(probs, labels) >= MIN_PAIR_ACCURACY
    # Played backwards, a clip of a pair's class is recognised as its partner.
    reversed_probs = _probs(model, clips.flip(1), spec)
    partner = torch.tensor([synth.REVERSE_SWAP[int(y)] for y in labels])
    in_pairs = partner != labels
    reversed_hits = (reversed_probs.argmax(1) == partner)[in_pairs].float().mean().item() * 100
    print('reversed clips recognised as the partner', reversed_hits)
    assert reversed_hits >= MIN_REVERSED_AS_PARTNER

    # TSN-style frame averaging, trained the same way (fewer epochs: it has nothing to learn).
    tsn_config = load_config(CI_CONFIG, [*overrides, f'output_dir={tmp_path / "tsn"}',
                                         'epochs=3', 'model.name=tsn_small_in_test'])
    train(tsn_config, model_builder=lambda s: FrameAverage(s.num_classes, s.num_frames))
    tsn_spec = make_spec(tsn_config, synth.CLASSES)
    tsn = FrameAverage(tsn_spec.num_classes, tsn_spec.num_frames)
    tsn.load_state_dict(ckpt.load_checkpoint(tmp_path / 'tsn' / 'last.pt')['model_state'])
    tsn_probs = _probs(tsn, clips, tsn_spec)
    torch.testing.assert_close(_probs(tsn, clips.flip(1), tsn_spec), tsn_probs)
    print('TSN pair accuracy', _pair_accuracy(tsn_probs, labels))
    assert 35.0 <= _pair_accuracy(tsn_probs, labels) <= 65.0


def test_cli_train_resume_is_exact_and_eval_writes_reports(tmp_path, capsys):
    full, killed = tmp_path / 'full', tmp_path / 'killed'
    assert cli.main(['train', *TINY, f'output_dir={full}']) == 0
    for name in ('last.pt', 'best.pt', 'model.pt', 'metrics.csv', 'metrics.json', 'curves.png',
                 'confusion_matrix.png', 'config.json'):
        assert (full / name).is_file(), name
    assert list((full / 'tb').glob('events.out.tfevents.*'))
    rows = (full / 'metrics.csv').read_text().splitlines()
    assert rows[0].startswith('epoch,step,lr,train_loss') and len(rows) == 3

    class KilledError(Exception):
        pass

    def kill_after_first(epoch, row):
        if epoch == 1:
            raise KilledError

    config = load_config(None, [*TINY, f'output_dir={killed}'])
    with pytest.raises(KilledError):
        train(config, on_epoch_end=kill_after_first)
    assert ckpt.load_checkpoint(killed / 'last.pt')['epoch'] == 1
    assert cli.main(['train', *TINY, f'output_dir={killed}', '--resume']) == 0

    a = ckpt.load_checkpoint(full / 'last.pt')
    b = ckpt.load_checkpoint(killed / 'last.pt')
    assert a['epoch'] == b['epoch'] == 2 and a['step'] == b['step'] == 4
    for key, value in a['model_state'].items():
        assert torch.equal(value, b['model_state'][key]), key
    for key, value in a['optimizer']['state'].items():
        momentum = b['optimizer']['state'][key]['momentum_buffer']
        assert torch.equal(value['momentum_buffer'], momentum)
    assert a['scheduler'] == b['scheduler']
    assert [r['val_top1'] for r in a['metrics']['history']] == [
        r['val_top1'] for r in b['metrics']['history']]
    spec = ckpt.spec_from_checkpoint(a)
    assert spec.labels == synth.CLASSES and spec.num_frames == 4 and spec.input_size == (32, 32)
    assert a['config']['optim']['lr'] == 0.05
    assert set(a['rng_state']) >= {'python', 'numpy', 'torch'}
    slim = ckpt.load_checkpoint(full / 'model.pt')
    assert not set(ckpt.TRAINING_STATE_KEYS) & set(slim)
    assert all(torch.equal(v, slim['model_state'][k]) for k, v in a['model_state'].items())
    assert (full / 'model.pt').stat().st_size < (full / 'last.pt').stat().st_size

    capsys.readouterr()
    assert cli.main(['eval', '--checkpoint', str(full / 'last.pt'), 'threads=1',
                     'progress=false']) == 0
    out = capsys.readouterr().out
    assert 'top-1' in out and 'move_left' in out
    report = json.loads((full / 'eval' / 'eval_metrics.json').read_text())
    assert report['top1'] == pytest.approx(a['metrics']['history'][-1]['val_top1'])
    assert np.array(report['confusion_matrix']).sum() == 11
    assert (full / 'eval' / 'confusion_matrix.png').stat().st_size > 1000


def test_cli_errors_are_reported(tmp_path, capsys):
    assert cli.main(['train', 'optim.lr=-1']) == 2
    assert 'optim.lr' in capsys.readouterr().err
    assert cli.main(['train', '--config', str(tmp_path / 'missing.yaml')]) == 2
    assert 'missing.yaml' in capsys.readouterr().err
    assert cli.main(['train', *TINY, f'output_dir={tmp_path}', '--resume']) == 2
    assert 'last.pt' in capsys.readouterr().err
    assert cli.main(['eval', '--checkpoint', str(tmp_path / 'none.pt')]) == 2
    assert 'does not exist' in capsys.readouterr().err


def test_cli_train_refuses_another_runs_folder_without_force(tmp_path, capsys):
    args = ['train', *TINY, 'epochs=1', 'tensorboard=false', f'output_dir={tmp_path}']
    (tmp_path / 'notes.txt').write_text('a folder with other files is fine')
    assert cli.main(args) == 0
    kept = ('last.pt', 'best.pt', 'model.pt', 'metrics.json', 'config.json')
    before = {name: (tmp_path / name).read_bytes() for name in kept}
    capsys.readouterr()
    # Starting afresh over another run is refused, and nothing of it is touched.
    assert cli.main([*args, 'seed=5']) == 2
    err = capsys.readouterr().err
    assert err.startswith('error: ') and 'another run' in err and '--force' in err
    assert 'last.pt' in err and 'best.pt' in err
    assert {name: (tmp_path / name).read_bytes() for name in kept} == before
    # With --force the old run's files go (best.pt too, before the new run writes one), and
    # the temporaries a killed writer left are removed.
    stale = [tmp_path / '.last.pt.k1ll3d.tmp', tmp_path / '.metrics.csv.tmp']
    for path in stale:
        path.write_bytes(b'partial')

    class StopError(Exception):
        pass

    def stop(epoch, row):
        assert not (tmp_path / 'best.pt').exists() and not (tmp_path / 'model.pt').exists()
        assert not any(path.exists() for path in stale)
        raise StopError

    config = load_config(None, [*TINY, 'epochs=2', 'eval_every=2', 'tensorboard=false',
                                'seed=5', f'output_dir={tmp_path}'])
    with pytest.raises(StopError):
        train(config, force=True, on_epoch_end=stop)
    assert ckpt.load_checkpoint(tmp_path / 'last.pt')['config']['seed'] == 5
    assert cli.main([*args, 'seed=5', '--force']) == 0
    assert ckpt.load_checkpoint(tmp_path / 'best.pt')['config']['seed'] == 5
    assert (tmp_path / 'notes.txt').exists()
    assert not [p.name for p in tmp_path.iterdir() if '.tmp' in p.name]


def test_resume_restores_a_best_pt_that_lags_behind(tmp_path, caplog):
    config = load_config(None, [*TINY, 'tensorboard=false', f'output_dir={tmp_path}'])
    train(config)
    last = ckpt.load_checkpoint(tmp_path / 'last.pt')
    assert last['epoch'] == 2 and last['metrics']['best_epoch'] in (1, 2)
    resume = ['train', *TINY, 'tensorboard=false', f'output_dir={tmp_path}', '--resume']
    # Killed after last.pt of an improving epoch (the best recorded is its own), before its
    # best.pt: restored from last.pt. A resume with no epoch left finishes the outputs.
    ckpt.save_checkpoint(tmp_path / 'last.pt',
                         {**last, 'metrics': {**last['metrics'], 'best_epoch': 2}})
    ckpt.save_checkpoint(tmp_path / 'best.pt', {**last, 'epoch': 0})
    (tmp_path / 'model.pt').unlink()
    (tmp_path / 'metrics.json').unlink()
    with caplog.at_level('WARNING'):
        assert cli.main(resume) == 0
    assert 'restored from' in caplog.text
    best = ckpt.load_checkpoint(tmp_path / 'best.pt')
    assert best['epoch'] == 2
    assert all(torch.equal(v, last['model_state'][k]) for k, v in best['model_state'].items())
    assert ckpt.load_checkpoint(tmp_path / 'model.pt')['epoch'] == 2
    assert json.loads((tmp_path / 'metrics.json').read_text())['best_epoch'] == 2
    # A best.pt from another epoch than the best recorded one, whose weights are gone: said.
    ckpt.save_checkpoint(tmp_path / 'last.pt',
                         {**last, 'metrics': {**last['metrics'], 'best_epoch': 1}})
    caplog.clear()
    with caplog.at_level('WARNING'):
        assert cli.main(resume) == 0
    assert 'no longer available' in caplog.text


def test_resume_refuses_another_model(tmp_path):
    config = load_config(None, [*TINY, 'epochs=1', f'output_dir={tmp_path}', 'tensorboard=false'])
    train(config)
    other = load_config(None, [*TINY, 'epochs=2', 'model.num_frames=2',
                               f'output_dir={tmp_path}'])
    with pytest.raises(ValueError, match='different model spec'):
        train(other, resume='auto')


def test_lr_schedule_warmup_then_cosine():
    kwargs = {'total_steps': 100, 'warmup_steps': 10, 'warmup_start': 0.1,
              'schedule': 'cosine', 'min_factor': 0.01}
    factors = [lr_factor(s, **kwargs) for s in range(101)]
    assert factors[0] == pytest.approx(0.1)
    assert factors[5] == pytest.approx(0.55)
    assert factors[10] == pytest.approx(1.0)
    assert factors[55] == pytest.approx(0.505)
    assert factors[100] == pytest.approx(0.01)
    assert all(a >= b for a, b in itertools.pairwise(factors[10:]))
    assert all(a < b for a, b in itertools.pairwise(factors[:11]))
    constant = {**kwargs, 'schedule': 'constant'}
    assert lr_factor(80, **constant) == 1.0


def test_optimizers_and_weight_decay_groups():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    config = load_config(None, ['optim.optimizer=sgd', 'optim.weight_decay=0.001',
                                'optim.momentum=0.8', 'optim.nesterov=true'])
    sgd = build_optimizer(model, config)
    assert isinstance(sgd, torch.optim.SGD)
    assert sgd.param_groups[0]['weight_decay'] == 0.001
    assert sgd.param_groups[0]['nesterov'] and sgd.param_groups[0]['momentum'] == 0.8
    assert [p.ndim for p in sgd.param_groups[0]['params']] == [4]
    assert sgd.param_groups[1]['weight_decay'] == 0.0 and len(sgd.param_groups[1]['params']) == 3
    adamw = build_optimizer(model, load_config(None, ['optim.optimizer=adamw']))
    assert isinstance(adamw, torch.optim.AdamW)


def test_partial_and_frozen_bn_and_frozen_module():
    base = ['model.options={width_mult: 0.125}', 'model.num_frames=4']
    spec = make_spec(load_config(None, base), synth.CLASSES)

    def bn_layers(module):
        return [m for m in module.modules() if isinstance(m, nn.BatchNorm2d)]

    frozen_cfg = load_config(None, [*base, 'model.bn_mode=frozen', 'model.bn_module=net2d'])
    model = build_model(frozen_cfg, spec)
    model.train()
    set_bn_mode(model, frozen_cfg)
    net2d_bns = bn_layers(model.net2d)
    assert net2d_bns and all(not bn.training for bn in net2d_bns)
    assert all(not p.requires_grad for bn in net2d_bns for p in bn.parameters())
    assert any(bn.training for bn in bn_layers(model.net3d))
    before = [bn.running_mean.clone() for bn in net2d_bns]
    model(torch.rand(8, 3, 32, 32))
    assert all(torch.equal(a, bn.running_mean) for a, bn in zip(before, net2d_bns))

    partial_cfg = load_config(None, [*base, 'model.bn_mode=partial'])
    model = build_model(partial_cfg, spec)
    model.train()
    set_bn_mode(model, partial_cfg)
    layers = bn_layers(model)
    assert layers[0].training and layers[0].weight.requires_grad
    assert all(not bn.training and not bn.weight.requires_grad for bn in layers[1:])

    freeze_cfg = load_config(None, [*base, 'model.freeze_module=net2d'])
    model = build_model(freeze_cfg, spec)
    optimizer = build_optimizer(model, freeze_cfg)
    trained = {id(p) for group in optimizer.param_groups for p in group['params']}
    assert not any(id(p) in trained for p in model.net2d.parameters())
    assert all(id(p) in trained for p in model.net3d.parameters())


def test_pretrained_weights_load_from_a_local_file(tmp_path):
    config = load_config(None, ['model.options={width_mult: 0.125}', 'model.num_frames=4'])
    spec = make_spec(config, synth.CLASSES)
    torch.manual_seed(1)
    source = build_model(config, spec)
    state = {f'module.{k}': v for k, v in source.net2d.state_dict().items()}
    state['module.fc.weight'] = torch.zeros(1000, 96)  # an ImageNet head: skipped
    path = tmp_path / 'imagenet.pth'
    torch.save({'state_dict': state}, path)
    torch.manual_seed(2)
    cfg = load_config(None, ['model.options={width_mult: 0.125}', 'model.num_frames=4',
                             f'model.pretrained={path}', 'model.pretrained_module=net2d'])
    target = build_model(cfg, spec)
    for key, value in source.net2d.state_dict().items():
        assert torch.equal(target.net2d.state_dict()[key], value), key
    assert not torch.equal(target.net3d.fc.weight, source.net3d.fc.weight)
    torch.save({'other.weight': torch.zeros(3)}, tmp_path / 'wrong.pth')
    with pytest.raises(ValueError, match='none of the'):
        load_pretrained(target, tmp_path / 'wrong.pth', 'net2d')
    with pytest.raises(FileNotFoundError):
        load_pretrained(target, tmp_path / 'absent.pth')


def _free_port():
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def _ddp_worker(rank, world_size, port, overrides, queue):
    os.environ.update(WORLD_SIZE=str(world_size), RANK=str(rank), LOCAL_RANK=str(rank),
                      MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port))
    torch.set_num_threads(1)
    try:
        result = train(load_config(None, overrides), model_builder=_build_tiny)
        queue.put((rank, result['last']['top1'], None))
    except Exception as error:  # reported to the parent
        queue.put((rank, None, repr(error)))
    finally:
        torch.distributed.destroy_process_group()


@pytest.mark.slow
def test_two_process_gloo_run_matches_one_process(tmp_path):
    # Without batch norm or dropout, 2 processes x 4 clips take the same steps as 1 x 8 clips.
    common = [*TINY, 'tensorboard=false', 'optim.clip_grad_norm=0', 'dataset.val_per_class=3']
    single = train(load_config(None, [*common, f'output_dir={tmp_path / "one"}']),
                   model_builder=_build_tiny)
    ctx = mp.get_context('fork')
    queue = ctx.Queue()
    overrides = [*common, f'output_dir={tmp_path / "two"}']
    port = _free_port()
    procs = [ctx.Process(target=_ddp_worker, args=(r, 2, port, overrides, queue))
             for r in range(2)]
    for proc in procs:
        proc.start()
    results = sorted(queue.get(timeout=240) for _ in procs)
    for proc in procs:
        proc.join(timeout=60)
    assert [r[2] for r in results] == [None, None], results
    assert [r[1] for r in results] == [single['last']['top1']] * 2  # all 33 clips, gathered
    one = ckpt.load_checkpoint(tmp_path / 'one' / 'last.pt')
    two = ckpt.load_checkpoint(tmp_path / 'two' / 'last.pt')
    assert two['step'] == one['step']
    for key, value in one['model_state'].items():
        torch.testing.assert_close(two['model_state'][key], value, rtol=1e-5, atol=1e-6)
    # Only rank 0 writes: one metrics file, one row per epoch.
    assert len((tmp_path / 'two' / 'metrics.csv').read_text().splitlines()) == 3

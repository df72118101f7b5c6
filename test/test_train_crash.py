"""A resumed run ends in the same files as an uninterrupted one, wherever it was killed.

A tiny synthetic training (5 epochs of 5 steps, evaluated every epoch) runs in a subprocess
whose driver (written here, not production code) wraps ``os.replace``/``os.rename``/``os.link``,
the calls that put a finished file in place, and SIGKILLs its own process just before or just
after the N-th publication of a chosen file. The run is then resumed with the normal command
(``action-recognition train ... --resume``) and compared with an uninterrupted run: ``best.pt``
holds the same epoch with identical weights, ``last.pt`` and ``model.pt`` identical weights,
``metrics.json`` and the recorded history are equal, and no temporary is left in the folder.

The kill points follow the uninterrupted run's own history (the epoch whose held-out top-1 is
the best, ``E``): while ``best.pt`` of ``E`` is written, after ``last.pt`` of ``E`` before its
``best.pt``, after ``best.pt`` of ``E`` before the next ``last.pt``, while that ``last.pt`` is
written, and after the final epoch's checkpoints before ``model.pt``.

On the code before this test (``last.pt`` then ``best.pt``, no best epoch recorded, no
clean-up): killed while writing ``best.pt`` or between ``last.pt`` and ``best.pt``, the resumed
run ends with ``best.pt`` from an earlier epoch (or none when ``E`` is the first), plus a stale
``.best.pt.*.tmp``; killed while writing ``last.pt`` it ends with a stale ``.last.pt.*.tmp``;
killed before ``model.pt`` the resume exits 0 without writing ``model.pt`` or ``metrics.json``.
"""

import json
import os
from pathlib import Path
import signal
import subprocess
import sys

import pytest
import torch

from action_recognition import cli
from action_recognition.io import checkpoint as ckpt

ROOT = Path(__file__).resolve().parents[1]

RUN = ['model.name=eco_lite_add_small', 'model.options={width_mult: 0.125, dropout: 0.0}',
       'model.num_frames=4', 'model.input_size=[32,32]', 'model.resize_short=32',
       'dataset.format=synthetic', 'dataset.train_per_class=4', 'dataset.val_per_class=2',
       'batch_size=8', 'epochs=5', 'eval_every=1', 'optim.optimizer=adamw', 'optim.lr=0.01',
       'optim.warmup_epochs=0.5', 'progress=false', 'threads=1', 'tensorboard=false']
EPOCHS = 5

DRIVER = """
import os
import signal
import sys

target, when, occurrence = sys.argv[1], sys.argv[2], int(sys.argv[3])
count = 0


def hook(real):
    def publish(src, dst, *args, **kwargs):
        global count
        hit = False
        if os.path.basename(os.fspath(dst)) == target:
            count += 1
            hit = count == occurrence
        if hit and when == 'before':
            os.kill(os.getpid(), signal.SIGKILL)
        result = real(src, dst, *args, **kwargs)
        if hit and when == 'after':
            os.kill(os.getpid(), signal.SIGKILL)
        return result
    return publish


for name in ('replace', 'rename', 'link'):
    setattr(os, name, hook(getattr(os, name)))

from action_recognition import cli  # noqa: E402

sys.exit(cli.main(['train', *sys.argv[4:]]))
"""


def _train(tmp_path, out_dir, kill=('none', 'before', 0), *extra):
    driver = tmp_path / 'driver.py'
    driver.write_text(DRIVER)
    env = {**os.environ, 'PYTHONPATH': os.pathsep.join(
        [str(ROOT), *filter(None, [os.environ.get('PYTHONPATH')])])}
    return subprocess.run(
        [sys.executable, str(driver), *map(str, kill), *RUN, f'output_dir={out_dir}', *extra],
        capture_output=True, text=True, env=env, timeout=300, check=False)


def _load(path):
    return ckpt.load_checkpoint(path, 'cpu')


def _history(state):
    return [{k: v for k, v in row.items() if k != 'epoch_seconds'}
            for row in state['metrics']['history']]


@pytest.fixture(scope='module')
def reference(tmp_path_factory):
    """The uninterrupted run, and the epoch whose held-out top-1 is the best."""
    tmp_path = tmp_path_factory.mktemp('reference')
    out_dir = tmp_path / 'run'
    done = _train(tmp_path, out_dir)
    assert done.returncode == 0, done.stderr[-3000:]
    history = _load(out_dir / 'last.pt')['metrics']['history']
    improving, best = [], -1.0
    for row in history:
        if row['val_top1'] > best:
            best = row['val_top1']
            improving.append(row['epoch'])
    return out_dir, improving


def _scenarios():
    # (name, file, before/after, which publication of it): resolved against the reference run
    # (E: the best epoch; its best.pt is the len(improving)-th best.pt written).
    return [
        ('while writing best.pt of the best epoch', 'best.pt', 'before', 'best'),
        ('after last.pt, before best.pt of the best epoch', 'last.pt', 'after', 'E'),
        ('after best.pt of the best epoch, before the next last.pt', 'best.pt', 'after',
         'best'),
        ('while writing last.pt of the epoch after the best', 'last.pt', 'before', 'E+1'),
        ('after the final checkpoints, before model.pt', 'model.pt', 'before', 'one'),
    ]


@pytest.mark.slow
@pytest.mark.parametrize('name,target,when,which', _scenarios(), ids=[s[0] for s in _scenarios()])
def test_resumed_run_ends_in_the_same_files(reference, tmp_path, name, target, when, which):
    ref_dir, improving = reference
    best_epoch = improving[-1]
    occurrence = {'best': len(improving), 'E': best_epoch, 'E+1': best_epoch + 1,
                  'one': 1}[which]
    if which == 'E+1' and best_epoch == EPOCHS:
        pytest.skip('the best epoch is the last one here: no epoch follows it')
    out_dir = tmp_path / 'run'
    killed = _train(tmp_path, out_dir, (target, when, occurrence))
    assert killed.returncode == -signal.SIGKILL, (killed.returncode, killed.stderr[-3000:])

    # Resume with the normal command.
    assert cli.main(['train', *RUN, f'output_dir={out_dir}', '--resume']) == 0

    # Every difference from the uninterrupted run, reported together.
    problems = []
    leftovers = sorted(p.name for p in out_dir.iterdir() if '.tmp' in p.name)
    if leftovers:
        problems.append(f'temporaries left behind: {leftovers}')
    missing = [file for file in ('last.pt', 'best.pt', 'model.pt', 'metrics.json')
               if not (out_dir / file).is_file()]
    if missing:
        problems.append(f'missing: {missing}')
    for file in ('best.pt', 'last.pt', 'model.pt'):
        if file in missing:
            continue
        expected, got = _load(ref_dir / file), _load(out_dir / file)
        if got['epoch'] != expected['epoch']:
            problems.append(f'{file} holds epoch {got["epoch"]}, expected {expected["epoch"]}')
        elif got['model_state'].keys() != expected['model_state'].keys() or not all(
                torch.equal(got['model_state'][k], v)
                for k, v in expected['model_state'].items()):
            problems.append(f'{file}: other weights')
    if 'last.pt' not in missing and (
            _history(_load(out_dir / 'last.pt')) != _history(_load(ref_dir / 'last.pt'))):
        problems.append('last.pt: another history')
    if 'metrics.json' not in missing and (
            json.loads((out_dir / 'metrics.json').read_text())
            != json.loads((ref_dir / 'metrics.json').read_text())):
        problems.append('metrics.json differs')
    if len((out_dir / 'metrics.csv').read_text().splitlines()) != EPOCHS + 1:
        problems.append('metrics.csv: not one row per epoch')
    assert problems == [], f'killed {name}, then resumed: {problems}'
    assert _load(ref_dir / 'best.pt')['epoch'] == best_epoch

"""No file is destroyed or silently replaced (issue 11, item 8): an output that is the input is
refused, an existing output is refused without ``--force``, and files are written through
uniquely named temporaries renamed atomically (never through a planted symlink)."""

import os
from pathlib import Path

from fixtures.ros_data import camera_bag
from fixtures.ros_data import moving_frames
from fixtures.ros_data import write_video
import pytest

from action_recognition import cli
from action_recognition.files import atomic_dir
from action_recognition.files import atomic_path
from action_recognition.files import atomic_write_bytes
from action_recognition.files import check_output
from action_recognition.files import OutputExistsError
from action_recognition.files import remove_stale_temporaries
from action_recognition.files import SameAsInputError


@pytest.fixture(scope='module')
def model(tiny_model):
    return tiny_model


def _run(*argv):
    return cli.main(['run', '--no-progress', *[str(a) for a in argv]])


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if '.tmp' in p.name)


# -- the helpers ------------------------------------------------------------------------------

def test_atomic_path_publishes_on_success_and_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / 'out.bin'
    with pytest.raises(RuntimeError), atomic_path(target) as temporary:
        temporary.write_bytes(b'half')
        raise RuntimeError('killed')
    assert not target.exists() and _leftovers(tmp_path) == []
    atomic_write_bytes(target, b'one')
    with pytest.raises(OutputExistsError):
        atomic_write_bytes(target, b'two')
    assert target.read_bytes() == b'one'
    atomic_write_bytes(target, b'two', force=True)
    assert target.read_bytes() == b'two' and _leftovers(tmp_path) == []


def test_a_name_taken_while_writing_is_not_clobbered(tmp_path):
    target = tmp_path / 'out.bin'
    with pytest.raises(OutputExistsError), atomic_path(target) as temporary:
        temporary.write_bytes(b'new')
        target.write_bytes(b'someone else')
    assert target.read_bytes() == b'someone else'


def test_a_planted_symlink_is_never_written_through(tmp_path):
    victim = tmp_path / 'victim.txt'
    victim.write_text('precious')
    target = tmp_path / 'model.onnx'
    # The old exporter wrote `<output>.tmp` by name, following a symlink placed there.
    (tmp_path / 'model.onnx.tmp').symlink_to(victim)
    atomic_write_bytes(target, b'model')
    assert victim.read_text() == 'precious' and target.read_bytes() == b'model'


def test_check_output_refuses_inputs_and_paths_inside_them(tmp_path):
    source = tmp_path / 'in.avi'
    source.write_bytes(b'video')
    with pytest.raises(SameAsInputError):
        check_output(source, force=True, inputs=[source])
    with pytest.raises(SameAsInputError):
        check_output(tmp_path / '.' / 'in.avi', force=True, inputs=[source])
    bag = tmp_path / 'bag'
    bag.mkdir()
    with pytest.raises(SameAsInputError):
        check_output(bag / 'out.jsonl', force=True, inputs=[bag])
    with pytest.raises(OutputExistsError, match='--force'):
        check_output(source)
    assert check_output(tmp_path / 'new.jsonl', inputs=[source, None]) == tmp_path / 'new.jsonl'


def test_stale_temporaries_of_one_target_are_removed(tmp_path):
    (tmp_path / '.last.pt.ab12cd.tmp').write_bytes(b'x')
    (tmp_path / '.last.pt.ef34gh.tmp.pt').write_bytes(b'x')
    (tmp_path / '.last.pt.old.x.tmp').write_bytes(b'keep')   # not a name this module makes
    (tmp_path / 'last.pt').write_bytes(b'keep')
    (tmp_path / '.best.pt.ab12cd.tmp').write_bytes(b'keep')  # another target
    with atomic_dir(tmp_path / 'bag') as inner:
        inner.mkdir()
        (inner / 'x').write_text('x')
    removed = remove_stale_temporaries(tmp_path / 'last.pt')
    assert sorted(p.name for p in removed) == ['.last.pt.ab12cd.tmp', '.last.pt.ef34gh.tmp.pt']
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        '.best.pt.ab12cd.tmp', '.last.pt.old.x.tmp', 'bag', 'last.pt']


# -- run ------------------------------------------------------------------------------------

def test_run_refuses_its_source_as_output(tmp_path, model):
    video = write_video(tmp_path / 'clip.avi', moving_frames(8), fps=10)
    before = video.read_bytes()
    # The old code truncated the source video and exited 0.
    assert _run('--source', video, '--model', model, '--output', video) == 1
    assert _run('--source', video, '--model', model, '--output', video, '--force') == 1
    assert video.read_bytes() == before
    bag, _ = camera_bag(tmp_path / 'rec', moving_frames(8))
    listing = sorted(p.name for p in bag.iterdir())
    assert _run('--source', bag, '--model', model, '--output', tmp_path / 'rec.mcap',
                '--force') == 1
    assert _run('--source', bag, '--model', model, '--output', bag / 'out.jsonl') == 1
    assert sorted(p.name for p in bag.iterdir()) == listing
    assert _run('--source', video, '--model', model, '--output', model, '--force') == 1


@pytest.mark.parametrize('name', ['out.jsonl', 'out.avi', 'out.mcap'])
def test_run_refuses_to_overwrite_without_force(tmp_path, model, name):
    video = write_video(tmp_path / 'clip.avi', moving_frames(10), fps=10)
    out = tmp_path / name
    assert _run('--source', video, '--model', model, '--output', out) == 0
    target = out.with_suffix('') if name.endswith('.mcap') else out
    first = sorted(p.name for p in target.iterdir()) if target.is_dir() else target.read_bytes()
    marker = target / 'metadata.yaml' if target.is_dir() else target
    stamp = marker.stat().st_mtime_ns
    assert _run('--source', video, '--model', model, '--output', out) == 1
    assert marker.stat().st_mtime_ns == stamp
    assert _run('--source', video, '--model', model, '--output', out, '--force') == 0
    again = sorted(p.name for p in target.iterdir()) if target.is_dir() else target.read_bytes()
    assert again == first
    assert _leftovers(tmp_path) == []


def test_run_with_force_never_replaces_a_folder_that_is_not_a_recording(tmp_path, model):
    video = write_video(tmp_path / 'clip.avi', moving_frames(8), fps=10)
    precious = tmp_path / 'data'
    precious.mkdir()
    (precious / 'notes.txt').write_text('keep me')
    assert _run('--source', video, '--model', model, '--output', tmp_path / 'data.mcap',
                '--force') == 1
    assert (precious / 'notes.txt').read_text() == 'keep me'


# -- export and synth -----------------------------------------------------------------------

def test_export_refuses_to_overwrite_and_writes_atomically(tmp_path, model):
    out = tmp_path / 'model.onnx'
    victim = tmp_path / 'victim.txt'
    victim.write_text('precious')
    os.symlink(victim, tmp_path / 'model.onnx.tmp')
    argv = ['export', '--model', 'eco_lite_add_small', '--checkpoint', str(model),
            '--output', str(out)]
    assert cli.main(argv) == 0
    assert victim.read_text() == 'precious'
    stamp = out.stat().st_mtime_ns
    assert cli.main(argv) == 1
    assert out.stat().st_mtime_ns == stamp
    assert cli.main([*argv, '--force']) == 0
    assert cli.main(['export', '--model', 'eco_lite_add_small', '--checkpoint', str(model),
                     '--output', str(model), '--force']) == 1
    assert model.stat().st_size > 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ['model.onnx', 'model.onnx.tmp',
                                                           'victim.txt']


def test_synth_refuses_to_overwrite_and_replaces_only_its_own_data_sets(tmp_path):
    out = tmp_path / 'synth'
    argv = ['synth', '--out', str(out), '--per-class', '2', '--frames', '4', '--size', '16',
            '--no-progress']
    assert cli.main(argv) == 0
    listing = sorted(str(p.relative_to(out)) for p in out.rglob('*'))
    assert cli.main(argv) == 1
    assert cli.main([*argv, '--force']) == 0
    assert sorted(str(p.relative_to(out)) for p in out.rglob('*')) == listing
    other = tmp_path / 'mine'
    other.mkdir()
    (other / 'thesis.tex').write_text('keep me')
    assert cli.main(['synth', '--out', str(other), '--per-class', '2', '--frames', '4',
                     '--size', '16', '--no-progress', '--force']) == 1
    assert (other / 'thesis.tex').read_text() == 'keep me'
    empty = tmp_path / 'empty'
    empty.mkdir()
    assert cli.main(['synth', '--out', str(empty), '--per-class', '2', '--frames', '4',
                     '--size', '16', '--no-progress']) == 0
    assert (empty / 'ucfTrainTestlist' / 'classInd.txt').is_file()
    assert _leftovers(tmp_path) == []

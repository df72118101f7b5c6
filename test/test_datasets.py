"""Data-set readers on small trees in the real formats, and the clip data sets."""

import json
import warnings

import cv2
import numpy as np
import pytest
import torch

from action_recognition.data.sampling import sample_indices
from action_recognition.data.synth_clips import CLASSES
from action_recognition.data.synth_clips import HFLIP_SWAP
from action_recognition.data.video import write_video
from action_recognition.spec import ModelSpec
from action_recognition.training.datasets import check_items
from action_recognition.training.datasets import ClipDataset
from action_recognition.training.datasets import InMemoryClipDataset
from action_recognition.training.readers import DatasetFormatError
from action_recognition.training.readers import read_hmdb51
from action_recognition.training.readers import read_kinetics
from action_recognition.training.readers import read_list_file
from action_recognition.training.readers import read_sthv1
from action_recognition.training.readers import read_sthv2
from action_recognition.training.readers import read_ucf101
from action_recognition.training.readers import VideoItem
from action_recognition.training.transforms import Compose
from action_recognition.training.transforms import MultiScaleCrop
from action_recognition.training.transforms import RandomHorizontalFlip


def _touch(path, data=b'x'):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_ucf101(tmp_path):
    root = tmp_path / 'UCF101'
    lists = root / 'ucfTrainTestlist'
    lists.mkdir(parents=True)
    (lists / 'classInd.txt').write_text('1 ApplyEyeMakeup\r\n2 HandStandPushups\r\n3 YoYo\r\n')
    (lists / 'trainlist01.txt').write_text(
        'ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1\n'
        'HandstandPushups/v_HandStandPushups_g08_c01.avi 2\n'
        'YoYo/v_YoYo_g09_c02.avi 3\n')
    (lists / 'testlist01.txt').write_text(
        'ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi\nYoYo/v_YoYo_g01_c03.avi\n')
    videos = root / 'UCF-101'
    for rel in ('ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi', 'YoYo/v_YoYo_g01_c03.avi'):
        _touch(videos / rel)
    train, classes = read_ucf101(root, split=1, train=True)
    assert classes == ['ApplyEyeMakeup', 'HandStandPushups', 'YoYo']
    assert [(i.path.relative_to(videos).as_posix(), i.label) for i in train] == [
        ('ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi', 0),
        ('HandstandPushups/v_HandStandPushups_g08_c01.avi', 1),
        ('YoYo/v_YoYo_g09_c02.avi', 2)]
    test, _ = read_ucf101(root, split=1, train=False)
    assert [i.label for i in test] == [0, 2]
    assert not any(i.is_frame_folder for i in train + test)
    (lists / 'testlist02.txt').write_text('Juggling/v_Juggling_g01_c01.avi\n')
    with pytest.raises(DatasetFormatError, match=r'testlist02\.txt:1'):
        read_ucf101(root, split=2, train=False)
    (lists / 'trainlist02.txt').write_text('YoYo/v_YoYo_g09_c02.avi 1\n')
    with pytest.raises(DatasetFormatError, match='does not match'):
        read_ucf101(root, split=2, train=True)
    with pytest.raises(FileNotFoundError, match='trainlist03'):
        read_ucf101(root, split=3)


def test_hmdb51(tmp_path):
    splits = tmp_path / 'testTrainMulti_7030_splits'
    splits.mkdir()
    (splits / 'brush_hair_test_split1.txt').write_text('a.avi 1 \nb.avi 2 \nc.avi 0 \n')
    (splits / 'wave_test_split1.txt').write_text('d.avi 2 \ne.avi 1 \n')
    (splits / 'wave_test_split2.txt').write_text('d.avi 1 \n')
    train, classes = read_hmdb51(tmp_path / 'videos', splits, split=1, train=True)
    assert classes == ['brush_hair', 'wave']
    assert [(i.path.relative_to(tmp_path).as_posix(), i.label) for i in train] == [
        ('videos/brush_hair/a.avi', 0), ('videos/wave/e.avi', 1)]
    test, _ = read_hmdb51(tmp_path / 'videos', splits, split=1, train=False)
    assert [i.path.name for i in test] == ['b.avi', 'd.avi']
    with pytest.raises(FileNotFoundError, match='split3'):
        read_hmdb51(tmp_path, splits, split=3)


def test_kinetics(tmp_path):
    csv_file = tmp_path / 'validate.csv'
    csv_file.write_text(
        'label,youtube_id,time_start,time_end,split\n'
        'air drumming,--nQbRBEz2s,104,114,val\n'
        'abseiling,0wR5jVB-WPk,417,427,val\n'
        'air drumming,zz5ha2h4,0,10,val\n')
    root = tmp_path / 'val'
    _touch(root / 'air_drumming' / '--nQbRBEz2s_000104_000114.mp4')
    _touch(root / 'abseiling' / '0wR5jVB-WPk_000417_000427.mkv')
    items, classes = read_kinetics(csv_file, root)
    assert classes == ['abseiling', 'air drumming']
    assert [(i.path.relative_to(root).as_posix(), i.label) for i in items] == [
        ('air_drumming/--nQbRBEz2s_000104_000114.mp4', 1),
        ('abseiling/0wR5jVB-WPk_000417_000427.mkv', 0),
        ('air drumming/zz5ha2h4_000000_000010.mp4', 1)]  # missing: reported when read
    fixed, names = read_kinetics(csv_file, root, classes=['air drumming', 'abseiling', 'zumba'])
    assert names[0] == 'air drumming' and fixed[0].label == 0
    (tmp_path / 'test.csv').write_text('youtube_id,time_start,time_end,split\nab,0,10,test\n')
    with pytest.raises(DatasetFormatError, match='without labels'):
        read_kinetics(tmp_path / 'test.csv', root)


def test_something_something_v1(tmp_path):
    labels = tmp_path / 'something-something-v1-labels.csv'
    labels.write_text('Holding something\nPushing something from left to right\n')
    split = tmp_path / 'something-something-v1-validation.csv'
    split.write_text('9223;Pushing something from left to right\n42;Holding something\n')
    frames = tmp_path / '20bn-something-something-v1'
    items, classes = read_sthv1(frames, labels, split)
    assert classes == ['Holding something', 'Pushing something from left to right']
    assert [(i.path.name, i.label, i.is_frame_folder, i.frame_template) for i in items] == [
        ('9223', 1, True, '{:05d}.jpg'), ('42', 0, True, '{:05d}.jpg')]
    split.write_text('7;Juggling something\n')
    with pytest.raises(DatasetFormatError, match='Juggling'):
        read_sthv1(frames, labels, split)


def test_something_something_v2(tmp_path):
    labels = tmp_path / 'something-something-v2-labels.json'
    labels.write_text(json.dumps({'Pushing something from left to right': '1',
                                  'Holding something next to something': '0'}))
    split = tmp_path / 'something-something-v2-validation.json'
    split.write_text(json.dumps([
        {'id': '74225', 'label': 'pushing a pen from left to right',
         'template': 'Pushing [something] from left to right', 'placeholders': ['a pen']},
        {'id': '116154', 'label': 'holding cup next to plate',
         'template': 'Holding [something] next to [something]', 'placeholders': ['cup', 'plate']},
    ]))
    videos = tmp_path / '20bn-something-something-v2'
    _touch(videos / '116154.webm')
    items, classes = read_sthv2(videos, labels, split)
    assert classes == ['Holding something next to something',
                       'Pushing something from left to right']
    assert [(i.path.name, i.label) for i in items] == [('74225.webm', 1), ('116154.webm', 0)]
    (tmp_path / 'test.json').write_text(json.dumps([{'id': '1'}]))
    with pytest.raises(DatasetFormatError, match='template'):
        read_sthv2(videos, labels, tmp_path / 'test.json')


def test_list_files(tmp_path):
    videos = tmp_path / 'videos.txt'
    videos.write_text('clips/a b.mp4 3\nclips/c.avi 0\n')
    items, classes = read_list_file(videos)
    assert [(i.path.relative_to(tmp_path).as_posix(), i.label, i.num_frames, i.is_frame_folder)
            for i in items] == [('clips/a b.mp4', 3, None, False), ('clips/c.avi', 0, None, False)]
    assert classes == ['class_0', 'class_1', 'class_2', 'class_3']
    folders = tmp_path / 'frames.txt'
    folders.write_text('rawframes/x 120 1\nrawframes/y 80 0\n')
    items, classes = read_list_file(folders, tmp_path / 'data', classes=['no', 'yes'])
    assert items[0] == VideoItem(tmp_path / 'data' / 'rawframes/x', 1, 120, True)
    assert classes == ['no', 'yes']
    folders.write_text('rawframes/x 120 5\n')
    with pytest.raises(DatasetFormatError, match='out of range'):
        read_list_file(folders, classes=['no', 'yes'])
    folders.write_text('just-a-path\n')
    with pytest.raises(DatasetFormatError, match=r'frames\.txt:1'):
        read_list_file(folders)


# ---------------------------------------------------------------------------------------------
# Clip data sets

SPEC = ModelSpec(model='m', num_classes=11, num_frames=4, frame_stride=2, input_size=(24, 24),
                 resize_short=28, labels=CLASSES)


def _id_video(path, frames, height=32, width=40):
    """A video whose frame t is the constant colour 10 * t (lossless, so exact on read)."""
    clip = np.repeat((np.arange(frames, dtype=np.uint8) * 10)[:, None, None, None], 3, -1)
    write_video(path, np.ascontiguousarray(np.broadcast_to(clip, (frames, height, width, 3))))
    return path


def test_clip_dataset_train_and_multi_view_test(tmp_path):
    item = VideoItem(_id_video(tmp_path / 'v.avi', 20), CLASSES.index('move_left'))
    train = ClipDataset([item], SPEC, train=True, transform=Compose(
        [MultiScaleCrop(24), RandomHorizontalFlip(1.0, HFLIP_SWAP)]))
    clip, label = train[0]
    assert clip.dtype == torch.uint8 and clip.shape == (4, 3, 24, 24)
    assert CLASSES[label] == 'move_right'
    ids = clip[:, 0, 0, 0].numpy() // 10
    assert np.all(np.diff(ids) == 2)  # dense sampling with frame stride 2
    starts = {int(train[0][0][0, 0, 0, 0]) // 10 for _ in range(40)}
    assert len(starts) > 5  # random start in training
    test = ClipDataset([item], SPEC, train=False, num_clips=2, num_crops=3)
    views, label = test[0]
    assert views.shape == (2 * 3 * 4, 3, 24, 24) and label == item.label
    expected = np.concatenate([np.tile(sample_indices(SPEC, 20, clip_index=c, num_clips=2), 3)
                               for c in range(2)])
    assert np.array_equal(views[:, 0, 0, 0].numpy() // 10, expected)
    single, _ = ClipDataset([item], SPEC, train=False)[0]
    assert np.array_equal(single[:, 0, 0, 0].numpy() // 10, sample_indices(SPEC, 20))


def test_clip_dataset_frame_folders_with_segment_sampling(tmp_path):
    folder = tmp_path / 'rawframes' / 'x'
    folder.mkdir(parents=True)
    for i in range(12):
        frame = np.full((30, 30, 3), 10 * i, np.uint8)
        cv2.imwrite(str(folder / f'img_{i + 1:05d}.png'), frame)
    (tmp_path / 'list.txt').write_text('rawframes/x 12 2\n')
    items, _ = read_list_file(tmp_path / 'list.txt')
    spec = ModelSpec(model='m', num_classes=3, num_frames=3, sampling='segments',
                     input_size=(24, 24), resize_short=24)
    clip, label = ClipDataset(items, spec, train=False)[0]
    assert label == 2 and clip.shape == (3, 3, 24, 24)
    assert (clip[:, 0, 0, 0].numpy() // 10).tolist() == [2, 6, 10]


@pytest.mark.parametrize('kind', ['missing', 'empty', 'corrupt'])
def test_unreadable_videos_are_skipped_with_a_counted_warning(tmp_path, kind):
    bad = tmp_path / f'bad_{kind}.avi'
    if kind == 'empty':
        bad.write_bytes(b'')
    elif kind == 'corrupt':
        bad.write_bytes(b'RIFF' + bytes(range(256)) * 8)
    good = VideoItem(_id_video(tmp_path / 'good.avi', 10), 3)
    dataset = ClipDataset([VideoItem(bad, 1), good], SPEC, train=False)
    with pytest.warns(RuntimeWarning, match=rf'bad_{kind}\.avi') as record:
        clip, label = dataset[0]
    assert label == 3 and clip.shape == (4, 3, 24, 24)  # the next readable item instead
    assert list(dataset.skipped) == [str(bad)]
    assert sum('1 skipped so far' in str(w.message) for w in record) == 1
    with warnings.catch_warnings():
        warnings.simplefilter('error')  # the same file is not warned about twice
        assert dataset[0][1] == 3
    with pytest.warns(RuntimeWarning, match='skipping 1 of 2 unreadable videos'):
        kept, skipped = check_items([VideoItem(bad, 1), good], progress=False)
    assert kept == [VideoItem(good.path, 3, 10)] and list(skipped) == [str(bad)]
    with pytest.warns(RuntimeWarning), pytest.raises(RuntimeError, match='all 1 items'):
        ClipDataset([VideoItem(bad, 1)], SPEC, train=False)[0]


def test_in_memory_dataset_is_deterministic_per_index_seed_and_epoch():
    data = InMemoryClipDataset(22, frames=4, size=32, seed=1)
    clip, label = data[13]
    assert clip.shape == (4, 3, 32, 32) and clip.dtype == torch.uint8 and label == 2
    assert torch.equal(clip, InMemoryClipDataset(22, frames=4, size=32, seed=1)[13][0])
    assert not torch.equal(clip, InMemoryClipDataset(22, frames=4, size=32, seed=2)[13][0])
    data.set_epoch(1)
    assert not torch.equal(clip, data[13][0]) and data[13][1] == 2
    spec_data = InMemoryClipDataset.from_spec(SPEC, 11, transform=RandomHorizontalFlip(
        1.0, HFLIP_SWAP))
    assert CLASSES[spec_data[1][1]] == 'move_right' and spec_data[1][0].shape == (4, 3, 24, 24)
    loader = torch.utils.data.DataLoader(data, batch_size=5)
    batch, labels = next(iter(loader))
    assert batch.shape == (5, 4, 3, 32, 32) and labels.tolist() == [0, 1, 2, 3, 4]

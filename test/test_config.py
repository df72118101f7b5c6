"""Training config: YAML files, inheritance, overrides, validation, the shipped configs."""

from pathlib import Path

import pytest

from action_recognition.training.config import apply_overrides
from action_recognition.training.config import config_from_dict
from action_recognition.training.config import config_to_dict
from action_recognition.training.config import load_config
from action_recognition.training.config import make_spec
from action_recognition.training.config import TrainConfig

CONFIG_DIR = Path(__file__).resolve().parents[1] / 'config' / 'training'


def test_defaults_are_valid_and_round_trip():
    config = load_config(None)
    assert isinstance(config, TrainConfig)
    again = config_from_dict(config_to_dict(config))
    assert again == config


def test_yaml_and_overrides(tmp_path):
    path = tmp_path / 'run.yaml'
    path.write_text('model:\n  name: eco_lite_add\n  num_frames: 16\n'
                    'optim: {optimizer: adamw, lr: 0.001}\nepochs: 3\n')
    config = load_config(path, ['optim.lr=0.05', 'model.input_size=[112,112]',
                                'dataset.hflip=true', 'epochs=7', 'model.options.dropout=0.3'])
    assert config.model.name == 'eco_lite_add'
    assert config.model.num_frames == 16
    assert config.optim.optimizer == 'adamw'
    assert config.optim.lr == 0.05
    assert config.model.input_size == [112, 112]
    assert config.dataset.hflip is True
    assert config.epochs == 7
    assert config.model.options == {'dropout': 0.3}
    # An integer where a float is due is accepted and becomes a float.
    assert load_config(path, ['optim.lr=1']).optim.lr == 1.0
    assert isinstance(load_config(path, ['optim.lr=1']).optim.lr, float)


def test_model_shorthand_override():
    assert load_config(None, ['model=eco_lite_cat']).model.name == 'eco_lite_cat'


def test_base_inheritance_merges_sections(tmp_path):
    (tmp_path / 'base.yaml').write_text('optim: {lr: 0.1, momentum: 0.8}\nepochs: 5\n')
    (tmp_path / 'child.yaml').write_text('base: base.yaml\noptim: {lr: 0.2}\n')
    config = load_config(tmp_path / 'child.yaml')
    assert config.optim.lr == 0.2
    assert config.optim.momentum == 0.8
    assert config.epochs == 5


def test_base_cycle_is_an_error(tmp_path):
    (tmp_path / 'a.yaml').write_text('base: b.yaml\n')
    (tmp_path / 'b.yaml').write_text('base: a.yaml\n')
    with pytest.raises(ValueError, match='includes itself'):
        load_config(tmp_path / 'a.yaml')


@pytest.mark.parametrize(('override', 'message'), [
    ('optim.lrr=0.1', 'optim.lrr'),
    ('epochs=ten', 'epochs'),
    ('dataset.hflip=3', 'dataset.hflip'),
    ('optim.optimizer=adam', 'optim.optimizer'),
    ('dataset.format=imagenet', 'dataset.format'),
    ('dataset.val_seed=0', 'val_seed'),
    ('model.bn_mode=half', 'bn_mode'),
    ('epochs=0', 'epochs'),
    ('novalue', 'key=value'),
    ('dataset.format=ucf101', 'dataset.root'),
    ('dataset.format=kinetics', 'dataset.train_list'),
    ('model.input_size=[64,96]', 'square'),
    ('dataset.num_crops=2', 'num_crops'),
])
def test_bad_settings_name_the_key(override, message):
    with pytest.raises(ValueError, match=message.replace('.', r'\.')):
        load_config(None, [override])


def test_missing_and_invalid_files(tmp_path):
    with pytest.raises(FileNotFoundError, match=r'nope\.yaml'):
        load_config(tmp_path / 'nope.yaml')
    bad = tmp_path / 'bad.yaml'
    bad.write_text('model: [unclosed\n')
    with pytest.raises(ValueError, match='not valid YAML'):
        load_config(bad)
    scalar = tmp_path / 'scalar.yaml'
    scalar.write_text('3\n')
    with pytest.raises(ValueError, match='mapping'):
        load_config(scalar)


def test_apply_overrides_does_not_mutate_input():
    data = {'optim': {'lr': 0.1}}
    out = apply_overrides(data, ['optim.lr=0.2'])
    assert data == {'optim': {'lr': 0.1}}
    assert out == {'optim': {'lr': 0.2}}


def test_make_spec_carries_sampling_and_preprocessing():
    config = load_config(None, ['model.num_frames=16', 'model.frame_stride=2',
                                'model.input_size=[96,128]', 'model.resize_short=128',
                                'dataset.format=ucf101', 'dataset.root=/data',
                                'model.mean=[0.5,0.5,0.5]', 'model.std=[0.25,0.25,0.25]',
                                'model.options={width_mult: 0.5}'])
    spec = make_spec(config, ['a', 'b', 'c'])
    assert spec.num_classes == 3
    assert spec.labels == ('a', 'b', 'c')
    assert spec.num_frames == 16
    assert spec.frame_stride == 2
    assert spec.input_size == (96, 128)
    assert spec.mean == (0.5, 0.5, 0.5)
    assert spec.options == {'width_mult': 0.5}


@pytest.mark.parametrize('path', sorted(CONFIG_DIR.glob('*.yaml')), ids=lambda p: p.name)
def test_shipped_configs_load(path):
    # Real data sets need their paths; the papers' configs leave them to the command line.
    config = load_config(path, ['dataset.root=/data', 'dataset.train_list=/data/train.csv',
                                'dataset.val_list=/data/val.csv',
                                'dataset.labels_file=/data/labels.csv'])
    assert config.epochs >= 1
    assert config.model.name


"""Settings declared once: conversion and checks, the derived command-line flags, and the
node's parameter table (every setting of every group, each name once)."""

import argparse
from dataclasses import dataclass

import numpy as np
import pytest

from action_recognition.node.parameters import GROUPS
from action_recognition.node.parameters import PARAMETERS
from action_recognition.runtime.settings import backend_problems
from action_recognition.runtime.settings import BackendSettings
from action_recognition.runtime.settings import StreamSettings
from action_recognition.settings import add_arguments
from action_recognition.settings import from_arguments
from action_recognition.settings import setting
from action_recognition.settings import Settings
from action_recognition.settings import settings_of
from action_recognition.settings import SettingsError


@dataclass(frozen=True)
class Example(Settings):
    """A group for the tests."""

    count: int = setting(3, 'How many.', minimum=1, maximum=10)
    ratio: float = setting(0.5, 'How much.', minimum=0.0, maximum=1.0, flags=('--ratio', '-r'))
    mode: str = setting('a', 'Which.', choices=('a', 'b'))
    name: str = setting('x1', 'A name.', pattern=r'x\d+', pattern_hint="'x' and digits")
    on: bool = setting(False, 'Whether.')
    also: bool = setting(True, 'Whether too.')
    plain: int = 7  # an option for code: no flag, no parameter

    def rules(self):
        return ['count 9 and mode b do not go together'] \
            if (self.count, self.mode) == (9, 'b') else []


def test_values_are_converted_and_every_refusal_is_given():
    assert Example(ratio=1, name=' x12 ', count=np.int64(4), on=np.bool_(True)) == \
        Example(ratio=1.0, name='x12', count=4, on=True)
    assert isinstance(Example(ratio=1).ratio, float)
    with pytest.raises(SettingsError) as info:
        Example(count=0, ratio=float('nan'), mode='c', name='y', on=1)
    assert str(info.value).split('; ') == [
        'count must be >= 1, got 0', 'ratio must be finite, got nan',
        "mode must be one of ['a', 'b'], got 'c'", "name must be 'x' and digits, got 'y'",
        'on must be a bool, got 1']
    for bad in (True, 2.5, '3'):
        with pytest.raises(SettingsError, match='count must be an integer'):
            Example(count=bad)
    with pytest.raises(SettingsError, match='count 9 and mode b do not go together'):
        Example(count=9, mode='b')
    assert Example().with_values({'count': 5}).count == 5
    with pytest.raises(ValueError, match='invalid default'):
        setting(11, 'Out of its own range.', minimum=0, maximum=10)


def test_flags_are_derived_and_read_back():
    parser = argparse.ArgumentParser()
    add_arguments(parser, Example, defaults={'count': 2}, exclude=('name',))
    flags = {action.option_strings[0] for action in parser._actions if action.option_strings}
    assert flags == {'-h', '--count', '--ratio', '--mode', '--on', '--also'}
    assert from_arguments(Example, parser.parse_args([])) == Example(count=2)
    args = parser.parse_args(['-r', '0.25', '--mode', 'b', '--on', '--no-also'])
    assert from_arguments(Example, args) == Example(count=2, ratio=0.25, mode='b', on=True,
                                                    also=False)
    with pytest.raises(SystemExit):  # choices are argparse's
        parser.parse_args(['--mode', 'z'])
    with pytest.raises(SettingsError, match=r'^--count must be <= 10, got 11; --ratio must'):
        from_arguments(Example, parser.parse_args(['--count', '11', '--ratio', '2']))
    assert [info.name for info in settings_of(Example)] == ['count', 'ratio', 'mode', 'name',
                                                            'on', 'also']


def test_the_node_parameters_are_every_setting_of_every_group_once():
    names = [info.name for _, group in GROUPS for info in settings_of(group)]
    assert names == [info.name for info in PARAMETERS] and len(set(names)) == len(names)
    for info in PARAMETERS:
        assert len(info.description) > 15, info.name
        if info.type in (int, float) and info.name != 'threads':
            assert info.minimum is not None and info.maximum is not None, info.name


def test_one_set_of_backend_rules():
    assert backend_problems('auto', 'cpu', 'fp32') == []
    assert backend_problems('openvino', 'cpu', 'fp16') == []
    assert backend_problems('torch', 'cuda:1', 'fp16') == []
    assert backend_problems('onnxruntime', 'cuda', 'int8') == [
        'precision=int8 needs backend openvino, not onnxruntime (or export with --int8 for an '
        'int8 ONNX model)']
    with pytest.raises(SettingsError, match='precision=bf16 needs backend torch or openvino'):
        BackendSettings(backend='onnxruntime', precision='bf16')
    with pytest.raises(SettingsError, match="schedule must be 'hop' or 'latest'"):
        StreamSettings(schedule='sometimes')

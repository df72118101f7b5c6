"""``action-recognition models``: every model measured at the papers' settings, JSON and table."""

import json

import pytest

from action_recognition import cli
from action_recognition.models import list_models
from action_recognition.models.table import format_table
from action_recognition.models.table import model_rows


@pytest.fixture(scope='module')
def rows():
    return model_rows()


def test_json_lists_every_model_and_the_ablations(capsys):
    assert cli.main(['models', '--json']) == 0
    data = json.loads(capsys.readouterr().out)
    names = {row['name'] for row in data}
    assert set(list_models()) <= names
    assert {'ct_net_r50/c3d', 'ct_net_r50/r2plus1d', 'ct_net_r50/csn', 'ct_net_r50/ct_only',
            'ct_net_r50/ct_pw'} <= names


def test_measured_figures_hold_to_the_independent_counts(rows):
    checked = 0
    for row in rows:
        if row.counted_params_m is not None:
            assert row.params_m == pytest.approx(row.counted_params_m, rel=0.03), row.name
            checked += 1
        if row.counted_gmac is not None:
            assert row.gmac == pytest.approx(row.counted_gmac, rel=0.03), row.name
    assert checked >= 15


def test_table_shows_paper_figures_and_notes(rows):
    table = format_table(rows)
    assert '| eco_lite_add | yes | 16x243x243, 400 classes | 16.33 | 16.3 |' in table
    assert 'no (5D)' in table
    assert 'P3D' in table  # the documented gap to the paper's P3D figures


def test_unknown_model_name_is_refused(capsys):
    assert cli.main(['models', 'no_such_model']) == 2
    assert 'unknown model' in capsys.readouterr().err

"""Fixtures shared by the test modules: small real models, made once per session.

``tiny_model`` and ``tiny_model_stride2`` are checkpoints of ``eco_lite_add_small`` (random
weights with spread logits, labels ``wave``/``walk``/``idle``, 4 frames of 32x32; the second
samples every other frame, so a clip spans 7 frames). Tests that need another model build it
with :func:`fixtures.ros_data.tiny_checkpoint`. ``seeded_single_thread``: torch seeded and on one
thread for the test (tiny tensors, where a second thread only adds synchronisation).
"""

from __future__ import annotations

from fixtures.ros_data import tiny_checkpoint
import pytest
import torch


@pytest.fixture(scope='session')
def tiny_model(tmp_path_factory):
    torch.set_num_threads(1)
    return tiny_checkpoint(tmp_path_factory.mktemp('tiny_model') / 'tiny.pt', num_frames=4)


@pytest.fixture(scope='session')
def tiny_model_stride2(tmp_path_factory):
    torch.set_num_threads(1)
    return tiny_checkpoint(tmp_path_factory.mktemp('tiny_model_stride2') / 'tiny.pt',
                           num_frames=4, frame_stride=2)


@pytest.fixture
def seeded_single_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    yield
    torch.set_num_threads(threads)

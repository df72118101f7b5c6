"""The model-zoo contract, parametrised over every registered model.

Every model takes frames ``[B*T, 3, H, W]`` and returns ``[B, num_classes]`` for any batch and
any H, W >= 112; it exposes ``num_frames`` and ``default_input_size``; every model but the
``*_5d`` reference is 4D-only in its structure and in its forward and backward passes.
"""

import pytest
import torch

from action_recognition.models import create_model
from action_recognition.models import list_models
from action_recognition.models import model_info
from action_recognition.models.analysis import assert_4d_only
from action_recognition.models.analysis import check_4d_only_structure
from action_recognition.models.analysis import RankRecorder

MODELS = list_models()
FRAMES = 4


def build(name, num_classes=5, num_frames=FRAMES):
    torch.manual_seed(0)
    return create_model(name, num_classes=num_classes, num_frames=num_frames)


def test_registry_is_populated_and_names_errors():
    assert len(MODELS) >= 12
    assert any(name.endswith('_5d') for name in MODELS)
    with pytest.raises(KeyError, match='unknown model'):
        create_model('no_such_model', num_classes=2, num_frames=4)
    with pytest.raises(ValueError, match='num_classes'):
        create_model(MODELS[0], num_classes=0, num_frames=4)


@pytest.mark.parametrize('name', MODELS)
def test_contract_shapes_attributes_and_4d_only(name):
    model = build(name)
    assert model.num_frames == FRAMES
    height, width = model.default_input_size
    assert height >= 112 and width >= 112
    # Two clips, a non-square size that is not a multiple of 32.
    x = torch.randn(2 * FRAMES, 3, 112, 136, requires_grad=False)
    info = model_info(name)
    if info.four_d_only:
        recorder = assert_4d_only(model.train(), x, backward=True)
        assert recorder.ops > 10
    else:
        assert name.endswith('_5d')
        assert check_4d_only_structure(model), '5D reference should have 3D layers'
        with RankRecorder() as ranks:
            out = model(x)
        assert ranks.max_rank == 5
    model.eval()
    with torch.no_grad():
        out = model(x)
        again = model(x)
        single = model(x[:FRAMES])
    assert out.shape == (2, 5)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out, again, rtol=0, atol=0)
    # A clip's logits do not depend on the other clips in the batch (eval mode).
    torch.testing.assert_close(single, out[:1], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize('name', MODELS)
def test_gradients_reach_first_and_last_layer(name):
    model = build(name).train()
    x = torch.randn(FRAMES, 3, 112, 112)
    model(x).sum().backward()
    params = [p for p in model.parameters() if p.requires_grad]
    assert params[0].grad is not None and params[0].grad.abs().sum() > 0
    assert params[-1].grad is not None and params[-1].grad.abs().sum() > 0

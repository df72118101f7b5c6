"""The model-zoo contract, parametrised over every registered model.

Every model takes frames ``[B*T, 3, H, W]`` and returns ``[B, num_classes]`` for any batch and
any H, W >= 112; it exposes ``num_frames`` and ``default_input_size``; every model but the
``*_5d`` reference is 4D-only in its structure and in its forward and backward passes. Every
model shares timm's interface (``action_recognition.models.interface``): ``forward`` is
``forward_head(forward_features(x))``, ``pre_logits`` gives the pooled ``[B, num_features]``,
``reset_classifier`` changes the outputs only.
"""

import math

import pytest
import torch
from torch import nn

from action_recognition.models import ClipClassifier
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


# ------------------------------------------------------------------ the shared interface (timm's)


@pytest.mark.parametrize('name', MODELS)
def test_shared_interface_features_head_and_classifier(name):
    model = build(name).eval()
    info = model_info(name)
    assert isinstance(model, ClipClassifier)
    assert (model.num_classes, model.num_frames) == (5, FRAMES)
    assert isinstance(model.num_features, int) and model.num_features > 0
    classifier = model.get_classifier()
    assert isinstance(classifier, nn.Linear)
    assert (classifier.in_features, classifier.out_features) == (model.num_features, 5)
    x = torch.randn(2 * FRAMES, 3, 112, 128)
    with torch.no_grad():
        out = model(x)
        features = model.forward_features(x)
        logits = model.forward_head(features)
        pooled = model.forward_head(features, pre_logits=True)
        if hasattr(model, 'forward_2d'):  # the streaming split means the same (ECO-Lite)
            torch.testing.assert_close(model.forward_3d(model.forward_2d(x)), out, rtol=0,
                                       atol=0)
    torch.testing.assert_close(logits, out, rtol=0, atol=0)
    # The features' shapes are the family's (stated in the docstrings).
    if info.family == 'eco_lite':  # 3D-Net maps [B*T', C, h', w'], T' = ceil(T / 4)
        assert features.dim() == 4
        assert features.shape[:2] == (2 * math.ceil(FRAMES / 4), model.num_features)
    else:  # pooled frame features [B*T, C]
        assert features.shape == (2 * FRAMES, model.num_features)
    # pre_logits: the clips' pooled features, which the classifier maps to the logits (eval).
    assert pooled.shape == (2, model.num_features)
    with torch.no_grad():
        torch.testing.assert_close(classifier(pooled), out, rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match='frames per clip'):
        model.forward_features(x[:FRAMES - 1])


@pytest.mark.parametrize('name', MODELS)
def test_reset_classifier_changes_the_outputs_only_and_keeps_4d_only(name):
    model = build(name)
    info = model_info(name)
    head = {id(p) for p in model.get_classifier().parameters()}
    before = {n: p.detach().clone() for n, p in model.named_parameters() if id(p) not in head}
    model.reset_classifier(3)
    assert model.num_classes == 3
    classifier = model.get_classifier()
    assert (classifier.in_features, classifier.out_features) == (model.num_features, 3)
    assert classifier.weight.dtype == next(iter(before.values())).dtype
    assert torch.count_nonzero(classifier.bias) == 0 and classifier.weight.std() > 0
    after = dict(model.named_parameters())
    for key, value in before.items():  # nothing but the classifier changed
        assert torch.equal(after[key], value), key
    x = torch.randn(2 * FRAMES, 3, 112, 112)
    if info.four_d_only:
        assert check_4d_only_structure(model) == []
        assert_4d_only(model.train(), x)
    else:
        assert check_4d_only_structure(model)
    with torch.no_grad():
        out = model.eval()(x)
        assert out.shape == (2, 3) and torch.isfinite(out).all()
        torch.testing.assert_close(model.forward_head(model.forward_features(x)), out, rtol=0,
                                   atol=0)
    with pytest.raises(ValueError, match='num_classes'):
        model.reset_classifier(0)


@pytest.mark.parametrize('name', ['eco_lite_add_small', 'tsn_r50'])
def test_reset_classifier_keeps_dtype(name):
    model = build(name).to(torch.float64)
    model.reset_classifier(2)
    assert model.get_classifier().weight.dtype == torch.float64
    with torch.no_grad():
        assert model.eval()(torch.randn(FRAMES, 3, 112, 112, dtype=torch.float64)).shape == (1, 2)

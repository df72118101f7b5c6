"""ECO-Lite (paper 000): Table 2 figures, the 4D-only property, exactness of every 4D block
against its Conv3d definition, the 5D -> 4D weight transfer and the Inception-V3 loader."""

import math

import pytest
import torch
from torch import nn
import torch.nn.functional as F

from action_recognition.models import create_model
from action_recognition.models import eco_blocks
from action_recognition.models import eco_lite as E
from action_recognition.models import list_models
from action_recognition.models import model_info
from action_recognition.models.analysis import assert_4d_only
from action_recognition.models.analysis import check_4d_only_structure
from action_recognition.models.analysis import count_macs
from action_recognition.models.analysis import count_params
from action_recognition.models.analysis import RankRecorder
from action_recognition.models.inception import ContrastSymmetricNet2d
from action_recognition.models.inception import InceptionV3Net2d
from action_recognition.models.inception import load_inception_v3_imagenet
from action_recognition.models.inception import SmallNet2d

# shared/papers/README.md: Table 2 of paper 000 (paper -> independently counted), 400 classes,
# 16 frames of 243x243, whole-model parameters (M), 3D-Net GMAC.
README_TABLE2 = {
    'eco_lite_conv3d': (33.7, 33.80, 35.6, 35.61),
    'eco_lite_r2plus1d': (33.7, 33.81, 36.9, 36.84),
    'eco_lite_cat': (32.2, 32.38, 32.7, 32.68),
    'eco_lite_add': (16.3, 16.33, 17.1, 17.03),
    'eco_lite_rank1': (13.7, 13.71, 14.7, 14.80),
}
PAPER_P3D = {  # paper's params (M), GFLOPs
    'eco_lite_p3d_a': (22.5, 19.5),
    'eco_lite_p3d_b': (23.5, 20.9),
    'eco_lite_p3d_c': (22.8, 19.6),
}
FOUR_D_MODELS = [name for name in E.ECO_LITE_MODELS if name != 'eco_lite_conv3d_5d']


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _randomize_bn(model: nn.Module, seed: int = 0) -> None:
    gen = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, (nn.BatchNorm2d, nn.BatchNorm3d)):
            n = m.num_features
            m.running_mean.copy_(torch.rand(n, generator=gen) - 0.5)
            m.running_var.copy_(torch.rand(n, generator=gen) + 0.5)
            m.weight.data.copy_(torch.rand(n, generator=gen) + 0.5)
            m.bias.data.copy_(torch.rand(n, generator=gen) - 0.5)


def _clip_to_frames(clip: torch.Tensor) -> torch.Tensor:
    b, c, t, h, w = clip.shape
    return clip.transpose(1, 2).reshape(b * t, c, h, w)


# --------------------------------------------------------------------------------- registry


def test_every_model_is_registered_with_its_reference():
    names = list_models()
    for name in E.ECO_LITE_MODELS:
        assert name in names
        info = model_info(name)
        assert info.family == 'eco_lite'
        assert info.four_d_only == (name != 'eco_lite_conv3d_5d')
        if name == 'eco_lite_add_small':
            assert info.reference is None
            continue
        ref = info.reference
        assert ref is E.PAPER_REFERENCES[name]
        assert (ref.num_classes, ref.num_frames, ref.input_size) == (400, 16, (243, 243))
        assert ref.mac_scope == 'net3d'
        key = 'eco_lite_conv3d' if name == 'eco_lite_conv3d_5d' else name
        if key in README_TABLE2:
            paper_p, counted_p, paper_g, counted_g = README_TABLE2[key]
            assert (ref.params_m, ref.counted_params_m) == (paper_p, counted_p)
            assert (ref.gmac, ref.counted_gmac) == (paper_g, counted_g)
        else:
            assert (ref.params_m, ref.gmac) == PAPER_P3D[key]
            assert 'P3D' in ref.note


def test_variant_table_keeps_every_builders_options_and_defaults():
    # The keyword arguments and defaults of the builders' signatures before the variant table.
    common = {'dropout': 0.5, 'width_mult': 1.0, 'net2d': 'inception', 'zero_init_last': False}
    proposed = {**common, 'temporal_stride_mode': 'aligned'}
    expected = dict.fromkeys(E.ECO_LITE_MODELS, common)
    expected.update(eco_lite_add=proposed, eco_lite_cat=proposed,
                    eco_lite_add_small={**proposed, 'width_mult': 0.25, 'net2d': 'small'})
    for name in E.ECO_LITE_MODELS:
        assert E.ECO_LITE_VARIANTS[name].default_options() == expected[name], name
        with pytest.raises(TypeError, match='unexpected keyword'):
            create_model(name, num_classes=2, num_frames=2, no_such_option=1)


# --------------------------------------------------------------------------------- Table 2


def _table2_figures(name: str) -> tuple[float, float]:
    """Whole-model params (M) and 3D-Net GMAC at 400 classes, batch 1, 16 x 243 x 243."""
    model = create_model(name, num_classes=400, num_frames=16)
    params = count_params(model)
    # Only the 3D-Net is counted: it sees the 28x28 map that Inception makes of 243x243 frames
    # (checked in test_inception_2d_net_size_and_cost); the small 2D-Net makes the same map
    # from 224x224 frames for a fraction of the time.
    assert InceptionV3Net2d.output_size(243) == SmallNet2d.output_size(224) == 28
    model.net2d = SmallNet2d()
    macs = count_macs(model, torch.randn(16, 3, 224, 224), scope='net3d')
    return params / 1e6, macs / 1e9


@pytest.mark.slow
@pytest.mark.parametrize('name', sorted(README_TABLE2))
def test_params_and_macs_match_readme_counts(name):
    params_m, gmac = _table2_figures(name)
    _, counted_params, _, counted_gmac = README_TABLE2[name]
    assert params_m == pytest.approx(counted_params, rel=0.03)
    assert gmac == pytest.approx(counted_gmac, rel=0.03)


def _p3d_analytic(kind: str) -> tuple[float, float]:
    """P3D figures from the layer formulas (not from the model): params (M), 3D-Net GMAC."""
    params = count_params(InceptionV3Net2d()) + 512 * 400 + 400
    macs = 512 * 400
    frames, size = 16, 28
    cin = 96
    for width, stride in ((128, 1), (128, 1), (256, 2), (256, 1), (512, 2), (512, 1)):
        out_t, out_s = math.ceil(frames / stride), math.ceil(size / stride)
        out_pos = out_t * out_s * out_s
        for ci, s in ((cin, stride), (width, 1)):
            co = width
            if kind == 'b':  # S and T from the input, both at output resolution
                params += 9 * ci * co + 3 * ci * co
                macs += 12 * ci * co * out_pos
            else:  # S at all input frames, inner BN, then T (strided along T)
                params += 9 * ci * co + 3 * co * co + 2 * co
                in_t = frames if s == stride else out_t
                macs += (9 * ci * co + co) * in_t * out_s * out_s + 3 * co * co * out_pos
            params += 2 * co  # the block's BN
            macs += co * out_pos
        if stride > 1 or cin != width:  # projection shortcut + BN
            params += cin * width + 2 * width
            macs += (cin * width + width) * out_pos
        cin, frames, size = width, out_t, out_s
    return params / 1e6, macs / 1e9


@pytest.mark.slow
@pytest.mark.parametrize('name', sorted(PAPER_P3D))
def test_p3d_figures_are_documented_and_below_the_paper(name):
    expected_params, expected_gmac = _p3d_analytic(name[-1])
    params_m, gmac = _table2_figures(name)
    assert params_m == pytest.approx(expected_params, rel=1e-6)
    assert gmac == pytest.approx(expected_gmac, rel=1e-6)
    ref = E.PAPER_REFERENCES[name]
    assert ref.counted_params_m == pytest.approx(expected_params, abs=0.006)
    assert ref.counted_gmac == pytest.approx(expected_gmac, abs=0.006)
    assert params_m < ref.params_m and gmac < ref.gmac
    assert 15 < params_m < 17 and 15 < gmac < 18  # README: about 16 M, 16-17 GMAC


def test_inception_2d_net_size_and_cost():
    net = InceptionV3Net2d()
    out = net.eval()(torch.randn(1, 3, 243, 243))
    assert out.shape == (1, 96, 28, 28)
    assert count_params(net) / 1e6 == pytest.approx(0.78, rel=0.03)
    assert count_macs(net, torch.randn(1, 3, 243, 243)) / 1e9 == pytest.approx(1.35, rel=0.03)
    assert net(torch.randn(1, 3, 112, 130)).shape == (1, 96, 11, net.output_size(130))


# --------------------------------------------------------------------------------- 4D only


def _small_clip(batch: int = 2, frames: int = 4, size: int = 112) -> torch.Tensor:
    return torch.randn(batch * frames, 3, size, size)


@pytest.mark.parametrize('name', FOUR_D_MODELS)
def test_four_d_only_forward_and_backward(name):
    torch.manual_seed(0)
    model = create_model(name, num_classes=7, num_frames=4, width_mult=0.25)
    recorder = assert_4d_only(model, _small_clip(), backward=True)
    assert recorder.max_rank <= 4
    for pname, param in model.named_parameters():
        assert param.grad is not None and torch.isfinite(param.grad).all(), pname
    model.eval()
    x = _small_clip()
    with torch.no_grad():
        first, second = model(x), model(x)
    assert first.shape == (2, 7)
    assert torch.equal(first, second)


@pytest.mark.parametrize('name', ['eco_lite_add', 'eco_lite_cat'])
def test_paper_stride_mode_is_four_d_only(name):
    # 128x128 frames give the small 2D-Net a 16x16 map: even at every strided block.
    model = create_model(name, num_classes=3, num_frames=4, net2d='small', width_mult=0.25,
                         temporal_stride_mode='paper')
    assert assert_4d_only(model, _small_clip(size=128), backward=True).max_rank <= 4


def test_four_d_check_fails_on_the_5d_reference():
    model = create_model('eco_lite_conv3d_5d', num_classes=7, num_frames=4, width_mult=0.25,
                         net2d='small')
    with pytest.raises(AssertionError, match='Conv3d'):
        assert_4d_only(model, _small_clip())
    with RankRecorder() as ranks, torch.no_grad():
        model(_small_clip())
    assert ranks.max_rank == 5 and ranks.violations


# ------------------------------------------------------------ 4D blocks vs Conv3d definitions


def _conv(ci, co, kernel, stride=1, padding=0):
    return nn.Conv3d(ci, co, kernel, stride=stride, padding=padding, bias=False)


def _bn(channels):
    bn = nn.BatchNorm3d(channels)
    _randomize_bn(bn, seed=channels)
    return bn.eval()


CLIP = (2, 4, 5, 9, 8)  # B, C, T, H, W: odd sizes exercise ceil(size / stride)


def _check_unit(unit, reference, stride, cout):
    """``unit`` (4D, weights loaded from ``reference``) equals ``reference`` on 5D clips."""
    torch.manual_seed(1)
    clip = torch.randn(*CLIP)
    unit.eval()
    frames = _clip_to_frames(clip)
    with torch.no_grad():
        expected = reference(clip)
        with RankRecorder() as ranks:
            got = unit(frames, CLIP[2])
    assert ranks.max_rank <= 4
    assert unit.out_frames(CLIP[2]) == expected.shape[2] == math.ceil(CLIP[2] / stride)
    assert expected.shape[1] == cout
    torch.testing.assert_close(got, _clip_to_frames(expected), atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize('stride', [1, 2])
def test_conv3d_unit_equals_conv3d(stride):
    conv = _conv(4, 6, 3, stride, 1)
    unit = eco_blocks.conv3d_unit(4, 6, stride)
    unit.load_state_dict(conv.state_dict())
    _check_unit(_UnitAdapter(unit, stride), conv, stride, 6)


class _UnitAdapter(nn.Module):
    """Gives a bare Conv3dAs4d the ``out_frames``/``forward(x, T)`` of a unit."""

    def __init__(self, conv, stride):
        super().__init__()
        self.conv = conv
        self.stride = stride

    def out_frames(self, num_frames):
        return self.conv.out_frames(num_frames)

    def forward(self, x, num_frames):
        return self.conv(x, num_frames)


@pytest.mark.parametrize('kind', ['r2plus1d', 'p3d_a'])
@pytest.mark.parametrize('stride', [1, 2])
def test_serial_spatial_temporal_equals_conv3d_pair(kind, stride):
    cin, cout = 4, 6
    mid = eco_blocks.r2plus1d_mid_channels(cin, cout) if kind == 'r2plus1d' else cout
    assert mid == (27 * cin * cout) // (9 * cin + 3 * cout) or kind == 'p3d_a'
    spatial = _conv(cin, mid, (1, 3, 3), (1, stride, stride), (0, 1, 1))
    bn = _bn(mid)
    temporal = _conv(mid, cout, (3, 1, 1), (stride, 1, 1), (1, 0, 0))

    def reference(clip):
        return temporal(F.relu(bn(spatial(clip))))

    factory = eco_blocks.r2plus1d_unit if kind == 'r2plus1d' else eco_blocks.p3d_a_unit
    unit = factory(cin, cout, stride)
    unit.spatial.load_state_dict(spatial.state_dict())
    unit.bn.load_state_dict(bn.state_dict())
    unit.temporal.load_state_dict(temporal.state_dict())
    _check_unit(unit, reference, stride, cout)


@pytest.mark.parametrize('stride', [1, 2])
def test_p3d_b_equals_conv3d_sum(stride):
    spatial = _conv(4, 6, (1, 3, 3), stride, (0, 1, 1))
    temporal = _conv(4, 6, (3, 1, 1), stride, (1, 0, 0))
    unit = eco_blocks.P3dB(4, 6, stride)
    unit.spatial.load_state_dict(spatial.state_dict())
    unit.temporal.load_state_dict(temporal.state_dict())
    _check_unit(unit, lambda clip: spatial(clip) + temporal(clip), stride, 6)


@pytest.mark.parametrize('stride', [1, 2])
def test_p3d_c_equals_conv3d_definition(stride):
    spatial = _conv(4, 6, (1, 3, 3), (1, stride, stride), (0, 1, 1))
    bn = _bn(6)
    temporal = _conv(6, 6, (3, 1, 1), (stride, 1, 1), (1, 0, 0))

    def reference(clip):
        h = F.relu(bn(spatial(clip)))
        return h[:, :, ::stride] + temporal(h)

    unit = eco_blocks.P3dC(4, 6, stride)
    unit.spatial.load_state_dict(spatial.state_dict())
    unit.bn.load_state_dict(bn.state_dict())
    unit.temporal.load_state_dict(temporal.state_dict())
    _check_unit(unit, reference, stride, 6)


@pytest.mark.parametrize('stride', [1, 2])
def test_rank1_equals_conv3d_chain(stride):
    conv_h = _conv(4, 6, (1, 3, 1), (1, stride, 1), (0, 1, 0))
    conv_w = _conv(6, 6, (1, 1, 3), (1, 1, stride), (0, 0, 1))
    conv_t = _conv(6, 6, (3, 1, 1), 1, (1, 0, 0))
    pool = _conv(6, 6, 1, (stride, 1, 1))

    def reference(clip):
        y = conv_t(conv_w(conv_h(clip)))
        return pool(y) if stride > 1 else y

    unit = eco_blocks.Rank1(4, 6, stride)
    unit.conv_h.load_state_dict(conv_h.state_dict())
    unit.conv_w.load_state_dict(conv_w.state_dict())
    unit.conv_t.load_state_dict(conv_t.state_dict())
    if stride > 1:
        unit.pool.load_state_dict(pool.state_dict())
    else:
        assert unit.pool is None
    _check_unit(unit, reference, stride, 6)


def _proposed_reference(cin, branch, stride):
    spatial = _conv(cin, branch, (1, 3, 3), (1, stride, stride), (0, 1, 1))
    pool = _conv(branch, branch, 1, (stride, 1, 1))
    temporal = _conv(cin, branch, (3, 1, 1), stride, (1, 0, 0))
    return spatial, pool, temporal


def _load_proposed(unit, spatial, pool, temporal, stride):
    unit.spatial.load_state_dict(spatial.state_dict())
    unit.temporal.load_state_dict(temporal.state_dict())
    if stride > 1:
        unit.spatial_pool.load_state_dict(pool.state_dict())
    else:
        assert unit.spatial_pool is None


@pytest.mark.parametrize('combine', ['add', 'cat'])
@pytest.mark.parametrize('stride', [1, 2])
def test_proposed_aligned_equals_5d_definition(combine, stride):
    cout = 6
    branch = cout if combine == 'add' else cout // 2
    spatial, pool, temporal = _proposed_reference(4, branch, stride)

    def reference(clip):
        s = spatial(clip)
        if stride > 1:
            s = pool(s)
        t = temporal(clip)
        return s + t if combine == 'add' else torch.cat([s, t], dim=1)

    unit = eco_blocks.ProposedConv(4, cout, stride, combine=combine)
    _load_proposed(unit, spatial, pool, temporal, stride)
    _check_unit(unit, reference, stride, cout)


def test_proposed_paper_mode_strides_the_flattened_axis():
    torch.manual_seed(2)
    cin, cout, stride = 4, 6, 2
    b, t, h, w = 2, 5, 8, 6
    spatial, pool, temporal = _proposed_reference(cin, cout, stride)
    paper = eco_blocks.ProposedConv(cin, cout, stride, combine='add', mode='paper').eval()
    aligned = eco_blocks.ProposedConv(cin, cout, stride, combine='add').eval()
    _load_proposed(paper, spatial, pool, temporal, stride)
    _load_proposed(aligned, spatial, pool, temporal, stride)
    clip = torch.randn(b, cin, t, h, w)
    with torch.no_grad():
        # The paper: (3, 1) conv with stride (s, s^2) on [B, C, T, X*Y], relabelled X/s x Y/s.
        flat = F.conv2d(clip.reshape(b, cin, t, h * w), temporal.weight.squeeze(-1),
                        stride=(stride, stride * stride), padding=(1, 0))
        expected_t = flat.reshape(b, cout, 3, h // 2, w // 2)
        expected = pool(spatial(clip)) + expected_t
        got = paper(_clip_to_frames(clip), t)
        torch.testing.assert_close(got, _clip_to_frames(expected), atol=1e-5, rtol=1e-4)
        # Not the same places as the spatial branch: differs from the aligned version.
        assert not torch.allclose(got, aligned(_clip_to_frames(clip), t), atol=1e-3)
        # Same parameters and stride 1 behaves identically.
        assert count_params(paper) == count_params(aligned)
        same_paper = eco_blocks.ProposedConv(cin, cout, 1, combine='cat', mode='paper').eval()
        same_aligned = eco_blocks.ProposedConv(cin, cout, 1, combine='cat').eval()
        same_aligned.load_state_dict(same_paper.state_dict())
        frames = _clip_to_frames(clip)
        torch.testing.assert_close(same_paper(frames, t), same_aligned(frames, t))
        with pytest.raises(ValueError, match='paper'):
            paper(torch.randn(b * t, cin, 7, 7), t)


@pytest.mark.parametrize('pattern_4d', [False, True])
def test_shortcut_equals_conv3d_definition(pattern_4d):
    stride = 2
    bn = _bn(6)
    if pattern_4d:
        conv = _conv(4, 6, 1, (1, stride, stride))
        pool = _conv(6, 6, 1, (stride, 1, 1))

        def reference(clip):
            return bn(pool(conv(clip)))
    else:
        conv = _conv(4, 6, 1, stride)

        def reference(clip):
            return bn(conv(clip))

    shortcut = eco_blocks.Shortcut(4, 6, stride, pattern_4d=pattern_4d)
    shortcut.conv.load_state_dict(conv.state_dict())
    shortcut.bn.load_state_dict(bn.state_dict())
    if pattern_4d:
        shortcut.pool.load_state_dict(pool.state_dict())
    else:
        assert shortcut.pool is None
    _check_unit(_UnitAdapter(shortcut, stride), reference, stride, 6)


# ------------------------------------------------------------------- 5D -> 4D weight transfer


def test_conv3d_5d_state_dict_loads_into_4d_model():
    torch.manual_seed(3)
    options = {'num_classes': 5, 'num_frames': 4, 'width_mult': 0.5}
    ref = create_model('eco_lite_conv3d_5d', **options)
    _randomize_bn(ref)
    model = create_model('eco_lite_conv3d', **options)
    model.load_state_dict(ref.state_dict())  # strict: every name lines up
    assert not check_4d_only_structure(model)
    assert all(p.dim() <= 4 for p in model.parameters())
    ref.eval()
    model.eval()
    x = _small_clip()
    with torch.no_grad():
        expected, got = ref(x), model(x)
    assert expected.abs().max() > 1e-3
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4)


# ------------------------------------------------------------------ streaming API, options


@pytest.mark.parametrize('net2d', ['inception', 'small', 'small_sym'])
def test_forward_is_forward_3d_of_forward_2d_and_frames_are_independent(net2d):
    torch.manual_seed(4)
    model = create_model('eco_lite_add', num_classes=5, num_frames=3, net2d=net2d,
                         width_mult=0.25).eval()
    x = _small_clip(batch=2, frames=3)
    with torch.no_grad():
        features = model.forward_2d(x)
        assert features.shape[:2] == (6, 96)
        torch.testing.assert_close(model(x), model.forward_3d(features))
        single = torch.cat([model.forward_2d(x[i:i + 1]) for i in range(6)])
        torch.testing.assert_close(single, features, atol=1e-5, rtol=1e-4)
        order = torch.tensor([5, 0, 3, 1, 4, 2])
        torch.testing.assert_close(model.forward_2d(x[order]), features[order], atol=1e-5,
                                   rtol=1e-4)


def test_model_attributes_and_options():
    model = create_model('eco_lite_cat', num_classes=9, num_frames=2, width_mult=0.5,
                         dropout=0.3)
    assert (model.num_frames, model.num_classes) == (2, 9)
    assert model.default_input_size == (243, 243)
    assert model.net3d.fc.in_features == 512  # 1024 * 0.5: two branches of 256
    assert model.net3d.dropout.p == 0.3
    model.reset_classifier(4)
    assert model.num_classes == 4
    with torch.no_grad():
        assert model.eval()(torch.randn(2, 3, 112, 112)).shape == (1, 4)
    small = create_model('eco_lite_add_small', num_classes=4, num_frames=16)
    assert isinstance(small.net2d, SmallNet2d)
    assert small.default_input_size == (112, 112)
    assert small.net3d.fc.in_features == 128
    with pytest.raises(ValueError, match='net2d'):
        create_model('eco_lite_add', num_classes=2, num_frames=2, net2d='resnet')
    with pytest.raises(ValueError, match='temporal_stride_mode'):
        create_model('eco_lite_cat', num_classes=2, num_frames=2, temporal_stride_mode='x')
    with pytest.raises(TypeError):
        create_model('eco_lite_conv3d', num_classes=2, num_frames=2, temporal_stride_mode='x')
    with pytest.raises(ValueError, match='frames per clip'):
        small(torch.randn(5, 3, 112, 112))
    with pytest.raises(ValueError, match='3D-Net expects'):
        small.forward_3d(torch.randn(16, 64, 14, 14))


def test_any_clip_length_and_frame_size():
    model = create_model('eco_lite_add_small', num_classes=3, num_frames=1).eval()
    with torch.no_grad():
        assert model(torch.randn(2, 3, 112, 150)).shape == (2, 3)
    model = create_model('eco_lite_rank1', num_classes=3, num_frames=5, net2d='small',
                         width_mult=0.25).eval()
    with torch.no_grad():
        assert model(torch.randn(10, 3, 120, 113)).shape == (2, 3)


def test_zero_init_last_makes_blocks_start_as_their_shortcut():
    model = create_model('eco_lite_add', num_classes=3, num_frames=2, zero_init_last=True,
                         net2d='small', width_mult=0.25)
    blocks = model.net3d.blocks()
    assert len(blocks) == 6
    assert all(torch.count_nonzero(block.bn2.weight) == 0 for block in blocks)
    default = create_model('eco_lite_add', num_classes=3, num_frames=2, net2d='small')
    assert all(torch.all(block.bn2.weight == 1) for block in default.net3d.blocks())


def test_small_model_is_light():
    model = create_model('eco_lite_add_small', num_classes=400, num_frames=16)
    macs = count_macs(model, torch.randn(16, 3, 112, 112))
    net2d = count_macs(model.net2d, torch.randn(1, 3, 112, 112))
    assert net2d < 10e6  # a few MMAC per frame
    assert macs < 1e9  # well under the 17 GMAC of the paper's Proposed-Add 3D-Net alone


# ------------------------------------------------------------------ Inception-V3 loader


def _torchvision_state_dict(net: InceptionV3Net2d) -> dict[str, torch.Tensor]:
    """A state dict in torchvision's inception_v3 layout (ported weights: no batch counters)."""
    state = {k: v.clone() for k, v in net.state_dict().items()
             if isinstance(v, torch.Tensor) and not k.endswith('num_batches_tracked')}
    state['Mixed_5d.branch1x1.conv.weight'] = torch.randn(64, 288, 1, 1)
    state['Mixed_5d.branch3x3dbl_3.conv.weight'] = torch.randn(96, 96, 3, 3)
    state['Mixed_5d.branch_pool.bn.running_var'] = torch.ones(64)
    state['Mixed_6a.branch3x3.conv.weight'] = torch.randn(384, 288, 3, 3)
    state['AuxLogits.fc.weight'] = torch.randn(1000, 768)
    state['fc.weight'] = torch.randn(1000, 2048)
    state['fc.bias'] = torch.randn(1000)
    return state


def test_inception_names_follow_torchvision():
    state = InceptionV3Net2d().state_dict()
    assert state['Conv2d_1a_3x3.conv.weight'].shape == (32, 3, 3, 3)
    assert state['Conv2d_4a_3x3.conv.weight'].shape == (192, 80, 3, 3)
    assert state['Mixed_5b.branch_pool.conv.weight'].shape == (32, 192, 1, 1)
    assert state['Mixed_5c.branch5x5_2.conv.weight'].shape == (64, 48, 5, 5)
    assert state['Mixed_5d.branch3x3dbl_1.conv.weight'].shape == (64, 288, 1, 1)
    assert state['Mixed_5d.branch3x3dbl_2.conv.weight'].shape == (96, 64, 3, 3)
    assert not any(k.startswith('Mixed_5d.branch1x1') for k in state)


def test_inception_loader_loads_torchvision_layout(tmp_path):
    torch.manual_seed(5)
    source = InceptionV3Net2d()
    _randomize_bn(source)
    path = tmp_path / 'inception_v3_google.pth'
    torch.save(_torchvision_state_dict(source), path)
    model = create_model('eco_lite_add', num_classes=3, num_frames=2)
    assert not model.net2d.transform_input
    report = load_inception_v3_imagenet(model, path)
    assert not report.missing and not report.unexpected
    tensors = {k: v for k, v in source.state_dict().items()
               if isinstance(v, torch.Tensor) and not k.endswith('num_batches_tracked')}
    assert sorted(report.loaded) == sorted(tensors)
    assert 'fc.weight' in report.ignored and 'Mixed_6a.branch3x3.conv.weight' in report.ignored
    assert model.net2d.transform_input
    for key, value in tensors.items():
        assert torch.equal(model.net2d.state_dict()[key], value), key
    # The transform_input flag travels with the model's own state dict (checkpoints).
    restored = create_model('eco_lite_add', num_classes=3, num_frames=2)
    restored.load_state_dict(model.state_dict())
    assert restored.net2d.transform_input
    # The DataParallel prefix and a checkpoint wrapper are accepted too.
    wrapped = {'state_dict': {'module.' + k: v for k, v in
                              _torchvision_state_dict(source).items()}}
    assert load_inception_v3_imagenet(InceptionV3Net2d(), wrapped).loaded == report.loaded


def test_inception_loader_refuses_wrong_layouts(tmp_path):
    net = InceptionV3Net2d()
    before = {k: v.clone() for k, v in net.state_dict().items() if isinstance(v, torch.Tensor)}
    wrong = _torchvision_state_dict(InceptionV3Net2d())
    wrong['Conv2d_1a_3x3.conv.weight'] = torch.randn(32, 3, 5, 5)
    with pytest.raises(ValueError, match=r'Conv2d_1a_3x3\.conv\.weight: expected'):
        load_inception_v3_imagenet(net, wrong)
    for key, value in before.items():
        assert torch.equal(net.state_dict()[key], value), key  # untouched
    assert not net.transform_input
    resnet = {'conv1.weight': torch.randn(64, 3, 7, 7), 'layer1.0.conv1.weight':
              torch.randn(64, 64, 3, 3)}
    with pytest.raises(ValueError, match='not a torchvision Inception-V3'):
        load_inception_v3_imagenet(net, resnet)
    partial = _torchvision_state_dict(InceptionV3Net2d())
    del partial['Mixed_5c.branch1x1.conv.weight']
    partial['head.weight'] = torch.randn(3)
    with pytest.raises(ValueError, match=r'Mixed_5c\.branch1x1\.conv\.weight'):
        load_inception_v3_imagenet(net, partial)
    report = load_inception_v3_imagenet(net, partial, strict=False)
    assert report.missing == ['Mixed_5c.branch1x1.conv.weight']
    assert report.unexpected == ['head.weight']
    with pytest.raises(FileNotFoundError, match='never downloaded'):
        load_inception_v3_imagenet(net, tmp_path / 'missing.pth')
    with pytest.raises(TypeError, match='InceptionV3Net2d'):
        load_inception_v3_imagenet(SmallNet2d(), partial)


def test_transform_input_matches_torchvision_rescaling():
    torch.manual_seed(6)
    net = InceptionV3Net2d().eval()
    x = torch.randn(2, 3, 75, 75)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    with torch.no_grad():
        expected = net((x * std + mean - 0.5) / 0.5)
        net.transform_input = True
        torch.testing.assert_close(net(x), expected, atol=1e-5, rtol=1e-4)
    with pytest.raises(ValueError, match='at least 75x75'):
        net(torch.randn(1, 3, 60, 80))


# ------------------------------------------------------------------ contrast-symmetric 2D-Net


def test_contrast_symmetric_net2d_ignores_contrast_and_polarity_but_not_content():
    torch.manual_seed(7)
    model = create_model('eco_lite_add_small', num_classes=3, num_frames=4, net2d='small_sym',
                         width_mult=0.125).eval()
    assert isinstance(model.net2d, ContrastSymmetricNet2d)
    assert isinstance(model.net2d.net, SmallNet2d)
    assert model.net2d.output_size(64) == SmallNet2d.output_size(64) == 8
    x = torch.randn(8, 3, 64, 64)
    with torch.no_grad():
        features = model.forward_2d(x)
        # The negative frame gives exactly the same features (same two terms, swapped).
        torch.testing.assert_close(model.forward_2d(-x), features, atol=1e-5, rtol=1e-5)
        # An offset and a contrast change per frame and channel only move eps's share.
        scaled = x * torch.tensor([3.0, 0.5, 2.0]).view(1, 3, 1, 1) + 0.7
        torch.testing.assert_close(model.forward_2d(scaled), features, atol=5e-3, rtol=5e-2)
        # Not a constant: other frames give other features; a flat frame gives finite ones.
        assert (model.forward_2d(x.roll(1, dims=3)) - features).abs().max() > 1e-2
        flat = model.forward_2d(torch.full((1, 3, 64, 64), 0.3))
        assert torch.isfinite(flat).all()
        # Features are net(z) + net(-z) of the standardised frame.
        z = model.net2d.standardise(x)
        torch.testing.assert_close(z.mean(dim=(2, 3)), torch.zeros(8, 3), atol=1e-5, rtol=0)
        torch.testing.assert_close(features, model.net2d.net(z) + model.net2d.net(-z))
    recorder = assert_4d_only(model, torch.randn(8, 3, 64, 64), backward=True)
    assert recorder.max_rank <= 4
    with pytest.raises(ValueError, match='eps'):
        ContrastSymmetricNet2d(SmallNet2d(), eps=0.0)
    with pytest.raises(ValueError, match='frames'):
        model.net2d(torch.randn(2, 1, 64, 64))

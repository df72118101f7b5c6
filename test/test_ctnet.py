"""CT-Net family (paper 004): figures, 4D-only property, 5D equivalence, ImageNet loading.

- Parameters and MACs at the paper's settings (8 frames, 256x256, 174 classes, batch 1, whole
  model) against ``shared/papers/README.md``. MACs are counted on the ``meta`` device (shapes
  only, no arithmetic); a test shows that this count equals the count of a real CPU run.
- Every block equals a 5D definition written here with ``F.conv3d``/``nn.Conv3d``.
"""

import math

from nets3d import randomize_batch_norm
import pytest
import torch
from torch import nn
import torch.nn.functional as F

from action_recognition.models import ct_blocks
from action_recognition.models import ctnet
from action_recognition.models.analysis import assert_4d_only
from action_recognition.models.analysis import check_4d_only_structure
from action_recognition.models.analysis import count_macs
from action_recognition.models.analysis import count_params
from action_recognition.models.resnet import load_resnet_imagenet

BUILDERS = {'tsn_r50': ctnet.tsn_r50, 'ct_net_r50': ctnet.ct_net_r50,
            'ct_net_r101': ctnet.ct_net_r101}
# name -> (builder, options, reference)
FIGURE_CASES = {
    'tsn_r50': (ctnet.tsn_r50, {}, ctnet.TSN_R50_REFERENCE),
    'ct_net_r50': (ctnet.ct_net_r50, {}, ctnet.CT_NET_R50_REFERENCE),
    **{name: (ctnet.ct_net_r50, options, reference)
       for name, (options, reference) in ctnet.ABLATION_REFERENCES.items()},
}


@pytest.fixture(autouse=True, scope='module')
def one_thread():
    # These tests are many small ops: one thread is faster than two on a shared 2-core machine.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def frames_to_clip(x, frames):
    """``[B*T, C, H, W] -> [B, C, T, H, W]`` (5D, test reference side only)."""
    return x.reshape(-1, frames, *x.shape[1:]).permute(0, 2, 1, 3, 4)


def clip_to_frames(x):
    return x.permute(0, 2, 1, 3, 4).reshape(-1, x.shape[1], *x.shape[3:])


def bn_elements_on_meta(model, x):
    """Elements normalised by BatchNorm in ``model(x)`` (meta device)."""
    total = []
    hooks = [m.register_forward_hook(lambda mod, inp, out: total.append(out.numel()))
             for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    with torch.no_grad():
        model.eval()(x)
    for hook in hooks:
        hook.remove()
    return sum(total)


# ---------------------------------------------------------------------------------------------
# Figures


def test_channel_split_is_the_authors_power_of_two_split():
    assert [ct_blocks.channel_split(c) for c in (64, 128, 256, 512)] == [
        (8, 8), (8, 16), (16, 16), (16, 32)]
    for c in (64, 128, 256, 512, 1024, 32):
        c1, c2 = ct_blocks.channel_split(c)
        assert c1 * c2 == c and c1 == 2 ** math.floor(math.log2(c) / 2)
    with pytest.raises(ValueError, match='power of two'):
        ct_blocks.channel_split(96)


@pytest.mark.parametrize('name', list(FIGURE_CASES))
def test_params_and_macs_match_the_counted_figures(name):
    builder, options, reference = FIGURE_CASES[name]
    assert (reference.num_frames, reference.input_size, reference.num_classes) == (
        8, (256, 256), 174)
    assert reference.mac_scope == ''
    assert reference.options == options
    with torch.device('meta'):
        model = builder(num_classes=174, num_frames=8, **options)
    x = torch.empty(8, 3, 256, 256, device='meta')  # batch 1
    params_m = count_params(model) / 1e6
    gmac = count_macs(model, x) / 1e9
    assert params_m == pytest.approx(reference.counted_params_m, rel=0.03)
    assert gmac == pytest.approx(reference.counted_gmac, rel=0.03)
    if reference.params_m is not None:
        assert params_m == pytest.approx(reference.params_m, rel=0.03)
    assert gmac == pytest.approx(reference.gmac, rel=0.03)
    # Tighter: the README gives 2 decimals and counts 2 MACs per BN element (scale and shift)
    # where count_macs counts 1; with that, the architecture matches it to 0.01 (M, GMAC).
    assert abs(params_m - reference.counted_params_m) <= 0.01
    gmac_bn2 = gmac + bn_elements_on_meta(model, x) / 1e9
    assert abs(gmac_bn2 - reference.counted_gmac) <= 0.01


def test_meta_device_mac_count_equals_a_real_count():
    torch.manual_seed(0)
    for options in ({}, {'block': 'csn'}):
        model = ctnet.ct_net_r50(num_classes=7, num_frames=2, **options)
        real = count_macs(model, torch.randn(2, 3, 112, 112))
        meta = count_macs(model.to('meta'), torch.empty(2, 3, 112, 112, device='meta'))
        assert real == meta > 0


def test_replaced_blocks_and_module_structure():
    model = ctnet.ct_net_r50(num_classes=3, num_frames=4)
    replaced = [name for name, m in model.named_modules()
                if isinstance(m, ct_blocks.VideoBottleneck)]
    assert replaced == ['layer1.1', 'layer2.1', 'layer2.3', 'layer3.1', 'layer3.3', 'layer3.5',
                        'layer4.1']
    module = model.layer2.get_submodule('1').st
    assert isinstance(module, ct_blocks.CTModule) and module.split == (8, 16)
    assert module.sub1.spatial.groups == 8 and module.sub2.spatial.groups == 16
    assert isinstance(module.pointwise, nn.Sequential)
    assert isinstance(module.sub1.spatial_excitation, ct_blocks.SpatialExcitation)
    plain = ctnet.ct_net_r50(num_classes=3, num_frames=4, pointwise=False, excitation=False)
    bare = plain.layer2.get_submodule('1').st
    assert isinstance(bare.pointwise, nn.Identity)
    assert isinstance(bare.sub2.channel_excitation, nn.Identity)
    r101 = ctnet.ct_net_r101(num_classes=3, num_frames=4)
    assert sum(isinstance(m, ct_blocks.VideoBottleneck) for m in r101.modules()) == 15
    tsn = ctnet.tsn_r50(num_classes=3, num_frames=4)
    assert not any(isinstance(m, ct_blocks.VideoBottleneck) for m in tsn.modules())
    assert tsn.default_input_size == (224, 224) and tsn.num_classes == 3


def test_bad_options_are_refused():
    with pytest.raises(ValueError, match='block must be one of'):
        ctnet.ct_net_r50(num_classes=3, num_frames=4, block='p3d')
    with pytest.raises(ValueError, match="block='ct' only"):
        ctnet.ct_net_r50(num_classes=3, num_frames=4, block='c3d', pointwise=True)
    with pytest.raises(TypeError, match='unknown CT-Net options'):
        ctnet.ct_net_r50(num_classes=3, num_frames=4, blocks='ct')
    with pytest.raises(TypeError, match='unknown TSN options'):
        ctnet.tsn_r50(num_classes=3, num_frames=4, block='c3d')
    with pytest.raises(ValueError, match='strided'):
        ctnet.CTNet(num_classes=3, num_frames=4, replaced=[(1, 0)])
    with pytest.raises(ValueError, match='no bottleneck'):
        ctnet.CTNet(num_classes=3, num_frames=4, replaced=[(0, 3)])
    model = ctnet.ct_net_r50(num_classes=3, num_frames=4)
    with pytest.raises(ValueError, match='multiple of 4 frames'):
        model(torch.randn(6, 3, 112, 112))


# ---------------------------------------------------------------------------------------------
# 4D-only, forward and backward


ALL_VARIANTS = [('tsn_r50', {}, 4), ('ct_net_r50', {}, 4), ('ct_net_r101', {}, 2)] + [
    ('ct_net_r50', options, 4) for options, _ in ctnet.ABLATION_REFERENCES.values()]


@pytest.mark.parametrize('name,options,frames', ALL_VARIANTS,
                         ids=[f'{n}-{"-".join(map(str, o.values())) or "default"}'
                              for n, o, _ in ALL_VARIANTS])
def test_4d_only_forward_and_backward(name, options, frames):
    torch.manual_seed(0)
    model = BUILDERS[name](num_classes=5, num_frames=frames, **options).train()
    assert check_4d_only_structure(model) == []
    x = torch.randn(frames, 3, 112, 112)
    recorder = assert_4d_only(model, x, backward=True)
    assert recorder.max_rank == 4
    video_params = [p for n, p in model.named_parameters() if '.st.' in n]
    assert (name == 'tsn_r50') == (not video_params)
    for param in video_params:
        assert param.grad is not None and torch.isfinite(param.grad).all()
    if video_params:
        assert sum(p.grad.abs().sum() for p in video_params) > 0
    assert model.conv1.weight.grad is not None and model.conv1.weight.grad.abs().sum() > 0


@pytest.mark.parametrize('name', ['tsn_r50', 'ct_net_r50', 'ct_net_r101'])
def test_eval_output_is_deterministic_per_clip(name):
    torch.manual_seed(0)
    frames = 2
    model = BUILDERS[name](num_classes=6, num_frames=frames).eval()
    randomize_batch_norm(model)
    x = torch.randn(2 * frames, 3, 112, 128)
    with torch.no_grad():
        out = model(x)
        again = model(x)
        second = model(x[frames:])
    assert out.shape == (2, 6) and torch.isfinite(out).all()
    torch.testing.assert_close(out, again, rtol=0, atol=0)
    # Clips do not leak into each other through the temporal ops.
    torch.testing.assert_close(second, out[1:], rtol=1e-4, atol=1e-5)


def test_tsn_consensus_is_order_free_and_ct_net_is_not():
    torch.manual_seed(0)
    x = torch.randn(4, 3, 112, 112)
    reverse = x.flip(0)
    for builder, order_free in ((ctnet.tsn_r50, True), (ctnet.ct_net_r50, False)):
        model = builder(num_classes=4, num_frames=4).eval()
        randomize_batch_norm(model)
        with torch.no_grad():
            nn.init.normal_(model.fc.weight, 0, 0.1)
            out, out_reversed = model(x), model(reverse)
            frame_logits = model.fc(model.forward_features(x))
        torch.testing.assert_close(out, frame_logits.mean(0, keepdim=True), rtol=1e-5,
                                   atol=1e-6)
        assert torch.allclose(out, out_reversed, rtol=1e-4, atol=1e-5) == order_free


# ---------------------------------------------------------------------------------------------
# Equivalence with 5D definitions (stride 1)


def bn5(x, bn):
    return F.batch_norm(x, bn.running_mean, bn.running_var, bn.weight, bn.bias,
                        training=bn.training, eps=bn.eps)


def reference_sub_operation(x, sub, groups, excitation):
    """A CT sub-operation with 5D tensors and ``F.conv3d``: ``[B, C, T, H, W]``."""
    channels = x.shape[1]
    spatial_w = sub.spatial.weight.unsqueeze(2)  # [C, C/g, 1, 3, 3]
    temporal_w = sub.temporal.weight.reshape(channels, channels // groups, 3, 1, 1)
    s = F.relu(bn5(F.conv3d(x, spatial_w, padding=(0, 1, 1), groups=groups), sub.spatial_bn))
    t = F.relu(bn5(F.conv3d(x, temporal_w, padding=(1, 0, 0), groups=groups), sub.temporal_bn))
    if not excitation:
        return s + t
    se, te, ce = sub.spatial_excitation, sub.temporal_excitation, sub.channel_excitation
    pooled = F.avg_pool3d(s, (s.shape[2], 1, 1))  # [B, C, 1, H, W]
    a = F.relu(bn5(F.conv3d(pooled, se.fc1.weight.unsqueeze(2), padding=(0, 1, 1),
                            groups=groups), se.bn))
    s = s * torch.sigmoid(F.conv3d(a, se.fc2.weight.unsqueeze(2), padding=(0, 1, 1),
                                   groups=groups))
    pooled = F.avg_pool3d(t, (1, t.shape[3], t.shape[4]))  # [B, C, T, 1, 1]
    hidden = channels // 4
    w1 = te.fc1.weight.reshape(hidden, channels // groups, 3, 1, 1)
    w2 = te.fc2.weight.reshape(channels, hidden // groups, 3, 1, 1)
    a = F.relu(bn5(F.conv3d(pooled, w1, padding=(1, 0, 0), groups=groups), te.bn))
    t = t * torch.sigmoid(F.conv3d(a, w2, padding=(1, 0, 0), groups=groups))
    r = s + t
    pooled = F.avg_pool3d(r, (1, r.shape[3], r.shape[4]))
    a = F.relu(bn5(F.conv3d(pooled, ce.fc1.weight.unsqueeze(2), groups=groups), ce.bn))
    return r * torch.sigmoid(F.conv3d(a, ce.fc2.weight.unsqueeze(2), groups=groups))


def reference_ct_module(x, module, pointwise, excitation):
    """The CT-Module with 5D tensors: the channel axis viewed as ``[C1, C2]`` (6-D view)."""
    batch, _, frames, height, width = x.shape
    c1, c2 = module.split
    out = reference_sub_operation(x, module.sub1, c1, excitation)
    if pointwise:
        conv, bn = module.pointwise[0], module.pointwise[1]
        out = F.relu(bn5(F.conv3d(out, conv.weight.unsqueeze(2)), bn))
    out = out.reshape(batch, c1, c2, frames, height, width).transpose(1, 2)
    out = reference_sub_operation(out.reshape(x.shape), module.sub2, c2, excitation)
    out = out.reshape(batch, c2, c1, frames, height, width).transpose(1, 2)
    return out.reshape(x.shape)


def dense_block_weight(grouped, c1, c2, sub):
    """The ``[C, C, ...]`` dense weight of a sub-operation conv: channel ``c = i*C2 + j``;
    sub-operation 1 mixes only channels with equal ``i``, sub-operation 2 only equal ``j``."""
    channels = c1 * c2
    dense = torch.zeros(channels, channels, *grouped.shape[2:])
    for out_c in range(channels):
        io, jo = divmod(out_c, c2)
        for in_c in range(channels):
            ii, ji = divmod(in_c, c2)
            if sub == 1 and io == ii:
                dense[out_c, in_c] = grouped[out_c, ji]
            elif sub == 2 and jo == ji:
                dense[out_c, in_c] = grouped[jo * c1 + io, ii]
    return dense


@pytest.mark.parametrize('channels', [32, 128])
def test_sub_operation_convs_equal_block_structured_conv3d(channels):
    torch.manual_seed(0)
    frames = 4
    module = ct_blocks.CTModule(channels, frames)
    c1, c2 = module.split
    assert c1 != c2 or channels == 256
    x = torch.randn(2 * frames, channels, 5, 6)
    clip = frames_to_clip(x, frames)
    for index, sub in ((1, module.sub1), (2, module.sub2)):
        def run(conv, inp, index=index):
            if index == 1:
                return conv(inp)
            return module.from_sub2(conv(module.to_sub2(inp)))

        spatial = dense_block_weight(sub.spatial.weight.detach(), c1, c2, index).unsqueeze(2)
        temporal_grouped = sub.temporal.weight.detach().reshape(channels, -1, 3)
        temporal = dense_block_weight(temporal_grouped, c1, c2, index)[..., None, None]
        with torch.no_grad():
            got_s = run(sub.spatial, x)
            got_t = run(lambda inp, sub=sub: sub.temporal(inp, frames), x)
        want_s = F.conv3d(clip, spatial, padding=(0, 1, 1))
        want_t = F.conv3d(clip, temporal, padding=(1, 0, 0))
        torch.testing.assert_close(got_s, clip_to_frames(want_s), rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(got_t, clip_to_frames(want_t), rtol=1e-4, atol=1e-5)
        # Block structure: each output channel sees C2 (sub 1) or C1 (sub 2) input channels.
        fan_in = (spatial.flatten(2).abs().sum(2) > 0).sum(1)
        assert (fan_in == (c2 if index == 1 else c1)).all()


@pytest.mark.parametrize('pointwise,excitation', [(True, True), (False, False), (True, False)])
@pytest.mark.parametrize('training', [False, True])
def test_ct_module_equals_5d_reference(pointwise, excitation, training):
    torch.manual_seed(1)
    frames, channels = 4, 32
    module = ct_blocks.CTModule(channels, frames, pointwise=pointwise, excitation=excitation)
    randomize_batch_norm(module)
    module.train(training)
    x = torch.randn(2 * frames, channels, 5, 6)
    with torch.no_grad():
        # Reference first: in training mode the module updates its running statistics.
        want = reference_ct_module(frames_to_clip(x, frames), module, pointwise, excitation)
        got = module(x)
    torch.testing.assert_close(got, clip_to_frames(want), rtol=1e-4, atol=1e-5)


def make_5d_twin(block, channels):
    """An ``nn.Conv3d``/``nn.BatchNorm3d`` stack equal to ``block``, weights copied."""
    if isinstance(block, ct_blocks.C3DModule):
        conv = nn.Conv3d(channels, channels, 3, padding=1, bias=False)
        conv.weight.data.copy_(block.conv.weight.reshape(conv.weight.shape))
        layers = [conv, nn.BatchNorm3d(channels), nn.ReLU()]
        bns = [block.bn]
    elif isinstance(block, ct_blocks.R2Plus1DModule):
        spatial = nn.Conv3d(channels, channels, (1, 3, 3), padding=(0, 1, 1), bias=False)
        spatial.weight.data.copy_(block.spatial.weight.unsqueeze(2))
        temporal = nn.Conv3d(channels, channels, (3, 1, 1), padding=(1, 0, 0), bias=False)
        temporal.weight.data.copy_(block.temporal.weight.reshape(temporal.weight.shape))
        layers = [spatial, nn.BatchNorm3d(channels), nn.ReLU(), temporal,
                  nn.BatchNorm3d(channels), nn.ReLU()]
        bns = [block.spatial_bn, block.temporal_bn]
    else:
        point = nn.Conv3d(channels, channels, 1, bias=False)
        point.weight.data.copy_(block.pointwise.weight.unsqueeze(2))
        depth = nn.Conv3d(channels, channels, 3, padding=1, groups=channels, bias=False)
        depth.weight.data.copy_(block.depthwise.weight.reshape(depth.weight.shape))
        layers = [point, nn.BatchNorm3d(channels), nn.ReLU(), depth, nn.BatchNorm3d(channels),
                  nn.ReLU()]
        bns = [block.pointwise_bn, block.depthwise_bn]
    twin = nn.Sequential(*layers)
    for bn3d, bn2d in zip([m for m in layers if isinstance(m, nn.BatchNorm3d)], bns):
        bn3d.load_state_dict(bn2d.state_dict())
    return twin


@pytest.mark.parametrize('cls', [ct_blocks.C3DModule, ct_blocks.R2Plus1DModule,
                                 ct_blocks.CSNModule])
@pytest.mark.parametrize('training', [False, True])
def test_ablation_modules_equal_conv3d_stacks(cls, training):
    torch.manual_seed(2)
    frames, channels = 4, 16
    block = cls(channels, frames)
    randomize_batch_norm(block)
    twin = make_5d_twin(block, channels)
    block.train(training)
    twin.train(training)
    x = torch.randn(2 * frames, channels, 5, 6)
    with torch.no_grad():
        want = twin(frames_to_clip(x, frames))
        got = block(x)
    torch.testing.assert_close(got, clip_to_frames(want), rtol=1e-4, atol=1e-5)
    if training:  # the same running statistics after one step
        for bn3d, bn2d in zip([m for m in twin if isinstance(m, nn.BatchNorm3d)],
                              [m for m in block.modules() if isinstance(m, nn.BatchNorm2d)]):
            torch.testing.assert_close(bn2d.running_var, bn3d.running_var)


# ---------------------------------------------------------------------------------------------
# ImageNet loading


def torchvision_resnet_state_dict(depth=50, seed=0):
    """A state dict with torchvision ``resnet50``/``resnet101``'s keys and shapes."""
    generator = torch.Generator().manual_seed(seed)
    state = {}

    def conv(name, out_c, in_c, k):
        state[f'{name}.weight'] = torch.randn(out_c, in_c, k, k, generator=generator)

    def bn(name, c):
        state[f'{name}.weight'] = torch.rand(c, generator=generator)
        state[f'{name}.bias'] = torch.randn(c, generator=generator)
        state[f'{name}.running_mean'] = torch.randn(c, generator=generator)
        state[f'{name}.running_var'] = torch.rand(c, generator=generator) + 0.5
        state[f'{name}.num_batches_tracked'] = torch.tensor(7)

    conv('conv1', 64, 3, 7)
    bn('bn1', 64)
    inplanes = 64
    blocks = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3)}[depth]
    for stage, (count, planes) in enumerate(zip(blocks, (64, 128, 256, 512))):
        for index in range(count):
            prefix = f'layer{stage + 1}.{index}'
            conv(f'{prefix}.conv1', planes, inplanes, 1)
            bn(f'{prefix}.bn1', planes)
            conv(f'{prefix}.conv2', planes, planes, 3)
            bn(f'{prefix}.bn2', planes)
            conv(f'{prefix}.conv3', planes * 4, planes, 1)
            bn(f'{prefix}.bn3', planes * 4)
            if index == 0:
                conv(f'{prefix}.downsample.0', planes * 4, inplanes, 1)
                bn(f'{prefix}.downsample.1', planes * 4)
            inplanes = planes * 4
    state['fc.weight'] = torch.randn(1000, 2048, generator=generator)
    state['fc.bias'] = torch.randn(1000, generator=generator)
    return state


def test_imagenet_loading_onto_tsn_and_ct_net(tmp_path):
    state = torchvision_resnet_state_dict()
    tsn = ctnet.tsn_r50(num_classes=5, num_frames=2)
    report = load_resnet_imagenet(tsn, state)
    assert report.missing == () and report.unexpected == ()
    assert set(report.skipped) == {'fc.weight', 'fc.bias'}
    assert set(report.new) == {'fc.weight', 'fc.bias'}
    assert len(report.loaded) == len(state) - 2
    own = tsn.state_dict()
    for key in report.loaded:
        torch.testing.assert_close(own[key], state[key], rtol=0, atol=0)

    # Through the builder, from a file (wrapped as a checkpoint, DataParallel prefixes).
    path = tmp_path / 'resnet50.pth'
    torch.save({'state_dict': {f'module.{k}': v for k, v in state.items()}}, path)
    model = ctnet.ct_net_r50(num_classes=5, num_frames=2, pretrained_2d=str(path))
    own = model.state_dict()
    for key in ('layer1.1.conv1.weight', 'layer1.1.bn1.running_var', 'layer3.5.conv3.weight',
                'layer4.1.bn3.bias', 'layer2.2.conv2.weight', 'conv1.weight'):
        torch.testing.assert_close(own[key], state[key], rtol=0, atol=0)
    report = load_resnet_imagenet(model, state)
    replaced = {k for k in report.skipped if not k.startswith('fc.')}
    # 7 replaced blocks x (conv2.weight + 5 bn2 tensors) are not used; their 1x1 convs are.
    assert len(replaced) == 7 * 6 and all('.conv2.' in k or '.bn2.' in k for k in replaced)
    assert 'layer3.3.conv2.weight' in replaced and 'layer3.2.conv2.weight' in report.loaded
    assert report.new and all('.st.' in k or k.startswith('fc.') for k in report.new)
    assert report.missing == () and report.unexpected == ()


def test_imagenet_loading_refuses_what_does_not_fit(tmp_path):
    model = ctnet.ct_net_r50(num_classes=5, num_frames=2)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    state = torchvision_resnet_state_dict()
    bad = dict(state, **{'layer2.0.conv1.weight': torch.zeros(128, 64, 1, 1)})
    with pytest.raises(ValueError, match=r'wrong shapes.*layer2\.0\.conv1\.weight'):
        load_resnet_imagenet(model, bad)
    for key, value in model.state_dict().items():  # nothing was loaded
        torch.testing.assert_close(value, before[key], rtol=0, atol=0)
    with pytest.raises(ValueError, match=r'unexpected: layer3\.6'):
        load_resnet_imagenet(model, torchvision_resnet_state_dict(101))
    partial = {k: v for k, v in state.items() if not k.startswith('layer4.2.')}
    with pytest.raises(ValueError, match=r'missing: layer4\.2\.'):
        load_resnet_imagenet(model, partial)
    report = load_resnet_imagenet(model, {**partial, 'extra.weight': torch.zeros(1)},
                                  strict=False)
    assert 'extra.weight' in report.unexpected
    assert report.missing and all(k.startswith('layer4.2.') for k in report.missing)
    with pytest.raises(FileNotFoundError, match='nothing is downloaded'):
        ctnet.tsn_r50(num_classes=5, num_frames=2, pretrained_2d=str(tmp_path / 'none.pth'))

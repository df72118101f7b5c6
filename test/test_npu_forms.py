"""The NPU forms of issue 14 compute what the forms they replaced computed.

Edge NPU toolchains (Arm Vela after PyTorch -> TFLite -> int8, Rockchip RKNN, OpenVINO) left a
few constructs of the models on the CPU or miscomputed them; the models now write them
differently. Each old form is kept here, and only here, as the reference:

- a strided slice ``x[:, :, ::s, ::s]`` (and over the frames of a clip) -> a kernel-1 average
  pooling with stride ``s`` (``layers.subsample``, ``eco_blocks.subsample_frames``), and the
  ``'paper'`` temporal stride's stride-4 convolution -> that pooling, then a stride-1 one;
- ``x.mean((2, 3))`` on the frames -> two average poolings (``layers.spatial_mean``), and a mean
  over a clip's frames -> a mean over axis 1 of ``[B, T, C, 1]`` (``layers.clip_mean``);
- ``(x - mean) / (sqrt(var) + eps)`` -> poolings, ``v ** -0.5`` (RSQRT in TFLite, ``Pow`` in
  ONNX), MUL, ADD, SUB (``ContrastSymmetricNet2d.standardise``);
- CT-Net's channel permutation by ``index_select`` -> a transpose of the channel grid;
- Channel Excitation's grouped point-wise products by ``torch.bmm`` -> grouped 1x1 convs;
- Spatial Excitation's mean over a clip's frames on ``[B, T, C, H*W]`` -> a ``T x 1`` pooling on
  the temporal layout ``[B, C, T, H*W]``.

The shipped default model gives the logits it gave before the change (recorded from the old
code), every 4D-only model is checked to run on the ATen level without the old operators, and
the ONNX graphs without the operators RKNN and OpenVINO had trouble with.
"""

from pathlib import Path

import onnx
import onnx.numpy_helper
import pytest
import torch
from torch import nn
from torch import Tensor
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

from action_recognition.data.normalize import Normalize
from action_recognition.deploy.onnx_export import export_graph
from action_recognition.io.checkpoint import load_model_from_checkpoint
from action_recognition.io.onnx_check import check_onnx_4d_only
from action_recognition.models import create_model
from action_recognition.models import list_models
from action_recognition.models import model_info
from action_recognition.models.analysis import count_macs
from action_recognition.models.ct_blocks import ChannelExcitation
from action_recognition.models.ct_blocks import CTModule
from action_recognition.models.ct_blocks import SpatialExcitation
from action_recognition.models.ct_blocks import TemporalExcitation
from action_recognition.models.ct_blocks import transpose_channels
from action_recognition.models.eco_blocks import PaperStridedTemporalConv
from action_recognition.models.eco_blocks import subsample_frames
from action_recognition.models.inception import ContrastSymmetricNet2d
from action_recognition.models.layers import clip_mean
from action_recognition.models.layers import from_temporal
from action_recognition.models.layers import spatial_mean
from action_recognition.models.layers import subsample
from action_recognition.models.layers import to_temporal

ROOT = Path(__file__).resolve().parents[1]
aten = torch.ops.aten


def randomize_batch_norm(module: nn.Module) -> None:
    for m in module.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 1.5)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.5, 0.5)


# ---------------------------------------------------------------------------------------------
# The old forms (references; the package no longer holds them).


def old_standardise(x: Tensor, eps: float) -> Tensor:
    centred = x - x.mean(dim=(2, 3), keepdim=True)
    std = centred.square().mean(dim=(2, 3), keepdim=True).sqrt()
    return centred / (std + eps)


def old_subsample_frames(x: Tensor, num_frames: int, stride: int) -> Tensor:
    _, channels, height, width = x.shape
    kept = x.reshape(-1, num_frames, channels, height * width)[:, ::stride]
    return kept.reshape(-1, channels, height, width)


def old_grouped_pointwise(v: Tensor, conv: nn.Conv2d) -> Tensor:
    groups = conv.groups
    weight = conv.weight.reshape(groups, conv.out_channels // groups, -1)
    grouped = v.reshape(v.shape[0], groups, -1).transpose(0, 1)
    out = torch.bmm(grouped, weight.transpose(1, 2))
    return out.transpose(0, 1).reshape(v.shape[0], conv.out_channels)


def old_channel_excitation(module: ChannelExcitation, x: Tensor) -> Tensor:
    pooled = x.mean((2, 3))
    hidden = module.bn(old_grouped_pointwise(pooled, module.fc1)[:, :, None, None])
    attention = old_grouped_pointwise(module.relu(hidden).flatten(1), module.fc2)
    return x * torch.sigmoid(attention)[:, :, None, None]


def old_spatial_excitation(module: SpatialExcitation, x: Tensor) -> Tensor:
    frames, channels, height, width = x.shape
    clips = frames // module.num_frames
    pooled = x.reshape(clips, module.num_frames, -1).mean(1).reshape(clips, channels, height,
                                                                       width)
    attention = torch.sigmoid(module.fc2(module.relu(module.bn(module.fc1(pooled)))))
    out = x.reshape(clips, module.num_frames, channels, height * width) * attention.reshape(
        clips, 1, channels, height * width)
    return out.reshape(frames, channels, height, width)


def old_temporal_excitation(module: TemporalExcitation, x: Tensor) -> Tensor:
    pooled = x.mean((2, 3), keepdim=True)
    hidden = module.relu(module.bn(module.fc1(pooled, module.num_frames)))
    return x * torch.sigmoid(module.fc2(hidden, module.num_frames))


def old_permutations(channels: int) -> tuple[Tensor, Tensor]:
    c1, c2 = CTModule(channels, 2, excitation=False).split
    index = torch.arange(channels).reshape(c1, c2).t().reshape(-1)
    return index, torch.argsort(index)


# ---------------------------------------------------------------------------------------------
# Strided subsampling.


@pytest.mark.parametrize('height,width', [(9, 10), (7, 7), (28, 28), (1, 5), (3, 1)])
@pytest.mark.parametrize('stride_h,stride_w', [(2, 2), (3, 2), (2, 1), (1, 1)])
def test_subsample_is_the_strided_slice(height, width, stride_h, stride_w):
    x = torch.randn(6, 5, height, width)
    got = subsample(x, stride_h, stride_w)
    torch.testing.assert_close(got, x[:, :, ::stride_h, ::stride_w], rtol=0, atol=0)


@pytest.mark.parametrize('num_frames,stride', [(7, 2), (8, 2), (5, 3), (4, 1), (1, 2)])
def test_subsample_frames_is_the_strided_slice(num_frames, stride):
    x = torch.randn(3 * num_frames, 4, 5, 3)
    got = subsample_frames(x, num_frames, stride)
    torch.testing.assert_close(got, old_subsample_frames(x, num_frames, stride), rtol=0, atol=0)


class OldPaperStridedTemporalConv(nn.Module):
    """The paper's temporal branch as it was: one conv with stride ``(s, s^2)``."""

    def __init__(self, conv: PaperStridedTemporalConv, num_frames: int) -> None:
        super().__init__()
        self.conv = conv
        self.num_frames = num_frames

    def forward(self, x: Tensor) -> Tensor:
        stride = self.conv.stride[0]
        out_h, out_w = -(-x.shape[2] // stride), -(-x.shape[3] // stride)
        weight = self.conv.weight.reshape(self.conv.out_channels, self.conv.in_channels, 3, 1)
        y = F.conv2d(to_temporal(x, self.num_frames), weight, None,
                     stride=(stride, stride * stride), padding=(1, 0))
        return from_temporal(y, out_h, out_w)


@pytest.mark.parametrize('num_frames,size', [(4, (28, 28)), (5, (8, 6)), (16, (14, 14))])
def test_paper_temporal_stride_equals_the_stride_4_convolution(num_frames, size):
    torch.manual_seed(0)
    conv = PaperStridedTemporalConv(6, 8, 2)
    old = OldPaperStridedTemporalConv(conv, num_frames)
    x = torch.randn(2 * num_frames, 6, *size)

    class New(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = conv

        def forward(self, inp: Tensor) -> Tensor:
            return self.conv(inp, num_frames)

    with torch.no_grad():
        torch.testing.assert_close(New()(x), old(x), rtol=0, atol=1e-5)
    assert count_macs(New(), x) == count_macs(old, x)


# ---------------------------------------------------------------------------------------------
# Means.


@pytest.mark.parametrize('height,width', [(1, 1), (1, 9), (7, 1), (7, 9), (64, 64), (112, 112)])
def test_spatial_mean_equals_mean(height, width):
    torch.manual_seed(0)
    x = torch.randn(4, 3, height, width) + torch.tensor([2.5, -1.0, 0.0]).reshape(1, 3, 1, 1)
    x[1] = 0.7  # flat maps: the sum of equal values rounds the same way every time
    got = spatial_mean(x)
    assert got.shape == (4, 3, 1, 1)
    torch.testing.assert_close(got, x.mean((2, 3), keepdim=True), rtol=0, atol=1e-5)


@pytest.mark.parametrize('clips,num_frames', [(1, 4), (3, 5), (2, 1)])
def test_clip_mean_equals_mean_over_frames(clips, num_frames):
    x = torch.randn(clips * num_frames, 6)
    want = x.reshape(clips, num_frames, 6).mean(1)
    torch.testing.assert_close(clip_mean(x, num_frames), want, rtol=0, atol=1e-6)
    torch.testing.assert_close(clip_mean(x[:, :, None, None], num_frames), want, rtol=0,
                               atol=1e-6)


def test_eco_head_pool_equals_old_form():
    torch.manual_seed(0)
    model = create_model('eco_lite_add_small', num_classes=3, num_frames=6).eval()
    x = torch.randn(2 * 2, model.num_features, 3, 5) + 1.5  # T' = 2 maps per clip
    got = model.net3d.pool(x, 2)
    want = x.mean(dim=(2, 3)).reshape(-1, 2, x.shape[1]).mean(dim=1)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-6)


# ---------------------------------------------------------------------------------------------
# The contrast standardisation.


def standardise_inputs(size: int) -> dict[str, Tensor]:
    torch.manual_seed(size)
    height, width = size, size + 3  # not square, odd sides
    levels = torch.tensor([0.7, 0.3, -0.7, 1.7, -2.1, 2.6]).reshape(6, 1, 1, 1)
    flat = levels.expand(6, 3, height, width).contiguous()
    square = flat.clone()
    square[:, :, height // 3:height // 2, width // 3:width // 2] += 0.8
    images = (torch.randint(0, 256, (6, 3, height, width)).float() / 255 - 0.45) / 0.225
    return {
        'random': torch.rand(6, 3, height, width) * 2 - 1,
        'images': images,
        'noisy flat': flat + 0.01 * torch.randn_like(flat),
        'low contrast': flat + 0.001 * torch.randn_like(flat),
        'square on flat': square,
    }


@pytest.mark.parametrize('size', [8, 17, 64, 112])
def test_standardise_equals_old_form(size):
    module = ContrastSymmetricNet2d(nn.Identity())
    for name, x in standardise_inputs(size).items():
        got = module.standardise(x)
        want = old_standardise(x, module.eps)
        torch.testing.assert_close(got, want, rtol=0, atol=1e-5, msg=name)
        # No farther from the exact result than float32 puts the old form.
        exact = old_standardise(x.double(), module.eps)
        error_new = (got.double() - exact).abs().max().item()
        error_old = (want.double() - exact).abs().max().item()
        assert error_new <= error_old + 2e-5, (name, error_new, error_old)


@pytest.mark.parametrize('size', [8, 17, 64, 112])
def test_standardise_of_flat_frames_is_zero(size):
    # Exactly 0, as the old form is up to its float32 rounding (which left up to ~2e-5 there).
    module = ContrastSymmetricNet2d(nn.Identity())
    levels = torch.tensor([0.7, 0.3, -0.7, 1.7, -2.1, 2.6, 0.0]).reshape(7, 1, 1, 1)
    flat = levels.expand(7, 3, size, size + 3).contiguous()
    got = module.standardise(flat)
    assert (got == 0).all()
    assert old_standardise(flat, module.eps).abs().max() < 3e-5
    # A frame with one flat channel: that channel 0, the others as before.
    images = standardise_inputs(size)['images']
    mixed = torch.cat([images[:, :2], flat[:6, 2:]], 1)
    got = module.standardise(mixed)
    assert (got[:, 2] == 0).all()
    torch.testing.assert_close(got[:, :2], old_standardise(mixed, module.eps)[:, :2], rtol=0,
                               atol=1e-5)


def test_contrast_symmetric_net_equals_old_form_on_a_batch_of_clips():
    torch.manual_seed(0)
    model = create_model('eco_lite_add_small', num_classes=4, num_frames=4, net2d='small_sym')
    randomize_batch_norm(model)
    model.eval()
    x = standardise_inputs(112)['images'][:4].repeat(3, 1, 1, 1)  # 3 clips of 4 frames
    x[5] = 0.2
    net2d = model.net2d
    assert isinstance(net2d, ContrastSymmetricNet2d)
    with torch.no_grad():
        z = old_standardise(x, net2d.eps)
        want = model.net3d(net2d.net(z) + net2d.net(-z), model.num_frames)
        torch.testing.assert_close(model(x), want, rtol=0, atol=1e-5)


# ---------------------------------------------------------------------------------------------
# CT-Net.


@pytest.mark.parametrize('channels', [16, 32, 64, 128, 512])
def test_channel_transposes_equal_index_select(channels):
    to_sub2, from_sub2 = old_permutations(channels)
    module = CTModule(channels, 2, excitation=False)
    c1, c2 = module.split
    x = torch.randn(6, channels, 3, 5)
    torch.testing.assert_close(module.to_sub2(x), x.index_select(1, to_sub2), rtol=0, atol=0)
    torch.testing.assert_close(module.from_sub2(x), x.index_select(1, from_sub2), rtol=0,
                               atol=0)
    torch.testing.assert_close(transpose_channels(x, c1, c2), module.to_sub2(x))
    torch.testing.assert_close(module.from_sub2(module.to_sub2(x)), x, rtol=0, atol=0)


@pytest.mark.parametrize('channels,groups', [(64, 8), (128, 8), (256, 16), (512, 32)])
def test_tensor_excitation_equals_old_forms(channels, groups):
    torch.manual_seed(0)
    frames = 4
    spatial = SpatialExcitation(channels, groups, frames)
    temporal = TemporalExcitation(channels, groups, frames)
    channel = ChannelExcitation(channels, groups)
    for module in (spatial, temporal, channel):
        randomize_batch_norm(module)
        module.eval()
    x = torch.relu(torch.randn(3 * frames, channels, 7, 9))  # 3 clips, post-ReLU maps
    x[2] = 0.5
    with torch.no_grad():
        torch.testing.assert_close(spatial(x), old_spatial_excitation(spatial, x), rtol=0,
                                   atol=1e-5)
        torch.testing.assert_close(temporal(x), old_temporal_excitation(temporal, x), rtol=0,
                                   atol=1e-5)
        torch.testing.assert_close(channel(x), old_channel_excitation(channel, x), rtol=0,
                                   atol=1e-5)


def test_ctnet_pooling_and_head_equal_old_forms():
    torch.manual_seed(0)
    model = create_model('tsn_r50', num_classes=5, num_frames=3).eval()
    x = torch.randn(2 * 3, 3, 112, 112)
    with torch.no_grad():
        maps = super(type(model), model).forward_features(x)
        features = model.forward_features(x)
        torch.testing.assert_close(features, maps.mean((2, 3)), rtol=1e-6, atol=1e-5)
        want = model.fc(features).reshape(-1, 3, 5).mean(1)
        torch.testing.assert_close(model.forward_head(features), want, rtol=0, atol=1e-6)
        torch.testing.assert_close(model.forward_head(features, pre_logits=True),
                                   features.reshape(-1, 3, 2048).mean(1), rtol=0, atol=1e-6)


# ---------------------------------------------------------------------------------------------
# The shipped default model.

# Logits of the shipped default model on default_model_input(), computed with the code before
# issue 14 (max |new - old| was 3.8e-6).
DEFAULT_MODEL_LOGITS = [
    [0.824163556098938, -2.4917407035827637, -2.2968719005584717, -1.9041297435760498,
     -1.8815611600875854, -0.4548097252845764, -0.4386575520038605, -0.8460659384727478,
     0.21896782517433167, 0.306633323431015, 0.15273001790046692],
    [-8.773981094360352, -1.7414908409118652, -3.7496814727783203, -3.1771841049194336,
     -1.8672558069229126, -0.27917617559432983, -0.18514512479305267, -3.467358112335205,
     -4.82064151763916, 1.8143060207366943, -0.7399242520332336],
]


def default_model_input(spec) -> Tensor:
    """Two clips: noise frames, a flat grey frame, a dim low-contrast frame and a bright square
    on a flat background (uint8, normalised as the spec says)."""
    frames_per_clip = spec.num_frames
    height, width = spec.input_size
    g = torch.Generator().manual_seed(2024)
    frames = torch.randint(0, 256, (2 * frames_per_clip, 3, height, width), generator=g,
                           dtype=torch.uint8)
    frames[3] = 128
    frames[frames_per_clip + 5] = 20 + torch.randint(0, 3, (3, height, width), generator=g,
                                                     dtype=torch.uint8)
    frames[frames_per_clip + 9] = 60
    frames[frames_per_clip + 9, :, 20:30, 25:40] = 220
    return Normalize.from_spec(spec)(frames)


def test_shipped_default_model_gives_the_logits_it_gave_before():
    model, spec = load_model_from_checkpoint(ROOT / 'models' / 'action_recognition_default.pt')
    assert spec.input_size == (64, 64) and spec.num_frames == 16
    with torch.no_grad():
        logits = model.eval()(default_model_input(spec))
    torch.testing.assert_close(logits, torch.tensor(DEFAULT_MODEL_LOGITS), rtol=0, atol=1e-5)


# ---------------------------------------------------------------------------------------------
# No model runs the old operators.


class OpRecorder(TorchDispatchMode):
    """Records what NPU toolchains leave on the CPU: gathers, batched matrix products, DIV and
    SQRT, slices with a step, and MEANs that are not over axes 1-2 of a batch-1 rank-4 tensor."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        packet = func.overloadpacket
        if packet in (aten.bmm, aten.index_select, aten.gather, aten.index, aten.sqrt,
                      aten.div):
            self.found.append(str(func))
        elif packet == aten.slice:
            step = args[4] if len(args) > 4 else kwargs.get('step', 1)
            if step != 1:
                self.found.append(f'{func} with step {step}')
        elif packet == aten.mean:
            x = args[0]
            dims = args[1] if len(args) > 1 and args[1] is not None else range(x.dim())
            axes = {d % x.dim() for d in dims}
            if x.dim() != 4 or x.shape[0] != 1 or not axes <= {1, 2}:
                self.found.append(f'{func} of {tuple(x.shape)} over {sorted(axes)}')
        return func(*args, **kwargs)


# ct_net_r101 is left out: the blocks of ct_net_r50 in a deeper ResNet.
FOUR_D_MODELS = [name for name in list_models()
                 if model_info(name).four_d_only and name != 'ct_net_r101']


@pytest.mark.parametrize('name', FOUR_D_MODELS)
def test_models_run_without_the_operators_npus_leave_on_the_cpu(name):
    torch.manual_seed(0)
    options = {'net2d': 'small_sym'} if name.startswith('eco_lite') else {}
    model = create_model(name, num_classes=3, num_frames=4, **options).eval()
    x = torch.randn(4, 3, 112, 112)  # one clip: the batch of a deployed graph
    with torch.no_grad(), OpRecorder() as recorder:
        model(x)
    assert recorder.found == [], sorted(set(recorder.found))


class CTModuleOnFrames(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.module = CTModule(32, 4)

    def forward(self, x: Tensor) -> Tensor:
        return self.module(x)


@pytest.mark.parametrize('name', ['default', 'ct_module'])
def test_onnx_graphs_have_no_gather_division_sqrt_or_strided_slice(name):
    if name == 'default':
        model, spec = load_model_from_checkpoint(ROOT / 'models' / 'action_recognition_default.pt')
        example = torch.randn(spec.num_frames, 3, *spec.input_size)
    else:
        torch.manual_seed(0)
        model, example = CTModuleOnFrames(), torch.randn(8, 32, 7, 7)
    proto = export_graph(model.eval(), example, dynamic_batch=False)
    constants = {node.output[0]: onnx.numpy_helper.to_array(node.attribute[0].t)
                 for node in proto.graph.node if node.op_type == 'Constant'}
    constants.update({init.name: onnx.numpy_helper.to_array(init)
                      for init in proto.graph.initializer})
    found = []
    for node in proto.graph.node:
        if node.op_type in ('Gather', 'GatherND', 'GatherElements', 'Div', 'Sqrt', 'MatMul'):
            found.append(node.op_type)
        elif node.op_type == 'Slice' and len(node.input) > 4:
            steps = constants.get(node.input[4])
            if steps is None or (steps != 1).any():
                found.append(f'Slice with steps {steps}')
    assert found == [], found
    assert check_onnx_4d_only(proto) == []


@pytest.mark.parametrize('name,options,frames,size', [
    ('eco_lite_add_small', {}, 4, 64),
    ('ct_net_r50', {}, 2, 32),
])
def test_the_rewritten_models_still_trace_for_the_4d_converter_and_onnx(name, options, frames,
                                                                       size):
    # torch.fx (to_4d, the bench's torch-4d) sees sizes as proxies and the TorchScript ONNX
    # exporter as tensors: the pooling windows of spatial_mean must serve both.
    from action_recognition.deploy.convert import to_4d  # the converter, only for this test

    torch.manual_seed(0)
    model = create_model(name, num_classes=5, num_frames=frames, **options).eval()
    x = torch.randn(2 * frames, 3, size, size)
    converted = to_4d(model, example_input=x[:frames])
    with torch.no_grad():
        torch.testing.assert_close(converted(x), model(x), rtol=0, atol=1e-5)
    # A dynamic batch (two clips here) exports: the pooling windows stay constants, and the
    # only Gathers read a Shape (the batch size for the reshapes), never the data.
    proto = export_graph(model, x[:frames], input_axis='batch_x_frames')
    assert not check_onnx_4d_only(proto)
    shapes = {node.output[0] for node in proto.graph.node if node.op_type == 'Shape'}
    data_gathers = [node.name for node in proto.graph.node
                    if node.op_type == 'Gather' and node.input[0] not in shapes]
    assert data_gathers == []
    ops = [node.op_type for node in proto.graph.node]
    assert 'Div' not in ops and 'Sqrt' not in ops
    assert ops.count('ReduceMean') == 1  # only the clip mean over the (unfolded) frame axis

"""to_4d: any 3D CNN becomes an exact 4D-only model, or is refused with the reason."""

import copy
import io
import warnings

import nets3d
from nets3d import randomize_batch_norm
from nets3d import S3DStyle
from nets3d import VideoResNet
from nets3d import X3DStyle
import pytest
import torch
from torch import nn
import torch.nn.functional as F

from action_recognition.bench.convert import bench_converted
from action_recognition.deploy.convert import check_onnx_4d_only
from action_recognition.deploy.convert import ConversionError
from action_recognition.deploy.convert import export_onnx_4d
from action_recognition.deploy.convert import fold_input
from action_recognition.deploy.convert import to_4d
from action_recognition.deploy.convert import unfold_output
from action_recognition.models.analysis import assert_4d_only
from action_recognition.models.analysis import check_4d_only_structure
from action_recognition.models.analysis import RankRecorder

TOL = 1e-4


pytestmark = pytest.mark.usefixtures('seeded_single_thread')


def assert_matches(original, converted, clip):
    """Converted output equals the original's (5D outputs folded), with no rank-5 tensor."""
    original.eval()
    converted.eval()
    assert check_4d_only_structure(converted) == []
    frames = fold_input(clip)
    with torch.no_grad():
        expected = original(clip)
        with RankRecorder() as ranks:
            got = converted(frames)
    assert ranks.max_rank <= 4, ranks.violations[:3]
    expected = expected if isinstance(expected, tuple) else (expected,)
    got = got if isinstance(got, tuple) else (got,)
    assert len(got) == len(expected)
    for e, g in zip(expected, got):
        e = fold_input(e)
        assert g.shape == e.shape
        torch.testing.assert_close(g, e, atol=TOL, rtol=0)
    return got


NETS = {
    'r3d18': lambda: VideoResNet(),
    'r2plus1d': lambda: VideoResNet(two_plus_one=True),
    's3d': lambda: S3DStyle(),
    'x3d': lambda: X3DStyle(),
}


@pytest.mark.parametrize('name', sorted(NETS))
def test_networks_convert_exactly(name):
    model = randomize_batch_norm(NETS[name]()).eval()
    example = torch.randn(1, 3, 8, 32, 32)
    before = copy.deepcopy(model.state_dict())
    converted = to_4d(model, example_input=example)
    assert check_4d_only_structure(converted) == []
    assert not any(isinstance(m, nn.Conv3d) for m in converted.modules())
    # Other clips and another batch size than the example's.
    clip = torch.randn(2, 3, 8, 32, 32) * 2
    out = assert_matches(model, converted, clip)[0]
    assert out.shape == (2, 10)
    assert out.abs().max() > 1e-2  # a real signal, not a vanishing one
    # The original is left as it was.
    assert any(isinstance(m, nn.Conv3d) for m in model.modules())
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key


def test_eco_lite_conv3d_5d_converts_exactly():
    registry = pytest.importorskip('action_recognition.models.registry')
    try:
        registry.model_info('eco_lite_conv3d_5d')
    except (KeyError, ImportError) as error:
        pytest.skip(f'eco_lite_conv3d_5d is not available: {error}')
    model = registry.create_model('eco_lite_conv3d_5d', num_classes=5, num_frames=4,
                                  net2d='small', width_mult=0.25)
    randomize_batch_norm(model)
    for module in model.modules():
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, std=0.5)
    model.eval()
    frames = torch.randn(4, 3, 64, 64)  # one clip of 4 frames [B*T, 3, H, W]
    converted = to_4d(model, example_input=frames)
    out = assert_matches(model, converted, torch.randn(8, 3, 64, 64))[0]
    assert out.shape == (2, 5)


class FramesIn3D(nn.Module):
    """The eco-lite pattern: frames -> 2D conv -> view [B, T, C, H, W] -> permute to 5D ->
    3D conv -> back to frames -> 2D conv -> 5D again -> functional pooling -> head."""

    def __init__(self, num_frames=4):
        super().__init__()
        self.num_frames = num_frames
        self.conv2d = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.conv3d = nn.Conv3d(8, 12, 3, padding=1)
        self.bn3d = nn.BatchNorm3d(12)
        self.conv2d_after = nn.Conv2d(12, 12, 1)
        self.fc = nn.Linear(12 * 2, 5)

    def forward(self, x):
        if x.dim() != 4 or x.shape[0] % self.num_frames:
            raise ValueError('expected frames')
        x = torch.relu(self.conv2d(x))
        n, c, h, w = x.shape
        x = x.view(-1, self.num_frames, c, h, w).permute(0, 2, 1, 3, 4)
        x = torch.relu(self.bn3d(self.conv3d(x)))
        x = x.permute(0, 2, 1, 3, 4).reshape(n, 12, h, w)
        x = self.conv2d_after(x)
        x = x.reshape(-1, self.num_frames, 12, h, w).transpose(1, 2)
        x = F.adaptive_avg_pool3d(x, (2, 1, 1))
        return self.fc(x.flatten(1))


def test_frames_input_enters_and_leaves_5d():
    model = randomize_batch_norm(FramesIn3D()).eval()
    converted = to_4d(model, example_input=torch.randn(4, 3, 16, 16))
    assert_matches(model, converted, torch.randn(12, 3, 16, 16))
    # The shape check of the original forward was decided at tracing, not kept as 5D work.
    assert not any(n.target == 'dim' for n in converted.graph.nodes)


class LayoutZoo(nn.Module):
    """Reshapes, shapes, permutes, reductions and broadcasts on 5D tensors."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv3d(3, 6, (3, 3, 3), padding=1)
        self.conv2d = nn.Conv2d(6 * 5, 6, 1)
        self.conv_b = nn.Conv3d(6, 6, (2, 3, 1), stride=(2, 1, 1), dilation=(1, 2, 1),
                                groups=3)
        self.scale = nn.Parameter(torch.rand(6, 1, 1, 1) + 0.5)
        self.prelu = nn.PReLU(6)
        self.norm = nn.LayerNorm(6)
        self.fc = nn.Linear(6 * 5 * 6 * 7 + 6 * 5 + 6 + 6 * 2, 4)

    def forward(self, x):
        y = self.conv(x)  # [B, 6, 5, 6, 7]
        b, c, t, h, w = y.shape
        plain = self.conv2d(y.reshape(b, c * t, h, w))  # [B, 6, 6, 7]
        y = y + plain.unsqueeze(2)  # broadcast of a one-frame clip over T
        y = self.prelu(y * self.scale - 0.1)  # broadcast of a parameter
        y = self.norm(y.permute(0, 3, 2, 4, 1)).permute(0, 4, 2, 1, 3)  # channels last and back
        y = y + torch.softmax(y, dim=1) + F.log_softmax(y.transpose(1, 2), -2).transpose(1, 2)
        flat = y.reshape(y.size(0), -1)  # [B, 6*5*6*7]
        per_time = y.mean(dim=[-2, -1])  # [B, 6, 5]
        per_channel = y.amax(dim=(2, 3, 4), keepdim=True).squeeze(-1).squeeze(-1).squeeze(-1)
        z = y.transpose(3, 4).sum(dim=3, keepdim=True)  # [B, 6, 5, 1, 6] via the H/W swap
        z = self.conv_b(z.transpose(3, 4))  # [B, 6, 2, 2, 1]
        z = F.max_pool3d(z.permute(0, 2, 1, 3, 4).permute(0, 2, 1, 3, 4), (1, 2, 1),
                         stride=(1, 2, 1), ceil_mode=True)  # [B, 6, 2, 1, 1]
        return self.fc(torch.cat([flat, per_time.flatten(1), per_channel,
                                  torch.flatten(z, 1)], dim=1)), y


def test_layout_operations():
    model = LayoutZoo().eval()
    example = torch.randn(2, 3, 5, 6, 7)
    converted = to_4d(model, example_input=example)
    logits, features = assert_matches(model, converted, torch.randn(3, 3, 5, 6, 7))
    assert logits.shape == (3, 4)
    assert features.shape == (3 * 5, 6, 6, 7)  # a 5D output comes back as frames
    assert unfold_output(features, 5).shape == (3, 6, 5, 6, 7)


class BufferAndInPlace(nn.Module):
    """A normalising buffer viewed as [1, C, 1, 1, 1], and an in-place update through a view."""

    def __init__(self):
        super().__init__()
        self.register_buffer('mean', torch.rand(3))
        self.offset = nn.Parameter(torch.rand(1, 4, 1, 1, 1))
        self.conv = nn.Conv3d(3, 4, 3, padding=1)

    def forward(self, x):
        y = self.conv(x - self.mean.view(1, -1, 1, 1, 1)) + self.offset
        y.permute(0, 2, 1, 3, 4).mul_(2.0)  # changes y too
        return y.mean((2, 3, 4))


def test_buffers_and_in_place_updates():
    model = BufferAndInPlace()
    converted = to_4d(model, example_input=torch.randn(2, 3, 4, 6, 6))
    assert converted.offset.shape == (4, 1, 1, 1)  # a rank-5 parameter stored with rank 4
    assert_matches(model, converted, torch.randn(3, 3, 4, 6, 6))


POOLS = [
    nn.MaxPool3d(3, stride=2, padding=1),
    nn.MaxPool3d((2, 3, 3), stride=2, padding=1, ceil_mode=True),
    nn.MaxPool3d((3, 2, 2), stride=(1, 2, 2), dilation=(2, 1, 1)),
    nn.AvgPool3d(3, stride=2, padding=1),
    nn.AvgPool3d(3, stride=2, padding=1, count_include_pad=False),
    nn.AvgPool3d(3, stride=2, padding=1, ceil_mode=True, count_include_pad=False),
    nn.AvgPool3d(3, stride=2, padding=1, ceil_mode=True, count_include_pad=True),
    nn.AvgPool3d((2, 2, 2), stride=(2, 1, 1), ceil_mode=True),
    nn.AvgPool3d(2, divisor_override=3),
    nn.AvgPool3d((3, 1, 1), stride=(2, 1, 1), padding=(1, 0, 0)),
    nn.AdaptiveAvgPool3d((3, 4, 5)),
    nn.AdaptiveAvgPool3d((None, 2, 3)),
    nn.AdaptiveAvgPool3d(1),
    nn.AdaptiveMaxPool3d((3, 2, 5)),
    nn.Dropout3d(0.5),
]


@pytest.mark.parametrize('pool', POOLS, ids=[repr(p) for p in POOLS])
def test_pooling_is_exact(pool):
    model = nn.Sequential(nn.Conv3d(2, 4, 1), pool).eval()
    clip = torch.randn(2, 2, 7, 9, 10)
    converted = to_4d(model, example_input=clip)
    assert_matches(model, converted, torch.randn(3, 2, 7, 9, 10))


class Functional(nn.Module):
    def forward(self, x):
        a = F.max_pool3d(x, 3, 2, 1)
        b = F.avg_pool3d(x, (3, 1, 1), stride=(2, 1, 1), padding=(1, 0, 0),
                         count_include_pad=False)
        return a.mean((2, 3, 4)) + b.sum((2, 3, 4)) + F.adaptive_avg_pool3d(x, 1).flatten(1)


def test_functional_pooling():
    model = Functional()
    converted = to_4d(model, example_input=torch.randn(2, 3, 6, 8, 8))
    assert_matches(model, converted, torch.randn(2, 3, 6, 8, 8))


class TrainNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv3d(3, 8, 3, padding=1)
        self.bn1 = nn.BatchNorm3d(8)
        self.conv2 = nn.Conv3d(8, 8, (3, 3, 3), stride=(2, 1, 1), padding=1, groups=8)
        self.bn2 = nn.BatchNorm3d(8, momentum=0.3, eps=1e-3)

    def forward(self, x):
        return self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x))))).mean((2, 3, 4))


def test_batch_norm_train_mode_matches():
    model = randomize_batch_norm(TrainNet()).train()
    before = copy.deepcopy(model.state_dict())
    clip = torch.randn(2, 3, 6, 8, 8)
    converted = to_4d(model, example_input=clip)
    assert converted.training and converted.bn1.training
    # Tracing and checking did not touch the original's running statistics.
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key
    out = model(clip)
    got = converted(fold_input(clip))
    torch.testing.assert_close(got, out, atol=TOL, rtol=0)
    for key, value in model.state_dict().items():  # same running statistics after the step
        torch.testing.assert_close(converted.state_dict()[key].reshape(value.shape), value)
    out.square().sum().backward()
    got.square().sum().backward()
    torch.testing.assert_close(converted.conv2.weight.grad.reshape(model.conv2.weight.shape),
                               model.conv2.weight.grad, atol=1e-4, rtol=1e-4)
    assert_4d_only(converted, fold_input(clip), backward=True)


def test_dropout3d_train_mode_drops_whole_channels():
    model = nn.Sequential(nn.Conv3d(2, 16, 1), nn.Dropout3d(0.5)).train()
    converted = to_4d(model, example_input=torch.randn(2, 2, 4, 5, 5))
    frames = converted(fold_input(torch.randn(3, 2, 4, 5, 5)))
    clip = unfold_output(frames, 4)  # [3, 16, 4, 5, 5]
    zero = (clip == 0).flatten(2)
    assert torch.equal(zero.all(dim=2), zero.any(dim=2))  # each clip channel all or nothing
    assert 0 < int(zero.all(dim=2).sum()) < 3 * 16


class Inner(nn.Module):
    def forward(self, x):
        return x.roll(1, dims=2)


class Nested(nn.Module):
    def __init__(self):
        super().__init__()
        self.block = nn.Sequential(nn.Conv3d(3, 3, 1), Inner())

    def forward(self, x):
        return self.block(x)


REFUSED = [
    (nets3d.IndexTime, 'getitem'),
    (nets3d.CatTime, 'cat'),
    (nets3d.PermuteOther, 'permute'),
    (nets3d.Norm, 'norm'),
    (nets3d.Up, 'up'),
    (nets3d.FunctionalConv, 'conv3d'),
    (nets3d.PositionEmbedding, 'add'),
    (nets3d.MeanTimeAndHeight, 'mean'),
    (nets3d.SamePadding, 'conv'),
    (Nested, 'roll'),
]


@pytest.mark.parametrize('make,node', REFUSED, ids=[m.__name__ for m, _ in REFUSED])
def test_unsupported_operations_are_refused(make, node):
    with pytest.raises(ConversionError) as info:
        to_4d(make(), example_input=torch.randn(2, 3, 4, 6, 6))
    assert f"node '{node}'" in str(info.value)


def test_refusal_names_the_module_and_source_line():
    with pytest.raises(ConversionError, match=r"in module 'block\.1'.*test_convert\.py"):
        to_4d(Nested(), example_input=torch.randn(2, 3, 4, 6, 6))


def test_value_control_flow_and_fixed_batch_are_refused():
    with pytest.raises(ConversionError, match='control flow'):
        to_4d(nets3d.ValueBranch(), example_input=torch.randn(2, 3, 4, 6, 6))
    with pytest.raises(ConversionError, match='batch size'):
        to_4d(nets3d.FixedBatch(), example_input=torch.randn(2, 3, 4, 6, 6))


def test_onnx_export_is_4d_only(tmp_path):
    onnx = pytest.importorskip('onnx')
    ort = pytest.importorskip('onnxruntime')
    model = randomize_batch_norm(X3DStyle()).eval()
    example = torch.randn(1, 3, 4, 16, 16)
    converted = to_4d(model, example_input=example)
    path = tmp_path / 'x3d_4d.onnx'
    assert export_onnx_4d(converted, fold_input(example), path) == []
    proto = onnx.load(str(path))
    assert check_onnx_4d_only(proto) == []
    assert not any(node.op_type == 'Conv' and any(
        a.name == 'kernel_shape' and len(a.ints) == 3 for a in node.attribute)
        for node in proto.graph.node)
    clip = torch.randn(2, 3, 4, 16, 16)  # another batch size: the batch axis is dynamic
    session = ort.InferenceSession(str(path), providers=['CPUExecutionProvider'])
    got = session.run(None, {'frames': fold_input(clip).numpy()})[0]
    with torch.no_grad():
        expected = model(clip).numpy()
    assert abs(got - expected).max() < TOL
    # The proof does fail on the original 3D model.
    original = tmp_path / 'x3d.onnx'
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')  # the TorchScript-based exporter is deprecated
        torch.onnx.export(TrainNet().eval(), (torch.randn(1, 3, 4, 8, 8),), str(original),
                          dynamo=False)
    assert any('rank 5' in p for p in check_onnx_4d_only(onnx.load(str(original))))


def test_cli_converts_a_saved_module(tmp_path, capsys):
    from action_recognition.cli import main

    model = randomize_batch_norm(TrainNet()).eval()
    source = tmp_path / 'net.pt'
    torch.save(model, source)
    output = tmp_path / 'net_4d.pt'
    rc = main(['convert', '--module-file', str(source), '--trust-module-file', '--frames', '4',
               '--size', '8', '--batch', '2', '--output', str(output)])
    assert rc == 0
    assert 'max abs diff' in capsys.readouterr().out
    converted = torch.load(output, weights_only=False)
    assert_matches(model, converted, torch.randn(3, 3, 4, 8, 8))
    # A state dict is not a module: a clear error, not a traceback.
    torch.save(model.state_dict(), tmp_path / 'state.pt')
    rc = main(['convert', '--module-file', str(tmp_path / 'state.pt'), '--trust-module-file',
               '--output', str(tmp_path / 'x.pt')])
    assert rc == 2
    assert 'state dict' in capsys.readouterr().err


class _RunsCode:
    """Unpickling it runs a shell command creating ``marker`` (what an attacker's file does)."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os
        import shlex

        return (os.system, (f'touch {shlex.quote(str(self.marker))}',))


def test_module_file_is_never_loaded_without_trust(tmp_path, capsys):
    from action_recognition.cli import convert as convert_cli
    from action_recognition.cli import main

    marker = tmp_path / 'MARKER'
    evil = tmp_path / 'evil.pt'
    torch.save(_RunsCode(marker), evil)
    output = tmp_path / 'out.pt'
    rc = main(['convert', '--module-file', str(evil), '--frames', '4', '--size', '8',
               '--output', str(output)])
    assert rc == 2
    err = capsys.readouterr().err
    assert '--trust-module-file' in err and 'runs code' in err and 'not opened' in err
    assert not marker.exists() and not output.exists()
    with pytest.raises(convert_cli.UntrustedModuleFileError):
        convert_cli.load_module_file(evil)
    assert not marker.exists()
    # The alias that suggested a safe TorchScript load is gone; --help says the file runs code.
    with pytest.raises(SystemExit):
        main(['convert', '--torchscript', str(evil), '--output', str(output)])
    capsys.readouterr()
    with pytest.raises(SystemExit):
        main(['convert', '--help'])
    help_text = ' '.join(capsys.readouterr().out.split())
    assert 'RUNS PYTHON CODE FROM THE FILE' in help_text and '--trust-module-file' in help_text
    assert 'runs code' in convert_cli.__doc__
    assert not marker.exists()


def test_cli_output_needs_force_and_is_written_atomically(tmp_path, capsys, monkeypatch):
    from action_recognition.cli import main
    from action_recognition.deploy import convert as convert_module

    source = tmp_path / 'net.pt'
    torch.save(randomize_batch_norm(TrainNet()).eval(), source)
    args = ['convert', '--module-file', str(source), '--trust-module-file', '--frames', '4',
            '--size', '8']
    output = tmp_path / 'net_4d.pt'
    assert main([*args, '--output', str(output)]) == 0
    first = output.read_bytes()
    capsys.readouterr()
    # An existing output is refused (before any work), and left as it was.
    assert main([*args, '--output', str(output)]) == 2
    err = capsys.readouterr().err
    assert 'exists already' in err and '--force' in err
    assert output.read_bytes() == first
    onnx_output = tmp_path / 'net_4d.onnx'
    onnx_output.write_bytes(b'previous')
    assert main([*args, '--output', str(onnx_output)]) == 2
    assert 'pass --force' in capsys.readouterr().err
    assert onnx_output.read_bytes() == b'previous'
    # The input itself is never an output, even with --force.
    assert main([*args, '--force', '--output', str(source)]) == 2
    assert 'is the input' in capsys.readouterr().err
    # --force replaces it.
    other = tmp_path / 'other.pt'
    torch.save(randomize_batch_norm(TrainNet()).eval(), other)
    assert main(['convert', '--module-file', str(other), '--trust-module-file', '--frames', '4',
                 '--size', '8', '--force', '--output', str(output)]) == 0
    replaced = torch.load(output, weights_only=False).state_dict()
    previous = torch.load(io.BytesIO(first), weights_only=False).state_dict()
    assert replaced.keys() == previous.keys()
    assert not all(torch.equal(replaced[k], previous[k]) for k in previous)
    other.unlink()
    # An export that fails half-way leaves the previous file and no temporary.

    def broken_export(converted, frames, path, **kwargs):
        with open(path, 'wb') as stream:
            stream.write(b'partial')
        raise RuntimeError('ONNX export failed: disk full')

    monkeypatch.setattr(convert_module, 'export_onnx_4d', broken_export)
    capsys.readouterr()
    assert main([*args, '--force', '--output', str(onnx_output)]) == 1
    assert 'disk full' in capsys.readouterr().err
    assert onnx_output.read_bytes() == b'previous'
    fresh = tmp_path / 'fresh.onnx'
    assert main([*args, '--output', str(fresh)]) == 1
    assert not fresh.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        'net.pt', 'net_4d.onnx', 'net_4d.pt']


def test_bench_reports_both_models():
    model = randomize_batch_norm(TrainNet()).eval()
    clip = torch.randn(1, 3, 4, 8, 8)
    converted = to_4d(model, example_input=clip)
    figures = bench_converted(model, converted, clip, repeats=3, warmup=1)
    assert figures['original_ms'] > 0 and figures['converted_ms'] > 0
    assert figures['speedup'] == pytest.approx(figures['original_ms'] / figures['converted_ms'])
    assert figures['max_abs_diff'] < TOL
    assert figures['converted_input_shape'] == (4, 3, 8, 8)
    assert not model.training and not converted.training

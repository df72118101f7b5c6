"""X3D: PyTorchVideo's layout, the 4D-only model equal to the 5D reference, weights, figures.

Small clips (4 frames of 64x64, ``crop_size=64`` or 32 so that the head's window covers the map
or slides over it) keep the runs short; the figures are counted on the meta device.
"""

import math

from nets3d import randomize_batch_norm
import onnx
import pytest
import torch
from torch import nn

from action_recognition.data import synth_clips as synth
from action_recognition.deploy.convert import to_4d
from action_recognition.deploy.export import export_onnx
from action_recognition.models import create_model
from action_recognition.models import model_info
from action_recognition.models.analysis import check_4d_only_structure
from action_recognition.models.analysis import count_macs
from action_recognition.models.analysis import RankRecorder
from action_recognition.models.table import measure_reference
from action_recognition.models.x3d import load_pytorchvideo_weights
from action_recognition.models.x3d import X3D
from action_recognition.models.x3d import X3D5d
from action_recognition.spec import ModelSpec
from action_recognition.training.config import load_config
from action_recognition.training.config import make_spec
from action_recognition.training.model import build_model

FRAMES = 4
SIZE = 64
PARAMS_400 = 3_794_274  # PyTorchVideo's create_x3d(input_clip_length=16, input_crop_size=224)


pytestmark = pytest.mark.usefixtures('seeded_single_thread')


def reference(crop_size=SIZE, num_classes=5):
    """The 5D reference with non-trivial BN statistics and a classifier with spread logits."""
    model = create_model('x3d_m_5d', num_classes=num_classes, num_frames=FRAMES,
                         crop_size=crop_size)
    randomize_batch_norm(model)
    nn.init.normal_(model.get_classifier().weight, std=0.5)
    return model.eval()


def frames(clips=2, size=SIZE):
    return torch.randn(clips * FRAMES, 3, size, size)


def to_clips(x):
    return x.reshape(-1, FRAMES, *x.shape[1:]).transpose(1, 2)


def test_pytorchvideo_module_names_and_shapes():
    model5d = create_model('x3d_m_5d', num_classes=400, num_frames=16)
    model4d = create_model('x3d_m', num_classes=400, num_frames=16)
    state = model5d.state_dict()
    expected = {
        'blocks.0.conv.conv_t.weight': (24, 3, 1, 3, 3),  # the spatial conv, named conv_t
        'blocks.0.conv.conv_xy.weight': (24, 1, 5, 1, 1),  # the temporal depthwise conv
        'blocks.0.norm.running_var': (24,),
        'blocks.1.res_blocks.0.branch1_conv.weight': (24, 24, 1, 1, 1),
        'blocks.1.res_blocks.0.branch2.conv_b.weight': (54, 1, 3, 3, 3),
        'blocks.1.res_blocks.0.branch2.norm_b.1.block.0.weight': (8, 54, 1, 1, 1),
        'blocks.1.res_blocks.0.branch2.norm_b.1.block.2.bias': (54,),
        'blocks.2.res_blocks.0.branch1_norm.weight': (48,),
        'blocks.3.res_blocks.10.branch2.norm_b.1.block.0.weight': (16, 216, 1, 1, 1),
        'blocks.4.res_blocks.6.branch2.norm_c.weight': (192,),
        'blocks.4.res_blocks.0.branch2.norm_b.1.block.2.weight': (432, 32, 1, 1, 1),
        'blocks.5.pool.pre_conv.weight': (432, 192, 1, 1, 1),
        'blocks.5.pool.pre_norm.weight': (432,),
        'blocks.5.pool.post_conv.weight': (2048, 432, 1, 1, 1),
        'blocks.5.proj.weight': (400, 2048),
    }
    for key, shape in expected.items():
        assert tuple(state[key].shape) == shape, key
    # No BN on the first shortcut (24 -> 24 channels), no SE on odd blocks.
    assert 'blocks.1.res_blocks.0.branch1_norm.weight' not in state
    assert 'blocks.1.res_blocks.1.branch2.norm_b.1.block.0.weight' not in state
    assert 'blocks.2.res_blocks.1.branch1_conv.weight' not in state
    assert [len(model5d.blocks[i].res_blocks) for i in range(1, 5)] == [3, 5, 11, 7]
    assert list(model4d.state_dict()) == list(state)
    assert sum(p.numel() for p in model4d.parameters()) == PARAMS_400
    assert sum(p.numel() for p in model5d.parameters()) == PARAMS_400
    assert check_4d_only_structure(model4d) == []
    assert model4d.default_input_size == (256, 256) and model4d.num_features == 2048
    assert create_model('x3d_xs', num_classes=5, num_frames=4).default_input_size == (182, 182)


@pytest.mark.parametrize('crop_size, fused_stem', [(SIZE, False), (32, False), (SIZE, True)])
def test_4d_model_loads_the_5d_state_dict_and_gives_its_logits(crop_size, fused_stem):
    # crop 64: the window covers the 2x2 map; 32: it slides. fused_stem: one 5x3x3 stem conv.
    model5d = reference(crop_size)
    model4d = create_model('x3d_xs', num_classes=5, num_frames=FRAMES, crop_size=crop_size,
                           fused_stem=fused_stem)
    assert isinstance(model4d, X3D) and isinstance(model5d, X3D5d)
    model4d.load_state_dict(model5d.state_dict(), strict=True)
    model4d.eval()
    x = frames()
    with torch.no_grad():
        expected = model5d.forward_clip(to_clips(x))  # PyTorchVideo's Net.forward
        with RankRecorder() as ranks:
            got = model4d(x)
            features = model4d.forward_features(x)
        assert ranks.max_rank <= 4, ranks.violations[:3]
        torch.testing.assert_close(model5d(x), expected, atol=1e-5, rtol=0)
    assert expected.shape == (2, 5) and expected.abs().max() > 0.1
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)
    windows = math.ceil(SIZE / 32) - math.ceil(crop_size / 32) + 1
    assert features.shape == ((2 * FRAMES, 2048) if windows == 1 else
                              (2 * FRAMES, 2048, windows, windows))


def test_4d_model_exports_to_onnx_with_rank_4_only(tmp_path):
    model = create_model('x3d_xs', num_classes=5, num_frames=FRAMES, crop_size=SIZE)
    model.load_state_dict(reference().state_dict())
    spec = ModelSpec(model='x3d_xs', num_classes=5, num_frames=FRAMES, input_size=(SIZE, SIZE),
                     resize_short=SIZE, options={'crop_size': SIZE})
    report = export_onnx(model.eval(), spec, tmp_path / 'x3d_xs.onnx')
    assert report.four_d_only and report.problems == [] and report.max_rank <= 4
    assert report.max_abs_diff <= 1e-4


def test_fused_stem_exports_without_transposes_and_trains_both_stem_weights(tmp_path):
    # The separable stem's temporal conv runs between two transposes (which RKNN leaves on the
    # CPU at 16x224 and OpenVINO reorders around); the fused stem has none, and its weight is
    # computed from conv_t's and conv_xy's, so both still learn and the state dict is unchanged.
    spec = ModelSpec(model='x3d_xs', num_classes=5, num_frames=FRAMES, input_size=(SIZE, SIZE),
                     resize_short=SIZE, options={'crop_size': SIZE, 'fused_stem': True})
    ops = {}
    for fused in (False, True):
        model = create_model('x3d_xs', num_classes=5, num_frames=FRAMES, crop_size=SIZE,
                             fused_stem=fused)
        model.load_state_dict(reference().state_dict())
        report = export_onnx(model.eval(), spec, tmp_path / f'{fused}.onnx')
        assert report.four_d_only and report.max_rank <= 4 and report.max_abs_diff <= 1e-4
        ops[fused] = [node.op_type for node in onnx.load(tmp_path / f'{fused}.onnx').graph.node
                      if node.name.startswith('/model/blocks.0/')]
    assert ops[False].count('Transpose') == 2 and 'Transpose' not in ops[True]
    assert ops[True].count('Conv') == 1
    model = create_model('x3d_xs', num_classes=5, num_frames=FRAMES, fused_stem=True)
    model(frames()).square().mean().backward()
    stem = model.blocks[0].conv
    assert stem.conv_t.weight.grad.abs().sum() > 0 and stem.conv_xy.weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match='fused_stem'):
        create_model('x3d_m_5d', num_classes=5, num_frames=FRAMES, fused_stem=True)


def test_converter_turns_the_5d_reference_into_an_equal_4d_model():
    model5d = reference()
    x = frames()
    converted = to_4d(model5d, example_input=x[:FRAMES], verify=False)
    assert check_4d_only_structure(converted) == []
    with torch.no_grad():
        expected = model5d(x)
        with RankRecorder() as ranks:
            got = converted(x)
    assert ranks.max_rank <= 4, ranks.violations[:3]
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)
    # The input stem (conv_t then the depthwise conv_xy) is one convolution, whose weight is
    # computed from both: no module call to either, the same state dict, both get gradients.
    called = {str(n.target) for n in converted.graph.nodes if n.op == 'call_module'}
    assert not called & {'blocks.0.conv.conv_t', 'blocks.0.conv.conv_xy'}
    separable = to_4d(model5d, example_input=x[:FRAMES], fuse_stems=False)  # verified
    assert {'blocks.0.conv.conv_t', 'blocks.0.conv.conv_xy'} <= {
        str(n.target) for n in separable.graph.nodes if n.op == 'call_module'}
    assert set(converted.state_dict()) == set(model5d.state_dict())
    converted.train()(x).square().mean().backward()
    stem = converted.get_submodule('blocks.0.conv')
    assert stem.conv_t.weight.grad.abs().sum() > 0 and stem.conv_xy.weight.grad.abs().sum() > 0


def _bn_elements(model, x):
    """Elements through the model's BatchNorm layers (``count_macs`` counts one MAC each)."""
    total = [0]

    def hook(module, args, out):
        total[0] += args[0].numel()

    handles = [m.register_forward_hook(hook) for m in model.modules()
               if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    with torch.no_grad():
        model.eval()(x)
    for handle in handles:
        handle.remove()
    return total[0]


class _ClipForward(nn.Module):
    """The 5D reference's PyTorchVideo order (one ``post_conv`` per clip), on clips."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, clip):
        return self.model.forward_clip(clip)


@pytest.mark.parametrize('name', ['x3d_xs', 'x3d_s', 'x3d_m'])
def test_parameters_and_macs_hold_to_the_references(name):
    ref = model_info(name).reference
    assert ref is not None and ref.params_m == 3.8
    params, macs = measure_reference(name, ref)
    assert params == PARAMS_400
    assert macs / 1e9 == pytest.approx(ref.counted_gmac, rel=0.005)
    # Without BN, the convolutions and the fc are the paper's GFLOPs (multiply-adds).
    model = create_model(name, num_classes=400, num_frames=ref.num_frames).to('meta')
    x = torch.empty(ref.num_frames, 3, *ref.input_size, device='meta')
    conv_fc = macs - _bn_elements(model, x)
    assert conv_fc / 1e9 == pytest.approx(ref.gmac, rel=0.015)


def test_pytorchvideo_order_counts_pytorchvideos_x3d_m_figure():
    # 4.73 G: X3D-M at 16x224 (conv + fc), as fvcore counts PyTorchVideo's create_x3d.
    model = create_model('x3d_m_5d', num_classes=400, num_frames=16).to('meta')
    clip = torch.empty(1, 3, 16, 224, 224, device='meta')
    macs = count_macs(_ClipForward(model), clip) - _bn_elements(_ClipForward(model), clip)
    assert macs / 1e9 == pytest.approx(4.7324, rel=0.001)
    frame_wise = count_macs(model, clip[0].transpose(0, 1)) - macs - _bn_elements(
        model, clip[0].transpose(0, 1))
    assert frame_wise == 15 * 432 * 2048  # post_conv on 16 frames instead of 1 clip


def test_pytorchvideo_weights_load_from_a_file(tmp_path):
    model5d = reference()
    path = tmp_path / 'X3D_XS.pyth'
    torch.save({'model_state': model5d.state_dict(), 'epoch': 300}, path)
    model = create_model('x3d_xs', num_classes=5, num_frames=FRAMES, crop_size=SIZE,
                         pretrained=path)
    x = frames(1)
    with torch.no_grad():
        torch.testing.assert_close(model.eval()(x), model5d(x), atol=1e-5, rtol=0)
    report = load_pytorchvideo_weights(create_model('x3d_xs', num_classes=5, num_frames=FRAMES),
                                       path)
    assert len(report.loaded) == len(model5d.state_dict()) and report.kept == []


def test_other_class_counts_keep_or_take_the_classifier(tmp_path):
    path = tmp_path / 'kinetics.pt'
    torch.save(reference(num_classes=400).state_dict(), path)
    model = create_model('x3d_xs', num_classes=5, num_frames=FRAMES)
    fresh = model.get_classifier().weight.detach().clone()
    report = load_pytorchvideo_weights(model, path)  # 'auto': a new head for 5 classes
    assert report.kept == ['blocks.5.proj.weight', 'blocks.5.proj.bias']
    assert torch.equal(model.get_classifier().weight, fresh) and model.num_classes == 5
    load_pytorchvideo_weights(model, path, classifier='load')
    assert model.num_classes == 400 and model.get_classifier().out_features == 400
    assert torch.equal(model.state_dict()['blocks.5.proj.weight'],
                       torch.load(path, weights_only=True)['blocks.5.proj.weight'])


def test_foreign_state_dicts_are_refused_naming_the_keys(tmp_path):
    state = reference().state_dict()
    state['blocks.0.conv.spatial.weight'] = state.pop('blocks.0.conv.conv_t.weight')
    path = tmp_path / 'renamed.pt'
    torch.save(state, path)
    model = create_model('x3d_xs', num_classes=5, num_frames=FRAMES)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError, match=r'1 missing keys: blocks\.0\.conv\.conv_t\.weight; '
                                         r'1 unexpected keys: blocks\.0\.conv\.spatial'):
        load_pytorchvideo_weights(model, path)
    state = reference().state_dict()
    state['blocks.1.res_blocks.0.branch2.conv_b.weight'] = torch.zeros(54, 1, 3, 1, 1)
    with pytest.raises(ValueError, match=r'wrong shape: blocks\.1\.res_blocks\.0\.branch2\.'
                                         r'conv_b\.weight \(54, 1, 3, 1, 1\)'):
        load_pytorchvideo_weights(model, state)
    for key, value in model.state_dict().items():  # nothing was loaded
        assert torch.equal(value, before[key]), key


def test_a_few_training_steps_lower_the_loss():
    model = create_model('x3d_xs', num_classes=3, num_frames=FRAMES, crop_size=SIZE,
                         dropout=0.0).train()
    x, target = frames(), torch.tensor([0, 2])
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    losses = []
    for _ in range(4):
        loss = nn.functional.cross_entropy(model(x), target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] * 0.9, losses


def test_training_config_pretrained_loads_pytorchvideo_weights(tmp_path):
    # `model.pretrained` in a training config goes through the X3D loader, which reshapes the
    # 5D convolution weights (the generic loader would skip every one of them by shape).
    source = reference(crop_size=SIZE, num_classes=400)
    path = tmp_path / 'X3D_XS.pyth'
    torch.save({'model_state': source.state_dict()}, path)
    config = load_config(None, ['model.name=x3d_xs', f'model.num_frames={FRAMES}',
                                f'model.input_size=[{SIZE}, {SIZE}]',
                                f'model.pretrained={path}'])
    model = build_model(config, make_spec(config, synth.CLASSES))
    own = model.state_dict()
    conv = 'blocks.2.res_blocks.0.branch2.conv_b.weight'
    torch.testing.assert_close(own[conv], source.state_dict()[conv].reshape(own[conv].shape))
    assert model.num_classes == len(synth.CLASSES)  # the Kinetics classifier is not taken

"""Conv3dAs4d equals nn.Conv3d, and the rank recorder catches rank-5 tensors."""

import onnxruntime as ort
import pytest
import torch
from torch import nn

from action_recognition.deploy.onnx_export import export_graph
from action_recognition.io.onnx_check import check_onnx_4d_only
from action_recognition.models.analysis import assert_4d_only
from action_recognition.models.analysis import count_macs
from action_recognition.models.analysis import RankRecorder
from action_recognition.models.compose import compose_spatial_temporal
from action_recognition.models.compose import composed_weight
from action_recognition.models.compose import stack_clip_taps
from action_recognition.models.layers import Conv3dAs4d
from action_recognition.models.layers import from_temporal
from action_recognition.models.layers import shift_frames
from action_recognition.models.layers import to_temporal

CASES = [
    # in, out, kernel, stride, padding, dilation, groups
    (4, 6, (3, 3, 3), 1, 1, 1, 1),
    (4, 6, (3, 3, 3), 2, 1, 1, 1),
    (4, 8, (3, 3, 3), (2, 1, 1), (1, 1, 1), 1, 2),
    (6, 6, (3, 3, 3), (2, 2, 2), 1, 1, 6),
    (4, 6, (3, 1, 1), (2, 1, 1), (1, 0, 0), 1, 1),
    (4, 6, (1, 3, 3), (1, 2, 2), (0, 1, 1), 1, 1),
    (4, 6, (1, 1, 1), (2, 2, 2), 0, 1, 1),
    (4, 6, (5, 3, 1), (1, 1, 2), (2, 1, 0), (2, 1, 1), 2),
    (3, 4, (2, 2, 2), 1, 0, 1, 1),
    # Strides taken by subsample() (kernel-1 pooling) rather than a strided slice: a spatial
    # 1x3x3 with a temporal stride (P3D-B), 3x1x1 strided in T, H, W, uneven strides.
    (4, 6, (1, 3, 3), (2, 2, 2), (0, 1, 1), 1, 1),
    (4, 6, (3, 1, 1), (2, 2, 2), (1, 0, 0), 1, 2),
    (4, 6, (3, 1, 1), (3, 2, 3), (1, 0, 0), 1, 1),
    (4, 6, (3, 3, 3), (3, 1, 2), (1, 1, 1), 1, 1),
    # Depthwise and grouped kernels (the 'taps' form): X3D's 3x3x3 (strided and not), a
    # channel multiplier, a temporal stride with dilation, taps that reach past the clip.
    (6, 6, (3, 3, 3), (1, 2, 2), 1, 1, 6),
    (6, 6, (3, 3, 3), 1, 1, 1, 6),
    (4, 8, (3, 3, 3), 1, (0, 1, 1), 1, 4),
    (4, 8, (3, 5, 5), (2, 1, 1), (3, 2, 2), (3, 1, 1), 2),
    (6, 6, (5, 3, 3), (1, 1, 1), (6, 1, 1), 1, 3),
    (6, 6, (1, 3, 3), (1, 1, 1), (1, 1, 1), 1, 6),
]

# Forms that are exact for every setting ('pointwise' and 'temporal' only for their kernels).
ANY_KERNEL_FORMS = ('taps', 'stacked')


def _forms(kernel, stride, padding):
    conv = Conv3dAs4d(2, 2, kernel, stride=stride, padding=padding)
    return sorted({Conv3dAs4d.choose_form(conv.kernel_size, conv.stride, conv.padding, 2),
                   *ANY_KERNEL_FORMS})


FORM_CASES = [(*case, form) for case in CASES for form in _forms(*case[2:5])]


@pytest.mark.parametrize('cin,cout,kernel,stride,padding,dilation,groups,form', FORM_CASES)
def test_conv3d_as_4d_matches_conv3d(cin, cout, kernel, stride, padding, dilation, groups, form):
    torch.manual_seed(0)
    conv = nn.Conv3d(cin, cout, kernel, stride=stride, padding=padding, dilation=dilation,
                     groups=groups)
    conv4 = Conv3dAs4d.from_conv3d(conv)
    conv4.form = form
    batch, frames, height, width = 2, 7, 9, 10
    clip = torch.randn(batch, cin, frames, height, width)
    expected = conv(clip)  # [B, C, T', H', W']
    frames_in = clip.permute(0, 2, 1, 3, 4).reshape(batch * frames, cin, height, width)
    with RankRecorder() as ranks:
        got = conv4(frames_in, frames)
    assert ranks.max_rank <= 4
    out_t = conv4.out_frames(frames)
    assert out_t == expected.shape[2]
    expected_frames = expected.permute(0, 2, 1, 3, 4).reshape(batch * out_t, cout,
                                                              *expected.shape[3:])
    torch.testing.assert_close(got, expected_frames, atol=1e-5, rtol=1e-4)
    # Same cost as the 3D convolution it replaces.
    assert count_macs(conv4_wrapper(conv4, frames), frames_in) == count_macs(conv, clip)


def conv4_wrapper(conv4: Conv3dAs4d, frames: int) -> nn.Module:
    class Wrapper(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = conv4

        def forward(self, x):
            return self.conv(x, frames)

    return Wrapper()


def test_the_form_follows_the_kernel():
    assert Conv3dAs4d(8, 8, (1, 1, 1)).form == 'pointwise'
    assert Conv3dAs4d(8, 8, (1, 3, 3), padding=(0, 1, 1)).form == 'pointwise'
    assert Conv3dAs4d(8, 8, (1, 1, 1), stride=(2, 1, 1)).form == 'temporal'
    assert Conv3dAs4d(8, 8, (5, 1, 1), padding=(2, 0, 0), groups=8).form == 'temporal'
    assert Conv3dAs4d(8, 8, 3, padding=1, groups=8).form == 'taps'
    assert Conv3dAs4d(8, 8, 3, padding=1, groups=2).form == 'taps'
    assert Conv3dAs4d(8, 8, 3, padding=1).form == 'stacked'


def test_the_taps_form_keeps_depthwise_convolutions_depthwise():
    # No stacked copies: every Conv2d of X3D's depthwise 3x3x3 is depthwise, on [B*T, C, ...].
    conv4 = Conv3dAs4d(6, 6, 3, stride=(1, 2, 2), padding=1, groups=6, bias=False)
    calls = []
    original = torch.nn.functional.conv2d

    def spy(x, weight, *args, **kwargs):
        calls.append((tuple(x.shape), tuple(weight.shape)))
        return original(x, weight, *args, **kwargs)

    torch.nn.functional.conv2d = spy
    try:
        conv4(torch.randn(2 * 4, 6, 8, 8), 4)
    finally:
        torch.nn.functional.conv2d = original
    assert calls == [((8, 6, 8, 8), (6, 1, 3, 3))] * 3


def test_load_state_dict_converts_5d_weights():
    conv = nn.Conv3d(3, 5, 3, padding=1)
    conv4 = Conv3dAs4d(3, 5, 3, padding=1)
    conv4.load_state_dict(conv.state_dict())
    assert conv4.weight.dim() == 4
    torch.testing.assert_close(conv4.weight, conv.weight.reshape(5, 9, 3, 3))


def test_temporal_layout_round_trip():
    x = torch.randn(3 * 4, 5, 6, 7)
    t = to_temporal(x, 4)
    assert t.shape == (3, 5, 4, 42)
    torch.testing.assert_close(from_temporal(t, 6, 7), x)


def test_rank_recorder_catches_conv3d():
    model = nn.Sequential(nn.Conv3d(2, 2, 3))
    with pytest.raises(AssertionError, match='Conv3d'):
        assert_4d_only(model, torch.randn(1, 2, 4, 5, 5))
    with RankRecorder() as ranks:
        model(torch.randn(1, 2, 4, 5, 5))
    assert ranks.max_rank == 5 and ranks.violations


def test_shift_frames_stays_inside_each_clip():
    # Two clips of 4 frames, frame value = 10 * clip + t + 1.
    x = (torch.arange(8.0) + 1 + 6 * (torch.arange(8) // 4)).reshape(8, 1, 1, 1)
    prev, same, nxt, far = shift_frames(x, [-1, 0, 2, 4], 4)
    assert prev.flatten().tolist() == [0, 1, 2, 3, 0, 11, 12, 13]
    assert same is x and far is None
    assert nxt.flatten().tolist() == [3, 4, 0, 0, 13, 14, 0, 0]


@pytest.mark.parametrize('groups', [1, 8])
def test_same_convolutions_export_with_a_dynamic_batch_of_clips(groups):
    # The frame shifts keep their shapes known to the TorchScript exporter (a traced size in
    # the weight's reshape hid the kernel's shape), and the masks hold for any number of clips.
    torch.manual_seed(0)
    conv = nn.Conv3d(8, 8, 3, padding=1, groups=groups)
    conv4 = conv4_wrapper(Conv3dAs4d.from_conv3d(conv), 4).eval()
    assert conv4.conv.form == ('stacked' if groups == 1 else 'taps')
    proto = export_graph(conv4, torch.randn(4, 8, 10, 10), input_axis='batch_x_frames',
                         exporter='torchscript')
    assert check_onnx_4d_only(proto) == []
    frames = torch.randn(3 * 4, 8, 10, 10)  # three clips
    session = ort.InferenceSession(proto.SerializeToString(),
                                   providers=['CPUExecutionProvider'])
    got = session.run(None, {session.get_inputs()[0].name: frames.numpy()})[0]
    with torch.no_grad():
        expected = conv(frames.reshape(3, 4, 8, 10, 10).transpose(1, 2))
    expected = expected.transpose(1, 2).reshape(12, 8, 10, 10)
    torch.testing.assert_close(torch.from_numpy(got), expected, atol=1e-5, rtol=1e-4)


def test_stack_clip_taps_stacks_shifted_frames_tap_major_inside_each_clip():
    x = torch.randn(3 * 5, 2, 4, 6)  # three clips of 5 frames
    offsets = [-2, -1, 0, 1, 2]
    stacked = stack_clip_taps(x, offsets, 5)
    assert stacked.shape == (15, 10, 4, 6)
    for k, shifted in enumerate(shift_frames(x, offsets, 5)):
        torch.testing.assert_close(stacked[:, 2 * k:2 * k + 2], shifted, atol=0, rtol=0)


@pytest.mark.parametrize('kt, dt, stride, padding', [(5, 1, 2, 1), (3, 2, 1, 0), (1, 1, 1, 1)])
def test_composed_spatial_temporal_convolution_equals_the_pair(kt, dt, stride, padding):
    torch.manual_seed(0)
    spatial = nn.Conv3d(3, 6, (1, 3, 3), stride=(1, stride, stride),
                        padding=(0, padding, padding), bias=False)
    temporal = nn.Conv3d(6, 6, (kt, 1, 1), padding=(dt * (kt - 1) // 2, 0, 0),
                         dilation=(dt, 1, 1), groups=6, bias=False)
    spatial4, temporal4 = Conv3dAs4d.from_conv3d(spatial), Conv3dAs4d.from_conv3d(temporal)
    assert compose_spatial_temporal(spatial4, temporal4) is temporal4
    weight, offsets = composed_weight(spatial4, temporal4)
    assert weight.shape == (6, 3 * kt, 3, 3)
    clips = torch.randn(2, 3, 6, 9, 9)
    frames = clips.transpose(1, 2).reshape(12, 3, 9, 9)
    with torch.no_grad(), RankRecorder() as ranks:
        got = nn.functional.conv2d(stack_clip_taps(frames, offsets, 6), weight, stride=stride,
                                   padding=padding)
    assert ranks.max_rank <= 4
    with torch.no_grad():
        expected = temporal(spatial(clips)).transpose(1, 2).reshape(got.shape)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-4)


def test_compose_refuses_pairs_that_do_not_compose():
    spatial = Conv3dAs4d(3, 6, (1, 3, 3), padding=(0, 1, 1), bias=False)
    with pytest.raises(ValueError, match='ungrouped, bias-free'):
        compose_spatial_temporal(Conv3dAs4d(3, 6, (1, 3, 3)), Conv3dAs4d(6, 6, (3, 1, 1),
                                                                          padding=(1, 0, 0),
                                                                          groups=6))
    with pytest.raises(ValueError, match='"same" depthwise'):
        compose_spatial_temporal(spatial, Conv3dAs4d(6, 6, (3, 1, 1), groups=6))  # not "same"
    with pytest.raises(ValueError, match='"same" depthwise'):
        compose_spatial_temporal(spatial, Conv3dAs4d(6, 6, (3, 1, 1), padding=(1, 0, 0)))

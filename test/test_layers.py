"""Conv3dAs4d equals nn.Conv3d, and the rank recorder catches rank-5 tensors."""

import pytest
import torch
from torch import nn

from action_recognition.models.analysis import assert_4d_only
from action_recognition.models.analysis import count_macs
from action_recognition.models.analysis import RankRecorder
from action_recognition.models.layers import Conv3dAs4d
from action_recognition.models.layers import from_temporal
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
]


@pytest.mark.parametrize('cin,cout,kernel,stride,padding,dilation,groups', CASES)
def test_conv3d_as_4d_matches_conv3d(cin, cout, kernel, stride, padding, dilation, groups):
    torch.manual_seed(0)
    conv = nn.Conv3d(cin, cout, kernel, stride=stride, padding=padding, dilation=dilation,
                     groups=groups)
    conv4 = Conv3dAs4d.from_conv3d(conv)
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

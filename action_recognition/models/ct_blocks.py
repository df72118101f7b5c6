"""The video blocks of CT-Net (paper 004): the CT-Module, Tensor Excitation and the ablations.

Every module works on frames ``[B*T, C, H, W]`` (the T frames of a clip contiguous; ``T`` is
fixed at construction) and keeps their shape. CT-Net puts one of them in place of the 3x3
convolution (with its BN and ReLU) of chosen ResNet bottlenecks (:class:`VideoBottleneck`).

CT-Module (``C = C1 x C2``, ``C1 = 2^floor(log2(C)/2)``, ``C2 = 2^ceil(log2(C)/2)``)::

    x [B*T, C, H, W]   channel c = i*C2 + j   (i < C1, j < C2)
      |-- sub-operation 1: mixes the C2 channels of each i (grouped convs, groups=C1)
      |     spatial  1x3x3 conv -> BN -> ReLU -> spatial excitation   (Eq. 3, 6)
      |     temporal 3x1x1 conv -> BN -> ReLU -> temporal excitation  (Eq. 4, 7)
      |     sum (Eq. 5) -> channel excitation (Eq. 8)
      |-- point-wise conv 1x1 (C -> C) -> BN -> ReLU     (between the sub-operations only)
      |-- channel permutation (index_select): order c' = j*C1 + i
      |-- sub-operation 2: mixes the C1 channels of each j (groups=C2), same structure
      |-- inverse permutation
    out [B*T, C, H, W]

Tensor Excitation (appendix A.2, Fig. 4), reduction ``C/4``, every conv grouped like its
sub-operation: spatial ``X * sigmoid(conv3x3(ReLU(BN(conv3x3(mean_T X)))))``, temporal
``X * sigmoid(conv3x1(ReLU(BN(conv3x1(mean_HW X)))))``, channel
``R * sigmoid(conv1x1(ReLU(BN(conv1x1(mean_HW R)))))`` (per frame). The choices where the paper's
text is ambiguous are listed in :mod:`~action_recognition.models.ctnet`.

The ablations of Table 2a (``block=``): :class:`C3DModule` (full 3x3x3, BN, ReLU),
:class:`R2Plus1DModule` (1x3x3 C->C, BN, ReLU, 3x1x1 C->C, BN, ReLU) and :class:`CSNModule`
(1x1x1, BN, ReLU, depthwise 3x3x3, BN, ReLU); :func:`video_module` builds one by name.

Everything is 4D: temporal convolutions run on the ``[B, C, T, H*W]`` layout
(:func:`~action_recognition.models.layers.to_temporal`, :class:`Conv3dAs4d`), the channel
tensorization is a grouped ``Conv2d`` after an ``index_select`` permutation, and no tensor,
parameter or buffer has rank above 4.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch import Tensor

from action_recognition.models.layers import Conv3dAs4d
from action_recognition.models.layers import kaiming_normal_fan_out_
from action_recognition.models.resnet import BottleneckFrame
from action_recognition.models.resnet import conv1x1
from action_recognition.models.resnet import conv3x3

__all__ = [
    'BLOCK_TYPES', 'channel_split', 'SpatialExcitation', 'TemporalExcitation',
    'ChannelExcitation', 'TensorSeparableConv', 'CTModule', 'C3DModule', 'R2Plus1DModule',
    'CSNModule', 'VideoBottleneck', 'init_video_modules', 'video_module',
]

BLOCK_TYPES = ('ct', 'c3d', 'r2plus1d', 'csn')


def channel_split(channels: int) -> tuple[int, int]:
    """``C -> (C1, C2)`` with ``C1 = 2^floor(log2(C)/2)``, ``C2 = 2^ceil(log2(C)/2)``.

    ``64 -> (8, 8)``, ``128 -> (8, 16)``, ``256 -> (16, 16)``, ``512 -> (16, 32)``. Raises
    ``ValueError`` unless ``C`` is a power of two of at least 4.
    """
    if channels < 4 or channels & (channels - 1):
        raise ValueError(f'CT-Module channels must be a power of two >= 4, got {channels}')
    half = math.log2(channels) / 2
    return 2 ** math.floor(half), 2 ** math.ceil(half)


def _temporal_conv(in_channels: int, out_channels: int, groups: int) -> Conv3dAs4d:
    """A 3x1x1 convolution (padding 1 in time, no bias) on frames, computed in 4D."""
    return Conv3dAs4d(in_channels, out_channels, (3, 1, 1), padding=(1, 0, 0), groups=groups,
                      bias=False)


def _check_frames(x: Tensor, num_frames: int, channels: int) -> None:
    if x.dim() != 4 or x.shape[1] != channels or x.shape[0] % num_frames:
        raise ValueError(
            f'expected frames [B*{num_frames}, {channels}, H, W], got {tuple(x.shape)}')


class SpatialExcitation(nn.Module):
    """Eq. 6: ``X * sigmoid(S-TSConv(T-Pool(X)))`` on frames ``[B*T, C, H, W]`` (same shape out).

    The frames of a clip are averaged (``[B, C, H, W]``), two grouped 3x3 convs (``C -> C/r``
    with BN and ReLU, ``C/r -> C``) and a sigmoid give one spatial map per clip and channel, which
    multiplies every frame.
    """

    def __init__(self, channels: int, groups: int, num_frames: int, reduction: int = 4) -> None:
        super().__init__()
        hidden = channels // reduction
        self.channels = channels
        self.num_frames = num_frames
        self.fc1 = conv3x3(channels, hidden, groups=groups)
        self.bn = nn.BatchNorm2d(hidden)
        self.relu = nn.ReLU(inplace=True)
        self.fc2 = conv3x3(hidden, channels, groups=groups)

    def forward(self, x: Tensor) -> Tensor:
        frames, channels, height, width = x.shape
        clips = frames // self.num_frames
        pooled = x.reshape(clips, self.num_frames, -1).mean(1)  # [B, C*H*W]
        pooled = pooled.reshape(clips, channels, height, width)
        attention = torch.sigmoid(self.fc2(self.relu(self.bn(self.fc1(pooled)))))
        out = x.reshape(clips, self.num_frames, channels, height * width) * attention.reshape(
            clips, 1, channels, height * width)
        return out.reshape(frames, channels, height, width)


class TemporalExcitation(nn.Module):
    """Eq. 7: ``X * sigmoid(T-TSConv(S-Pool(X)))`` on frames ``[B*T, C, H, W]`` (same shape out).

    Each frame is averaged over ``H, W`` (``[B*T, C, 1, 1]``); two grouped 3x1x1 convs
    (``C -> C/r`` with BN and ReLU, ``C/r -> C``) run along time and a sigmoid gives one weight per
    frame and channel.
    """

    def __init__(self, channels: int, groups: int, num_frames: int, reduction: int = 4) -> None:
        super().__init__()
        hidden = channels // reduction
        self.num_frames = num_frames
        self.fc1 = _temporal_conv(channels, hidden, groups)
        self.bn = nn.BatchNorm2d(hidden)
        self.relu = nn.ReLU(inplace=True)
        self.fc2 = _temporal_conv(hidden, channels, groups)

    def forward(self, x: Tensor) -> Tensor:
        pooled = x.mean((2, 3), keepdim=True)  # [B*T, C, 1, 1]
        hidden = self.relu(self.bn(self.fc1(pooled, self.num_frames)))
        return x * torch.sigmoid(self.fc2(hidden, self.num_frames))


class ChannelExcitation(nn.Module):
    """Eq. 8: ``R * sigmoid(PW-TSConv(S-Pool(R)))`` on frames ``[B*T, C, H, W]`` (same shape out).

    Per frame: average over ``H, W``, grouped 1x1 convs ``C -> C/r`` (BN, ReLU) and ``C/r -> C``,
    sigmoid. The 1x1 convs on the pooled ``[B*T, C]`` vectors are computed as one batched matrix
    product over the groups (same result and MACs; PyTorch's CPU fallback for small grouped 1x1
    convs loops over the groups and was a third of the CT-Net's time on one thread).
    """

    def __init__(self, channels: int, groups: int, reduction: int = 4) -> None:
        super().__init__()
        hidden = channels // reduction
        self.fc1 = nn.Conv2d(channels, hidden, 1, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(hidden)
        self.relu = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(hidden, channels, 1, groups=groups, bias=False)

    @staticmethod
    def _grouped_pointwise(v: Tensor, conv: nn.Conv2d) -> Tensor:
        """``conv`` (grouped 1x1, no bias) on vectors ``[N, C_in]`` -> ``[N, C_out]``."""
        groups = conv.groups
        weight = conv.weight.reshape(groups, conv.out_channels // groups, -1)  # [G, Co/G, Ci/G]
        grouped = v.reshape(v.shape[0], groups, -1).transpose(0, 1)  # [G, N, Ci/G]
        out = torch.bmm(grouped, weight.transpose(1, 2))  # [G, N, Co/G]
        return out.transpose(0, 1).reshape(v.shape[0], conv.out_channels)

    def forward(self, x: Tensor) -> Tensor:
        pooled = x.mean((2, 3))  # [B*T, C]
        hidden = self.bn(self._grouped_pointwise(pooled, self.fc1)[:, :, None, None])
        attention = self._grouped_pointwise(self.relu(hidden).flatten(1), self.fc2)
        return x * torch.sigmoid(attention)[:, :, None, None]


class TensorSeparableConv(nn.Module):
    """One CT sub-operation on frames ``[B*T, C, H, W]`` (same shape out), Eq. 3-8.

    Channels are mixed only within ``groups`` contiguous groups of ``C / groups`` channels: a
    spatial 1x3x3 and a temporal 3x1x1 grouped conv (each with BN and ReLU) run in parallel, each
    followed by its excitation (when ``excitation``), are summed and pass the channel excitation.
    Equal to ``nn.Conv3d`` branches whose dense weights are zero outside the diagonal blocks.
    """

    def __init__(self, channels: int, groups: int, num_frames: int, *, excitation: bool = True,
                 reduction: int = 4) -> None:
        super().__init__()
        if channels % groups or (excitation and (channels // reduction) % groups):
            raise ValueError(
                f'{channels} channels (and {channels // reduction} attention channels) must be '
                f'divisible by {groups} groups')
        self.channels = channels
        self.groups = groups
        self.num_frames = num_frames
        self.spatial = conv3x3(channels, channels, groups=groups)
        self.spatial_bn = nn.BatchNorm2d(channels)
        self.temporal = _temporal_conv(channels, channels, groups)
        self.temporal_bn = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU(inplace=True)
        self.spatial_excitation: nn.Module = nn.Identity()
        self.temporal_excitation: nn.Module = nn.Identity()
        self.channel_excitation: nn.Module = nn.Identity()
        if excitation:
            self.spatial_excitation = SpatialExcitation(channels, groups, num_frames, reduction)
            self.temporal_excitation = TemporalExcitation(channels, groups, num_frames, reduction)
            self.channel_excitation = ChannelExcitation(channels, groups, reduction)

    def forward(self, x: Tensor) -> Tensor:
        spatial = self.relu(self.spatial_bn(self.spatial(x)))
        temporal = self.relu(self.temporal_bn(self.temporal(x, self.num_frames)))
        out = self.spatial_excitation(spatial) + self.temporal_excitation(temporal)
        return self.channel_excitation(out)


class CTModule(nn.Module):
    """The CT-Module with K = 2 sub-dimensions, on frames ``[B*T, C, H, W]`` (same shape out).

    See the module docstring for the flow. ``pointwise`` adds the 1x1 conv (BN, ReLU) between the
    two sub-operations; ``excitation`` adds Tensor Excitation. The channel permutations are
    ``index_select`` with fixed index buffers (rank 1, not saved in the state dict).
    """

    def __init__(self, channels: int, num_frames: int, *, pointwise: bool = True,
                 excitation: bool = True, reduction: int = 4) -> None:
        super().__init__()
        c1, c2 = channel_split(channels)
        self.channels = channels
        self.split = (c1, c2)
        self.num_frames = num_frames
        self.sub1 = TensorSeparableConv(channels, c1, num_frames, excitation=excitation,
                                        reduction=reduction)
        self.pointwise: nn.Module = nn.Identity()
        if pointwise:
            self.pointwise = nn.Sequential(conv1x1(channels, channels), nn.BatchNorm2d(channels),
                                           nn.ReLU(inplace=True))
        self.sub2 = TensorSeparableConv(channels, c2, num_frames, excitation=excitation,
                                        reduction=reduction)
        # to_sub2[j*C1 + i] = i*C2 + j: gathers the C1 channels of each j next to each other.
        index = torch.arange(channels).reshape(c1, c2).t().reshape(-1)
        self.register_buffer('to_sub2', index, persistent=False)
        self.register_buffer('from_sub2', torch.argsort(index), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        _check_frames(x, self.num_frames, self.channels)
        out = self.pointwise(self.sub1(x))
        out = self.sub2(out.index_select(1, self.to_sub2))
        return out.index_select(1, self.from_sub2)


class C3DModule(nn.Module):
    """Table 2a's C3D-Module: full 3x3x3 conv (C -> C), BN, ReLU on frames ``[B*T, C, H, W]``."""

    def __init__(self, channels: int, num_frames: int) -> None:
        super().__init__()
        self.num_frames = num_frames
        self.conv = Conv3dAs4d(channels, channels, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.relu(self.bn(self.conv(x, self.num_frames)))


class R2Plus1DModule(nn.Module):
    """Table 2a's R(2+1)D-Module on frames ``[B*T, C, H, W]``: 1x3x3 (C -> mid), BN, ReLU,
    3x1x1 (mid -> C), BN, ReLU; ``mid = C`` as in the paper's ablation."""

    def __init__(self, channels: int, num_frames: int, mid_channels: int | None = None) -> None:
        super().__init__()
        mid = mid_channels or channels
        self.num_frames = num_frames
        self.spatial = conv3x3(channels, mid)
        self.spatial_bn = nn.BatchNorm2d(mid)
        self.temporal = _temporal_conv(mid, channels, 1)
        self.temporal_bn = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.spatial_bn(self.spatial(x)))
        return self.relu(self.temporal_bn(self.temporal(out, self.num_frames)))


class CSNModule(nn.Module):
    """Table 2a's CSN-Module on frames ``[B*T, C, H, W]``: 1x1x1 (C -> C), BN, ReLU, depthwise
    3x3x3, BN, ReLU (interaction-preserved channel separation)."""

    def __init__(self, channels: int, num_frames: int) -> None:
        super().__init__()
        self.num_frames = num_frames
        self.pointwise = conv1x1(channels, channels)
        self.pointwise_bn = nn.BatchNorm2d(channels)
        self.depthwise = Conv3dAs4d(channels, channels, 3, padding=1, groups=channels,
                                    bias=False)
        self.depthwise_bn = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.pointwise_bn(self.pointwise(x)))
        return self.relu(self.depthwise_bn(self.depthwise(out, self.num_frames)))


class VideoBottleneck(BottleneckFrame):
    """A ResNet bottleneck whose 3x3 conv, BN and ReLU are replaced by a video module ``st``.

    Frames ``[B*T, C_in, H, W] -> [B*T, 4*planes, H, W]`` (not strided): ``conv1`` (1x1) ->
    ``bn1`` -> ReLU -> ``st`` -> ``conv3`` (1x1) -> ``bn3`` -> + shortcut -> ReLU. ``conv1``,
    ``bn1``, ``conv3``, ``bn3`` and ``downsample`` keep torchvision's names and load from ImageNet;
    torchvision's ``conv2``/``bn2`` of this block are not used (``replaced_2d``).
    """

    replaced_2d = ('conv2', 'bn2')
    new_modules = ('st',)

    def __init__(self, inplanes: int, planes: int, st: nn.Module,
                 downsample: nn.Module | None = None) -> None:
        super().__init__()
        self._add_input_layers(inplanes, planes)
        self.st = st
        self._add_output_layers(planes, downsample)

    def middle(self, x: Tensor) -> Tensor:
        """The video module ``st``: ``[B*T, planes, H, W]`` (same shape out)."""
        out: Tensor = self.st(x)
        return out


def init_video_modules(module: nn.Module) -> None:
    """Kaiming-normal (fan-out) for the 4D-stored 3D convs, as the authors initialise Conv3d."""
    for m in module.modules():
        if isinstance(m, Conv3dAs4d):
            kaiming_normal_fan_out_(m)


def video_module(block: str, planes: int, num_frames: int, *, pointwise: bool,
                  excitation: bool) -> nn.Module:
    """The module that replaces a bottleneck's 3x3 conv (with its BN and ReLU)."""
    if block == 'ct':
        return CTModule(planes, num_frames, pointwise=pointwise, excitation=excitation)
    if block == 'c3d':
        return C3DModule(planes, num_frames)
    if block == 'r2plus1d':
        return R2Plus1DModule(planes, num_frames)
    return CSNModule(planes, num_frames)


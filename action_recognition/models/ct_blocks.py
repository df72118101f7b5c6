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
      |-- channel permutation (transpose_channels(C1, C2)): order c' = j*C1 + i
      |-- sub-operation 2: mixes the C1 channels of each j (groups=C2), same structure
      |-- inverse permutation (transpose_channels(C2, C1))
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
tensorization is a grouped ``Conv2d`` after a channel permutation, and no tensor, parameter or
buffer has rank above 4.

NPU forms (issue 14; Arm Vela for Ethos-U after PyTorch -> TFLite -> int8, Rockchip RKNN,
OpenVINO), each with the same result as the plain form:

- The channel permutation is a transpose of the channel grid, ``[N, C1, C2, H*W] -> [N, C2, C1,
  H*W]`` (:func:`transpose_channels`, a reshape-transpose-reshape of rank 4), not an
  ``index_select`` (a GATHER, which Vela leaves on the CPU and with which OpenVINO's CPU plugin
  computed CT-Net-R50's logits 0.05 off, now 5e-7).
- Every mean over ``H, W`` is an average pooling over the map
  (:func:`~action_recognition.models.layers.spatial_mean`) and the spatial excitation's mean
  over a clip's frames a ``T x 1`` average pooling on the temporal layout ``[B, C, T, H*W]``:
  no MEAN on the batch of frames, which Vela refuses, and no reshape of the frames to
  ``[B, T, C, H*W]``, which RKNN ran on its CPU.
- The channel excitation's grouped point-wise products are grouped 1x1 ``Conv2d`` on the pooled
  ``[B*T, C, 1, 1]`` (the modules' own call), not the batched matrix product over the groups
  used before (a BATCH_MATMUL, which Vela does not take with per-channel int8 weights).
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch import Tensor
import torch.nn.functional as F

from action_recognition.models.layers import Conv3dAs4d
from action_recognition.models.layers import from_temporal
from action_recognition.models.layers import kaiming_normal_fan_out_
from action_recognition.models.layers import spatial_mean
from action_recognition.models.layers import to_temporal
from action_recognition.models.resnet import BottleneckFrame
from action_recognition.models.resnet import conv1x1
from action_recognition.models.resnet import conv3x3

__all__ = [
    'BLOCK_TYPES', 'channel_split', 'transpose_channels', 'SpatialExcitation',
    'TemporalExcitation', 'ChannelExcitation', 'TensorSeparableConv', 'CTModule', 'C3DModule',
    'R2Plus1DModule', 'CSNModule', 'VideoBottleneck', 'init_video_modules', 'video_module',
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


def transpose_channels(x: Tensor, rows: int, cols: int) -> Tensor:
    """``[N, rows*cols, H, W]``: channel ``i*cols + j`` moves to ``j*rows + i`` (``i < rows``).

    The channels as a ``rows x cols`` grid, transposed: a reshape to ``[N, rows, cols, H*W]``,
    a transpose of axes 1 and 2 and a reshape back (rank 4 throughout; no gather).
    """
    _, channels, height, width = x.shape
    grid = x.reshape(-1, rows, cols, height * width).transpose(1, 2)
    return grid.reshape(-1, channels, height, width)


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
    multiplies every frame. Both the average and the product run on the temporal layout
    ``[B, C, T, H*W]`` (:func:`~action_recognition.models.layers.to_temporal`, as the temporal
    convs do; the average is a ``T x 1`` average pooling): RKNN ran the plain reshapes of the
    frames to ``[B, T, C, H*W]`` on its CPU, not this layout change.
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
        _, channels, height, width = x.shape
        clips = to_temporal(x, self.num_frames)  # [B, C, T, H*W]
        pooled = F.avg_pool2d(clips, (self.num_frames, 1))  # [B, C, 1, H*W]
        pooled = pooled.reshape(-1, channels, height, width)
        attention = torch.sigmoid(self.fc2(self.relu(self.bn(self.fc1(pooled)))))
        out = clips * attention.reshape(-1, channels, 1, height * width)
        return from_temporal(out, height, width)


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
        pooled = spatial_mean(x)  # [B*T, C, 1, 1]
        hidden = self.relu(self.bn(self.fc1(pooled, self.num_frames)))
        return x * torch.sigmoid(self.fc2(hidden, self.num_frames))


class ChannelExcitation(nn.Module):
    """Eq. 8: ``R * sigmoid(PW-TSConv(S-Pool(R)))`` on frames ``[B*T, C, H, W]`` (same shape out).

    Per frame: average over ``H, W``, grouped 1x1 convs ``C -> C/r`` (BN, ReLU) and ``C/r -> C``,
    sigmoid. The convs run as they are on the pooled ``[B*T, C, 1, 1]`` maps: NPU toolchains take
    a grouped 1x1 ``Conv2d``, not the batched matrix product over the groups that computed them
    before (same result and MACs). PyTorch's CPU kernel for these small grouped convs is slower
    than that product by tens of microseconds a call, lost in a CT-Net pass: on one thread,
    CT-Net-R50 at 8x112x112 took 209 ms (product: 210 ms), 772 ms at 8x224x224 (762 ms), and a
    training step at 8x112x112 741 ms (744 ms).
    """

    def __init__(self, channels: int, groups: int, reduction: int = 4) -> None:
        super().__init__()
        hidden = channels // reduction
        self.fc1 = nn.Conv2d(channels, hidden, 1, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(hidden)
        self.relu = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(hidden, channels, 1, groups=groups, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        hidden = self.relu(self.bn(self.fc1(spatial_mean(x))))  # [B*T, C/r, 1, 1]
        return x * torch.sigmoid(self.fc2(hidden))


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
    transposes of the ``C1 x C2`` channel grid (:func:`transpose_channels`): :meth:`to_sub2`
    and its inverse :meth:`from_sub2`.
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

    def to_sub2(self, x: Tensor) -> Tensor:
        """Channel ``i*C2 + j`` -> ``j*C1 + i``: the C1 channels of each j next to each other."""
        return transpose_channels(x, *self.split)

    def from_sub2(self, x: Tensor) -> Tensor:
        """The inverse of :meth:`to_sub2`: channel ``j*C1 + i`` -> ``i*C2 + j``."""
        c1, c2 = self.split
        return transpose_channels(x, c2, c1)

    def forward(self, x: Tensor) -> Tensor:
        _check_frames(x, self.num_frames, self.channels)
        out = self.pointwise(self.sub1(x))
        return self.from_sub2(self.sub2(self.to_sub2(out)))


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


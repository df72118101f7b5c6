"""CT-Net (Li et al., ICLR 2021) and its TSN baseline, 4D-only.

Paper 004, "CT-Net: Channel Tensorization Network for Video Classification". A 2D ResNet is run
on every frame ``[B*T, C, H, W]``; in 7 of its bottlenecks (none strided: block 1 of ``layer1``,
blocks 1 and 3 of ``layer2``, blocks 1, 3 and 5 of ``layer3``, block 1 of ``layer4``, 0-based)
the 3x3 convolution (with its BN and ReLU) is replaced by a CT-Module; the 1x1 convolutions
around it stay (and load from ImageNet). The clip's frame logits are averaged (TSN consensus).

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
``R * sigmoid(conv1x1(ReLU(BN(conv1x1(mean_HW R)))))`` (per frame).

Choices where the text is ambiguous (the authors' code decides; it gives the counted figures of
``shared/papers/README.md``):

- The CT-Module replaces ``conv2``, ``bn2`` and the ReLU after them; the block then goes on with
  ``conv3``/``bn3``, the shortcut and the final ReLU. Each spatial/temporal branch conv has its
  own BN and ReLU.
- Sub-operation 1 mixes groups of ``C2`` channels (``groups=C1``), sub-operation 2 groups of
  ``C1`` channels, as in the authors' code (the paper's Table 1 names the first one ``C1``).
  Parameters and MACs are the same in either order.
- The channel split is the authors' power-of-two split, not ``floor(sqrt(C))`` as the text says.
- The point-wise conv (with BN and ReLU) works on the channel order of sub-operation 1.
- Channel excitation pools over ``H, W`` per frame (not over ``T``).

Figures at the paper's settings (8 frames, 256x256, 174 classes, batch 1, whole model),
measured with :func:`action_recognition.models.analysis.count_macs` (conv + fc + BN, one MAC per
BN element): TSN-R50 23.87 M / 42.83 GMAC (paper 23.9 M / 43.0), CT-Net-R50 20.96 M / 37.18
GMAC (paper 21.0 M / 37.3). ``shared/papers/README.md`` counts two MACs per BN element (scale and
shift), 42.94 and 37.32; adding the BN elements once more to ``count_macs`` gives its figures to
the last digit, for the ablations too (:data:`ABLATION_REFERENCES`, ``test/test_ctnet.py``).

Ablation modules in the same positions (``block=``): ``'c3d'`` (full 3x3x3, BN, ReLU),
``'r2plus1d'`` (1x3x3 C->C, BN, ReLU, 3x1x1 C->C, BN, ReLU), ``'csn'`` (1x1x1, BN, ReLU,
depthwise 3x3x3, BN, ReLU); ``pointwise=False`` and ``excitation=False`` give Table 2g's rows.

Everything is 4D: temporal convolutions run on the ``[B, C, T, H*W]`` layout
(:func:`~action_recognition.models.layers.to_temporal`, :class:`Conv3dAs4d`), the channel
tensorization is a grouped ``Conv2d`` after an ``index_select`` permutation, and no tensor,
parameter or buffer has rank above 4.
"""

from __future__ import annotations

from collections.abc import Mapping
from collections.abc import Sequence
import math
import os
from typing import Any

import torch
from torch import nn
from torch import Tensor

from action_recognition.models.layers import Conv3dAs4d
from action_recognition.models.registry import PaperReference
from action_recognition.models.registry import register_model
from action_recognition.models.resnet import Bottleneck
from action_recognition.models.resnet import conv1x1
from action_recognition.models.resnet import conv3x3
from action_recognition.models.resnet import ImageNetLoadReport
from action_recognition.models.resnet import init_resnet_weights
from action_recognition.models.resnet import load_resnet_imagenet
from action_recognition.models.resnet import ResNet2d
from action_recognition.models.resnet import RESNET_STAGES

__all__ = [
    'channel_split', 'SpatialExcitation', 'TemporalExcitation', 'ChannelExcitation',
    'TensorSeparableConv', 'CTModule', 'C3DModule', 'R2Plus1DModule', 'CSNModule',
    'VideoBottleneck', 'CTNet', 'BLOCK_TYPES', 'REPLACED_BLOCKS', 'ABLATION_REFERENCES',
    'TSN_R50_REFERENCE', 'CT_NET_R50_REFERENCE', 'CT_NET_R101_REFERENCE',
    'load_resnet_imagenet', 'ImageNetLoadReport', 'tsn_r50', 'ct_net_r50', 'ct_net_r101',
]

BLOCK_TYPES = ('ct', 'c3d', 'r2plus1d', 'csn')

# (stage, block) of the replaced bottlenecks, 0-based (stage 0 is layer1): every odd block of
# every stage, as the authors' code does ("one of every two ResBlocks", Fig. 2c).
REPLACED_BLOCKS: dict[int, tuple[tuple[int, int], ...]] = {
    50: ((0, 1), (1, 1), (1, 3), (2, 1), (2, 3), (2, 5), (3, 1)),
    101: ((0, 1), (1, 1), (1, 3), *((2, i) for i in range(1, 23, 2)), (3, 1)),
}

DEFAULT_DROPOUT = 0.3  # appendix A.1: 0.3 for Something-Something, 0.5 for Kinetics


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


class VideoBottleneck(nn.Module):
    """A ResNet bottleneck whose 3x3 conv, BN and ReLU are replaced by a video module ``st``.

    Frames ``[B*T, C_in, H, W] -> [B*T, 4*planes, H, W]`` (not strided): ``conv1`` (1x1) ->
    ``bn1`` -> ReLU -> ``st`` -> ``conv3`` (1x1) -> ``bn3`` -> + shortcut -> ReLU. ``conv1``,
    ``bn1``, ``conv3``, ``bn3`` and ``downsample`` keep torchvision's names and load from ImageNet;
    torchvision's ``conv2``/``bn2`` of this block are not used (``replaced_2d``).
    """

    expansion = 4
    replaced_2d = ('conv2', 'bn2')
    new_modules = ('st',)

    def __init__(self, inplanes: int, planes: int, st: nn.Module,
                 downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = conv1x1(inplanes, planes)
        self.bn1 = nn.BatchNorm2d(planes)
        self.st = st
        self.conv3 = conv1x1(planes, planes * self.expansion)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.st(self.relu(self.bn1(self.conv1(x))))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


def _init_video_module(module: nn.Module) -> None:
    """Kaiming-normal (fan-out) for the 4D-stored 3D convs, as the authors initialise Conv3d."""
    for m in module.modules():
        if isinstance(m, Conv3dAs4d):
            kt, kh, kw = m.kernel_size
            std = math.sqrt(2.0 / (m.out_channels * kt * kh * kw))
            nn.init.normal_(m.weight, 0.0, std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def _video_module(block: str, planes: int, num_frames: int, *, pointwise: bool,
                  excitation: bool) -> nn.Module:
    """The module that replaces a bottleneck's 3x3 conv (with its BN and ReLU)."""
    if block == 'ct':
        return CTModule(planes, num_frames, pointwise=pointwise, excitation=excitation)
    if block == 'c3d':
        return C3DModule(planes, num_frames)
    if block == 'r2plus1d':
        return R2Plus1DModule(planes, num_frames)
    return CSNModule(planes, num_frames)


class CTNet(ResNet2d):
    """CT-Net on a 2D ResNet-50/101, or TSN when no block is replaced.

    Input frames ``[B*T, 3, H, W]`` (the ``T = num_frames`` frames of each clip contiguous, any
    ``B``, any ``H, W >= 112``); output logits ``[B, num_classes]``: per-frame logits of the
    ResNet features (global average pool, dropout, ``fc``) averaged over the clip (TSN consensus).

    Args:
        num_classes: outputs.
        num_frames: clip length ``T``.
        depth: 50 or 101.
        replaced: ``(stage, block)`` positions (0-based) of the bottlenecks whose 3x3 conv is
            replaced by ``block``; ``()`` gives TSN. Default: :data:`REPLACED_BLOCKS`.
        block: ``'ct'``, ``'c3d'``, ``'r2plus1d'`` or ``'csn'``.
        pointwise: CT-Module's point-wise conv between the sub-operations (``block='ct'`` only).
        excitation: CT-Module's Tensor Excitation (``block='ct'`` only).
        dropout: dropout before ``fc``.
    """

    new_modules = ('fc',)

    def __init__(self, *, num_classes: int, num_frames: int, depth: int = 50,
                 replaced: Sequence[tuple[int, int]] | None = None, block: str = 'ct',
                 pointwise: bool = True, excitation: bool = True,
                 dropout: float = DEFAULT_DROPOUT) -> None:
        if num_classes < 1 or num_frames < 1:
            raise ValueError(
                f'num_classes and num_frames must be >= 1, got {num_classes}, {num_frames}')
        if block not in BLOCK_TYPES:
            raise ValueError(f'block must be one of {BLOCK_TYPES}, got {block!r}')
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f'dropout must be in [0, 1), got {dropout}')
        positions = REPLACED_BLOCKS.get(depth, ()) if replaced is None else replaced
        replaced_blocks = tuple(sorted({(int(s), int(i)) for s, i in positions}))
        if depth in RESNET_STAGES:
            unknown = [(s, i) for s, i in replaced_blocks
                       if not (0 <= s < 4 and 0 <= i < RESNET_STAGES[depth][s])]
            if unknown:
                raise ValueError(f'no bottleneck at (stage, block) {unknown} in ResNet-{depth}')

        def block_fn(stage: int, index: int, inplanes: int, planes: int, stride: int,
                     downsample: nn.Module | None) -> nn.Module:
            if (stage, index) not in replaced_blocks:
                return Bottleneck(inplanes, planes, stride, downsample)
            if stride != 1:
                raise ValueError(f'block {index} of layer{stage + 1} is strided; CT-Net '
                                 'replaces only blocks with stride 1')
            return VideoBottleneck(inplanes, planes, _video_module(
                block, planes, num_frames, pointwise=pointwise, excitation=excitation),
                downsample)

        super().__init__(depth=depth, block_fn=block_fn)
        self.replaced_blocks = replaced_blocks
        self.num_classes = num_classes
        self.num_frames = num_frames
        self.block = block
        self.default_input_size = (224, 224)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(self.num_features, num_classes)
        init_resnet_weights(self)
        _init_video_module(self)
        nn.init.normal_(self.fc.weight, 0.0, 0.001)
        nn.init.zeros_(self.fc.bias)

    def forward_features(self, x: Tensor) -> Tensor:
        """Frames ``[B*T, 3, H, W]`` -> pooled frame features ``[B*T, 2048]``."""
        if x.dim() != 4 or x.shape[1] != 3 or x.shape[0] % self.num_frames or not x.shape[0]:
            raise ValueError(
                f'expected frames [B*T, 3, H, W] with T = {self.num_frames} frames per clip '
                f'(a multiple of {self.num_frames} frames), got {tuple(x.shape)}')
        return super().forward_features(x).mean((2, 3))

    def forward_head(self, features: Tensor, pre_logits: bool = False) -> Tensor:
        """``[B*T, 2048]`` -> clip logits ``[B, num_classes]`` (or features ``[B, 2048]``)."""
        if pre_logits:
            return features.reshape(-1, self.num_frames, features.shape[1]).mean(1)
        logits = self.fc(self.dropout(features))
        return logits.reshape(-1, self.num_frames, self.num_classes).mean(1)

    def forward(self, x: Tensor) -> Tensor:
        """Frames ``[B*T, 3, H, W]`` -> logits ``[B, num_classes]``."""
        return self.forward_head(self.forward_features(x))


def _build(*, num_classes: int, num_frames: int, depth: int, replaced: Sequence[tuple[int, int]],
           block: str = 'ct', pointwise: bool | None = None, excitation: bool | None = None,
           dropout: float = DEFAULT_DROPOUT,
           pretrained_2d: str | os.PathLike[str] | Mapping[str, Tensor] | None = None,
           **unknown: Any) -> CTNet:
    if unknown:
        raise TypeError(f'unknown CT-Net options: {sorted(unknown)}')
    if block != 'ct' and (pointwise or excitation):
        raise ValueError(f"pointwise and excitation apply to block='ct' only, not {block!r}")
    model = CTNet(num_classes=num_classes, num_frames=num_frames, depth=depth, replaced=replaced,
                  block=block, pointwise=True if pointwise is None else pointwise,
                  excitation=True if excitation is None else excitation, dropout=dropout)
    if pretrained_2d is not None:
        load_resnet_imagenet(model, pretrained_2d)
    return model


_PAPER = 'CT-Net (004)'


def _reference(table: str, *, params_m: float | None, gmac: float, counted_params_m: float,
               counted_gmac: float, options: dict[str, Any] | None = None,
               note: str = '') -> PaperReference:
    return PaperReference(
        paper=f'{_PAPER}, {table}', num_classes=174, num_frames=8, input_size=(256, 256),
        params_m=params_m, gmac=gmac, mac_scope='', counted_params_m=counted_params_m,
        counted_gmac=counted_gmac, note=note, options=dict(options or {}))


TSN_R50_REFERENCE = _reference(
    'Table 8 / Table 2g', params_m=23.9, gmac=43.0, counted_params_m=23.87, counted_gmac=42.94,
    note='Table 3 lists TSN at 33 GFLOPs: that is 224x224 input, from the TSM paper.')
CT_NET_R50_REFERENCE = _reference(
    'Table 8 / Table 2g / Table 3', params_m=21.0, gmac=37.3, counted_params_m=20.96,
    counted_gmac=37.32)
CT_NET_R101_REFERENCE = PaperReference(
    paper=f'{_PAPER}, Table 4 (Kinetics-400, per view)', num_classes=400, num_frames=16,
    input_size=(256, 256), params_m=None, gmac=145.5, mac_scope='',
    note='The paper gives no parameter count for R101. Every odd block of every stage is '
         "replaced (15 blocks), per the text's 'one of every two ResBlocks' and the authors' "
         'code; that gives 37.5 M and 138.1 GMAC (138.5 with 2 MACs per BN element), 5% under '
         "the paper's 145.5. Replacing 7 of layer3's blocks instead of 11 (11 in all) would give "
         '145.4; the paper does not say which blocks it replaced.')

# Table 2a/2g (ResNet-50, 8 frames, 256x256, Something-Something V1): name -> (options of
# ct_net_r50, reference). The paper gives GFLOPs (MACs) only; the parameter counts are the
# independent counts of shared/papers/README.md.
ABLATION_REFERENCES: dict[str, tuple[dict[str, Any], PaperReference]] = {
    name: (options, _reference(table, params_m=None, gmac=gmac, counted_params_m=params,
                               counted_gmac=counted, options=options))
    for name, table, options, gmac, params, counted in (
        ('ct_net_r50/c3d', 'Table 2a', {'block': 'c3d'}, 59.9, 32.79, 59.85),
        ('ct_net_r50/r2plus1d', 'Table 2a', {'block': 'r2plus1d'}, 45.8, 25.36, 45.77),
        ('ct_net_r50/csn', 'Table 2a', {'block': 'csn'}, 35.6, 19.95, 35.60),
        ('ct_net_r50/ct_only', 'Table 2a/2g', {'pointwise': False, 'excitation': False},
         36.3, 20.09, 36.28),
        ('ct_net_r50/ct_pw', 'Table 2g', {'pointwise': True, 'excitation': False},
         37.2, 20.59, 37.24),
    )
}


@register_model(family='ctnet', reference=TSN_R50_REFERENCE)
def tsn_r50(*, num_classes: int, num_frames: int, dropout: float = DEFAULT_DROPOUT,
            pretrained_2d: str | os.PathLike[str] | Mapping[str, Tensor] | None = None,
            **options: Any) -> CTNet:
    """TSN baseline: 2D ResNet-50 on every frame, frame logits averaged over the clip."""
    if options:
        raise TypeError(f'unknown TSN options: {sorted(options)} (TSN has no video blocks)')
    return _build(num_classes=num_classes, num_frames=num_frames, depth=50, replaced=(),
                  dropout=dropout, pretrained_2d=pretrained_2d)


@register_model(family='ctnet', reference=CT_NET_R50_REFERENCE)
def ct_net_r50(*, num_classes: int, num_frames: int, block: str = 'ct',
               pointwise: bool | None = None, excitation: bool | None = None,
               dropout: float = DEFAULT_DROPOUT,
               pretrained_2d: str | os.PathLike[str] | Mapping[str, Tensor] | None = None,
               **options: Any) -> CTNet:
    """CT-Net-R50: 7 CT blocks (CT-Module + point-wise conv + TE) in a 2D ResNet-50.

    ``block``, ``pointwise`` and ``excitation`` select the ablations of Table 2a/2g (see
    :data:`ABLATION_REFERENCES`); ``pretrained_2d`` is a local torchvision ResNet-50 state dict.
    """
    return _build(num_classes=num_classes, num_frames=num_frames, depth=50,
                  replaced=REPLACED_BLOCKS[50], block=block, pointwise=pointwise,
                  excitation=excitation, dropout=dropout, pretrained_2d=pretrained_2d, **options)


@register_model(family='ctnet', reference=CT_NET_R101_REFERENCE)
def ct_net_r101(*, num_classes: int, num_frames: int, block: str = 'ct',
                pointwise: bool | None = None, excitation: bool | None = None,
                dropout: float = DEFAULT_DROPOUT,
                pretrained_2d: str | os.PathLike[str] | Mapping[str, Tensor] | None = None,
                **options: Any) -> CTNet:
    """CT-Net-R101: CT blocks at every odd block of every stage of a 2D ResNet-101."""
    return _build(num_classes=num_classes, num_frames=num_frames, depth=101,
                  replaced=REPLACED_BLOCKS[101], block=block, pointwise=pointwise,
                  excitation=excitation, dropout=dropout, pretrained_2d=pretrained_2d, **options)

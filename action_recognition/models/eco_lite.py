"""ECO-Lite with its 3D-Net built from 4D-only blocks (paper 000, Hajimolahoseini et al.).

ECO-Lite runs a 2D-Net on every frame and a 3D-ResNet-18 style 3D-Net on the stacked feature
maps. Paper 000 replaces the 3D-Net's 3x3x3 convolutions by blocks that need no tensor of rank 5
and compares them in its Table 2. Every model here takes a clip as frames ``[B*T, 3, H, W]``
(the T frames of a clip contiguous) and returns logits ``[B, num_classes]``::

    frames [B*T, 3, H, W]
      net2d (per frame): Inception-V3 to Mixed_5c + Mixed_5d's 1x1(64)->3x3(96) branch
                         (or the light SmallNet2d)              -> [B*T, 96, h, w]
      net3d: stage 1: 2 blocks, 128 ch, stride 1                -> [B*T, 128, h, w]
             stage 2: 2 blocks, 256 ch, first strided (2,2,2)   -> [B*T/2, 256, h/2, w/2]
             stage 3: 2 blocks, 512 ch, first strided (2,2,2)   -> [B*T/4, 512, h/4, w/4]
             global average pool (T, H, W) -> dropout -> fc     -> [B, num_classes]

A residual block is ``conv1 -> BN -> ReLU -> conv2 -> BN -> (+ shortcut) -> ReLU`` where each
"conv" is one of the 3x3x3 replacements below (``forward(x, num_frames)`` on frames), and the
shortcut is a projection (1x1) wherever the width or stride changes, including 96 -> 128.

Variants (registered builders, all ``builder(*, num_classes, num_frames, **options)``):

- ``eco_lite_conv3d_5d``: the reference, ``nn.Conv3d`` + ``BatchNorm3d`` on 5D tensors.
- ``eco_lite_conv3d``: the same 3x3x3 convolutions computed exactly with 4D tensors
  (:class:`~action_recognition.models.layers.Conv3dAs4d`; BatchNorm2d over frames equals
  BatchNorm3d). Loads the state dict of ``eco_lite_conv3d_5d``.
- ``eco_lite_r2plus1d``: R(2+1)D (Tran et al.): ``1x3x3`` (stride ``1,s,s``) -> BN -> ReLU ->
  ``3x1x1`` (stride ``s,1,1``), mid channels ``floor(27 C_in C_out / (9 C_in + 3 C_out))``.
- ``eco_lite_p3d_a`` / ``_b`` / ``_c``: Qiu et al.'s P3D combinations of a spatial ``S = 1x3x3``
  and a temporal ``T = 3x1x1`` convolution, each replacing one 3x3x3 convolution of the block
  (the block keeps its own identity path): A ``T(S(x))``, B ``S(x) + T(x)``, C
  ``S(x) + T(S(x))``; S maps ``C_in -> C_out``, T ``C_out -> C_out`` (B: ``C_in -> C_out``).
- ``eco_lite_rank1``: rank-1 factorisation (Kim et al.) as three 1D convolutions in h -> w -> t
  order, no nonlinearity in between (the composition is linear, as the factorised kernel is).
- ``eco_lite_add`` / ``eco_lite_cat``: the paper's Proposed-Add / Proposed-Cat: a spatial branch
  (3x3 Conv2d on frames, then for strided blocks a 1x1 conv with stride ``s`` along T on the
  ``[B, S, T, X*Y]`` view, the paper's temporal pooling) and a temporal branch (a ``(3, 1)``
  Conv2d on ``[B, C, T, X*Y]``), added, or concatenated on channels (two full-width branches:
  block widths 256/512/1024, fc from 1024).
- ``eco_lite_add_small``: Proposed-Add on :class:`SmallNet2d` with ``width_mult=0.25`` for real
  time on a small CPU (no paper reference).

Every builder takes ``net2d``: ``'inception'`` (the paper's), ``'small'`` (:class:`SmallNet2d`) or
``'small_sym'``: :class:`SmallNet2d` inside
:class:`~action_recognition.models.inception.ContrastSymmetricNet2d`, which standardises each
frame and adds the features of the frame and its negative (twice the 2D-Net's cost; the
synthetic benchmark's configs use it, see ``docs/synthetic_rotation.md``).

Strided blocks of Rank-1, Proposed-Add and Proposed-Cat use the paper's 4D pattern: the temporal
stride is a temporal-pooling 1x1 conv (stride ``s`` along T), and the shortcut is a 1x1 spatial
conv with stride ``s`` followed by the same temporal-pooling conv. That is what reproduces Table 2
(``shared/papers/README.md``). Conv3D, R(2+1)D and P3D stride their convolutions as their own
papers do and use a ``1x1x1`` conv with stride ``(s, s, s)`` as shortcut.

Figures at 400 classes, 16 frames of 243x243 (whole-model params; MACs of ``net3d``), see
:data:`PAPER_REFERENCES`. Conv3D 33.80 M / 35.61 GMAC, R(2+1)D 33.81 / 36.84, Proposed-Cat
32.38 / 32.68, Proposed-Add 16.33 / 17.03, Rank-1 13.71 / 14.80. P3D-A/B/C count 16.18/15.67/
16.18 M and 17.05/15.96/17.05 GMAC, below the paper's 22.5/23.5/22.8 M and 19.5/20.9/19.6 GFLOPs:
no standard P3D definition reaches those (their order B > C > A contradicts the definitions, in
which B is never larger than A or C: it has the same kernels and runs both at the output
resolution); the paper's P3D figures are not reproducible from its text (its figures are
missing).

Proposed-Add/Cat take ``temporal_stride_mode``: ``'aligned'`` (default) strides the temporal
branch as a ``(3, 1)`` conv with stride ``(s, 1)`` on the ``[::s, ::s]`` subsampled map, so both
branches describe the same pixels; ``'paper'`` uses the paper's stride ``s^2`` along the
flattened ``X*Y`` axis, which on a 28x28 map keeps every 4th column of every row and relabels it
as a 14x14 map (see :class:`ProposedConv`). Same parameters and MACs. ``'paper'`` needs feature
maps whose sides are even at every strided block (243x243 frames with the Inception 2D-Net,
128x128 with the small one) and raises otherwise.

Clip length: any ``num_frames >= 1`` works (every temporal stride is a kernel-3/pad-1 or kernel-1
convolution with stride 2, giving ``ceil(T / 2)`` frames); the paper uses 16. Frames: any
``H, W >= 112`` (the Inception 2D-Net works from 75, the small one from 8).
``default_input_size`` is the paper's 243x243 for the Inception 2D-Net (a 28x28 map) and
112x112 for the small 2D-Net (a 14x14 map).

Initialisation: Kaiming normal (fan-out, ReLU) for convolutions, BN weight 1 and bias 0, fc
normal(0, 0.01) with zero bias. ``zero_init_last=True`` zeroes the last BN of every residual block
(each block starts as its shortcut); it is off by default, as the paper does not mention it.
"""

from __future__ import annotations

from collections.abc import Callable
import math
from typing import Literal

import torch
from torch import nn
from torch import Tensor
import torch.nn.functional as F

from action_recognition.models.inception import ContrastSymmetricNet2d
from action_recognition.models.inception import InceptionV3Net2d
from action_recognition.models.inception import NET2D_CHANNELS
from action_recognition.models.inception import SmallNet2d
from action_recognition.models.layers import Conv3dAs4d
from action_recognition.models.layers import from_temporal
from action_recognition.models.layers import to_temporal
from action_recognition.models.registry import PaperReference
from action_recognition.models.registry import register_model

__all__ = [
    'ECO_LITE_MODELS', 'PAPER_REFERENCES', 'EcoLite', 'EcoLite3dNet', 'EcoLite3dNet5d',
    'ResidualBlock', 'BasicBlock5d', 'Shortcut', 'Shortcut5d', 'SerialSpatialTemporal',
    'P3dB', 'P3dC', 'Rank1', 'ProposedConv', 'PaperStridedTemporalConv', 'subsample_frames',
    'r2plus1d_mid_channels', 'eco_lite_conv3d_5d', 'eco_lite_conv3d', 'eco_lite_r2plus1d',
    'eco_lite_p3d_a', 'eco_lite_p3d_b', 'eco_lite_p3d_c', 'eco_lite_rank1', 'eco_lite_add',
    'eco_lite_cat', 'eco_lite_add_small',
]

BASE_WIDTHS = (128, 256, 512)
"""Widths of the three 3D-Net stages (before ``width_mult``; Proposed-Cat doubles them)."""

ConvUnitFactory = Callable[[int, int, int], nn.Module]
"""``factory(in_channels, out_channels, stride) -> unit`` with ``unit(x, num_frames)``."""

TemporalStrideMode = Literal['aligned', 'paper']
Net2dName = Literal['inception', 'small', 'small_sym']


def _frames_after(num_frames: int, stride: int) -> int:
    # A kernel-3/pad-1 or kernel-1 convolution with this stride along T.
    return (num_frames - 1) // stride + 1


def subsample_frames(x: Tensor, num_frames: int, stride: int) -> Tensor:
    """Every ``stride``-th frame of each clip: ``[B*T, C, H, W]`` -> ``[B*ceil(T/s), C, H, W]``."""
    if stride == 1:
        return x
    _, channels, height, width = x.shape
    kept = x.reshape(-1, num_frames, channels, height * width)[:, ::stride]
    return kept.reshape(-1, channels, height, width)


def r2plus1d_mid_channels(in_channels: int, out_channels: int) -> int:
    """Tran et al.'s mid width: the (2+1)D pair has the parameters of one 3x3x3 convolution."""
    return (27 * in_channels * out_channels) // (9 * in_channels + 3 * out_channels)


# ---------------------------------------------------------------------------------------------
# The 3x3x3 replacements ("conv units"): forward(x [B*T, C_in, H, W], num_frames) ->
# [B*T', C_out, H', W'] with T' = ceil(T / stride), H' = ceil(H / stride).


class _Unit(nn.Module):
    """Base of the conv units: ``stride`` applies to T, H and W."""

    def __init__(self, stride: int) -> None:
        super().__init__()
        self.stride = stride

    def out_frames(self, num_frames: int) -> int:
        return _frames_after(num_frames, self.stride)


def _spatial(in_channels: int, out_channels: int, stride: tuple[int, int, int]) -> Conv3dAs4d:
    # 1x3x3: a 3x3 Conv2d on the frames (frames subsampled when stride[0] > 1).
    return Conv3dAs4d(in_channels, out_channels, (1, 3, 3), stride=stride, padding=(0, 1, 1),
                      bias=False)


def _temporal(in_channels: int, out_channels: int, stride: tuple[int, int, int]) -> Conv3dAs4d:
    # 3x1x1: a (3, 1) Conv2d on [B, C, T, H*W] (after [::s, ::s] when spatially strided).
    return Conv3dAs4d(in_channels, out_channels, (3, 1, 1), stride=stride, padding=(1, 0, 0),
                      bias=False)


def _temporal_pool(channels: int, stride: int) -> Conv3dAs4d:
    # The paper's temporal pooling: a 1x1 conv with stride s along T on [B, C, T, X*Y].
    return Conv3dAs4d(channels, channels, 1, stride=(stride, 1, 1), bias=False)


class SerialSpatialTemporal(_Unit):
    """R(2+1)D and P3D-A: ``1x3x3`` (stride ``1,s,s``) -> BN -> ReLU -> ``3x1x1`` (``s,1,1``).

    ``[B*T, C_in, H, W]`` -> ``[B*T', C_out, H', W']``; ``mid_channels`` is Tran et al.'s formula
    for R(2+1)D and ``C_out`` for P3D-A.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int, *,
                 mid_channels: int) -> None:
        super().__init__(stride)
        self.spatial = _spatial(in_channels, mid_channels, (1, stride, stride))
        self.bn = nn.BatchNorm2d(mid_channels)
        self.temporal = _temporal(mid_channels, out_channels, (stride, 1, 1))

    def forward(self, x: Tensor, num_frames: int) -> Tensor:
        x = F.relu(self.bn(self.spatial(x, num_frames)), inplace=True)
        return self.temporal(x, num_frames)


class P3dB(_Unit):
    """P3D-B: ``S(x) + T(x)``, both from the input, both strided ``(s, s, s)``.

    ``S`` is ``1x3x3`` (keeps every s-th frame), ``T`` is ``3x1x1`` on the ``[::s, ::s]``
    subsampled map: ``[B*T, C_in, H, W]`` -> ``[B*T', C_out, H', W']``. The block's BN follows.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__(stride)
        self.spatial = _spatial(in_channels, out_channels, (stride, stride, stride))
        self.temporal = _temporal(in_channels, out_channels, (stride, stride, stride))

    def forward(self, x: Tensor, num_frames: int) -> Tensor:
        return self.spatial(x, num_frames) + self.temporal(x, num_frames)


class P3dC(_Unit):
    """P3D-C: ``h = ReLU(BN(S(x)))``, output ``h + T(h)``.

    ``S`` is ``1x3x3`` with stride ``(1, s, s)``, ``T`` is ``3x1x1`` with stride ``(s, 1, 1)``;
    the direct path takes every s-th frame of ``h`` so both terms have ``T' = ceil(T/s)`` frames:
    ``[B*T, C_in, H, W]`` -> ``[B*T', C_out, H', W']``.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__(stride)
        self.spatial = _spatial(in_channels, out_channels, (1, stride, stride))
        self.bn = nn.BatchNorm2d(out_channels)
        self.temporal = _temporal(out_channels, out_channels, (stride, 1, 1))

    def forward(self, x: Tensor, num_frames: int) -> Tensor:
        h = F.relu(self.bn(self.spatial(x, num_frames)), inplace=True)
        return subsample_frames(h, num_frames, self.stride) + self.temporal(h, num_frames)


class Rank1(_Unit):
    """Rank-1: ``3x1`` along h (stride ``s``) -> ``1x3`` along w (stride ``s``) -> ``3`` along t.

    ``C_in -> C_out`` in the first (h) convolution, ``C_out -> C_out`` after; no nonlinearity in
    between. Strided units then apply the paper's temporal pooling (a 1x1 conv with stride ``s``
    along T), which with the 4D shortcut reproduces Table 2's 13.7 M / 14.7 GMAC:
    ``[B*T, C_in, H, W]`` -> ``[B*T', C_out, H', W']``.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__(stride)
        self.conv_h = Conv3dAs4d(in_channels, out_channels, (1, 3, 1), stride=(1, stride, 1),
                                 padding=(0, 1, 0), bias=False)
        self.conv_w = Conv3dAs4d(out_channels, out_channels, (1, 1, 3), stride=(1, 1, stride),
                                 padding=(0, 0, 1), bias=False)
        self.conv_t = _temporal(out_channels, out_channels, (1, 1, 1))
        self.pool = _temporal_pool(out_channels, stride) if stride > 1 else None

    def forward(self, x: Tensor, num_frames: int) -> Tensor:
        x = self.conv_t(self.conv_w(self.conv_h(x, num_frames), num_frames), num_frames)
        return x if self.pool is None else self.pool(x, num_frames)


class PaperStridedTemporalConv(Conv3dAs4d):
    """The paper's temporal branch: a ``(3, 1)`` conv, stride ``(s, s^2)``, on ``[B, C, T, X*Y]``.

    Striding the flattened ``X*Y`` axis by ``s^2`` keeps every ``s^2``-th pixel in raster order
    (on a 28x28 map: every 4th column of every row) and the result is relabelled as an
    ``(X/s) x (Y/s)`` map, which does not line up with the spatial branch. Same parameters
    (stored like the ``3x1x1`` :class:`Conv3dAs4d`) and MACs as the aligned version. Needs
    ``ceil(X*Y / s^2) == ceil(X/s) * ceil(Y/s)`` (e.g. even X and Y), otherwise raises.
    ``[B*T, C_in, X, Y]`` -> ``[B*T', C_out, ceil(X/s), ceil(Y/s)]``.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__(in_channels, out_channels, (3, 1, 1), stride=stride,
                         padding=(1, 0, 0), bias=False)

    def forward(self, x: Tensor, num_frames: int) -> Tensor:
        stride = self.stride[0]
        height, width = x.shape[2], x.shape[3]
        out_h, out_w = _frames_after(height, stride), _frames_after(width, stride)
        columns = _frames_after(height * width, stride * stride)
        if columns != out_h * out_w:
            raise ValueError(
                f"temporal_stride_mode='paper' cannot stride a {height}x{width} map: "
                f'{height}*{width} pixels strided by {stride * stride} give {columns}, not '
                f"{out_h}x{out_w}; use even feature maps (e.g. 243x243 input) or 'aligned'")
        weight = self.weight.reshape(self.out_channels, self.in_channels, 3, 1)
        y = F.conv2d(to_temporal(x, num_frames), weight, self.bias,
                     stride=(stride, stride * stride), padding=(1, 0))
        return from_temporal(y, out_h, out_w)


class ProposedConv(_Unit):
    """Proposed-Add / Proposed-Cat (paper 000, Fig. 3): parallel spatial and temporal branches.

    - spatial: 3x3 Conv2d with stride ``s`` on the frames ``[B*T, C_in, X, Y]``; when strided, the
      paper's temporal pooling, a 1x1 conv with stride ``s`` along T on ``[B, S, T, X*Y]``.
    - temporal: a ``(3, 1)`` conv on ``[B, C_in, T, X*Y]``. ``'aligned'`` (default): stride
      ``(s, 1)`` on the ``[::s, ::s]`` subsampled map (the conv is point-wise in X, Y, so this
      is the same as subsampling after it, with the cost of the strided result), which keeps the
      output pixel ``(i, j)`` over input pixel ``(s*i, s*j)`` as in the spatial branch.
      ``'paper'``: the paper's stride ``(s, s^2)`` along the flattened axis
      (:class:`PaperStridedTemporalConv`), which relabels every ``s^2``-th pixel as the
      ``X/s x Y/s`` map, so the two branches no longer describe the same places; kept to
      reproduce the paper, not the default.
    - ``combine='add'``: sum, ``C_out`` channels; ``'cat'``: each branch ``C_out / 2`` channels,
      concatenated (spatial first).

    ``[B*T, C_in, X, Y]`` -> ``[B*T', C_out, X', Y']``.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int, *,
                 combine: Literal['add', 'cat'], mode: TemporalStrideMode = 'aligned') -> None:
        super().__init__(stride)
        if combine not in ('add', 'cat'):
            raise ValueError(f"combine must be 'add' or 'cat', got {combine!r}")
        if mode not in ('aligned', 'paper'):
            raise ValueError(f"temporal_stride_mode must be 'aligned' or 'paper', got {mode!r}")
        if combine == 'cat' and out_channels % 2:
            raise ValueError(f'Proposed-Cat needs an even width, got {out_channels}')
        branch = out_channels if combine == 'add' else out_channels // 2
        self.combine = combine
        self.mode = mode
        self.spatial = _spatial(in_channels, branch, (1, stride, stride))
        self.spatial_pool = _temporal_pool(branch, stride) if stride > 1 else None
        self.temporal: Conv3dAs4d
        if mode == 'paper':
            self.temporal = PaperStridedTemporalConv(in_channels, branch, stride)
        else:
            self.temporal = _temporal(in_channels, branch, (stride, stride, stride))

    def forward(self, x: Tensor, num_frames: int) -> Tensor:
        spatial = self.spatial(x, num_frames)
        if self.spatial_pool is not None:
            spatial = self.spatial_pool(spatial, num_frames)
        temporal = self.temporal(x, num_frames)
        if self.combine == 'add':
            return spatial + temporal
        return torch.cat([spatial, temporal], dim=1)


def _conv3d_unit(in_channels: int, out_channels: int, stride: int) -> nn.Module:
    return Conv3dAs4d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)


def _r2plus1d_unit(in_channels: int, out_channels: int, stride: int) -> nn.Module:
    return SerialSpatialTemporal(in_channels, out_channels, stride,
                                 mid_channels=r2plus1d_mid_channels(in_channels, out_channels))


def _p3d_a_unit(in_channels: int, out_channels: int, stride: int) -> nn.Module:
    return SerialSpatialTemporal(in_channels, out_channels, stride, mid_channels=out_channels)


def _proposed_unit(combine: Literal['add', 'cat'], mode: TemporalStrideMode
                   ) -> ConvUnitFactory:
    def factory(in_channels: int, out_channels: int, stride: int) -> nn.Module:
        return ProposedConv(in_channels, out_channels, stride, combine=combine, mode=mode)

    return factory


# ---------------------------------------------------------------------------------------------
# Residual blocks and the 3D-Nets.


class Shortcut(nn.Module):
    """Projection shortcut on frames: ``[B*T, C_in, H, W]`` -> ``[B*T', C_out, H', W']``.

    ``pattern_4d=False``: a ``1x1x1`` conv with stride ``(s, s, s)``, then BN.
    ``pattern_4d=True`` (the paper's): a 1x1 conv with spatial stride ``s`` on the frames, then
    (strided blocks only) the temporal-pooling 1x1 conv with stride ``s`` along T, then BN.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int, *,
                 pattern_4d: bool) -> None:
        super().__init__()
        self.stride = stride
        conv_stride = (1, stride, stride) if pattern_4d else (stride, stride, stride)
        self.conv = Conv3dAs4d(in_channels, out_channels, 1, stride=conv_stride, bias=False)
        self.pool = _temporal_pool(out_channels, stride) if pattern_4d and stride > 1 else None
        self.bn = nn.BatchNorm2d(out_channels)

    def out_frames(self, num_frames: int) -> int:
        return _frames_after(num_frames, self.stride)

    def forward(self, x: Tensor, num_frames: int) -> Tensor:
        x = self.conv(x, num_frames)
        if self.pool is not None:
            x = self.pool(x, num_frames)
        return self.bn(x)


class ResidualBlock(nn.Module):
    """``conv1 -> BN -> ReLU -> conv2 -> BN``, plus the shortcut, then ReLU, on frames.

    ``conv1`` and ``conv2`` come from ``unit`` (``conv1`` carries the stride):
    ``[B*T, C_in, H, W]`` -> ``[B*T', C_out, H', W']``.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int, *,
                 unit: ConvUnitFactory, shortcut_4d: bool) -> None:
        super().__init__()
        self.stride = stride
        self.conv1 = unit(in_channels, out_channels, stride)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = unit(out_channels, out_channels, 1)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut: Shortcut | None = None
        if stride > 1 or in_channels != out_channels:
            self.shortcut = Shortcut(in_channels, out_channels, stride, pattern_4d=shortcut_4d)

    def out_frames(self, num_frames: int) -> int:
        return _frames_after(num_frames, self.stride)

    def forward(self, x: Tensor, num_frames: int) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x, num_frames)), inplace=True)
        out = self.bn2(self.conv2(out, self.out_frames(num_frames)))
        identity = x if self.shortcut is None else self.shortcut(x, num_frames)
        return F.relu(out + identity, inplace=True)


def _check_features(x: Tensor, channels: int, num_frames: int) -> None:
    if x.dim() != 4 or x.shape[1] != channels:
        raise ValueError(
            f'the 3D-Net expects features [B*T, {channels}, h, w], got {tuple(x.shape)}')
    if x.shape[0] % num_frames:
        raise ValueError(
            f'{x.shape[0]} feature maps is not a whole number of clips of {num_frames} frames')


class EcoLite3dNet(nn.Module):
    """The 4D-only 3D-Net with its head.

    Features ``[B*T, C_in, h, w]`` (T contiguous per clip) -> logits ``[B, num_classes]``;
    3 stages of ``blocks_per_stage`` :class:`ResidualBlock`, the first block of stages 2 and 3
    strided by 2 in T, H and W, then the global average over ``(T', h', w')``, dropout and fc.
    """

    def __init__(self, *, unit: ConvUnitFactory, widths: tuple[int, int, int],
                 num_classes: int, in_channels: int = NET2D_CHANNELS, blocks_per_stage: int = 2,
                 dropout: float = 0.5, shortcut_4d: bool = False) -> None:
        super().__init__()
        self.in_channels = in_channels
        stages = []
        channels = in_channels
        for index, width in enumerate(widths):
            blocks = []
            for block in range(blocks_per_stage):
                stride = 2 if index > 0 and block == 0 else 1
                blocks.append(ResidualBlock(channels, width, stride, unit=unit,
                                            shortcut_4d=shortcut_4d))
                channels = width
            stages.append(nn.ModuleList(blocks))
        self.stages = nn.ModuleList(stages)
        self.num_features = channels
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(channels, num_classes)

    def blocks(self) -> list[ResidualBlock]:
        """The residual blocks in order."""
        return [block for stage in self.stages.children() for block in stage.children()
                if isinstance(block, ResidualBlock)]

    def forward(self, x: Tensor, num_frames: int) -> Tensor:
        """Features ``[B*T, C_in, h, w]`` -> logits ``[B, num_classes]``."""
        _check_features(x, self.in_channels, num_frames)
        for block in self.blocks():
            x = block(x, num_frames)
            num_frames = block.out_frames(num_frames)
        pooled = x.mean(dim=(2, 3)).reshape(-1, num_frames, x.shape[1]).mean(dim=1)
        return self.fc(self.dropout(pooled))


class Shortcut5d(nn.Module):
    """Reference shortcut on 5D tensors: ``Conv3d 1x1x1`` with stride ``s`` -> BatchNorm3d."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.conv = nn.Conv3d(in_channels, out_channels, 1, stride=stride, bias=False)
        self.bn = nn.BatchNorm3d(out_channels)

    def forward(self, x: Tensor) -> Tensor:
        return self.bn(self.conv(x))


class BasicBlock5d(nn.Module):
    """Reference 3D-ResNet basic block on ``[B, C, T, H, W]`` (``nn.Conv3d``, ``BatchNorm3d``).

    Module names match :class:`ResidualBlock` with the Conv3D unit, so the 4D model loads this
    block's state dict.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv3d(in_channels, out_channels, 3, stride=stride, padding=1,
                               bias=False)
        self.bn1 = nn.BatchNorm3d(out_channels)
        self.conv2 = nn.Conv3d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm3d(out_channels)
        self.shortcut: Shortcut5d | None = None
        if stride > 1 or in_channels != out_channels:
            self.shortcut = Shortcut5d(in_channels, out_channels, stride)

    def forward(self, x: Tensor) -> Tensor:
        """``[B, C_in, T, H, W]`` -> ``[B, C_out, T', H', W']``."""
        out = F.relu(self.bn1(self.conv1(x)), inplace=True)
        out = self.bn2(self.conv2(out))
        identity = x if self.shortcut is None else self.shortcut(x)
        return F.relu(out + identity, inplace=True)


class EcoLite3dNet5d(nn.Module):
    """The reference 3D-Net on 5D tensors (not 4D-only), names as :class:`EcoLite3dNet`.

    Features ``[B*T, C_in, h, w]`` are viewed as ``[B, C_in, T, h, w]``; output
    ``[B, num_classes]``.
    """

    def __init__(self, *, widths: tuple[int, int, int], num_classes: int,
                 in_channels: int = NET2D_CHANNELS, blocks_per_stage: int = 2,
                 dropout: float = 0.5) -> None:
        super().__init__()
        self.in_channels = in_channels
        stages = []
        channels = in_channels
        for index, width in enumerate(widths):
            blocks = []
            for block in range(blocks_per_stage):
                stride = 2 if index > 0 and block == 0 else 1
                blocks.append(BasicBlock5d(channels, width, stride))
                channels = width
            stages.append(nn.ModuleList(blocks))
        self.stages = nn.ModuleList(stages)
        self.num_features = channels
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(channels, num_classes)

    def forward(self, x: Tensor, num_frames: int) -> Tensor:
        """Features ``[B*T, C_in, h, w]`` -> logits ``[B, num_classes]``."""
        _check_features(x, self.in_channels, num_frames)
        _, channels, height, width = x.shape
        x = x.reshape(-1, num_frames, channels, height, width).transpose(1, 2)
        for stage in self.stages.children():
            for block in stage.children():
                x = block(x)
        return self.fc(self.dropout(x.mean(dim=(2, 3, 4))))


def _init_weights(module: nn.Module, *, zero_init_last: bool) -> None:
    for m in module.modules():
        if isinstance(m, Conv3dAs4d):
            # Kaiming normal with nn.Conv3d's fan-out (C_out * kt * kh * kw).
            fan_out = m.out_channels * math.prod(m.kernel_size)
            nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / fan_out))
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.Conv2d, nn.Conv3d)):
            nn.init.kaiming_normal_(m.weight, mode='fan_out', nonlinearity='relu')
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.BatchNorm3d)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0.0, 0.01)
            nn.init.zeros_(m.bias)
    if zero_init_last:
        for m in module.modules():
            if isinstance(m, (ResidualBlock, BasicBlock5d)):
                nn.init.zeros_(m.bn2.weight)


# ---------------------------------------------------------------------------------------------
# The model.


class EcoLite(nn.Module):
    """ECO-Lite: a per-frame 2D-Net (``net2d``) and a 3D-Net with its head (``net3d``).

    ``forward(frames [B*T, 3, H, W]) -> logits [B, num_classes]`` equals
    ``forward_3d(forward_2d(frames))``; the streaming runtime can run :meth:`forward_2d` on each
    new frame and :meth:`forward_3d` on the last ``num_frames`` feature maps.

    Attributes:
        num_frames: frames per clip ``T``.
        num_classes: number of logits.
        default_input_size: ``(height, width)`` the model is meant to be fed.
    """

    def __init__(self, *, net2d: nn.Module, net3d: nn.Module, num_frames: int,
                 num_classes: int, default_input_size: tuple[int, int]) -> None:
        super().__init__()
        if num_frames < 1:
            raise ValueError(f'num_frames must be >= 1, got {num_frames}')
        self.net2d = net2d
        self.net3d = net3d
        self.num_frames = num_frames
        self.num_classes = num_classes
        self.default_input_size = default_input_size

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the fc by a fresh one with ``num_classes`` outputs (fine-tuning)."""
        if num_classes < 1:
            raise ValueError(f'num_classes must be >= 1, got {num_classes}')
        old = self.net3d.fc
        assert isinstance(old, nn.Linear)
        self.net3d.fc = nn.Linear(old.in_features, num_classes).to(old.weight)
        nn.init.normal_(self.net3d.fc.weight, 0.0, 0.01)
        nn.init.zeros_(self.net3d.fc.bias)
        self.num_classes = num_classes

    def forward_2d(self, frames: Tensor) -> Tensor:
        """Frames ``[N, 3, H, W]`` -> features ``[N, 96, h, w]``, each frame on its own (eval)."""
        features: Tensor = self.net2d(frames)
        return features

    def forward_3d(self, features: Tensor) -> Tensor:
        """Features ``[B*T, 96, h, w]`` (T = ``num_frames`` per clip) -> ``[B, num_classes]``."""
        logits: Tensor = self.net3d(features, self.num_frames)
        return logits

    def forward(self, x: Tensor) -> Tensor:
        """Frames ``[B*T, 3, H, W]`` -> logits ``[B, num_classes]``."""
        if x.dim() != 4 or x.shape[0] % self.num_frames:
            raise ValueError(
                f'expected frames [B*T, 3, H, W] with T = {self.num_frames} frames per clip, '
                f'got {tuple(x.shape)}')
        return self.forward_3d(self.forward_2d(x))


def _make_net2d(name: str) -> tuple[nn.Module, tuple[int, int]]:
    if name == 'inception':
        return InceptionV3Net2d(), (243, 243)
    if name == 'small':
        return SmallNet2d(), (112, 112)
    if name == 'small_sym':
        return ContrastSymmetricNet2d(SmallNet2d()), (112, 112)
    raise ValueError(f"net2d must be 'inception', 'small' or 'small_sym', got {name!r}")


def _widths(width_mult: float, factor: int = 1) -> tuple[int, int, int]:
    if width_mult <= 0:
        raise ValueError(f'width_mult must be > 0, got {width_mult}')
    scaled = [max(1, round(width * width_mult)) * factor for width in BASE_WIDTHS]
    return (scaled[0], scaled[1], scaled[2])


def _check_dropout(dropout: float) -> None:
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f'dropout must be in [0, 1), got {dropout}')


def _build(*, unit: ConvUnitFactory, num_classes: int, num_frames: int, dropout: float,
           width_mult: float, net2d: str, zero_init_last: bool, shortcut_4d: bool = False,
           width_factor: int = 1) -> EcoLite:
    _check_dropout(dropout)
    net2d_module, input_size = _make_net2d(net2d)
    net3d = EcoLite3dNet(unit=unit, widths=_widths(width_mult, width_factor),
                         num_classes=num_classes, dropout=dropout, shortcut_4d=shortcut_4d)
    _init_weights(net3d, zero_init_last=zero_init_last)
    return EcoLite(net2d=net2d_module, net3d=net3d, num_frames=num_frames,
                   num_classes=num_classes, default_input_size=input_size)


def _table2(params_m: float, gmac: float, counted_params_m: float, counted_gmac: float,
            note: str = '') -> PaperReference:
    return PaperReference(
        paper='ECO-Lite 4D (000), Table 2', num_classes=400, num_frames=16,
        input_size=(243, 243), params_m=params_m, gmac=gmac, mac_scope='net3d',
        counted_params_m=counted_params_m, counted_gmac=counted_gmac, note=note)


_P3D_NOTE = (
    "P3D as Qiu et al. define A/B/C, each replacing one 3x3x3 convolution of the basic block; "
    "the paper's P3D figures (22.5/23.5/22.8 M, 19.5/20.9/19.6 GFLOPs) are not reachable with "
    'any standard definition (their order B > C > A contradicts them; the figures of the paper '
    "are missing), so the counted figures are this implementation's, about 16 M / 16-17 GMAC")

PAPER_REFERENCES: dict[str, PaperReference] = {
    'eco_lite_conv3d_5d': _table2(33.7, 35.6, 33.80, 35.61),
    'eco_lite_conv3d': _table2(33.7, 35.6, 33.80, 35.61),
    'eco_lite_r2plus1d': _table2(33.7, 36.9, 33.81, 36.84),
    'eco_lite_cat': _table2(32.2, 32.7, 32.38, 32.68),
    'eco_lite_add': _table2(16.3, 17.1, 16.33, 17.03),
    'eco_lite_rank1': _table2(13.7, 14.7, 13.71, 14.80),
    'eco_lite_p3d_a': _table2(22.5, 19.5, 16.18, 17.05, _P3D_NOTE),
    'eco_lite_p3d_b': _table2(23.5, 20.9, 15.67, 15.96, _P3D_NOTE),
    'eco_lite_p3d_c': _table2(22.8, 19.6, 16.18, 17.05, _P3D_NOTE),
}
"""Table 2 of paper 000 and the independent counts each registered paper model is held to."""

ECO_LITE_MODELS = (
    'eco_lite_conv3d_5d', 'eco_lite_conv3d', 'eco_lite_r2plus1d', 'eco_lite_p3d_a',
    'eco_lite_p3d_b', 'eco_lite_p3d_c', 'eco_lite_rank1', 'eco_lite_add', 'eco_lite_cat',
    'eco_lite_add_small',
)
"""Every registered ECO-Lite model."""


@register_model(family='eco_lite', four_d_only=False,
                reference=PAPER_REFERENCES['eco_lite_conv3d_5d'])
def eco_lite_conv3d_5d(*, num_classes: int, num_frames: int, dropout: float = 0.5,
                       width_mult: float = 1.0, net2d: Net2dName = 'inception',
                       zero_init_last: bool = False) -> EcoLite:
    """Reference Conv3D ECO-Lite on 5D tensors (``nn.Conv3d``, ``BatchNorm3d``)."""
    _check_dropout(dropout)
    net2d_module, input_size = _make_net2d(net2d)
    net3d = EcoLite3dNet5d(widths=_widths(width_mult), num_classes=num_classes, dropout=dropout)
    _init_weights(net3d, zero_init_last=zero_init_last)
    return EcoLite(net2d=net2d_module, net3d=net3d, num_frames=num_frames,
                   num_classes=num_classes, default_input_size=input_size)


@register_model(family='eco_lite', four_d_only=True,
                reference=PAPER_REFERENCES['eco_lite_conv3d'])
def eco_lite_conv3d(*, num_classes: int, num_frames: int, dropout: float = 0.5,
                    width_mult: float = 1.0, net2d: Net2dName = 'inception',
                    zero_init_last: bool = False) -> EcoLite:
    """Conv3D ECO-Lite computed exactly with 4D tensors; loads ``eco_lite_conv3d_5d`` weights."""
    return _build(unit=_conv3d_unit, num_classes=num_classes, num_frames=num_frames,
                  dropout=dropout, width_mult=width_mult, net2d=net2d,
                  zero_init_last=zero_init_last)


@register_model(family='eco_lite', four_d_only=True,
                reference=PAPER_REFERENCES['eco_lite_r2plus1d'])
def eco_lite_r2plus1d(*, num_classes: int, num_frames: int, dropout: float = 0.5,
                      width_mult: float = 1.0, net2d: Net2dName = 'inception',
                      zero_init_last: bool = False) -> EcoLite:
    """R(2+1)D ECO-Lite (mid channels by Tran et al.'s formula)."""
    return _build(unit=_r2plus1d_unit, num_classes=num_classes, num_frames=num_frames,
                  dropout=dropout, width_mult=width_mult, net2d=net2d,
                  zero_init_last=zero_init_last)


@register_model(family='eco_lite', four_d_only=True,
                reference=PAPER_REFERENCES['eco_lite_p3d_a'])
def eco_lite_p3d_a(*, num_classes: int, num_frames: int, dropout: float = 0.5,
                   width_mult: float = 1.0, net2d: Net2dName = 'inception',
                   zero_init_last: bool = False) -> EcoLite:
    """P3D-A ECO-Lite: ``T(S(x))``."""
    return _build(unit=_p3d_a_unit, num_classes=num_classes, num_frames=num_frames,
                  dropout=dropout, width_mult=width_mult, net2d=net2d,
                  zero_init_last=zero_init_last)


@register_model(family='eco_lite', four_d_only=True,
                reference=PAPER_REFERENCES['eco_lite_p3d_b'])
def eco_lite_p3d_b(*, num_classes: int, num_frames: int, dropout: float = 0.5,
                   width_mult: float = 1.0, net2d: Net2dName = 'inception',
                   zero_init_last: bool = False) -> EcoLite:
    """P3D-B ECO-Lite: ``S(x) + T(x)``."""
    return _build(unit=P3dB, num_classes=num_classes, num_frames=num_frames, dropout=dropout,
                  width_mult=width_mult, net2d=net2d, zero_init_last=zero_init_last)


@register_model(family='eco_lite', four_d_only=True,
                reference=PAPER_REFERENCES['eco_lite_p3d_c'])
def eco_lite_p3d_c(*, num_classes: int, num_frames: int, dropout: float = 0.5,
                   width_mult: float = 1.0, net2d: Net2dName = 'inception',
                   zero_init_last: bool = False) -> EcoLite:
    """P3D-C ECO-Lite: ``S(x) + T(S(x))``."""
    return _build(unit=P3dC, num_classes=num_classes, num_frames=num_frames, dropout=dropout,
                  width_mult=width_mult, net2d=net2d, zero_init_last=zero_init_last)


@register_model(family='eco_lite', four_d_only=True,
                reference=PAPER_REFERENCES['eco_lite_rank1'])
def eco_lite_rank1(*, num_classes: int, num_frames: int, dropout: float = 0.5,
                   width_mult: float = 1.0, net2d: Net2dName = 'inception',
                   zero_init_last: bool = False) -> EcoLite:
    """Rank-1 ECO-Lite (h -> w -> t), 4D strided blocks and shortcuts."""
    return _build(unit=Rank1, num_classes=num_classes, num_frames=num_frames, dropout=dropout,
                  width_mult=width_mult, net2d=net2d, zero_init_last=zero_init_last,
                  shortcut_4d=True)


@register_model(family='eco_lite', four_d_only=True,
                reference=PAPER_REFERENCES['eco_lite_add'])
def eco_lite_add(*, num_classes: int, num_frames: int, dropout: float = 0.5,
                 width_mult: float = 1.0, net2d: Net2dName = 'inception',
                 zero_init_last: bool = False,
                 temporal_stride_mode: TemporalStrideMode = 'aligned') -> EcoLite:
    """Proposed-Add ECO-Lite (paper 000).

    ``temporal_stride_mode='aligned'`` (default) keeps the temporal branch on the same pixels as
    the spatial branch; ``'paper'`` reproduces the paper's ``s^2`` stride along the flattened
    ``X*Y`` axis, which relabels every 4th column of a 28x28 map as a 14x14 map and so adds
    features of different places (see :class:`ProposedConv`).
    """
    return _build(unit=_proposed_unit('add', temporal_stride_mode), num_classes=num_classes,
                  num_frames=num_frames, dropout=dropout, width_mult=width_mult, net2d=net2d,
                  zero_init_last=zero_init_last, shortcut_4d=True)


@register_model(family='eco_lite', four_d_only=True,
                reference=PAPER_REFERENCES['eco_lite_cat'])
def eco_lite_cat(*, num_classes: int, num_frames: int, dropout: float = 0.5,
                 width_mult: float = 1.0, net2d: Net2dName = 'inception',
                 zero_init_last: bool = False,
                 temporal_stride_mode: TemporalStrideMode = 'aligned') -> EcoLite:
    """Proposed-Cat ECO-Lite (paper 000): block widths 256/512/1024 (two branches each).

    ``temporal_stride_mode`` as for :func:`eco_lite_add`.
    """
    return _build(unit=_proposed_unit('cat', temporal_stride_mode), num_classes=num_classes,
                  num_frames=num_frames, dropout=dropout, width_mult=width_mult, net2d=net2d,
                  zero_init_last=zero_init_last, shortcut_4d=True, width_factor=2)


@register_model(family='eco_lite', four_d_only=True)
def eco_lite_add_small(*, num_classes: int, num_frames: int, dropout: float = 0.5,
                       width_mult: float = 0.25, net2d: Net2dName = 'small',
                       zero_init_last: bool = False,
                       temporal_stride_mode: TemporalStrideMode = 'aligned') -> EcoLite:
    """Proposed-Add on the small 2D-Net, 3D-Net widths 32/64/128: the CPU default model.

    Meant for real time on a 2-core CPU at 16 frames of 112x112 (the default input size).
    """
    return eco_lite_add(num_classes=num_classes, num_frames=num_frames, dropout=dropout,
                        width_mult=width_mult, net2d=net2d, zero_init_last=zero_init_last,
                        temporal_stride_mode=temporal_stride_mode)

"""The 3D-Net blocks of ECO-Lite (paper 000): the 3x3x3 replacements and the residual blocks.

Every block works on frames ``[B*T, C, H, W]`` (the T frames of a clip contiguous) and takes the
clip length at call time: ``forward(x, num_frames)``. A *conv unit* replaces one 3x3x3
convolution of a residual block, ``[B*T, C_in, H, W] -> [B*T', C_out, H', W']`` with
``T' = ceil(T / stride)``, ``H' = ceil(H / stride)``:

- :func:`conv3d_unit`: the 3x3x3 convolution itself, computed exactly in 4D
  (:class:`~action_recognition.models.layers.Conv3dAs4d`).
- :class:`SerialSpatialTemporal`: R(2+1)D (:func:`r2plus1d_unit`, Tran et al.'s mid width) and
  P3D-A (:func:`p3d_a_unit`); :class:`P3dB`, :class:`P3dC`: Qiu et al.'s other combinations.
- :class:`Rank1`: three 1D convolutions in h -> w -> t order.
- :class:`ProposedConv`: the paper's Proposed-Add / Proposed-Cat
  (:func:`proposed_unit`), with :class:`PaperStridedTemporalConv` for its ``'paper'`` stride.

:func:`conv_unit` maps a block name of the variant table (``'conv3d'``, ``'r2plus1d'``,
``'p3d_a'``, ``'p3d_b'``, ``'p3d_c'``, ``'rank1'``, ``'add'``, ``'cat'``) to its unit factory.
:class:`ResidualBlock` and :class:`Shortcut` build the 4D-only residual blocks from a unit;
:class:`BasicBlock5d` and :class:`Shortcut5d` are the 5D reference (``nn.Conv3d``,
``BatchNorm3d`` on ``[B, C, T, H, W]``), with the same module names as :class:`ResidualBlock`
with the Conv3D unit, so the 4D model loads the reference's state dict.

Strided subsampling (spatial, and over the frames in :func:`subsample_frames`) is a kernel-1
average pooling with a stride (:func:`~action_recognition.models.layers.subsample`), never a
slice with a step, which Arm's Vela and Rockchip's RKNN leave on the CPU (issue 14).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch
from torch import nn
from torch import Tensor
import torch.nn.functional as F

from action_recognition.models.layers import Conv3dAs4d
from action_recognition.models.layers import from_temporal
from action_recognition.models.layers import subsample
from action_recognition.models.layers import to_temporal

__all__ = [
    'ConvUnitFactory', 'TemporalStrideMode', 'UnitName', 'CONV_UNITS', 'frames_after',
    'subsample_frames', 'r2plus1d_mid_channels', 'SerialSpatialTemporal', 'P3dB', 'P3dC', 'Rank1',
    'PaperStridedTemporalConv', 'ProposedConv', 'conv3d_unit', 'r2plus1d_unit', 'p3d_a_unit',
    'proposed_unit', 'conv_unit', 'Shortcut', 'ResidualBlock', 'Shortcut5d', 'BasicBlock5d',
]

ConvUnitFactory = Callable[[int, int, int], nn.Module]
"""``factory(in_channels, out_channels, stride) -> unit`` with ``unit(x, num_frames)``."""

TemporalStrideMode = Literal['aligned', 'paper']
"""Proposed-Add/Cat's temporal stride: ``'aligned'`` (default) or the paper's (``'paper'``)."""

UnitName = Literal['conv3d', 'r2plus1d', 'p3d_a', 'p3d_b', 'p3d_c', 'rank1', 'add', 'cat']
"""The 3x3x3 replacements by name (the ``block`` column of the ECO-Lite variant table)."""


def frames_after(num_frames: int, stride: int) -> int:
    """``ceil(T / stride)``: frames after a kernel-3/pad-1 or kernel-1 conv strided along T."""
    return (num_frames - 1) // stride + 1


def subsample_frames(x: Tensor, num_frames: int, stride: int) -> Tensor:
    """Every ``stride``-th frame of each clip: ``[B*T, C, H, W]`` -> ``[B*ceil(T/s), C, H, W]``.

    A kernel-1 pooling with stride ``(s, 1)`` on ``[B, 1, T, C*H*W]`` (:func:`subsample`), which
    NPUs take, rather than a slice with a stride.
    """
    if stride == 1:
        return x
    _, channels, height, width = x.shape
    clips = x.reshape(-1, 1, num_frames, channels * height * width)
    return subsample(clips, stride, 1).reshape(-1, channels, height, width)


def r2plus1d_mid_channels(in_channels: int, out_channels: int) -> int:
    """Tran et al.'s mid width: the (2+1)D pair has the parameters of one 3x3x3 convolution."""
    return (27 * in_channels * out_channels) // (9 * in_channels + 3 * out_channels)


# ---------------------------------------------------------------------------------------------
# The 3x3x3 replacements ("conv units"): forward(x [B*T, C_in, H, W], num_frames) ->
# [B*T', C_out, H', W'] with T' = ceil(T / stride), H' = ceil(H / stride).


class _Strided(nn.Module):
    """Base of the conv units, shortcuts and residual blocks: ``stride`` applies to T, H and W."""

    def __init__(self, stride: int) -> None:
        super().__init__()
        self.stride = stride

    def out_frames(self, num_frames: int) -> int:
        """``T' = ceil(T / stride)`` for an input clip of ``num_frames`` frames."""
        return frames_after(num_frames, self.stride)


def _spatial(in_channels: int, out_channels: int, stride: tuple[int, int, int]) -> Conv3dAs4d:
    # 1x3x3: a 3x3 Conv2d on the frames (frames subsampled when stride[0] > 1).
    return Conv3dAs4d(in_channels, out_channels, (1, 3, 3), stride=stride, padding=(0, 1, 1),
                      bias=False)


def _temporal(in_channels: int, out_channels: int, stride: tuple[int, int, int]) -> Conv3dAs4d:
    # 3x1x1: a (3, 1) Conv2d on [B, C, T, H*W] (after subsample(x, s, s) when spatially strided).
    return Conv3dAs4d(in_channels, out_channels, (3, 1, 1), stride=stride, padding=(1, 0, 0),
                      bias=False)


def _temporal_pool(channels: int, stride: int) -> Conv3dAs4d:
    # The paper's temporal pooling: a 1x1 conv with stride s along T on [B, C, T, X*Y].
    return Conv3dAs4d(channels, channels, 1, stride=(stride, 1, 1), bias=False)


class SerialSpatialTemporal(_Strided):
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

    def spatial_part(self, x: Tensor, num_frames: int) -> Tensor:
        """``h = ReLU(BN(S(x)))``: ``[B*T, C_in, H, W]`` -> ``[B*T, C_mid, H', W']``."""
        return F.relu(self.bn(self.spatial(x, num_frames)), inplace=True)

    def forward(self, x: Tensor, num_frames: int) -> Tensor:
        return self.temporal(self.spatial_part(x, num_frames), num_frames)


class P3dB(_Strided):
    """P3D-B: ``S(x) + T(x)``, both from the input, both strided ``(s, s, s)``.

    ``S`` is ``1x3x3`` (keeps every s-th frame), ``T`` is ``3x1x1`` on the ``[::s, ::s]``
    subsampled map (a kernel-1 pooling with stride ``s``):
    ``[B*T, C_in, H, W]`` -> ``[B*T', C_out, H', W']``. The block's BN follows.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__(stride)
        self.spatial = _spatial(in_channels, out_channels, (stride, stride, stride))
        self.temporal = _temporal(in_channels, out_channels, (stride, stride, stride))

    def forward(self, x: Tensor, num_frames: int) -> Tensor:
        return self.spatial(x, num_frames) + self.temporal(x, num_frames)


class P3dC(SerialSpatialTemporal):
    """P3D-C: ``h = ReLU(BN(S(x)))``, output ``h + T(h)``: P3D-A plus a direct path.

    ``S`` is ``1x3x3`` with stride ``(1, s, s)``, ``T`` is ``3x1x1`` with stride ``(s, 1, 1)``;
    the direct path takes every s-th frame of ``h`` so both terms have ``T' = ceil(T/s)`` frames:
    ``[B*T, C_in, H, W]`` -> ``[B*T', C_out, H', W']``.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__(in_channels, out_channels, stride, mid_channels=out_channels)

    def forward(self, x: Tensor, num_frames: int) -> Tensor:
        h = self.spatial_part(x, num_frames)
        return subsample_frames(h, num_frames, self.stride) + self.temporal(h, num_frames)


class Rank1(_Strided):
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

    The ``s^2`` stride is taken as a kernel-1 pooling of the input (:func:`subsample`; the kernel
    is one column wide and unpadded along ``X*Y``, so that is the strided convolution exactly,
    with its MACs), then a ``(3, 1)`` conv with stride ``(s, 1)``: Arm's Vela takes convolution
    strides up to 3 only, and refused the whole graph on the stride-4 convolution.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__(in_channels, out_channels, (3, 1, 1), stride=stride,
                         padding=(1, 0, 0), bias=False)

    def forward(self, x: Tensor, num_frames: int) -> Tensor:
        stride = self.stride[0]
        height, width = x.shape[2], x.shape[3]
        out_h, out_w = frames_after(height, stride), frames_after(width, stride)
        columns = frames_after(height * width, stride * stride)
        if columns != out_h * out_w:
            raise ValueError(
                f"temporal_stride_mode='paper' cannot stride a {height}x{width} map: "
                f'{height}*{width} pixels strided by {stride * stride} give {columns}, not '
                f"{out_h}x{out_w}; use even feature maps (e.g. 243x243 input) or 'aligned'")
        weight = self.weight.reshape(self.out_channels, self.in_channels, 3, 1)
        columns_kept = subsample(to_temporal(x, num_frames), 1, stride * stride)
        y = F.conv2d(columns_kept, weight, self.bias, stride=(stride, 1), padding=(1, 0))
        return from_temporal(y, out_h, out_w)


class ProposedConv(_Strided):
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


# ---------------------------------------------------------------------------------------------
# The unit factories: factory(in_channels, out_channels, stride) -> unit.


def conv3d_unit(in_channels: int, out_channels: int, stride: int) -> nn.Module:
    """Conv3D: the 3x3x3 convolution (stride ``s`` in T, H, W) computed exactly in 4D."""
    return Conv3dAs4d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)


def r2plus1d_unit(in_channels: int, out_channels: int, stride: int) -> nn.Module:
    """R(2+1)D: :class:`SerialSpatialTemporal` with Tran et al.'s mid width."""
    return SerialSpatialTemporal(in_channels, out_channels, stride,
                                 mid_channels=r2plus1d_mid_channels(in_channels, out_channels))


def p3d_a_unit(in_channels: int, out_channels: int, stride: int) -> nn.Module:
    """P3D-A: :class:`SerialSpatialTemporal` with mid width ``C_out``."""
    return SerialSpatialTemporal(in_channels, out_channels, stride, mid_channels=out_channels)


def proposed_unit(combine: Literal['add', 'cat'], mode: TemporalStrideMode = 'aligned'
                  ) -> ConvUnitFactory:
    """Proposed-Add (``combine='add'``) or Proposed-Cat (``'cat'``): :class:`ProposedConv`."""
    def factory(in_channels: int, out_channels: int, stride: int) -> nn.Module:
        return ProposedConv(in_channels, out_channels, stride, combine=combine, mode=mode)

    return factory


CONV_UNITS: dict[str, ConvUnitFactory] = {
    'conv3d': conv3d_unit, 'r2plus1d': r2plus1d_unit, 'p3d_a': p3d_a_unit, 'p3d_b': P3dB,
    'p3d_c': P3dC, 'rank1': Rank1,
}
"""The unit factories that take no option, by name (Proposed-Add/Cat: :func:`proposed_unit`)."""


def conv_unit(name: UnitName, temporal_stride_mode: TemporalStrideMode = 'aligned'
              ) -> ConvUnitFactory:
    """The factory of unit ``name``; ``temporal_stride_mode`` applies to ``'add'``/``'cat'``."""
    if name in ('add', 'cat'):
        return proposed_unit('add' if name == 'add' else 'cat', temporal_stride_mode)
    return CONV_UNITS[name]


# ---------------------------------------------------------------------------------------------
# Shortcuts and residual blocks: 4D-only, and the 5D reference.


class Shortcut(_Strided):
    """Projection shortcut on frames: ``[B*T, C_in, H, W]`` -> ``[B*T', C_out, H', W']``.

    ``pattern_4d=False``: a ``1x1x1`` conv with stride ``(s, s, s)``, then BN.
    ``pattern_4d=True`` (the paper's): a 1x1 conv with spatial stride ``s`` on the frames, then
    (strided blocks only) the temporal-pooling 1x1 conv with stride ``s`` along T, then BN.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int, *,
                 pattern_4d: bool) -> None:
        super().__init__(stride)
        conv_stride = (1, stride, stride) if pattern_4d else (stride, stride, stride)
        self.conv = Conv3dAs4d(in_channels, out_channels, 1, stride=conv_stride, bias=False)
        self.pool = _temporal_pool(out_channels, stride) if pattern_4d and stride > 1 else None
        self.bn = nn.BatchNorm2d(out_channels)

    def forward(self, x: Tensor, num_frames: int) -> Tensor:
        x = self.conv(x, num_frames)
        if self.pool is not None:
            x = self.pool(x, num_frames)
        return self.bn(x)


class ResidualBlock(_Strided):
    """``conv1 -> BN -> ReLU -> conv2 -> BN``, plus the shortcut, then ReLU, on frames.

    ``conv1`` and ``conv2`` come from ``unit`` (``conv1`` carries the stride):
    ``[B*T, C_in, H, W]`` -> ``[B*T', C_out, H', W']``.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int, *,
                 unit: ConvUnitFactory, shortcut_4d: bool) -> None:
        super().__init__(stride)
        self.conv1 = unit(in_channels, out_channels, stride)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = unit(out_channels, out_channels, 1)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut: Shortcut | None = None
        if stride > 1 or in_channels != out_channels:
            self.shortcut = Shortcut(in_channels, out_channels, stride, pattern_4d=shortcut_4d)

    def forward(self, x: Tensor, num_frames: int) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x, num_frames)), inplace=True)
        out = self.bn2(self.conv2(out, self.out_frames(num_frames)))
        identity = x if self.shortcut is None else self.shortcut(x, num_frames)
        return F.relu(out + identity, inplace=True)


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


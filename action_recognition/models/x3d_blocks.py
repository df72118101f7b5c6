"""The blocks of X3D (:mod:`~action_recognition.models.x3d`), with PyTorchVideo's module names.

The 5D reference's layers (``nn.Conv3d``/``BatchNorm3d`` on clips ``[B, C, T, H, W]``:
:class:`Stem5d`, :class:`SqueezeExcitation5d`, :class:`Bottleneck5d`, :class:`ResBlock5d`) and
their 4D-only twins on frames ``[B*T, C, H, W]`` with ``num_frames`` (:class:`Stem4d`,
:class:`SqueezeExcitation4d`, :class:`NormSE4d`, :class:`Bottleneck4d`, :class:`ResBlock4d`),
side by side with the same attribute names, so one state dict loads into both; the stages and
the head (:class:`Stage`, :class:`ProjectedPool`, :class:`Head`) serve both. Each 4D
convolution is a :class:`~action_recognition.models.layers.Conv3dAs4d`, whose form follows its
kernel: ``1x1x1`` and the stem's ``1x3x3`` a plain ``Conv2d``, the stem's depthwise ``5x1x1`` a
``(5, 1)`` convolution on the temporal layout (or, with ``fused=True``, the stem's two as one
``5x3x3`` convolution on shifted copies of the input), the depthwise ``3x3x3`` one depthwise
``Conv2d`` per temporal tap on frames shifted along ``B*T``.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch import Tensor
import torch.nn.functional as F

from action_recognition.models.compose import compose_spatial_temporal
from action_recognition.models.compose import composed_weight
from action_recognition.models.compose import stack_clip_taps
from action_recognition.models.layers import clip_mean_per_frame
from action_recognition.models.layers import Conv3dAs4d
from action_recognition.models.layers import spatial_mean

__all__ = [
    'STEM_WIDTH', 'HEAD_WIDTH', 'round_width', 'stage_dims', 'Swish', 'Conv2plus1d', 'stem_convs',
    'Stem5d', 'SqueezeExcitation5d', 'Bottleneck5d', 'ResBlock5d', 'Stage', 'ProjectedPool',
    'Head', 'Stem4d', 'SqueezeExcitation4d', 'NormSE4d', 'Bottleneck4d', 'ResBlock4d',
]

STEM_WIDTH = 24
HEAD_WIDTH = 2048


def round_width(width: float, multiplier: float, divisor: int = 8) -> int:
    """PyTorchVideo's ``round_width``: ``width * multiplier`` to a multiple of ``divisor``."""
    width *= multiplier
    out = max(divisor, int(width + divisor / 2) // divisor * divisor)
    return out + divisor if out < 0.9 * width else out


def stage_dims(width_factor: float = 2.0, depth_factor: float = 2.2,
               bottleneck_factor: float = 2.25) -> list[tuple[int, int, int]]:
    """``(depth, dim_inner, dim_out)`` of the 4 stages, as ``create_x3d`` computes them."""
    dims, base = [], 12
    for repeats in (1, 2, 5, 3):
        dim_out = round_width(base, width_factor)
        dims.append((math.ceil(depth_factor * repeats), int(bottleneck_factor * dim_out),
                     dim_out))
        base = round_width(base, 2.0)
    return dims


class Swish(nn.Module):
    """``x * sigmoid(x)`` (PyTorchVideo's ``Swish``; the same values and gradients)."""

    def forward(self, x: Tensor) -> Tensor:
        return x * torch.sigmoid(x)


# ---------------------------------------------------------------------------------------------
# The 5D reference: PyTorchVideo's layers and names.


class Conv2plus1d(nn.Module):
    """PyTorchVideo's ``Conv2plus1d`` of the stem: ``conv_t`` (spatial!) then ``conv_xy``."""

    def __init__(self, conv_t: nn.Module, conv_xy: nn.Module) -> None:
        super().__init__()
        self.conv_t = conv_t
        self.conv_xy = conv_xy

    def forward(self, x: Tensor, num_frames: int = 0) -> Tensor:
        if isinstance(self.conv_t, Conv3dAs4d):
            return self.conv_xy(self.conv_t(x, num_frames), num_frames)
        return self.conv_xy(self.conv_t(x))


def stem_convs(conv: type[nn.Module]) -> Conv2plus1d:
    return Conv2plus1d(
        conv(3, STEM_WIDTH, (1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1), bias=False),
        conv(STEM_WIDTH, STEM_WIDTH, (5, 1, 1), padding=(2, 0, 0), groups=STEM_WIDTH,
             bias=False))


class Stem5d(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = stem_convs(nn.Conv3d)
        self.norm = nn.BatchNorm3d(STEM_WIDTH)
        self.activation = nn.ReLU()

    def forward(self, x: Tensor) -> Tensor:
        return self.activation(self.norm(self.conv(x)))


class SqueezeExcitation5d(nn.Module):
    """fvcore's ``SqueezeExcitation(is_3d=True)``."""

    def __init__(self, channels: int, reduced: int) -> None:
        super().__init__()
        self.block = nn.Sequential(nn.Conv3d(channels, reduced, 1), nn.ReLU(),
                                   nn.Conv3d(reduced, channels, 1), nn.Sigmoid())

    def forward(self, x: Tensor) -> Tensor:
        return x * self.block(x.mean(dim=[2, 3, 4], keepdim=True))


class Bottleneck5d(nn.Module):
    def __init__(self, dim_in: int, dim_inner: int, dim_out: int, stride: int,
                 se: bool) -> None:
        super().__init__()
        self.conv_a = nn.Conv3d(dim_in, dim_inner, 1, bias=False)
        self.norm_a = nn.BatchNorm3d(dim_inner)
        self.act_a = nn.ReLU()
        self.conv_b = nn.Conv3d(dim_inner, dim_inner, 3, stride=(1, stride, stride), padding=1,
                                groups=dim_inner, bias=False)
        self.norm_b = nn.Sequential(
            nn.BatchNorm3d(dim_inner),
            SqueezeExcitation5d(dim_inner, round_width(dim_inner, 0.0625)) if se
            else nn.Identity())
        self.act_b = Swish()
        self.conv_c = nn.Conv3d(dim_inner, dim_out, 1, bias=False)
        self.norm_c = nn.BatchNorm3d(dim_out)

    def forward(self, x: Tensor) -> Tensor:
        x = self.act_b(self.norm_b(self.conv_b(self.act_a(self.norm_a(self.conv_a(x))))))
        return self.norm_c(self.conv_c(x))


class ResBlock5d(nn.Module):
    def __init__(self, dim_in: int, dim_inner: int, dim_out: int, stride: int,
                 se: bool) -> None:
        super().__init__()
        self.branch1_conv = (nn.Conv3d(dim_in, dim_out, 1, stride=(1, stride, stride),
                                       bias=False) if dim_in != dim_out or stride > 1 else None)
        self.branch1_norm = nn.BatchNorm3d(dim_out) if dim_in != dim_out else None
        self.branch2 = Bottleneck5d(dim_in, dim_inner, dim_out, stride, se)
        self.activation = nn.ReLU()

    def forward(self, x: Tensor) -> Tensor:
        shortcut = x if self.branch1_conv is None else self.branch1_conv(x)
        if self.branch1_norm is not None:
            shortcut = self.branch1_norm(shortcut)
        return self.activation(shortcut + self.branch2(x))


class Stage(nn.Module):
    """PyTorchVideo's ``ResStage``: ``res_blocks``, the first strided (1, 2, 2)."""

    def __init__(self, block: type[nn.Module], depth: int, dim_in: int, dim_inner: int,
                 dim_out: int) -> None:
        super().__init__()
        self.res_blocks = nn.ModuleList(
            block(dim_in if i == 0 else dim_out, dim_inner, dim_out, 2 if i == 0 else 1,
                  (i + 1) % 2 == 1) for i in range(depth))

    def forward(self, x: Tensor, num_frames: int = 0) -> Tensor:
        for block in self.res_blocks:
            x = block(x, num_frames) if num_frames else block(x)
        return x


class ProjectedPool(nn.Module):
    """PyTorchVideo's ``ProjectedPool`` (``pool`` is the stateless window average)."""

    def __init__(self, conv: type[nn.Module], norm: type[nn.Module], dim_in: int,
                 dim_inner: int, window: int) -> None:
        super().__init__()
        self.pre_conv = conv(dim_in, dim_inner, (1, 1, 1), bias=False)
        self.pre_norm = norm(dim_inner)
        self.pre_act = nn.ReLU()
        self.window = window
        self.post_conv = conv(dim_inner, HEAD_WIDTH, (1, 1, 1), bias=False)
        self.post_act = nn.ReLU()


class Head(nn.Module):
    """PyTorchVideo's ``ResNetBasicHead`` of X3D: ``pool``, ``dropout``, ``proj``."""

    def __init__(self, pool: ProjectedPool, num_classes: int, dropout: float) -> None:
        super().__init__()
        self.pool = pool
        self.dropout = nn.Dropout(dropout)
        self.proj = nn.Linear(HEAD_WIDTH, num_classes)


# ---------------------------------------------------------------------------------------------
# The 4D-only layers: the same names, frames [B*T, C, H, W] with num_frames.


class Stem4d(nn.Module):
    """The stem on frames ``[B*T, 3, H, W]`` -> ``[B*T, 24, H/2, W/2]``.

    ``fused=False``: ``conv_t`` (a ``Conv2d`` on the frames) then ``conv_xy`` (a ``(5, 1)``
    convolution on the temporal layout, between two transposes), PyTorchVideo's MACs.
    ``fused=True``: the two as one dense ``5x3x3`` convolution (exact: both are linear and
    bias-free), a ``Conv2d`` with 15 input channels on the five shifted copies of the input frames
    (:func:`~action_recognition.models.compose.stack_clip_taps`); its weight is computed from
    ``conv_t``'s and ``conv_xy``'s (the same parameters and state dict). No transpose and no
    blocked-layout reorder: faster on OpenVINO, and on RKNN at 16x224 only the input's reshape
    left on the CPU instead of two transposes (see the X3D module docstring), for 5x the stem's
    ``conv_t`` MACs (X3D-M at 16x224: +0.50 GMAC).
    """

    def __init__(self, *, fused: bool = False) -> None:
        super().__init__()
        self.conv = stem_convs(Conv3dAs4d)
        self.norm = nn.BatchNorm2d(STEM_WIDTH)
        self.activation = nn.ReLU()
        self.fused = fused
        if fused:
            conv_t, conv_xy = self.conv.conv_t, self.conv.conv_xy
            assert isinstance(conv_t, Conv3dAs4d) and isinstance(conv_xy, Conv3dAs4d)
            compose_spatial_temporal(conv_t, conv_xy)

    def forward(self, x: Tensor, num_frames: int) -> Tensor:
        if not self.fused:
            return self.activation(self.norm(self.conv(x, num_frames)))
        conv_t, conv_xy = self.conv.conv_t, self.conv.conv_xy
        assert isinstance(conv_t, Conv3dAs4d) and isinstance(conv_xy, Conv3dAs4d)
        weight, offsets = composed_weight(conv_t, conv_xy)
        stacked = stack_clip_taps(x, offsets, num_frames)  # [B*T, 5*3, H, W]
        y = F.conv2d(stacked, weight, stride=conv_t.stride[1:], padding=conv_t.padding[1:])
        return self.activation(self.norm(y))


class SqueezeExcitation4d(nn.Module):
    """SE on frames: the gate of each clip from its frames' means, multiplied into them."""

    def __init__(self, channels: int, reduced: int) -> None:
        super().__init__()
        self.block = nn.ModuleList([Conv3dAs4d(channels, reduced, 1), nn.ReLU(),
                                    Conv3dAs4d(reduced, channels, 1), nn.Sigmoid()])

    def forward(self, x: Tensor, num_frames: int) -> Tensor:
        squeeze, act, excite, gate = self.block
        # Each frame gets its clip's mean (no broadcast operator, which NPUs lack); the gate's
        # 1x1 convolutions then run once per frame on equal inputs, a few thousand MACs.
        s = clip_mean_per_frame(spatial_mean(x), num_frames)  # [B*T, C, 1, 1]
        return x * gate(excite(act(squeeze(s, 1)), 1))


class NormSE4d(nn.ModuleList):
    """``norm_b``: BN, then SE (or identity); a list, so the names are ``0`` and ``1``."""

    def forward(self, x: Tensor, num_frames: int) -> Tensor:
        norm, se = self[0], self[1]
        x = norm(x)
        return se(x, num_frames) if isinstance(se, SqueezeExcitation4d) else x


class Bottleneck4d(nn.Module):
    def __init__(self, dim_in: int, dim_inner: int, dim_out: int, stride: int,
                 se: bool) -> None:
        super().__init__()
        self.conv_a = Conv3dAs4d(dim_in, dim_inner, 1, bias=False)
        self.norm_a = nn.BatchNorm2d(dim_inner)
        self.act_a = nn.ReLU()
        self.conv_b = Conv3dAs4d(dim_inner, dim_inner, 3, stride=(1, stride, stride), padding=1,
                                 groups=dim_inner, bias=False)
        self.norm_b = NormSE4d([
            nn.BatchNorm2d(dim_inner),
            SqueezeExcitation4d(dim_inner, round_width(dim_inner, 0.0625)) if se
            else nn.Identity()])
        self.act_b = Swish()
        self.conv_c = Conv3dAs4d(dim_inner, dim_out, 1, bias=False)
        self.norm_c = nn.BatchNorm2d(dim_out)

    def forward(self, x: Tensor, num_frames: int) -> Tensor:
        x = self.act_a(self.norm_a(self.conv_a(x, num_frames)))
        x = self.act_b(self.norm_b(self.conv_b(x, num_frames), num_frames))
        return self.norm_c(self.conv_c(x, num_frames))


class ResBlock4d(nn.Module):
    def __init__(self, dim_in: int, dim_inner: int, dim_out: int, stride: int,
                 se: bool) -> None:
        super().__init__()
        self.branch1_conv = (Conv3dAs4d(dim_in, dim_out, 1, stride=(1, stride, stride),
                                        bias=False) if dim_in != dim_out or stride > 1 else None)
        self.branch1_norm = nn.BatchNorm2d(dim_out) if dim_in != dim_out else None
        self.branch2 = Bottleneck4d(dim_in, dim_inner, dim_out, stride, se)
        self.activation = nn.ReLU()

    def forward(self, x: Tensor, num_frames: int) -> Tensor:
        shortcut = x if self.branch1_conv is None else self.branch1_conv(x, num_frames)
        if self.branch1_norm is not None:
            shortcut = self.branch1_norm(shortcut)
        return self.activation(shortcut + self.branch2(x, num_frames))


# ---------------------------------------------------------------------------------------------
# The models.

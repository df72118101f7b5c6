"""Exact 4D-only replacements for the 3D layers the Conv3d converter rewrites.

Every module here takes frames ``[B*T, C, H, W]`` (the T frames of a clip contiguous) together
with ``num_frames = T`` and returns frames ``[B*T', C', H', W']``, computing exactly what its 3D
counterpart computes on the clip ``[B, C, T, H, W]``. Temporal work runs on the temporal layout
``[B, C, T, H*W]`` (:func:`~action_recognition.models.layers.to_temporal`). Convolutions use
:class:`~action_recognition.models.layers.Conv3dAs4d`; ``nn.BatchNorm3d`` becomes
``nn.BatchNorm2d`` (:func:`batch_norm_2d_from_3d`), which has the same per-channel statistics on
frames, in eval and in train mode.

Why pooling separates exactly: a 3D pooling window is the product of one interval per axis, each
computed by the same per-axis rule (kernel, stride, padding, dilation, ``ceil_mode``), and the
divisor of average pooling (``count_include_pad`` either way) is the product of per-axis counts.
So a max (average) over the 3D window is the temporal max (average) of the spatial maxima
(averages), and adaptive pooling, whose bins are per-axis intervals too, separates the same way.

The layout helpers (:func:`frames_to_merged`, :func:`merged_to_frames`, :func:`repeat_frames`,
:func:`frames_to_rowmajor`) are what converted graphs call to move between the representations
of a 5D tensor; none of them makes a tensor of rank 5.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch import Tensor
import torch.nn.functional as F

from action_recognition.models.layers import from_temporal
from action_recognition.models.layers import to_temporal
from action_recognition.models.layers import triple

__all__ = [
    'MaxPool3dAs4d', 'AvgPool3dAs4d', 'AdaptiveAvgPool3dAs4d', 'AdaptiveMaxPool3dAs4d',
    'Dropout3dAs4d', 'batch_norm_2d_from_3d', 'frames_to_merged', 'merged_to_frames',
    'frames_to_rowmajor', 'repeat_frames',
]


def _pool_triple(value: int | Sequence[int] | None, default: tuple[int, int, int],
                 name: str) -> tuple[int, int, int]:
    if value is None or (not isinstance(value, int) and len(value) == 0):
        return default
    return triple(value, name)


def frames_to_rowmajor(x: Tensor, num_frames: int) -> Tensor:
    """Frames ``[B*T, C, H, W]`` -> ``[B, C, T, H*W]``, whose row-major element order is the
    clip's ``[B, C, T, H, W]`` order (so any reshape of the clip is a reshape of this)."""
    return to_temporal(x, num_frames)


def frames_to_merged(x: Tensor, num_frames: int) -> Tensor:
    """Frames ``[B*T, C, H, W]`` -> ``[B*C, T, H, W]``: the clip ``[B, C, T, H, W]`` with its
    first two axes merged."""
    _, _, height, width = x.shape
    return to_temporal(x, num_frames).reshape(-1, num_frames, height, width)


def merged_to_frames(x: Tensor, channels: int) -> Tensor:
    """``[B*C, T, H, W]`` (a clip ``[B, C, T, H, W]`` with its first two axes merged) -> frames
    ``[B*T, C, H, W]``."""
    _, num_frames, height, width = x.shape
    return from_temporal(x.reshape(-1, channels, num_frames, height * width), height, width)


def repeat_frames(x: Tensor, num_frames: int) -> Tensor:
    """Frames of one-frame clips ``[B, C, H, W]`` -> ``[B*T, C, H, W]``, each clip's frame
    repeated ``T`` times (the broadcast of a ``T = 1`` clip against a ``T``-frame clip)."""
    batch, channels, height, width = x.shape
    flat = x.reshape(batch, 1, channels * height * width)
    return flat.expand(batch, num_frames, channels * height * width).reshape(
        batch * num_frames, channels, height, width)


def batch_norm_2d_from_3d(bn: nn.BatchNorm3d) -> nn.BatchNorm2d:
    """An ``nn.BatchNorm2d`` for frames equal to ``bn`` on clips (state, momentum, eps and mode
    carried over): both normalise each channel over all of ``B, T, H, W``."""
    bn2d = nn.BatchNorm2d(bn.num_features, eps=bn.eps, momentum=bn.momentum, affine=bn.affine,
                          track_running_stats=bn.track_running_stats)
    bn2d = bn2d.to(device=_device_of(bn), dtype=_dtype_of(bn))
    bn2d.load_state_dict(bn.state_dict())
    bn2d.train(bn.training)
    return bn2d


def _device_of(module: nn.Module) -> torch.device:
    for tensor in [*module.parameters(), *module.buffers()]:
        return tensor.device
    return torch.device('cpu')


def _dtype_of(module: nn.Module) -> torch.dtype:
    for tensor in [*module.parameters(), *module.buffers()]:
        if tensor.is_floating_point():
            return tensor.dtype
    return torch.get_default_dtype()


class MaxPool3dAs4d(nn.Module):
    """``nn.MaxPool3d`` on frames: a spatial ``max_pool2d`` on ``[B*T, C, H, W]`` then a
    temporal ``(kt, 1)`` ``max_pool2d`` on ``[B, C, T, H'*W']``. Exact for any kernel, stride,
    padding, dilation and ``ceil_mode`` (``return_indices`` is not supported)."""

    def __init__(self, kernel_size: int | Sequence[int], *,
                 stride: int | Sequence[int] | None = None, padding: int | Sequence[int] = 0,
                 dilation: int | Sequence[int] = 1, ceil_mode: bool = False) -> None:
        super().__init__()
        self.kernel_size = triple(kernel_size, 'kernel_size')
        self.stride = _pool_triple(stride, self.kernel_size, 'stride')
        self.padding = triple(padding, 'padding')
        self.dilation = triple(dilation, 'dilation')
        self.ceil_mode = bool(ceil_mode)

    @classmethod
    def from_module(cls, pool: nn.MaxPool3d) -> MaxPool3dAs4d:
        if pool.return_indices:
            raise ValueError('MaxPool3d with return_indices=True is not supported')
        return cls(pool.kernel_size, stride=pool.stride, padding=pool.padding,
                   dilation=pool.dilation, ceil_mode=pool.ceil_mode)

    def extra_repr(self) -> str:
        return (f'kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, '
                f'dilation={self.dilation}, ceil_mode={self.ceil_mode}')

    def forward(self, x: Tensor, num_frames: int) -> Tensor:
        """``[B*T, C, H, W]`` -> ``[B*T', C, H', W']``."""
        kt, kh, kw = self.kernel_size
        st, sh, sw = self.stride
        pt, ph, pw = self.padding
        dt, dh, dw = self.dilation
        if (kh, kw, sh, sw, ph, pw) != (1, 1, 1, 1, 0, 0):
            x = F.max_pool2d(x, (kh, kw), (sh, sw), (ph, pw), (dh, dw), ceil_mode=self.ceil_mode)
        if (kt, st, pt) != (1, 1, 0):
            height, width = x.shape[2], x.shape[3]
            xt = F.max_pool2d(to_temporal(x, num_frames), (kt, 1), (st, 1), (pt, 0), (dt, 1),
                              ceil_mode=self.ceil_mode)
            x = from_temporal(xt, height, width)
        return x


class AvgPool3dAs4d(nn.Module):
    """``nn.AvgPool3d`` on frames: a spatial ``avg_pool2d`` then a temporal ``(kt, 1)``
    ``avg_pool2d``. Exact for any kernel, stride, padding, ``ceil_mode``, ``count_include_pad``
    and ``divisor_override`` (the override divides once, in the spatial step; the temporal step
    then sums)."""

    def __init__(self, kernel_size: int | Sequence[int], *,
                 stride: int | Sequence[int] | None = None, padding: int | Sequence[int] = 0,
                 ceil_mode: bool = False, count_include_pad: bool = True,
                 divisor_override: int | None = None) -> None:
        super().__init__()
        self.kernel_size = triple(kernel_size, 'kernel_size')
        self.stride = _pool_triple(stride, self.kernel_size, 'stride')
        self.padding = triple(padding, 'padding')
        self.ceil_mode = bool(ceil_mode)
        self.count_include_pad = bool(count_include_pad)
        self.divisor_override = divisor_override

    @classmethod
    def from_module(cls, pool: nn.AvgPool3d) -> AvgPool3dAs4d:
        return cls(pool.kernel_size, stride=pool.stride, padding=pool.padding,
                   ceil_mode=pool.ceil_mode, count_include_pad=pool.count_include_pad,
                   divisor_override=pool.divisor_override)

    def extra_repr(self) -> str:
        return (f'kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, '
                f'ceil_mode={self.ceil_mode}, count_include_pad={self.count_include_pad}, '
                f'divisor_override={self.divisor_override}')

    def forward(self, x: Tensor, num_frames: int) -> Tensor:
        """``[B*T, C, H, W]`` -> ``[B*T', C, H', W']``."""
        kt, kh, kw = self.kernel_size
        st, sh, sw = self.stride
        pt, ph, pw = self.padding
        if (kh, kw, sh, sw, ph, pw) != (1, 1, 1, 1, 0, 0) or self.divisor_override:
            x = F.avg_pool2d(x, (kh, kw), (sh, sw), (ph, pw), ceil_mode=self.ceil_mode,
                             count_include_pad=self.count_include_pad,
                             divisor_override=self.divisor_override)
        if (kt, st, pt) != (1, 1, 0):
            height, width = x.shape[2], x.shape[3]
            xt = F.avg_pool2d(to_temporal(x, num_frames), (kt, 1), (st, 1), (pt, 0),
                              ceil_mode=self.ceil_mode,
                              count_include_pad=self.count_include_pad,
                              divisor_override=1 if self.divisor_override else None)
            x = from_temporal(xt, height, width)
        return x


class _AdaptivePool3dAs4d(nn.Module):
    def __init__(self, output_size: int | Sequence[int | None] | None) -> None:
        super().__init__()
        if output_size is None or isinstance(output_size, int):
            sizes: tuple[int | None, ...] = (output_size,) * 3
        else:
            sizes = tuple(None if s is None else int(s) for s in output_size)
        if len(sizes) != 3:
            raise ValueError(f'output_size must be an int or 3 entries, got {output_size!r}')
        self.output_size = sizes

    def extra_repr(self) -> str:
        return f'output_size={self.output_size}'

    def _pool2d(self, x: Tensor, size: tuple[int, int]) -> Tensor:
        raise NotImplementedError

    def forward(self, x: Tensor, num_frames: int) -> Tensor:
        """``[B*T, C, H, W]`` -> ``[B*T', C, H', W']`` with ``(T', H', W')`` the output size
        (``None`` keeps an axis)."""
        out_t, out_h, out_w = self.output_size
        height, width = x.shape[2], x.shape[3]
        out_h = height if out_h is None else out_h
        out_w = width if out_w is None else out_w
        out_t = num_frames if out_t is None else out_t
        if (out_h, out_w) != (height, width):
            x = self._pool2d(x, (out_h, out_w))
        if out_t != num_frames:
            xt = self._pool2d(to_temporal(x, num_frames), (out_t, out_h * out_w))
            x = from_temporal(xt, out_h, out_w)
        return x


class AdaptiveAvgPool3dAs4d(_AdaptivePool3dAs4d):
    """``nn.AdaptiveAvgPool3d`` on frames (spatial then temporal adaptive average); to
    ``(1, 1, 1)`` it is the mean over space-time, returned as frames ``[B, C, 1, 1]``."""

    @classmethod
    def from_module(cls, pool: nn.AdaptiveAvgPool3d) -> AdaptiveAvgPool3dAs4d:
        return cls(pool.output_size)

    def _pool2d(self, x: Tensor, size: tuple[int, int]) -> Tensor:
        return F.adaptive_avg_pool2d(x, size)


class AdaptiveMaxPool3dAs4d(_AdaptivePool3dAs4d):
    """``nn.AdaptiveMaxPool3d`` on frames (``return_indices`` is not supported)."""

    @classmethod
    def from_module(cls, pool: nn.AdaptiveMaxPool3d) -> AdaptiveMaxPool3dAs4d:
        if pool.return_indices:
            raise ValueError('AdaptiveMaxPool3d with return_indices=True is not supported')
        return cls(pool.output_size)

    def _pool2d(self, x: Tensor, size: tuple[int, int]) -> Tensor:
        return F.adaptive_max_pool2d(x, size)


class Dropout3dAs4d(nn.Module):
    """``nn.Dropout3d`` on frames: in training, each channel of each clip (all of its T frames)
    is zeroed with probability ``p`` and the rest scaled by ``1 / (1 - p)``; identity in eval."""

    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f'dropout probability must be in [0, 1], got {p}')
        self.p = float(p)

    @classmethod
    def from_module(cls, dropout: nn.Dropout3d) -> Dropout3dAs4d:
        return cls(dropout.p)

    def extra_repr(self) -> str:
        return f'p={self.p}'

    def forward(self, x: Tensor, num_frames: int) -> Tensor:
        """``[B*T, C, H, W]`` -> same shape."""
        if not self.training or self.p == 0.0:
            return x
        batch_frames, channels = x.shape[0], x.shape[1]
        keep = torch.empty(batch_frames // num_frames, channels, 1, 1, dtype=x.dtype,
                           device=x.device)
        if self.p == 1.0:
            keep.zero_()
        else:
            keep.bernoulli_(1.0 - self.p).div_(1.0 - self.p)
        return x * repeat_frames(keep, num_frames)

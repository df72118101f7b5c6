"""4D-only building blocks shared by the model zoo and the Conv3d converter.

A clip travels through every 4D-only model as frames ``[B*T, C, H, W]`` with the T frames of a
clip contiguous. Temporal operations use the *temporal layout* ``[B, C, T, H*W]``, in which a
convolution over time is an ordinary 2D convolution with kernel ``(kt, 1)``. Nothing here makes a
tensor of rank 5, and every parameter is stored with rank 4 or less.

- :func:`to_temporal` / :func:`from_temporal`: switch between the two layouts.
- :func:`subsample`, :func:`spatial_mean`, :func:`clip_mean`: strided subsampling and the means
  over space and over a clip's frames, in the forms NPU toolchains take whole (below).
- :class:`Conv3dAs4d`: an exact ``nn.Conv3d`` (any kernel, stride, padding, dilation, groups)
  computed with 4D tensors; it loads ``nn.Conv3d`` state dicts (5D weights are reshaped on load).
- :func:`conv3d_out_size`: the output length of a convolution or pooling along one axis.
- :func:`kaiming_normal_fan_out_`, :func:`init_conv_bn_`: the initialisations the families share.

NPU-friendly forms (issue 14). Edge NPU toolchains (Arm Vela for Ethos-U after PyTorch -> TFLite,
Rockchip RKNN, OpenVINO) run a graph on the accelerator only as far as they support
its operators, and a model keeps the frames of a clip in the batch axis. So the helpers avoid
what they leave on the CPU, with exactly the same results: a strided slice ``x[..., ::s, ::s]``
is a kernel-1 average pooling with stride ``s`` (:func:`subsample`; AVERAGE_POOL_2D); a mean over
``H, W`` is an average pooling along the rows, then along the column (:func:`spatial_mean`), not
a MEAN on a batch of frames (Vela refuses MEAN with batch > 1, and a MEAN over the last two axes
of the NCHW order is a reduction over the NHWC depth); a mean over the T frames of each clip is a
MEAN over axis 1 of ``[B, T, C, 1]`` (:func:`clip_mean`), a height reduction in NHWC.
"""

from __future__ import annotations

from collections.abc import Sequence
import math
from typing import Any

import torch
from torch import nn
from torch import Tensor
import torch.nn.functional as F

__all__ = [
    'to_temporal', 'from_temporal', 'conv3d_out_size', 'Conv3dAs4d', 'triple', 'subsample',
    'spatial_mean', 'clip_mean', 'kaiming_normal_fan_out_', 'init_conv_bn_',
]


def triple(value: int | Sequence[int], name: str = 'value') -> tuple[int, int, int]:
    """``3 -> (3, 3, 3)``; a sequence must have exactly three entries."""
    if isinstance(value, int):
        return (value, value, value)
    items = tuple(int(v) for v in value)
    if len(items) != 3:
        raise ValueError(f'{name} must be an int or 3 ints, got {value!r}')
    return (items[0], items[1], items[2])


def conv3d_out_size(size: int, kernel: int, stride: int = 1, padding: int = 0,
                    dilation: int = 1) -> int:
    """Output length along one axis, as ``nn.Conv3d`` and the pooling layers compute it."""
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def to_temporal(x: Tensor, num_frames: int) -> Tensor:
    """Frames ``[B*T, C, H, W]`` -> temporal layout ``[B, C, T, H*W]``."""
    _, channels, height, width = x.shape
    return x.reshape(-1, num_frames, channels, height * width).permute(0, 2, 1, 3)


def from_temporal(x: Tensor, height: int, width: int) -> Tensor:
    """Temporal layout ``[B, C, T, H*W]`` -> frames ``[B*T, C, H, W]``."""
    _, channels, _num_frames, _ = x.shape
    return x.permute(0, 2, 1, 3).reshape(-1, channels, height, width)


def subsample(x: Tensor, stride_h: int, stride_w: int) -> Tensor:
    """``x[:, :, ::stride_h, ::stride_w]`` of ``[N, C, H, W]``, as a kernel-1 average pooling.

    ``[N, C, ceil(H/s_h), ceil(W/s_w)]``: a window of one element divides by one, so the result
    is the strided slice exactly (NPUs take the pooling, not a slice with a stride).
    """
    if stride_h == 1 and stride_w == 1:
        return x
    return F.avg_pool2d(x, 1, (stride_h, stride_w))


def spatial_mean(x: Tensor) -> Tensor:
    """``[N, C, H, W]`` -> ``[N, C, 1, 1]``: each map's mean, as two average poolings.

    A pooling along each row (window ``1 x W``), then along the column of row means (``H x 1``):
    the mean of equal rows' means is the mean. Not one ``H x W`` window: PyTorch's CPU pooling
    adds up a window one element after the other in float32, which on a flat 64x64 map is off
    by about 1e-4 relatively; ``H + W`` additions stay within a few 1e-6, near ``torch.mean``.
    """
    height, width = _window(x, 2), _window(x, 3)
    rows = x if _is_one(width) else F.avg_pool2d(x, (1, width))
    return rows if _is_one(height) else F.avg_pool2d(rows, (height, 1))


def _window(x: Tensor, dim: int) -> Any:
    """``x.shape[dim]`` as a pooling window: an ``int`` (an ONNX trace records sizes as
    tensors; the window must be a constant of the graph), or, under ``torch.fx`` symbolic
    tracing (the 4D converter), the size's proxy, which the traced graph evaluates when it runs
    (no window is taken for 1 there: the pooling with a window of one is the identity)."""
    size = x.shape[dim]
    return size if isinstance(size, torch.fx.Proxy) else int(size)


def _is_one(size: Any) -> bool:
    return isinstance(size, int) and size == 1


def clip_mean(x: Tensor, num_frames: int) -> Tensor:
    """``[B*T, C]`` (or ``[B*T, C, 1, 1]``) -> ``[B, C]``: the mean over each clip's T frames.

    A mean over axis 1 of ``[B, T, C, 1]``, rank 4 throughout.
    """
    channels = x.shape[1]
    return x.reshape(-1, num_frames, channels, 1).mean(1, keepdim=True).reshape(-1, channels)


class Conv3dAs4d(nn.Module):
    """``nn.Conv3d`` computed exactly with tensors of rank 4 or less.

    Input frames ``[B*T, C_in, H, W]`` with ``num_frames = T`` given at call time (a module can
    serve clips of any length); output frames ``[B*T', C_out, H', W']`` where ``T'``, ``H'``,
    ``W'`` follow ``nn.Conv3d``'s formula (:meth:`out_frames`).

    The weight is stored as ``[C_out, C_in/groups * kt, kh, kw]``: the ``nn.Conv3d`` weight
    ``[C_out, C_in/groups, kt, kh, kw]`` with its input-channel and temporal axes merged (channel
    major), so :meth:`load_state_dict` accepts an ``nn.Conv3d`` state dict and
    :meth:`from_conv3d` copies a module. Two exact paths:

    - kernel ``kt x 1 x 1`` with no spatial padding: a ``(kt, 1)`` convolution on the temporal
      layout ``[B, C, T, H*W]`` (after spatial subsampling, :func:`subsample`, when strided).
    - any other kernel: the ``kt`` temporally shifted copies of the (zero-padded) input are
      stacked on the channel axis, channel major, and one grouped ``Conv2d`` does the rest (a
      temporal stride subsamples each copy with :func:`subsample`).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | Sequence[int],
                 *, stride: int | Sequence[int] = 1, padding: int | Sequence[int] = 0,
                 dilation: int | Sequence[int] = 1, groups: int = 1, bias: bool = True) -> None:
        super().__init__()
        if in_channels % groups or out_channels % groups:
            raise ValueError(
                f'in_channels {in_channels} and out_channels {out_channels} must be divisible '
                f'by groups {groups}')
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = triple(kernel_size, 'kernel_size')
        self.stride = triple(stride, 'stride')
        self.padding = triple(padding, 'padding')
        self.dilation = triple(dilation, 'dilation')
        self.groups = groups
        kt, kh, kw = self.kernel_size
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels // groups * kt, kh, kw))
        self.bias = nn.Parameter(torch.empty(out_channels)) if bias else None
        self.reset_parameters()
        self._register_load_state_dict_pre_hook(self._convert_5d_weight)

    def reset_parameters(self) -> None:
        # Same fan-in, hence the same initialisation distribution, as nn.Conv3d.
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            fan_in = self.weight.shape[1] * self.weight.shape[2] * self.weight.shape[3]
            bound = 1 / math.sqrt(fan_in)
            nn.init.uniform_(self.bias, -bound, bound)

    @staticmethod
    def _convert_5d_weight(state_dict: dict[str, Tensor], prefix: str, *args: Any) -> None:
        key = prefix + 'weight'
        weight = state_dict.get(key)
        if weight is not None and weight.dim() == 5:
            out_channels, in_per_group, kt, kh, kw = weight.shape
            state_dict[key] = weight.reshape(out_channels, in_per_group * kt, kh, kw)

    @classmethod
    def from_conv3d(cls, conv: nn.Conv3d) -> Conv3dAs4d:
        """A 4D-only copy of ``conv`` (weights carried over)."""
        if conv.padding_mode != 'zeros':
            raise ValueError(f'padding_mode {conv.padding_mode!r} is not supported, only zeros')
        if isinstance(conv.padding, str):
            raise ValueError(f'string padding {conv.padding!r} is not supported')
        module = cls(conv.in_channels, conv.out_channels, conv.kernel_size, stride=conv.stride,
                     padding=conv.padding, dilation=conv.dilation, groups=conv.groups,
                     bias=conv.bias is not None)
        module = module.to(device=conv.weight.device, dtype=conv.weight.dtype)
        module.load_state_dict(conv.state_dict())
        return module

    def out_frames(self, num_frames: int) -> int:
        """``T'`` for an input clip of ``num_frames`` frames."""
        return conv3d_out_size(num_frames, self.kernel_size[0], self.stride[0], self.padding[0],
                               self.dilation[0])

    def extra_repr(self) -> str:
        return (f'{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, '
                f'stride={self.stride}, padding={self.padding}, dilation={self.dilation}, '
                f'groups={self.groups}, bias={self.bias is not None}')

    def forward(self, x: Tensor, num_frames: int) -> Tensor:
        """``[B*T, C_in, H, W]`` -> ``[B*T', C_out, H', W']``."""
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f'expected frames [B*T, {self.in_channels}, H, W], got {tuple(x.shape)}')
        kt, kh, kw = self.kernel_size
        st, sh, sw = self.stride
        pt, ph, pw = self.padding
        dt, dh, dw = self.dilation
        out_t = self.out_frames(num_frames)
        if out_t < 1:
            raise ValueError(f'a clip of {num_frames} frames is too short for {self}')
        if kh == 1 and kw == 1 and ph == 0 and pw == 0:
            x = subsample(x, sh, sw)
            height, width = x.shape[2], x.shape[3]
            weight = self.weight.reshape(self.out_channels, -1, kt, 1)
            y = F.conv2d(to_temporal(x, num_frames), weight, self.bias, stride=(st, 1),
                         padding=(pt, 0), dilation=(dt, 1), groups=self.groups)
            return from_temporal(y, height, width)
        _batch_frames, channels, height, width = x.shape
        xt = to_temporal(x, num_frames)  # [B, C, T, HW]
        if pt:
            xt = F.pad(xt, (0, 0, pt, pt))
        span = st * (out_t - 1) + 1
        taps = [subsample(xt[:, :, k * dt:k * dt + span], st, 1)  # each [B, C, T', HW]
                for k in range(kt)]
        if kt == 1:
            stacked = taps[0]
        else:
            # Tap-major [B, kt*C, T', HW] -> channel-major [B, C*kt, T', HW] (4D all the way).
            stacked = torch.cat(taps, dim=1).reshape(-1, kt, channels, out_t * height * width)
            stacked = stacked.permute(0, 2, 1, 3).reshape(-1, channels * kt, out_t,
                                                          height * width)
        frames = from_temporal(stacked, height, width)  # [B*T', C*kt, H, W]
        return F.conv2d(frames, self.weight, self.bias, stride=(sh, sw), padding=(ph, pw),
                        dilation=(dh, dw), groups=self.groups)


def init_conv_bn_(m: nn.Module) -> None:
    """torchvision's ResNet initialisation of one module; other kinds of module are left alone.

    ``nn.Conv2d``/``nn.Conv3d``: Kaiming normal (fan-out, ReLU gain), zero bias; batch and group
    norms: weight 1, bias 0.
    """
    if isinstance(m, (nn.Conv2d, nn.Conv3d)):
        nn.init.kaiming_normal_(m.weight, mode='fan_out', nonlinearity='relu')
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, (nn.BatchNorm2d, nn.BatchNorm3d, nn.GroupNorm)):
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)


def kaiming_normal_fan_out_(conv: Conv3dAs4d) -> None:
    """Kaiming normal (ReLU gain) with ``nn.Conv3d``'s fan-out ``C_out * kt * kh * kw``, zero bias.

    What ``nn.init.kaiming_normal_(mode='fan_out')`` does to the equivalent ``nn.Conv3d``.
    """
    fan_out = conv.out_channels * math.prod(conv.kernel_size)
    nn.init.normal_(conv.weight, 0.0, math.sqrt(2.0 / fan_out))
    if conv.bias is not None:
        nn.init.zeros_(conv.bias)

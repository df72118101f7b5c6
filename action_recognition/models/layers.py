"""4D-only building blocks shared by the model zoo and the Conv3d converter.

A clip travels through every 4D-only model as frames ``[B*T, C, H, W]`` with the T frames of a
clip contiguous. Temporal operations use the *temporal layout* ``[B, C, T, H*W]``, in which a
convolution over time is an ordinary 2D convolution with kernel ``(kt, 1)``. Nothing here makes a
tensor of rank 5, and every parameter is stored with rank 4 or less.

- :func:`to_temporal` / :func:`from_temporal`: switch between the two layouts.
- :func:`subsample`, :func:`spatial_mean`, :func:`clip_mean`, :func:`clip_mean_per_frame`:
  strided subsampling and the means over space and over a clip's frames, in the forms NPU
  toolchains take whole (below).
- :func:`shift_frames`: frames shifted in time within each clip, along the ``B*T`` axis.
- :class:`Conv3dAs4d`: an exact ``nn.Conv3d`` (any kernel, stride, padding, dilation, groups)
  computed with 4D tensors, in a form chosen from its kernel (pointwise, temporal, per-tap or
  stacked; see the class); it loads ``nn.Conv3d`` state dicts (5D weights reshaped on load).
- :func:`conv3d_out_size`: the output length of a convolution or pooling along one axis.
- :func:`kaiming_normal_fan_out_`, :func:`init_conv_bn_`, :func:`init_video_net_`: the
  initialisations the families share.

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
    'shift_frames', 'spatial_mean', 'clip_mean', 'clip_mean_per_frame',
    'kaiming_normal_fan_out_', 'init_conv_bn_', 'init_video_net_',
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

    Under ``torch.fx`` symbolic tracing (the 4D converter, the bench's ``torch-4d``) the sizes
    are proxies, and a pooling window must be a constant of an exported graph: the traced graph
    takes ``mean`` over ``H, W`` instead (the same value to float rounding).
    """
    height, width = x.shape[2], x.shape[3]
    if isinstance(height, torch.fx.Proxy) or isinstance(width, torch.fx.Proxy):
        return x.mean((2, 3), keepdim=True)
    height, width = int(height), int(width)  # constants of an ONNX trace, not tensors
    rows = x if width == 1 else F.avg_pool2d(x, (1, width))
    return rows if height == 1 else F.avg_pool2d(rows, (height, 1))


def clip_mean(x: Tensor, num_frames: int) -> Tensor:
    """``[B*T, C]`` (or ``[B*T, C, 1, 1]``) -> ``[B, C]``: the mean over each clip's T frames.

    A mean over axis 1 of ``[B, T, C, 1]``, rank 4 throughout.
    """
    channels = x.shape[1]
    return x.reshape(-1, num_frames, channels, 1).mean(1, keepdim=True).reshape(-1, channels)


def clip_mean_per_frame(x: Tensor, num_frames: int) -> Tensor:
    """``[B*T, C, 1, 1]`` -> the same shape, every frame holding its clip's mean over the T
    frames (what a per-clip value broadcast back to the frames would be).

    One average pooling over ``2T - 1`` frames on the temporal layout ``[B, C, T, 1]``, zero
    padded by ``T - 1`` on both sides and counting the padding: every window covers the whole
    clip, so each output is the clip's sum over ``2T - 1``, scaled by ``(2T - 1) / T``. No
    broadcast operator (Arm's Vela has none; an ``expand`` becomes TFLite's BROADCAST_TO).
    """
    if num_frames == 1:
        return x
    window = 2 * num_frames - 1
    pooled = F.avg_pool2d(to_temporal(x, num_frames), (window, 1), 1, (num_frames - 1, 0),
                          count_include_pad=True)
    return from_temporal(pooled * (window / num_frames), 1, 1)


class Conv3dAs4d(nn.Module):
    """``nn.Conv3d`` computed exactly with tensors of rank 4 or less.

    Input frames ``[B*T, C_in, H, W]`` with ``num_frames = T`` given at call time (a module can
    serve clips of any length); output frames ``[B*T', C_out, H', W']`` where ``T'``, ``H'``,
    ``W'`` follow ``nn.Conv3d``'s formula (:meth:`out_frames`).

    The weight is stored as ``[C_out, C_in/groups * kt, kh, kw]``: the ``nn.Conv3d`` weight
    ``[C_out, C_in/groups, kt, kh, kw]`` with its input-channel and temporal axes merged (channel
    major), so :meth:`load_state_dict` accepts an ``nn.Conv3d`` state dict and
    :meth:`from_conv3d` copies a module. The 4D form (:attr:`form`) is chosen from the
    kernel's shape and groups, so that each runs on the kernels runtimes have fast code for;
    all are exact (same products, summed in another order):

    - ``'pointwise'`` (``kt = 1``, no temporal stride or padding; e.g. every ``1x1x1`` and
      ``1xkxk`` convolution): one ``Conv2d`` on the frames as they are. No layout change.
    - ``'temporal'`` (kernel ``kt x 1 x 1``, no spatial padding): a ``(kt, 1)`` convolution on
      the temporal layout ``[B, C, T, H*W]`` (after :func:`subsample` when strided spatially).
    - ``'taps'`` (any other grouped or depthwise kernel, e.g. X3D's depthwise ``3x3x3``): one
      ``Conv2d`` per temporal tap ``k`` (same groups, kernel ``kh x kw``, the tap's weights) on
      the frames ``t*st + k*dt - pt`` of each clip, and the ``kt`` outputs summed. For a "same"
      convolution (temporal stride 1, ``T' = T``, the usual case) the frames are shifted along
      the ``B*T`` axis itself (:func:`shift_frames`: a slice, zero frames, and a 0/1 mask
      for the frames that would cross into the neighbouring clip), so no tensor leaves the
      frames layout the convolutions run in (runtimes such as OpenVINO reorder a tensor into and
      out of their blocked layouts at every reshape); when the convolution subsamples space,
      its 4x smaller output is shifted instead of the input. Other temporal settings take the
      frames from the ``[B, 1, T, C*H*W]`` view (slice, zero padding, :func:`subsample`). A
      depthwise kernel stays depthwise, nothing is stacked, and the MACs equal the 3D
      convolution's.
    - ``'stacked'`` (any other dense kernel): the ``kt`` shifted copies of the input stacked on
      the channel axis and one ``Conv2d`` with ``kt * C_in / groups`` input channels per group
      (one large matrix product, which dense kernels are fastest as). A "same" ungrouped
      convolution stacks the frames shifted along ``B*T`` (:func:`shift_frames`) tap-major,
      with the weight reordered to match, in the frames layout; otherwise the copies come from
      the temporal layout, channel major.
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
        self.form = self.choose_form(self.kernel_size, self.stride, self.padding, groups)
        self.reset_parameters()
        self._register_load_state_dict_pre_hook(self._convert_5d_weight)

    @staticmethod
    def choose_form(kernel_size: tuple[int, int, int], stride: tuple[int, int, int],
                    padding: tuple[int, int, int], groups: int) -> str:
        """The 4D form of a convolution with these settings (see the class docstring)."""
        (kt, kh, kw), (st, _, _), (pt, ph, pw) = kernel_size, stride, padding
        if kt == 1 and st == 1 and pt == 0:
            return 'pointwise'
        if kh == 1 and kw == 1 and ph == 0 and pw == 0:
            return 'temporal'
        return 'taps' if groups > 1 else 'stacked'

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
        weight: Tensor = self.weight
        bias: Tensor | None = self.bias
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f'expected frames [B*T, {self.in_channels}, H, W], got {tuple(x.shape)}')
        kt, _, _ = self.kernel_size
        st, sh, sw = self.stride
        pt, ph, pw = self.padding
        dt, dh, dw = self.dilation
        out_t = self.out_frames(num_frames)
        if out_t < 1:
            raise ValueError(f'a clip of {num_frames} frames is too short for {self}')
        if self.form == 'pointwise':
            return F.conv2d(x, weight, bias, stride=(sh, sw), padding=(ph, pw),
                            dilation=(dh, dw), groups=self.groups)
        if self.form == 'temporal':
            x = subsample(x, sh, sw)
            height, width = x.shape[2], x.shape[3]
            weight = weight.reshape(self.out_channels, -1, kt, 1)
            y = F.conv2d(to_temporal(x, num_frames), weight, bias, stride=(st, 1),
                         padding=(pt, 0), dilation=(dt, 1), groups=self.groups)
            return from_temporal(y, height, width)
        if self.form == 'taps':
            return self._forward_taps(x, num_frames, out_t, weight, bias)
        _batch_frames, channels, height, width = x.shape
        if self.groups == 1 and st == 1 and out_t == num_frames:
            # A "same" convolution: the shifted frames stacked tap-major on the channel axis
            # (frames layout throughout), the weight reordered to match (a constant).
            taps = [frames if frames is not None else torch.zeros_like(x)
                    for frames in shift_frames(x, [k * dt - pt for k in range(kt)], num_frames)]
            stacked = torch.cat(taps, dim=1)  # [B*T, kt*C, H, W]
            kh, kw = self.kernel_size[1], self.kernel_size[2]
            # (sizes from the module, not from x: a traced size would hide the kernel's shape)
            tap_major = weight.reshape(self.out_channels, self.in_channels, kt, kh * kw)
            tap_major = tap_major.permute(0, 2, 1, 3).reshape(
                self.out_channels, kt * self.in_channels, kh, kw)
            return F.conv2d(stacked, tap_major, bias, stride=(sh, sw), padding=(ph, pw),
                            dilation=(dh, dw))
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
        return F.conv2d(frames, weight, bias, stride=(sh, sw), padding=(ph, pw),
                        dilation=(dh, dw), groups=self.groups)

    def _forward_same(self, x: Tensor, num_frames: int, taps: Tensor,
                      bias: Tensor | None) -> Tensor:
        """The ``'taps'`` form of a "same" temporal convolution (stride 1, ``T' = T``): each
        tap's ``Conv2d`` reads the input frames shifted along the ``B*T`` axis (or, when the
        convolution subsamples space, its smaller output is shifted), so every tensor stays in
        the frames layout the convolutions run in."""
        kt, kh, kw = self.kernel_size
        _, sh, sw = self.stride
        pt, ph, pw = self.padding
        dt, dh, dw = self.dilation
        offsets = [k * dt - pt for k in range(kt)]
        inputs = shift_frames(x, offsets, num_frames) if (sh, sw) == (1, 1) else [x] * kt
        y: Tensor | None = None
        for k, frames in enumerate(inputs):
            if frames is None:
                continue  # the tap reads padding only
            weight = taps[:, :, k].reshape(self.out_channels, -1, kh, kw)
            out = F.conv2d(frames, weight, None, stride=(sh, sw), padding=(ph, pw),
                           dilation=(dh, dw), groups=self.groups)
            if (sh, sw) != (1, 1):  # the output, 4x smaller, is shifted instead
                shifted = shift_frames(out, [offsets[k]], num_frames)[0]
                if shifted is None:
                    continue
                out = shifted
            y = out if y is None else y + out
        assert y is not None  # a "same" convolution has a tap inside the clip
        return y if bias is None else y + bias.reshape(1, -1, 1, 1)

    def _forward_taps(self, x: Tensor, num_frames: int, out_t: int, weight: Tensor,
                      bias: Tensor | None) -> Tensor:
        """The ``'taps'`` form: ``[B*T, C_in, H, W]`` -> ``[B*T', C_out, H', W']``."""
        kt, kh, kw = self.kernel_size
        st, sh, sw = self.stride
        pt, ph, pw = self.padding
        dt, dh, dw = self.dilation
        _batch_frames, channels, height, width = x.shape
        clips = x.reshape(-1, num_frames, channels * height * width)  # [B, T, C*H*W], a view
        # [C_out, C_in/g * kt, kh, kw] (channel major) -> per tap [C_out, C_in/g, kh, kw].
        taps = weight.reshape(self.out_channels, -1, kt, kh * kw)
        span = st * (out_t - 1) + 1
        if st == 1 and out_t == num_frames:
            return self._forward_same(x, num_frames, taps, bias)
        y: Tensor | None = None
        for k in range(kt):
            start = k * dt - pt
            lo, hi = max(start, 0), min(start + span, num_frames)
            if hi <= lo:
                continue  # the tap reads padding only: it adds nothing
            if (lo, hi, st) == (0, num_frames, 1) and start == 0:
                frames = x  # the tap reads the clip as it is
            else:
                window = clips[:, lo:hi].reshape(-1, 1, hi - lo, channels * height * width)
                if lo - start or start + span - hi:  # zero frames outside the clip
                    window = F.pad(window, (0, 0, lo - start, start + span - hi))
                window = subsample(window, st, 1)  # [B, 1, T', C*H*W]
                frames = window.reshape(-1, channels, height, width)  # [B*T', C_in, H, W]
            out = F.conv2d(frames, taps[:, :, k].reshape(self.out_channels, -1, kh, kw),
                           bias if y is None else None, stride=(sh, sw),
                           padding=(ph, pw), dilation=(dh, dw), groups=self.groups)
            y = out if y is None else y + out
        if y is None:  # every tap reads padding only (a clip shorter than the padding)
            out_h = conv3d_out_size(height, kh, sh, ph, dh)
            out_w = conv3d_out_size(width, kw, sw, pw, dw)
            y = x.new_zeros(x.shape[0] // num_frames * out_t, self.out_channels, out_h, out_w)
            if bias is not None:
                y = y + bias.reshape(1, -1, 1, 1)
        return y


def shift_frames(x: Tensor, offsets: Sequence[int], num_frames: int) -> list[Tensor | None]:
    """Frames ``[B*T, C, H, W]`` shifted by each of ``offsets``: in the tensor for offset ``o``,
    frame ``t`` of each clip is its frame ``t + o`` (zeros where that is outside the clip);
    ``None`` for an offset of ``T`` or more (all zeros).

    Each shift is a slice along the ``B*T`` axis concatenated with ``|o|`` zero frames, times a
    ``[B*T, 1, 1, 1]`` 0/1 mask that zeroes the frames taken from the neighbouring clip (with
    one clip, a multiplication by ones). Offset 0 is ``x`` itself. Exact, and in the frames
    layout throughout. (One zero-padded copy sliced for every offset is slower on OpenVINO.)
    """
    clips = x.shape[0] // num_frames
    shifted: list[Tensor | None] = []
    for offset in offsets:
        if offset == 0:
            shifted.append(x)
            continue
        if abs(offset) >= num_frames:
            shifted.append(None)
            continue
        # zeros_like of a slice keeps C, H, W known to ONNX shape inference.
        zeros = torch.zeros_like(x[:abs(offset)])
        window = torch.cat([x[offset:], zeros] if offset > 0 else [zeros, x[:offset]])
        valid = [1.0 if 0 <= t + offset < num_frames else 0.0 for t in range(num_frames)]
        mask = torch.tensor(valid, dtype=x.dtype, device=x.device).reshape(-1, 1, 1, 1)
        # (the reshape keeps the mask [N, 1, 1, 1] to ONNX shape inference after the Tile)
        shifted.append(window * mask.repeat(clips, 1, 1, 1).reshape(-1, 1, 1, 1))
    return shifted


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


def init_video_net_(module: nn.Module) -> None:
    """The initialisation the video families share (ECO-Lite's 3D-Net, X3D): every
    :class:`Conv3dAs4d` by :func:`kaiming_normal_fan_out_`, every ``nn.Linear`` normal with
    standard deviation 0.01 and zero bias, the rest by :func:`init_conv_bn_`."""
    for m in module.modules():
        if isinstance(m, Conv3dAs4d):
            kaiming_normal_fan_out_(m)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0.0, 0.01)
            nn.init.zeros_(m.bias)
        else:
            init_conv_bn_(m)


def kaiming_normal_fan_out_(conv: Conv3dAs4d) -> None:
    """Kaiming normal (ReLU gain) with ``nn.Conv3d``'s fan-out ``C_out * kt * kh * kw``, zero bias.

    What ``nn.init.kaiming_normal_(mode='fan_out')`` does to the equivalent ``nn.Conv3d``.
    """
    fan_out = conv.out_channels * math.prod(conv.kernel_size)
    nn.init.normal_(conv.weight, 0.0, math.sqrt(2.0 / fan_out))
    if conv.bias is not None:
        nn.init.zeros_(conv.bias)

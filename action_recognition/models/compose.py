"""A ``1 x kh x kw`` convolution followed by a depthwise ``kt x 1 x 1`` one, as one convolution.

X3D's stem (PyTorchVideo's ``Conv2plus1d``: ``conv_t``, then ``conv_xy``) is such a pair. Run as
two :class:`~action_recognition.models.layers.Conv3dAs4d`, the temporal one works on the
temporal layout between two transposes of the network's largest activation (which OpenVINO
reorders around and RKNN leaves on its CPU at 16x224). Both are linear and bias-free, and the
temporal zero padding of the first's output equals the first applied to zero frames, so the pair
is exactly the dense ``kt x kh x kw`` convolution with weight ``w_t[c, k] * w_s[c, i, y, x]``,
which runs as one ``Conv2d`` on the ``kt`` shifted copies of the input stacked on channels:

- :func:`compose_spatial_temporal`: checks that a pair composes (``ValueError`` otherwise);
- :func:`composed_weight`, :func:`tap_major_weight`: the composed weight (4D, computed from the
  two weights so both keep training) and the taps' frame offsets (:func:`tap_offsets`);
- :func:`stack_clip_taps`: the shifted copies, stacked tap-major.

Used by :class:`~action_recognition.models.x3d_blocks.Stem4d` (``fused=True``) and by the
converter (:mod:`~action_recognition.deploy.convert.fuse`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from action_recognition.models.layers import Conv3dAs4d

__all__ = ['stack_clip_taps', 'compose_spatial_temporal', 'composed_weight', 'tap_major_weight',
           'tap_offsets']


def stack_clip_taps(x: Tensor, offsets: Sequence[int], num_frames: int) -> Tensor:
    """Frames ``[B*T, C, H, W]`` -> ``[B*T, K*C, H, W]``: for each of the ``K`` offsets ``o``,
    tap-major, frame ``t`` of each clip holds its frame ``t + o`` (zeros outside the clip).

    The frames are shifted on the clip view ``[B, T, C*H, W]`` (zero-padded along ``T``,
    sliced, concatenated along axis 2), so nothing crosses into the neighbouring clip and no
    mask is needed; meant for a network's input, which no runtime has reordered into a blocked
    layout yet (on such a tensor the reshape would cost a reorder).
    """
    _, channels, height, width = x.shape
    lo, hi = max(0, -min(offsets)), max(0, max(offsets))
    clips = x.reshape(-1, num_frames, channels * height, width)
    if lo or hi:
        # Zero frames concatenated (F.pad's exported pads come with shape arithmetic).
        zero = torch.zeros_like(clips[:, :1])
        clips = torch.cat([zero] * lo + [clips] + [zero] * hi, dim=1)
    taps = [clips[:, lo + o:lo + o + num_frames] for o in offsets]
    stacked = taps[0] if len(taps) == 1 else torch.cat(taps, dim=2)
    return stacked.reshape(-1, len(offsets) * channels, height, width)


def compose_spatial_temporal(spatial: Conv3dAs4d, temporal: Conv3dAs4d) -> Conv3dAs4d:
    """Check that ``temporal(spatial(x))`` composes into one convolution; return ``temporal``.

    ``spatial``: ``1 x kh x kw``, ungrouped, no temporal stride or padding, no bias;
    ``temporal``: depthwise ``kt x 1 x 1`` on ``spatial``'s outputs, stride 1, "same" in time
    (``2 * pt = dt * (kt - 1)``). Both are linear and the temporal zero padding of
    ``spatial``'s output equals ``spatial`` of zero frames, so the composition is the dense
    ``kt x kh x kw`` convolution whose weight :func:`composed_weight` gives. Raises
    ``ValueError`` naming what does not hold.
    """
    problems = []
    if spatial.form != 'pointwise' or spatial.groups != 1 or spatial.bias is not None:
        problems.append(f'the first convolution must be 1xkxk, ungrouped, bias-free: {spatial}')
    kt, kh, kw = temporal.kernel_size
    if ((kh, kw) != (1, 1) or temporal.stride != (1, 1, 1) or temporal.padding[1:] != (0, 0)
            or temporal.dilation[1:] != (1, 1)
            or 2 * temporal.padding[0] != temporal.dilation[0] * (kt - 1)
            or not temporal.groups == temporal.in_channels == temporal.out_channels
            == spatial.out_channels):
        problems.append(f'the second must be a "same" depthwise kt x 1 x 1 convolution of the '
                        f"first's outputs: {temporal}")
    if problems:
        raise ValueError('; '.join(problems))
    return temporal


def composed_weight(spatial: Conv3dAs4d, temporal: Conv3dAs4d) -> tuple[Tensor, list[int]]:
    """The tap-major weight ``[C_out, kt*C_in, kh, kw]`` of ``temporal o spatial`` (checked by
    :func:`compose_spatial_temporal`) and the frame offset of each tap, for
    :func:`stack_clip_taps`. Computed from both weights (4D), so gradients reach both."""
    return tap_major_weight(spatial.weight, temporal.weight,
                            temporal.kernel_size[0]), tap_offsets(temporal)


def tap_offsets(temporal: Conv3dAs4d) -> list[int]:
    """The frame offset each temporal tap of ``temporal`` reads, ``k * dt - pt``."""
    return [k * temporal.dilation[0] - temporal.padding[0]
            for k in range(temporal.kernel_size[0])]


def tap_major_weight(spatial_weight: Tensor, temporal_weight: Tensor, kt: int) -> Tensor:
    """``[C, C_in, kh, kw]`` and a depthwise ``[C, kt, 1, 1]`` (the stored weights of a
    ``1 x kh x kw`` and a ``kt x 1 x 1`` :class:`Conv3dAs4d`) -> ``[C, kt*C_in, kh, kw]``, tap
    major: input channel ``k*C_in + i`` carries tap ``k`` of input channel ``i``."""
    out_channels, in_channels, kh, kw = spatial_weight.shape
    # [C, kt, 1, 1] * [C, 1, C_in, kh*kw] -> [C, kt, C_in, kh*kw]: 4D throughout.
    weight = (temporal_weight.reshape(out_channels, kt, 1, 1)
              * spatial_weight.reshape(out_channels, 1, in_channels, kh * kw))
    return weight.reshape(out_channels, kt * in_channels, kh, kw)

"""The ECO-Lite 2D-Net: Inception-V3 up to Mixed_5c plus one branch of Mixed_5d.

Paper 000 (Hajimolahoseini et al.) takes the first layers of Inception-V3 as the per-frame 2D-Net
of ECO-Lite. The configuration that reproduces its Table 2 (``shared/papers/README.md``) keeps the
stem, Mixed_5b and Mixed_5c, then only the ``1x1(64) -> 3x3(96)`` pair of Mixed_5d (torchvision's
``Mixed_5d.branch3x3dbl_1`` and ``Mixed_5d.branch3x3dbl_2``), the counterpart of ECO taking one
96-channel branch of BN-Inception's inception-3c. At 243x243 input::

    frames [N, 3, 243, 243]
      Conv2d_1a_3x3 (s2)  -> [N, 32, 121, 121]
      Conv2d_2a_3x3       -> [N, 32, 119, 119]
      Conv2d_2b_3x3       -> [N, 64, 119, 119]
      maxpool1 (3, s2)    -> [N, 64, 59, 59]
      Conv2d_3b_1x1       -> [N, 80, 59, 59]
      Conv2d_4a_3x3       -> [N, 192, 57, 57]
      maxpool2 (3, s2)    -> [N, 192, 28, 28]
      Mixed_5b            -> [N, 256, 28, 28]
      Mixed_5c            -> [N, 288, 28, 28]
      Mixed_5d.branch3x3dbl_1 (1x1, 64) -> branch3x3dbl_2 (3x3, 96) -> [N, 96, 28, 28]

About 0.78 M parameters and 1.35 GMAC per frame. Module and parameter names follow torchvision's
``inception_v3``, so :func:`load_inception_v3_imagenet` loads the matching part of a torchvision
ImageNet state dict from a local file (nothing is downloaded).

A second, light 2D-Net (:class:`SmallNet2d`) gives the same 96-channel map at 1/8 resolution for a
few MMAC per frame, for models that must run in real time on a small CPU.
"""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field
import os
import re
from typing import Any

import torch
from torch import nn
from torch import Tensor
import torch.nn.functional as F

from action_recognition.models.layers import spatial_mean
from action_recognition.models.weights import read_state_dict

__all__ = [
    'BasicConv2d', 'ContrastSymmetricNet2d', 'InceptionA', 'InceptionV3Net2d', 'SmallNet2d',
    'InceptionLoadReport',
    'load_inception_v3_imagenet', 'NET2D_CHANNELS',
]

NET2D_CHANNELS = 96
"""Channels of the feature map every 2D-Net hands to the 3D-Net."""

# Top-level module names of torchvision's Inception3; keys under these that this 2D-Net does not
# hold are expected in an ImageNet state dict and are skipped silently (reported as ``ignored``).
_TORCHVISION_PREFIXES = (
    'Conv2d_1a_3x3', 'Conv2d_2a_3x3', 'Conv2d_2b_3x3', 'Conv2d_3b_1x1', 'Conv2d_4a_3x3',
    'Mixed_5b', 'Mixed_5c', 'Mixed_5d', 'Mixed_6a', 'Mixed_6b', 'Mixed_6c', 'Mixed_6d',
    'Mixed_6e', 'Mixed_7a', 'Mixed_7b', 'Mixed_7c', 'AuxLogits', 'fc',
)


class BasicConv2d(nn.Module):
    """Conv2d (no bias) -> BatchNorm2d (eps 1e-3) -> ReLU, torchvision's naming (conv, bn)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, *,
                 stride: int = 1, padding: int = 0) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride,
                              padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(out_channels, eps=0.001)

    def forward(self, x: Tensor) -> Tensor:
        """``[N, C_in, H, W]`` -> ``[N, C_out, H', W']``."""
        return F.relu(self.bn(self.conv(x)), inplace=True)


class InceptionA(nn.Module):
    """Inception-V3's 35x35 module (torchvision's ``InceptionA``).

    Four branches concatenated in this order: ``1x1(64)``, ``1x1(48) -> 5x5(64)``,
    ``1x1(64) -> 3x3(96) -> 3x3(96)`` and ``avgpool 3x3 -> 1x1(pool_features)``:
    ``[N, C_in, H, W]`` -> ``[N, 224 + pool_features, H, W]``.
    """

    def __init__(self, in_channels: int, pool_features: int) -> None:
        super().__init__()
        self.branch1x1 = BasicConv2d(in_channels, 64, 1)
        self.branch5x5_1 = BasicConv2d(in_channels, 48, 1)
        self.branch5x5_2 = BasicConv2d(48, 64, 5, padding=2)
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 64, 1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, 3, padding=1)
        self.branch_pool = BasicConv2d(in_channels, pool_features, 1)

    def forward(self, x: Tensor) -> Tensor:
        branch1x1 = self.branch1x1(x)
        branch5x5 = self.branch5x5_2(self.branch5x5_1(x))
        branch3x3dbl = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        branch_pool = self.branch_pool(F.avg_pool2d(x, kernel_size=3, stride=1, padding=1))
        return torch.cat([branch1x1, branch5x5, branch3x3dbl, branch_pool], dim=1)


class InceptionBranch3x3(nn.Module):
    """The ``1x1(64) -> 3x3(96)`` pair of Mixed_5d, named as in torchvision's InceptionA."""

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 64, 1)
        self.branch3x3dbl_2 = BasicConv2d(64, NET2D_CHANNELS, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        """``[N, C_in, H, W]`` -> ``[N, 96, H, W]``."""
        return self.branch3x3dbl_2(self.branch3x3dbl_1(x))


def _check_frames(x: Tensor, min_size: int, name: str) -> None:
    if x.dim() != 4 or x.shape[1] != 3:
        raise ValueError(f'{name} expects frames [N, 3, H, W], got shape {tuple(x.shape)}')
    if min(x.shape[2], x.shape[3]) < min_size:
        raise ValueError(
            f'{name} needs frames of at least {min_size}x{min_size}, got '
            f'{x.shape[2]}x{x.shape[3]}')


def _init_2d(module: nn.Module) -> None:
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode='fan_out', nonlinearity='relu')
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


class InceptionV3Net2d(nn.Module):
    """Inception-V3 up to Mixed_5c plus the 1x1(64) -> 3x3(96) branch of Mixed_5d.

    Frames ``[N, 3, H, W]`` -> features ``[N, 96, h, w]`` with ``h = f(H)``,
    ``f(H) = ((((H - 3) // 2 + 1 - 2 - 3) // 2 + 1 - 2) - 3) // 2 + 1`` (28 at 243, 11 at 112).
    Frames are independent (batch norm in eval mode). Frames must be at least 75x75.

    Args:
        transform_input: rescale inputs normalised with the ImageNet mean/std to the ``[-1, 1]``
            range the ported TensorFlow weights expect, as torchvision does when it loads its
            ImageNet weights. :func:`load_inception_v3_imagenet` switches it on by default. The
            flag is saved in the state dict (``_extra_state``), so a checkpoint restores it.
    """

    min_input_size = 75
    out_channels = NET2D_CHANNELS

    def __init__(self, *, transform_input: bool = False) -> None:
        super().__init__()
        self.transform_input = transform_input
        self.Conv2d_1a_3x3 = BasicConv2d(3, 32, 3, stride=2)
        self.Conv2d_2a_3x3 = BasicConv2d(32, 32, 3)
        self.Conv2d_2b_3x3 = BasicConv2d(32, 64, 3, padding=1)
        self.maxpool1 = nn.MaxPool2d(kernel_size=3, stride=2)
        self.Conv2d_3b_1x1 = BasicConv2d(64, 80, 1)
        self.Conv2d_4a_3x3 = BasicConv2d(80, 192, 3)
        self.maxpool2 = nn.MaxPool2d(kernel_size=3, stride=2)
        self.Mixed_5b = InceptionA(192, pool_features=32)
        self.Mixed_5c = InceptionA(256, pool_features=64)
        self.Mixed_5d = InceptionBranch3x3(288)
        _init_2d(self)

    def get_extra_state(self) -> dict[str, bool]:
        return {'transform_input': self.transform_input}

    def set_extra_state(self, state: Any) -> None:
        if not isinstance(state, dict) or not isinstance(state.get('transform_input'), bool):
            raise ValueError(f'bad extra state for InceptionV3Net2d: {state!r}')
        self.transform_input = state['transform_input']

    @staticmethod
    def output_size(size: int) -> int:
        """Side of the feature map for an input side ``size`` (28 for 243)."""
        size = (size - 3) // 2 + 1 - 2  # Conv2d_1a (s2), Conv2d_2a
        size = (size - 3) // 2 + 1 - 2  # maxpool1, Conv2d_4a
        return (size - 3) // 2 + 1  # maxpool2

    def _transform_input(self, x: Tensor) -> Tensor:
        # ImageNet mean/std normalisation -> (x - 0.5) / 0.5 normalisation, per channel.
        mean = (0.485, 0.456, 0.406)
        std = (0.229, 0.224, 0.225)
        channels = [x[:, c:c + 1] * (std[c] / 0.5) + (mean[c] - 0.5) / 0.5 for c in range(3)]
        return torch.cat(channels, dim=1)

    def forward(self, x: Tensor) -> Tensor:
        """Frames ``[N, 3, H, W]`` -> features ``[N, 96, h, w]``."""
        _check_frames(x, self.min_input_size, type(self).__name__)
        if self.transform_input:
            x = self._transform_input(x)
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(self.maxpool1(x)))
        x = self.Mixed_5c(self.Mixed_5b(self.maxpool2(x)))
        return self.Mixed_5d(x)


class _ConvBnReLU(nn.Sequential):
    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, *,
                 stride: int = 1, groups: int = 1) -> None:
        super().__init__(
            nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride,
                      padding=kernel_size // 2, groups=groups, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )


class SmallNet2d(nn.Module):
    """A light 2D-Net: frames ``[N, 3, H, W]`` -> features ``[N, 96, ceil(H/8), ceil(W/8)]``.

    A strided 3x3 convolution then two MobileNet-style stages (depth-wise 3x3 with stride 2,
    point-wise 1x1), each followed by batch norm and ReLU::

        conv 3x3, 3 -> 16, s2 | dw 3x3 s2, pw 16 -> 48 | dw 3x3 s2, pw 48 -> 96

    About 3.1 MMAC per 112x112 frame (the Inception 2D-Net needs 1.35 GMAC per 243x243 frame).
    Frames must be at least 8x8.
    """

    min_input_size = 8
    out_channels = NET2D_CHANNELS

    def __init__(self) -> None:
        super().__init__()
        self.stem = _ConvBnReLU(3, 16, 3, stride=2)
        self.stage1 = nn.Sequential(_ConvBnReLU(16, 16, 3, stride=2, groups=16),
                                    _ConvBnReLU(16, 48, 1))
        self.stage2 = nn.Sequential(_ConvBnReLU(48, 48, 3, stride=2, groups=48),
                                    _ConvBnReLU(48, NET2D_CHANNELS, 1))
        _init_2d(self)

    @staticmethod
    def output_size(size: int) -> int:
        """Side of the feature map for an input side ``size`` (14 for 112)."""
        for _ in range(3):
            size = (size - 1) // 2 + 1
        return size

    def forward(self, x: Tensor) -> Tensor:
        """Frames ``[N, 3, H, W]`` -> features ``[N, 96, ceil(H/8), ceil(W/8)]``."""
        _check_frames(x, self.min_input_size, type(self).__name__)
        return self.stage2(self.stage1(self.stem(x)))


#: Added to each variance before its ``rsqrt``: ``rsqrt(0) = inf`` and ``rsqrt(inf) = 0`` hold in
#: PyTorch and ONNX Runtime, but TFLite's RSQRT (XNNPACK) gives NaN for ``rsqrt(inf)``, which
#: made a flat frame's features NaN there. With the floor nothing is infinite (``rsqrt`` at most
#: 1e5); the standard deviation moves by at most ``1e-5`` where the variance is below ``1e-10``,
#: and ``z`` by at most ``200 * sqrt(H * W) * 1e-10`` (4.5e-6 at 224x224): a flat frame still
#: gives exactly 0, its centred map being 0.
_VARIANCE_FLOOR = 1e-10


def _rsqrt(v: Tensor) -> Tensor:
    """``1 / sqrt(v)`` (``inf`` at 0, 0 at ``inf``), as ``v ** -0.5``; see ``standardise``."""
    return torch.pow(v, -0.5)


class ContrastSymmetricNet2d(nn.Module):
    """A 2D-Net made indifferent to each frame's contrast and to its polarity.

    Frames ``[N, 3, H, W]`` -> the wrapped 2D-Net's features ``[N, 96, h, w]``::

        z = (x - mean) / (std + eps)      # per frame and channel, over the H x W pixels
        features = net(z) + net(-z)       # one set of weights, run on the frame and its negative

    So a frame, the same frame with its contrast scaled, and its negative (an inverted frame when
    the normalisation is centred, as the synthetic benchmark's mean 0.5 is) give the same
    features, and a rule the network learns for a dark object on a light background holds for a
    light one on a dark background. Frames stay independent (batch norm in eval mode), so the
    streaming runtime can still run it frame by frame. Costs twice the wrapped 2D-Net.

    Why it exists (``docs/synthetic_rotation.md``): on the synthetic benchmark the small nets
    learn the direction of rotation quickly when the actor is always darker than its background,
    and not at all within the same budget when the actor's colour and contrast vary, as the
    benchmark asks. Normalising the contrast and adding over the sign made the direction
    learnable (the default model: 97.6% held-out top-1, both rotations at 92-94%); with the plain
    2D-Net it stayed at chance for 6,000 steps. The trade: colour inversions are invisible to the
    model, so it suits motion-defined classes, not classes that depend on a colour.

    On an NPU (issue 14): the standardisation uses no DIV, SQRT or MEAN (which Arm's Vela
    leaves on the CPU, the MEAN because its batch is the frames), only average pooling,
    subtraction, multiplication, addition and RSQRT, with the same result (within float
    rounding; :meth:`standardise`). Vela takes average pooling windows of at most 256 rows, so
    frames taller than 256 pixels would put the column pooling on the CPU.

    Args:
        net: the 2D-Net to wrap (its ``out_channels``, ``min_input_size`` and ``output_size``
            are passed on).
        eps: added to each frame's standard deviation (in the units of the normalised input), so
            a flat frame gives ``z = 0`` rather than dividing by 0.
    """

    def __init__(self, net: nn.Module, *, eps: float = 0.05) -> None:
        super().__init__()
        if eps <= 0:
            raise ValueError(f'eps must be > 0, got {eps}')
        self.net = net
        self.eps = eps
        self.out_channels: int = getattr(net, 'out_channels', NET2D_CHANNELS)
        self.min_input_size: int = getattr(net, 'min_input_size', 1)

    def output_size(self, size: int) -> int:
        """Side of the feature map for an input side ``size`` (that of the wrapped 2D-Net)."""
        result: int = self.net.output_size(size)  # type: ignore[operator]
        return result

    def standardise(self, x: Tensor) -> Tensor:
        """``[N, C, H, W]`` -> each frame and channel with zero mean and unit deviation.

        ``(x - mean) / (std + eps)`` written with the operators NPUs take (see the class
        docstring): the means are average poolings over the map
        (:func:`~action_recognition.models.layers.spatial_mean`), ``std = q * q`` with
        ``q = rsqrt(rsqrt(var + 1e-10)) = (var + 1e-10) ** (1/4)`` (the floor keeps every value
        finite on every runtime, see :data:`_VARIANCE_FLOOR`), and ``1 / (std + eps) = r * r``
        with ``r = rsqrt(std + eps)``. The mean is taken of ``x - x[..., 0, 0]`` (each map less
        its first pixel), which is the same centred map, but its rounding error scales with the
        frame's contrast, not its brightness: a flat frame gives exactly 0.

        ``rsqrt`` is written ``v ** -0.5`` (``torch.pow``; PyTorch computes it as ``rsqrt``):
        litert-torch lowers it to TFLite's RSQRT and the ONNX exporter to ``Pow``, which
        Rockchip's RKNN keeps on the NPU; ``torch.rsqrt`` would give ONNX ``Div(1, Sqrt(v))``,
        whose reciprocal RKNN runs on its CPU.
        """
        shifted = x - x[:, :, :1, :1]
        centred = shifted - spatial_mean(shifted)
        quarter = _rsqrt(_rsqrt(spatial_mean(centred * centred) + _VARIANCE_FLOOR))
        root = _rsqrt(quarter * quarter + self.eps)
        return centred * (root * root)

    def forward(self, x: Tensor) -> Tensor:
        """Frames ``[N, 3, H, W]`` -> features of the wrapped net, ``net(z) + net(-z)``."""
        _check_frames(x, self.min_input_size, type(self).__name__)
        z = self.standardise(x)
        features: Tensor = self.net(z) + self.net(-z)
        return features


@dataclass
class InceptionLoadReport:
    """What :func:`load_inception_v3_imagenet` did.

    Attributes:
        loaded: keys of the 2D-Net filled from the state dict.
        missing: keys of the 2D-Net the state dict lacks (``num_batches_tracked`` not counted).
        ignored: torchvision Inception-V3 keys the 2D-Net does not hold (later layers, the
            unused branches of Mixed_5d, AuxLogits, fc).
        unexpected: keys that are not part of torchvision's Inception-V3 layout at all.
    """

    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)

    def summary(self) -> str:
        text = (f'{len(self.loaded)} tensors loaded, {len(self.missing)} missing, '
                f'{len(self.ignored)} torchvision keys not used, {len(self.unexpected)} '
                f'unexpected')
        if self.missing:
            text += '; missing: ' + ', '.join(self.missing[:8])
        if self.unexpected:
            text += '; unexpected: ' + ', '.join(self.unexpected[:8])
        return text


def load_inception_v3_imagenet(
        module: nn.Module, path_or_state_dict: str | os.PathLike[str] | dict[str, Any], *,
        strict: bool = True, transform_input: bool = True) -> InceptionLoadReport:
    """Load torchvision Inception-V3 ImageNet weights into an :class:`InceptionV3Net2d`.

    ``path_or_state_dict`` is a local ``.pth`` file (or a state dict) in torchvision's
    ``inception_v3`` layout; nothing is downloaded. Keys the 2D-Net holds are copied, other
    torchvision keys (Mixed_6a onward, the unused Mixed_5d branches, AuxLogits, fc) are skipped.
    A ``module.`` prefix (DataParallel) and a ``{'state_dict': ...}`` wrapper are accepted.

    Args:
        module: the 2D-Net, or a model whose ``net2d`` is one.
        path_or_state_dict: local file or state dict.
        strict: raise when the state dict lacks keys of the 2D-Net or holds keys outside the
            torchvision layout (otherwise they are only reported).
        transform_input: set ``module.transform_input`` (the ported weights expect inputs in
            ``[-1, 1]``; torchvision does the same when it loads them).

    Returns:
        an :class:`InceptionLoadReport`.

    Raises:
        TypeError: ``module`` is not an Inception 2D-Net.
        ValueError: a tensor has the wrong shape, nothing matches the layout, or (``strict``)
            keys are missing or unexpected. The 2D-Net is left unchanged then.
        CheckpointError: the file is corrupt, or holds pickled Python objects, which the safe
            loader (``weights_only=True``) refuses without running anything
            (:class:`~action_recognition.serialization.UnsafeCheckpointError`).
    """
    target = getattr(module, 'net2d', module)
    if not isinstance(target, InceptionV3Net2d):
        raise TypeError(
            f'load_inception_v3_imagenet needs an InceptionV3Net2d (or a model whose net2d is '
            f'one), got {type(target).__name__}')
    state, _ = read_state_dict(
        path_or_state_dict, what='Inception-V3 weights',
        missing_hint="weights are never downloaded; save torchvision's inception_v3 state dict "
                     'there')
    report = InceptionLoadReport()
    mismatched = []
    to_load = {}
    own = {key: value for key, value in target.state_dict().items()
           if isinstance(value, Tensor)}  # not the transform_input flag (``_extra_state``)
    for key, tensor in own.items():
        if key not in state:
            if not key.endswith('num_batches_tracked'):
                report.missing.append(key)
            continue
        value = state[key]
        if tuple(value.shape) != tuple(tensor.shape):
            mismatched.append(f'{key}: expected {tuple(tensor.shape)}, got {tuple(value.shape)}')
            continue
        to_load[key] = value
        if not key.endswith('num_batches_tracked'):
            report.loaded.append(key)
    prefix_pattern = re.compile(r'^(' + '|'.join(_TORCHVISION_PREFIXES) + r')\.')
    for key in state:
        if key in own:
            continue
        if prefix_pattern.match(key):
            report.ignored.append(key)
        else:
            report.unexpected.append(key)
    if mismatched:
        raise ValueError(
            'not a torchvision Inception-V3 layout: wrong tensor shapes for '
            + '; '.join(mismatched[:5]) + (' ...' if len(mismatched) > 5 else ''))
    if not report.loaded:
        raise ValueError(
            'not a torchvision Inception-V3 state dict: none of its '
            f'{len(state)} keys matches the 2D-Net (e.g. expected '
            f'{next(iter(own))!r}, got {next(iter(state), None)!r})')
    if strict and (report.missing or report.unexpected):
        raise ValueError('incomplete or foreign Inception-V3 state dict: ' + report.summary())
    with torch.no_grad():
        for key, value in to_load.items():
            own[key].copy_(value.to(dtype=own[key].dtype))
    if transform_input:
        target.transform_input = True
    return report

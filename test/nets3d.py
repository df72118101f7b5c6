"""Small 3D CNNs in the styles of R3D-18, R(2+1)D, S3D and X3D, for the converter tests.

Each takes a clip ``[B, 3, T, H, W]`` and returns logits ``[B, num_classes]``. Widths are small
so the tests stay fast; the layer patterns (kernels, strides, separable and depthwise convs,
residuals, concatenation, squeeze-excitation, pooling) follow the originals.

Below them, modules of one operation each that the converter must refuse (clips
``[2, 3, 4, 6, 6]`` in the tests).
"""

from __future__ import annotations

import torch
from torch import nn
from torch import Tensor
import torch.nn.functional as F


def conv_bn_relu(cin: int, cout: int, kernel: tuple[int, int, int],
                 stride: tuple[int, int, int] = (1, 1, 1),
                 padding: tuple[int, int, int] = (0, 0, 0), groups: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv3d(cin, cout, kernel, stride=stride, padding=padding, groups=groups, bias=False),
        nn.BatchNorm3d(cout), nn.ReLU(inplace=True))


# -- R3D-18 / R(2+1)D ---------------------------------------------------------------------------


class Conv2Plus1D(nn.Sequential):
    """(1, 3, 3) spatial conv then (3, 1, 1) temporal conv (R(2+1)D)."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        mid = (cin * cout * 27) // (cin * 9 + 3 * cout)
        super().__init__(
            nn.Conv3d(cin, mid, (1, 3, 3), stride=(1, stride, stride), padding=(0, 1, 1),
                      bias=False),
            nn.BatchNorm3d(mid), nn.ReLU(inplace=True),
            nn.Conv3d(mid, cout, (3, 1, 1), stride=(stride, 1, 1), padding=(1, 0, 0),
                      bias=False))


class Conv3DSimple(nn.Conv3d):
    """A subclass of ``nn.Conv3d`` that keeps its forward, as torchvision's video ResNets use."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__(cin, cout, (3, 3, 3), stride=stride, padding=1, bias=False)


def conv3x3x3(cin: int, cout: int, stride: int) -> nn.Module:
    return Conv3DSimple(cin, cout, stride)


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, *, two_plus_one: bool) -> None:
        super().__init__()
        make = Conv2Plus1D if two_plus_one else conv3x3x3
        self.conv1 = nn.Sequential(make(cin, cout, stride), nn.BatchNorm3d(cout), nn.ReLU())
        self.conv2 = nn.Sequential(make(cout, cout, 1), nn.BatchNorm3d(cout))
        self.downsample: nn.Module | None = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(
                nn.Conv3d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm3d(cout))
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        residual = x if self.downsample is None else self.downsample(x)
        out = self.conv2(self.conv1(x))
        out += residual
        return self.relu(out)


class VideoResNet(nn.Module):
    """R3D-18 (``two_plus_one=False``) or R(2+1)D-18 (``True``) with widths ``widths``."""

    def __init__(self, *, num_classes: int = 10, widths: tuple[int, ...] = (8, 16, 24, 32),
                 two_plus_one: bool = False) -> None:
        super().__init__()
        if two_plus_one:
            self.stem = nn.Sequential(
                nn.Conv3d(3, 12, (1, 7, 7), stride=(1, 2, 2), padding=(0, 3, 3), bias=False),
                nn.BatchNorm3d(12), nn.ReLU(inplace=True),
                nn.Conv3d(12, widths[0], (3, 1, 1), padding=(1, 0, 0), bias=False),
                nn.BatchNorm3d(widths[0]), nn.ReLU(inplace=True))
        else:
            self.stem = conv_bn_relu(3, widths[0], (3, 7, 7), (1, 2, 2), (1, 3, 3))
        layers = []
        cin = widths[0]
        for index, width in enumerate(widths):
            stride = 1 if index == 0 else 2
            layers.append(nn.Sequential(
                BasicBlock(cin, width, stride, two_plus_one=two_plus_one),
                BasicBlock(width, width, 1, two_plus_one=two_plus_one)))
            cin = width
        self.layers = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool3d(1)
        self.dropout = nn.Dropout(0.3)
        self.fc = nn.Linear(cin, num_classes)
        self.two_plus_one = two_plus_one

    def forward(self, x: Tensor) -> Tensor:
        x = self.layers(self.stem(x))
        if self.two_plus_one:
            x = x.mean(dim=(2, 3, 4))
        else:
            x = self.pool(x).flatten(1)
        return self.fc(self.dropout(x))


# -- S3D ----------------------------------------------------------------------------------------


class SepConv3d(nn.Sequential):
    """(1, k, k) then (k, 1, 1), each with BN and ReLU (S3D's separable convolution)."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1) -> None:
        pad = kernel // 2
        super().__init__(
            *conv_bn_relu(cin, cout, (1, kernel, kernel), (1, stride, stride), (0, pad, pad)),
            *conv_bn_relu(cout, cout, (kernel, 1, 1), (stride, 1, 1), (pad, 0, 0)))


class SepInception(nn.Module):
    def __init__(self, cin: int, b0: int, b1: tuple[int, int], b2: tuple[int, int],
                 b3: int) -> None:
        super().__init__()
        self.branch0 = conv_bn_relu(cin, b0, (1, 1, 1))
        self.branch1 = nn.Sequential(conv_bn_relu(cin, b1[0], (1, 1, 1)),
                                     SepConv3d(b1[0], b1[1], 3))
        self.branch2 = nn.Sequential(conv_bn_relu(cin, b2[0], (1, 1, 1)),
                                     SepConv3d(b2[0], b2[1], 3))
        self.branch3 = nn.Sequential(nn.MaxPool3d(3, stride=1, padding=1),
                                     conv_bn_relu(cin, b3, (1, 1, 1)))
        self.out_channels = b0 + b1[1] + b2[1] + b3

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([self.branch0(x), self.branch1(x), self.branch2(x), self.branch3(x)],
                         dim=1)


class S3DStyle(nn.Module):
    def __init__(self, *, num_classes: int = 10) -> None:
        super().__init__()
        self.features = nn.Sequential(
            SepConv3d(3, 12, 7, stride=2),
            nn.MaxPool3d((1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1)),
            conv_bn_relu(12, 12, (1, 1, 1)),
            SepConv3d(12, 24, 3),
            nn.MaxPool3d((1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1)),
            SepInception(24, 8, (8, 12), (4, 6), 6),
            nn.MaxPool3d(3, stride=2, padding=1),
            SepInception(32, 12, (8, 16), (4, 8), 8))
        self.avgpool = nn.AvgPool3d((2, 2, 2), stride=1)
        self.classifier = nn.Sequential(nn.Dropout(0.2),
                                        nn.Conv3d(44, num_classes, 1, bias=True))

    def forward(self, x: Tensor) -> Tensor:
        x = self.classifier(self.avgpool(self.features(x)))
        return torch.mean(x, dim=(2, 3, 4))


# -- X3D ----------------------------------------------------------------------------------------


class SqueezeExcite(nn.Module):
    def __init__(self, channels: int, reduced: int) -> None:
        super().__init__()
        self.fc1 = nn.Conv3d(channels, reduced, 1)
        self.fc2 = nn.Conv3d(reduced, channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        scale = x.mean((2, 3, 4), keepdim=True)
        scale = torch.sigmoid(self.fc2(torch.relu(self.fc1(scale))))
        return x * scale


class X3DBlock(nn.Module):
    """Bottleneck: 1x1x1 expand, depthwise 3x3x3 (strided in time and space), SE, swish,
    1x1x1 project, residual."""

    def __init__(self, cin: int, mid: int, cout: int, stride: int) -> None:
        super().__init__()
        self.expand = conv_bn_relu(cin, mid, (1, 1, 1))
        self.depthwise = nn.Sequential(
            nn.Conv3d(mid, mid, 3, stride=stride, padding=1, groups=mid, bias=False),
            nn.BatchNorm3d(mid))
        self.se = SqueezeExcite(mid, max(4, mid // 4))
        self.act = nn.SiLU()
        self.project = nn.Sequential(nn.Conv3d(mid, cout, 1, bias=False), nn.BatchNorm3d(cout))
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(
                nn.Conv3d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm3d(cout))

    def forward(self, x: Tensor) -> Tensor:
        y = self.project(self.act(self.se(self.depthwise(self.expand(x)))))
        return torch.relu(y + self.shortcut(x))


class X3DStyle(nn.Module):
    def __init__(self, *, num_classes: int = 10) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv3d(3, 12, (1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1), bias=False),
            nn.Conv3d(12, 12, (5, 1, 1), padding=(2, 0, 0), groups=12, bias=False),
            nn.BatchNorm3d(12), nn.ReLU(inplace=True))
        self.blocks = nn.Sequential(
            X3DBlock(12, 27, 12, 2), X3DBlock(12, 27, 12, 1), X3DBlock(12, 54, 24, 2),
            X3DBlock(24, 54, 24, 1))
        self.head = conv_bn_relu(24, 54, (1, 1, 1))
        self.pool = nn.AdaptiveAvgPool3d(1)
        self.lin5 = nn.Conv3d(54, 64, 1, bias=False)
        self.dropout = nn.Dropout(0.5)
        self.proj = nn.Linear(64, num_classes)
        self.output_pool = nn.AdaptiveAvgPool3d(1)

    def forward(self, x: Tensor) -> Tensor:
        x = self.pool(self.head(self.blocks(self.stem(x))))
        x = torch.relu(self.lin5(x))
        # pytorchvideo's head: a linear layer on channels-last, then back and pooled.
        x = self.proj(self.dropout(x.permute(0, 2, 3, 4, 1)))
        x = self.output_pool(x.permute(0, 4, 1, 2, 3))
        return x.view(x.shape[0], -1)


def randomize_batch_norm(model: nn.Module, seed: int = 0) -> nn.Module:
    """Give every BatchNorm non-trivial statistics and affine parameters (so eval mode tests
    more than the identity)."""
    generator = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            count = module.num_features
            with torch.no_grad():
                module.running_mean.copy_(torch.randn(count, generator=generator) * 0.1)
                module.running_var.copy_(torch.rand(count, generator=generator) + 0.5)
                module.weight.copy_(torch.rand(count, generator=generator) + 0.5)
                module.bias.copy_(torch.randn(count, generator=generator) * 0.1)
    return model


# -- operations the converter refuses --------------------------------------------------------


class IndexTime(nn.Module):
    """Indexes one frame of a 5D tensor."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv3d(3, 4, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(x)[:, :, 0]


class CatTime(nn.Module):
    """Concatenates clips along time."""

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([x, x], dim=2).mean((2, 3, 4))


class PermuteOther(nn.Module):
    """A permute that moves the time axis away from the batch."""

    def forward(self, x: Tensor) -> Tensor:
        return x.permute(0, 3, 1, 2, 4).flatten(1)


class Norm(nn.Module):
    """GroupNorm on a 5D tensor."""

    def __init__(self) -> None:
        super().__init__()
        self.norm = nn.GroupNorm(1, 3)

    def forward(self, x: Tensor) -> Tensor:
        return self.norm(x)


class Up(nn.Module):
    """A transposed 3D convolution."""

    def __init__(self) -> None:
        super().__init__()
        self.up = nn.ConvTranspose3d(3, 3, 2)

    def forward(self, x: Tensor) -> Tensor:
        return self.up(x)


class FunctionalConv(nn.Module):
    """``F.conv3d`` with a computed weight."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(4, 3))

    def forward(self, x: Tensor) -> Tensor:
        return F.conv3d(x, self.weight.reshape(4, 3, 1, 1, 1))


class PositionEmbedding(nn.Module):
    """Adds a parameter ``[1, C, T, H, W]`` that varies along time, broadcast over the batch."""

    def __init__(self) -> None:
        super().__init__()
        self.pos = nn.Parameter(torch.randn(1, 3, 4, 6, 6))

    def forward(self, x: Tensor) -> Tensor:
        return x + self.pos


class MeanTimeAndHeight(nn.Module):
    """A mean over time and height only."""

    def forward(self, x: Tensor) -> Tensor:
        return x.mean((2, 3))


class SamePadding(nn.Module):
    """A Conv3d with ``padding='same'``."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv3d(3, 3, 3, padding='same')

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(x)


class ValueBranch(nn.Module):
    """Control flow on tensor values."""

    def forward(self, x: Tensor) -> Tensor:
        if x.sum() > 0:
            return x.mean((2, 3, 4))
        return x.amax((2, 3, 4))


class FixedBatch(nn.Module):
    """A reshape that fixes the batch size."""

    def forward(self, x: Tensor) -> Tensor:
        return x.reshape(2, -1)

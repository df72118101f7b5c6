"""The ECO-Lite 3D-Nets (paper 000): stages of residual blocks, then the head.

On the 2D-Net's feature maps ``[B*T, C_in, h, w]`` (the T frames of a clip contiguous)::

    stage 1: 2 blocks, 128 ch, stride 1                -> [B*T, 128, h, w]
    stage 2: 2 blocks, 256 ch, first strided (2,2,2)   -> [B*T/2, 256, h/2, w/2]
    stage 3: 2 blocks, 512 ch, first strided (2,2,2)   -> [B*T/4, 512, h/4, w/4]
    head: global average pool (T, H, W) -> dropout -> fc  -> [B, num_classes]

(widths before ``width_mult``). :class:`EcoLite3dNet` is 4D-only and builds its blocks from a
conv unit of :mod:`~action_recognition.models.eco_blocks`; :class:`EcoLite3dNet5d` is the
``nn.Conv3d`` reference, with the same module names. Both split like timm's models into
``forward_features`` (the maps before the pool, in the frame layout ``[B*T', C, h', w']``) and
``forward_head`` (pool, dropout, fc).

Initialisation (:func:`init_net3d_weights`): Kaiming normal (fan-out, ReLU) for convolutions, BN
weight 1 and bias 0, fc normal(0, 0.01) with zero bias. ``zero_init_last=True`` zeroes the last
BN of every residual block (each block starts as its shortcut).
"""

from __future__ import annotations

from abc import ABC
from abc import abstractmethod
from collections.abc import Callable
import functools

from torch import nn
from torch import Tensor

from action_recognition.models.eco_blocks import BasicBlock5d
from action_recognition.models.eco_blocks import ConvUnitFactory
from action_recognition.models.eco_blocks import frames_after
from action_recognition.models.eco_blocks import ResidualBlock
from action_recognition.models.inception import NET2D_CHANNELS
from action_recognition.models.layers import clip_mean
from action_recognition.models.layers import init_video_net_
from action_recognition.models.layers import spatial_mean

__all__ = ['EcoLite3dNetBase', 'EcoLite3dNet', 'EcoLite3dNet5d', 'init_net3d_weights']


def _check_features(x: Tensor, channels: int, num_frames: int) -> None:
    if x.dim() != 4 or x.shape[1] != channels:
        raise ValueError(
            f'the 3D-Net expects features [B*T, {channels}, h, w], got {tuple(x.shape)}')
    if x.shape[0] % num_frames:
        raise ValueError(
            f'{x.shape[0]} feature maps is not a whole number of clips of {num_frames} frames')


class EcoLite3dNetBase(nn.Module, ABC):
    """A 3D-Net with its head: 3 stages of ``blocks_per_stage`` blocks, then pool, dropout, fc.

    The first block of stages 2 and 3 is strided by 2 in T, H and W. On 2D-Net features
    ``[B*T, C_in, h, w]`` (T contiguous per clip): :meth:`forward_features` gives the maps
    ``[B*T', C, h', w']`` (``T' = ceil(T / 4)``, ``C = num_features``), :meth:`forward_head`
    pools them over ``(T', h', w')`` to ``[B, C]`` and applies dropout and ``fc``:
    ``forward(x, num_frames) -> [B, num_classes]`` is the two in turn.
    """

    def __init__(self, *, block: Callable[[int, int, int], nn.Module],
                 widths: tuple[int, int, int], num_classes: int, in_channels: int,
                 blocks_per_stage: int, dropout: float) -> None:
        super().__init__()
        self.in_channels = in_channels
        stages = []
        strides = []
        channels = in_channels
        for index, width in enumerate(widths):
            blocks = []
            for position in range(blocks_per_stage):
                stride = 2 if index > 0 and position == 0 else 1
                blocks.append(block(channels, width, stride))
                strides.append(stride)
                channels = width
            stages.append(nn.ModuleList(blocks))
        self.stages = nn.ModuleList(stages)
        self.strides = tuple(strides)
        self.num_features = channels
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(channels, num_classes)

    def out_frames(self, num_frames: int) -> int:
        """``T'``: frames per clip of the feature maps for clips of ``num_frames`` frames."""
        for stride in self.strides:
            num_frames = frames_after(num_frames, stride)
        return num_frames

    @abstractmethod
    def forward_features(self, x: Tensor, num_frames: int) -> Tensor:
        """Features ``[B*T, C_in, h, w]`` -> feature maps ``[B*T', C, h', w']``."""

    @abstractmethod
    def pool(self, x: Tensor, out_frames: int) -> Tensor:
        """Feature maps ``[B*T', C, h', w']`` -> the clips' averages ``[B, C]``."""

    def forward_head(self, x: Tensor, num_frames: int, pre_logits: bool = False) -> Tensor:
        """Maps ``[B*T', C, h', w']`` -> logits ``[B, num_classes]`` (``[B, C]``: pre_logits)."""
        out_frames = self.out_frames(num_frames)
        if x.dim() != 4 or x.shape[1] != self.num_features or x.shape[0] % out_frames:
            raise ValueError(
                f'the head expects feature maps [B*{out_frames}, {self.num_features}, h, w], '
                f'got {tuple(x.shape)}')
        pooled = self.pool(x, out_frames)
        return pooled if pre_logits else self.fc(self.dropout(pooled))

    def forward(self, x: Tensor, num_frames: int) -> Tensor:
        """Features ``[B*T, C_in, h, w]`` -> logits ``[B, num_classes]``."""
        return self.forward_head(self.forward_features(x, num_frames), num_frames)


class EcoLite3dNet(EcoLite3dNetBase):
    """The 4D-only 3D-Net: :class:`~action_recognition.models.eco_blocks.ResidualBlock` of
    ``unit``, with the paper's 4D shortcuts when ``shortcut_4d``."""

    def __init__(self, *, unit: ConvUnitFactory, widths: tuple[int, int, int],
                 num_classes: int, in_channels: int = NET2D_CHANNELS, blocks_per_stage: int = 2,
                 dropout: float = 0.5, shortcut_4d: bool = False) -> None:
        super().__init__(
            block=functools.partial(ResidualBlock, unit=unit, shortcut_4d=shortcut_4d),
            widths=widths, num_classes=num_classes, in_channels=in_channels,
            blocks_per_stage=blocks_per_stage, dropout=dropout)

    def blocks(self) -> list[ResidualBlock]:
        """The residual blocks in order."""
        return [block for stage in self.stages.children() for block in stage.children()
                if isinstance(block, ResidualBlock)]

    def forward_features(self, x: Tensor, num_frames: int) -> Tensor:
        """Features ``[B*T, C_in, h, w]`` -> feature maps ``[B*T', C, h', w']``."""
        _check_features(x, self.in_channels, num_frames)
        for block in self.blocks():
            x = block(x, num_frames)
            num_frames = block.out_frames(num_frames)
        return x

    def pool(self, x: Tensor, out_frames: int) -> Tensor:
        """Maps ``[B*T', C, h', w']`` -> ``[B, C]``: the mean over ``h', w'``, then over T'.

        An average pooling over each map, then a mean over axis 1 of ``[B, T', C, 1]``
        (:func:`~action_recognition.models.layers.spatial_mean`, ``clip_mean``): no MEAN on the
        batch of frames, which NPU toolchains leave on the CPU.
        """
        return clip_mean(spatial_mean(x), out_frames)


class EcoLite3dNet5d(EcoLite3dNetBase):
    """The reference 3D-Net on 5D tensors (not 4D-only), names as :class:`EcoLite3dNet`.

    The features are viewed as ``[B, C_in, T, h, w]`` for the
    :class:`~action_recognition.models.eco_blocks.BasicBlock5d` blocks; the feature maps come
    back in the frame layout ``[B*T', C, h', w']``, and the head pools them as
    ``[B, C, T', h', w']`` (one mean over the last three axes, as this reference always has).
    """

    def __init__(self, *, widths: tuple[int, int, int], num_classes: int,
                 in_channels: int = NET2D_CHANNELS, blocks_per_stage: int = 2,
                 dropout: float = 0.5) -> None:
        super().__init__(block=BasicBlock5d, widths=widths, num_classes=num_classes,
                         in_channels=in_channels, blocks_per_stage=blocks_per_stage,
                         dropout=dropout)

    def forward_features(self, x: Tensor, num_frames: int) -> Tensor:
        """Features ``[B*T, C_in, h, w]`` -> feature maps ``[B*T', C, h', w']`` (5D inside)."""
        _check_features(x, self.in_channels, num_frames)
        _, channels, height, width = x.shape
        x = x.reshape(-1, num_frames, channels, height, width).transpose(1, 2)
        for stage in self.stages.children():
            for block in stage.children():
                x = block(x)
        _, channels, _, height, width = x.shape
        return x.transpose(1, 2).reshape(-1, channels, height, width)

    def pool(self, x: Tensor, out_frames: int) -> Tensor:
        """Maps ``[B*T', C, h', w']`` -> ``[B, C]``, averaged as ``[B, C, T', h', w']``."""
        _, channels, height, width = x.shape
        clips = x.reshape(-1, out_frames, channels, height, width).transpose(1, 2).contiguous()
        return clips.mean(dim=(2, 3, 4))


def init_net3d_weights(module: nn.Module, *, zero_init_last: bool) -> None:
    """ECO-Lite's initialisation of a 3D-Net (see the module docstring)."""
    init_video_net_(module)
    if zero_init_last:
        for m in module.modules():
            if isinstance(m, (ResidualBlock, BasicBlock5d)):
                nn.init.zeros_(m.bn2.weight)

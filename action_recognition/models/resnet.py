"""2D ResNet-50/101 pieces in torchvision's state-dict layout, and the ImageNet loader.

The video models built on a 2D ResNet (TSN, CT-Net) apply it to every frame ``[B*T, C, H, W]``
and keep torchvision's attribute names (``conv1``, ``bn1``, ``layer1.0.conv1``, ...,
``downsample.0``), so a torchvision ImageNet state dict maps onto them key for key.

- :class:`Bottleneck`: torchvision's ResNet v1.5 bottleneck (stride on the 3x3 conv), on
  :class:`BottleneckFrame`, which video bottlenecks share with it.
- :class:`ResNet2d`: stem + ``layer1``..``layer4``; a ``block_fn`` chooses each block, so video
  models can put their own blocks at chosen positions.
- :func:`load_resnet_imagenet`: loads a torchvision ResNet state dict (or a file holding one) onto
  such a model, reports what was loaded, skipped, new and missing, and refuses wrong shapes.
"""

from __future__ import annotations

from abc import ABC
from abc import abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
import logging
import os
from typing import Protocol

import torch
from torch import nn
from torch import Tensor

from action_recognition.models.layers import init_conv_bn_
from action_recognition.models.weights import read_state_dict

__all__ = [
    'RESNET_STAGES', 'STAGE_PLANES', 'BottleneckFrame', 'Bottleneck', 'BlockFn', 'ResNet2d',
    'ImageNetLoadReport',
    'load_resnet_imagenet', 'init_resnet_weights', 'conv1x1', 'conv3x3',
]

_LOGGER = logging.getLogger(__name__)

# Blocks per stage (layer1..layer4) and bottleneck widths of the stages.
RESNET_STAGES: dict[int, tuple[int, int, int, int]] = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3)}
STAGE_PLANES = (64, 128, 256, 512)


def conv1x1(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    """1x1 convolution without bias."""
    return nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False)


def conv3x3(in_channels: int, out_channels: int, stride: int = 1, groups: int = 1) -> nn.Conv2d:
    """3x3 convolution with padding 1, without bias."""
    return nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, groups=groups,
                     bias=False)


class BottleneckFrame(nn.Module, ABC):
    """What every bottleneck shares, on frames ``[N, C_in, H, W] -> [N, 4*planes, H', W']``.

    ``conv1`` (1x1) -> ``bn1`` -> ReLU -> :meth:`middle` -> ``conv3`` (1x1) -> ``bn3`` ->
    + shortcut (``downsample`` or identity) -> ReLU. A subclass's ``__init__`` calls
    :meth:`_add_input_layers`, sets its middle layers, then calls :meth:`_add_output_layers`, so
    the modules are registered (and initialised) in torchvision's order.
    """

    expansion = 4

    def _add_input_layers(self, inplanes: int, planes: int) -> None:
        self.conv1 = conv1x1(inplanes, planes)
        self.bn1 = nn.BatchNorm2d(planes)

    def _add_output_layers(self, planes: int, downsample: nn.Module | None) -> None:
        self.conv3 = conv1x1(planes, planes * self.expansion)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    @abstractmethod
    def middle(self, x: Tensor) -> Tensor:
        """The middle layers: ``[N, planes, H, W] -> [N, planes, H', W']``."""

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.middle(self.relu(self.bn1(self.conv1(x))))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class Bottleneck(BottleneckFrame):
    """torchvision's ResNet v1.5 bottleneck on frames ``[N, C_in, H, W] -> [N, 4*planes, H', W']``.

    ``conv1`` (1x1) -> ``bn1`` -> ReLU -> ``conv2`` (3x3, stride) -> ``bn2`` -> ReLU -> ``conv3``
    (1x1) -> ``bn3`` -> + shortcut (``downsample`` or identity) -> ReLU.
    """

    def __init__(self, inplanes: int, planes: int, stride: int = 1,
                 downsample: nn.Module | None = None) -> None:
        super().__init__()
        self._add_input_layers(inplanes, planes)
        self.conv2 = conv3x3(planes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self._add_output_layers(planes, downsample)

    def middle(self, x: Tensor) -> Tensor:
        """``conv2`` (3x3, stride) -> ``bn2`` -> ReLU."""
        return self.relu(self.bn2(self.conv2(x)))


class BlockFn(Protocol):
    """Builds the block at ``(stage, index)`` (both 0-based) of a :class:`ResNet2d`."""

    def __call__(self, stage: int, index: int, inplanes: int, planes: int, stride: int,
                 downsample: nn.Module | None) -> nn.Module: ...


def _default_block(stage: int, index: int, inplanes: int, planes: int, stride: int,
                   downsample: nn.Module | None) -> nn.Module:
    return Bottleneck(inplanes, planes, stride, downsample)


class ResNet2d(nn.Module):
    """The convolutional part of a 2D ResNet-50/101, applied to each frame.

    Input frames ``[N, 3, H, W]``; :meth:`forward_features` returns ``[N, 2048, H/32, W/32]``
    (sizes rounded up at each stride-2 step). No classifier: the video models add their head.
    Attribute names follow torchvision, so ``conv1.weight``, ``layer3.5.bn2.running_mean`` etc.
    are the keys of torchvision's state dict.

    Args:
        depth: 50 or 101.
        block_fn: builds each block (default: :class:`Bottleneck`); the first block of every
            stage but the first has stride 2 and a ``downsample`` shortcut (1x1 conv + BN).
    """

    def __init__(self, *, depth: int = 50, block_fn: BlockFn | None = None) -> None:
        super().__init__()
        if depth not in RESNET_STAGES:
            raise ValueError(f'ResNet depth must be one of {sorted(RESNET_STAGES)}, got {depth}')
        self.depth = depth
        build: BlockFn = block_fn or _default_block
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        inplanes = 64
        stages = []
        for stage, (blocks, planes) in enumerate(zip(RESNET_STAGES[depth], STAGE_PLANES)):
            stride = 1 if stage == 0 else 2
            downsample = nn.Sequential(
                conv1x1(inplanes, planes * Bottleneck.expansion, stride),
                nn.BatchNorm2d(planes * Bottleneck.expansion))
            layer = [build(stage, 0, inplanes, planes, stride, downsample)]
            inplanes = planes * Bottleneck.expansion
            layer += [build(stage, i, inplanes, planes, 1, None) for i in range(1, blocks)]
            stages.append(nn.Sequential(*layer))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.num_features = inplanes

    def forward_features(self, x: Tensor) -> Tensor:
        """Frames ``[N, 3, H, W]`` -> feature maps ``[N, 2048, H/32, W/32]``."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_features(x)


def init_resnet_weights(module: nn.Module) -> None:
    """torchvision's initialisation: Kaiming-normal (fan-out) convs, BN weight 1 and bias 0."""
    for m in module.modules():
        init_conv_bn_(m)


@dataclass(frozen=True)
class ImageNetLoadReport:
    """What :func:`load_resnet_imagenet` did, key by key.

    Attributes:
        loaded: model keys copied from the state dict.
        skipped: state-dict keys left out on purpose: the ImageNet classifier ``fc.*`` and the
            layers a video block replaces (``conv2``/``bn2`` of a CT block).
        new: model keys with no ImageNet counterpart by design (the video modules, the head);
            they keep their initialisation.
        missing: model keys that should have come from ImageNet but the state dict lacks.
        unexpected: state-dict keys that match nothing in the model.
    """

    loaded: tuple[str, ...]
    skipped: tuple[str, ...]
    new: tuple[str, ...]
    missing: tuple[str, ...]
    unexpected: tuple[str, ...]

    def summary(self) -> str:
        text = (f'{len(self.loaded)} tensors loaded, {len(self.skipped)} skipped, '
                f'{len(self.new)} new (kept their initialisation)')
        if self.missing:
            text += f', {len(self.missing)} missing: {", ".join(self.missing[:8])}'
        if self.unexpected:
            text += f', {len(self.unexpected)} unexpected: {", ".join(self.unexpected[:8])}'
        return text


def _replaced_and_new(model: nn.Module) -> tuple[set[str], list[str]]:
    """Key prefixes of 2D layers a block replaced, and of modules new to the video model.

    A block declares ``replaced_2d: tuple[str, ...]`` (names of the torchvision layers it does
    not have, e.g. ``('conv2', 'bn2')``) and ``new_modules: tuple[str, ...]`` (its own modules
    with no ImageNet counterpart). The model declares ``new_modules`` for its head.
    """
    replaced: set[str] = set()
    new: list[str] = []
    for name, module in model.named_modules():
        prefix = f'{name}.' if name else ''
        for child in getattr(module, 'replaced_2d', ()):
            replaced.add(f'{prefix}{child}.')
        for child in getattr(module, 'new_modules', ()):
            new.append(f'{prefix}{child}.')
    return replaced, new


def load_resnet_imagenet(
        model: nn.Module,
        path_or_state_dict: str | os.PathLike[str] | Mapping[str, Tensor],
        *, strict: bool = True) -> ImageNetLoadReport:
    """Load a torchvision ResNet-50/101 ImageNet state dict onto the 2D parts of ``model``.

    ``model`` uses torchvision's names (a :class:`ResNet2d`-based model). Every state-dict key
    that names a model tensor of the same shape is copied (BN running statistics included).
    ``fc.*`` (the 1000-class ImageNet head) is skipped, and so are the layers that a video block
    replaced (``layerX.i.conv2``/``bn2`` of a CT block); the 1x1 convs around them load. Nothing
    is downloaded.

    Args:
        model: the model to fill (changed in place).
        path_or_state_dict: a state dict, or the path of a file saved with ``torch.save`` holding
            one (optionally under ``'state_dict'``, optionally with ``module.`` prefixes).
        strict: raise ``ValueError`` when model keys are missing from the state dict or the state
            dict has keys that match nothing; otherwise only log them.

    Returns:
        An :class:`ImageNetLoadReport`.

    Raises:
        ValueError: a tensor's shape differs from the model's (always; nothing is loaded then),
            or, with ``strict``, missing or unexpected keys.
        CheckpointError: the file is corrupt, or holds pickled Python objects, which the safe
            loader (``weights_only=True``) refuses without running anything
            (:class:`~action_recognition.serialization.UnsafeCheckpointError`).
    """
    state, _ = read_state_dict(
        path_or_state_dict, what='ImageNet ResNet weights',
        missing_hint='expected a local torchvision ResNet state dict saved with torch.save; '
                     'nothing is downloaded')
    own = model.state_dict()
    replaced, new_prefixes = _replaced_and_new(model)

    def is_new(key: str) -> bool:
        return any(key.startswith(prefix) for prefix in new_prefixes)

    loaded, skipped, unexpected, bad_shapes = [], [], [], []
    for key, tensor in state.items():
        if key.startswith('fc.') or any(key.startswith(prefix) for prefix in replaced):
            skipped.append(key)
        elif key in own and not is_new(key):
            if tuple(own[key].shape) != tuple(tensor.shape):
                bad_shapes.append(
                    f'{key}: state dict {tuple(tensor.shape)} vs model {tuple(own[key].shape)}')
            else:
                loaded.append(key)
        else:
            unexpected.append(key)
    if bad_shapes:
        raise ValueError(
            'refusing to load ImageNet weights with wrong shapes (is it a ResNet of the same '
            f'depth?): {"; ".join(bad_shapes[:8])}'
            + (f' and {len(bad_shapes) - 8} more' if len(bad_shapes) > 8 else ''))
    new = [key for key in own if is_new(key)]
    loaded_set = set(loaded)
    missing = [key for key in own if key not in loaded_set and not is_new(key)]
    report = ImageNetLoadReport(
        loaded=tuple(loaded), skipped=tuple(skipped), new=tuple(new), missing=tuple(missing),
        unexpected=tuple(unexpected))
    if strict and (missing or unexpected):
        raise ValueError(f'ImageNet ResNet weights do not fit the model: {report.summary()}')
    with torch.no_grad():
        for key in loaded:
            own[key].copy_(state[key])
    _LOGGER.info('ImageNet ResNet weights: %s', report.summary())
    return report

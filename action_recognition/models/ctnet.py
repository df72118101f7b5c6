"""CT-Net (Li et al., ICLR 2021) and its TSN baseline, 4D-only.

Paper 004, "CT-Net: Channel Tensorization Network for Video Classification". A 2D ResNet is run
on every frame ``[B*T, C, H, W]``; in 7 of its bottlenecks (none strided: block 1 of ``layer1``,
blocks 1 and 3 of ``layer2``, blocks 1, 3 and 5 of ``layer3``, block 1 of ``layer4``, 0-based)
the 3x3 convolution (with its BN and ReLU) is replaced by a CT-Module; the 1x1 convolutions
around it stay (and load from ImageNet). The clip's frame logits are averaged (TSN consensus).

The CT-Module, Tensor Excitation and the ablation modules are in
:mod:`~action_recognition.models.ct_blocks` (with the CT-Module's diagram).

Choices where the text is ambiguous (the authors' code decides; it gives the counted figures of
``shared/papers/README.md``):

- The CT-Module replaces ``conv2``, ``bn2`` and the ReLU after them; the block then goes on with
  ``conv3``/``bn3``, the shortcut and the final ReLU. Each spatial/temporal branch conv has its
  own BN and ReLU.
- Sub-operation 1 mixes groups of ``C2`` channels (``groups=C1``), sub-operation 2 groups of
  ``C1`` channels, as in the authors' code (the paper's Table 1 names the first one ``C1``).
  Parameters and MACs are the same in either order.
- The channel split is the authors' power-of-two split, not ``floor(sqrt(C))`` as the text says.
- The point-wise conv (with BN and ReLU) works on the channel order of sub-operation 1.
- Channel excitation pools over ``H, W`` per frame (not over ``T``).

Figures at the paper's settings (8 frames, 256x256, 174 classes, batch 1, whole model),
measured with :func:`action_recognition.models.analysis.count_macs` (conv + fc + BN, one MAC per
BN element): TSN-R50 23.87 M / 42.83 GMAC (paper 23.9 M / 43.0), CT-Net-R50 20.96 M / 37.18
GMAC (paper 21.0 M / 37.3). ``shared/papers/README.md`` counts two MACs per BN element (scale and
shift), 42.94 and 37.32; adding the BN elements once more to ``count_macs`` gives its figures to
the last digit, for the ablations too (:data:`ABLATION_REFERENCES`, ``test/test_ctnet.py``).

Ablation modules in the same positions (``block=``): ``'c3d'`` (full 3x3x3, BN, ReLU),
``'r2plus1d'`` (1x3x3 C->C, BN, ReLU, 3x1x1 C->C, BN, ReLU), ``'csn'`` (1x1x1, BN, ReLU,
depthwise 3x3x3, BN, ReLU); ``pointwise=False`` and ``excitation=False`` give Table 2g's rows.

Registered builders (``tsn_r50``, ``ct_net_r50``, ``ct_net_r101``) are rows of
:data:`CTNET_VARIANTS` built by ``_create_ctnet``. Interface (timm's, shared with ECO-Lite, see
:mod:`~action_recognition.models.interface`): ``forward_features(frames [B*T, 3, H, W])`` gives
the pooled frame features ``[B*T, 2048]``, ``forward_head(features, pre_logits)`` the clip's
logits ``[B, num_classes]`` (the average of the frame logits) or, with ``pre_logits``, the
clip's average feature ``[B, 2048]``; ``reset_classifier(num_classes)`` replaces ``fc``.

Everything is 4D (no tensor, parameter or buffer of rank above 4; see
:mod:`~action_recognition.models.ct_blocks`). The means over space and over a clip's frames are
an average pooling and a mean over axis 1 of ``[B, T, C, 1]``
(:func:`~action_recognition.models.layers.spatial_mean`, ``clip_mean``), which NPU toolchains
take, rather than MEANs on the batch of frames (see ``ct_blocks`` for the CT-Module's forms).
Through PyTorch -> TFLite -> int8 -> Arm Vela (Ethos-U55-256), ``ct_net_r50`` at 8x112x112 runs
wholly on the NPU (issue 14); through ONNX, OpenVINO's CPU plugin gives PyTorch's logits
(it miscomputed the former ``index_select`` channel permutation), and Rockchip's RKNN (toolkit
2.5, rk3588) keeps everything on its NPU but the final reshape of the logits to
``[B, num_classes]`` when ``num_classes`` is not a multiple of 16 (174 here): its output layout,
which no form of the model avoids.
"""

from __future__ import annotations

from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
import os
from typing import Any
from typing import TYPE_CHECKING
from typing import TypedDict

from torch import nn
from torch import Tensor

from action_recognition.models.ct_blocks import BLOCK_TYPES
from action_recognition.models.ct_blocks import init_video_modules
from action_recognition.models.ct_blocks import video_module
from action_recognition.models.ct_blocks import VideoBottleneck
from action_recognition.models.interface import check_clip_frames
from action_recognition.models.interface import new_classifier
from action_recognition.models.layers import clip_mean
from action_recognition.models.layers import spatial_mean
from action_recognition.models.registry import PaperReference
from action_recognition.models.registry import register_model
from action_recognition.models.resnet import Bottleneck
from action_recognition.models.resnet import init_resnet_weights
from action_recognition.models.resnet import load_resnet_imagenet
from action_recognition.models.resnet import ResNet2d
from action_recognition.models.resnet import RESNET_STAGES

if TYPE_CHECKING:  # typing_extensions: Required and Unpack are in typing from Python 3.11 only
    from typing_extensions import Required
    from typing_extensions import Unpack

__all__ = [
    'CTNet', 'CTNetVariant', 'CTNET_VARIANTS', 'CTNetArgs', 'TSNArgs', 'PretrainedWeights',
    'REPLACED_BLOCKS', 'DEFAULT_DROPOUT', 'ABLATION_REFERENCES', 'TSN_R50_REFERENCE',
    'CT_NET_R50_REFERENCE', 'CT_NET_R101_REFERENCE', 'tsn_r50', 'ct_net_r50', 'ct_net_r101',
]

# (stage, block) of the replaced bottlenecks, 0-based (stage 0 is layer1): every odd block of
# every stage, as the authors' code does ("one of every two ResBlocks", Fig. 2c).
REPLACED_BLOCKS: dict[int, tuple[tuple[int, int], ...]] = {
    50: ((0, 1), (1, 1), (1, 3), (2, 1), (2, 3), (2, 5), (3, 1)),
    101: ((0, 1), (1, 1), (1, 3), *((2, i) for i in range(1, 23, 2)), (3, 1)),
}

DEFAULT_DROPOUT = 0.3  # appendix A.1: 0.3 for Something-Something, 0.5 for Kinetics

PretrainedWeights = str | os.PathLike[str] | Mapping[str, Tensor]
"""ImageNet weights for the 2D ResNet: a file saved with ``torch.save``, or a state dict."""


class CTNet(ResNet2d):
    """CT-Net on a 2D ResNet-50/101, or TSN when no block is replaced.

    Input frames ``[B*T, 3, H, W]`` (the ``T = num_frames`` frames of each clip contiguous, any
    ``B``, any ``H, W >= 112``); output logits ``[B, num_classes]``: per-frame logits of the
    ResNet features (global average pool, dropout, ``fc``) averaged over the clip (TSN consensus).
    ``forward`` is ``forward_head(forward_features(x))``; ``num_features`` is 2048.

    Args:
        num_classes: outputs.
        num_frames: clip length ``T``.
        depth: 50 or 101.
        replaced: ``(stage, block)`` positions (0-based) of the bottlenecks whose 3x3 conv is
            replaced by ``block``; ``()`` gives TSN. Default: :data:`REPLACED_BLOCKS`.
        block: ``'ct'``, ``'c3d'``, ``'r2plus1d'`` or ``'csn'``.
        pointwise: CT-Module's point-wise conv between the sub-operations (``block='ct'`` only).
        excitation: CT-Module's Tensor Excitation (``block='ct'`` only).
        dropout: dropout before ``fc``.
    """

    new_modules = ('fc',)

    def __init__(self, *, num_classes: int, num_frames: int, depth: int = 50,
                 replaced: Sequence[tuple[int, int]] | None = None, block: str = 'ct',
                 pointwise: bool = True, excitation: bool = True,
                 dropout: float = DEFAULT_DROPOUT) -> None:
        if num_classes < 1 or num_frames < 1:
            raise ValueError(
                f'num_classes and num_frames must be >= 1, got {num_classes}, {num_frames}')
        if block not in BLOCK_TYPES:
            raise ValueError(f'block must be one of {BLOCK_TYPES}, got {block!r}')
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f'dropout must be in [0, 1), got {dropout}')
        positions = REPLACED_BLOCKS.get(depth, ()) if replaced is None else replaced
        replaced_blocks = tuple(sorted({(int(s), int(i)) for s, i in positions}))
        if depth in RESNET_STAGES:
            unknown = [(s, i) for s, i in replaced_blocks
                       if not (0 <= s < 4 and 0 <= i < RESNET_STAGES[depth][s])]
            if unknown:
                raise ValueError(f'no bottleneck at (stage, block) {unknown} in ResNet-{depth}')

        def block_fn(stage: int, index: int, inplanes: int, planes: int, stride: int,
                     downsample: nn.Module | None) -> nn.Module:
            if (stage, index) not in replaced_blocks:
                return Bottleneck(inplanes, planes, stride, downsample)
            if stride != 1:
                raise ValueError(f'block {index} of layer{stage + 1} is strided; CT-Net '
                                 'replaces only blocks with stride 1')
            return VideoBottleneck(inplanes, planes, video_module(
                block, planes, num_frames, pointwise=pointwise, excitation=excitation),
                downsample)

        super().__init__(depth=depth, block_fn=block_fn)
        self.replaced_blocks = replaced_blocks
        self.num_classes = num_classes
        self.num_frames = num_frames
        self.block = block
        self.default_input_size = (224, 224)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(self.num_features, num_classes)
        init_resnet_weights(self)
        init_video_modules(self)
        nn.init.normal_(self.fc.weight, 0.0, 0.001)
        nn.init.zeros_(self.fc.bias)

    def get_classifier(self) -> nn.Linear:
        """The classifier, ``fc``: ``nn.Linear(2048, num_classes)``, applied to every frame."""
        return self.fc

    def reset_classifier(self, num_classes: int) -> None:
        """Replace ``fc`` by a fresh one with ``num_classes`` outputs (fine-tuning)."""
        self.fc = new_classifier(self.fc, num_classes, std=0.001)
        self.num_classes = num_classes

    def forward_features(self, x: Tensor) -> Tensor:
        """Frames ``[B*T, 3, H, W]`` -> pooled frame features ``[B*T, 2048]``.

        Each frame's ResNet feature map averaged over ``H, W``; the clip's T frames contiguous.
        """
        check_clip_frames(x, self.num_frames)
        return spatial_mean(super().forward_features(x)).flatten(1)

    def forward_head(self, features: Tensor, pre_logits: bool = False) -> Tensor:
        """``[B*T, 2048]`` -> clip logits ``[B, num_classes]`` (or features ``[B, 2048]``).

        The frame logits (dropout, ``fc``) are averaged over each clip; with ``pre_logits``
        the clip's average frame feature is returned instead.
        """
        if pre_logits:
            return clip_mean(features, self.num_frames)
        return clip_mean(self.fc(self.dropout(features)), self.num_frames)

    def forward(self, x: Tensor) -> Tensor:
        """Frames ``[B*T, 3, H, W]`` -> logits ``[B, num_classes]``."""
        return self.forward_head(self.forward_features(x))


def _build(*, num_classes: int, num_frames: int, depth: int, replaced: Sequence[tuple[int, int]],
           block: str = 'ct', pointwise: bool | None = None, excitation: bool | None = None,
           dropout: float = DEFAULT_DROPOUT, pretrained_2d: PretrainedWeights | None = None
           ) -> CTNet:
    if block != 'ct' and (pointwise or excitation):
        raise ValueError(f"pointwise and excitation apply to block='ct' only, not {block!r}")
    model = CTNet(num_classes=num_classes, num_frames=num_frames, depth=depth, replaced=replaced,
                  block=block, pointwise=True if pointwise is None else pointwise,
                  excitation=True if excitation is None else excitation, dropout=dropout)
    if pretrained_2d is not None:
        load_resnet_imagenet(model, pretrained_2d)
    return model


_PAPER = 'CT-Net (004)'


def _reference(table: str, *, params_m: float | None, gmac: float, counted_params_m: float,
               counted_gmac: float, options: dict[str, Any] | None = None,
               note: str = '') -> PaperReference:
    return PaperReference(
        paper=f'{_PAPER}, {table}', num_classes=174, num_frames=8, input_size=(256, 256),
        params_m=params_m, gmac=gmac, mac_scope='', counted_params_m=counted_params_m,
        counted_gmac=counted_gmac, note=note, options=dict(options or {}))


TSN_R50_REFERENCE = _reference(
    'Table 8 / Table 2g', params_m=23.9, gmac=43.0, counted_params_m=23.87, counted_gmac=42.94,
    note='Table 3 lists TSN at 33 GFLOPs: that is 224x224 input, from the TSM paper.')
CT_NET_R50_REFERENCE = _reference(
    'Table 8 / Table 2g / Table 3', params_m=21.0, gmac=37.3, counted_params_m=20.96,
    counted_gmac=37.32)
CT_NET_R101_REFERENCE = PaperReference(
    paper=f'{_PAPER}, Table 4 (Kinetics-400, per view)', num_classes=400, num_frames=16,
    input_size=(256, 256), params_m=None, gmac=145.5, mac_scope='',
    note='The paper gives no parameter count for R101. Every odd block of every stage is '
         "replaced (15 blocks), per the text's 'one of every two ResBlocks' and the authors' "
         'code; that gives 37.5 M and 138.1 GMAC (138.5 with 2 MACs per BN element), 5% under '
         "the paper's 145.5. Replacing 7 of layer3's blocks instead of 11 (11 in all) would give "
         '145.4; the paper does not say which blocks it replaced.')

# Table 2a/2g (ResNet-50, 8 frames, 256x256, Something-Something V1): name -> (options of
# ct_net_r50, reference). The paper gives GFLOPs (MACs) only; the parameter counts are the
# independent counts of shared/papers/README.md.
ABLATION_REFERENCES: dict[str, tuple[dict[str, Any], PaperReference]] = {
    name: (options, _reference(table, params_m=None, gmac=gmac, counted_params_m=params,
                               counted_gmac=counted, options=options))
    for name, table, options, gmac, params, counted in (
        ('ct_net_r50/c3d', 'Table 2a', {'block': 'c3d'}, 59.9, 32.79, 59.85),
        ('ct_net_r50/r2plus1d', 'Table 2a', {'block': 'r2plus1d'}, 45.8, 25.36, 45.77),
        ('ct_net_r50/csn', 'Table 2a', {'block': 'csn'}, 35.6, 19.95, 35.60),
        ('ct_net_r50/ct_only', 'Table 2a/2g', {'pointwise': False, 'excitation': False},
         36.3, 20.09, 36.28),
        ('ct_net_r50/ct_pw', 'Table 2g', {'pointwise': True, 'excitation': False},
         37.2, 20.59, 37.24),
    )
}


@dataclass(frozen=True)
class CTNetVariant:
    """One registered CT-Net model: a row of :data:`CTNET_VARIANTS`.

    Attributes:
        depth: of the 2D ResNet, 50 or 101.
        replaced: ``(stage, block)`` of the bottlenecks that get a video block; ``()``: TSN,
            whose builder takes no ``block``, ``pointwise`` or ``excitation``.
        reference: the paper's figures and the independent counts.
    """

    depth: int
    replaced: tuple[tuple[int, int], ...]
    reference: PaperReference


CTNET_VARIANTS: dict[str, CTNetVariant] = {
    'tsn_r50': CTNetVariant(50, (), TSN_R50_REFERENCE),
    'ct_net_r50': CTNetVariant(50, REPLACED_BLOCKS[50], CT_NET_R50_REFERENCE),
    'ct_net_r101': CTNetVariant(101, REPLACED_BLOCKS[101], CT_NET_R101_REFERENCE),
}
"""Every registered CT-Net model by name: its ResNet, replaced blocks and paper reference."""

_VIDEO_OPTIONS = frozenset({'block', 'pointwise', 'excitation'})


def _create_ctnet(name: str, **kwargs: Any) -> CTNet:
    """Build the registered model ``name`` from its row of :data:`CTNET_VARIANTS`."""
    variant = CTNET_VARIANTS[name]
    allowed = {'num_classes', 'num_frames', 'dropout', 'pretrained_2d'}
    unknown = sorted(set(kwargs) - allowed - (_VIDEO_OPTIONS if variant.replaced else set()))
    if unknown and not variant.replaced:
        raise TypeError(f'unknown TSN options: {unknown} (TSN has no video blocks)')
    if unknown:
        raise TypeError(f'unknown CT-Net options: {unknown}')
    return _build(depth=variant.depth, replaced=variant.replaced, **kwargs)


# ---------------------------------------------------------------------------------------------
# The registered builders.


class TSNArgs(TypedDict, total=False):
    """The keyword arguments of ``tsn_r50``."""

    num_classes: Required[int]
    num_frames: Required[int]
    dropout: float  # before fc, default DEFAULT_DROPOUT
    pretrained_2d: PretrainedWeights | None  # a local torchvision ResNet state dict (or file)


class CTNetArgs(TSNArgs, total=False):
    """The keyword arguments of ``ct_net_r50``/``ct_net_r101``: also the ablation switches."""

    block: str  # 'ct' (default), 'c3d', 'r2plus1d' or 'csn'
    pointwise: bool | None  # CT-Module's point-wise conv (block='ct' only; default on)
    excitation: bool | None  # CT-Module's Tensor Excitation (block='ct' only; default on)


@register_model(family='ctnet', reference=TSN_R50_REFERENCE)
def tsn_r50(**kwargs: Unpack[TSNArgs]) -> CTNet:
    """TSN baseline: 2D ResNet-50 on every frame, frame logits averaged over the clip."""
    return _create_ctnet('tsn_r50', **kwargs)


@register_model(family='ctnet', reference=CT_NET_R50_REFERENCE)
def ct_net_r50(**kwargs: Unpack[CTNetArgs]) -> CTNet:
    """CT-Net-R50: 7 CT blocks (CT-Module + point-wise conv + TE) in a 2D ResNet-50.

    ``block``, ``pointwise`` and ``excitation`` select the ablations of Table 2a/2g (see
    :data:`ABLATION_REFERENCES`); ``pretrained_2d`` is a local torchvision ResNet-50 state dict.
    """
    return _create_ctnet('ct_net_r50', **kwargs)


@register_model(family='ctnet', reference=CT_NET_R101_REFERENCE)
def ct_net_r101(**kwargs: Unpack[CTNetArgs]) -> CTNet:
    """CT-Net-R101: CT blocks at every odd block of every stage of a 2D ResNet-101."""
    return _create_ctnet('ct_net_r101', **kwargs)

"""ECO-Lite with its 3D-Net built from 4D-only blocks (paper 000, Hajimolahoseini et al.).

ECO-Lite runs a 2D-Net on every frame and a 3D-ResNet-18 style 3D-Net on the stacked feature
maps. Paper 000 replaces the 3D-Net's 3x3x3 convolutions by blocks that need no tensor of rank 5
and compares them in its Table 2. Every model here takes a clip as frames ``[B*T, 3, H, W]``
(the T frames of a clip contiguous) and returns logits ``[B, num_classes]``::

    frames [B*T, 3, H, W]
      net2d (per frame): Inception-V3 to Mixed_5c + Mixed_5d's 1x1(64)->3x3(96) branch
                         (or the light SmallNet2d)              -> [B*T, 96, h, w]
      net3d: stage 1: 2 blocks, 128 ch, stride 1                -> [B*T, 128, h, w]
             stage 2: 2 blocks, 256 ch, first strided (2,2,2)   -> [B*T/2, 256, h/2, w/2]
             stage 3: 2 blocks, 512 ch, first strided (2,2,2)   -> [B*T/4, 512, h/4, w/4]
             global average pool (T, H, W) -> dropout -> fc     -> [B, num_classes]

A residual block is ``conv1 -> BN -> ReLU -> conv2 -> BN -> (+ shortcut) -> ReLU`` where each
"conv" is one of the 3x3x3 replacements below (``forward(x, num_frames)`` on frames), and the
shortcut is a projection (1x1) wherever the width or stride changes, including 96 -> 128.

Variants (registered builders, all ``builder(*, num_classes, num_frames, **options)``, each a
row of :data:`ECO_LITE_VARIANTS` built by ``_create_eco_lite``; the blocks are in
:mod:`~action_recognition.models.eco_blocks`):

- ``eco_lite_conv3d_5d``: the reference, ``nn.Conv3d`` + ``BatchNorm3d`` on 5D tensors.
- ``eco_lite_conv3d``: the same 3x3x3 convolutions computed exactly with 4D tensors
  (:class:`~action_recognition.models.layers.Conv3dAs4d`; BatchNorm2d over frames equals
  BatchNorm3d). Loads the state dict of ``eco_lite_conv3d_5d``.
- ``eco_lite_r2plus1d``: R(2+1)D (Tran et al.): ``1x3x3`` (stride ``1,s,s``) -> BN -> ReLU ->
  ``3x1x1`` (stride ``s,1,1``), mid channels ``floor(27 C_in C_out / (9 C_in + 3 C_out))``.
- ``eco_lite_p3d_a`` / ``_b`` / ``_c``: Qiu et al.'s P3D combinations of a spatial ``S = 1x3x3``
  and a temporal ``T = 3x1x1`` convolution, each replacing one 3x3x3 convolution of the block
  (the block keeps its own identity path): A ``T(S(x))``, B ``S(x) + T(x)``, C
  ``S(x) + T(S(x))``; S maps ``C_in -> C_out``, T ``C_out -> C_out`` (B: ``C_in -> C_out``).
- ``eco_lite_rank1``: rank-1 factorisation (Kim et al.) as three 1D convolutions in h -> w -> t
  order, no nonlinearity in between (the composition is linear, as the factorised kernel is).
- ``eco_lite_add`` / ``eco_lite_cat``: the paper's Proposed-Add / Proposed-Cat: a spatial branch
  (3x3 Conv2d on frames, then for strided blocks a 1x1 conv with stride ``s`` along T on the
  ``[B, S, T, X*Y]`` view, the paper's temporal pooling) and a temporal branch (a ``(3, 1)``
  Conv2d on ``[B, C, T, X*Y]``), added, or concatenated on channels (two full-width branches:
  block widths 256/512/1024, fc from 1024).
- ``eco_lite_add_small``: Proposed-Add on :class:`SmallNet2d` with ``width_mult=0.25`` for real
  time on a small CPU (no paper reference).

Every builder takes ``net2d``: ``'inception'`` (the paper's), ``'small'`` (:class:`SmallNet2d`) or
``'small_sym'``: :class:`SmallNet2d` inside
:class:`~action_recognition.models.inception.ContrastSymmetricNet2d`, which standardises each
frame and adds the features of the frame and its negative (twice the 2D-Net's cost; the
synthetic benchmark's configs use it, see ``docs/synthetic_rotation.md``).

Strided blocks of Rank-1, Proposed-Add and Proposed-Cat use the paper's 4D pattern: the temporal
stride is a temporal-pooling 1x1 conv (stride ``s`` along T), and the shortcut is a 1x1 spatial
conv with stride ``s`` followed by the same temporal-pooling conv. That is what reproduces Table 2
(``shared/papers/README.md``). Conv3D, R(2+1)D and P3D stride their convolutions as their own
papers do and use a ``1x1x1`` conv with stride ``(s, s, s)`` as shortcut.

Figures at 400 classes, 16 frames of 243x243 (whole-model params; MACs of ``net3d``), see
:data:`PAPER_REFERENCES`. Conv3D 33.80 M / 35.61 GMAC, R(2+1)D 33.81 / 36.84, Proposed-Cat
32.38 / 32.68, Proposed-Add 16.33 / 17.03, Rank-1 13.71 / 14.80. P3D-A/B/C count 16.18/15.67/
16.18 M and 17.05/15.96/17.05 GMAC, below the paper's 22.5/23.5/22.8 M and 19.5/20.9/19.6 GFLOPs:
no standard P3D definition reaches those (their order B > C > A contradicts the definitions, in
which B is never larger than A or C: it has the same kernels and runs both at the output
resolution); the paper's P3D figures are not reproducible from its text (its figures are
missing).

Proposed-Add/Cat take ``temporal_stride_mode``: ``'aligned'`` (default) strides the temporal
branch as a ``(3, 1)`` conv with stride ``(s, 1)`` on the ``[::s, ::s]`` subsampled map, so both
branches describe the same pixels; ``'paper'`` uses the paper's stride ``s^2`` along the
flattened ``X*Y`` axis, which on a 28x28 map keeps every 4th column of every row and relabels it
as a 14x14 map (see :class:`~action_recognition.models.eco_blocks.ProposedConv`). Same
parameters and MACs. ``'paper'`` needs feature maps whose sides are even at every strided block
(243x243 frames with the Inception 2D-Net, 128x128 with the small one) and raises otherwise.

Clip length: any ``num_frames >= 1`` works (every temporal stride is a kernel-3/pad-1 or kernel-1
convolution with stride 2, giving ``ceil(T / 2)`` frames); the paper uses 16. Frames: any
``H, W >= 112`` (the Inception 2D-Net works from 75, the small one from 8).
``default_input_size`` is the paper's 243x243 for the Inception 2D-Net (a 28x28 map) and
112x112 for the small 2D-Net (a 14x14 map).

On edge NPUs (issue 14): the stride-2 spatial subsampling is a kernel-1 average pooling, not a
strided slice; the head's mean over space and T' is an average pooling and a mean over axis 1;
the ``'small_sym'`` standardisation uses no DIV, SQRT or batched MEAN; the ``'paper'`` stride is a
pooling and a stride-1 convolution rather than a stride-4 one. Each computes what the plain form
did (``test/test_npu_forms.py``). Through PyTorch -> TFLite -> int8 -> Arm Vela (Ethos-U55-256)
the shipped default model (16x64x64, ``'small_sym'``), ``eco_lite_add`` (16x112x112) and
``'paper'`` mode (16x128x128) run wholly on the NPU; nothing is left to the CPU. Vela's average
pooling takes windows up to 256 rows, so ``'small_sym'`` frames taller than 256 pixels would put
the standardisation's poolings on the CPU. Through ONNX, Rockchip's RKNN (toolkit 2.5,
rk3588) keeps the default model and ``eco_lite_add`` on its NPU but for the final reshape of
the logits to ``[B, num_classes]`` when ``num_classes`` is not a multiple of 16 (11 in the
default model; 400 stays on the NPU): that is its output layout, which no form of the model
avoids.

Initialisation (:func:`~action_recognition.models.eco_net3d.init_net3d_weights`): Kaiming normal
(fan-out, ReLU) for convolutions, BN weight 1 and bias 0, fc normal(0, 0.01) with zero bias.
``zero_init_last=True`` zeroes the last BN of every residual block (each block starts as its
shortcut); it is off by default, as the paper does not mention it.

Layout: the 3x3x3 replacements and residual blocks are in
:mod:`~action_recognition.models.eco_blocks`, the 3D-Nets and their head in
:mod:`~action_recognition.models.eco_net3d`; this module holds the model, the variant table and
the registered builders.

Interface (timm's, shared with CT-Net, see :mod:`~action_recognition.models.interface`):
``forward_features(frames [B*T, 3, H, W])`` gives the 3D-Net's feature maps
``[B*T', num_features, h', w']`` (``T' = ceil(T / 4)``), ``forward_head(features, pre_logits)``
pools them over ``(T', h', w')`` into ``[B, num_features]`` and classifies them (dropout, fc)
into ``[B, num_classes]``, ``reset_classifier(num_classes)`` replaces the fc. For streaming,
``forward_2d`` runs the 2D-Net on single frames and ``forward_3d`` the 3D-Net and its head on
the cached feature maps ``[B*T, 96, h, w]``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from typing import Literal
from typing import TYPE_CHECKING
from typing import TypedDict
from typing import TypeVar

from torch import nn
from torch import Tensor

from action_recognition.models.eco_blocks import conv_unit
from action_recognition.models.eco_blocks import TemporalStrideMode
from action_recognition.models.eco_blocks import UnitName
from action_recognition.models.eco_net3d import EcoLite3dNet
from action_recognition.models.eco_net3d import EcoLite3dNet5d
from action_recognition.models.eco_net3d import EcoLite3dNetBase
from action_recognition.models.eco_net3d import init_net3d_weights
from action_recognition.models.inception import ContrastSymmetricNet2d
from action_recognition.models.inception import InceptionV3Net2d
from action_recognition.models.inception import SmallNet2d
from action_recognition.models.interface import check_clip_frames
from action_recognition.models.interface import new_classifier
from action_recognition.models.registry import PaperReference
from action_recognition.models.registry import register_model

if TYPE_CHECKING:  # typing_extensions: Required and Unpack are in typing from Python 3.11 only
    from typing_extensions import Required
    from typing_extensions import Unpack

__all__ = [
    'BASE_WIDTHS', 'ECO_LITE_MODELS', 'ECO_LITE_VARIANTS', 'PAPER_REFERENCES', 'EcoLite',
    'EcoLiteVariant', 'EcoLiteArgs', 'ProposedArgs', 'Net2dName', 'eco_lite_conv3d_5d',
    'eco_lite_conv3d', 'eco_lite_r2plus1d', 'eco_lite_p3d_a', 'eco_lite_p3d_b', 'eco_lite_p3d_c',
    'eco_lite_rank1', 'eco_lite_add', 'eco_lite_cat', 'eco_lite_add_small',
]

BASE_WIDTHS = (128, 256, 512)
"""Widths of the three 3D-Net stages (before ``width_mult``; Proposed-Cat doubles them)."""

Net2dName = Literal['inception', 'small', 'small_sym']


# ---------------------------------------------------------------------------------------------
# The model.


class EcoLite(nn.Module):
    """ECO-Lite: a per-frame 2D-Net (``net2d``) and a 3D-Net with its head (``net3d``).

    Input frames ``[B*T, 3, H, W]`` (the ``T = num_frames`` frames of each clip contiguous),
    output logits ``[B, num_classes]``. ``forward`` equals ``forward_head(forward_features(x))``
    (the shared interface) and ``forward_3d(forward_2d(x))`` (the streaming split: the runtime
    runs :meth:`forward_2d` on each new frame and :meth:`forward_3d` on the last ``num_frames``
    feature maps).

    Attributes:
        num_frames: frames per clip ``T``.
        num_classes: number of logits.
        num_features: channels ``C`` of the 3D-Net's feature maps (and of ``pre_logits``).
        default_input_size: ``(height, width)`` the model is meant to be fed.
    """

    def __init__(self, *, net2d: nn.Module, net3d: EcoLite3dNetBase, num_frames: int,
                 num_classes: int, default_input_size: tuple[int, int]) -> None:
        super().__init__()
        if num_frames < 1:
            raise ValueError(f'num_frames must be >= 1, got {num_frames}')
        self.net2d = net2d
        self.net3d = net3d
        self.num_frames = num_frames
        self.num_classes = num_classes
        self.num_features = net3d.num_features
        self.default_input_size = default_input_size

    def get_classifier(self) -> nn.Linear:
        """The classifier, ``net3d.fc``: ``nn.Linear(num_features, num_classes)``."""
        return self.net3d.fc

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the fc by a fresh one with ``num_classes`` outputs (fine-tuning)."""
        self.net3d.fc = new_classifier(self.net3d.fc, num_classes, std=0.01)
        self.num_classes = num_classes

    def forward_2d(self, frames: Tensor) -> Tensor:
        """Frames ``[N, 3, H, W]`` -> features ``[N, 96, h, w]``, each frame on its own (eval)."""
        features: Tensor = self.net2d(frames)
        return features

    def forward_3d(self, features: Tensor) -> Tensor:
        """Features ``[B*T, 96, h, w]`` (T = ``num_frames`` per clip) -> ``[B, num_classes]``."""
        logits: Tensor = self.net3d(features, self.num_frames)
        return logits

    def forward_features(self, x: Tensor) -> Tensor:
        """Frames ``[B*T, 3, H, W]`` -> 3D-Net feature maps ``[B*T', num_features, h', w']``.

        ``T' = ceil(T / 4)`` frames per clip (two temporal strides of 2), contiguous per clip.
        """
        check_clip_frames(x, self.num_frames)
        return self.net3d.forward_features(self.forward_2d(x), self.num_frames)

    def forward_head(self, features: Tensor, pre_logits: bool = False) -> Tensor:
        """Maps ``[B*T', C, h', w']`` -> logits ``[B, num_classes]``, or ``[B, C]``.

        The maps are averaged over each clip's ``(T', h', w')``; with ``pre_logits`` that average
        is returned, otherwise dropout and ``fc`` follow.
        """
        return self.net3d.forward_head(features, self.num_frames, pre_logits)

    def forward(self, x: Tensor) -> Tensor:
        """Frames ``[B*T, 3, H, W]`` -> logits ``[B, num_classes]``.

        Runs the 3D-Net through its module call, so hooks on ``net3d`` (the scope in which the
        papers count MACs) see it; the result equals ``forward_head(forward_features(x))``.
        """
        check_clip_frames(x, self.num_frames)
        return self.forward_3d(self.forward_2d(x))


# ---------------------------------------------------------------------------------------------
# The variant table.


@dataclass(frozen=True)
class EcoLiteVariant:
    """One registered ECO-Lite model: a row of :data:`ECO_LITE_VARIANTS`.

    Attributes:
        block: the 3x3x3 replacement (a :data:`~action_recognition.models.eco_blocks.UnitName`),
            or ``'conv3d_5d'`` for the 5D reference (``nn.Conv3d`` blocks).
        reference: Table 2 of paper 000 and the independent counts, or ``None``.
        shortcut_4d: the paper's 4D pattern for strided blocks and shortcuts (otherwise
            ``1x1x1`` shortcuts strided ``(s, s, s)``).
        width_factor: multiplies the stage widths (2: Proposed-Cat's two full-width branches).
        net2d: the default 2D-Net.
        width_mult: the default width multiplier of the 3D-Net.
        four_d_only: the registry's flag (only the 5D reference is not).
    """

    block: UnitName | Literal['conv3d_5d']
    reference: PaperReference | None
    shortcut_4d: bool = False
    width_factor: int = 1
    net2d: Net2dName = 'inception'
    width_mult: float = 1.0
    four_d_only: bool = True

    def default_options(self) -> dict[str, Any]:
        """The builder's options with their defaults (:class:`EcoLiteArgs`)."""
        options: dict[str, Any] = {'dropout': 0.5, 'width_mult': self.width_mult,
                                   'net2d': self.net2d, 'zero_init_last': False}
        if self.block in ('add', 'cat'):
            options['temporal_stride_mode'] = 'aligned'
        return options


def _table2(params_m: float, gmac: float, counted_params_m: float, counted_gmac: float,
            note: str = '') -> PaperReference:
    return PaperReference(
        paper='ECO-Lite 4D (000), Table 2', num_classes=400, num_frames=16,
        input_size=(243, 243), params_m=params_m, gmac=gmac, mac_scope='net3d',
        counted_params_m=counted_params_m, counted_gmac=counted_gmac, note=note)


_P3D_NOTE = (
    "P3D as Qiu et al. define A/B/C, each replacing one 3x3x3 convolution of the basic block; "
    "the paper's P3D figures (22.5/23.5/22.8 M, 19.5/20.9/19.6 GFLOPs) are not reachable with "
    'any standard definition (their order B > C > A contradicts them; the figures of the paper '
    "are missing), so the counted figures are this implementation's, about 16 M / 16-17 GMAC")

ECO_LITE_VARIANTS: dict[str, EcoLiteVariant] = {
    'eco_lite_conv3d_5d': EcoLiteVariant('conv3d_5d', _table2(33.7, 35.6, 33.80, 35.61),
                                         four_d_only=False),
    'eco_lite_conv3d': EcoLiteVariant('conv3d', _table2(33.7, 35.6, 33.80, 35.61)),
    'eco_lite_r2plus1d': EcoLiteVariant('r2plus1d', _table2(33.7, 36.9, 33.81, 36.84)),
    'eco_lite_p3d_a': EcoLiteVariant('p3d_a', _table2(22.5, 19.5, 16.18, 17.05, _P3D_NOTE)),
    'eco_lite_p3d_b': EcoLiteVariant('p3d_b', _table2(23.5, 20.9, 15.67, 15.96, _P3D_NOTE)),
    'eco_lite_p3d_c': EcoLiteVariant('p3d_c', _table2(22.8, 19.6, 16.18, 17.05, _P3D_NOTE)),
    'eco_lite_rank1': EcoLiteVariant('rank1', _table2(13.7, 14.7, 13.71, 14.80),
                                     shortcut_4d=True),
    'eco_lite_add': EcoLiteVariant('add', _table2(16.3, 17.1, 16.33, 17.03), shortcut_4d=True),
    'eco_lite_cat': EcoLiteVariant('cat', _table2(32.2, 32.7, 32.38, 32.68), shortcut_4d=True,
                                   width_factor=2),
    'eco_lite_add_small': EcoLiteVariant('add', None, shortcut_4d=True, net2d='small',
                                         width_mult=0.25),
}
"""Every registered ECO-Lite model by name: its block, paper reference and default options."""

PAPER_REFERENCES: dict[str, PaperReference] = {
    name: variant.reference for name, variant in ECO_LITE_VARIANTS.items()
    if variant.reference is not None}
"""Table 2 of paper 000 and the independent counts each registered paper model is held to."""

ECO_LITE_MODELS = tuple(ECO_LITE_VARIANTS)
"""Every registered ECO-Lite model."""


def _make_net2d(name: str) -> tuple[nn.Module, tuple[int, int]]:
    if name == 'inception':
        return InceptionV3Net2d(), (243, 243)
    if name == 'small':
        return SmallNet2d(), (112, 112)
    if name == 'small_sym':
        return ContrastSymmetricNet2d(SmallNet2d()), (112, 112)
    raise ValueError(f"net2d must be 'inception', 'small' or 'small_sym', got {name!r}")


def _widths(width_mult: float, factor: int = 1) -> tuple[int, int, int]:
    if width_mult <= 0:
        raise ValueError(f'width_mult must be > 0, got {width_mult}')
    scaled = [max(1, round(width * width_mult)) * factor for width in BASE_WIDTHS]
    return (scaled[0], scaled[1], scaled[2])


def _build(variant: EcoLiteVariant, *, num_classes: int, num_frames: int, dropout: float,
           width_mult: float, net2d: str, zero_init_last: bool,
           temporal_stride_mode: TemporalStrideMode = 'aligned') -> EcoLite:
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f'dropout must be in [0, 1), got {dropout}')
    net2d_module, input_size = _make_net2d(net2d)
    widths = _widths(width_mult, variant.width_factor)
    net3d: EcoLite3dNetBase
    if variant.block == 'conv3d_5d':
        net3d = EcoLite3dNet5d(widths=widths, num_classes=num_classes, dropout=dropout)
    else:
        net3d = EcoLite3dNet(unit=conv_unit(variant.block, temporal_stride_mode), widths=widths,
                             num_classes=num_classes, dropout=dropout,
                             shortcut_4d=variant.shortcut_4d)
    init_net3d_weights(net3d, zero_init_last=zero_init_last)
    return EcoLite(net2d=net2d_module, net3d=net3d, num_frames=num_frames,
                   num_classes=num_classes, default_input_size=input_size)


def _create_eco_lite(name: str, **kwargs: Any) -> EcoLite:
    """Build the registered model ``name`` from its row of :data:`ECO_LITE_VARIANTS`."""
    variant = ECO_LITE_VARIANTS[name]
    options = variant.default_options()
    unknown = sorted(set(kwargs) - set(options) - {'num_classes', 'num_frames'})
    if unknown:
        raise TypeError(f'{name}() got unexpected keyword arguments {unknown}; its options are '
                        f'{sorted(options)}')
    return _build(variant, **{**options, **kwargs})


# ---------------------------------------------------------------------------------------------
# The registered builders.


class EcoLiteArgs(TypedDict, total=False):
    """The keyword arguments of every ECO-Lite builder (defaults: the variant's row)."""

    num_classes: Required[int]
    num_frames: Required[int]
    dropout: float  # before fc, default 0.5
    width_mult: float  # of the 3D-Net's widths
    net2d: Net2dName
    zero_init_last: bool  # zero the last BN of every residual block, default False


class ProposedArgs(EcoLiteArgs, total=False):
    """Proposed-Add/Cat's: also ``temporal_stride_mode`` (default ``'aligned'``)."""

    temporal_stride_mode: TemporalStrideMode


BuilderT = TypeVar('BuilderT', bound=Callable[..., EcoLite])


def _registered(builder: BuilderT) -> BuilderT:
    """Register ``builder`` with the flags of its row of :data:`ECO_LITE_VARIANTS`."""
    variant = ECO_LITE_VARIANTS[builder.__name__]
    return register_model(family='eco_lite', four_d_only=variant.four_d_only,
                          reference=variant.reference)(builder)


@_registered
def eco_lite_conv3d_5d(**kwargs: Unpack[EcoLiteArgs]) -> EcoLite:
    """Reference Conv3D ECO-Lite on 5D tensors (``nn.Conv3d``, ``BatchNorm3d``)."""
    return _create_eco_lite('eco_lite_conv3d_5d', **kwargs)


@_registered
def eco_lite_conv3d(**kwargs: Unpack[EcoLiteArgs]) -> EcoLite:
    """Conv3D ECO-Lite computed exactly with 4D tensors; loads ``eco_lite_conv3d_5d`` weights."""
    return _create_eco_lite('eco_lite_conv3d', **kwargs)


@_registered
def eco_lite_r2plus1d(**kwargs: Unpack[EcoLiteArgs]) -> EcoLite:
    """R(2+1)D ECO-Lite (mid channels by Tran et al.'s formula)."""
    return _create_eco_lite('eco_lite_r2plus1d', **kwargs)


@_registered
def eco_lite_p3d_a(**kwargs: Unpack[EcoLiteArgs]) -> EcoLite:
    """P3D-A ECO-Lite: ``T(S(x))``."""
    return _create_eco_lite('eco_lite_p3d_a', **kwargs)


@_registered
def eco_lite_p3d_b(**kwargs: Unpack[EcoLiteArgs]) -> EcoLite:
    """P3D-B ECO-Lite: ``S(x) + T(x)``."""
    return _create_eco_lite('eco_lite_p3d_b', **kwargs)


@_registered
def eco_lite_p3d_c(**kwargs: Unpack[EcoLiteArgs]) -> EcoLite:
    """P3D-C ECO-Lite: ``S(x) + T(S(x))``."""
    return _create_eco_lite('eco_lite_p3d_c', **kwargs)


@_registered
def eco_lite_rank1(**kwargs: Unpack[EcoLiteArgs]) -> EcoLite:
    """Rank-1 ECO-Lite (h -> w -> t), 4D strided blocks and shortcuts."""
    return _create_eco_lite('eco_lite_rank1', **kwargs)


@_registered
def eco_lite_add(**kwargs: Unpack[ProposedArgs]) -> EcoLite:
    """Proposed-Add ECO-Lite (paper 000).

    ``temporal_stride_mode='aligned'`` (default) keeps the temporal branch on the same pixels as
    the spatial branch; ``'paper'`` reproduces the paper's ``s^2`` stride along the flattened
    ``X*Y`` axis, which relabels every 4th column of a 28x28 map as a 14x14 map and so adds
    features of different places (see :class:`~action_recognition.models.eco_blocks.ProposedConv`).
    """
    return _create_eco_lite('eco_lite_add', **kwargs)


@_registered
def eco_lite_cat(**kwargs: Unpack[ProposedArgs]) -> EcoLite:
    """Proposed-Cat ECO-Lite (paper 000): block widths 256/512/1024 (two branches each).

    ``temporal_stride_mode`` as for :func:`eco_lite_add`.
    """
    return _create_eco_lite('eco_lite_cat', **kwargs)


@_registered
def eco_lite_add_small(**kwargs: Unpack[ProposedArgs]) -> EcoLite:
    """Proposed-Add on the small 2D-Net, 3D-Net widths 32/64/128: the CPU default model.

    Meant for real time on a 2-core CPU at 16 frames of 112x112 (the default input size).
    """
    return _create_eco_lite('eco_lite_add_small', **kwargs)

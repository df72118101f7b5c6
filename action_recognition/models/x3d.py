"""X3D-XS/S/M (Feichtenhofer, CVPR 2020) with PyTorchVideo's module names, 4D-only.

PyTorchVideo's ``create_x3d`` (width 2.0, depth 2.2, bottleneck 2.25, SE ratio 1/16) as
``Net(blocks=[stem, stage 1..4, head])``; the three variants differ only in their clip
(``x3d_xs`` 4 frames, ``x3d_s`` 13, ``x3d_m`` 16) and training crop (160, 160, 224), which sets
the head's pool window ``ceil(crop / 32)``. On a clip ``[B, 3, T, H, W]`` (``s = H / 32``)::

    blocks.0 stem: conv.conv_t 1x3x3 s(1,2,2) 3->24, conv.conv_xy 5x1x1 depthwise, BN, ReLU
    blocks.1..4 stages of 3, 5, 11, 7 residual blocks, widths 24, 48, 96, 192 (inner 54, 108,
        216, 432), the first block strided (1,2,2) with a 1x1x1 shortcut (branch1_conv, and
        branch1_norm where the width changes):  ReLU(shortcut + branch2), branch2 = conv_a 1x1x1
        -> BN -> ReLU -> conv_b 3x3x3 depthwise -> norm_b (BN, then SE in blocks 0, 2, 4, ...)
        -> Swish -> conv_c 1x1x1 -> BN                            -> [B, 192, T, s, s]
    blocks.5 head: pool (pre_conv 1x1x1 192->432, BN, ReLU, AvgPool3d (T, k, k) stride 1 with
        k = ceil(crop / 32), post_conv 1x1x1 432->2048, ReLU), dropout, proj (Linear on
        channels-last), output pool (mean over the windows)        -> [B, num_classes]

SE (fvcore's ``SqueezeExcitation``): ``x * sigmoid(conv(relu(conv(mean_THW(x)))))``, reduced
width ``round_width(inner, 1/16)`` (8, 8, 16, 32). PyTorchVideo's hub models (and this zoo) return
logits: ``create_x3d`` builds the head without its softmax by default.

- :class:`X3D` (``x3d_xs``, ``x3d_s``, ``x3d_m``): 4D-only. Every ``Conv3d`` is a
  :class:`~action_recognition.models.layers.Conv3dAs4d` (which loads 5D weights), every
  ``BatchNorm3d`` a ``BatchNorm2d`` (the same state dict and statistics); SE takes each frame's
  :func:`~action_recognition.models.layers.spatial_mean` and the clip's ``clip_mean`` and
  multiplies the frames by their clip's gate.
- ``fused_stem=True`` (4D models): the stem's ``conv_t`` and depthwise ``conv_xy`` run as one
  dense ``5x3x3`` convolution (:class:`~action_recognition.models.x3d_blocks.Stem4d`; exact,
  the same parameters and state dict). The separable stem's temporal convolution runs on the
  temporal layout between two transposes of the network's largest activation, which OpenVINO
  reorders around and RKNN leaves on its CPU at 16x224 (2 of 646 operators); the fused stem
  has no transpose (RKNN rk3588 fp16 at 16x224: 649/650 on the NPU, the input's reshape on the
  CPU; Ethos-U55 X3D-XS 4x160: 1340/1340) and costs 5x ``conv_t``'s MACs: 0.682, 2.215, 5.326
  (16x224) and 6.994 (16x256) GMAC counted instead of 0.619, 2.009, 4.830 and 6.346. X3D-M
  16x224, 2 threads (``bench``): OpenVINO CPU 85 ms instead of 92 in fp32, 43 instead of 45
  in bf16; ONNX Runtime 160 instead of 142 (the stem's extra MACs).
  The converter fuses the same pair in a converted 5D X3D
  (:func:`~action_recognition.deploy.convert.to_4d`'s ``fuse_stems``).
- :class:`X3D5d` (``x3d_m_5d``): the 5D reference, ``nn.Conv3d``/``BatchNorm3d`` as PyTorchVideo;
  :meth:`X3D5d.forward_clip` is PyTorchVideo's ``Net.forward`` on ``[B, 3, T, H, W]``.

A PyTorchVideo X3D state dict (``X3D_M.pyth``'s ``model_state``) loads into both with
``load_state_dict(strict=True)``, or from a file with :func:`load_pytorchvideo_weights` (the
builders' ``pretrained``). Nothing is downloaded.

Interface (:mod:`~action_recognition.models.interface`): ``forward_features(frames)`` gives each
frame's head features ``[B*T, 2048]``: the ReLU'd ``pre_conv`` maps averaged over the pool window
and projected by ``post_conv``, which is linear and bias-free, so it commutes with the means
(``[B*T, 2048, h', w']`` with ``h' = h - k + 1`` when the frames are larger than the crop and
the window slides, as PyTorchVideo's at the 182/256 test size). ``forward_head`` averages each
clip's frames, applies ``post_act`` (ReLU), dropout and ``proj``, and averages over the window
positions (before ``proj``, which is affine: the same logits). A map smaller than the window
along an axis is pooled whole along it (PyTorchVideo raises), so any ``H, W >= 32`` works. The
means are NPU-friendly forms (:func:`~action_recognition.models.layers.spatial_mean`, a mean over
axis 1 of ``[B, T, C*h'*w', 1]``); SE gives every frame its clip's mean
(:func:`~action_recognition.models.layers.clip_mean_per_frame`, one pooling) and computes the
gate per frame, so nothing is broadcast across frames (Vela has no BROADCAST_TO): X3D-XS at
4x160 compiles with all 1354 operators on an Ethos-U55 (``export --target tflite --int8``).

Figures (400 classes, whole model): 3,794,274 parameters, exactly PyTorchVideo's (its model zoo:
3.79 M; the paper: 3.8 M). MACs by :func:`~action_recognition.models.analysis.count_macs`
(convolutions, fc, one per BN element), in GMAC, with conv + fc alone in brackets: ``x3d_xs``
4x160: 0.619 (0.608), ``x3d_s`` 13x160: 2.009 (1.974), ``x3d_m`` 16x256: 6.346 (6.236), 16x224:
4.830 (4.746) (the 5D reference, whose SE runs once per clip: 6.343 at 16x256); the paper's 0.6,
2.0 and 6.2 GFLOPs (and X3D-M's 4.73 at 16x224) are conv + fc MACs: fvcore counts 0.605, 1.963,
6.186 and 4.732 for PyTorchVideo's ``create_x3d``. The rest is ``post_conv`` run on every frame
rather than on the pooled clip (``T - 1`` extra 432x2048 products per window: 0.003, 0.011, 0.053,
0.013; less 0.002 at 256, where ``proj`` runs once instead of per window), and SE's 1x1
convolutions run per frame in the 4D model (0.001 to 0.003). At the hub's 182 crop XS and S cost
0.866 and 2.813 (conv + fc 0.852, 2.767). :data:`X3D_VARIANTS` holds the references.

Preprocessing of PyTorchVideo's Kinetics weights (its torch.hub page): RGB on 0..1, mean
:data:`X3D_MEAN`, std :data:`X3D_STD`; short side resized to the crop and centre-cropped to
182 (XS, S) or 256 (M), the ``default_input_size``; 4 frames every 12th, 13 every 6th, 16 every
5th at 30 fps (:attr:`X3DVariant.frame_stride`). Initialisation as PyTorchVideo's: Kaiming normal
(fan-out) convolutions with zero bias, BN 1/0, ``proj`` normal(0, 0.01); ``zero_init_last``
zeroes each block's ``norm_c`` (SlowFast's training recipe).

The blocks (5D and 4D side by side) are in :mod:`~action_recognition.models.x3d_blocks`; this
module holds the networks, the PyTorchVideo loader and the builders.

Speed of the 4D form (``action-recognition bench``, 16x224², 2 threads, README "Benchmark"; a
2-core AMD EPYC): on ONNX Runtime as fast as the 5D reference (142 ms, fused stem 160, against
153); on OpenVINO's CPU plugin, whose ``Conv3d`` kernels are fast and which runs the temporal
shifts (slices and concatenations along ``B*T``) with reference kernels outside its blocked
layouts, slower: 92 ms (fused stem 85) against 50 in fp32, 45 (43) against 28 in bf16.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field
import math
import os
from typing import Any
from typing import Literal
from typing import TYPE_CHECKING
from typing import TypedDict

from torch import nn
from torch import Tensor
import torch.nn.functional as F

from action_recognition.models.interface import check_clip_frames
from action_recognition.models.interface import new_classifier
from action_recognition.models.layers import Conv3dAs4d
from action_recognition.models.layers import init_video_net_
from action_recognition.models.layers import spatial_mean
from action_recognition.models.registry import PaperReference
from action_recognition.models.registry import register_model
from action_recognition.models.weights import read_state_dict
from action_recognition.models.x3d_blocks import Head
from action_recognition.models.x3d_blocks import HEAD_WIDTH
from action_recognition.models.x3d_blocks import ProjectedPool
from action_recognition.models.x3d_blocks import ResBlock4d
from action_recognition.models.x3d_blocks import ResBlock5d
from action_recognition.models.x3d_blocks import Stage
from action_recognition.models.x3d_blocks import stage_dims
from action_recognition.models.x3d_blocks import Stem4d
from action_recognition.models.x3d_blocks import Stem5d
from action_recognition.models.x3d_blocks import STEM_WIDTH

if TYPE_CHECKING:  # typing_extensions: Required and Unpack are in typing from Python 3.11 only
    from typing_extensions import Required
    from typing_extensions import Unpack

__all__ = [
    'X3D_MEAN', 'X3D_STD', 'X3DVariant', 'X3D_VARIANTS', 'X3DArgs', 'X3DLoadReport', 'X3D',
    'X3D5d', 'load_pytorchvideo_weights', 'x3d_xs', 'x3d_s', 'x3d_m',
    'x3d_m_5d',
]

X3D_MEAN = (0.45, 0.45, 0.45)
X3D_STD = (0.225, 0.225, 0.225)
PretrainedWeights = str | os.PathLike[str] | Mapping[str, Tensor]


def _init_weights(model: nn.Module, *, zero_init_last: bool) -> None:
    """PyTorchVideo's initialisation (see the module docstring)."""
    init_video_net_(model)
    if zero_init_last:
        for name, m in model.named_modules():
            if name.endswith('branch2.norm_c'):
                nn.init.zeros_(m.weight)
class _X3DBase(nn.Module):
    """X3D's blocks and the interface (see the module docstring); ``four_d`` picks the layers.

    Input frames ``[B*T, 3, H, W]`` (the ``T = num_frames`` frames of each clip contiguous),
    output logits ``[B, num_classes]``. ``crop_size`` is PyTorchVideo's ``input_crop_size``: the
    head pools windows of ``ceil(crop_size / 32)`` squared feature positions.
    """

    def __init__(self, *, num_classes: int, num_frames: int, four_d: bool, crop_size: int,
                 default_input_size: tuple[int, int], dropout: float = 0.5,
                 zero_init_last: bool = False, fused_stem: bool = False) -> None:
        super().__init__()
        if num_classes < 1 or num_frames < 1:
            raise ValueError(
                f'num_classes and num_frames must be >= 1, got {num_classes}, {num_frames}')
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f'dropout must be in [0, 1), got {dropout}')
        if crop_size < 32:
            raise ValueError(f'crop_size must be >= 32, got {crop_size}')
        if fused_stem and not four_d:
            raise ValueError('fused_stem is a form of the 4D models (the 5D stem is as published)')
        conv: Any = Conv3dAs4d if four_d else nn.Conv3d
        norm: Any = nn.BatchNorm2d if four_d else nn.BatchNorm3d
        blocks: list[nn.Module] = [Stem4d(fused=fused_stem) if four_d else Stem5d()]
        dim_in = STEM_WIDTH
        for depth, dim_inner, dim_out in stage_dims():
            blocks.append(Stage(ResBlock4d if four_d else ResBlock5d, depth, dim_in,
                                 dim_inner, dim_out))
            dim_in = dim_out
        pool = ProjectedPool(conv, norm, dim_in, dim_inner, math.ceil(crop_size / 32))
        blocks.append(Head(pool, num_classes, dropout))
        self.blocks = nn.ModuleList(blocks)
        self.num_classes = num_classes
        self.num_frames = num_frames
        self.num_features = HEAD_WIDTH
        self.default_input_size = default_input_size
        self.crop_size = crop_size
        _init_weights(self, zero_init_last=zero_init_last)

    @property
    def head(self) -> Head:
        head = self.blocks[5]
        assert isinstance(head, Head)
        return head

    def get_classifier(self) -> nn.Linear:
        """The classifier, ``blocks.5.proj``: ``nn.Linear(2048, num_classes)``."""
        return self.head.proj

    def reset_classifier(self, num_classes: int) -> None:
        """Replace ``proj`` by a fresh one with ``num_classes`` outputs (fine-tuning)."""
        self.head.proj = new_classifier(self.head.proj, num_classes, std=0.01)
        self.num_classes = num_classes

    def _window(self, height: Any, width: Any) -> tuple[int, int]:
        """The head's pool window on a ``height x width`` map, no larger than the map.

        Found by comparisons, so that it is a pair of ints under the converter's ``torch.fx``
        trace too (which decides comparisons of sizes on its example; ``min`` would give the
        size's proxy).
        """
        window = self.head.pool.window
        return (next(k for k in range(window, 0, -1) if height >= k),
                next(k for k in range(window, 0, -1) if width >= k))

    def forward_head(self, features: Tensor, pre_logits: bool = False) -> Tensor:
        """``[B*T, 2048]`` (or ``[B*T, 2048, h', w']``) -> logits ``[B, num_classes]``.

        Each clip's frames are averaged, then ReLU (``post_act``); ``pre_logits`` returns their
        mean over the window positions ``[B, 2048]``; otherwise dropout, that mean and ``proj``.
        """
        if features.dim() == 2:
            features = features.reshape(features.shape[0], features.shape[1], 1, 1)
        channels, height, width = features.shape[1], features.shape[2], features.shape[3]
        clips = features.reshape(-1, self.num_frames, channels * height * width, 1)
        x = clips.mean(1).reshape(-1, channels, height, width)  # [B, 2048, h', w']
        x = self.head.pool.post_act(x)
        if not pre_logits:
            x = self.head.dropout(x)
        pooled = spatial_mean(x).flatten(1)
        return pooled if pre_logits else self.head.proj(pooled)

    def forward_features(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def forward(self, x: Tensor) -> Tensor:
        """Frames ``[B*T, 3, H, W]`` -> logits ``[B, num_classes]``."""
        return self.forward_head(self.forward_features(x))


class X3D(_X3DBase):
    """X3D, 4D-only: every tensor, parameter and buffer of rank 4 or less."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(four_d=True, **kwargs)

    def forward_features(self, x: Tensor) -> Tensor:
        """Frames ``[B*T, 3, H, W]`` -> frame features ``[B*T, 2048]`` (see the module doc)."""
        check_clip_frames(x, self.num_frames)
        for block in list(self.blocks)[:5]:
            x = block(x, self.num_frames)
        pool = self.head.pool
        x = pool.pre_act(pool.pre_norm(pool.pre_conv(x, self.num_frames)))
        window = self._window(x.shape[2], x.shape[3])
        x = spatial_mean(x) if window == tuple(x.shape[2:]) else F.avg_pool2d(x, window, 1)
        x = pool.post_conv(x, self.num_frames)
        return x.flatten(1) if x.shape[2:] == (1, 1) else x


class X3D5d(_X3DBase):
    """X3D on 5D tensors (``nn.Conv3d``, ``BatchNorm3d``), the reference; not 4D-only."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(four_d=False, **kwargs)

    def forward_features(self, x: Tensor) -> Tensor:
        """Frames ``[B*T, 3, H, W]`` -> frame features ``[B*T, 2048]`` (5D inside)."""
        check_clip_frames(x, self.num_frames)
        _, channels, height, width = x.shape
        x = x.reshape(-1, self.num_frames, channels, height, width).transpose(1, 2)
        for block in list(self.blocks)[:5]:
            x = block(x)
        pool = self.head.pool
        x = pool.pre_act(pool.pre_norm(pool.pre_conv(x)))
        x = pool.post_conv(F.avg_pool3d(x, (1, *self._window(x.shape[3], x.shape[4])), 1))
        _, channels, _, height, width = x.shape
        x = x.transpose(1, 2).reshape(-1, channels, height, width)
        return x.flatten(1) if (height, width) == (1, 1) else x

    def forward_clip(self, clip: Tensor) -> Tensor:
        """PyTorchVideo's ``Net.forward``: clips ``[B, 3, T, H, W]`` -> ``[B, num_classes]``."""
        x = clip
        for block in list(self.blocks)[:5]:
            x = block(x)
        head = self.head
        pool = head.pool
        x = pool.pre_act(pool.pre_norm(pool.pre_conv(x)))
        x = F.avg_pool3d(x, (x.shape[2], *self._window(x.shape[3], x.shape[4])), 1)
        x = head.dropout(pool.post_act(pool.post_conv(x)))
        x = head.proj(x.permute(0, 2, 3, 4, 1)).permute(0, 4, 1, 2, 3)
        return F.adaptive_avg_pool3d(x, 1).flatten(1)


# ---------------------------------------------------------------------------------------------
# PyTorchVideo weights.


@dataclass
class X3DLoadReport:
    """What :func:`load_pytorchvideo_weights` loaded (tensor names) and left as it was."""

    source: str
    loaded: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)

    def summary(self) -> str:
        kept = f'; kept the model\'s {", ".join(self.kept)}' if self.kept else ''
        return f'{len(self.loaded)} tensors from {self.source}{kept}'


_CLASSIFIER = ('blocks.5.proj.weight', 'blocks.5.proj.bias')


def _names(keys: list[str]) -> str:
    return ', '.join(keys[:5]) + (f' and {len(keys) - 5} more' if len(keys) > 5 else '')


def load_pytorchvideo_weights(
        model: nn.Module, weights: PretrainedWeights, *,
        classifier: Literal['auto', 'load', 'skip'] = 'auto') -> X3DLoadReport:
    """Load a local PyTorchVideo X3D state dict (``X3D_M.pyth``) into an :class:`X3D`/``X3D5d``.

    ``weights``: a state dict, or a file read with ``torch.load(weights_only=True)`` (a file
    holding pickled objects is refused, nothing in it runs), holding one or a dict with it under
    ``model_state``/``state_dict``/``model`` (``module.`` prefixes are dropped).

    ``classifier``: ``'auto'`` loads ``blocks.5.proj`` when its class count is the model's and
    otherwise keeps the model's (fine-tuning to other classes); ``'load'`` always loads it,
    replacing the model's classifier by one of the file's class count first; ``'skip'`` keeps
    the model's. Raises ``ValueError`` naming missing keys, unexpected keys and wrong shapes
    (the model is left unchanged then); a missing ``num_batches_tracked`` keeps the model's.
    """
    if not isinstance(model, _X3DBase):
        raise TypeError(f'load_pytorchvideo_weights needs an X3D model, got {type(model)}')
    if classifier not in ('auto', 'load', 'skip'):
        raise ValueError(f"classifier must be 'auto', 'load' or 'skip', got {classifier!r}")
    state, source = read_state_dict(
        weights, what='PyTorchVideo X3D weights',
        missing_hint='nothing is downloaded; save the checkpoint (e.g. X3D_M.pyth) there')
    report = X3DLoadReport(source)
    ckpt_classes = state['blocks.5.proj.weight'].shape[0] if _CLASSIFIER[0] in state else None
    take_classifier = classifier == 'load' or (
        classifier == 'auto' and ckpt_classes == model.num_classes)
    if take_classifier and ckpt_classes is not None and ckpt_classes != model.num_classes:
        model.reset_classifier(int(ckpt_classes))
    own = model.state_dict()
    shapes = {key: {tuple(value.shape)} for key, value in own.items()}
    for name, module in model.named_modules():
        if isinstance(module, Conv3dAs4d):  # PyTorchVideo's Conv3d weight, or this layout
            shapes[f'{name}.weight'].add((module.out_channels,
                                          module.in_channels // module.groups,
                                          *module.kernel_size))
    optional = {key for key in own if key.endswith('num_batches_tracked')}
    if not take_classifier:
        optional |= set(_CLASSIFIER)
        report.kept = list(_CLASSIFIER)
    missing = [key for key in own if key not in state and key not in optional]
    unexpected = [key for key in state if key not in own]
    wrong = [f'{key} {tuple(value.shape)} (expected {" or ".join(map(str, shapes[key]))})'
             for key, value in state.items()
             if key in own and tuple(value.shape) not in shapes[key]
             and (take_classifier or key not in _CLASSIFIER)]
    if missing or unexpected or wrong:
        problems = [f'{len(found)} {what}: {_names(found)}' for what, found in
                    (('missing keys', missing), ('unexpected keys', unexpected),
                     ('tensors of the wrong shape', wrong)) if found]
        raise ValueError(f'{source} is not a PyTorchVideo X3D state dict of this model '
                         f'({type(model).__name__}, {model.num_classes} classes): '
                         + '; '.join(problems))
    to_load = {key: value for key, value in state.items()
               if take_classifier or key not in _CLASSIFIER}
    model.load_state_dict(to_load, strict=False)
    report.loaded = sorted(to_load)
    return report


# ---------------------------------------------------------------------------------------------
# The variants and the registered builders.


@dataclass(frozen=True)
class X3DVariant:
    """One registered X3D model.

    Attributes:
        num_frames: PyTorchVideo's clip length; the builder's default is the caller's.
        crop_size: PyTorchVideo's ``input_crop_size`` (training crop; the head's window).
        input_size: the hub's test crop, ``default_input_size``.
        frame_stride: the hub's ``sampling_rate`` (frames at 30 fps).
        reference: the paper's figures and this implementation's counts.
        four_d_only: the registry's flag (only the 5D reference is not).
    """

    num_frames: int
    crop_size: int
    input_size: int
    frame_stride: int
    reference: PaperReference
    four_d_only: bool = True


def _reference(size: str, frames: int, side: int, gmac: float, counted_gmac: float,
               note: str) -> PaperReference:
    return PaperReference(
        paper=f'X3D (Feichtenhofer 2020), Table 3, X3D-{size}', num_classes=400,
        num_frames=frames, input_size=(side, side), params_m=3.8, gmac=gmac,
        counted_params_m=3.79, counted_gmac=counted_gmac, note=note)


_NOTE = (
    "The paper's GFLOPs are the MACs of the convolutions and the fc at crops 160 (XS, S) and "
    "256 (M): fvcore gives 0.605, 1.963 and 6.186 G for PyTorchVideo's create_x3d there (4.73 at "
    '16x224, the training crop of M; 0.84 and 2.73 for XS and S at their 182 test crop). '
    'The counted figures add one MAC per BN element (0.010, 0.034, 0.107) and the frame-wise '
    'post_conv of this implementation (0.003, 0.011, 0.053), and in the 4D models the frame-wise '
    'SE convolutions (0.001, 0.001, 0.003).')
X3D_VARIANTS: dict[str, X3DVariant] = {
    'x3d_xs': X3DVariant(4, 160, 182, 12, _reference('XS', 4, 160, 0.6, 0.619, _NOTE)),
    'x3d_s': X3DVariant(13, 160, 182, 6, _reference('S', 13, 160, 2.0, 2.009, _NOTE)),
    'x3d_m': X3DVariant(16, 224, 256, 5, _reference('M', 16, 256, 6.2, 6.346, _NOTE)),
    'x3d_m_5d': X3DVariant(16, 224, 256, 5, _reference('M', 16, 256, 6.2, 6.343, _NOTE),
                           four_d_only=False),
}
"""Every registered X3D model by name: its clip, crops and paper reference."""


class X3DArgs(TypedDict, total=False):
    """The keyword arguments of every X3D builder."""

    num_classes: Required[int]
    num_frames: Required[int]
    dropout: float  # before proj, default 0.5
    crop_size: int  # PyTorchVideo's input_crop_size: the head's pool window ceil(crop / 32)
    zero_init_last: bool  # zero each block's norm_c, default False
    fused_stem: bool  # 4D models: the stem as one 5x3x3 convolution (Stem4d), default False
    pretrained: PretrainedWeights | None  # a local PyTorchVideo X3D state dict (or file)


def _create_x3d(name: str, *, pretrained: PretrainedWeights | None = None,
                **kwargs: Any) -> _X3DBase:
    variant = X3D_VARIANTS[name]
    unknown = sorted(set(kwargs) - set(X3DArgs.__annotations__))
    if unknown:
        raise TypeError(f'{name}() got unexpected keyword arguments {unknown}')
    kwargs.setdefault('crop_size', variant.crop_size)
    cls = X3D if variant.four_d_only else X3D5d
    model = cls(default_input_size=(variant.input_size, variant.input_size), **kwargs)
    if pretrained is not None:
        load_pytorchvideo_weights(model, pretrained)
    return model


def _registered(builder: Any) -> Any:
    variant = X3D_VARIANTS[builder.__name__]
    return register_model(family='x3d', four_d_only=variant.four_d_only,
                          reference=variant.reference)(builder)


@_registered
def x3d_xs(**kwargs: Unpack[X3DArgs]) -> _X3DBase:
    """X3D-XS (4 frames, crop 160, tested at 182), 4D-only."""
    return _create_x3d('x3d_xs', **kwargs)


@_registered
def x3d_s(**kwargs: Unpack[X3DArgs]) -> _X3DBase:
    """X3D-S (13 frames, crop 160, tested at 182), 4D-only."""
    return _create_x3d('x3d_s', **kwargs)


@_registered
def x3d_m(**kwargs: Unpack[X3DArgs]) -> _X3DBase:
    """X3D-M (16 frames, crop 224, tested at 256), 4D-only."""
    return _create_x3d('x3d_m', **kwargs)


@_registered
def x3d_m_5d(**kwargs: Unpack[X3DArgs]) -> _X3DBase:
    """X3D-M on 5D tensors (``nn.Conv3d``, ``BatchNorm3d``): the reference of ``x3d_m``."""
    return _create_x3d('x3d_m_5d', **kwargs)

"""The network of a training run: built from its spec, initialised, partly frozen.

:func:`build_model` creates the registry's model, loads local ImageNet weights into its 2D-Net
(:func:`load_imagenet`, :func:`load_pretrained`; nothing is downloaded) and freezes what the
config says: a sub-module (``model.freeze_module``) and BatchNorm layers (``model.bn_mode``:
``partial`` or ``frozen``), whose parameters get no gradient; :func:`set_bn_mode` keeps them in
eval mode after every ``model.train()``.
"""

from __future__ import annotations

import logging
from pathlib import Path

from torch import nn

from action_recognition.models import create_model
from action_recognition.models import model_info
from action_recognition.models.inception import InceptionV3Net2d
from action_recognition.models.inception import load_inception_v3_imagenet
from action_recognition.models.resnet import load_resnet_imagenet
from action_recognition.models.weights import read_state_dict
from action_recognition.models.x3d import load_pytorchvideo_weights
from action_recognition.spec import ModelSpec
from action_recognition.training.config import TrainConfig

__all__ = ['build_model', 'load_imagenet', 'load_pretrained', 'set_bn_mode']

LOG = logging.getLogger(__name__)


def build_model(config: TrainConfig, spec: ModelSpec) -> nn.Module:
    """Create the model of ``spec`` and apply the config's pretrained weights and freezing."""
    model = create_model(spec.model, num_classes=spec.num_classes, num_frames=spec.num_frames,
                         **spec.options)
    if config.model.pretrained:
        load_imagenet(model, spec.model, config.model.pretrained,
                      config.model.pretrained_module)
    if config.model.freeze_module:
        for param in model.get_submodule(config.model.freeze_module).parameters():
            param.requires_grad_(False)
    if config.model.bn_mode != 'train':
        for bn in _bn_layers(model, config.model.bn_mode, config.model.bn_module):
            for param in bn.parameters():
                param.requires_grad_(False)
    return model


def load_imagenet(model: nn.Module, name: str, path: str | Path, module: str = '') -> None:
    """ImageNet initialisation of the 2D-Net from a local file (nothing is downloaded).

    ECO-Lite with the Inception 2D-Net takes torchvision ``inception_v3`` weights and CT-Net /
    TSN torchvision ResNet weights, X3D PyTorchVideo's X3D weights (Kinetics), through the zoo's
    own loaders (which map the names and skip the replaced layers); any other model gets
    :func:`load_pretrained` into ``module``.
    """
    if not Path(path).is_file():
        raise FileNotFoundError(f'pretrained weights {path} do not exist')
    family = model_info(name).family
    if family == 'eco_lite' and type(getattr(model, 'net2d', None)) is InceptionV3Net2d:
        LOG.info('ImageNet Inception-V3 weights from %s: %s', path,
                 load_inception_v3_imagenet(model, path))
    elif family == 'ctnet':
        LOG.info('ImageNet ResNet weights from %s: %s', path, load_resnet_imagenet(model, path))
    elif family == 'x3d':
        # PyTorchVideo's X3D layout (5D weights, reshaped for the 4D convolutions); the
        # classifier is kept when the file's class count differs (fine-tuning).
        LOG.info('PyTorchVideo X3D weights from %s: %s', path,
                 load_pytorchvideo_weights(model, path).summary())
    else:
        load_pretrained(model, path, module)


def load_pretrained(model: nn.Module, path: str | Path, module: str = '') -> tuple[int, int]:
    """Load ImageNet (or other) weights from a local file into ``model`` (or a sub-module).

    The file holds a state dict, or a dict with it under ``state_dict``/``model``/
    ``model_state``. Keys match after removing a ``module.`` prefix; tensors of another shape
    (the ImageNet classifier) are skipped. Returns ``(loaded, total)`` counts of the target's
    tensors; raises ``ValueError`` if nothing matches. The file is read with
    ``torch.load(weights_only=True)``: one holding pickled Python objects is refused
    (:class:`~action_recognition.io.checkpoint.UnsafeCheckpointError`, nothing in it
    runs), a corrupt one is a :class:`~action_recognition.io.checkpoint.CheckpointError`.
    """
    state, _ = read_state_dict(path, what='pretrained weights',
                               missing_hint='nothing is downloaded; save a state dict there')
    target = model.get_submodule(module) if module else model
    own = target.state_dict()
    usable = {k: v for k, v in state.items() if k in own and tuple(v.shape) == tuple(own[k].shape)}
    if not usable:
        raise ValueError(f'none of the {len(state)} tensors in {path} fit '
                         f'{module or "the model"} (example keys: {list(state)[:3]} vs '
                         f'{list(own)[:3]})')
    target.load_state_dict(usable, strict=False)
    LOG.info('loaded %d of %d tensors of %s from %s', len(usable), len(own),
             module or 'the model', path)
    return len(usable), len(own)


def _bn_layers(model: nn.Module, mode: str, scope: str) -> list[nn.Module]:
    """The BatchNorm layers ``mode`` freezes: all in ``scope`` (frozen), all but the first
    (partial)."""
    root = model.get_submodule(scope) if scope else model
    layers: list[nn.Module] = [
        m for m in root.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if mode == 'partial':
        return layers[1:]
    if mode == 'frozen':
        return layers
    return []


def set_bn_mode(model: nn.Module, config: TrainConfig) -> None:
    """After ``model.train()``: put frozen BN layers and the frozen sub-module in eval mode."""
    if config.model.freeze_module:
        model.get_submodule(config.model.freeze_module).eval()
    for bn in _bn_layers(model, config.model.bn_mode, config.model.bn_module):
        bn.eval()

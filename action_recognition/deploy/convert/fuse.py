"""Fusions of the converted graph that runtimes and NPUs run better, each exact.

:func:`fuse_input_stems`: a ``1 x kh x kw`` convolution of the network's input followed directly
by a depthwise ``kt x 1 x 1`` one (X3D's stem: PyTorchVideo's ``Conv2plus1d``, ``conv_t`` then
``conv_xy``) becomes one ``kt x kh x kw`` convolution: a ``Conv2d`` on the ``kt`` shifted copies
of the input frames stacked on channels
(:func:`~action_recognition.models.compose.stack_clip_taps`), with the weight computed in the
graph from the two layers' weights
(:func:`~action_recognition.models.compose.tap_major_weight`), which stay where they were (the
state dict is unchanged and both still train). The separable pair's temporal convolution runs
on the temporal layout, between two transposes of the largest activation of the network, which
OpenVINO reorders around and RKNN leaves on its CPU at 16x224; the fused form has none, for
``kt`` times the first convolution's MACs. Only at the input, where no runtime has reordered
the frames into a blocked layout yet.
"""

from __future__ import annotations

import operator

from torch import fx
import torch.nn.functional as F

from action_recognition.models.compose import compose_spatial_temporal
from action_recognition.models.compose import stack_clip_taps
from action_recognition.models.compose import tap_major_weight
from action_recognition.models.compose import tap_offsets
from action_recognition.models.layers import Conv3dAs4d

__all__ = ['fuse_input_stems']

_RESHAPES = {'reshape', 'view', 'contiguous'}


def _from_input(node: fx.Node) -> bool:
    """Whether ``node`` is a placeholder, or reshapes of one."""
    while node.op == 'call_method' and node.target in _RESHAPES:
        source = node.args[0]
        if not isinstance(source, fx.Node):
            return False
        node = source
    return node.op == 'placeholder'


def _conv_call(gm: fx.GraphModule, node: object) -> Conv3dAs4d | None:
    """The :class:`Conv3dAs4d` that ``node`` calls as ``conv(x, num_frames)``, if it does."""
    if not isinstance(node, fx.Node) or node.op != 'call_module' or len(node.args) != 2:
        return None
    module = gm.get_submodule(str(node.target))
    return module if isinstance(module, Conv3dAs4d) else None


def fuse_input_stems(gm: fx.GraphModule) -> list[tuple[str, str]]:
    """Fuse every input stem of ``gm`` (see the module docstring) in place; the fused pairs'
    module paths."""
    fused: list[tuple[str, str]] = []
    for node in list(gm.graph.nodes):
        spatial = _conv_call(gm, node)
        if spatial is None or len(node.users) != 1:
            continue
        user = next(iter(node.users))
        temporal = _conv_call(gm, user)
        x, num_frames = node.args
        if (temporal is None or user.args != (node, num_frames) or not isinstance(x, fx.Node)
                or not isinstance(num_frames, int) or not _from_input(x)):
            continue
        try:
            compose_spatial_temporal(spatial, temporal)
        except ValueError:
            continue
        with gm.graph.inserting_before(user):
            weight = gm.graph.call_function(tap_major_weight, (
                gm.graph.get_attr(f'{node.target}.weight'),
                gm.graph.get_attr(f'{user.target}.weight'), temporal.kernel_size[0]))
            stacked = gm.graph.call_function(stack_clip_taps, (x, tap_offsets(temporal),
                                                               num_frames))
            y = gm.graph.call_function(F.conv2d, (stacked, weight), {
                'stride': spatial.stride[1:], 'padding': spatial.padding[1:],
                'dilation': spatial.dilation[1:]})
            if temporal.bias is not None:
                bias = gm.graph.call_method('reshape', (
                    gm.graph.get_attr(f'{user.target}.bias'), (1, -1, 1, 1)))
                y = gm.graph.call_function(operator.add, (y, bias))
        user.replace_all_uses_with(y)
        gm.graph.erase_node(user)
        gm.graph.erase_node(node)
        fused.append((str(node.target), str(user.target)))
    if fused:
        gm.graph.lint()
        gm.recompile()
    return fused

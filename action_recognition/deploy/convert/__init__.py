"""Convert a 3D CNN into an exact 4D-only model: :func:`to_4d`.

The model is traced with ``torch.fx`` and its graph rewritten so that no tensor of rank 5 and no
3D operator remains, without retraining and without a change in its outputs:

- A clip input ``[B, C, T, H, W]`` becomes frames ``[B*T, C, H, W]`` (:func:`fold_input`); a 5D
  output comes back folded the same way; pooled or flattened outputs are unchanged. A model that
  takes frames and makes 5D tensors itself (``view`` to ``[B, T, C, H, W]``, then
  ``permute(0, 2, 1, 3, 4)``) keeps its input; that entry into 5D, and the way back, cost nothing.
- Tracing runs the example input alongside (:class:`_ConcreteTracer`), so checks on *shapes* in
  ``forward`` (``if x.dim() != 4: raise``) are decided by the example; the converted model is
  specialised to the example's clip length and frame size, while the batch size stays free.
  ``torch.nn`` layers and subclasses that keep their ``forward`` (torchvision's
  ``Conv3DSimple(nn.Conv3d)``) are leaves.
- Every 5D value of the graph is tracked with its static shape (shape propagation) in one of two
  4D representations:

  * *frames*: the clip ``[B, C, T, H, W]`` stored as ``[B*T, C, H, W]``;
  * *merged*: any 5D tensor ``[s0, s1, s2, s3, s4]`` stored as ``[s0*s1, s2, s3, s4]`` (what a
    reshape of frames into ``[B, T, C, H, W]`` gives; a permute ``(0, 2, 1, 3, 4)`` turns one
    representation into the other for free).

- Rewritten: ``Conv3d`` (any kernel, stride, padding, dilation, groups) ->
  :class:`~action_recognition.models.layers.Conv3dAs4d`; ``BatchNorm3d`` -> ``BatchNorm2d``
  (eval and train); ``MaxPool3d``/``AvgPool3d``/``AdaptiveAvgPool3d``/``AdaptiveMaxPool3d``
  (modules or functionals) and ``Dropout3d`` -> :mod:`~action_recognition.models.layers3d_as_4d`;
  element-wise operations and activations (with broadcasting, e.g. squeeze-excitation),
  residual additions, concatenation on channels, reshape/view/flatten/squeeze/unsqueeze/
  unflatten, permutes that keep the batch first (e.g. ``(0, 2, 1, 3, 4)`` and channels-last
  ``(0, 2, 3, 4, 1)``, as pytorchvideo's heads use around their ``Linear``), ``Linear`` and
  ``LayerNorm`` on the last axis, softmax along an axis, ``size``/``shape``,
  ``mean``/``sum``/``amax`` over space-time, and parameters or buffers of shape
  ``[1, C, T, H, W]`` (stored as ``[C, T, H, W]``). Operations that never see a 5D tensor (2D
  layers, ``Linear`` heads, dropout) are kept as they are.
- Anything else that touches a 5D tensor raises :class:`ConversionError` naming the graph node,
  its operation, the module it sits in and its source line; nothing is converted approximately.
  After conversion the result is checked against the original on the example input at twice its
  batch size (so a batch size baked into a reshape is caught) and for tensors of rank 5.

:func:`export_onnx_4d` exports a converted model (through the package's one exporter,
:func:`~action_recognition.deploy.onnx_export.export_graph`) and runs the rank-4 proof
(:func:`check_onnx_4d_only`, the same proof as ``action-recognition export``).

The modules, by concern:

- :mod:`~action_recognition.deploy.convert.trace`: the ``torch.fx`` trace run alongside the
  example, and the static shape of every node;
- :mod:`~action_recognition.deploy.convert.layout`: the two 4D representations of a 5D value,
  node helpers, folding clips into frames;
- :mod:`~action_recognition.deploy.convert.rewrite`: the pass over the graph and what is
  supported; :mod:`~action_recognition.deploy.convert.rules`: the rewrite of each kind of
  operation;
- :mod:`~action_recognition.deploy.convert.fuse`: fusions of the converted graph (a separable
  input stem as one convolution);
- :mod:`~action_recognition.deploy.convert.verify`: the check against the original;
- :mod:`~action_recognition.deploy.convert.onnx_4d`: the ONNX export and its proof.
"""

from __future__ import annotations

from torch import fx
from torch import nn
from torch import Tensor

from action_recognition.deploy.convert.fuse import fuse_input_stems
from action_recognition.deploy.convert.layout import ConversionError
from action_recognition.deploy.convert.layout import fold_input
from action_recognition.deploy.convert.layout import unfold_output
from action_recognition.deploy.convert.onnx_4d import check_onnx_4d_only
from action_recognition.deploy.convert.onnx_4d import export_onnx_4d
from action_recognition.deploy.convert.rewrite import rewrite_graph
from action_recognition.deploy.convert.trace import trace_with_shapes
from action_recognition.deploy.convert.verify import check_against_original
from action_recognition.deploy.convert.verify import max_abs_diff

__all__ = [
    'ConversionError', 'to_4d', 'fold_input', 'unfold_output', 'check_onnx_4d_only',
    'export_onnx_4d', 'max_abs_diff',
]


def to_4d(model: nn.Module, *, example_input: Tensor, verify: bool = True,
          tolerance: float = 1e-4, fuse_stems: bool = True) -> fx.GraphModule:
    """An exact 4D-only copy of ``model`` (which is left unchanged).

    Args:
        model: any ``nn.Module`` that ``torch.fx`` can trace, taking one tensor.
        example_input: an input of the original model, e.g. a clip ``[B, C, T, H, W]`` (or
            frames ``[B*T, C, H, W]`` for a model that folds them into 5D itself). The
            converted model is specialised to its clip length and frame size; the batch size
            stays free.
        verify: compare the converted model with the original (eval mode, the example input at
            twice its batch size) and check that it never makes a tensor of rank 5.
        tolerance: largest difference allowed by ``verify``, relative to
            ``max(1, max |output|)``.
        fuse_stems: run a separable input stem (a ``1 x kh x kw`` convolution of the input,
            then a depthwise ``kt x 1 x 1`` one: X3D's) as one convolution
            (:func:`~action_recognition.deploy.convert.fuse.fuse_input_stems`; exact, ``kt``
            times the first convolution's MACs, no transposes).

    Returns:
        A ``torch.fx.GraphModule`` in the original's train/eval mode that takes
        :func:`fold_input` of the original's input (a 5D clip as frames ``[B*T, C, H, W]``) and
        returns the original's outputs, 5D outputs ``[B, C, T, H, W]`` as ``[B*T, C, H, W]``.
        Weights are copied (rank <= 4 storage).

    Note:
        Layers keep their train/eval behaviour (``BatchNorm2d`` in train mode uses batch
        statistics exactly as ``BatchNorm3d`` did). As with any ``torch.fx`` trace, a functional
        call given ``self.training`` (``F.dropout(x, p, self.training)``) keeps the mode the
        model had when it was converted.

    Raises:
        ConversionError: an operation cannot be converted exactly (the message names the graph
            node, its operation, module path and source line), or verification failed.
    """
    if not isinstance(example_input, Tensor):
        raise TypeError(f'example_input must be a tensor, got {type(example_input).__name__}')
    converted = rewrite_graph(trace_with_shapes(model, example_input))
    if fuse_stems:
        fuse_input_stems(converted)
    if verify:
        check_against_original(model, converted, example_input, tolerance)
    return converted

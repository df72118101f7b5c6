"""Deployment targets: one command writes a model in an accelerator's form, with a report.

``action-recognition export --target onnx|openvino|tflite|rknn``: each target writes the model
in the target's form with the spec beside or inside it, float input and normalisation where the
target needs them, int8 calibrated on clips of the synthetic benchmark (or the user's), and a
:class:`~action_recognition.deploy.targets.report.TargetReport`: operators on the accelerator
against the CPU (from the toolchain's own output), parity with the PyTorch model, file size.
"""

__all__ = ['TARGETS']

TARGETS = ('onnx', 'openvino', 'tflite', 'rknn')

"""Model files: the checkpoint format, ONNX model files and their 4D-only proof.

- :mod:`~action_recognition.io.checkpoint`: training checkpoints and deployable ``.pt`` files
  (read with ``weights_only=True``), and models rebuilt from them.
- :mod:`~action_recognition.io.model_files`: the shipped default model, label files, the spec in
  ONNX metadata.
- :mod:`~action_recognition.io.onnx_check`: the 4D-only proof of an ONNX graph.
"""

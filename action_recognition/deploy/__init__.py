"""Deployment: ONNX export with its checks, fp16/int8 quantisation, and the Conv3d -> 4D converter.

- :mod:`~action_recognition.deploy.onnx_export`: the one ONNX export (:func:`~action_recognition.
  deploy.onnx_export.export_graph`) both below use;
- :mod:`~action_recognition.deploy.export`: ``action-recognition export`` (the checked file,
  its metadata and report); :mod:`~action_recognition.io.quantize` (fp16, int8 QDQ) and
  :mod:`~action_recognition.deploy.calibration` (int8 calibration clips);
- :mod:`~action_recognition.deploy.convert`: a 3D CNN to an exact 4D-only model.
"""

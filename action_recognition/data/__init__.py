"""Data contracts shared by training, offline runs and the node (the bottom layer above the spec).

- :mod:`~action_recognition.data.sampling`: which frames make a clip (dense or TSN segments).
- :mod:`~action_recognition.data.preprocess`: resize, centre crop and on-device normalisation.
- :mod:`~action_recognition.data.images`: camera images (raw and compressed) to RGB arrays, with
  their size checked before anything is decoded.
- :mod:`~action_recognition.data.video`: video files to frames (PyAV, OpenCV fallback).
- :mod:`~action_recognition.data.synth`: the synthetic temporal-actions benchmark (its clip
  generator in ``synth_clips``/``synth_scene``, the data set on disk in ``synth_files``).
- :mod:`~action_recognition.data.clips`: clips prepared exactly as a spec says (the synthetic
  benchmark's, for calibration, evaluation and the demo).
"""

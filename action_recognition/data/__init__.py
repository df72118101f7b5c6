"""Data contracts shared by training, offline runs and the node (the bottom layer above the spec).

- :mod:`~action_recognition.data.sampling`: which frames make a clip (dense or TSN segments).
- :mod:`~action_recognition.data.preprocess`: resize and centre crop on the CPU (no torch);
  :mod:`~action_recognition.data.normalize`: the on-device normalisation (torch).
- :mod:`~action_recognition.data.images`: camera images (raw and compressed) to RGB arrays, with
  their size checked before anything is decoded.
- :mod:`~action_recognition.data.video`: video files to frames (PyAV, OpenCV fallback).
- the synthetic temporal-actions benchmark, by concern: :mod:`~action_recognition.data.
  synth_clips` (the classes, their label maps and the clip generator; its docstring defines the
  actions), :mod:`~action_recognition.data.synth_scene` (what it draws) and
  :mod:`~action_recognition.data.synth_files` (the data set on disk, UCF-101 layout).
- :mod:`~action_recognition.data.clips`: clips prepared exactly as a spec says (the synthetic
  benchmark's, for calibration, evaluation and the demo).
"""

"""Human action recognition for ROS 2 robots with 4D-only video models.

Sub-packages by concern, in layers that import downwards only (README "Architecture"):

- ``cli`` and ``ros``: the ``action-recognition`` command; the ROS 2 node (the only code that
  imports ROS);
- ``node`` and ``bench``: the ROS-free node (parameters, intake, model slot, scheduler, worker,
  diagnostics); benchmarks;
- ``runtime``, ``deploy``, ``training``: the inference pipeline (settings, model file -> backend
  -> recogniser, streams, sources, sinks); export and the 4D converter; training and evaluation;
- ``io``: model files, their spec and 4D-only proof, quantisation, message builders;
- ``models``: the model zoo (pure PyTorch); ``data``: sampling, preprocessing, images, video,
  the synthetic benchmark;
- ``spec``, ``settings``, ``files``, ``serialization``, ``logs``: the bottom layer.
"""

__version__ = '0.1.0'

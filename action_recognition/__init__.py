"""Human action recognition for ROS 2 robots with 4D-only video models.

Sub-packages, by concern (ROS code depends on the core, never the reverse):

- ``models``: the model zoo (pure PyTorch): ECO-Lite with 4D-only 3D-Net blocks, CT-Net, TSN.
- ``inference``: clip buffer, preprocessing, backends (PyTorch, ONNX Runtime), recogniser.
- ``training``: data-set readers, the synthetic benchmark, training and evaluation.
- ``ros``: the ROS 2 node, the only place that imports ROS.
"""

__version__ = '0.1.0'

"""Training: data-set readers, video decoding, augmentation, the synthetic benchmark, training
and evaluation.

Modules are imported where used (``from action_recognition.training.datasets import ...``) so
that importing this package stays cheap.
"""

"""Training: configs, data-set readers, augmentation, the training loop and evaluation."""

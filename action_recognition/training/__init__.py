"""Training: configs, data sets, the training loop and evaluation.

In the order a run uses them: :mod:`.config` (YAML configs and overrides), :mod:`.distributed`
(processes, devices, seeds), :mod:`.data` (splits and loaders; the readers of :mod:`.readers`,
the torch data sets of :mod:`.datasets`, the augmentation of :mod:`.transforms`), :mod:`.model`
(network, pretrained weights, freezing), :mod:`.optim` (optimiser, schedule, mixed precision),
:mod:`.train` (the loop), :mod:`.evaluate` (metrics; ``action-recognition eval``),
:mod:`.state` (checkpoints, resuming, the output folder) and :mod:`.runlog` (progress, logs,
TensorBoard; the plots of :mod:`.plots`).
"""

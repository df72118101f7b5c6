"""The training loop: :func:`train` runs (or resumes) the training a config describes.

Run it with ``action-recognition train`` (:mod:`action_recognition.cli.train`)::

    action-recognition train --config config/training/synthetic_ci.yaml [key=value ...] \\
        [--resume | --force]
    torchrun --nproc_per_node=4 -m action_recognition.cli.train --config FILE [key=value ...]
    torchrun --nnodes=2 --node_rank=R --master_addr=HOST --nproc_per_node=8 \\
        -m action_recognition.cli.train --config FILE

One loop for one CPU, one GPU, several GPUs and several nodes: under ``torchrun``
(``WORLD_SIZE`` > 1) it joins the process group (NCCL on CUDA, gloo on CPU), wraps the model in
DistributedDataParallel, shards the data with a distributed sampler, and only rank 0 logs and
writes files (:mod:`~action_recognition.training.distributed`). ``batch_size`` is the global
batch, split evenly over the processes.

Each epoch: SGD-with-momentum or AdamW steps under a per-step learning-rate schedule (linear
warm-up, then cosine), mixed precision on CUDA, optional gradient clipping
(:mod:`~action_recognition.training.optim`); then an evaluation on the held-out split
(:mod:`~action_recognition.training.evaluate`) and an atomic checkpoint (``last.pt``, then
``best.pt`` when top-1 improves) holding the model spec, weights, optimiser/scheduler/scaler
state, epoch, step, config, metrics (with the best epoch) and RNG state, as tensors and plain
data (it loads with ``torch.load(weights_only=True)``); at the end, ``metrics.json`` and
``model.pt``: the final weights and spec without the training state (the file to deploy or
export) (:mod:`~action_recognition.training.state`).

``--resume`` continues from ``last.pt`` exactly: the data order and the random state of every
epoch derive from ``(seed, epoch, rank)`` alone, so a killed run loses at most the epoch in
progress, and a resumed run ends in the same files as an uninterrupted one, wherever it was
killed: the temporaries of a killed write are removed, a ``best.pt`` that lags behind the best
epoch ``last.pt`` records is restored from it, and a run killed after its last epoch writes its
``metrics.json`` and ``model.pt``. Starting afresh in an ``output_dir`` that holds another run's
checkpoints is refused unless ``force``. Every file is written through a unique temporary and
renamed into place (:mod:`action_recognition.files`). Logs: tqdm progress bars, TensorBoard
(``<output_dir>/tb``), ``metrics.csv``, ``curves.png`` and ``confusion_matrix.png`` of the latest
evaluation (:mod:`~action_recognition.training.runlog`).
"""

from __future__ import annotations

from collections.abc import Callable
import logging
from pathlib import Path
import time
from typing import Any

import torch
from torch import nn
import torch.distributed as dist

from action_recognition.data.normalize import Normalize
from action_recognition.spec import ModelSpec
from action_recognition.training.config import make_spec
from action_recognition.training.config import TrainConfig
from action_recognition.training.data import build_run_data
from action_recognition.training.data import dataset_classes
from action_recognition.training.data import RunData
from action_recognition.training.distributed import DistContext
from action_recognition.training.distributed import epoch_seed
from action_recognition.training.distributed import seed_everything
from action_recognition.training.distributed import setup_distributed
from action_recognition.training.distributed import unwrap
from action_recognition.training.distributed import wrap_model
from action_recognition.training.evaluate import evaluate_model
from action_recognition.training.model import build_model
from action_recognition.training.model import set_bn_mode
from action_recognition.training.optim import Optimisation
from action_recognition.training.runlog import progress
from action_recognition.training.runlog import RunLog
from action_recognition.training.state import check_fresh_output
from action_recognition.training.state import find_resume
from action_recognition.training.state import prepare_output_dir
from action_recognition.training.state import resume_run
from action_recognition.training.state import RunProgress
from action_recognition.training.state import save_checkpoint
from action_recognition.training.state import write_final_outputs

__all__ = ['EpochCallback', 'train']

LOG = logging.getLogger(__name__)

EpochCallback = Callable[[int, dict[str, Any]], None]


def train(config: TrainConfig, *, resume: str | None = None, force: bool = False,
          on_epoch_end: EpochCallback | None = None,
          model_builder: Callable[[ModelSpec], nn.Module] | None = None) -> dict[str, Any]:
    """Run (or resume) the training ``config`` describes; returns the final metrics.

    ``resume``: ``None`` starts afresh; ``'auto'`` continues from ``<output_dir>/last.pt``; any
    other string is a checkpoint path. Starting afresh in an ``output_dir`` that holds another
    run's files (``last.pt``, ``best.pt``, ``model.pt``, ``metrics.json``) is refused
    (:class:`~action_recognition.files.OutputExistsError`) unless ``force``, which deletes them
    once the run is set up. ``on_epoch_end(epoch, row)`` is called on every process
    after each epoch's checkpoint is written (``row``: that epoch's log entry).
    ``model_builder(spec)`` builds the network instead of the registry (experiments and tests;
    a checkpoint of such a run loads only with the same builder).
    Returns ``{'best_top1', 'last': last evaluation metrics, 'history', 'checkpoint', 'spec'}``
    (``checkpoint``: the final ``last.pt``).
    """
    # Processes, the output folder, what to resume from.
    config.validate()
    ctx = setup_distributed(config.device)
    if config.threads:
        torch.set_num_threads(config.threads)
    out_dir = Path(config.output_dir)
    local_batch = ctx.local_batch(config.batch_size)
    resume_path = find_resume(resume, out_dir)
    previous = check_fresh_output(out_dir, force=force) if resume_path is None else []

    # Data, model and optimiser: the same initial weights on every process (DDP also
    # broadcasts rank 0's).
    seed_everything(config.seed)
    spec = make_spec(config, dataset_classes(config))
    data = build_run_data(config, spec, ctx, local_batch=local_batch)
    model = (model_builder(spec) if model_builder is not None
             else build_model(config, spec)).to(ctx.device)
    normalize = Normalize.from_spec(spec).to(ctx.device)
    optim = Optimisation.create(model, config, data.steps_per_epoch, ctx.device)
    criterion = nn.CrossEntropyLoss(label_smoothing=config.optim.label_smoothing)

    run = RunProgress()
    if resume_path is not None:
        run = resume_run(resume_path, spec, model, optim, ctx.device)
        if ctx.is_main:
            LOG.info('resuming from %s after epoch %d (step %d)', resume_path, run.epoch,
                     run.step)
    start_epoch = run.epoch
    model = wrap_model(model, ctx)
    if ctx.is_main:
        prepare_output_dir(out_dir, config, previous=previous, resumed_from=resume_path,
                           run=run)
        _log_setup(spec, model, data, ctx)
    # Resumed: TensorBoard hides the events a killed run logged after the checkpoint's step.
    log = RunLog(out_dir, enabled=ctx.is_main, tensorboard=config.tensorboard,
                 purge_step=run.step + 1 if resume_path is not None else 0,
                 title=f'{spec.model} ({config.dataset.format})', labels=spec.label_names)

    # The epochs: train, evaluate, checkpoint.
    try:
        for epoch in range(start_epoch, config.epochs):
            row = _epoch(epoch, model, data, optim, criterion, normalize, spec, config=config,
                         ctx=ctx, log=log, run=run, out_dir=out_dir)
            if on_epoch_end is not None:
                on_epoch_end(epoch + 1, row)
    finally:
        log.close()

    # The run's outputs.
    if ctx.is_main and run.last_metrics:
        if start_epoch >= config.epochs and run.history:
            # Resumed after the last epoch (killed before the run's outputs were written):
            # write them from the checkpoint, as the last epoch would have.
            log.write_reports(run.history, run.last_metrics)
        write_final_outputs(out_dir, run, spec)
    return {'best_top1': run.best_top1, 'last': run.last_metrics, 'history': run.history,
            'checkpoint': str(out_dir / 'last.pt'), 'spec': spec}


def _epoch(epoch: int, model: nn.Module, data: RunData, optim: Optimisation,
           criterion: nn.Module, normalize: Normalize, spec: ModelSpec, *, config: TrainConfig,
           ctx: DistContext, log: RunLog, run: RunProgress, out_dir: Path) -> dict[str, Any]:
    """One epoch: train, evaluate when it is due, checkpoint (the main process); its log row."""
    started = time.monotonic()
    # Everything random in this epoch derives from (seed, epoch, rank): exact resumes.
    seed_everything(epoch_seed(config.seed, epoch, ctx.rank))
    data.start_epoch(epoch, seed=epoch_seed(config.seed + 1, epoch, ctx.rank))
    row = _train_epoch(model, data, optim, criterion, normalize, config=config, ctx=ctx,
                       log=log, epoch=epoch, step=run.step)
    if (epoch + 1) % config.eval_every == 0 or epoch + 1 == config.epochs:
        run.last_metrics = _evaluate(model, data, normalize, spec, config=config, ctx=ctx,
                                     amp=optim.amp)
        row.update(val_loss=run.last_metrics['loss'], val_top1=run.last_metrics['top1'],
                   val_top5=run.last_metrics['top5'])
    row['epoch_seconds'] = time.monotonic() - started
    improved = run.record(row)
    if ctx.is_main:
        save_checkpoint(out_dir, spec=spec, model=unwrap(model), optim=optim, config=config,
                        run=run, improved=improved)
        log.end_epoch(run.history, run.last_metrics, epochs=config.epochs)
    if ctx.distributed:
        dist.barrier()
    return row


def _train_epoch(model: nn.Module, data: RunData, optim: Optimisation, criterion: nn.Module,
                 normalize: Normalize, *, config: TrainConfig, ctx: DistContext, log: RunLog,
                 epoch: int, step: int) -> dict[str, Any]:
    """One pass over the training split from optimiser step ``step``; returns the epoch's log
    row: ``epoch`` (1-based), ``step`` after it, ``lr``, and the mean loss and top-1 over all
    processes."""
    model.train()
    set_bn_mode(unwrap(model), config)
    loss_sum = torch.zeros((), device=ctx.device)
    correct = torch.zeros((), device=ctx.device)
    seen = 0
    bar = progress(data.train_loader, enable=config.progress and ctx.is_main,
                   desc=f'epoch {epoch + 1}/{config.epochs}')
    for clips, labels in bar:
        x = normalize(clips.to(ctx.device, non_blocking=True).flatten(0, 1))
        labels = labels.to(ctx.device, non_blocking=True)
        with torch.autocast(ctx.device.type, enabled=optim.amp):
            logits = model(x)
            loss = criterion(logits, labels)
        if not torch.isfinite(loss):
            raise FloatingPointError(
                f'loss is {loss.item()} at epoch {epoch + 1}, step {step}; lower '
                f'optim.lr (now {config.optim.lr}) or set optim.clip_grad_norm')
        optim.step(loss, model)
        step += 1
        loss_sum += loss.detach() * labels.shape[0]
        correct += (logits.detach().argmax(dim=1) == labels).sum()
        seen += labels.shape[0]
        if ctx.is_main and step % config.log_every == 0:
            log.train_step(bar, loss=loss.item(), lr=optim.lr, step=step)
    totals = torch.stack([loss_sum, correct, torch.tensor(float(seen), device=ctx.device)])
    if ctx.distributed:
        dist.all_reduce(totals)
    return {'epoch': epoch + 1, 'step': step, 'lr': optim.lr,
            'train_loss': (totals[0] / totals[2]).item(),
            'train_top1': (totals[1] / totals[2] * 100).item()}


def _evaluate(model: nn.Module, data: RunData, normalize: Normalize, spec: ModelSpec, *,
              config: TrainConfig, ctx: DistContext, amp: bool) -> dict[str, Any]:
    """The metrics of the held-out split, gathered from every process."""
    batches = progress(data.val_loader, enable=config.progress and ctx.is_main, desc='eval')
    return evaluate_model(unwrap(model), batches, spec, normalize=normalize, device=ctx.device,
                          amp=amp)


def _log_setup(spec: ModelSpec, model: nn.Module, data: RunData, ctx: DistContext) -> None:
    n_params = sum(p.numel() for p in model.parameters())
    LOG.info('%s: %d classes, %d parameters, %d training clips (%d steps/epoch), %d '
             'held-out clips, device %s x%d', spec.model, spec.num_classes, n_params,
             data.train_split.size, data.steps_per_epoch, data.val_split.size, ctx.device,
             ctx.world_size)

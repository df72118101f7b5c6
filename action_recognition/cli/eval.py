"""``action-recognition eval``: evaluate a checkpoint on a held-out split."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
import sys

import numpy as np
import torch

from action_recognition.data.preprocess import Normalize
from action_recognition.training.evaluate import compute_metrics
from action_recognition.training.evaluate import format_metrics
from action_recognition.training.evaluate import predict


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--checkpoint', required=True, help='checkpoint file (.pt) to evaluate')
    parser.add_argument('--config', default=None,
                        help="YAML config for the data set (default: the checkpoint's config)")
    parser.add_argument('--output-dir', default=None,
                        help='where to write eval_metrics.json and confusion_matrix.png '
                             '(default: <checkpoint dir>/eval)')
    parser.add_argument('--batch-size', type=int, default=None,
                        help="clips per batch (default: the config's batch_size)")
    parser.add_argument('--device', default=None, help='cpu, cuda, cuda:N (default: config)')
    parser.add_argument('overrides', nargs='*', metavar='key=value',
                        help='config overrides, e.g. dataset.num_clips=2')


def run(args: argparse.Namespace) -> int:
    from action_recognition.io import checkpoint as ckpt
    from action_recognition.training import config as cfg
    from action_recognition.training import plots
    from action_recognition.training import train as training

    try:
        state = ckpt.load_checkpoint(args.checkpoint, 'cpu')
        spec = ckpt.spec_from_checkpoint(state, args.checkpoint)
        if args.config is not None:
            data = cfg.apply_overrides(cfg.read_config_data(args.config), args.overrides)
        else:
            data = cfg.apply_overrides(state.get('config') or {}, args.overrides)
        config = cfg.config_from_dict(data)
        if args.device is not None:
            config.device = args.device
        if config.threads:
            torch.set_num_threads(config.threads)
        model, spec = ckpt.load_model_from_checkpoint(args.checkpoint, 'cpu')
        device = training.resolve_device(config.device)
        dataset = training.build_dataset(config, spec, train=False)
        if tuple(dataset.classes) != spec.label_names:
            raise ValueError(
                f"the data set's classes {list(dataset.classes)[:5]}... do not match the "
                f"checkpoint's labels {list(spec.label_names)[:5]}...")
    except (ValueError, FileNotFoundError, ckpt.CheckpointError) as error:
        print(f'error: {error}', file=sys.stderr)
        return 2
    loader = torch.utils.data.DataLoader(
        dataset.dataset, batch_size=args.batch_size or config.batch_size, shuffle=False,
        num_workers=config.dataset.num_workers, pin_memory=device.type == 'cuda')
    model.to(device)
    normalize = Normalize.from_spec(spec).to(device)
    batches = training.progress(loader, enable=config.progress, desc='eval')
    probs, labels = predict(model, batches, normalize=normalize, device=device,
                            num_frames=spec.num_frames, amp=config.amp)
    metrics = compute_metrics(probs, labels, spec.num_classes)
    out_dir = Path(args.output_dir) if args.output_dir else Path(args.checkpoint).parent / 'eval'
    out_dir.mkdir(parents=True, exist_ok=True)
    metrics['labels'] = list(spec.label_names)
    metrics['checkpoint'] = str(args.checkpoint)
    metrics['dataset'] = cfg.config_to_dict(config)['dataset']
    (out_dir / 'eval_metrics.json').write_text(json.dumps(metrics, indent=1))
    plots.plot_confusion_matrix(
        np.array(metrics['confusion_matrix']), spec.label_names, out_dir / 'confusion_matrix.png',
        title=f'{spec.model}: top-1 {metrics["top1"]:.1f}%')
    print(format_metrics(metrics, spec.label_names))
    print(f'wrote {out_dir / "eval_metrics.json"} and {out_dir / "confusion_matrix.png"}')
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog='action-recognition eval', description=__doc__)
    add_arguments(parser)
    logging.basicConfig(level=logging.INFO, format='%(levelname)s %(name)s: %(message)s')
    return run(parser.parse_args(argv))


if __name__ == '__main__':
    sys.exit(main())

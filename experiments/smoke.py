"""``make smoke-gpu``: one training step and one validation step of each paper config family on one device.

Mask R-CNN 1x (COCO, resized to 1333x800 and padded to 1344x800), UperNet 160k and Semantic FPN 80k (ADE20K,
512x512), ViT-Adapter-S by default (``--arch``), on synthetic data in the real COCO / ADE20K layouts
(``experiments.synthetic``; the COCO images are widened to 1333x800 so the detector sees its real input size).
Each config runs exactly as the paper profile would (its model, heads, optimiser with AMP bf16, pipelines, batch 2
per GPU, mmengine Runner) except: no pre-trained checkpoint, one iteration then validation on one image, no
checkpoint written, the suite's run-directory hooks left out, the Mask R-CNN heads sized for the 3 synthetic
classes (COCO's metric maps labels to the dataset's categories), SyncBN as BN (one process: mmengine reverts it), data
loaders in the main process. On a CPU (``--device cpu``) the AMP wrapper becomes an fp32 ``OptimWrapper``
(``experiments.amp.on_device``; mmengine's AMP wrapper needs a GPU).

Prints one row per config: status, seconds for the whole run (build + train step + validation), the training
loss, the validation metric, peak GPU memory. Exit status 1 if any config failed.

Needs mmdet/mmseg/mmcv with ops (``make install`` or, on a cluster, ``make install-cuda``).

Usage::

    python -m experiments.smoke [--device cuda|cpu] [--arch S] [--configs maskrcnn upernet semfpn] [--work-dir D]
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = ROOT / 'experiments' / 'configs'
FAMILIES = {'maskrcnn': 'maskrcnn_vit_adapter_{}_1x', 'upernet': 'upernet_vit_adapter_{}_160k',
            'semfpn': 'semfpn_vit_adapter_{}_80k'}
COCO_WH = (1333, 800)


def make_data(root: Path) -> dict:
    """Synthetic COCO (2 train, 1 val images at 1333x800) and ADE20K (2 train, 1 val at 512x512) under ``root``."""
    from PIL import Image

    from experiments.synthetic import SyntheticSpec, ensure
    coco = ensure(root / 'coco800', SyntheticSpec(size=COCO_WH[1], train=2, val=1)) / 'coco'
    ade = ensure(root / 'ade512', SyntheticSpec(size=512, train=2, val=1)) / 'ade' / 'ADEChallengeData2016'
    # Widen the square COCO images to 1333x800 (background to the right; boxes and polygons stay valid).
    for split in ('train2017', 'val2017'):
        ann_path = coco / 'annotations' / f'instances_{split}.json'
        ann = json.loads(ann_path.read_text())
        for img in ann['images']:
            if img['width'] == COCO_WH[0]:
                continue
            path = coco / split / img['file_name']
            src = Image.open(path).convert('RGB')
            wide = Image.new('RGB', COCO_WH, tuple(int(c) for c in src.resize((1, 1)).getpixel((0, 0))))
            wide.paste(src, (0, 0))
            wide.save(path, quality=95)
            img['width'], img['height'] = COCO_WH
        ann_path.write_text(json.dumps(ann))
    return dict(coco=coco, ade=ade)


def _loader(cfg_loader, dataset_updates: dict, batch_size: int):
    loader = cfg_loader
    loader.update(batch_size=batch_size, num_workers=0, persistent_workers=False)
    loader.dataset.update(dataset_updates)
    return loader


def smoke_config(stem: str, data: dict, work_dir: Path, device: str) -> dict:
    """Build the paper config ``stem`` with the smoke changes (module docstring), train one step, validate."""
    import torch
    from mmengine.config import Config
    from mmengine.runner import Runner

    from experiments.amp import on_device
    from experiments.compat import patch_mmengine
    from experiments.synthetic import CLASSES

    patch_mmengine()
    cfg = Config.fromfile(str(CONFIGS / f'{stem}.py'))
    notes = on_device(cfg, device)
    cfg.model.backbone.pretrained = None
    cfg.work_dir = str(work_dir / stem)
    cfg.launcher = 'none'
    cfg.randomness = dict(seed=0, deterministic=False)
    cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=1, val_interval=1)
    cfg.custom_hooks = []
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=10 ** 9, save_last=False)
    cfg.default_hooks.logger = dict(type='LoggerHook', interval=1)
    cfg.setdefault('env_cfg', {}).setdefault('dist_cfg', {})['backend'] = 'nccl' if device == 'cuda' else 'gloo'
    if stem.startswith('maskrcnn'):
        root = str(data['coco']) + '/'
        meta = dict(classes=CLASSES)
        cfg.train_dataloader = _loader(cfg.train_dataloader, dict(data_root=root, metainfo=meta), 2)
        cfg.val_dataloader = _loader(cfg.val_dataloader, dict(data_root=root, metainfo=meta), 1)
        cfg.val_evaluator.ann_file = root + 'annotations/instances_val2017.json'
        # CocoMetric maps labels to the dataset's category ids: the heads predict its 3 classes (not COCO's 80).
        cfg.model.roi_head.bbox_head.num_classes = len(CLASSES)
        cfg.model.roi_head.mask_head.num_classes = len(CLASSES)
    else:
        upd = dict(data_root=str(data['ade']))  # ADE20K's own 150 classes; the synthetic labels are 0..3 of them
        cfg.train_dataloader = _loader(cfg.train_dataloader, upd, 2)
        cfg.val_dataloader = _loader(cfg.val_dataloader, upd, 1)
    cfg.test_dataloader = cfg.val_dataloader
    cfg.test_evaluator = cfg.val_evaluator
    if device == 'cuda':
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    runner = Runner.from_cfg(cfg)
    runner.train()
    seconds = time.perf_counter() - t0
    hub = runner.message_hub
    loss = hub.get_scalar('train/loss').current() if 'train/loss' in hub.log_scalars else float('nan')
    metrics = {k[4:]: v.current() for k, v in hub.log_scalars.items() if k.startswith('val/')}
    key = 'coco/bbox_mAP' if stem.startswith('maskrcnn') else 'mIoU'
    row = dict(config=stem, status='ok', seconds=seconds, loss=float(loss), metric=key,
               value=float(metrics.get(key, float('nan'))), iters=runner.iter, notes=notes,
               input=f'{COCO_WH[0]}x{COCO_WH[1]} (padded 1344x800)' if stem.startswith('maskrcnn') else '512x512',
               optim_wrapper=type(runner.optim_wrapper).__name__,
               peak_gib=torch.cuda.max_memory_allocated() / 2 ** 30 if device == 'cuda' else float('nan'))
    if not math.isfinite(row['loss']):
        raise RuntimeError(f'{stem}: training loss is {row["loss"]}')
    if runner.iter != 1:
        raise RuntimeError(f'{stem}: ran {runner.iter} iterations, not 1')
    if key not in metrics:
        raise RuntimeError(f'{stem}: validation gave no {key} (got {sorted(metrics)})')
    return row


def fmt(r: dict) -> str:
    peak = '-' if r.get('peak_gib', float('nan')) != r.get('peak_gib') else f"{r['peak_gib']:.1f}"
    return (f"| {r['config']} | {r.get('input', '')} | {r['status']} | {r.get('seconds', float('nan')):.1f} | "
            f"{r.get('loss', float('nan')):.3f} | {r.get('metric', '')} = {r.get('value', float('nan')):.3f} | "
            f"{peak} | {r.get('optim_wrapper', '')} |")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--device', choices=['cuda', 'cpu'], default=os.environ.get('DEVICE') or 'cuda')
    ap.add_argument('--arch', default='S', choices=['T', 'S', 'B', 'L'])
    ap.add_argument('--configs', nargs='+', default=list(FAMILIES), choices=list(FAMILIES))
    ap.add_argument('--work-dir', type=Path, default=None, help='data and work dirs (default: a temporary folder)')
    ap.add_argument('--json', type=Path, default=None, help='also write the rows here')
    args = ap.parse_args(argv)
    if args.device == 'cpu':
        os.environ['CUDA_VISIBLE_DEVICES'] = ''  # mmengine puts the model on the GPU whenever it sees one
    import torch
    if args.device == 'cuda' and not torch.cuda.is_available():
        print('smoke: --device cuda but torch sees no GPU (use --device cpu / DEVICE=cpu)', file=sys.stderr)
        return 2
    if args.device == 'cuda':
        torch.backends.cudnn.benchmark = True
    tmp = None
    if args.work_dir is None:
        tmp = tempfile.TemporaryDirectory(prefix='vit_adapter_smoke_')
        work = Path(tmp.name)
    else:
        work = args.work_dir.resolve()
    sys.path.insert(0, str(ROOT))
    os.chdir(ROOT)
    data = make_data(work / 'data')
    rows = []
    for fam in args.configs:
        stem = FAMILIES[fam].format(args.arch)
        print(f'\n== smoke: {stem} on {args.device} ==', flush=True)
        try:
            rows.append(smoke_config(stem, data, work / 'work_dirs', args.device))
        except Exception as exc:
            traceback.print_exc()
            rows.append(dict(config=stem, status=f'FAILED: {type(exc).__name__}: {exc}'.replace('|', '/')[:200]))
        if args.device == 'cuda':
            torch.cuda.empty_cache()
    print(f'\nsmoke ({args.device}, torch {torch.__version__}): one train step (batch 2) + validation (1 image) '
          'per config, synthetic data; seconds = build + train + val')
    print('| config | input | status | seconds | train loss | val metric | peak GiB | optim wrapper |')
    print('|---|---|---|---|---|---|---|---|')
    for r in rows:
        print(fmt(r))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    if tmp is not None:
        tmp.cleanup()
    return 0 if all(r['status'] == 'ok' for r in rows) else 1


if __name__ == '__main__':
    sys.exit(main())

"""Synthesise run directories in the experiments' contract format (no training needed).

Layout: ``<root>/<profile>/<grid>/<run>/seed<k>/`` with manifest.json, state.json, config.json (the data-only
config, when one is given), ``<YYYYmmdd_HHMMSS>/vis_data/scalars.json`` (mmengine LocalVisBackend lines, one folder per start) and
final_metrics.json on success.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path


def train_line(step, loss, time=0.5, epoch=None, lr=1e-4, memory=None):
    rec = {'lr': lr, 'data_time': 0.01, 'loss': loss, 'loss_cls': loss / 2, 'time': time}
    if epoch is not None:
        rec['epoch'] = epoch
    rec['iter'] = step
    if memory is not None:
        rec['memory'] = memory
    rec['step'] = step
    return rec


def det_val_line(step, ap):
    return {'coco/bbox_mAP': ap, 'coco/bbox_mAP_50': min(1.0, ap * 1.5), 'coco/bbox_mAP_75': ap * 0.9,
            'coco/bbox_mAP_s': -1.0, 'coco/bbox_mAP_m': ap, 'coco/bbox_mAP_l': ap,
            'coco/segm_mAP': ap * 0.9, 'coco/segm_mAP_50': ap * 1.3, 'coco/segm_mAP_75': ap * 0.8,
            'data_time': 0.02, 'time': 0.1, 'step': step}


def seg_val_line(step, miou):
    return {'aAcc': 80.0, 'mIoU': miou, 'mAcc': miou + 5, 'data_time': 0.02, 'time': 0.1, 'step': step}


def write_run(root, profile, grid, run, seed, *, task='det', state='finished', starts=(), final=None,
              error=None, config=None, raw_tail=None, extra_manifest=None):
    """Write one run directory.

    Args:
        config: The data-only config (a dict, written to config.json; the manifest gets a text stand-in), or
            config text for the manifest only (as runs made before config.json existed).
        starts: One list of scalars records per start (folder timestamps increase with the index).
        raw_tail: Text appended verbatim to the first start's scalars.json (e.g. a truncated line).
    """
    d = Path(root) / profile / grid / run / f'seed{seed}'
    d.mkdir(parents=True, exist_ok=True)
    man = dict(grid=grid, run=run, seed=seed, profile=profile, task=task, overrides={},
               config=(repr(config) if isinstance(config, dict) else config) or '', git_commit='0' * 40, versions={}, command='test', created='2026-11-21T10:00:00')
    man.update(extra_manifest or {})
    (d / 'manifest.json').write_text(json.dumps(man))
    if isinstance(config, dict):
        (d / 'config.json').write_text(json.dumps(config))
    (d / 'state.json').write_text(json.dumps(dict(state=state, job_id='1', updated='now', error=error)))
    for i, recs in enumerate(starts):
        ts = f'20261121_10{i:02d}00'
        vd = d / ts / 'vis_data'
        vd.mkdir(parents=True)
        with open(vd / 'scalars.json', 'w') as f:
            for r in recs:
                f.write(json.dumps(r) + '\n')
            if i == 0 and raw_tail:
                f.write(raw_tail)
        (d / ts / f'{ts}.log').write_text('log\n')
    if final is not None:
        (d / 'final_metrics.json').write_text(json.dumps(final))
    return d


def det_final(ap, time=0.4):
    return {'coco/bbox_mAP': ap, 'coco/bbox_mAP_50': ap * 1.5, 'coco/bbox_mAP_75': ap * 0.9,
            'coco/bbox_mAP_s': -1.0, 'coco/segm_mAP': ap * 0.9, 'coco/segm_mAP_50': ap * 1.3,
            'coco/segm_mAP_75': ap * 0.8, 'train_time_per_iter': time}


def simple_det_run(root, profile, grid, run, seed, ap, n_iter=40, **kw):
    """A finished det run: iteration-based training lines every 10 iters, val every 20."""
    recs = []
    for s in range(10, n_iter + 1, 10):
        recs.append(train_line(s, loss=2.0 / s ** 0.3))
        if s % 20 == 0:
            recs.append(det_val_line(s, ap * s / n_iter))
    kw.setdefault('final', det_final(ap))
    return write_run(root, profile, grid, run, seed, starts=[recs], **kw)


def make_grid_N(root, profile='tiny'):
    """The N grid with every state: see tests/analysis/test_collect.py for what is expected."""
    root = Path(root)
    # N0: two finished seeds (mean +- std)
    simple_det_run(root, profile, 'N', 'N0', 0, 0.10)
    simple_det_run(root, profile, 'N', 'N0', 1, 0.12)
    # N1 seed0: resumed. First start logs 10..30 then dies mid-line; resumed from iter 20 checkpoint:
    # second start logs 30 (overlap, new value) and 40.
    first = [train_line(10, 1.0), train_line(20, 0.9), det_val_line(20, 0.05), train_line(30, 0.8)]
    second = [train_line(30, 0.7), train_line(40, 0.6), det_val_line(40, 0.11)]
    write_run(root, profile, 'N', 'N1', 0, starts=[first, second], final=det_final(0.11),
              raw_tail='{"lr": 0.0001, "data_time": 0.01, "loss": 0.75, "ti')
    simple_det_run(root, profile, 'N', 'N1', 1, 0.13)
    # N2: seed0 failed, seed1 finished
    write_run(root, profile, 'N', 'N2', 0, state='failed', error='RuntimeError: CUDA out of memory',
              starts=[[train_line(10, 1.0)]])
    simple_det_run(root, profile, 'N', 'N2', 1, 0.14)
    # N4: seed0 running, seed1 finished
    write_run(root, profile, 'N', 'N4', 0, state='running', starts=[[train_line(10, 1.0), train_line(20, 0.8)]])
    simple_det_run(root, profile, 'N', 'N4', 1, 0.15)
    # N6: missing (no directory at all)
    return root


def tiny_backbone_config(variant='full', n_interactions=4, attn_type='deformable'):
    """Data-only config (as config.json holds it) with a tiny ViT-Adapter backbone (variant 'baseline': a tiny
    ViTBaseline)."""
    if variant == 'baseline':
        backbone = dict(type='ViTBaseline', arch='tiny', window_attn=True, window_size=4, drop_path_rate=0.0)
    else:
        backbone = dict(type='ViTAdapter', arch='tiny', variant=variant, n_interactions=n_interactions,
                        attn_type=attn_type, window_size=4, norm='BN', drop_path_rate=0.0)
    return dict(model=dict(type='MaskRCNN', data_preprocessor=dict(
        type='DetDataPreprocessor', mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375], bgr_to_rgb=True),
        backbone=dict(backbone, pretrained=None)))


def add_checkpoint(run_dir, config, seed=0):
    """Save a checkpoint of a randomly initialised backbone (mmengine layout: state_dict with backbone.*)."""
    import torch

    from analysis.features import backbone_cfg, build_backbone
    torch.manual_seed(seed)
    model = build_backbone(backbone_cfg(config))
    sd = {f'backbone.{k}': v for k, v in model.state_dict().items()}
    sd['neck.w'] = torch.zeros(1)
    p = Path(run_dir) / 'iter_40.pth'
    torch.save({'meta': {'iter': 40}, 'state_dict': sd}, p)
    (Path(run_dir) / 'last_checkpoint').write_text(str(p))
    return p


def make_grid_N_with_checkpoints(root, profile='tiny'):
    """:func:`make_grid_N` with tiny backbones: N0 (baseline) and N4 (full) seed 1 get checkpoints and config.json."""
    root = make_grid_N(root, profile)
    for run, variant, n in (('N0', 'baseline', 0), ('N4', 'full', 4)):
        cfg = tiny_backbone_config(variant, n)
        d = Path(root) / profile / 'N' / run / 'seed1'
        (d / 'config.json').write_text(json.dumps(cfg))
        add_checkpoint(d, cfg)
    return root


# ------------------------------------------------------------------ seeds of one run with different identities
def run_identity(config, git_commit):
    """Stand-in for the launcher's manifest ``identity``: a hash of the resolved config and the code commit."""
    return hashlib.sha256(json.dumps([config, git_commit], sort_keys=True).encode()).hexdigest()


def schedule_config(max_iters=400, lr=1e-4):
    """A small data-only config (config.json) whose training length and learning rate can differ between seeds."""
    return dict(model=dict(type='MaskRCNN', backbone=dict(type='ViTAdapter', arch='tiny')),
                train_cfg=dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters),
                optim_wrapper=dict(optimizer=dict(type='AdamW', lr=lr)))


def identity_run(root, run, seed, ap, *, grid='N', profile='tiny', max_iters=400, lr=1e-4, commit='a' * 40,
                 identity=True, final=None, versions=None):
    """A finished det run whose manifest carries an identity (``identity=False``: a run made before identities;
    ``identity='...'``: that identity) and whose config.json holds ``max_iters`` and ``lr``."""
    cfg = schedule_config(max_iters, lr)
    man = dict(git_commit=commit, versions=versions or {'torch': '2.13.0'})
    if identity is True:
        man['identity'] = run_identity(cfg, commit)
    elif identity:
        man['identity'] = identity
    kw = {} if final is None else {'final': final}
    return simple_det_run(root, profile, grid, run, seed, ap, config=cfg, extra_manifest=man, **kw)


def make_grid_N_smoke_seed(root, profile='tiny'):
    """Grid N where N0 has an 8-iteration smoke seed (seed 0, AP 0.20) beside two 400-iteration seeds (seeds 1
    and 2, AP 0.795 and 0.815): averaged together they gave 60.3 ± 34.9."""
    identity_run(root, 'N0', 0, 0.20, max_iters=8, profile=profile)
    identity_run(root, 'N0', 1, 0.795, profile=profile)
    identity_run(root, 'N0', 2, 0.815, profile=profile)
    for seed, ap in ((0, 0.80), (1, 0.82), (2, 0.81)):
        identity_run(root, 'N1', seed, ap, profile=profile)
    return Path(root)

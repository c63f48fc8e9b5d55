"""High-level calls for the exploration notebooks (``notebooks/``): each returns data or figures, so a
notebook cell is one call. Settings come from the environment so the tests can point the notebooks at
a synthesised runs root: ``RUNS_ROOT``, ``GRID`` (default ``N``), ``PROFILE`` (default ``tiny``),
``CHECKPOINT`` and ``IMAGES`` (optional).
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch

from analysis import features as F
from analysis.collect import GridResult, collect_grid, print_warnings, runs_root
from analysis.figures import BASELINE_PAIRS, REPO_ROOT, pick_runs
from analysis.layouts import LAYOUTS
from analysis.tables import build_table, model_sizes, to_markdown


def settings() -> dict:
    """The notebook settings from the environment (see module docstring)."""
    return dict(runs_root=str(runs_root()), grid=os.environ.get('GRID', 'N'),
                profile=os.environ.get('PROFILE', 'tiny'), checkpoint=os.environ.get('CHECKPOINT') or None,
                images=os.environ.get('IMAGES') or None)


def load_grid(grid: str, profile: str, root: str | None = None) -> GridResult:
    """Collect a grid and print its run states and warnings."""
    res = collect_grid(grid, profile, root)
    print_warnings(res)
    return res


def tables_markdown(res: GridResult, with_sizes: bool = True) -> str:
    """Every paper table of the grid as Markdown (our values beside the paper's)."""
    sizes = model_sizes(res) if with_sizes else {}
    parts = []
    for lay in LAYOUTS[res.grid]:
        df, notes = build_table(res, lay, sizes)
        parts.append(to_markdown(df, lay, notes, res.profile))
    return '\n\n'.join(parts)


@dataclass
class FourierResult:
    """What :func:`fourier_analysis` computed.

    Attributes:
        curves: model label -> dict(stride8=(freqs, delta), vit_blocks=[(freqs, delta), ...]).
        feats: model label -> forward_intermediates output.
        pictures: (B, H, W, 3) uint8 inputs.
        weights: model label -> where its weights came from.
        images: description of the inputs.
    """

    curves: dict
    feats: dict
    pictures: np.ndarray
    weights: dict
    images: str


def fourier_analysis(res: GridResult | None = None, checkpoint: str | None = None, images: str | None = None,
                     n_images: int = 2, size: int = 64) -> FourierResult:
    """Fourier curves of trained models of a grid, or of tiny random models when there is no checkpoint.

    Order of choice: an explicit ``checkpoint`` (with the data-only ``config.json`` of its run folder); the grid's
    (ViT baseline, ViT-Adapter) pair or any runs with checkpoints; else a tiny ViT baseline and a tiny
    ViT-Adapter with random weights (printed: the curves then say nothing about training).
    """
    models, weights, pics, desc = {}, {}, None, ''
    if checkpoint:
        from pathlib import Path  # noqa: PLC0415

        from experiments import rundir as rd  # noqa: PLC0415
        cfg = rd.read_json(Path(checkpoint).parent / rd.CONFIG_JSON)
        if cfg is None:
            raise FileNotFoundError(f'{Path(checkpoint).parent / rd.CONFIG_JSON} missing: the backbone is rebuilt '
                                    f'from the run\'s data-only config (runs launched before it existed have none; '
                                    f'their config text is never executed)')
        models['checkpoint'], weights['checkpoint'] = F.load_run_backbone(cfg, checkpoint)
    elif res is not None:
        runs = pick_runs(res, list(BASELINE_PAIRS.get(res.grid, ()))) or pick_runs(res)[:2]
        for r in runs:
            models[r.run], weights[r.run] = F.load_run_backbone(r.config, r.checkpoint())
        if runs:
            pics, x, desc = F.inputs_for(runs[0].config, images, n_images, size, REPO_ROOT)
    if not models:
        print('No checkpoint found: building a tiny ViT baseline and a tiny ViT-Adapter with RANDOM weights '
              '(the curves show the untrained architectures, not trained models).')
        torch.manual_seed(0)
        for label, cfg in (('ViT baseline (random)', dict(type='ViTBaseline')),
                           ('ViT-Adapter (random)', dict(type='ViTAdapter', variant='full', norm='BN'))):
            models[label] = F.build_backbone(dict(cfg, arch='tiny', window_size=4, drop_path_rate=0.0))
            weights[label] = 'random init'
    if pics is None:
        pics, x, desc = F.inputs_for(None, images, n_images, size)
    feats = {k: F.intermediates(m, x) for k, m in models.items()}
    curves = {k: F.fourier_curves(f, tuple(x.shape[-2:])) for k, f in feats.items()}
    return FourierResult(curves=curves, feats=feats, pictures=pics, weights=weights, images=desc)

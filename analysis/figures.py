"""Figures of a grid: Fourier analysis of feature maps, stride-8 feature pictures, training curves,
ablation results with the paper's values marked. PNG and PDF, matplotlib Agg (no display needed).

Usage::

    python -m analysis.figures N --profile tiny [--runs-root DIR] [--out DIR] [--images PATH]
    python -m analysis.figures all --profile tiny      # every grid that has runs

Writes ``<out>/<profile>/<grid>/figures/*.{png,pdf}`` (``out`` default ``results/``). Figures are built
on ``matplotlib.figure.Figure`` objects (never pyplot), so they also display in notebooks.
"""
from __future__ import annotations

import argparse
import math
import sys
import textwrap
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib import cm
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from analysis import features as F
from analysis import stats
from analysis.collect import GRIDS, AnalysisError, GridResult, RunRecord, collect_grid, print_warnings
from analysis.layouts import LAYOUTS, Layout
from analysis.tables import RESULTS_DIR, build_table, profile_banner, select_grids

#: Preferred (ViT baseline, ViT-Adapter) run pair per grid for the feature pictures.
BASELINE_PAIRS = {
    'components': ('baseline', 'full'), 'N': ('N0', 'N4'), 'attention': ('global', 'deformable'),
    'main-det': ('maskrcnn_1x_vit_S', 'maskrcnn_1x_vit_adapter_S'),
    'main-seg': ('semfpn_vit_S', 'semfpn_vit_adapter_S'),
}
PI_TICKS = ([0, math.pi / 4, math.pi / 2, 3 * math.pi / 4, math.pi], ['0', 'π/4', 'π/2', '3π/4', 'π'])


def new_figure(w: float, h: float) -> Figure:
    fig = Figure(figsize=(w, h), dpi=110, layout='constrained')
    FigureCanvasAgg(fig)
    return fig


def save(fig: Figure, out_dir: Path, name: str) -> list[Path]:
    """Save a figure as ``name.png`` and ``name.pdf``; returns the paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / f'{name}.png', out_dir / f'{name}.pdf']
    for p in paths:
        fig.savefig(p)
    return paths


def _suptitle(fig: Figure, text: str, profile: str) -> None:
    banner = profile_banner(profile)
    width = max(40, int(fig.get_figwidth() * 13))
    fig.suptitle(textwrap.fill(text, width) + (f'\n{banner}' if banner else ''), fontsize=9)


# ---------------------------------------------------------------- Fourier
def plot_fourier(curves: dict, title: str = '', profile: str = 'paper', ax=None) -> Figure:
    """One delta-log-amplitude curve per model.

    Args:
        curves: label -> (freqs, delta) (numpy, freqs 0..pi).
    """
    fig = ax.figure if ax is not None else new_figure(5, 3.8)
    ax = ax or fig.add_subplot()
    for i, (label, (f, d)) in enumerate(curves.items()):
        ax.plot(f, d, marker='o', ms=3, lw=1.8, label=label, color=cm.tab10(i % 10))
    _fourier_axes(ax)
    ax.legend(fontsize=8)
    if title:
        _suptitle(fig, title, profile)
    return fig


def plot_fourier_depth(block_curves: list, title: str = '', profile: str = 'paper', ax=None,
                       cmap: str = 'viridis') -> Figure:
    """One curve per ViT block, coloured by depth (sequential colormap, colorbar = block index)."""
    fig = ax.figure if ax is not None else new_figure(5.4, 3.8)
    ax = ax or fig.add_subplot()
    cmap_ = matplotlib.colormaps[cmap]
    n = len(block_curves)
    for i, (f, d) in enumerate(block_curves):
        ax.plot(f, d, lw=1.4, color=cmap_(i / max(n - 1, 1)))
    _fourier_axes(ax)
    sm = cm.ScalarMappable(cmap=cmap_, norm=matplotlib.colors.Normalize(1, max(n, 2)))
    fig.colorbar(sm, ax=ax, label='ViT block (depth)')
    if title:
        ax.set_title(title, fontsize=9)
    return fig


def _fourier_axes(ax) -> None:
    ax.set_xticks(*PI_TICKS)
    ax.set_xlim(0, math.pi)
    ax.set_xlabel('frequency (per axis, rad/pixel)')
    ax.set_ylabel('Δ log amplitude')
    ax.grid(alpha=0.3)


# ---------------------------------------------------------------- feature pictures
def plot_feature_maps(images: np.ndarray, maps: dict, title: str = '', profile: str = 'paper') -> Figure:
    """Stride-8 maps as pictures: per image the input, then per model the channel mean and the first
    three principal components as RGB.

    Args:
        images: (B, H, W, 3) uint8 or float in [0, 1] (what the models saw, denormalised).
        maps: label -> (B, C, h, w) feature map.
    """
    b = images.shape[0]
    ncol = 1 + 2 * len(maps)
    fig = new_figure(1.9 * ncol, 2.0 * b + 0.6)
    axes = fig.subplots(b, ncol, squeeze=False)
    for i in range(b):
        axes[i, 0].imshow(images[i])
        axes[i, 0].set_title('input' if i == 0 else '', fontsize=8)
        for j, (label, m) in enumerate(maps.items()):
            axes[i, 1 + 2 * j].imshow(F.channel_mean(m[i]), cmap='magma', interpolation='nearest')
            axes[i, 2 + 2 * j].imshow(F.pca_rgb(m[i]), interpolation='nearest')
            if i == 0:
                axes[i, 1 + 2 * j].set_title(f'{label}\nchannel mean', fontsize=8)
                axes[i, 2 + 2 * j].set_title(f'{label}\nPCA 1-3 as RGB', fontsize=8)
    for a in axes.flat:
        a.set_xticks([])
        a.set_yticks([])
    if title:
        _suptitle(fig, title, profile)
    return fig


# ---------------------------------------------------------------- curves and results
def _main_metric(res: GridResult) -> tuple[str, str]:
    """(raw val key, label) of the grid's headline metric."""
    tasks = {r.task for r in res.runs if r.task}
    return ('mIoU', 'mIoU (%)') if tasks == {'seg'} else ('bbox_mAP', 'box AP (%)')


def plot_training_curves(res: GridResult) -> Figure:
    """Training loss per iteration and the validation metric, one colour per run, one line per seed."""
    key, label = _main_metric(res)
    fig = new_figure(10, 3.8)
    ax_l, ax_v = fig.subplots(1, 2)
    names = list(dict.fromkeys(r.run for r in res.runs))
    styles = ['-', '--', ':', '-.']
    for i, name in enumerate(names):
        col = cm.tab10(i % 10)
        for r in (r for r in res.runs if r.run == name and r.scalars is not None):
            ls = styles[r.seed % len(styles)]
            lab = f'{name} s{r.seed} ({r.state})'
            tr = r.scalars.train
            if 'loss' in tr:
                ax_l.plot(tr.index, tr['loss'], ls, color=col, lw=1.3, marker='.', ms=4, label=lab)
            va = r.scalars.val
            cols = [c for c in va.columns if c.rsplit('/', 1)[-1] == key]
            if cols:
                y = va[cols[0]] * (100 if key != 'mIoU' else 1)
                ax_v.plot(va.index, y, ls, color=col, marker='o', ms=3, lw=1.3, label=lab)
    ax_l.set(xlabel='iteration', ylabel='training loss', title='training loss')
    ax_v.set(xlabel='iteration (validation after it)', ylabel=label, title=f'validation {label}')
    for a in (ax_l, ax_v):
        a.grid(alpha=0.3)
    if ax_l.lines:
        ax_l.legend(fontsize=7, ncol=2)
    if not ax_v.lines:
        ax_v.text(0.5, 0.5, 'no validation lines logged yet', ha='center', va='center', transform=ax_v.transAxes)
    _suptitle(fig, f'{res.grid}: training curves', res.profile)
    return fig


def plot_results(res: GridResult, layout: Layout, sizes: dict | None = None) -> Figure:
    """Our results with the paper's values marked; error bars = the tables' 95% t-intervals over seeds.

    Bars for tables with categorical rows; a line over N for the N ablation. Only the headline
    accuracy columns (APb, APm, mIoU) are plotted; failed/missing runs show no bar and are labelled.
    The error bars are the intervals of :func:`analysis.tables.build_table` (:func:`analysis.stats.mean_ci`):
    a run with one seed has no interval, so its point has no bar, and a note under the axes says so (never a
    fake ±0). When our values are far below the paper's (tiny profile), a second panel shows ours alone.
    """
    df, _ = build_table(res, layout, sizes or {})
    cols = [c for c in layout.cols if c.metric in ('APb', 'APm', 'mIoU') and c.ours]  # headline metrics only
    ours_max = np.nanmax([df[f'{c.name} ours'].max() for c in cols] + [0.0])
    paper_min = np.nanmin([df[f'{c.name} paper'].min() for c in cols] + [np.inf])
    zoom = 0 < ours_max < 0.25 * paper_min
    w = 6.0 if layout.key == 'A2' else min(16.0, max(5.0, len(df) * (0.3 * len(cols) + 0.5) + 2))
    fig = new_figure(w * (1.8 if zoom else 1), 4.3)
    axes = fig.subplots(1, 2) if zoom else [fig.add_subplot()]
    for k, ax in enumerate(axes):
        _draw_results(ax, df, cols, layout, with_paper=(k == 0))
        ax.set_title('ours vs paper' if k == 0 else 'ours only (zoomed)', fontsize=9)
    _suptitle(fig, f'{layout.key} ({res.grid}): ours vs paper', res.profile)
    fig.supxlabel(textwrap.fill(errorbar_note(df, cols), max(60, int(fig.get_figwidth() * 18))), fontsize=7)
    return fig


def errorbar_note(df, cols) -> str:
    """What the error bars of a results figure are, and which points have none."""
    ns = [int(n) for c in cols for n in df[f'{c.name} n'] if n > 0]
    if not ns:
        return 'no finished run'
    if max(ns) == 1:
        return 'one seed per run: no interval exists, so no error bars (launch more seeds for 95% intervals)'
    note = f'error bars: {stats.INTERVAL_NOTE}'
    if min(ns) == 1:
        note += '; points without a bar: one seed, no interval exists'
    return note


def _draw_results(ax, df, cols, layout: Layout, with_paper: bool) -> None:
    x = np.arange(len(df))
    width = 0.8 / max(len(cols), 1)
    for j, c in enumerate(cols):
        ours = df[f'{c.name} ours'].to_numpy(float)
        ci = df[f'{c.name} ci95'].to_numpy(float)
        has_bar = ~np.isnan(ci) & ~np.isnan(ours)
        paper = df[f'{c.name} paper'].to_numpy(float)
        col = cm.tab10(j % 10)
        if layout.key == 'A2':
            xs = np.array([int(lbl.split('=')[1]) for lbl in df['Row']])
            ax.plot(xs, ours, marker='o', color=col, label=f'{c.name} ours')
            if has_bar.any():
                ax.errorbar(xs[has_bar], ours[has_bar], yerr=ci[has_bar], fmt='none', ecolor=col, capsize=3)
            if with_paper:
                ax.plot(xs, paper, ls='--', marker='x', color=col, label=f'{c.name} paper')
            for x_, n in zip(xs, df[f'{c.name} n']):
                if n == 0 and j == 0:
                    ax.annotate('no finished run', (x_, 0), xycoords=('data', 'axes fraction'), xytext=(0, 4),
                                textcoords='offset points', ha='center', fontsize=7, color='gray')
            continue
        pos = x - 0.4 + width * (j + 0.5)
        ax.bar(pos, np.nan_to_num(ours), width, color=col, alpha=0.8, label=f'{c.name} ours')
        if has_bar.any():
            ax.errorbar(pos[has_bar], ours[has_bar], yerr=ci[has_bar], fmt='none', ecolor='black', capsize=2)
        if with_paper:
            ax.scatter(pos, paper, marker='_', s=400 * width, color='black', zorder=3, linewidths=2,
                       label='paper' if j == 0 else None)
        for p_, o, n in zip(pos, ours, df[f'{c.name} n']):
            if n == 0:
                ax.annotate('no run', (p_, 0), xycoords=('data', 'axes fraction'), xytext=(0, 4),
                            textcoords='offset points', rotation=90, ha='center', fontsize=7, color='gray')
            elif math.isnan(o):
                ax.annotate('NaN seed', (p_, 0), xycoords=('data', 'axes fraction'), xytext=(0, 4),
                            textcoords='offset points', rotation=90, ha='center', fontsize=7, color='red')
            else:
                ax.text(p_, o, f'{o:.1f}', ha='center', va='bottom', fontsize=6)
    if layout.key == 'A2':
        ax.set_xlabel('number of interactions N')
    else:
        ax.set_xticks(x, df['Row'], rotation=25 if len(df) > 4 else 0, ha='right' if len(df) > 4 else 'center',
                      fontsize=8)
    ax.set_ylabel('percent')
    ax.grid(axis='y', alpha=0.3)
    ax.legend(fontsize=7, ncol=2)


# ---------------------------------------------------------------- from checkpoints
def pick_runs(res: GridResult, names: list[str] | None = None) -> list[RunRecord]:
    """One run record per run name with a checkpoint and a data-only config (config.json), finished seeds first."""
    chosen = {}
    for r in sorted(res.runs, key=lambda r: r.state != 'finished'):
        if names is not None and r.run not in names:
            continue
        if r.run not in chosen and r.config is not None and r.checkpoint() is not None:
            chosen[r.run] = r
    if names is not None:
        return [chosen[n] for n in names if n in chosen]
    return list(chosen.values())


REPO_ROOT = Path(__file__).resolve().parents[1]


def feature_figures(res: GridResult, out_dir: Path, images: str | None = None, n_images: int = 4,
                    size: int = 128) -> list[Path]:
    """Fourier curves and stride-8 pictures from the grid's checkpoints; warnings for runs without one."""
    runs = pick_runs(res)
    written: list[Path] = []
    without = sorted({r.run for r in res.runs} - {r.run for r in runs})
    old_runs = sorted({r.run for r in res.runs if r.config is None and r.checkpoint() is not None} - {r.run for r in runs})
    if old_runs:
        res.warnings.append(f'{res.grid}: {", ".join(old_runs)} have a checkpoint but no config.json (data-only '
                            f'config; runs launched before it existed): not in the feature figures, their config '
                            f'text is never executed')
        without = [n for n in without if n not in old_runs]
    if without:
        res.warnings.append(f'{res.grid}: no checkpoint for {", ".join(without)}: not in the feature figures')
    if not runs:
        return written
    try:
        pics, x, desc = F.inputs_for(runs[0].config, images, n_images, size, REPO_ROOT)
    except FileNotFoundError as e:
        raise AnalysisError(f'--images: {e}') from e
    feats, weights = {}, {}
    for r in runs:
        try:
            model, weights[r.run] = F.load_run_backbone(r.config, r.checkpoint())
            feats[r.run] = F.intermediates(model, x)
        except Exception as e:  # noqa: BLE001 -- reported by name, other runs still plotted
            res.warnings.append(f'{r.label}: feature extraction failed: {type(e).__name__}: {e}')
    if not feats:
        return written
    by_name = {r.run: r for r in runs}
    labels = {n: f'{n} ({by_name[n].state}, {by_name[n].checkpoint().stem})' for n in feats}
    curves = {labels[n]: F.fourier_curves(f, tuple(x.shape[-2:])) for n, f in feats.items()}
    fig = plot_fourier({n: c['stride8'] for n, c in curves.items()},
                       f'{res.grid}: Fourier analysis of the stride-8 feature maps ({desc})', res.profile)
    written += save(fig, out_dir, 'fourier_stride8')
    fig = new_figure(4.6 * min(len(curves), 3), 3.6 * math.ceil(len(curves) / 3))
    axes = fig.subplots(math.ceil(len(curves) / 3), min(len(curves), 3), squeeze=False).flat
    for ax, (name, c) in zip(axes, curves.items()):
        plot_fourier_depth(c['vit_blocks'], f'{name}: ViT blocks', ax=ax)
    for ax in list(axes):
        ax.set_visible(False)
    _suptitle(fig, f'{res.grid}: Fourier analysis of the ViT blocks (stride 16)', res.profile)
    written += save(fig, out_dir, 'fourier_vit_blocks')
    pair = [n for n in BASELINE_PAIRS.get(res.grid, ()) if n in feats] or list(feats)[:2]
    fig = plot_feature_maps(pics[:min(len(pics), 3)], {labels[n]: feats[n]['stride8'][:3] for n in pair},
                            f'{res.grid}: stride-8 feature maps ({", ".join(pair)})', res.profile)
    written += save(fig, out_dir, 'stride8_features')
    return written


def write_figures(res: GridResult, out_dir: Path, images: str | None = None, n_images: int = 4,
                  size: int = 128, with_features: bool = True) -> list[Path]:
    """Every figure of a grid into ``out_dir``; returns the written paths."""
    written = save(plot_training_curves(res), out_dir, 'training_curves')
    for lay in LAYOUTS[res.grid]:
        if any(c.metric.startswith(('AP', 'mIoU')) for c in lay.cols):
            written += save(plot_results(res, lay), out_dir, f'results_{lay.key}')
    if with_features:
        written += feature_figures(res, out_dir, images, n_images, size)
    return written


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog='python -m analysis.figures', description=__doc__.split('\n\n')[0])
    ap.add_argument('grid', help=f'grid name ({", ".join(GRIDS)}) or "all" (every grid with runs)')
    ap.add_argument('--profile', default='tiny')
    ap.add_argument('--runs-root', default=None, help='runs root (default $RUNS_ROOT or runs/)')
    ap.add_argument('--out', default=None, help='output root (default results/); writes <out>/<profile>/<grid>/figures/')
    ap.add_argument('--images', default=None, help='image file or folder for the feature figures '
                                                   '(default: the run config\'s validation images)')
    ap.add_argument('--n-images', type=int, default=4, help='images averaged in the Fourier curves (default 4)')
    ap.add_argument('--size', type=int, default=128, help='square input size for the feature figures (default 128)')
    ap.add_argument('--no-features', action='store_true', help='skip the checkpoint-based figures')
    args = ap.parse_args(argv)
    try:
        root, grids = select_grids(args.grid, args.profile, args.runs_root)
        out_root = Path(args.out) if args.out else RESULTS_DIR
        for g in grids:
            res = collect_grid(g, args.profile, root)
            written = write_figures(res, out_root / args.profile / g / 'figures', args.images, args.n_images,
                                    args.size, not args.no_features)
            print_warnings(res)
            for p in written:
                print(f'wrote {p}')
    except AnalysisError as e:
        print(f'error: {e}', file=sys.stderr)
        return 2
    return 0


if __name__ == '__main__':
    sys.exit(main())

"""Figures of a grid: Fourier analysis of feature maps, stride-8 feature pictures, training curves,
ablation results with the paper's values marked. PNG and PDF, matplotlib Agg (no display needed).

Usage::

    python -m analysis.figures N --profile tiny [--runs-root DIR] [--out DIR] [--images PATH]
    python -m analysis.figures all --profile tiny      # every grid that has runs

Writes ``<out>/<profile>/<grid>/figures/*.{png,pdf}`` (``out`` default ``results/``). Figures are built
on ``matplotlib.figure.Figure`` objects (never pyplot), so they also display in notebooks.

How every figure reads (the tests check these):

- **A caption** under the axes says what the figure shows and how it was computed (which runs and seeds, which
  metric from which log or file, what the error bars are). The same caption is written beside the figure as
  ``<name>.txt`` and collected with the titles in ``index.md``, so READMEs can quote it (:func:`caption_of`).
- **No empty panels.** A panel with nothing to draw is left out (the layout shrinks) and a note in the caption
  says what is missing and why (e.g. ``N6 seed0: missing``).
- **A curve with one point** is drawn as a point (a marker) and a note says so.
- **No absolute paths** in any text of a figure: runs are named by run and seed, files by their name, folders
  relative to the repository (else ``…/<last folder>``).
- Error bars are the tables' 95% t-intervals (:mod:`analysis.stats`); one-seed points have none.
"""
from __future__ import annotations

import argparse
import math
import re
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib import cm
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.text import Text

from analysis import features as F
from analysis import stats
from analysis.collect import GRIDS, AnalysisError, GridResult, RunRecord, collect_grid, print_warnings
from analysis.layouts import LAYOUTS, Layout
from analysis.tables import RESULTS_DIR, build_table, profile_banner, seed_group, select_grids

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
    """Save a figure as ``name.png`` and ``name.pdf``, and its caption (:func:`caption_of`) as ``name.txt``;
    returns the paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / f'{name}.png', out_dir / f'{name}.pdf']
    for p in paths:
        fig.savefig(p)
    cap = caption_of(fig)
    if cap:
        paths.append(out_dir / f'{name}.txt')
        paths[-1].write_text(cap + '\n')
    return paths


# ---------------------------------------------------------------- captions, notes, paths
CAPTION_GID = 'caption'
CAPTION_FONTSIZE = 7
REPO_ROOT = Path(__file__).resolve().parents[1]
#: An absolute path in a text: ``/a/b...`` at the start or after a space, bracket, quote or ``=`` (not ``s/iter``,
#: ``π/4``, ``<timestamp>/vis_data``).
_ABS_PATH = re.compile(r"""(?<![^\s(\['"=])/[^\s/()\[\],;:'"]+(?:/[^\s/()\[\],;:'"]+)+/?""")


@dataclass
class Caption:
    """What a figure shows and how it was computed, plus notes on what is missing or special."""

    text: str
    notes: list[str] = field(default_factory=list)

    def full(self) -> str:
        return self.text + ''.join(f'\nNote: {n}' for n in self.notes)


def display_path(path: str | Path, roots: tuple = ()) -> str:
    """A path as a figure may show it: relative to one of ``roots`` or the repository, else ``…/<name>``."""
    p = Path(path)
    for root in (*roots, REPO_ROOT):
        try:
            rel = p.relative_to(root)
        except ValueError:
            continue
        return str(rel) if str(rel) != '.' else p.name
    return f'…/{p.name}' if p.is_absolute() else str(p)


def strip_abs_paths(text: str, roots: tuple = ()) -> str:
    """Every absolute path in ``text`` replaced by :func:`display_path`."""
    for root in sorted((str(r) for r in (*roots, REPO_ROOT)), key=len, reverse=True):
        text = text.replace(root + '/', '')
    return _ABS_PATH.sub(lambda m: display_path(m.group(0).rstrip('/'), roots), text)


def caption_of(fig: Figure) -> str:
    """The caption of a figure made here (text and notes, as written to ``<name>.txt``); '' if it has none."""
    cap = getattr(fig, '_analysis_caption', None)
    return cap.full() if cap is not None else ''


def set_caption(fig: Figure, text: str, notes: list[str] | tuple = (), roots: tuple = ()) -> Figure:
    """Put a caption (and notes) under the axes of ``fig``, growing the figure to make room; then drop the panels
    that have nothing to draw (each named in a note) and strip absolute paths from every text of the figure.

    Args:
        text: What the figure shows and how it was computed.
        notes: What is missing (and why), one-point curves, error-bar remarks.
        roots: Folders (e.g. the runs root) that paths are shown relative to.
    """
    notes = [n for n in notes if n]
    for ax in [a for a in fig.axes if not a.has_data() and getattr(a, '_colorbar', None) is None]:
        if not ax.get_visible():
            fig.delaxes(ax)
            continue
        notes.append(f'panel "{ax.get_title() or "untitled"}" left out: nothing to draw')
        fig.delaxes(ax)
    cap = Caption(strip_abs_paths(text, roots), [strip_abs_paths(n, roots) for n in notes])
    fig._analysis_caption = cap
    width = max(60, int(fig.get_figwidth() * 17))
    lines = textwrap.wrap(cap.text, width)
    for n in cap.notes:
        lines += textwrap.wrap(f'Note: {n}', width, subsequent_indent='  ')
    h = (len(lines) * CAPTION_FONTSIZE * 1.3 + 8) / 72  # inches
    fig.set_figheight(fig.get_figheight() + h)
    frac = h / fig.get_figheight()
    if fig.get_layout_engine() is not None:
        fig.get_layout_engine().set(rect=(0, frac, 1, 1 - frac))
    fig.text(0.01, frac - 2 / 72 / fig.get_figheight(), '\n'.join(lines), ha='left', va='top',
             fontsize=CAPTION_FONTSIZE, color='0.2', gid=CAPTION_GID)
    for t in fig.findobj(Text):
        if '/' in t.get_text():
            t.set_text(strip_abs_paths(t.get_text(), roots))
    return fig


def _seeds(recs) -> str:
    """``seed0`` / ``seeds 0, 1, 2`` / ``no seed``."""
    s = [r.seed for r in recs]
    return 'no seed' if not s else f'seed{s[0]}' if len(s) == 1 else 'seeds ' + ', '.join(map(str, s))


def _suptitle(fig: Figure, text: str, profile: str) -> None:
    banner = profile_banner(profile)
    width = max(40, int(fig.get_figwidth() * 13))
    fig.suptitle(textwrap.fill(strip_abs_paths(text), width) + (f'\n{banner}' if banner else ''), fontsize=9)


# ---------------------------------------------------------------- Fourier
FOURIER_METHOD = ('Δ log amplitude (Park & Kim, ICLR 2022; analysis.fourier.relative_log_amplitude): per channel the '
                  '2-D FFT of the feature map cropped to a square, log amplitude averaged over images and channels, '
                  'read along the half diagonal from frequency 0 to π, minus its value at frequency 0')
FOURIER_STRIDE8 = (f'{FOURIER_METHOD}; stride-8 feature map (the adapter\'s, or the ViT baseline\'s), one curve '
                   'per model.')
FOURIER_BLOCKS = (f'{FOURIER_METHOD}; output of every ViT block (tokens as a stride-16 map), one curve per block, '
                  'colour = depth.')
FEATURE_METHOD = ('Rows: images (the input as the models saw it). Per model its stride-8 feature map as the channel '
                  'mean (min-max scaled, magma colormap) and as the first three principal components over channels '
                  'shown as RGB (pixels as samples, each component min-max scaled; analysis.features.pca_rgb).')


def plot_fourier(curves: dict, title: str = '', profile: str = 'paper', ax=None, caption: str | None = None,
                 notes: list[str] | tuple = ()) -> Figure:
    """One delta-log-amplitude curve per model.

    Args:
        curves: label -> (freqs, delta) (numpy, freqs 0..pi).
        caption: Caption of a figure made here (default: the method); ignored when ``ax`` is given.
    """
    own = ax is None
    fig = ax.figure if ax is not None else new_figure(5, 3.8)
    ax = ax or fig.add_subplot()
    for i, (label, (f, d)) in enumerate(curves.items()):
        ax.plot(f, d, marker='o', ms=3, lw=1.8, label=label, color=cm.tab10(i % 10))
    _fourier_axes(ax)
    ax.legend(fontsize=8)
    if title:
        _suptitle(fig, title, profile)
    if own:
        set_caption(fig, caption or FOURIER_STRIDE8, notes)
    return fig


def plot_fourier_depth(block_curves: list, title: str = '', profile: str = 'paper', ax=None,
                       cmap: str = 'viridis', caption: str | None = None) -> Figure:
    """One curve per ViT block, coloured by depth (sequential colormap, colorbar = block index)."""
    own = ax is None
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
    if own:
        set_caption(fig, caption or FOURIER_BLOCKS)
    return fig


def _fourier_axes(ax) -> None:
    ax.set_xticks(*PI_TICKS)
    ax.set_xlim(0, math.pi)
    ax.set_xlabel('frequency (per axis, rad/pixel)')
    ax.set_ylabel('Δ log amplitude')
    ax.grid(alpha=0.3)


# ---------------------------------------------------------------- feature pictures
def plot_feature_maps(images: np.ndarray, maps: dict, title: str = '', profile: str = 'paper',
                      caption: str | None = None, notes: list[str] | tuple = ()) -> Figure:
    """Stride-8 maps as pictures: per image the input, then per model the channel mean and the first
    three principal components as RGB.

    Args:
        images: (B, H, W, 3) uint8 or float in [0, 1] (what the models saw, denormalised).
        maps: label -> (B, C, h, w) feature map.
        caption: Caption (default: the method).
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
    set_caption(fig, caption or FEATURE_METHOD, notes)
    return fig


# ---------------------------------------------------------------- curves and results
_WHY = {'missing': 'missing, no run directory', 'queued': 'queued, not started', 'corrupt': 'corrupt run folder'}


def _main_metric(res: GridResult) -> tuple[str, str]:
    """(raw val key, label) of the grid's headline metric."""
    tasks = {r.task for r in res.runs if r.task}
    return ('mIoU', 'mIoU (%)') if tasks == {'seg'} else ('bbox_mAP', 'box AP (%)')


def _series(res: GridResult, key: str) -> tuple[list, list, list, set]:
    """(loss series, validation series, records with nothing logged, raw validation keys); a series is
    (record, x, y) with NaNs dropped."""
    loss, val, silent, raw = [], [], [], set()
    for r in sorted(res.runs, key=lambda r: r.seed):
        sc, got = r.scalars, False
        if sc is not None and 'loss' in sc.train:
            y = sc.train['loss'].dropna()
            if len(y):
                loss.append((r, y.index.to_numpy(), y.to_numpy()))
                got = True
        cols = [c for c in sc.val.columns if c.rsplit('/', 1)[-1] == key] if sc is not None else []
        if cols:
            y = sc.val[cols[0]].dropna() * (100 if key != 'mIoU' else 1)
            if len(y):
                val.append((r, y.index.to_numpy(), y.to_numpy()))
                raw.add(cols[0])
                got = True
        if not got:
            silent.append(r)
    return loss, val, silent, raw


def _one_point_note(what: str, series: list) -> str:
    ones = [(r, x) for r, x, _ in series if len(x) == 1]
    if not ones:
        return ''
    its = sorted({int(x[0]) for _, x in ones})
    if len(ones) == len(series):
        return (f'{what}: one logged value per seed (at iteration {", ".join(map(str, its))}), drawn as points, '
                f'not lines')
    return f'{what}: one logged value, drawn as a point: ' + ', '.join(
        f'{r.run} seed{r.seed} (iteration {int(x[0])})' for r, x in ones)


def _runs_seeds(recs) -> str:
    """``N0 seeds 0, 1; N1 seed0 (running)``: seeds per run, states named when not finished."""
    out = []
    for run in dict.fromkeys(r.run for r in recs):
        rs = [r for r in recs if r.run == run]
        odd = [f'seed{r.seed} {r.state}' for r in rs if r.state != 'finished']
        out.append(f'{run} {_seeds(rs)}' + (f' ({", ".join(odd)})' if odd else ''))
    return '; '.join(out)


def plot_training_curves(res: GridResult) -> Figure:
    """Training loss per iteration and the validation metric, one colour per run, one line per seed.

    A panel with nothing logged is left out (a note says so); a seed with one logged value is a point (a note
    says so); seeds with nothing logged are named in a note with their state.
    """
    key, label = _main_metric(res)
    loss, val, silent, raw = _series(res, key)
    colour = {n: cm.tab10(i % 10) for i, n in enumerate(dict.fromkeys(r.run for r in res.runs))}
    styles = ['-', '--', ':', '-.']
    panels = [(s, t, y) for s, t, y in ((loss, 'training loss', 'training loss'),
                                        (val, f'validation {label}', label)) if s]
    fig = new_figure(5.2 * len(panels) if panels else 7, 3.8 if panels else 1.2)
    axes = fig.subplots(1, len(panels), sharex=True, squeeze=False)[0] if panels else []
    for ax, (series, title, ylabel) in zip(axes, panels):
        for r, x, y in series:
            lab = f'{r.run} s{r.seed} ({r.state})'
            col = colour[r.run]
            if len(x) == 1:
                ax.plot(x, y, ls='none', marker='o', ms=6, color=col, label=lab)
            else:
                ax.plot(x, y, styles[r.seed % len(styles)], color=col, lw=1.3, marker='.' if series is loss else 'o',
                        ms=4 if series is loss else 3, label=lab)
        ax.set(xlabel='iteration' + (' (validation after it)' if series is val else ''), ylabel=ylabel)
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3)
    if len(axes):
        axes[0].legend(fontsize=7, ncol=2)
    else:
        fig.text(0.5, 0.5, 'nothing logged yet: no training loss and no validation value', ha='center',
                 va='center', fontsize=9)
    _suptitle(fig, f'{res.grid}: training curves', res.profile)
    raw_key = ', '.join(sorted(raw)) or ('mIoU' if key == 'mIoU' else f'coco/{key}')
    drawn = [r for r in res.runs if r not in silent]
    text = (f'Training loss ("loss" of the train lines) and validation {label} ({raw_key} of the val lines'
            f'{" × 100" if key != "mIoU" else ""}, at the training iteration it follows) of grid {res.grid}, '
            f'profile {res.profile}, read from every start\'s <timestamp>/vis_data/scalars.json of each seed (a '
            f'resumed seed\'s starts merged, the later start\'s value kept). One line per seed, nothing averaged; '
            f'colour = run, line style = seed. Drawn: {_runs_seeds(drawn) or "none"}.')
    notes = [_one_point_note('training loss', loss), _one_point_note(f'validation {label}', val)]
    if not loss:
        notes.append('training-loss panel left out: no seed logged a training loss yet')
    if not val:
        notes.append(f'validation panel left out: no seed logged {raw_key} yet (validation runs every val_interval '
                     f'iterations and at the end)')
    if silent:
        notes.append('not drawn, nothing logged: ' + ', '.join(
            f'{r.run} seed{r.seed} ({_WHY.get(r.state, r.state)})' for r in silent))
    return set_caption(fig, text, notes, roots=(res.root,))


_RAW_METRIC = {'APb': 'coco/bbox_mAP × 100', 'APm': 'coco/segm_mAP × 100', 'mIoU': 'mIoU'}


def plot_results(res: GridResult, layout: Layout, sizes: dict | None = None) -> Figure:
    """Our results with the paper's values marked; error bars = the tables' 95% t-intervals over seeds.

    Bars for tables with categorical rows; a line over N for the N ablation. Only the headline
    accuracy columns (APb, APm, mIoU) are plotted; failed/missing runs show no bar and are labelled.
    The error bars are the intervals of :func:`analysis.tables.build_table` (:func:`analysis.stats.mean_ci`):
    a run with one seed has no interval, so its point has no bar, and a note under the axes says so (never a
    fake ±0). When our values are far below the paper's (tiny profile), a second panel shows ours alone.
    The caption names the seeds averaged per run, the metric and the interval; notes name the rows without a
    finished run and the curves with one point.
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
    runs = list(dict.fromkeys(run for row in layout.rows for run in row.runs.values()))
    used = '; '.join(f'{run} {_seeds(seed_group(res, run).used)}' for run in runs)
    metrics = ', '.join(f'{c.name} ({_RAW_METRIC[c.metric]})' for c in cols)
    text = (f'{metrics} in percent per row of the paper\'s Table {layout.key}, grid {res.grid}, profile '
            f'{res.profile}. Ours = mean over the finished seeds of one identity of each seed\'s final evaluation '
            f'(final_metrics.json), as in table.md (analysis.tables.build_table); paper = the paper\'s number '
            f'({"dashed line, ×" if layout.key == "A2" else "black mark"}). Error bars: {stats.INTERVAL_NOTE} '
            f'(analysis.stats.mean_ci). Seeds averaged: {used}.')
    bar_note = errorbar_note(df, cols)  # the interval itself is in the caption; a note only for points without one
    bar_note = bar_note.removeprefix(f'error bars: {stats.INTERVAL_NOTE}').removeprefix('; ')
    return set_caption(fig, text, [bar_note] + _results_notes(df, cols, layout), roots=(res.root,))


def _results_notes(df, cols, layout: Layout) -> list[str]:
    """Rows with no finished run, NaN means, one-point curves and rows the paper has no number for."""
    notes = []
    empty = [f'{lbl} ({runs})' for lbl, runs, *ns in zip(df['Row'], df['runs'], *(df[f'{c.name} n'] for c in cols))
             if all(n == 0 for n in ns)]
    if empty:
        notes.append('no finished run, nothing drawn: ' + '; '.join(empty))
    for c in cols:
        ours, n = df[f'{c.name} ours'].to_numpy(float), df[f'{c.name} n']
        nan_rows = [lbl for lbl, o, k in zip(df['Row'], ours, n) if k > 0 and math.isnan(o)]
        if nan_rows:
            notes.append(f'{c.name}: mean is NaN (a finished seed logged NaN; see table.md): {", ".join(nan_rows)}')
        ok = ~np.isnan(ours)
        if layout.key == 'A2' and ok.sum() == 1:
            notes.append(f'{c.name} ours: one row with a value ({df["Row"][ok].iloc[0]}), drawn as a point')
        no_paper = [lbl for lbl, p in zip(df['Row'], df[f'{c.name} paper'].to_numpy(float)) if math.isnan(p)]
        if no_paper:
            notes.append(f'{c.name}: the paper gives no number for {", ".join(no_paper)}')
    return notes


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




def feature_figures(res: GridResult, out_dir: Path, images: str | None = None, n_images: int = 4,
                    size: int = 128) -> list[Path]:
    """Fourier curves and stride-8 pictures from the grid's checkpoints; warnings for runs without one (also
    named in the figures' notes)."""
    runs = pick_runs(res)
    written: list[Path] = []
    notes: list[str] = []
    without = sorted({r.run for r in res.runs} - {r.run for r in runs})
    old_runs = sorted({r.run for r in res.runs if r.config is None and r.checkpoint() is not None} - {r.run for r in runs})
    if old_runs:
        res.warnings.append(f'{res.grid}: {", ".join(old_runs)} have a checkpoint but no config.json (data-only '
                            f'config; runs launched before it existed): not in the feature figures, their config '
                            f'text is never executed')
        notes.append(f'not shown: {", ".join(old_runs)} (a checkpoint but no config.json: launched before the '
                     f'data-only config existed)')
        without = [n for n in without if n not in old_runs]
    if without:
        res.warnings.append(f'{res.grid}: no checkpoint for {", ".join(without)}: not in the feature figures')
        gone = [n for n in without if all(r.state == 'missing' for r in res.runs if r.run == n)]
        notes.append(f'not shown (no checkpoint in any seed\'s folder): {", ".join(without)}'
                     + (f'; of these missing (no run directory): {", ".join(gone)}' if gone else ''))
    if not runs:
        return written
    try:
        pics, x, desc = F.inputs_for(runs[0].config, images, n_images, size, REPO_ROOT)
    except FileNotFoundError as e:
        raise AnalysisError(f'--images: {e}') from e
    roots = (res.root,) + ((Path(images).resolve().parent,) if images else ())
    desc = strip_abs_paths(desc, roots)
    feats = {}
    for r in runs:
        try:
            model, _ = F.load_run_backbone(r.config, r.checkpoint())
            feats[r.run] = F.intermediates(model, x)
        except Exception as e:  # noqa: BLE001 -- reported by name, other runs still plotted
            res.warnings.append(f'{r.label}: feature extraction failed: {type(e).__name__}: {e}')
            notes.append(f'not shown: {r.run} (feature extraction failed: {type(e).__name__})')
    if not feats:
        return written
    by_name = {r.run: r for r in runs}
    labels = {n: f'{n} ({by_name[n].state}, {by_name[n].checkpoint().stem})' for n in feats}
    weights = '; '.join(f'{n} seed{by_name[n].seed} {by_name[n].checkpoint().name} ({by_name[n].state})'
                        for n in feats)
    source = (f'Grid {res.grid}, profile {res.profile}. Inputs: {desc}, {size}x{size} pixels, normalised '
              f'with the config\'s data_preprocessor. Weights (backbone.* of each run\'s last checkpoint): {weights}.')
    curves = {labels[n]: F.fourier_curves(f, tuple(x.shape[-2:])) for n, f in feats.items()}
    fig = plot_fourier({n: c['stride8'] for n, c in curves.items()},
                       f'{res.grid}: Fourier analysis of the stride-8 feature maps', res.profile,
                       caption=f'{FOURIER_STRIDE8} {source}', notes=notes)
    written += save(fig, out_dir, 'fourier_stride8')
    ncol, nrow = min(len(curves), 3), math.ceil(len(curves) / 3)
    fig = new_figure(4.6 * ncol, 3.6 * nrow)
    for i, (name, c) in enumerate(curves.items()):  # one panel per model: no empty slots in the grid
        plot_fourier_depth(c['vit_blocks'], f'{name}: ViT blocks', ax=fig.add_subplot(nrow, ncol, i + 1))
    _suptitle(fig, f'{res.grid}: Fourier analysis of the ViT blocks (stride 16)', res.profile)
    set_caption(fig, f'{FOURIER_BLOCKS} {source}', notes, roots)
    written += save(fig, out_dir, 'fourier_vit_blocks')
    pair = [n for n in BASELINE_PAIRS.get(res.grid, ()) if n in feats] or list(feats)[:2]
    k = min(len(pics), 3)
    fig = plot_feature_maps(pics[:k], {labels[n]: feats[n]['stride8'][:k] for n in pair},
                            f'{res.grid}: stride-8 feature maps ({", ".join(pair)})', res.profile,
                            caption=f'{FEATURE_METHOD} The first {k} inputs; models: {", ".join(pair)} (the ViT '
                                    f'baseline and ViT-Adapter pair of the grid when both have a checkpoint). '
                                    f'{source}',
                            notes=notes)
    written += save(fig, out_dir, 'stride8_features')
    return written


INDEX_GENERATED = 'generated by analysis.figures'


def write_index(out_dir: Path, written: list[Path], res: GridResult) -> Path:
    """``index.md`` beside the figures: per figure its name, picture and caption (the ``<name>.txt``)."""
    lines = [f'<!-- {INDEX_GENERATED}; do not edit -->', f'# Figures of grid {res.grid} (profile {res.profile})', '']
    banner = profile_banner(res.profile)
    if banner:
        lines += [f'*{banner}*', '']
    for txt in (p for p in written if p.suffix == '.txt'):
        lines += [f'## {txt.stem}', '', f'![{txt.stem}]({txt.stem}.png) ([pdf]({txt.stem}.pdf))', '']
        lines += [line if not line.startswith('Note: ') else f'- {line}' for line in txt.read_text().splitlines()]
        lines.append('')
    p = out_dir / 'index.md'
    p.write_text('\n'.join(lines))
    return p


def write_figures(res: GridResult, out_dir: Path, images: str | None = None, n_images: int = 4,
                  size: int = 128, with_features: bool = True) -> list[Path]:
    """Every figure of a grid into ``out_dir`` (png, pdf, caption txt) and ``index.md``; returns the written paths."""
    written = save(plot_training_curves(res), out_dir, 'training_curves')
    for lay in LAYOUTS[res.grid]:
        if any(c.metric.startswith(('AP', 'mIoU')) for c in lay.cols):
            written += save(plot_results(res, lay), out_dir, f'results_{lay.key}')
    if with_features:
        written += feature_figures(res, out_dir, images, n_images, size)
    written.append(write_index(out_dir, written, res))
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

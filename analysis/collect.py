"""Collect every run of a grid from its run directories into one tidy table.

Run directory (contract of ``experiments``): ``$RUNS_ROOT/<profile>/<grid>/<run>/seed<k>/`` holding
``manifest.json``, ``state.json``, ``config.json`` (the data-only copy of the resolved config),
``<timestamp>/vis_data/scalars.json`` (one folder per start) and, on success, ``final_metrics.json``.
Only JSON is read: nothing in a run directory is executed or unpickled (the manifest's config text and
``config.py`` are never run; checkpoints load weights-only, see ``experiments/compat.py``). Every problem (missing run, failed run, corrupt log line,
inconsistent state) is reported by name in :attr:`GridResult.warnings`; nothing is silently dropped
or averaged in: only ``finished`` runs enter the means of :mod:`analysis.tables`.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from experiments import rundir as rd
from experiments.grids import GRID_NAMES, get_grid

from analysis.logs import ScalarLog, load_run_scalars, mean_iter_time, peak_memory_mb

REPO_ROOT = rd.REPO_ROOT
GRIDS = GRID_NAMES
#: States of a run as read by ``experiments.rundir.read_run`` (the one reader of run folders).
STATES = rd.READ_STATES

#: mmdet/mmseg metric key (after stripping a ``coco/``-style prefix) -> (canonical name, factor to percent).
_METRIC_MAP = {
    'bbox_mAP': ('APb', 100), 'bbox_mAP_50': ('APb50', 100), 'bbox_mAP_75': ('APb75', 100),
    'bbox_mAP_s': ('APb_s', 100), 'bbox_mAP_m': ('APb_m', 100), 'bbox_mAP_l': ('APb_l', 100),
    'segm_mAP': ('APm', 100), 'segm_mAP_50': ('APm50', 100), 'segm_mAP_75': ('APm75', 100),
    'segm_mAP_s': ('APm_s', 100), 'segm_mAP_m': ('APm_m', 100), 'segm_mAP_l': ('APm_l', 100),
    'mIoU': ('mIoU', 1), 'mAcc': ('mAcc', 1), 'aAcc': ('aAcc', 1),
}
METRICS = tuple(v[0] for v in _METRIC_MAP.values())
#: Keys of final_metrics.json / manifest.json accepted as the model size and cost.
PARAM_KEYS = ('params_m', 'n_params_m', 'params', 'n_params', 'num_params')
FLOPS_KEYS = ('flops_g', 'gflops', 'flops')


class AnalysisError(RuntimeError):
    """Bad input to the analysis (missing runs root, unknown grid, ...); the message says the fix."""


def runs_root(path: str | os.PathLike | None = None) -> Path:
    """The runs root: ``path``, else ``$RUNS_ROOT``, else ``<repo>/runs``."""
    return Path(path or os.environ.get('RUNS_ROOT') or REPO_ROOT / 'runs')


def normalise_metrics(raw: dict, warnings: list[str] | None = None, label: str = '') -> dict[str, float]:
    """Map mmdet/mmseg metric keys to canonical names in percent.

    mmdet's CocoMetric reports fractions (``coco/bbox_mAP`` = 0.447), mmseg's IoUMetric percent
    (``mIoU`` = 46.2); both become percent (``APb`` = 44.7, ``mIoU`` = 46.2). COCO's -1 (no ground
    truth in that area range) becomes NaN with a warning. Other numeric keys are kept unchanged.

    Args:
        raw: Metric dict as mmengine reports it.
        warnings: List to append problems to.
        label: Run name for warnings.
    """
    out = {}
    for k, v in raw.items():
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            continue
        base = k.rsplit('/', 1)[-1]
        if base in _METRIC_MAP:
            name, factor = _METRIC_MAP[base]
            if factor == 100 and v < 0:
                if warnings is not None and not name.endswith(('_s', '_m', '_l')):  # area ranges: often empty
                    warnings.append(f'{label}: {k} = {v} (COCO: no ground truth in range) -> NaN')
                out[name] = math.nan
            else:
                out[name] = float(v) * factor
        else:
            out[k] = float(v)
    return out


@dataclass
class RunRecord:
    """Everything known about one (run, seed)."""

    grid: str
    run: str
    seed: int
    profile: str
    path: Path
    root: Path  # the runs root it was read from (``path`` is under it)
    state: str
    task: str | None = None
    manifest: dict | None = None
    config: dict | None = None  # config.json: the data-only config (None for runs made before it existed)
    final: dict[str, float] = field(default_factory=dict)
    scalars: ScalarLog | None = None
    error: str | None = None
    warnings: list[str] = field(default_factory=list)
    in_grid: bool = True  # False: a folder on disk that the grid (or the expected list) does not define

    @property
    def label(self) -> str:
        return f'{self.grid}/{self.run}/seed{self.seed}'

    def checkpoint(self) -> Path | None:
        """The run's newest checkpoint that is not truncated (``experiments.rundir.newest_checkpoint``), or None."""
        return rd.newest_checkpoint(self.path)

    def row(self) -> dict:
        """One row of the tidy runs table (its ``path``: the run folder relative to ``root``, '/'-separated)."""
        sc = self.scalars
        train = sc.train if sc is not None else pd.DataFrame()
        r = dict(grid=self.grid, run=self.run, seed=self.seed, profile=self.profile, task=self.task,
                 state=self.state, error=self.error, identity=rd.run_identity(self.manifest, self.config),
                 n_starts=len(sc.log_dirs) if sc is not None else 0,
                 last_iter=sc.last_iter if sc is not None else pd.NA,
                 final_loss=float(train['loss'].dropna().iloc[-1]) if 'loss' in train and
                 train['loss'].notna().any() else math.nan)
        for m in METRICS:
            r[m] = self.final.get(m, math.nan)
        r['train_time_per_iter'] = self.final.get('train_time_per_iter', mean_iter_time(train))
        r['max_memory_mb'] = self.final.get('max_memory_mb', peak_memory_mb(train))
        r['max_rss_mb'] = self.final.get('max_rss_mb', math.nan)  # CPU runs: host memory, not GPU memory
        r['params_m'] = _first(self.final, self.manifest, PARAM_KEYS, scale_if_large=True)
        r['flops_g'] = _first(self.final, self.manifest, FLOPS_KEYS, scale_if_large=False)
        r['n_warnings'] = len(self.warnings)
        r['path'] = Path(os.path.relpath(self.path, self.root)).as_posix()
        return r


def _first(final, manifest, keys, scale_if_large):
    for src in (final or {}, manifest or {}):
        for k in keys:
            v = src.get(k)
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                return float(v) / 1e6 if scale_if_large and v > 1e4 else float(v)
    return math.nan


@dataclass
class GridResult:
    """All runs of one grid."""

    grid: str
    profile: str
    root: Path
    runs: list[RunRecord]
    warnings: list[str]

    def table(self) -> pd.DataFrame:
        """The tidy runs table: one row per (run, seed), states finished/running/queued/failed/missing."""
        df = pd.DataFrame([r.row() for r in self.runs])
        if 'last_iter' in df:
            df['last_iter'] = df['last_iter'].astype('Int64')
        return df

    def finished(self) -> list[RunRecord]:
        return [r for r in self.runs if r.state == 'finished']


def load_run(grid: str, run: str, seed: int, profile: str, root: Path, path: Path | None = None) -> RunRecord:
    """Read one run folder with ``experiments.rundir.read_run`` (states, corrupt files, dead lock holders), then its
    scalars logs. Every problem becomes a warning naming the run."""
    path = Path(path) if path is not None else rd.run_dir(root, profile, grid, run, seed)
    info = rd.read_run(path)
    rec = RunRecord(grid=grid, run=run, seed=seed, profile=profile, path=path, root=Path(root), state=info.state,
                    manifest=info.manifest, config=info.config, error=info.error)
    w = rec.warnings
    rec.task = (info.manifest or {}).get('task')
    if info.state == 'missing':
        w.append(f'{rec.label}: missing (no run directory {path})')
        return rec
    if info.state == 'corrupt':
        w.append(f'{rec.label}: corrupt: {info.error}')
        return rec
    rec.scalars = load_run_scalars(path, rec.label)
    w += rec.scalars.warnings
    if info.final is not None:
        rec.final = normalise_metrics(info.final, w, rec.label)
    if info.state == 'failed':
        w.append(f'{rec.label}: failed' + (f': {rec.error}' if rec.error else ' (no error recorded)'))
    elif info.state in ('running', 'queued', 'interrupted', 'not submitted'):
        w.append(f'{rec.label}: {info.state} (last iter {rec.scalars.last_iter}); not in the means')
    w += [f'{rec.label}: {p}' for p in info.problems]
    return rec


def collect_grid(grid: str, profile: str = 'tiny', root: str | os.PathLike | None = None, *,
                 expected: list[tuple[str, int]] | None = None, seeds=None, verbose: bool = False) -> GridResult:
    """Collect every run of a grid.

    Args:
        grid: Grid name (``'components'``, ``'N'``, ``'attention'``, ``'pretrain'``, ``'main-det'``,
            ``'main-seg'``).
        profile: Profile folder under the runs root.
        root: Runs root (default ``$RUNS_ROOT`` or ``runs/``).
        expected: Explicit (run, seed) pairs; default: the grid definition with the seeds found on disk
            (or ``seeds``).
        seeds: Seeds to expect (count or list) when ``expected`` is not given.
        verbose: Print the warnings.

    Raises:
        AnalysisError: The runs root does not exist or the grid is unknown.
    """
    root = runs_root(root)
    if not root.is_dir():
        raise AnalysisError(f'runs root {root} does not exist; pass --runs-root DIR or set RUNS_ROOT '
                            f'(the launcher writes runs to <runs root>/<profile>/<grid>/<run>/seed<k>/)')
    if grid not in GRID_NAMES:
        raise AnalysisError(f'unknown grid {grid!r}; known grids: {", ".join(GRIDS)}')
    warnings: list[str] = []
    gdir = root / profile / grid
    if not gdir.is_dir():
        warnings.append(f'{grid}: no runs of profile {profile!r} under {root} (expected {gdir})')
    folders = rd.grid_folders(root, profile, grid, seeds)
    if expected is not None:  # the given pairs, then whatever else is on disk
        known = set(expected)
        folders = [(n, s, rd.run_dir(root, profile, grid, n, s), True) for n, s in expected] + \
                  [(n, s, p, False) for n, s, p, _ in folders if (n, s) not in known and p.is_dir()]
    runs = []
    for name, seed, path, in_grid in folders:
        rec = load_run(grid, name, seed, profile, root, path)
        if not in_grid:
            rec.in_grid = False
            rec.warnings.insert(0, f'{rec.label}: on disk but not in the grid definition; listed, not used in tables')
        runs.append(rec)
    for r in runs:
        warnings += r.warnings
    res = GridResult(grid=grid, profile=profile, root=root, runs=runs, warnings=warnings)
    if verbose:
        print_warnings(res)
    return res


def print_warnings(res: GridResult) -> None:
    """Print a state summary and every warning of a collected grid."""
    counts = pd.Series([r.state for r in res.runs]).value_counts().to_dict() if res.runs else {}
    print(f'[{res.grid}/{res.profile}] runs: ' + ', '.join(f'{k} {v}' for k, v in counts.items()))
    for w in res.warnings:
        print(f'  WARNING {w}')

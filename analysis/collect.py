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

import json
import math
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from analysis.logs import ScalarLog, load_run_scalars, mean_iter_time, peak_memory_mb

REPO_ROOT = Path(__file__).resolve().parents[1]

#: Run names per grid (as in ``experiments.grids``); used only when ``experiments.grids`` cannot be imported.
CONTRACT_RUNS = {
    'components': ['baseline', 'spm_add', 'spm_injector', 'full'],
    'N': ['N0', 'N1', 'N2', 'N4', 'N6'],
    'attention': ['global', 'cswin', 'pale', 'deformable'],
    'pretrain': ['deit_in1k', 'augreg_in22k', 'uniperceiver_mm'],
    'main-det': [f'maskrcnn_{s}_{m}_{a}' for s in ('1x', '3x') for m in ('vit', 'vit_adapter')
                 for a in 'TSBL'],
    'main-seg': [f'{h}_{m}_{a}' for h in ('upernet', 'semfpn') for m in ('vit', 'vit_adapter') for a in 'TSBL'],
}
GRIDS = tuple(CONTRACT_RUNS)
STATES = ('finished', 'running', 'queued', 'failed', 'missing', 'unknown')

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
    state: str
    task: str | None = None
    manifest: dict | None = None
    config: dict | None = None  # config.json: the data-only config (None for runs made before it existed)
    final: dict[str, float] = field(default_factory=dict)
    scalars: ScalarLog | None = None
    error: str | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        return f'{self.grid}/{self.run}/seed{self.seed}'

    def checkpoint(self) -> Path | None:
        """The run's last checkpoint (``last_checkpoint`` file, else the newest ``*.pth``), or None."""
        lc = self.path / 'last_checkpoint'
        if lc.is_file():
            p = Path(lc.read_text().strip())
            p = p if p.is_absolute() else self.path / p
            if p.is_file():
                return p
            p = self.path / p.name  # the run dir was moved
            if p.is_file():
                return p
        pths = sorted(self.path.glob('*.pth'), key=lambda p: p.stat().st_mtime)
        return pths[-1] if pths else None

    def row(self) -> dict:
        """One row of the tidy runs table."""
        sc = self.scalars
        train = sc.train if sc is not None else pd.DataFrame()
        r = dict(grid=self.grid, run=self.run, seed=self.seed, profile=self.profile, task=self.task,
                 state=self.state, error=self.error, identity=(self.manifest or {}).get('identity'),
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
        r['path'] = str(self.path)
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


def _read_json(path: Path, label: str, warnings: list[str]) -> dict | None:
    if not path.is_file():
        return None
    try:
        with open(path, encoding='utf-8') as f:
            d = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        warnings.append(f'{label}: {path.name} is corrupt ({e}); ignored')
        return None
    if not isinstance(d, dict):
        warnings.append(f'{label}: {path.name} is not a JSON object; ignored')
        return None
    return d


def load_run(grid: str, run: str, seed: int, profile: str, root: Path, stale_hours: float = 6.0) -> RunRecord:
    """Read one run directory.

    State: ``missing`` (no directory), ``failed`` (state.json says so, or says finished without a
    readable final_metrics.json), ``finished``, ``running``, ``queued``, or ``unknown`` (a directory
    without state.json and without final metrics). A ``running`` run whose files have not changed for
    ``stale_hours`` gets a warning (it may have died).
    """
    path = root / profile / grid / run / f'seed{seed}'
    rec = RunRecord(grid=grid, run=run, seed=seed, profile=profile, path=path, state='missing')
    w = rec.warnings
    if not path.is_dir():
        w.append(f'{rec.label}: missing (no run directory {path})')
        return rec
    rec.manifest = _read_json(path / 'manifest.json', rec.label, w)
    if rec.manifest is None:
        w.append(f'{rec.label}: no readable manifest.json')
    else:
        rec.task = rec.manifest.get('task')
    rec.config = _read_json(path / 'config.json', rec.label, w)
    st = _read_json(path / 'state.json', rec.label, w)
    final = _read_json(path / 'final_metrics.json', rec.label, w)
    rec.scalars = load_run_scalars(path, rec.label)
    w += rec.scalars.warnings
    if final is not None:
        rec.final = normalise_metrics(final, w, rec.label)
    state = (st or {}).get('state')
    rec.error = (st or {}).get('error')
    if state == 'finished':
        if final is None:
            rec.state = 'failed'
            w.append(f'{rec.label}: state.json says finished but final_metrics.json is missing or corrupt; '
                     f'counted as failed')
        else:
            rec.state = 'finished'
    elif state == 'failed':
        rec.state = 'failed'
        w.append(f'{rec.label}: failed' + (f': {rec.error}' if rec.error else ' (no error recorded)'))
    elif state in ('running', 'queued'):
        rec.state = state
        newest = max((p.stat().st_mtime for p in path.rglob('*') if p.is_file()), default=0)
        age_h = (time.time() - newest) / 3600
        w.append(f'{rec.label}: {state} (last iter {rec.scalars.last_iter}); not in the means')
        if state == 'running' and age_h > stale_hours:
            w.append(f'{rec.label}: running but no file changed for {age_h:.1f} h: the job may have died')
    elif st is None and final is not None:
        rec.state = 'finished'
        w.append(f'{rec.label}: no state.json; final_metrics.json present, counted as finished')
    else:
        rec.state = 'unknown'
        w.append(f'{rec.label}: state unknown (state.json {"missing" if st is None else repr(state)}, '
                 f'no final_metrics.json); not in the means')
    return rec


def expected_runs(grid: str, seeds=None) -> tuple[list[tuple[str, int]], str]:
    """(run, seed) pairs a grid expects, and where the list came from.

    Uses ``experiments.grids.get_grid(grid).runs(seeds)`` when importable, else :data:`CONTRACT_RUNS` with seeds
    ``range(seeds)``/``seeds``.

    Args:
        grid: Grid name.
        seeds: Number of seeds or a list of seeds (default 1).
    """
    seeds = 1 if seeds is None else seeds
    try:
        from experiments.grids import get_grid  # noqa: PLC0415 (optional, built in parallel)
    except ImportError:
        get_grid = None
    if get_grid is not None:
        try:
            g = get_grid(grid)
        except Exception as e:  # noqa: BLE001 -- whatever get_grid raises for an unknown name
            raise AnalysisError(f'unknown grid {grid!r} ({e}); known grids: {", ".join(GRIDS)}') from e
        return [(r.name, int(r.seed)) for r in g.runs(seeds)], 'experiments.grids'
    if grid not in CONTRACT_RUNS:
        raise AnalysisError(f'unknown grid {grid!r}; known grids: {", ".join(GRIDS)}')
    seed_list = list(range(seeds)) if isinstance(seeds, int) else [int(s) for s in seeds]
    return [(r, s) for r in CONTRACT_RUNS[grid] for s in seed_list], 'contract run names (experiments.grids not importable)'


def _seeds_on_disk(gdir: Path) -> list[int]:
    seeds = set()
    if gdir.is_dir():
        for p in gdir.glob('*/seed*'):
            m = re.fullmatch(r'seed(\d+)', p.name)
            if m and p.is_dir():
                seeds.add(int(m.group(1)))
    return sorted(seeds)


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
    warnings: list[str] = []
    gdir = root / profile / grid
    if expected is None:
        if seeds is None:
            seeds = _seeds_on_disk(gdir) or 1
        expected, source = expected_runs(grid, seeds)
        if source != 'experiments.grids':
            warnings.append(f'{grid}: expected runs from {source}')
    elif grid not in CONTRACT_RUNS:
        raise AnalysisError(f'unknown grid {grid!r}; known grids: {", ".join(GRIDS)}')
    if not gdir.is_dir():
        warnings.append(f'{grid}: no runs of profile {profile!r} under {root} (expected {gdir})')
    runs = [load_run(grid, r, s, profile, root) for r, s in expected]
    known = set(expected)
    if gdir.is_dir():
        for p in sorted(gdir.glob('*/seed*')):
            m = re.fullmatch(r'seed(\d+)', p.name)
            if m and p.is_dir() and (p.parent.name, int(m.group(1))) not in known:
                rec = load_run(grid, p.parent.name, int(m.group(1)), profile, root)
                rec.warnings.insert(0, f'{rec.label}: on disk but not in the grid definition; listed, '
                                       f'not used in tables')
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

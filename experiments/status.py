"""Which runs of a grid are queued, running, finished or failed.

Usage:
    python -m experiments.status GRID [--profile tiny|paper] [--runs-root DIR]

Reads every run directory's ``state.json`` (written by the launcher and the job) and, when SLURM is available,
asks ``squeue`` about the job ids: a run whose state says running but whose job SLURM no longer knows is shown
as ``lost`` (killed without a chance to record it; relaunching resumes it from its last checkpoint).
"""
from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path

from experiments import cluster as cl
from experiments import rundir as rd
from experiments.grids import GRID_NAMES, PROFILES, get_grid


def collect(grid: str, profile: str, runs_root: Path) -> list[dict]:
    """One row per run directory on disk (plus 'missing' rows for grid cells never launched)."""
    rows = []
    base = Path(runs_root).resolve() / profile / grid
    for name in get_grid(grid).names:
        seeds = sorted(base.glob(f'{name}/seed*'), key=lambda p: int(p.name[4:]) if p.name[4:].isdigit() else -1)
        if not seeds:
            rows.append(dict(run=name, seed=None, state='missing', job_id=None, iter=None, metrics=None, error=None))
            continue
        for sdir in seeds:
            ckpt = rd.last_checkpoint(sdir)
            m = re.search(r'iter_(\d+)', ckpt.name) if ckpt else None
            try:
                state = rd.read_state(sdir) or {}
                metrics = rd.read_json(sdir / rd.FINAL_METRICS)
            except rd.CorruptRunFile as err:  # shown as such; the other runs are listed as usual
                state, metrics = dict(state='corrupt', error=str(err)), None
            rows.append(dict(run=name, seed=sdir.name[4:], state=state.get('state', 'unknown'),
                             job_id=state.get('job_id'), iter=int(m.group(1)) if m else None,
                             metrics=metrics, error=state.get('error'), dir=sdir))
    squeue = cl.squeue_states([r['job_id'] for r in rows if r['state'] in ('queued', 'running') and r['job_id']])
    have_squeue = _squeue_works()
    for r in rows:
        r['slurm'] = squeue.get(str(r['job_id'])) if r['job_id'] else None
        if (have_squeue and r['state'] in ('queued', 'running') and r['job_id'] and not str(r['job_id']).startswith('pid')
                and r['slurm'] is None):
            r['state'] = 'lost'
    return rows


def _squeue_works() -> bool:
    import shutil
    import subprocess
    if shutil.which('squeue') is None:
        return False
    try:
        return subprocess.run(['squeue', '-h', '-o', '%i'], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def format_rows(rows: list[dict]) -> str:
    lines = [f'{"run":<34} {"seed":>4}  {"state":<9} {"job":<12} {"slurm":<10} {"ckpt iter":>9}  metrics / error']
    for r in rows:
        m = r['metrics'] or {}
        shown = ', '.join(f'{k}={m[k]:.4g}' for k in ('coco/bbox_mAP', 'coco/segm_mAP', 'mIoU') if m.get(k) is not None)
        if r['state'] == 'failed' and r['error']:
            shown = r['error'].splitlines()[-1][:80]
        lines.append(f'{r["run"]:<34} {r["seed"] or "-":>4}  {r["state"]:<9} {str(r["job_id"] or "-"):<12} '
                     f'{r["slurm"] or "-":<10} {r["iter"] if r["iter"] is not None else "-":>9}  {shown}')
    counts = {}
    for r in rows:
        counts[r['state']] = counts.get(r['state'], 0) + 1
    lines.append('totals: ' + ', '.join(f'{k} {v}' for k, v in sorted(counts.items())))
    return '\n'.join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog='python -m experiments.status', description=__doc__.split('\n')[0])
    parser.add_argument('grid', choices=GRID_NAMES)
    parser.add_argument('--profile', choices=PROFILES, default='tiny')
    parser.add_argument('--runs-root', default=os.environ.get('RUNS_ROOT', str(rd.DEFAULT_RUNS_ROOT)),
                        help='runs root (default $RUNS_ROOT, else runs/ in the checkout)')
    args = parser.parse_args(argv)
    rows = collect(args.grid, args.profile, Path(args.runs_root))
    print(f'grid {args.grid}, profile {args.profile}, {Path(args.runs_root).resolve() / args.profile / args.grid}')
    print(format_rows(rows))
    return 0


if __name__ == '__main__':
    sys.exit(main())

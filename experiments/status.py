"""Which runs of a grid are queued, running, finished, failed, interrupted, not submitted, corrupt or missing.

Usage:
    python -m experiments.status GRID [--profile tiny|paper] [--runs-root DIR]

Reads every run folder through ``experiments.rundir.read_run`` (the one reader of run folders): ``state.json`` as
the launcher and the job recorded it, checked against the run's lock (a local run whose process died is
``interrupted``) and, for SLURM runs, against ``squeue`` (a job SLURM no longer knows is ``interrupted``); relaunching
an interrupted run resumes it from its last intact checkpoint.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from experiments import cluster as cl
from experiments import rundir as rd
from experiments.grids import GRID_NAMES, PROFILES


def collect(grid: str, profile: str, runs_root: Path, seeds=None) -> list[dict]:
    """One row per run folder of the grid (``experiments.rundir.grid_folders``: the grid's cells, 'missing' where
    never launched, then folders the grid does not define), read by ``experiments.rundir.read_run``."""
    folders = rd.grid_folders(runs_root, profile, grid, seeds)
    infos = [(name, seed, rd.read_run(path, slurm_states={}), in_grid) for name, seed, path, in_grid in folders]
    # one squeue call for every SLURM job id, then the runs that need it are read again with its answer
    ids = [i.job_id for _, _, i, _ in infos if (i.state_file or {}).get('scheduler') == 'slurm' and i.job_id]
    squeue = cl.squeue_states(ids) if ids and cl.squeue_works() else None
    rows = []
    for name, seed, info, in_grid in infos:
        if (info.state_file or {}).get('scheduler') == 'slurm':
            info = rd.read_run(info.path, slurm_states=squeue)
        rows.append(dict(run=name if in_grid else f'{name} (not in grid)', seed=seed, state=info.state, job_id=info.job_id, iter=info.checkpoint_iter,
                         metrics=info.final, error=info.error, problems=info.problems,
                         slurm=(squeue or {}).get(str(info.job_id)) if info.job_id else None, dir=info.path,
                         holder=info.holder))
    return rows


def format_rows(rows: list[dict]) -> str:
    lines = [f'{"run":<34} {"seed":>4}  {"state":<13} {"job":<12} {"slurm":<10} {"ckpt iter":>9}  metrics / error']
    for r in rows:
        m = r['metrics'] or {}
        shown = ', '.join(f'{k}={m[k]:.4g}' for k in ('coco/bbox_mAP', 'coco/segm_mAP', 'mIoU') if m.get(k) is not None)
        if r['state'] in ('failed', 'not submitted', 'corrupt') and r['error']:
            shown = r['error'].splitlines()[-1][:100]
        elif r['state'] == 'interrupted' and r['problems']:
            shown = r['problems'][-1][:100]
        elif r['state'] == 'running' and r.get('holder'):
            shown = f'{rd.describe_holder(r["holder"])}' + (f'; {shown}' if shown else '')
        lines.append(f'{r["run"]:<34} {r["seed"] or "-":>4}  {r["state"]:<13} {str(r["job_id"] or "-"):<12} '
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

"""Where each run of a grid stands: state, iteration / total, %, ETA, last loss and metric, and the grid's ETA.

Usage:
    python -m experiments.status GRID [--profile tiny|paper] [--runs-root DIR] [--watch [--interval S] [--count N]]

Reads every run folder through ``experiments.rundir.read_run`` (the one reader of run folders): ``state.json`` as
the launcher and the job recorded it, checked against the run's lock (a local run whose process died is
``interrupted``) and, for SLURM runs, against ``squeue`` (a job SLURM no longer knows is ``interrupted``); relaunching
an interrupted run resumes it from its last intact checkpoint. Progress comes from the run's mmengine scalars log
(``experiments.runlog``): the last logged iteration of ``train_cfg.max_iters`` (config.json), the recent seconds
per iteration, the last loss and the last validation metric (the final metrics once finished).

ETA of a run: its remaining iterations x its recent seconds per iteration. The grid's ETA is the sum over its
unfinished runs (training time still to spend: the wall time when the runs go one after another, as the local
launcher runs them); runs without a logged speed or a known total are counted as unknown.

``--watch`` redraws the table in place every ``--interval`` seconds (Ctrl-C stops it); without a terminal it prints
the plain table at each refresh. Without ``--watch`` the table is printed once (plain text when stdout is not a
terminal).
"""
from __future__ import annotations

import argparse
import datetime as _dt
import os
import sys
import time
from pathlib import Path

from experiments import cluster as cl
from experiments import rundir as rd
from experiments import runlog as rl
from experiments.grids import GRID_NAMES, PROFILES

#: States whose run still has training to do (a relaunch trains or resumes them).
UNFINISHED = tuple(s for s in rd.READ_STATES if s != 'finished')
HEADERS = ('run', 'seed', 'state', 'job', 'slurm', 'iter/total', '%', 'ETA', 's/iter', 'loss', 'metric',
           'note')
_RIGHT = {'seed', 'iter/total', '%', 'ETA', 's/iter', 'loss'}


def collect(grid: str, profile: str, runs_root: Path, seeds=None) -> list[dict]:
    """One row per run folder of the grid (``experiments.rundir.grid_folders``: the grid's cells, 'missing' where
    never launched, then folders the grid does not define), read by ``experiments.rundir.read_run``, with its
    ``progress`` (:class:`experiments.runlog.Progress`)."""
    folders = rd.grid_folders(runs_root, profile, grid, seeds)
    # one squeue call for every SLURM job id (from the state files), then each run is read once with its answer
    ids = [st['job_id'] for st in map(_state_of, (p for _, _, p, _ in folders))
           if st.get('scheduler') == 'slurm' and st.get('job_id')]
    squeue = cl.squeue_states(ids) if ids and cl.squeue_works() else None
    rows = []
    for name, seed, path, in_grid in folders:
        info = rd.read_run(path, slurm_states=squeue)
        if info.state in ('missing', 'corrupt'):
            progress = rl.Progress()
        else:
            progress = rl.read_progress(info.path, info.config, info.final, info.checkpoint_iter)
        rows.append(dict(run=name if in_grid else f'{name} (not in grid)', seed=seed, state=info.state,
                         job_id=info.job_id, iter=info.checkpoint_iter, metrics=info.final, error=info.error,
                         problems=info.problems,
                         slurm=(squeue or {}).get(str(info.job_id)) if info.job_id else None, dir=info.path,
                         holder=info.holder, progress=progress))
    return rows


def _state_of(path: Path) -> dict:
    """``state.json`` of a run folder, {} when absent or corrupt (``read_run`` reports that)."""
    try:
        return rd.read_state(path) or {}
    except rd.CorruptRunFile:
        return {}


def _note(r: dict) -> str:
    if r['state'] in ('failed', 'not submitted', 'corrupt') and r['error']:
        return r['error'].splitlines()[-1][:100]
    if r['state'] == 'interrupted' and r['problems']:
        return r['problems'][-1][:100]
    if r['state'] == 'running' and r.get('holder'):
        return rd.describe_holder(r['holder'])
    return ''


def row_cells(r: dict) -> list[str]:
    """The cells of one row, in the order of :data:`HEADERS`."""
    p: rl.Progress = r.get('progress') or rl.Progress()
    it = '-' if p.iter is None else str(p.iter)
    total = '?' if p.total is None else str(p.total)
    pct = '-' if p.fraction is None else f'{100 * p.fraction:.0f}%'
    eta = '-' if r['state'] == 'finished' else rl.format_duration(p.eta_s)
    metric = f'{p.metric[0]}={p.metric[1]:.4g}' if p.metric else '-'
    return [r['run'], str(r['seed'] if r['seed'] is not None else '-'), r['state'], str(r['job_id'] or '-'),
            r['slurm'] or '-', f'{it}/{total}' if (p.iter is not None or p.total is not None) else '-', pct, eta,
            '-' if p.s_per_iter is None else f'{p.s_per_iter:.3g}', '-' if p.loss is None else f'{p.loss:.4g}',
            metric, _note(r)]


def grid_eta(rows: list[dict]) -> tuple[float, int, int]:
    """(seconds of training left over the unfinished runs whose ETA is known, how many those are, how many
    unfinished runs have an unknown ETA)."""
    known, n_known, n_unknown = 0.0, 0, 0
    for r in rows:
        if r['state'] not in UNFINISHED:
            continue
        eta = (r.get('progress') or rl.Progress()).eta_s
        if eta is None:
            n_unknown += 1
        else:
            known, n_known = known + eta, n_known + 1
    return known, n_known, n_unknown


def summary_lines(rows: list[dict]) -> list[str]:
    """'totals: ...' (runs per state) and the grid's ETA."""
    counts = {}
    for r in rows:
        counts[r['state']] = counts.get(r['state'], 0) + 1
    lines = ['totals: ' + ', '.join(f'{k} {v}' for k, v in sorted(counts.items()))]
    known, n_known, n_unknown = grid_eta(rows)
    if not n_known and not n_unknown:
        lines.append('grid ETA: done (no unfinished run)')
    elif not n_known:
        lines.append(f'grid ETA: unknown ({n_unknown} unfinished run(s) without a logged speed or a known total)')
    else:
        lines.append(f'grid ETA: {rl.format_duration(known)} of training left in {n_known} run(s) '
                     f'(remaining iterations x recent s/iter)' +
                     (f' + {n_unknown} run(s) unknown' if n_unknown else ''))
    return lines


def format_rows(rows: list[dict]) -> str:
    """The table as plain text (one line per run, then the totals and the grid's ETA)."""
    cells = [list(HEADERS)] + [row_cells(r) for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(HEADERS) - 1)]
    lines = []
    for c in cells:
        parts = [c[i].rjust(widths[i]) if HEADERS[i] in _RIGHT else c[i].ljust(widths[i]) for i in range(len(widths))]
        lines.append(('  '.join(parts) + '  ' + c[-1]).rstrip())
    return '\n'.join(lines + summary_lines(rows))


_STATE_STYLE = {'finished': 'green', 'running': 'bold cyan', 'queued': 'blue', 'failed': 'bold red',
                'corrupt': 'bold red', 'interrupted': 'yellow', 'not submitted': 'red', 'missing': 'dim',
                'unknown': 'magenta'}


#: Columns the terminal table leaves out, in this order, when the terminal is too narrow for all of them.
_DROP_ORDER = ('bar', 'job', 'slurm', 's/iter', 'note', 'loss', 'metric')
_BAR_WIDTH = 12


def rich_view(title: str, rows: list[dict], width: int | None = None):
    """The same table as a rich renderable (a title, the table with a progress bar per run, the totals).

    Columns of :data:`_DROP_ORDER` are left out while the table would be wider than ``width`` (the terminal's);
    the note column is cut (with an ellipsis) to what is left.
    """
    from rich.console import Group
    from rich.progress_bar import ProgressBar
    from rich.table import Table
    from rich.text import Text
    all_cells = [row_cells(r) for r in rows]
    widths = {c: max([len(c)] + [len(cells[i]) for cells in all_cells]) for i, c in enumerate(HEADERS)}
    widths['bar'] = _BAR_WIDTH
    note_width = widths['note']
    widths['note'] = min(note_width, 30)  # when deciding what fits, a note counts as 30 characters: it is cut
    columns = list(HEADERS[:8]) + ['bar'] + list(HEADERS[8:])
    for c in ('job', 'slurm'):  # only when some run has one
        if all(cells[HEADERS.index(c)] == '-' for cells in all_cells):
            columns.remove(c)

    def total(cols):  # a column: its text, one space each side, one border
        return sum(widths[c] + 3 for c in cols) + 1
    if width is not None:
        for c in _DROP_ORDER:
            if total(columns) <= width:
                break
            if c in columns:
                columns.remove(c)
        if 'note' in columns:
            note_width = max(12, width - total([x for x in columns if x != 'note']) - 3)
    table = Table(title=title, title_justify='left', expand=False)
    for c in columns:
        if c == 'bar':
            table.add_column('', width=_BAR_WIDTH, no_wrap=True)
        elif c == 'note':
            table.add_column(c, overflow='ellipsis', no_wrap=True, max_width=note_width)
        else:
            table.add_column(c, justify='right' if c in _RIGHT else 'left', no_wrap=True, min_width=widths[c])
    for r, cells in zip(rows, all_cells):
        shown = []
        for c in columns:
            if c == 'bar':
                frac = (r.get('progress') or rl.Progress()).fraction
                shown.append(ProgressBar(total=1.0, completed=frac, width=_BAR_WIDTH) if frac is not None
                             else Text(''))
            elif c == 'state':
                shown.append(Text(cells[2], style=_STATE_STYLE.get(r['state'], '')))
            else:
                shown.append(cells[HEADERS.index(c)])
        table.add_row(*shown)
    return Group(table, Text('\n'.join(summary_lines(rows))))


def _title(args) -> str:
    return f'grid {args.grid}, profile {args.profile}, {Path(args.runs_root).resolve() / args.profile / args.grid}'


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f'{text!r} is not a number of seconds') from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f'{text} must be > 0 seconds')
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f'{text!r} is not a whole number') from None
    if value < 1:
        raise argparse.ArgumentTypeError(f'{text} must be >= 1')
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog='python -m experiments.status', description=__doc__.split('\n')[0])
    parser.add_argument('grid', choices=GRID_NAMES)
    parser.add_argument('--profile', choices=PROFILES, default='tiny')
    parser.add_argument('--runs-root', default=os.environ.get('RUNS_ROOT', str(rd.DEFAULT_RUNS_ROOT)),
                        help='runs root (default $RUNS_ROOT, else runs/ in the checkout)')
    parser.add_argument('--watch', action='store_true', help='refresh the table in place until Ctrl-C')
    parser.add_argument('--interval', type=_positive_float, default=None, metavar='SECONDS',
                        help='seconds between refreshes with --watch (default 5)')
    parser.add_argument('--count', type=_positive_int, default=None, metavar='N',
                        help='with --watch: stop after N refreshes (default: until Ctrl-C)')
    return parser


def watch(args, console=None, sleep=time.sleep) -> int:
    """Redraw the table every ``args.interval`` seconds, ``args.count`` times (None: until Ctrl-C)."""
    interval = args.interval or 5.0
    runs_root = Path(args.runs_root)
    if console is None:
        from rich.console import Console
        console = Console() if sys.stdout.isatty() else None
    n = 0
    try:
        if console is None or not console.is_terminal:  # a file or a pipe: one plain table per refresh
            while True:
                rows = collect(args.grid, args.profile, runs_root)
                stamp = _dt.datetime.now().isoformat(timespec='seconds')
                out = console.file if console is not None else sys.stdout
                print(f'{_title(args)} ({stamp})\n{format_rows(rows)}\n', file=out, flush=True)
                n += 1
                if args.count is not None and n >= args.count:
                    return 0
                sleep(interval)
        from rich.live import Live
        with Live(console=console, auto_refresh=False, transient=False) as live:
            while True:
                rows = collect(args.grid, args.profile, runs_root)
                stamp = _dt.datetime.now().strftime('%H:%M:%S')
                live.update(rich_view(f'{_title(args)}  (refreshed {stamp} every {interval:g} s; Ctrl-C stops)',
                                      rows, console.width), refresh=True)
                n += 1
                if args.count is not None and n >= args.count:
                    return 0
                sleep(interval)
    except KeyboardInterrupt:
        return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.watch and (args.interval is not None or args.count is not None):
        parser.error('--interval and --count go with --watch')
    if args.watch:
        return watch(args)
    rows = collect(args.grid, args.profile, Path(args.runs_root))
    if sys.stdout.isatty():
        from rich.console import Console
        console = Console()
        console.print(rich_view(_title(args), rows, console.width))
        return 0
    print(_title(args))
    print(format_rows(rows))
    return 0


if __name__ == '__main__':
    sys.exit(main())

"""experiments.status: one line per run with state, iteration/total, %, ETA, last loss and metric, the grid's ETA;
--watch refreshes in place; bad options exit 2. Run folders are fabricated (tests/analysis/fakeruns.py)."""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from experiments import cluster as cl
from experiments import rundir as rd
from experiments import runlog as rl
from experiments import status
from tests.analysis import fakeruns as fr

TOTAL = 400  # train_cfg.max_iters in the fabricated config.json


def _partial(upto, time=0.5, loss0=2.0):
    """Training lines every 10 iterations up to ``upto``, ``time`` s/iter (the first line is a slower warm-up)."""
    return [fr.train_line(s, loss=loss0 / (s / 10), time=time * (4 if s == 10 else 1)) for s in range(10, upto + 1, 10)]


def make_status_grid(root):
    """Grid N (tiny), seeds 0 and 1, one folder per state; returns {(run, seed): folder}."""
    cfg = fr.schedule_config(max_iters=TOTAL)
    w = dict(config=cfg)
    d = {}
    d['N0', 0] = fr.identity_run(root, 'N0', 0, 0.31, max_iters=TOTAL)  # finished
    d['N0', 1] = fr.write_run(root, 'tiny', 'N', 'N0', 1, state='running', starts=[_partial(100)], **w)
    d['N1', 0] = fr.write_run(root, 'tiny', 'N', 'N1', 0, state='queued', **w)
    d['N1', 1] = fr.write_run(root, 'tiny', 'N', 'N1', 1, state='failed', error='Traceback ...\nRuntimeError: boom',
                              starts=[_partial(30)], **w)
    # interrupted: killed; its lock file names a process that no longer holds the lock; resumed once already
    d['N2', 0] = fr.write_run(root, 'tiny', 'N', 'N2', 0, state='running', starts=[_partial(60, 0.2),
                              _partial(200, 0.25)[4:] + [fr.det_val_line(200, 0.123)]], **w)
    (d['N2', 0] / rd.LOCK).write_text(json.dumps(dict(host=rd._hostname(), pid=999999, job_id=None)))
    d['N2', 1] = fr.write_run(root, 'tiny', 'N', 'N2', 1, state='not submitted', error='sbatch: error: invalid account',
                              **w)
    d['N4', 0] = fr.write_run(root, 'tiny', 'N', 'N4', 0, state='queued', **w)
    (d['N4', 0] / rd.STATE).write_text('{"state": "runn')  # cut off: corrupt
    # a SLURM run that squeue says is running
    d['N4', 1] = fr.write_run(root, 'tiny', 'N', 'N4', 1, state='running', starts=[_partial(40, 2.0)], **w)
    st = json.loads((d['N4', 1] / rd.STATE).read_text())
    (d['N4', 1] / rd.STATE).write_text(json.dumps(dict(st, job_id='4242', scheduler='slurm')))
    return d  # N6: missing (no folder)


@pytest.fixture
def fake_squeue(monkeypatch):
    monkeypatch.setattr(cl, 'squeue_works', lambda: True)
    monkeypatch.setattr(cl, 'squeue_states', lambda ids: {'4242': 'RUNNING'} if '4242' in ids else {})


def _rows(tmp_path):
    rows = status.collect('N', 'tiny', tmp_path)
    return {(r['run'], r['seed']): r for r in rows}, rows


def test_every_state_gets_a_line_with_its_progress(tmp_path, fake_squeue):
    folders = make_status_grid(tmp_path)
    with rd.RunLock(folders['N0', 1]):  # the running local run: this process holds its lock
        by, rows = _rows(tmp_path)
        text = status.format_rows(rows)
    states = {k: r['state'] for k, r in by.items()}
    assert states == {('N0', 0): 'finished', ('N0', 1): 'running', ('N1', 0): 'queued', ('N1', 1): 'failed',
                      ('N2', 0): 'interrupted', ('N2', 1): 'not submitted', ('N4', 0): 'corrupt',
                      ('N4', 1): 'running', ('N6', 0): 'missing', ('N6', 1): 'missing'}
    lines = {tuple(line.split()[:2]): line for line in text.splitlines()[1:] if line.startswith('N')}
    # running, partial log: 100 of 400, 25%, ETA = 300 iterations x 0.5 s (the warm-up line left out) = 2m 30s
    running = lines['N0', '1']
    assert ' running ' in running and '100/400' in running and ' 25% ' in running and '2m 30s' in running
    assert ' 0.2 ' in running  # last loss: 2.0 / 10
    assert 'pid' in running  # its holder
    p = by['N0', 1]['progress']
    assert (p.iter, p.total, p.s_per_iter, p.loss, p.eta_s) == (100, 400, 0.5, pytest.approx(0.2), 150.0)
    # SLURM running (squeue says RUNNING): 40/400 at 2 s/iter
    assert 'RUNNING' in lines['N4', '1'] and '40/400' in lines['N4', '1'] and ' 10% ' in lines['N4', '1']
    assert by['N4', 1]['progress'].eta_s == 360 * 2.0
    # finished: 40 iterations of its 400 logged, metric from final_metrics.json, no ETA
    fin = lines['N0', '0']
    assert ' finished ' in fin and 'coco/bbox_mAP=0.31' in fin and by['N0', 0]['progress'].eta_s is not None
    assert status.row_cells(by['N0', 0])[status.HEADERS.index('ETA')] == '-'
    # interrupted: resumed once; speed of the latest start (0.25 s/iter), metric of its last validation
    intr = by['N2', 0]['progress']
    assert intr.iter == 200 and intr.s_per_iter == 0.25 and intr.metric == ('coco/bbox_mAP', 0.123)
    assert '200/400' in lines['N2', '0'] and 'coco/bbox_mAP=0.123' in lines['N2', '0']
    assert 'boom' in lines['N1', '1'] and '30/400' in lines['N1', '1']
    assert 'invalid account' in lines['N2', '1']
    assert 'corrupt' in lines['N4', '0'] and 'state.json is corrupt' in lines['N4', '0']
    queued = status.row_cells(by['N1', 0])
    assert queued[status.HEADERS.index('iter/total')] == '-/400' and queued[status.HEADERS.index('ETA')] == 'unknown'
    assert status.row_cells(by['N6', 0])[5:8] == ['-', '-', 'unknown']
    # grid ETA: the unfinished runs with a known speed (N0/1 150 s, N1/1 370 x 0.5, N2/0 200 x 0.25, N4/1 720 s)
    known, n_known, n_unknown = status.grid_eta(rows)
    assert known == 150 + 185 + 50 + 720 and n_known == 4 and n_unknown == 5  # queued, not submitted, corrupt, 2 missing
    assert 'grid ETA: 18m 25s of training left in 4 run(s)' in text and '+ 5 run(s) unknown' in text
    assert 'totals: corrupt 1, failed 1, finished 1, interrupted 1, missing 2, not submitted 1, queued 1, ' \
           'running 2' in text


def test_progress_without_config_or_log_is_unknown_not_wrong(tmp_path):
    d = fr.write_run(tmp_path, 'tiny', 'N', 'N0', 0, state='running', starts=[[fr.train_line(10, 1.0, time=0.3)]])
    p = rl.read_progress(d)  # no config.json: no total; a single (warm-up) line still gives a speed
    assert (p.iter, p.total, p.fraction, p.eta_s, p.s_per_iter) == (10, None, None, None, 0.3)
    assert status.row_cells(dict(run='N0', seed=0, state='running', job_id='1', slurm=None, error=None, problems=[],
                                 progress=p))[5:8] == ['10/?', '-', 'unknown']
    assert rl.max_iters({'train_cfg': {'type': 'EpochBasedTrainLoop', 'max_epochs': 12}}) is None


def test_a_truncated_last_log_line_does_not_hide_the_progress(tmp_path):
    d = fr.write_run(tmp_path, 'tiny', 'N', 'N0', 0, state='running', config=fr.schedule_config(),
                     starts=[_partial(50)], raw_tail='{"lr": 0.0001, "loss": 0.75, "ti')
    p = rl.read_progress(d, rd.read_config(d))
    assert p.iter == 50 and p.total == 400 and len(p.warnings) == 1 and 'truncated' in p.warnings[0]


def test_watch_redraws_in_place_and_stops_after_count(tmp_path, fake_squeue):
    import io

    from rich.console import Console
    make_status_grid(tmp_path)
    buf = io.StringIO()
    console = Console(file=buf, force_terminal=True, width=220)
    sleeps = []
    args = status.build_parser().parse_args(['N', '--runs-root', str(tmp_path), '--watch', '--interval', '0.1',
                                             '--count', '3'])
    assert status.watch(args, console=console, sleep=sleeps.append) == 0
    out = buf.getvalue()
    assert sleeps == [0.1, 0.1]  # three draws, two waits
    assert out.count('refreshed') >= 3 and '\x1b[' in out  # redrawn with cursor movements, not appended
    assert '100/400' in out and 'grid ETA' in out


def _run_status(*args, env=None):
    return subprocess.run([sys.executable, '-m', 'experiments.status', *args], cwd=rd.REPO_ROOT,
                          capture_output=True, text=True, timeout=120, env=dict(os.environ, **(env or {})))


def test_watch_from_the_command_line_exits_cleanly_without_a_terminal(tmp_path):
    """A fake squeue on PATH: the SLURM run's state comes through experiments.cluster as in production."""
    make_status_grid(tmp_path)
    bindir = tmp_path / 'bin'
    bindir.mkdir()
    (bindir / 'squeue').write_text('#!/bin/sh\necho "4242 RUNNING"\n')
    (bindir / 'squeue').chmod(0o755)
    p = _run_status('N', '--watch', '--interval', '0.1', '--count', '2',
                    env={'RUNS_ROOT': str(tmp_path), 'PATH': f'{bindir}{os.pathsep}{os.environ["PATH"]}'})
    assert p.returncode == 0 and 'Traceback' not in p.stderr, p.stderr
    assert p.stdout.count('grid ETA:') == 2 and p.stdout.count('totals:') == 2
    line = next(x for x in p.stdout.splitlines() if x.startswith('N4') and ' 1 ' in x)
    assert 'running' in line and 'RUNNING' in line and '40/400' in line


@pytest.mark.parametrize('args, message', [
    (('--watch', '--interval', '0'), 'must be > 0'),
    (('--watch', '--interval', 'soon'), 'is not a number'),
    (('--watch', '--count', '0'), 'must be >= 1'),
    (('--interval', '2'), 'go with --watch'),
])
def test_bad_watch_options_exit_2(tmp_path, args, message):
    p = _run_status('N', '--runs-root', str(tmp_path), *args)
    assert p.returncode == 2 and message in p.stderr and 'Traceback' not in p.stderr, p.stderr

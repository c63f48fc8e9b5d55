"""Aggregation of run directories: resume, truncated line, failed/running/missing runs, units."""
import math

import pytest

from analysis.collect import AnalysisError, collect_grid, normalise_metrics
from analysis.logs import load_run_scalars, read_scalars_file
from tests.analysis.fakeruns import make_grid_N

EXPECTED = [(r, s) for r in ('N0', 'N1', 'N2', 'N4', 'N6') for s in (0, 1)]


@pytest.fixture(scope='module')
def grid_N(tmp_path_factory):
    root = make_grid_N(tmp_path_factory.mktemp('runs'))
    return collect_grid('N', 'tiny', root, expected=EXPECTED)


def _run(res, run, seed):
    (r,) = [r for r in res.runs if r.run == run and r.seed == seed]
    return r


def test_states(grid_N):
    states = {(r.run, r.seed): r.state for r in grid_N.runs}
    assert states == {('N0', 0): 'finished', ('N0', 1): 'finished', ('N1', 0): 'finished',
                      ('N1', 1): 'finished', ('N2', 0): 'failed', ('N2', 1): 'finished',
                      ('N4', 0): 'running', ('N4', 1): 'finished', ('N6', 0): 'missing', ('N6', 1): 'missing'}
    tab = grid_N.table()
    assert len(tab) == 10 and set(tab['state']) == {'finished', 'failed', 'running', 'missing'}


def test_problems_reported_by_name(grid_N, capsys):
    w = '\n'.join(grid_N.warnings)
    assert 'N/N6/seed0: missing' in w and 'N/N6/seed1: missing' in w
    assert 'N/N2/seed0: failed: RuntimeError: CUDA out of memory' in w
    assert 'N/N4/seed0: running' in w
    # the truncated line of N1's first start, with file and line number
    trunc = [x for x in grid_N.warnings if 'corrupt or truncated' in x]
    assert len(trunc) == 1 and 'N/N1/seed0' in trunc[0] and 'scalars.json:5' in trunc[0]
    # COCO's -1 for an empty area range becomes NaN, reported
    assert not any('bbox_mAP_s' in x for x in grid_N.warnings)  # area ranges: NaN, no noise
    from analysis.collect import print_warnings
    print_warnings(grid_N)
    out = capsys.readouterr().out
    assert 'missing 2' in out and 'N/N6/seed1: missing' in out


def test_resume_keeps_last_value_per_step(grid_N):
    sc = _run(grid_N, 'N1', 0).scalars
    assert [d.name for d in sc.log_dirs] == ['20261121_100000', '20261121_100100']
    assert list(sc.train.index) == [10, 20, 30, 40]
    assert sc.train.loc[30, 'loss'] == 0.7  # the resumed start's value wins
    assert sc.train.loc[10, 'loss'] == 1.0
    assert sc.overlaps > 0
    # validation lines kept apart from training lines (their 'time' must not overwrite train time)
    assert list(sc.val.index) == [20, 40]
    assert sc.val.loc[40, 'coco/bbox_mAP'] == 0.11
    assert sc.train.loc[20, 'time'] == 0.5 and sc.val.loc[20, 'time'] == 0.1
    assert sc.last_iter == 40


def test_units_normalised_to_percent(grid_N):
    r = _run(grid_N, 'N0', 1)
    assert r.final['APb'] == pytest.approx(12.0)
    assert r.final['APm'] == pytest.approx(10.8)
    assert math.isnan(r.final['APb_s'])
    seg = normalise_metrics({'mIoU': 35.2, 'aAcc': 80.1, 'mAcc': 45.0})
    assert seg == {'mIoU': 35.2, 'aAcc': 80.1, 'mAcc': 45.0}  # mmseg is already percent
    assert normalise_metrics({'bbox_mAP': 0.5})['APb'] == 50.0  # CocoMetric without prefix


def test_failed_running_missing_not_averaged(grid_N):
    tab = grid_N.table()
    fin = tab[tab.state == 'finished']
    assert set(zip(fin.run, fin.seed)) == {('N0', 0), ('N0', 1), ('N1', 0), ('N1', 1), ('N2', 1), ('N4', 1)}
    assert tab[tab.state != 'finished']['APb'].isna().all()


def test_read_scalars_file_skips_bad_lines(tmp_path):
    f = tmp_path / 'scalars.json'
    f.write_text('{"loss": 1, "iter": 1, "step": 1}\n[1, 2]\n{"loss": 2}\n\n{"loss": 3, "iter": 2, "step": 2}\n{"lo')
    recs, warns = read_scalars_file(f, 'x')
    assert [r['step'] for r in recs] == [1, 2]
    assert len(warns) == 3 and ':2:' in warns[0] and ':3:' in warns[1] and ':6:' in warns[2]


def test_empty_run_dir(tmp_path):
    sc = load_run_scalars(tmp_path / 'nope')
    assert sc.train.empty and sc.val.empty and sc.last_iter is None


def test_missing_root_and_unknown_grid(tmp_path):
    with pytest.raises(AnalysisError, match='does not exist.*--runs-root'):
        collect_grid('N', 'tiny', tmp_path / 'absent')
    with pytest.raises(AnalysisError, match="unknown grid 'bogus'"):
        collect_grid('bogus', 'tiny', tmp_path)


def test_iteration_loop_validation_step_zero(tmp_path):
    """mmengine writes step = runner.epoch = 0 for validations of iteration-based loops."""
    from tests.analysis.fakeruns import det_val_line, train_line, write_run
    first = [train_line(10, 1.0), train_line(20, 0.9), det_val_line(0, 0.05), train_line(30, 0.8)]
    second = [train_line(30, 0.7), train_line(40, 0.6), det_val_line(0, 0.11)]
    d = write_run(tmp_path, 'tiny', 'N', 'N0', 0, starts=[first, second])
    sc = load_run_scalars(d)
    assert list(sc.val.index) == [20, 40]
    assert sc.val.loc[20, 'coco/bbox_mAP'] == 0.05 and sc.val.loc[40, 'coco/bbox_mAP'] == 0.11
    assert (sc.val['logged_step'] == 0).all()


def test_dead_unknown_and_extra_runs(tmp_path):
    import json
    import socket

    from experiments import rundir as rd
    from tests.analysis.fakeruns import train_line, write_run
    # N0: state says running, but the process named in its lock died (SIGKILL: nothing was recorded)
    d = write_run(tmp_path, 'tiny', 'N', 'N0', 0, state='running', starts=[[train_line(10, 1.0)]])
    (d / rd.LOCK).write_text(json.dumps(dict(host=socket.gethostname(), pid=999999999, job_id='pid999999999')))
    d1 = write_run(tmp_path, 'tiny', 'N', 'N1', 0, starts=[[train_line(10, 1.0)]])
    (d1 / 'state.json').unlink()
    write_run(tmp_path, 'tiny', 'N', 'N9', 0, starts=[])  # not a run of the grid
    # N2: running, its lock held by a live process (this one)
    d2 = write_run(tmp_path, 'tiny', 'N', 'N2', 0, state='running', starts=[[train_line(10, 1.0)]])
    with rd.RunLock(d2, job_id='pid1'):
        res = collect_grid('N', 'tiny', tmp_path, expected=[('N0', 0), ('N1', 0), ('N2', 0)])
    states = {r.run: r.state for r in res.runs}
    assert states['N0'] == 'interrupted' and states['N1'] == 'unknown' and 'N9' in states
    assert states['N2'] == 'running'
    w = '\n'.join(res.warnings)
    assert 'N/N0/seed0: state says running but its process (pid 999999999 on' in w and 'is gone' in w
    assert 'N/N1/seed0: state unknown' in w
    assert 'N/N9/seed0: on disk but not in the grid definition' in w

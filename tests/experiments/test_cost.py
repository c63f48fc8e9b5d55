"""--dry-run prints GPU-hours per run and in total from the measured s/iter table (experiments/data/speed.json);
runs without a measurement say 'unknown'."""
import json
import os
import subprocess
import sys

import pytest

from experiments import cost
from experiments.grids import CONFIG_DIR
from experiments.rundir import REPO_ROOT


def _table(tmp_path, entries):
    path = tmp_path / 'speed.json'
    path.write_text(json.dumps(dict(entries=entries)))
    return path


FAKE = [dict(config='tiny/maskrcnn_tiny_vit_1x.py', gpu='A100', s_per_iter=0.9, source='fabricated for the test'),
        dict(config='tiny/maskrcnn_tiny_1x.py', gpu='A100', s_per_iter=1.8, source='fabricated, N4 cell',
             overrides={'model.backbone.n_interactions': 4, 'model.backbone.variant': 'full'})]


def test_gpu_hours_from_a_table_entry_and_unknown_without_one(tmp_path):
    table = cost.load_speed_table(_table(tmp_path, FAKE))
    known = cost.run_cost('N0', 0, 'tiny/maskrcnn_tiny_vit_1x.py', {}, 400, 2, table)
    assert known.hours == {'A100': pytest.approx(0.9 * 400 * 2 / 3600)}
    other_cell = cost.run_cost('N1', 0, 'tiny/maskrcnn_tiny_1x.py', {'model.backbone.n_interactions': 1,
                                                                     'model.backbone.variant': 'full'}, 400, 2, table)
    assert other_cell.hours == {'A100': None} and other_cell.speeds == {'A100': None}
    epoch_based = cost.run_cost('N0', 0, 'tiny/maskrcnn_tiny_vit_1x.py', {}, None, 2, table)
    text = cost.format_costs([known, other_cell, epoch_based], table, tmp_path / 'speed.json')
    lines = text.splitlines()
    assert '0.9' in lines[2] and '0.2' in lines[2]
    assert lines[3].split()[-2:] == ['unknown', 'unknown'] and 'unknown' in lines[4]
    assert 'total on A100: 0.2 GPU-h over 1 run(s) + 2 run(s) unknown' in text
    assert 'fabricated for the test' in text  # the source of every measurement used


def test_dry_run_prints_the_cost_of_every_run(tmp_path):
    env = dict(os.environ, **{cost.SPEED_TABLE_ENV: str(_table(tmp_path, FAKE))})
    p = subprocess.run([sys.executable, '-m', 'experiments.launch', 'N', '--dry-run', '--cluster', 'slurm',
                        '--gpus-per-node', '2', '--runs-root', str(tmp_path / 'runs')], cwd=REPO_ROOT,
                       capture_output=True, text=True, env=env, timeout=300)
    assert p.returncode == 0 and 'Traceback' not in p.stderr, p.stderr
    out = p.stdout[p.stdout.index('cost: '):]
    rows = {line.split()[0]: line.split() for line in out.splitlines() if line.startswith('    N')}
    # run seed config iters GPUs s/iter GPU-h
    assert rows['N0'][3:] == ['400', '2', '0.9', '0.2']
    assert rows['N4'][3:] == ['400', '2', '1.8', '0.4']
    assert rows['N1'][3:] == ['400', '2', 'unknown', 'unknown']
    assert 'total on A100: 0.6 GPU-h over 2 run(s) + 3 run(s) unknown' in out
    assert 'dry run: nothing submitted' in out


@pytest.mark.parametrize('entries, message', [
    ([dict(config='x.py', gpu='H200', s_per_iter=0.1)], '"source" must be a non-empty string'),
    ([dict(config='x.py', gpu='H200', s_per_iter=-1, source='s')], 'positive number of seconds'),
    ([dict(config='x.py', gpu='H200', s_per_iter=1, source='s', scope='guess')], '"scope" must be one of'),
])
def test_a_bad_speed_table_is_an_error_naming_the_entry(tmp_path, entries, message):
    path = _table(tmp_path, entries)
    with pytest.raises(cost.SpeedTableError, match=message):
        cost.load_speed_table(path)
    p = subprocess.run([sys.executable, '-m', 'experiments.launch', 'N', '--runs', 'N0', '--dry-run', '--runs-root',
                        str(tmp_path / 'runs')], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300,
                       env=dict(os.environ, **{cost.SPEED_TABLE_ENV: str(path)}))
    assert p.returncode == 2 and message in p.stderr and str(path) in p.stderr and 'Traceback' not in p.stderr


def test_the_shipped_table_names_real_configs_and_its_sources():
    table = cost.load_speed_table(cost.SPEED_TABLE)
    assert table and all((CONFIG_DIR / s.config).is_file() and 'gpu_measured.md' in s.source for s in table)
    # what ../shared/notes/gpu_measured.md measured is the backbone alone: a lower bound, said so
    s = cost.lookup(table, 'maskrcnn_vit_adapter_S_1x.py', {}, 'H200')
    assert s.scope == 'backbone' and s.s_per_iter == 0.066
    text = cost.format_costs([cost.run_cost('r', 0, 'maskrcnn_vit_adapter_S_1x.py', {}, 87948, 8, table)], table,
                             cost.SPEED_TABLE)
    assert '>=12.9 (backbone only)' in text and 'lower bound' in text

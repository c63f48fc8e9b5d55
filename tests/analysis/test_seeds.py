"""Which seeds a table averages (one identity; NaN kept) and how it separates signal from noise."""
import math
from statistics import NormalDist

import pytest

from analysis.collect import collect_grid
from analysis.layouts import LAYOUTS
from analysis.tables import build_table, main, seed_group, to_latex, to_markdown
from tests.analysis.fakeruns import det_final, identity_run, make_grid_N_smoke_seed

A2 = LAYOUTS['N'][0]
Z2 = (NormalDist().inv_cdf(0.975) + NormalDist().inv_cdf(0.8)) ** 2  # the power formula's (z + z)²
T975 = {1: 12.7062047, 2: 4.3026527}  # t(0.975, df), printed tables


def _rows(res, sizes=None):
    df, notes = build_table(res, A2, sizes={} if sizes is None else sizes)
    return {r['Row']: r for r in df.to_dict('records')}, df, notes


def test_smoke_seed_is_not_averaged_in(tmp_path):
    """An 8-iteration smoke seed beside two 400-iteration seeds: it used to be averaged in (60.3 ± 34.9)."""
    root = make_grid_N_smoke_seed(tmp_path / 'runs')
    res = collect_grid('N', 'tiny', root, expected=[('N0', s) for s in range(3)] + [('N1', s) for s in range(3)])
    rows, df, notes = _rows(res)
    n0 = rows['N = 0']
    assert n0['APb n'] == 2 and n0['APb ours'] == pytest.approx((79.5 + 81.5) / 2)  # seeds 1, 2 only
    assert n0['APb std'] == pytest.approx(math.sqrt(2))
    assert n0['runs'] == 'N0: 2 finished (+1 other identity: seed0)'
    said = [n for n in notes if 'seed0 not averaged' in n]
    assert len(said) == 1 and 'N/N0: seed0 not averaged with seeds 1, 2' in said[0]
    assert 'train_cfg.max_iters 8 vs 400' in said[0] and 'train_cfg.val_interval 8 vs 400' in said[0]
    assert 'code' not in said[0] and 'lr' not in said[0]  # only what differs
    assert any('train_cfg.max_iters 8 vs 400' in w for w in res.warnings)  # printed by the CLI too
    md = to_markdown(df, A2, notes, 'tiny')
    assert '| N = 0 | 80.5 ± ' in md and 'seed0' in md
    assert 'max\\_iters 8 vs 400' in to_latex(df, A2, notes, 'tiny')


def test_smoke_seed_cli_prints_what_differs(tmp_path, capsys):
    root = make_grid_N_smoke_seed(tmp_path / 'runs')
    assert main(['N', '--runs-root', str(root), '--out', str(tmp_path / 'out'), '--seeds', '3']) == 0
    out = capsys.readouterr().out
    assert 'WARNING N/N0: seed0 not averaged' in out and '80.5 ± ' in out
    runs = (tmp_path / 'out' / 'tiny' / 'N' / 'runs.csv').read_text()
    assert 'identity' in runs.splitlines()[0]


def test_code_commit_and_versions_are_named(tmp_path):
    root = tmp_path / 'runs'
    identity_run(root, 'N0', 0, 0.5, commit='a' * 40)
    identity_run(root, 'N0', 1, 0.5, commit='a' * 40)
    identity_run(root, 'N0', 2, 0.3, commit='b' * 40 + '-dirty', versions={'torch': '2.14.0'})
    res = collect_grid('N', 'tiny', root, expected=[('N0', s) for s in range(3)])
    g = seed_group(res, 'N0')
    assert [r.seed for r in g.used] == [0, 1] and [r.seed for r in g.other] == [2]
    assert f'code {"b" * 12}-dirty vs {"a" * 12}' in g.differences[0]
    assert 'version torch 2.14.0 vs 2.13.0' in g.differences[0] and 'max_iters' not in g.differences[0]


def test_tie_takes_the_lowest_seeds_identity_and_none_is_its_own(tmp_path):
    root = tmp_path / 'runs'
    identity_run(root, 'N0', 0, 0.40, lr=1e-4)  # tie 1:1 -> seed 0's identity
    identity_run(root, 'N0', 1, 0.60, lr=2e-4)
    identity_run(root, 'N1', 0, 0.40, identity=False)  # made before identities: its own identity
    identity_run(root, 'N1', 1, 0.50)
    identity_run(root, 'N1', 2, 0.52)
    identity_run(root, 'N2', 0, 0.40, identity=False)  # same config, but None is never merged with a hash
    identity_run(root, 'N2', 1, 0.50, identity=False)
    identity_run(root, 'N2', 2, 0.52)
    res = collect_grid('N', 'tiny', root, expected=[(r, s) for r in ('N0', 'N1', 'N2') for s in range(3)])
    rows, _, notes = _rows(res)
    assert rows['N = 0']['APb ours'] == pytest.approx(40.0) and rows['N = 0']['APb n'] == 1
    assert 'N0: 2 finished' not in rows['N = 0']['runs'] and '1 finished (+1 other identity: seed1)' in rows['N = 0']['runs']
    assert any('N/N0: seed1' in n and 'optim_wrapper.optimizer.lr 0.0002 vs 0.0001' in n for n in notes)
    assert rows['N = 1']['APb ours'] == pytest.approx(51.0) and rows['N = 1']['APb n'] == 2
    assert '(+1 other identity: seed0)' in rows['N = 1']['runs']
    assert any('N/N1: seed0' in n and 'identity none (run made before identities)' in n for n in notes)
    assert rows['N = 2']['APb ours'] == pytest.approx(45.0) and rows['N = 2']['APb n'] == 2  # the None majority
    same = [n for n in notes if 'N/N2: seed2' in n]
    assert same and 'no difference found in config.json' in same[0]


def test_nan_seed_makes_the_mean_nan(tmp_path):
    """A finished seed with NaN APb: the row used to say '2 finished' while the mean silently used one seed."""
    root = tmp_path / 'runs'
    identity_run(root, 'N0', 0, 0.40)
    bad = det_final(0.42)
    bad['coco/bbox_mAP'] = math.nan  # json.dumps writes NaN; collect reads it back as NaN
    identity_run(root, 'N0', 1, 0.42, final=bad)
    assert 'NaN' in (root / 'tiny' / 'N' / 'N0' / 'seed1' / 'final_metrics.json').read_text()
    res = collect_grid('N', 'tiny', root, expected=[('N0', 0), ('N0', 1)])
    rows, df, notes = _rows(res)
    n0 = rows['N = 0']
    assert math.isnan(n0['APb ours']) and n0['APb n'] == 2 and n0['APb nan seeds'] == '1'
    assert math.isnan(n0['APb diff'])
    assert n0['APm ours'] == pytest.approx((36 + 37.8) / 2) and n0['APm nan seeds'] == ''  # other columns unaffected
    md = to_markdown(df, A2, notes, 'tiny')
    assert '| N = 0 | NaN (n=2) | 40.2 | - | base |' in md
    assert any(n.startswith('NaN: N = 0 APb: seed1 finished with APb = NaN') and 'seeds 0, 1' in n for n in notes)


def test_cpu_memory_is_not_available_rather_than_nan(tmp_path):
    """A quantity no seed recorded (GPU memory of a CPU run) stays '-', not a NaN warning."""
    root = tmp_path / 'runs'
    for run in ('global', 'deformable'):
        for s in (0, 1):
            identity_run(root, run, s, 0.3 + 0.01 * s, grid='attention')
    res = collect_grid('attention', 'tiny', root, expected=[(r, s) for r in ('global', 'deformable') for s in (0, 1)])
    df, notes = build_table(res, LAYOUTS['attention'][0], sizes={})
    rec = df.set_index('Row').loc['Global']
    assert rec['Memory (GB) n'] == 0 and not any(n.startswith('NaN:') for n in notes)


def test_intervals_noise_marks_and_seeds_needed(tmp_path):
    root = tmp_path / 'runs'
    for s, ap in enumerate((0.39, 0.41, 0.42)):  # APb 40.67 ± 3.79 vs the paper's 40.2: within noise
        identity_run(root, 'N0', s, ap)
    for s, ap in enumerate((0.40, 0.42, 0.41)):  # 41.0 vs N0's 40.67: within noise
        identity_run(root, 'N1', s, ap)
    for s, ap in enumerate((0.60, 0.61, 0.62)):  # 61.0: far from N0 and from the paper's 43.9
        identity_run(root, 'N2', s, ap)
    identity_run(root, 'N4', 0, 0.45)  # one seed: no interval, nothing tested
    res = collect_grid('N', 'tiny', root, expected=[(r, s) for r in ('N0', 'N1', 'N2') for s in range(3)] + [('N4', 0)])
    rows, df, notes = _rows(res)
    n0, n1, n2, n4 = (rows[f'N = {k}'] for k in (0, 1, 2, 4))
    sd0 = math.sqrt(((39 - 122 / 3) ** 2 + (41 - 122 / 3) ** 2 + (42 - 122 / 3) ** 2) / 2)
    assert n0['APb ci95'] == pytest.approx(T975[2] * sd0 / math.sqrt(3))
    assert n0['APb diff noise'] is True
    assert n0['APb diff seeds'] == math.ceil(Z2 * sd0 ** 2 / (122 / 3 - 40.2) ** 2)  # k = 1 against the paper
    assert n1['APb base noise'] is True
    assert n1['APb base seeds'] == math.ceil(2 * Z2 * (sd0 ** 2 + 1.0) / 2 / (41 - 122 / 3) ** 2)  # k = 2, per run
    assert n2['APb diff noise'] is False and n2['APb base noise'] is False and math.isnan(n2['APb base seeds'])
    assert n4['APb diff noise'] is None and math.isnan(n4['APb ci95'])
    md = to_markdown(df, A2, notes, 'tiny')
    line = {ln.split(' | ')[0][2:]: ln for ln in md.splitlines() if ln.startswith('| N = ')}
    assert f"| {122 / 3:.1f} ± {n0['APb ci95']:.1f} (n=3) | 40.2 | +0.5 ~ ({int(n0['APb diff seeds'])} seeds) | base |" \
        in line['N = 0']
    assert f"+0.3 ~ ({int(n1['APb base seeds'])} seeds)" in line['N = 1']
    assert '| 61.0 ± 2.5 (n=3) | 43.9 | +17.1 | +20.3 |' in line['N = 2']  # resolved: no mark
    assert '| 45.0 (n=1) | 44.7 | +0.3 | +4.3 |' in line['N = 4']  # one seed: no interval, no mark
    assert 'Student-t interval' in md and 'z(1-α/2) + z(power)' in md and 'power = 0.8' in md
    assert "(n=1): one finished seed: no interval exists" in md


def test_runs_csv_and_table_csv_carry_intervals(tmp_path):
    import pandas as pd
    root = make_grid_N_smoke_seed(tmp_path / 'runs')
    out = tmp_path / 'out'
    assert main(['N', '--runs-root', str(root), '--out', str(out), '--seeds', '3']) == 0
    t = pd.read_csv(out / 'tiny' / 'N' / 'table.csv').set_index('Row')
    assert t.loc['N = 0', 'APb n'] == 2 and t.loc['N = 0', 'APb ci95'] == pytest.approx(T975[1] * 1.0, rel=1e-4)
    assert t.loc['N = 1', 'APb base noise'] and t.loc['N = 1', 'APb base seeds'] >= 2
    assert t.loc['N = 0', 'APb nan seeds'] != t.loc['N = 0', 'APb nan seeds']  # empty in the CSV: none


def test_seeds_outside_the_expected_list_are_not_averaged(tmp_path):
    """collect lists a seed found on disk outside the expected (run, seed) list as 'not used in tables': it isn't."""
    root = make_grid_N_smoke_seed(tmp_path / 'runs')
    res = collect_grid('N', 'tiny', root, expected=[('N1', 0)])
    assert any('N/N1/seed2: on disk but not in the grid definition; listed, not used in tables' in w
               for w in res.warnings)
    assert not [r for r in res.runs if r.run == "N1" and r.seed == 2][0].in_grid
    rows, _, _ = _rows(res)
    assert rows['N = 1']['APb n'] == 1 and rows['N = 1']['APb ours'] == pytest.approx(80.0)
    assert rows['N = 1']['runs'] == 'N1: 1 finished' and rows['N = 0']['runs'] == 'N0: not in grid'

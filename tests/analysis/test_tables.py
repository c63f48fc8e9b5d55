"""Tables against the paper: the md file is parsed here independently of analysis.paper."""
import json
import math
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest

from analysis.collect import collect_grid
from analysis.layouts import LAYOUTS
from analysis.paper import PAPER_JSON, load_paper_tables, parse_value
from analysis.tables import build_table, main, to_latex, to_markdown, update_readme
from tests.analysis.fakeruns import make_grid_N

SHARED_MD = Path('/work/shared/paper/paper_tables.md')
REPO_MD = Path(__file__).resolve().parents[2] / 'analysis' / 'data' / 'paper_tables.md'
# The shared transcription when this machine has it; CI machines use the verbatim copy in the repo.
PAPER_MD = SHARED_MD if SHARED_MD.is_file() else REPO_MD


def test_repo_copy_of_md_is_verbatim():
    assert REPO_MD.is_file()
    if SHARED_MD.is_file():
        assert REPO_MD.read_text() == SHARED_MD.read_text(), 'copy /work/shared/paper/paper_tables.md again'


def parse_md(text):
    """Section id -> (header, rows) for every markdown table in paper_tables.md."""
    tables, cur = {}, None
    for line in text.splitlines():
        m = re.match(r'^## ([TAF]\d)\. ', line)
        if m:
            cur = m.group(1)
            continue
        if line.startswith('## '):
            cur = None
        elif cur and line.startswith('|'):
            cells = [c.strip() for c in line.strip()[1:-1].split('|')]
            if all(re.fullmatch(r'-+', c) for c in cells):
                continue
            if cur not in tables:
                tables[cur] = (cells, [])
            else:
                tables[cur][1].append(cells)
    return tables


@pytest.fixture(scope='module')
def md_tables():
    return parse_md(PAPER_MD.read_text())


def test_paper_data_matches_md_exactly(md_tables):
    ours = load_paper_tables()
    assert set(ours) == set(md_tables) == {'T1', 'T2', 'T3', 'T4', 'T5', 'T6', 'A1', 'A2', 'A3', 'A4'}
    for k, (header, rows) in md_tables.items():
        assert ours[k].header == header, k
        assert ours[k].rows == rows, k
        for printed, unique in zip(header, ours[k].columns):
            assert unique == printed or unique.endswith(' ' + printed) or printed.startswith(unique.split()[0]), (k, printed, unique)


def test_parse_value():
    assert parse_value('44.7') == 44.7
    assert parse_value('41.6*') == 41.6
    assert parse_value('1080G') == 1080 and parse_value('0.36s') == 0.36 and parse_value('0.16s/iter') == 0.16
    assert parse_value('19.0G (*)') == 19.0 and parse_value('86M') == 86
    for missing in ('?', '-', '', 'yes', 'Add'):
        assert math.isnan(parse_value(missing))


def test_question_marks_stay_missing():
    t1 = load_paper_tables()['T1']
    assert t1.row('ViT-B')['1x APb'] == '?' and math.isnan(t1.value('ViT-B', '1x APb'))
    raw = json.loads(PAPER_JSON.read_text())
    assert sum(c == '?' for r in raw['tables']['T1']['rows'] for c in r) == 31  # Swin-B 4, ViT-B 11, ViTDet-B 12, ViT-Adapter-L 4


# Rows of each paper table that our grids reproduce, in order, as printed in the md (first column,
# plus the second for tables whose rows need two cells); None = our row has no paper counterpart.
EXPECTED_ROWS = {
    'A1': ['ViT-S baseline', 'Variant 1', 'Variant 2', 'ViT-Adapter-S'],
    'A2': ['0', '1', '2', '4', '6'],
    'A3': ['Global (Vaswani 2017)', 'CSwin (Dong 2021)', 'Pale (Wu 2022)', 'Deformable (Zhu 2020)'],
    'T3': [('ViT-Adapter-B', 'ImageNet-1K (DeiT-B)'), ('ViT-Adapter-B', 'ImageNet-22K (AugReg-B)'),
           ('ViT-Adapter-B', 'Multi-modal (Uni-Perceiver-B)'), None, None, None],  # DINOv2-B, MAE-B, EVA-02-B: beyond
    'T1': ['ViT-T', 'ViT-Adapter-T', 'ViT-S', 'ViT-Adapter-S', 'ViT-B', 'ViT-Adapter-B', 'ViT-L (IN-22K)',
           'ViT-Adapter-L (IN-22K)'],
    'T4': [('ViT-T', 'IN-1K'), ('ViT-Adapter-T', 'IN-1K'), ('ViT-S', 'IN-1K'), ('ViT-Adapter-S', 'IN-1K'),
           ('ViT-B', 'IN-1K'), ('ViT-Adapter-B', 'IN-1K'), None, ('ViT-Adapter-L', 'IN-22K')],
    'A4': [('ViT-B', 'Semantic FPN'), ('ViT-Adapter-B', 'Semantic FPN'), ('ViT-L', 'Semantic FPN'),
           ('ViT-Adapter-L', 'Semantic FPN')],
}
EXPECTED_ROWS['T2'] = [(fw, m) for fw, ms in (('Cascade Mask R-CNN', ('ViT-S', 'ViT-Adapter-S', 'ViT-B', 'ViT-Adapter-B')),
                                            ('ATSS', ('ViT-S', 'ViT-Adapter-S')), ('GFL', ('ViT-S', 'ViT-Adapter-S')))
                       for m in ms]
EXPECTED_ROWS['T5'] = [('ViT-Adapter-L', 'HTC++', 'IN-22K, sup')]
EXPECTED_ROWS['T6'] = [('ViT-Adapter-L', 'Mask2Former', 'IN-22K, sup'), ('ViT-Adapter-L', 'Mask2Former', 'IN-22K, BEiT'),
                       ('ViT-Adapter-L', 'Mask2Former', 'Multi-modal, BEiTv2')]
# Paper columns compared per table (as printed; T1/T4 by position because names repeat).
EXPECTED_COLS = {
    'A1': [5, 6, 7], 'A2': [1, 2, 3], 'A3': [2, 3, 4, 5, 6, 7], 'T3': [2, 3],
    'T1': [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13], 'T4': [2, 3, 4, 5, 6, 7], 'A4': [3, 4, 5, 6, 8, 9],
}
EXPECTED_COLS['T2'] = [2, 3, 4, 5]
EXPECTED_COLS['T5'] = [4, 5, 6, 7]
EXPECTED_COLS['T6'] = [6, 7, 8]


def _md_row(md, key, sel):
    header, rows = md[key]
    hits = [r for r in rows if (r[0] == sel if isinstance(sel, str) else
                                (r[0] == sel[0] and sel[1] in (r[1], r[2])) if len(sel) == 2 else
                                (r[0] == sel[0] and all(x in r[1:4] for x in sel[1:])))]  # T5, T6: 3 label cells
    assert len(hits) == 1, (key, sel, hits)
    return hits[0]


@pytest.mark.parametrize('grid', list(LAYOUTS))
def test_layout_rows_columns_and_paper_values(grid, md_tables, tmp_path):
    res = collect_grid(grid, 'tiny', tmp_path, expected=[])  # no runs at all: paper side only
    for layout in LAYOUTS[grid]:
        df, notes = build_table(res, layout)
        header = md_tables[layout.key][0]
        assert [c.paper_col and layout_col_index(layout.key, c.paper_col) for c in layout.cols] == EXPECTED_COLS[layout.key]
        assert len(df) == len(EXPECTED_ROWS[layout.key])
        for rec, sel in zip(df.to_dict('records'), EXPECTED_ROWS[layout.key]):
            md_row = _md_row(md_tables, layout.key, sel) if sel else None
            for c in layout.cols:
                i = layout_col_index(layout.key, c.paper_col)
                assert rec[f'{c.name} paper raw'] == (md_row[i] if md_row else '-'), (layout.key, sel, header[i])
                assert rec[f'{c.name} n'] == 0 and math.isnan(rec[f'{c.name} ours'])
        md = to_markdown(df, layout, notes, 'tiny')
        assert "tiny profile: synthetic data, NOT a reproduction of the paper's numbers" in md.splitlines()[0]
        assert 'NOT a reproduction' not in to_markdown(df, layout, notes, 'paper').splitlines()[0]
        assert '\\begin{tabular}' in to_latex(df, layout, notes, 'tiny')


def layout_col_index(key, paper_col):
    return load_paper_tables()[key].columns.index(paper_col)


def test_table_values_from_runs(tmp_path):
    root = make_grid_N(tmp_path / 'runs')
    res = collect_grid('N', 'tiny', root, expected=[(r, s) for r in ('N0', 'N1', 'N2', 'N4', 'N6') for s in (0, 1)])
    df, notes = build_table(res, LAYOUTS['N'][0], sizes={})
    rows = {r['Row']: r for r in df.to_dict('records')}
    n0 = rows['N = 0']
    assert n0['APb ours'] == pytest.approx(11.0) and n0['APb std'] == pytest.approx(math.sqrt(2))
    assert n0['APb n'] == 2 and n0['APb paper'] == 40.2 and n0['APb diff'] == pytest.approx(11.0 - 40.2)
    assert rows['N = 2']['APb n'] == 1 and rows['N = 2']['APb ours'] == pytest.approx(14.0)  # failed seed left out
    assert '1 failed' in rows['N = 2']['runs'] and '1 running' in rows['N = 4']['runs']
    assert rows['N = 6']['APb n'] == 0 and '2 missing' in rows['N = 6']['runs']
    md = to_markdown(df, LAYOUTS['N'][0], notes, 'tiny')
    # ± is the half-width of the 95% t-interval (not the std): t(0.975, 1) * sqrt(2) / sqrt(2) = 12.706
    half = 12.7062047 * math.sqrt(2) / math.sqrt(2)
    assert n0['APb ci95'] == pytest.approx(half)
    assert f'| N = 0 | 11.0 ± {half:.1f} (n=2) | 40.2 | -29.2 | base |' in md
    assert '| N = 2 | 14.0 (n=1) | 43.9 | -29.9 | +3.0 |' in md  # one seed: no interval, not a fake ± 0
    assert '| N = 6 | - | 44.7 | - | - |' in md


def test_write_outputs_cli_and_readme(tmp_path, capsys):
    root = make_grid_N(tmp_path / 'runs')
    out = tmp_path / 'results'
    readme = tmp_path / 'README.md'
    readme.write_text('# x\n<!-- results:N:start -->\nold\n<!-- results:N:end -->\ntail\n')
    assert main(['N', '--profile', 'tiny', '--runs-root', str(root), '--out', str(out), '--seeds', '2',
                 '--update-readme', str(readme)]) == 0
    d = out / 'tiny' / 'N'
    assert {p.name for p in d.iterdir()} >= {'table.md', 'table.tex', 'table.csv', 'runs.csv'}
    text = readme.read_text()
    assert 'old' not in text and text.endswith('<!-- results:N:end -->\ntail\n') and 'N = 0' in text
    printed = capsys.readouterr().out
    assert 'N/N6/seed1: missing' in printed and 'N/N2/seed0: failed' in printed
    # regenerating is idempotent; a foreign file is not overwritten silently
    assert not update_readme(readme, 'N', text.split('<!-- results:N:start -->\n')[1].split('<!-- results:N:end')[0])
    (d / 'table.md').write_text('my notes')
    assert main(['N', '--runs-root', str(root), '--out', str(out)]) == 2
    assert 'not generated by analysis.tables' in capsys.readouterr().err


def test_runs_csv_paths_are_relative_to_the_runs_root(tmp_path):
    """A moved runs tree gives the same runs.csv; each path is the run folder under the root it was built from."""
    root = make_grid_N(tmp_path / 'runs')
    moved = shutil.copytree(root, tmp_path / 'elsewhere' / 'runs2')
    for r, out in ((root, 'a'), (moved, 'b')):
        assert main(['N', '--profile', 'tiny', '--runs-root', str(r), '--out', str(tmp_path / out),
                     '--seeds', '2']) == 0
    text = (tmp_path / 'a' / 'tiny' / 'N' / 'runs.csv').read_text()
    assert text == (tmp_path / 'b' / 'tiny' / 'N' / 'runs.csv').read_text()
    runs = pd.read_csv(tmp_path / 'a' / 'tiny' / 'N' / 'runs.csv')
    assert list(runs['path']) == [f'tiny/N/{r}/seed{s}' for r, s in zip(runs['run'], runs['seed'])]
    assert all((moved / p).is_dir() for p, state in zip(runs['path'], runs['state']) if state != 'missing')


def test_cli_errors(tmp_path, capsys):
    assert main(['N', '--runs-root', str(tmp_path / 'absent')]) == 2
    assert 'runs root' in capsys.readouterr().err
    assert main(['bogus', '--runs-root', str(tmp_path)]) == 2
    assert "unknown grid 'bogus'" in capsys.readouterr().err
    assert main(['all', '--runs-root', str(tmp_path)]) == 2
    assert 'no grid has runs' in capsys.readouterr().err
    readme = tmp_path / 'R.md'
    readme.write_text('no markers')
    from analysis.collect import AnalysisError
    with pytest.raises(AnalysisError, match='markers'):
        update_readme(readme, 'N', 'x')


def test_flops_option_backbone_only(tmp_path):
    import pandas as pd

    from tests.analysis.fakeruns import simple_det_run, tiny_backbone_config
    root = tmp_path / 'runs'
    for run in ('global', 'deformable'):
        simple_det_run(root, 'tiny', 'attention', run, 0, 0.1,
                       config=tiny_backbone_config('full', 4, attn_type=run))
    out = tmp_path / 'out'
    assert main(['attention', '--runs-root', str(root), '--out', str(out), '--flops', '64', '--seeds', '1']) == 0
    df = pd.read_csv(out / 'tiny' / 'attention' / 'table.csv')
    rows = df.set_index('Row')
    for r in ('Global', 'Deformable'):
        assert rows.loc[r, 'FLOPs (G) ours'] > 0 and math.isnan(rows.loc[r, 'FLOPs (G) diff'])
    assert math.isnan(rows.loc['CSwin', 'FLOPs (G) ours'])  # missing run
    md = (out / 'tiny' / 'attention' / 'table.md').read_text()
    assert "backbone GMACs at 64x64 (adapter.flops): backbone only, NOT the paper's whole-model FLOPs" in md


def test_all_grids_with_runs(tmp_path, capsys):
    from tests.analysis.fakeruns import seg_val_line, simple_det_run, train_line, write_run
    root = tmp_path / 'runs'
    simple_det_run(root, 'tiny', 'components', 'full', 0, 0.2)
    write_run(root, 'tiny', 'main-seg', 'semfpn_vit_adapter_S', 0, task='seg',
              starts=[[train_line(10, 1.0), seg_val_line(0, 30.0)]], final={'mIoU': 30.0, 'aAcc': 80.0})
    out = tmp_path / 'out'
    assert main(['all', '--runs-root', str(root), '--out', str(out)]) == 0
    assert sorted(p.name for p in (out / 'tiny').iterdir()) == ['components', 'main-seg']
    assert {p.name for p in (out / 'tiny' / 'main-seg').iterdir()} >= {'table.md', 'table_A4.md', 'table_A4.csv'}
    t4 = (out / 'tiny' / 'main-seg' / 'table.md').read_text()
    assert '| ViT-Adapter-S (IN-1K) | - | 31.9 | - | 30.0 (n=1) | 46.1 | -16.1 |' in t4  # one seed: no interval
    assert 'One finished seed per run: no interval exists' in t4


def test_param_footnotes_in_the_paper_profile(tmp_path):
    """A #Param farther from the paper's than its rounding gets a footnote: the layout's cause, else 'no known
    cause'; within the rounding, none. The tiny profile (stand-in models) gets none."""
    from tests.analysis.fakeruns import seg_val_line, train_line, write_run
    root = tmp_path / 'runs'
    for profile in ('paper', 'tiny'):
        for run, params in (('upernet_vit_adapter_B', 133.62), ('upernet_vit_adapter_S', 57.61),
                            ('upernet_vit_S', 53.4)):
            write_run(root, profile, 'main-seg', run, 0, task='seg',
                      starts=[[train_line(10, 1.0), seg_val_line(0, 40.0)]],
                      final={'mIoU': 40.0, 'aAcc': 80.0, 'params_m': params})
    out = tmp_path / 'out'
    for profile in ('paper', 'tiny'):
        assert main(['main-seg', '--profile', profile, '--runs-root', str(root), '--out', str(out)]) == 0
    md = (out / 'paper' / 'main-seg' / 'table.md').read_text()
    rows = {line.split(' | ')[0].lstrip('| '): line for line in md.splitlines() if line.startswith('| ViT')}
    assert '| 53.4 | 53.6 | -0.2 [1] |' in rows['ViT-S (IN-1K)']  # marks numbered in row order
    assert '| 57.6 | 57.6 | +0.0 |' in rows['ViT-Adapter-S (IN-1K)']
    assert '| 133.6 | 133.9 | -0.3 [2] |' in rows['ViT-Adapter-B (IN-1K)']
    assert "- [1] #Param differs from the paper's rounded number: no known cause" in md
    assert "- [2] #Param differs from the paper's rounded number: ADE20K B, ImageNet-1K: DeiT-B/16 at 224" in md
    assert '[1]' not in (out / 'tiny' / 'main-seg' / 'table.md').read_text()


def test_pretrain_table_marks_the_rows_beyond_the_paper(tmp_path):
    """T3's DINOv2-B, MAE-B and EVA-02-B rows (grid runs dinov2_lvd142m, mae_in1k, eva02_in21k) have no paper row:
    labelled and noted."""
    from experiments.grids import get_grid
    layout = LAYOUTS['pretrain'][0]
    assert {r.runs[''] for r in layout.rows} == set(get_grid('pretrain').names)
    res = collect_grid('pretrain', 'tiny', tmp_path, expected=[])
    df, notes = build_table(res, layout)
    md = to_markdown(df, layout, notes, 'tiny')
    for label in ('LVD-142M (DINOv2-B/14) [beyond the paper]', 'ImageNet-1K, MAE (MAE-B) [beyond the paper]',
                  'ImageNet-21K, MIM (EVA-02-B/14) [beyond the paper]'):
        assert f'| {label} |' in md and f'{label}: no such row in paper table T3' in md
    assert md.count('[beyond the paper]') >= 3 and 'ImageNet-1K (DeiT-B) [beyond' not in md

"""#Param rebuilt from a run's config text, checked against the paper (whole models on the meta device)."""
import json
import math
from pathlib import Path

import pytest

from analysis.model_summary import model_size_from_config, run_model_size
from analysis.paper import paper_table

CONFIGS = Path(__file__).resolve().parents[2] / 'experiments' / 'configs'


@pytest.mark.parametrize('cfg, task, table, row, col', [
    ('maskrcnn_vit_adapter_S_1x.py', 'det', 'A2', '4', '#Param'),
    ('semfpn_vit_adapter_S_80k.py', 'seg', 'T4', 'Method=ViT-Adapter-S;Pre-train=IN-1K', 'SemFPN #Param'),
])
def test_whole_model_params_match_paper(cfg, task, table, row, col):
    if not (CONFIGS / cfg).is_file():
        pytest.skip(f'experiments/configs/{cfg} not present')
    from mmengine.config import Config

    from experiments.rundir import json_data
    data = json.loads(json.dumps(json_data(Config.fromfile(str(CONFIGS / cfg)).to_dict())))  # as config.json
    params, source = model_size_from_config(data, task)
    assert source == 'whole model built from the run config'
    paper = paper_table(table).value(row, col, by='multi' if '=' in row else None)
    assert params == pytest.approx(paper, abs=0.15)


def test_unavailable_is_reported():
    warn = []
    p, src = run_model_size({'model': dict(type='NoSuchDetector', backbone=dict(type='Nope'))}, 'det',
                            'x/y/seed0', warn)
    assert math.isnan(p) and src.startswith('not available') and 'x/y/seed0: #Param not available' in warn[0]
    p, src = run_model_size(None, 'det', 'x/y/seed0', warn)
    assert math.isnan(p) and 'no config.json' in warn[-1] and 'never executed' in warn[-1]

"""The paper configs build models whose size is the paper's #Param (Tables 1 and 4), to +-0.1M.

Built on the meta device from the config files themselves (not from the adapter's own dicts), so a config
that drifts from the paper (a wrong pretrain_size, FPN width or head) fails here.
"""
import pytest
from mmengine.config import Config

from analysis.model_summary import model_size_from_config
from analysis.paper import paper_table

CASES = [
    # config, task, paper table, row label, #Param column
    ('maskrcnn_vit_adapter_T_1x', 'det', 'T1', 'ViT-Adapter-T', '#Param'),
    ('maskrcnn_vit_adapter_S_1x', 'det', 'T1', 'ViT-Adapter-S', '#Param'),
    ('maskrcnn_vit_adapter_B_1x', 'det', 'T1', 'ViT-Adapter-B', '#Param'),
    ('maskrcnn_vit_adapter_L_1x', 'det', 'T1', 'ViT-Adapter-L (IN-22K)', '#Param'),
    ('maskrcnn_vit_T_1x', 'det', 'T1', 'ViT-T', '#Param'),
    ('maskrcnn_vit_S_1x', 'det', 'T1', 'ViT-S', '#Param'),
    ('maskrcnn_vit_L_3x', 'det', 'T1', 'ViT-L (IN-22K)', '#Param'),
    ('semfpn_vit_adapter_T_80k', 'seg', 'T4', 'ViT-Adapter-T', 'SemFPN #Param'),
    ('semfpn_vit_adapter_S_80k', 'seg', 'T4', 'ViT-Adapter-S', 'SemFPN #Param'),
    ('semfpn_vit_adapter_B_80k', 'seg', 'T4', 'ViT-Adapter-B', 'SemFPN #Param'),
    ('semfpn_vit_T_80k', 'seg', 'T4', 'ViT-T', 'SemFPN #Param'),
    ('semfpn_vit_S_80k', 'seg', 'T4', 'ViT-S', 'SemFPN #Param'),
    ('semfpn_vit_B_80k', 'seg', 'T4', 'ViT-B', 'SemFPN #Param'),
    ('upernet_vit_adapter_T_160k', 'seg', 'T4', 'ViT-Adapter-T', 'UperNet #Param'),
    ('upernet_vit_adapter_S_160k', 'seg', 'T4', 'ViT-Adapter-S', 'UperNet #Param'),
    ('upernet_vit_adapter_B_160k', 'seg', 'T4', 'ViT-Adapter-B', 'UperNet #Param'),
    ('upernet_vit_T_160k', 'seg', 'T4', 'ViT-T', 'UperNet #Param'),
    ('upernet_vit_S_160k', 'seg', 'T4', 'ViT-S', 'UperNet #Param'),
    ('upernet_vit_B_160k', 'seg', 'T4', 'ViT-B', 'UperNet #Param'),
]


@pytest.mark.parametrize('config,task,table,label,column', CASES, ids=[c[0] for c in CASES])
def test_paper_config_param_count(config, task, table, label, column):
    text = Config.fromfile(f'experiments/configs/{config}.py').pretty_text
    ours, how = model_size_from_config(text, task)
    assert how.startswith('whole model'), how
    tab = paper_table(table)
    rows = tab.raw[tab.raw[tab.columns[0]] == label]
    if table == 'T4':
        rows = rows[rows['Pre-train'] == 'IN-1K']
    assert len(rows) == 1, (table, label)
    paper = float(rows.iloc[0][column])
    assert ours == pytest.approx(paper, abs=0.1), f'{config}: {ours:.2f}M vs paper {paper}M'

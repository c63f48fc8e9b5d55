"""Every config parses; the tiny ones and the paper T/S ones build on CPU (B/L: parse only, building is slow)."""
import io
import tokenize
from pathlib import Path

import pytest
import torch
from mmengine.config import Config

from experiments import grids
from experiments.grids import CONFIG_DIR

ALL = sorted(p for p in CONFIG_DIR.rglob('*.py') if not p.name.startswith('_') and '_base_' not in p.parts)
PAPER = [p for p in ALL if p.parent == CONFIG_DIR]
TINY = [p for p in ALL if p.parent.name == 'tiny']
BUILD_PAPER = [p for p in PAPER if '_T_' in p.name or '_S_' in p.name]


def _id(p: Path) -> str:
    return str(p.relative_to(CONFIG_DIR))


def test_config_inventory():
    # 32 of the grids + the ADE20K ViT-Adapter-B ImageNet-22K row; tiny: 4 ViT-Adapter + their 4 ViTBaseline twins;
    # det-frameworks (Table 2): 8 paper configs, 3 tiny ones and their 3 ViTBaseline twins
    # sota (Tables 5, 6): HTC++ and Mask2Former, one paper and one tiny config each, + the BEiT-Adapter Mask2Former 896
    assert len(PAPER) == 33 + 8 + 2 + 1 and len(TINY) == 8 + 6 + 2 + 1
    for p in ALL:  # small deltas, never copies
        assert len(p.read_text().splitlines()) < 80, p


def _number_lines(number: str) -> set:
    """(file, line) of every numeric literal ``number`` in experiments/ and analysis/."""
    where = set()
    for p in sorted(CONFIG_DIR.parent.rglob('*.py')) + sorted((CONFIG_DIR.parent.parent / 'analysis').rglob('*.py')):
        tokens = tokenize.generate_tokens(io.StringIO(p.read_text()).readline)
        where |= {(p.name, t.start[0]) for t in tokens if t.type == tokenize.NUMBER and t.string == number}
    return where


def test_augreg_normalisation_is_written_once(monkeypatch):
    """AugReg's mean / std is a number only in experiments/grids.py; the configs with AugReg weights read it."""
    where = _number_lines('127.5')
    assert len(where) == 1 and next(iter(where))[0] == 'grids.py', sorted(where)
    aug = grids.PRETRAIN_SOURCES['augreg_in22k']['model']
    assert aug == {'data_preprocessor.mean': list(grids.AUGREG_MEAN), 'data_preprocessor.std': list(grids.AUGREG_STD)}
    monkeypatch.setattr(grids, 'AUGREG_MEAN', (1.0, 2.0, 3.0))
    for name in ('maskrcnn_vit_adapter_L_1x', 'maskrcnn_vit_L_3x', 'semfpn_vit_adapter_L_80k', 'upernet_vit_L_160k',
                 'upernet_vit_adapter_B_in22k_160k'):
        dp = Config.fromfile(str(CONFIG_DIR / f'{name}.py'), import_custom_modules=False).model.data_preprocessor
        assert dp.mean == [1.0, 2.0, 3.0] and dp.std == list(grids.AUGREG_STD), name


def test_imagenet_normalisation_is_written_once(monkeypatch):
    """ImageNet's mean / std are numbers only in experiments/grids.py; the configs and analysis.features read them."""
    for number in ('123.675', '58.395'):
        where = _number_lines(number)
        assert len(where) == 1 and next(iter(where))[0] == 'grids.py', (number, sorted(where))
    from analysis import features
    assert features.IMAGENET_MEAN == grids.IMAGENET_MEAN and features.IMAGENET_STD == grids.IMAGENET_STD
    monkeypatch.setattr(grids, 'IMAGENET_STD', (4.0, 5.0, 6.0))
    for name in ('maskrcnn_vit_adapter_S_1x', 'upernet_vit_adapter_S_160k', 'htcpp_vit_adapter_L_3x',
                 'mask2former_vit_adapter_L_640_160k'):
        dp = Config.fromfile(str(CONFIG_DIR / f'{name}.py'), import_custom_modules=False).model.data_preprocessor
        assert dp.std == [4.0, 5.0, 6.0] and dp.mean == list(grids.IMAGENET_MEAN), name


@pytest.mark.parametrize('path', ALL, ids=_id)
def test_parses(path):
    cfg = Config.fromfile(str(path))  # also imports the shims, optim and hooks (custom_imports)
    bb = cfg.model.backbone
    assert bb.type in ('ViTAdapter', 'ViTBaseline')
    assert cfg.randomness if 'randomness' in cfg else True
    assert any(h['type'] == 'FinalMetricsHook' for h in cfg.custom_hooks)
    assert cfg.train_cfg.type == 'IterBasedTrainLoop'
    # the paper configs' optimiser, schedule, data and evaluation: test_official_recipes.py
    assert cfg.optim_wrapper.optimizer.type == 'AdamW'
    if cfg.optim_wrapper.get('constructor') == 'ViTLayerDecayOptimWrapperConstructor':
        assert 'num_layers' not in cfg.optim_wrapper.paramwise_cfg  # counted in the model (experiments/optim.py)
    width = {'T': 192, 'S': 384, 'B': 768, 'L': 1024}
    for size, w in width.items():
        if f'_{size}_' in path.name:
            assert bb.arch == size
            neck = cfg.model.get('neck')
            neck = neck[-1] if isinstance(neck, (list, tuple)) else neck  # HTC++: [ExtraAttention, FPN]
            ch = neck.in_channels if neck else cfg.model.decode_head.in_channels
            assert ch == [w] * 4


def _build(cfg):
    from experiments.models import build_model
    return build_model({'mmdet': 'det', 'mmseg': 'seg'}[cfg.default_scope], cfg.model)


@pytest.mark.parametrize('path', TINY, ids=_id)
def test_tiny_builds_and_runs_forward(path):
    cfg = Config.fromfile(str(path))
    model = _build(cfg).eval()
    n = sum(p.numel() for p in model.parameters())
    assert n < 5e6
    with torch.no_grad():
        feats = model.extract_feat(torch.randn(1, 3, 128, 128))
    neck = cfg.model.get('neck')
    start = neck.get('start_level', 0) if isinstance(neck, dict) else 0  # ATSS / GFL: FPN from stride 8
    assert len(feats) >= 4 and feats[0].shape[-1] in (32, 128 // 4 // 2 ** start)


@pytest.mark.parametrize('path', BUILD_PAPER, ids=_id)
def test_paper_t_s_build(path):
    cfg = Config.fromfile(str(path))
    cfg.model.backbone.pretrained = None  # weights are not downloaded in tests
    model = _build(cfg)
    width = {'_T_': 192, '_S_': 384}[[k for k in ('_T_', '_S_') if k in path.name][0]]
    assert model.backbone.embed_dim == width
    if cfg.model.backbone.type == 'ViTAdapter':
        assert any('interactions' in n or 'spm' in n for n, _ in model.backbone.named_parameters())


@pytest.mark.parametrize('grid,run', [('main-det', 'maskrcnn_1x_vit_T'), ('main-seg', 'upernet_vit_adapter_L'),
                                      ('main-seg', 'semfpn_vit_B'), ('components', 'spm_add'),
                                      ('attention', 'pale')])
def test_tiny_grid_cells_build(grid, run, tmp_path):
    from experiments.grids import get_grid
    from experiments.launch import build_config
    spec = get_grid(grid).runs(1, only=[run])[0]
    cfg, _, _ = build_config(spec, 'tiny', {}, tmp_path, dry_run=True)
    model = _build(cfg).eval()
    with torch.no_grad():
        feats = model.extract_feat(torch.randn(1, 3, 128, 128))
    assert len(feats) >= 4

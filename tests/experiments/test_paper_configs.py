"""The paper configs carry the official backbone rules, and name sizes only through ``adapter.presets``.

Every config of ``experiments/configs`` (the paper's, top level, and the tiny ones) is loaded with mmengine; its
backbone dict is checked, and its backbone is built on the meta device to see the rules arrive in the module.
"""
from pathlib import Path

import pytest
import torch
from mmengine.config import Config

from adapter import build_backbone, get_preset
from adapter.presets import PRESET_FIELDS
from experiments.grids import CONFIG_DIR

PAPER = sorted(p for p in CONFIG_DIR.glob('*.py'))
TINY = sorted(p for p in (CONFIG_DIR / 'tiny').glob('*.py') if not p.name.startswith('_'))


def _id(p: Path) -> str:
    return str(p.relative_to(CONFIG_DIR))


def _backbone(path: Path) -> dict:
    return Config.fromfile(str(path), import_custom_modules=False).model.backbone.to_dict()


@pytest.mark.parametrize('path', PAPER, ids=_id)
def test_official_backbone_rules(path):
    """Layer scale 1.0 everywhere (BEiT-Adapter: BEiT's init_values 1e-6); the ViT tokens join the pyramid by the
    detection / segmentation rule."""
    bb = _backbone(path)
    assert bb['layer_scale_init'] == (1e-6 if '_beit_' in path.name else 1.0)
    task = 'seg' if path.name.startswith(('upernet', 'semfpn', 'mask2former')) else 'det'
    assert path.name.startswith(('maskrcnn', 'upernet', 'semfpn', 'cascade_mask_rcnn', 'atss', 'gfl', 'htcpp',
                                 'mask2former'))
    if bb['type'] == 'ViTAdapter':
        assert bb['vit_feature_source'] == {'det': 'final', 'seg': 'per_interaction'}[task]
    with torch.device('meta'):
        module = build_backbone(dict(bb, pretrained=None))
    assert all(type(b.ls1).__name__ == 'LayerScale' for b in module.vit.blocks)
    if bb['type'] == 'ViTAdapter':
        assert module.vit_feature_source == bb['vit_feature_source']


@pytest.mark.parametrize('path', [p for p in PAPER if p.name.startswith(('upernet', 'semfpn')) and '_B_' in p.name],
                         ids=_id)
def test_ade20k_b_pretraining_follows_the_official_config_of_its_row(path):
    """ImageNet-1K rows: DeiT-B/16 at 224 (the preset); the ImageNet-22K row: AugReg-B/16 at 384."""
    bb = _backbone(path)
    size = bb.get('pretrain_size', get_preset(bb['arch'])['pretrain_size'])
    if 'in22k' in path.name:
        assert size == 384 and 'B_16-i21k' in bb['pretrained'] and 'res_384' in bb['pretrained']
    else:
        assert size == 224 and bb['pretrained'].endswith('deit_base_patch16_224-b5f2ef4d.pth')
    with torch.device('meta'):
        module = build_backbone(dict(bb, pretrained=None))
    assert module.vit.pos_embed.shape[1] == (size // 16) ** 2


@pytest.mark.parametrize('path', PAPER + TINY, ids=_id)
def test_sizes_live_in_the_preset(path):
    """A config names the arch; it never restates a preset value (overriding one with another value is fine)."""
    cfg = Config.fromfile(str(path), import_custom_modules=False)
    bb = cfg.model.backbone
    preset = get_preset(bb.arch)
    assert not {k: bb[k] for k in PRESET_FIELDS if k in bb and bb[k] == preset[k]}
    assert not {'vit_width', 'vit_depth'} & set(cfg.keys())

"""Every paper config builds the official backbone: the settings of the official config of its row (from the
official key layout data, tests/adapter/data/official_layout.json) and its exact state-dict layout, so that
official checkpoints convert into it and back losslessly."""
import re

import pytest
import torch
from mmengine.config import Config

from adapter import build_backbone
from adapter.convert import convert_official, convert_to_official
from experiments.grids import CONFIG_DIR
from tests.adapter.official_layout import layouts, official_state_dict

PAPER = sorted(p for p in CONFIG_DIR.glob('*.py'))


def official_name(config: str) -> str:
    """'maskrcnn_vit_adapter_S_1x' -> 'det_adapter_S'; 'upernet_vit_B_160k' -> 'seg_baseline_B';
    'upernet_vit_adapter_B_in22k_160k' -> 'seg_adapter_B_in22k'; 'mask2former_beit_adapter_L_896_80k' ->
    'seg_beit_adapter_L_896' (the official BEiTAdapter)."""
    if config.startswith('mask2former_beit_adapter_L_896'):
        return 'seg_beit_adapter_L_896'
    m = re.fullmatch(r'(maskrcnn|upernet|semfpn|cascade_mask_rcnn|atss|gfl|htcpp|mask2former)_vit_(adapter_)?([TSBL])'
                     r'(_in22k)?_\w+', config)
    assert m, config
    task = 'seg' if m[1] in SEG_HEADS else 'det'  # the other detectors (Tables 2, 5) share the detection backbone
    return f"{task}_{'adapter' if m[2] else 'baseline'}_{m[3]}{m[4] or ''}"


SEG_HEADS = ('upernet', 'semfpn', 'mask2former')
#: Drop path of the ViT baselines of Table 2, whose official file (cascade ViT-B: 0.2) differs from the Mask R-CNN
#: baseline's (0.1) that official_layout.json records; the S rows have no official file and take the same 0.2.
DROP_PATH = {'cascade_mask_rcnn_vit_B_3x': 0.2, 'cascade_mask_rcnn_vit_S_3x': 0.2, 'atss_vit_S_3x': 0.2,
             'gfl_vit_S_3x': 0.2,
             'mask2former_vit_adapter_L_640_160k': 0.3}  # the official Mask2Former L file (UperNet L: 0.4)


def _backbone_cfg(path):
    bb = Config.fromfile(str(path), import_custom_modules=False).model.backbone.to_dict()
    bb.pop('pretrained', None)
    if bb.get('norm') == 'SyncBN':
        bb['norm'] = 'BN'  # same parameters and buffers; SyncBN needs a process group to run
    return bb


@pytest.mark.parametrize('path', PAPER, ids=[p.stem for p in PAPER])
def test_paper_config_has_the_official_settings_and_layout(path):
    name = official_name(path.stem)
    official = layouts()[name]
    kw = official['kwargs']
    with torch.device('meta'):
        model = build_backbone(_backbone_cfg(path))
    vit = model.vit
    depth = kw['depth']
    assert (vit.embed_dim, vit.depth, vit.num_heads) == (kw['embed_dim'], depth, kw['num_heads'])
    assert [blk.attn.window_size or None for blk in vit.blocks] == kw['window_size']
    assert [bool(blk.attn.window_size) for blk in vit.blocks] == kw['window_attn']
    rate = DROP_PATH.get(path.stem, kw['drop_path_rate'])
    assert [blk.drop_path.p for blk in vit.blocks] == pytest.approx([rate * i / (depth - 1) for i in range(depth)])
    # BEiT: no position embedding; the grid is that of the relative position tables, BEiT's img_size
    beit = kw.get('use_abs_pos_emb') is False
    assert vit.pretrain_grid == ((kw['img_size'] if beit else kw.get('pretrain_size', 224)) // 16,) * 2
    assert (vit.pos_embed is None, vit.cls_token is not None, vit.qkv_bias) == ((True, True, 'qv') if beit else
                                                                              (False, False, True))
    assert kw.get('layer_scale', True) and all(hasattr(blk.ls1, 'gamma') for blk in vit.blocks)
    if 'adapter' in name:
        assert model.indexes == kw['interaction_indexes']
        assert model.vit_feature_source == ('final' if name.startswith('det') else 'per_interaction')
        extractors = [b.extractor for b in model.interactions] + list(model.extra_extractors)
        assert [e.drop_path.p for e in extractors] == [rate] * 6
        attn = model.interactions[0].injector.attn
        assert (attn.n_heads, attn.n_points, attn.ratio) == (kw['deform_num_heads'], kw['n_points'],
                                                             kw['deform_ratio'])
        assert model.spm.fc1.in_channels == kw['conv_inplane']
    # the state dict is the official one: keys and shapes after conversion, nothing missing or left over
    converted, dropped, unmatched = convert_official(official_state_dict(name, device='meta'))
    ours = {'backbone.' + k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert unmatched == [] and {k: tuple(v.shape) for k, v in converted.items()} == ours
    back = convert_to_official(converted)
    assert {k[len('backbone.'):]: list(v.shape) for k, v in back.items()
            if k != 'backbone.cls_token' or 'cls_token' in official['keys']} == official['keys']

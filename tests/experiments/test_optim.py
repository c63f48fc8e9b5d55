import pytest
import torch
from torch import nn

from experiments.optim import ViTLayerDecayOptimWrapperConstructor, count_vit_blocks, layer_id_for_vit


def test_layer_ids():
    assert layer_id_for_vit('backbone.vit.pos_embed', 12) == 0
    assert layer_id_for_vit('backbone.vit.patch_embed.proj.weight', 12) == 0
    assert layer_id_for_vit('backbone.vit.blocks.0.attn.qkv.weight', 12) == 1
    assert layer_id_for_vit('backbone.vit.blocks.11.mlp.fc2.bias', 12) == 12
    assert layer_id_for_vit('backbone.spm.stem.0.weight', 12) == 13
    assert layer_id_for_vit('decode_head.conv_seg.weight', 12) == 13


class _Toy(nn.Module):
    def __init__(self):
        super().__init__()
        self.backbone = nn.Module()
        self.backbone.vit = nn.Module()
        self.backbone.vit.pos_embed = nn.Parameter(torch.zeros(1, 4, 8))
        self.backbone.vit.blocks = nn.ModuleList([nn.Linear(8, 8) for _ in range(3)])
        self.backbone.level_embed = nn.Parameter(torch.zeros(3, 8))
        self.head = nn.Linear(8, 2)


def test_constructor_scales_lr_and_decay():
    ctor = ViTLayerDecayOptimWrapperConstructor(
        dict(type='OptimWrapper', optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.05)),
        dict(num_layers=3, layer_decay_rate=0.5))
    wrapper = ctor(_Toy())
    groups = wrapper.optimizer.param_groups
    by_layer = {(g['layer_id'], g['weight_decay'] == 0): g for g in groups}
    # pos_embed: the smallest lr, decayed (the official rule: no decay for 1-D parameters and biases only)
    assert by_layer[(0, False)]['lr'] == pytest.approx(1e-3 * 0.5 ** 4)
    assert by_layer[(1, False)]['lr'] == pytest.approx(1e-3 * 0.5 ** 3)
    assert by_layer[(3, False)]['lr'] == pytest.approx(1e-3 * 0.5)
    assert by_layer[(4, False)]['lr'] == pytest.approx(1e-3) and by_layer[(4, False)]['weight_decay'] == 0.05
    assert len(by_layer[(4, False)]['params']) == 2  # level_embed (2-D: decayed) and the head's weight
    assert by_layer[(4, True)]['weight_decay'] == 0.0  # biases
    assert sum(len(g['params']) for g in groups) == len(list(_Toy().parameters()))


def test_no_decay_keys_exempt_more_parameters():
    ctor = ViTLayerDecayOptimWrapperConstructor(
        dict(type='OptimWrapper', optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.05)),
        dict(num_layers=3, layer_decay_rate=0.5, no_decay_keys=('pos_embed', 'level_embed')))
    groups = ctor(_Toy()).optimizer.param_groups
    by_layer = {(g['layer_id'], g['weight_decay'] == 0): len(g['params']) for g in groups}
    assert by_layer[(0, True)] == 1 and (0, False) not in by_layer  # pos_embed
    assert by_layer[(4, True)] == 2 and by_layer[(4, False)] == 1  # level_embed, the head's bias; its weight


def test_num_layers_is_counted_in_the_model():
    assert count_vit_blocks(_Toy()) == 3
    ctor = ViTLayerDecayOptimWrapperConstructor(
        dict(type='OptimWrapper', optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.05)),
        dict(layer_decay_rate=0.5))
    groups = ctor(_Toy()).optimizer.param_groups
    assert {g['layer_id'] for g in groups} == {0, 1, 2, 3, 4}
    assert min(g['lr'] for g in groups) == pytest.approx(1e-3 * 0.5 ** 4)
    with pytest.raises(ValueError, match='num_layers'):
        ViTLayerDecayOptimWrapperConstructor(dict(type='OptimWrapper', optimizer=dict(type='AdamW', lr=1e-3)),
                                             {})(nn.Linear(2, 2))


def test_constructor_rejects_unknown_keys():
    ctor = ViTLayerDecayOptimWrapperConstructor(
        dict(type='OptimWrapper', optimizer=dict(type='AdamW', lr=1e-3)), dict(num_layers=3, decay=0.9))
    with pytest.raises(ValueError, match='unknown paramwise_cfg keys'):
        ctor(_Toy())


def test_registered_in_all_registries():
    import mmdet.registry
    import mmengine.registry
    import mmseg.registry
    for reg in (mmengine.registry, mmdet.registry, mmseg.registry):
        assert reg.OPTIM_WRAPPER_CONSTRUCTORS.get('ViTLayerDecayOptimWrapperConstructor') is \
            ViTLayerDecayOptimWrapperConstructor


def test_head_embed_keys_put_mask2former_embeddings_in_layer_0():
    """The official segmentation constructor: the Mask2Former head's query / level embeddings and class / mask
    predictors share layer 0 with the ViT embeddings; the rest of the head (the pixel decoder's level_encoding too)
    keeps the full lr."""
    from experiments.optim import MASK2FORMER_HEAD_EMBED
    for name in ('decode_head.query_embed.weight', 'decode_head.query_feat.weight', 'decode_head.level_embed.weight',
                 'decode_head.cls_embed.bias', 'decode_head.mask_embed.4.weight'):
        assert layer_id_for_vit(name, 24, head_embed_keys=MASK2FORMER_HEAD_EMBED) == 0
        assert layer_id_for_vit(name, 24) == 25
    for name in ('decode_head.pixel_decoder.level_encoding.weight', 'decode_head.transformer_decoder.layers.0.ffn.'
                 'layers.0.0.weight', 'backbone.level_embed'):
        assert layer_id_for_vit(name, 24, head_embed_keys=MASK2FORMER_HEAD_EMBED) == 25

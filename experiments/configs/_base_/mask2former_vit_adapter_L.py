"""Mask2Former + ViT-Adapter-L on ADE20K, crop 640, 160k iterations (Table 6's ViT-Adapter-L Mask2Former row with
ImageNet-22K supervised pre-training: AugReg-L/16 at 384, as the suite's 'L').

No official config has this backbone; everything else is the official
segmentation/configs/ade20k/mask2former_beit_adapter_large_640_160k_ade20k_ss.py (its BEiT-L has relative position
bias, no absolute position embedding and layer scale 1e-6; the suite's ViT could take BEiT weights with
``rel_pos_bias=True``, but the paper's BEiT rows are not reproduced here): Mask2Former head at width 1024 (pixel
decoder 6 deformable layers, 32 heads, FFN 4096; decoder 9 layers, 32 heads; 100 queries; class weight 0.1 for "no
object"; losses cls 2 / mask 5 / dice 5 with 12,544 sampled points), drop path 0.3, gradient checkpointing, AdamW lr
2e-5, wd 0.05, layer-wise lr decay 0.90 over the 24 blocks (the segmentation version of the official constructor:
the head's query / level embeddings and class / mask predictors in layer 0 with the ViT embeddings, lr x 0.9^25),
1,500-iteration warm-up and poly decay, batch 8 x 2,
slide test 640 / 426. mmseg 1.x's ``Mask2FormerHead`` (mmdet's head and assigner, ``mmdet.`` scope).
Input normalisation: ImageNet mean / std, as that file (and the official HTC++ AugReg-L config; the UperNet AugReg
configs use AugReg's, ``experiments.grids.augreg_norm``).
"""
_base_ = ['./ade20k_vit_adapter.py', './vit_adapter_l.py']
from experiments.grids import imagenet_norm  # noqa: E402  (after _base_, so mmengine reads a classic config)
from experiments.models import wire  # noqa: E402
from experiments.recipes import ade20k_pipelines, warmup_poly  # noqa: E402

custom_imports = dict(imports=['mmdet.models'] + _base_.custom_imports.imports)
crop_size = (640, 640)
num_classes = 150
dim = 1024  # the official head width for L
_attn = dict(embed_dims=dim, num_heads=32, attn_drop=0.0, proj_drop=0.0, dropout_layer=None, batch_first=True)
_ffn = dict(embed_dims=dim, feedforward_channels=4 * dim, num_fcs=2, act_cfg=dict(type='ReLU', inplace=True),
            ffn_drop=0.0)  # the official with_cp=True: mmcv 2.x's FFN has no such option
model = wire(
    _base_.model,
    data_preprocessor=dict(**imagenet_norm(), size=crop_size),
    backbone=dict(_base_.vit_adapter_l, drop_path_rate=0.3, with_cp=True),
    decode_head=dict(
        type='Mask2FormerHead', in_channels=[dim] * 4, strides=[4, 8, 16, 32], feat_channels=dim, out_channels=dim,
        num_classes=num_classes, num_queries=100, num_transformer_feat_level=3, align_corners=False,
        pixel_decoder=dict(
            type='mmdet.MSDeformAttnPixelDecoder', num_outs=3, norm_cfg=dict(type='GN', num_groups=32),
            act_cfg=dict(type='ReLU'),
            encoder=dict(num_layers=6, layer_cfg=dict(
                self_attn_cfg=dict(embed_dims=dim, num_heads=32, num_levels=3, num_points=4, im2col_step=64,
                                   dropout=0.0, batch_first=True, norm_cfg=None, init_cfg=None),
                ffn_cfg=_ffn), init_cfg=None),
            positional_encoding=dict(num_feats=dim // 2, normalize=True), init_cfg=None),
        enforce_decoder_input_project=False,
        positional_encoding=dict(num_feats=dim // 2, normalize=True),
        transformer_decoder=dict(return_intermediate=True, num_layers=9, layer_cfg=dict(
            self_attn_cfg=_attn, cross_attn_cfg=_attn, ffn_cfg=dict(_ffn, dropout_layer=None, add_identity=True)),
            init_cfg=None),
        loss_cls=dict(type='mmdet.CrossEntropyLoss', use_sigmoid=False, loss_weight=2.0, reduction='mean',
                      class_weight=[1.0] * num_classes + [0.1]),
        loss_mask=dict(type='mmdet.CrossEntropyLoss', use_sigmoid=True, reduction='mean', loss_weight=5.0),
        loss_dice=dict(type='mmdet.DiceLoss', use_sigmoid=True, activate=True, reduction='mean', naive_dice=True,
                       eps=1.0, loss_weight=5.0),
        train_cfg=dict(
            num_points=12544, oversample_ratio=3.0, importance_sample_ratio=0.75,
            assigner=dict(type='mmdet.HungarianAssigner', match_costs=[
                dict(type='mmdet.ClassificationCost', weight=2.0),
                dict(type='mmdet.CrossEntropyLossCost', weight=5.0, use_sigmoid=True),
                dict(type='mmdet.DiceCost', weight=5.0, pred_act=True, eps=1.0)]),
            sampler=dict(type='mmdet.MaskPseudoSampler'))),
    test_cfg=dict(mode='slide', crop_size=crop_size, stride=(426, 426)))

optim_wrapper = dict(
    type='AmpOptimWrapper', dtype='bfloat16', loss_scale=1.0,  # AMP bf16 (experiments/amp.py)
    optimizer=dict(type='AdamW', lr=2e-5, betas=(0.9, 0.999), weight_decay=0.05),
    constructor='ViTLayerDecayOptimWrapperConstructor',
    # the official segmentation LayerDecayOptimizerConstructor: these head parameters are layer 0 (lr x 0.9 ** 25)
    paramwise_cfg=dict(layer_decay_rate=0.90, head_embed_keys=[
        'decode_head.mask_embed', 'decode_head.cls_embed', 'decode_head.level_embed', 'decode_head.query_embed',
        'decode_head.query_feat']))
max_iters = 160000
param_scheduler = warmup_poly(max_iters)  # as _base_/upernet_vit_adapter.py
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=16000)
train_pipeline, test_pipeline = ade20k_pipelines((2048, 640), crop_size)
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader

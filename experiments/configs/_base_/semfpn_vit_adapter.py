"""Semantic FPN with a ViT-Adapter-S backbone on ADE20K, 80k iterations.

Schedule as in PVT's Semantic FPN recipe that the paper follows (AdamW lr 1e-4, poly 0.9), 80k iterations at
batch 16; the paper's tables give only "80k", the remaining values are that recipe's.
"""
_base_ = ['./ade20k_vit_adapter.py']
from experiments.models import wire  # noqa: E402  (after _base_, so mmengine reads a classic config)

num_classes = 150
norm_cfg = dict(type='SyncBN', requires_grad=True)
# wire(): the FPN's in_channels are the backbone's width (the arch preset's), see experiments/models.py.
model = wire(
    _base_.model,
    neck=dict(type='FPN', out_channels=256, num_outs=4),
    decode_head=dict(
        type='FPNHead',
        in_channels=[256, 256, 256, 256],
        in_index=[0, 1, 2, 3],
        feature_strides=[4, 8, 16, 32],
        channels=128,
        dropout_ratio=0.1,
        num_classes=num_classes,
        norm_cfg=norm_cfg,
        align_corners=False,
        loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)),
    test_cfg=dict(mode='whole'))
optim_wrapper = dict(
    type='AmpOptimWrapper', dtype='bfloat16', loss_scale=1.0,  # AMP bf16 (experiments/amp.py)
    optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=1e-4),
    paramwise_cfg=dict(custom_keys=dict(level_embed=dict(decay_mult=0.0), pos_embed=dict(decay_mult=0.0),
                                        cls_token=dict(decay_mult=0.0))))
max_iters = 80000
param_scheduler = [dict(type='PolyLR', power=0.9, eta_min=0.0, by_epoch=False, begin=0, end=max_iters)]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=8000)

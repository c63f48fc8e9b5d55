"""Tiny profile of Mask R-CNN 3x+MS: 3x the tiny 1x iterations with multi-scale training (short side 96..160)."""
_base_ = ['./maskrcnn_tiny_1x.py']

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='RandomChoiceResize', scales=[(256, s) for s in range(96, 161, 16)], keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
max_iters = 1200  # 3 x the tiny 1x (400)
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=30),
    dict(type='MultiStepLR', by_epoch=False, begin=0, end=max_iters,
         milestones=[max_iters * 27 // 36, max_iters * 33 // 36], gamma=0.1),  # the 3x steps at 27/36, 33/36
]

"""3x = 36 COCO epochs (263,844 iterations at batch 16); lr steps after epochs 27 and 33."""
_base_ = ['./schedule_1x.py']
iters_per_epoch = 7329
max_iters = 36 * iters_per_epoch
train_cfg = dict(max_iters=max_iters)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=501),  # as schedule_1x.py
    dict(type='MultiStepLR', by_epoch=False, begin=0, end=max_iters,
         milestones=[27 * iters_per_epoch, 33 * iters_per_epoch], gamma=0.1),
]

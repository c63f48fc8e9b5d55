"""1x = 12 COCO epochs at batch 16, as iterations so that preempted jobs resume mid-epoch exactly.

COCO train2017 keeps 117,266 images after filter_empty_gt -> 117,266 / 16 = 7,329 iterations per epoch
(rounded down). 12 epochs = 87,948 iterations; lr steps after epochs 8 and 11 = iterations 58,632 and 80,619.
"""
iters_per_epoch = 7329
max_iters = 12 * iters_per_epoch
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=iters_per_epoch)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=500),  # 500-iteration warm-up
    dict(type='MultiStepLR', by_epoch=False, begin=0, end=max_iters,
         milestones=[8 * iters_per_epoch, 11 * iters_per_epoch], gamma=0.1),
]

"""1x = 12 COCO epochs at batch 16, as iterations so that preempted jobs resume mid-epoch exactly.

COCO train2017 keeps 117,266 images after filter_empty_gt -> 117,266 / 16 = 7,329 iterations per epoch
(rounded down). 12 epochs = 87,948 iterations; lr steps after epochs 8 and 11 = iterations 58,632 and 80,619.

The official schedules (mmdet 2.x schedule_1x.py / schedule_3x.py): linear warm-up over 500 iterations from 0.001,
steps x0.1. mmcv's warm-up factor reaches 1 at iteration 500; mmengine's LinearLR reaches its end value at step
``end - 1``, hence ``end=501`` (tests/experiments/test_official_recipes.py checks the lr of every iteration).
"""
iters_per_epoch = 7329
max_iters = 12 * iters_per_epoch
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=iters_per_epoch)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=501),  # 500-iteration warm-up
    dict(type='MultiStepLR', by_epoch=False, begin=0, end=max_iters,
         milestones=[8 * iters_per_epoch, 11 * iters_per_epoch], gamma=0.1),
]

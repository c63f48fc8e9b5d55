"""COCO with the 3x+MS training augmentation (DETR-style multi-scale resize and random crop).

As the official *_fpn_3x_coco.py train pipelines: flip, then one of two policies (short side 480..800, or short side
400/500/600, a random 384..600 crop and short side 480..800; the long side capped at 1333 in both, where mmdet
3.x's DETR configs use 4200), then a random crop of at most 1024 x 1024.
"""
_base_ = ['./coco_instance.py']

_scales = [(1333, s) for s in range(480, 801, 32)]  # short side 480..800, step 32
train_pipeline = [
    dict(type='LoadImageFromFile', backend_args=None),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='RandomChoice', transforms=[
        [dict(type='RandomChoiceResize', scales=_scales, keep_ratio=True)],
        [dict(type='RandomChoiceResize', scales=[(1333, 400), (1333, 500), (1333, 600)], keep_ratio=True),
         dict(type='RandomCrop', crop_type='absolute_range', crop_size=(384, 600), allow_negative_crop=True),
         dict(type='RandomChoiceResize', scales=_scales, keep_ratio=True)],
    ]),
    dict(type='RandomCrop', crop_type='absolute_range', crop_size=(1024, 1024), allow_negative_crop=True),
    dict(type='PackDetInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))

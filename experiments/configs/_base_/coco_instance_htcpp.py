"""COCO with HTC++'s training data (the official htc++_augreg_adapter_large_fpn_3x_coco.py): InstaBoost (needs the
``instaboostfast`` package), COCO-Stuff semantic maps for the semantic branch (``data/coco/stuffthingmaps/train2017``),
multi-scale resize (long side 1600, short side 400..1400), flip; test at (1600, 1400); 1 image per GPU."""
_base_ = ['./coco_instance.py']

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='InstaBoost', action_candidate=('normal', 'horizontal', 'skip'), action_prob=(1, 0, 0),
         scale=(0.8, 1.2), dx=15, dy=15, theta=(-1, 1), color_prob=0.5, hflag=False, aug_ratio=0.5),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True, with_seg=True),
    dict(type='RandomResize', scale=[(1600, 400), (1600, 1400)], keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(1600, 1400), keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
train_dataloader = dict(batch_size=1,  # per GPU; 16 GPUs -> 16
                        dataset=dict(data_prefix=dict(img='train2017/', seg='stuffthingmaps/train2017/'),
                                     pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader

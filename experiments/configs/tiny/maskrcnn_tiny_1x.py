"""Tiny profile of Mask R-CNN 1x: the same model code on CPU, synthetic COCO (128x128 shapes), minutes per run.

Deltas from the paper model: arch='tiny' (width 64; the FPN input follows it), FPN/RPN 64 channels, RoI FC 128, mask head 64, fewer
proposals and sampled RoIs (64 per image), GroupNorm in FPN and RoI heads (the usual practice for detectors trained
from scratch; measured effect in experiments/README.md); batch 2 for 400 iterations (800 images = 2 passes over
the 400 training images) with lr steps at 8/12 and 11/12 of the run (the 1x shape); evaluation once, at the end.
"""
_base_ = ['../maskrcnn_vit_adapter_S_1x.py']
from experiments.models import wire  # noqa: E402  (after _base_, so mmengine reads a classic config)

data_root = 'data/synthetic/coco/'
metainfo = dict(classes=('disc', 'square', 'triangle'), palette=[(220, 60, 60), (60, 200, 60), (70, 90, 230)])
img_scale = (128, 128)
fpn = 64
gn = dict(type='GN', num_groups=16)
model = wire(
    _base_.model,
    data_preprocessor=dict(pad_size_divisor=32),
    backbone=dict(arch='tiny', norm='BN', pretrained=None, window_size=4),
    neck=dict(out_channels=fpn, norm_cfg=gn),
    rpn_head=dict(in_channels=fpn, feat_channels=fpn,
                  anchor_generator=dict(scales=[4], ratios=[0.5, 1.0, 2.0], strides=[4, 8, 16, 32, 64])),
    roi_head=dict(
        bbox_roi_extractor=dict(out_channels=fpn),
        bbox_head=dict(type='Shared4Conv1FCBBoxHead', in_channels=fpn, conv_out_channels=fpn, norm_cfg=gn,
                       fc_out_channels=128, num_classes=3),
        mask_roi_extractor=dict(out_channels=fpn),
        mask_head=dict(in_channels=fpn, conv_out_channels=fpn, norm_cfg=gn, num_classes=3)),
    train_cfg=dict(
        rpn=dict(sampler=dict(num=128)),
        rpn_proposal=dict(nms_pre=500, max_per_img=200),
        rcnn=dict(sampler=dict(num=64), mask_size=28)),
    test_cfg=dict(rpn=dict(nms_pre=300, max_per_img=100), rcnn=dict(max_per_img=20)))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
# One worker keeps the augmentation RNG out of the main process, so a resumed run replays it exactly.
train_dataloader = dict(
    batch_size=2, num_workers=1, persistent_workers=True,
    batch_sampler=None,
    dataset=dict(data_root=data_root, metainfo=metainfo, pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=4, num_workers=1, persistent_workers=True,
    dataset=dict(data_root=data_root, metainfo=metainfo, pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/instances_val2017.json')
test_evaluator = val_evaluator

max_iters = 400
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
# CPU profile: the paper's optimiser in fp32 (the paper configs' AmpOptimWrapper needs a GPU; experiments/amp.py).
from experiments.amp import fp32_optim_wrapper  # noqa: E402
optim_wrapper = fp32_optim_wrapper(_base_.optim_wrapper, optimizer=dict(lr=4e-4))  # from scratch on a small set: 4x the paper's lr
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=30),
    dict(type='MultiStepLR', by_epoch=False, begin=0, end=max_iters,
         milestones=[max_iters * 8 // 12, max_iters * 11 // 12], gamma=0.1),
]
default_hooks = dict(checkpoint=dict(interval=50), logger=dict(interval=25))
auto_scale_lr = dict(base_batch_size=2)

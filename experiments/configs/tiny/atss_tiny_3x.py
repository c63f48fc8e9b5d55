"""Tiny profile of ATSS 3x+MS: ``maskrcnn_tiny_3x.py`` (tiny backbone, FPN 64 with GroupNorm, data, schedule,
optimiser) as a box-only ATSS detector as in ``_base_/atss_vit_adapter.py`` (FPN P3-P7 from stride 8, ATSS head
with GIoU, ATSS assigner), head 64 channels x 2 convs, 32-pixel anchors at stride 8 (the synthetic shapes are
small; the paper's are 64), 3 classes; box AP only."""
_base_ = ['./maskrcnn_tiny_3x.py']
from experiments.models import wire  # noqa: E402  (after _base_, so mmengine reads a classic config)

fpn = 64
model = wire(
    None, _delete_=True, type='ATSS',
    data_preprocessor=dict(_base_.model.data_preprocessor, pad_mask=False),
    backbone=_base_.model.backbone,
    neck=dict(_base_.model.neck, start_level=1, add_extra_convs='on_output'),
    bbox_head=dict(
        type='ATSSHead', num_classes=3, in_channels=fpn, stacked_convs=2, feat_channels=fpn,
        norm_cfg=dict(type='GN', num_groups=16, requires_grad=True),
        anchor_generator=dict(type='AnchorGenerator', ratios=[1.0], octave_base_scale=4, scales_per_octave=1,
                              strides=[8, 16, 32, 64, 128]),
        bbox_coder=dict(type='DeltaXYWHBBoxCoder', target_means=[.0, .0, .0, .0], target_stds=[0.1, 0.1, 0.2, 0.2]),
        loss_cls=dict(type='FocalLoss', use_sigmoid=True, gamma=2.0, alpha=0.25, loss_weight=1.0),
        loss_bbox=dict(type='GIoULoss', loss_weight=2.0),
        loss_centerness=dict(type='CrossEntropyLoss', use_sigmoid=True, loss_weight=1.0)),
    train_cfg=dict(assigner=dict(type='ATSSAssigner', topk=9), allowed_border=-1, pos_weight=-1, debug=False),
    test_cfg=dict(nms_pre=300, min_bbox_size=0, score_thr=0.05, nms=dict(type='nms', iou_threshold=0.6),
                  max_per_img=20))


def _boxes_only(pipeline):
    return [dict(t, with_mask=False) if t['type'] == 'LoadAnnotations' else t for t in pipeline]


train_dataloader = dict(dataset=dict(pipeline=_boxes_only(_base_.train_pipeline)))
val_dataloader = dict(dataset=dict(pipeline=_boxes_only(_base_.test_pipeline)))
test_dataloader = val_dataloader
val_evaluator = dict(metric=['bbox'])
test_evaluator = val_evaluator

"""Cascade Mask R-CNN + FPN with a ViT-Adapter-S backbone (Table 2): the Mask R-CNN model's backbone, FPN, RPN, mask
head, data preprocessing and optimiser, with the official cascade_mask_rcnn_deit_adapter_{small,base}_fpn_3x_coco.py
heads (their base, mmdet 2.x's cascade_mask_rcnn_r50_fpn.py: RPN SmoothL1 (beta 1/9), 2,000 proposals in training,
no border; three 4conv1fc SyncBN box heads with GIoU loss on decoded boxes, IoU 0.5 / 0.6 / 0.7, stage weights
1 / 0.5 / 0.25; one FCN mask head shared by the stages' config)."""
_base_ = ['./maskrcnn_vit_adapter.py']
from experiments.models import wire  # noqa: E402  (after _base_, so mmengine reads a classic config)

_stds = ([0.1, 0.1, 0.2, 0.2], [0.05, 0.05, 0.1, 0.1], [0.033, 0.033, 0.067, 0.067])  # one per stage
_box = dict(type='ConvFCBBoxHead', num_shared_convs=4, num_shared_fcs=1, in_channels=256, conv_out_channels=256,
            fc_out_channels=1024, roi_feat_size=7, num_classes=80, reg_class_agnostic=False, reg_decoded_bbox=True,
            norm_cfg=dict(type='SyncBN', requires_grad=True),
            loss_cls=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0),
            loss_bbox=dict(type='GIoULoss', loss_weight=10.0))
_rcnn = dict(sampler=dict(type='RandomSampler', num=512, pos_fraction=0.25, neg_pos_ub=-1, add_gt_as_proposals=True),
             mask_size=28, pos_weight=-1, debug=False)
model = wire(
    _base_.model,
    type='CascadeRCNN',
    rpn_head=dict(loss_bbox=dict(_delete_=True, type='SmoothL1Loss', beta=1.0 / 9.0, loss_weight=1.0)),
    roi_head=dict(
        _delete_=True, type='CascadeRoIHead', num_stages=3, stage_loss_weights=[1, 0.5, 0.25],
        bbox_roi_extractor=_base_.model.roi_head.bbox_roi_extractor,
        bbox_head=[dict(_box, bbox_coder=dict(type='DeltaXYWHBBoxCoder', target_means=[0.] * 4, target_stds=s))
                   for s in _stds],
        mask_roi_extractor=_base_.model.roi_head.mask_roi_extractor,
        mask_head=_base_.model.roi_head.mask_head),
    train_cfg=dict(
        rpn=dict(allowed_border=0),
        rpn_proposal=dict(max_per_img=2000),
        rcnn=[dict(_rcnn, assigner=dict(type='MaxIoUAssigner', pos_iou_thr=t, neg_iou_thr=t, min_pos_iou=t,
                                        match_low_quality=False, ignore_iof_thr=-1)) for t in (0.5, 0.6, 0.7)]))

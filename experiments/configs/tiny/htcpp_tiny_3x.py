"""Tiny profile of HTC++ 3x+MS: ``maskrcnn_tiny_3x.py`` (tiny backbone, FPN 64 with GroupNorm, data, schedule,
optimiser) with the paper model's HTC (3 interleaved stages, mask information flow, class-agnostic box regression)
and its extra global attention before the FPN (2 heads on the width-64 map), test soft-NMS, at the tiny Mask R-CNN's
head sizes. Left out on CPU: the semantic branch (the synthetic set has no COCO-Stuff maps) and InstaBoost (the
``instaboostfast`` package)."""
_base_ = ['./maskrcnn_tiny_3x.py']
from experiments.models import wire  # noqa: E402  (after _base_, so mmengine reads a classic config)

_stds = ([0.1, 0.1, 0.2, 0.2], [0.05, 0.05, 0.1, 0.1], [0.033, 0.033, 0.067, 0.067])
_rcnn = _base_.model.train_cfg.rcnn
_mask = dict(_base_.model.roi_head.mask_head, type='HTCMaskHead')
model = wire(
    _base_.model,
    type='HybridTaskCascade',
    neck=[dict(type='ExtraAttention', num_head=2, with_ffn=True, ffn_ratio=4.0), _base_.model.neck],
    rpn_head=dict(loss_bbox=dict(_delete_=True, type='SmoothL1Loss', beta=1.0 / 9.0, loss_weight=1.0)),
    roi_head=dict(
        type='HybridTaskCascadeRoIHead', interleaved=True, mask_info_flow=True, num_stages=3,
        stage_loss_weights=[1, 0.5, 0.25],
        bbox_head=[dict(_base_.model.roi_head.bbox_head, reg_class_agnostic=True,
                        bbox_coder=dict(type='DeltaXYWHBBoxCoder', target_means=[0.] * 4, target_stds=s),
                        loss_bbox=dict(type='SmoothL1Loss', beta=1.0, loss_weight=1.0)) for s in _stds],
        mask_head=[dict(_mask, with_conv_res=False), _mask, _mask]),
    train_cfg=dict(rcnn=[dict(_rcnn, assigner=dict(_rcnn.assigner, pos_iou_thr=t, neg_iou_thr=t, min_pos_iou=t))
                         for t in (0.5, 0.6, 0.7)]),
    test_cfg=dict(rcnn=dict(score_thr=0.001, nms=dict(type='soft_nms', iou_threshold=0.5))))

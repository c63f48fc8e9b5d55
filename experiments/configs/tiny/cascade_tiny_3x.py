"""Tiny profile of Cascade Mask R-CNN 3x+MS: ``maskrcnn_tiny_3x.py`` (tiny backbone, FPN 64, data, schedule, optimiser)
with the paper config's cascade (``_base_/cascade_mask_rcnn_vit_adapter.py``: three 4conv1fc box heads with GIoU
on decoded boxes, IoU 0.5 / 0.6 / 0.7, stage weights 1 / 0.5 / 0.25) at the tiny Mask R-CNN's head sizes."""
_base_ = ['./maskrcnn_tiny_3x.py']
from experiments.models import wire  # noqa: E402  (after _base_, so mmengine reads a classic config)

_stds = ([0.1, 0.1, 0.2, 0.2], [0.05, 0.05, 0.1, 0.1], [0.033, 0.033, 0.067, 0.067])
_rcnn = _base_.model.train_cfg.rcnn
model = wire(
    _base_.model,
    type='CascadeRCNN',
    rpn_head=dict(loss_bbox=dict(_delete_=True, type='SmoothL1Loss', beta=1.0 / 9.0, loss_weight=1.0)),
    roi_head=dict(
        type='CascadeRoIHead', num_stages=3, stage_loss_weights=[1, 0.5, 0.25],
        bbox_head=[dict(_base_.model.roi_head.bbox_head, reg_decoded_bbox=True,
                        bbox_coder=dict(type='DeltaXYWHBBoxCoder', target_means=[0.] * 4, target_stds=s),
                        loss_bbox=dict(type='GIoULoss', loss_weight=10.0)) for s in _stds]),
    train_cfg=dict(rcnn=[dict(_rcnn, assigner=dict(_rcnn.assigner, pos_iou_thr=t, neg_iou_thr=t, min_pos_iou=t,
                                                   match_low_quality=False)) for t in (0.5, 0.6, 0.7)]))

"""ATSS + FPN with a ViT-Adapter-S backbone (Table 2), as the official atss_deit_adapter_small_fpn_3x_coco.py: the
Mask R-CNN model's backbone, data preprocessing and optimiser; FPN from stride 8 with extra convs on the outputs
(P3-P7); mmdet's ATSS head with GIoU loss (weight 2) and NMS 0.6. The stride-4 level of the backbone feeds nothing,
hence DDP's find_unused_parameters (also in the official file)."""
_base_ = ['./maskrcnn_vit_adapter.py']
from experiments.models import wire  # noqa: E402  (after _base_, so mmengine reads a classic config)

model = wire(
    None, _delete_=True, type='ATSS',
    data_preprocessor=dict(_base_.model.data_preprocessor, pad_mask=False),
    backbone=_base_.model.backbone,
    neck=dict(_base_.model.neck, start_level=1, add_extra_convs='on_output'),
    bbox_head=dict(
        type='ATSSHead', num_classes=80, in_channels=256, stacked_convs=4, feat_channels=256,
        anchor_generator=dict(type='AnchorGenerator', ratios=[1.0], octave_base_scale=8, scales_per_octave=1,
                              strides=[8, 16, 32, 64, 128]),
        bbox_coder=dict(type='DeltaXYWHBBoxCoder', target_means=[.0, .0, .0, .0], target_stds=[0.1, 0.1, 0.2, 0.2]),
        loss_cls=dict(type='FocalLoss', use_sigmoid=True, gamma=2.0, alpha=0.25, loss_weight=1.0),
        loss_bbox=dict(type='GIoULoss', loss_weight=2.0),
        loss_centerness=dict(type='CrossEntropyLoss', use_sigmoid=True, loss_weight=1.0)),
    train_cfg=dict(assigner=dict(type='ATSSAssigner', topk=9), allowed_border=-1, pos_weight=-1, debug=False),
    test_cfg=dict(nms_pre=1000, min_bbox_size=0, score_thr=0.05, nms=dict(type='nms', iou_threshold=0.6),
                  max_per_img=100))
model_wrapper_cfg = dict(type='MMDistributedDataParallel', find_unused_parameters=True)

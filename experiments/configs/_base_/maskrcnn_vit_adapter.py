"""Mask R-CNN + FPN (mmdet's standard settings) with a ViT-Adapter-S backbone (the paper's detection model); sizes and schedules are deltas."""
_base_ = ['./det_runtime.py', './vit_adapter_s.py']
from experiments.grids import imagenet_norm  # noqa: E402  (after _base_, so mmengine reads a classic config)
from experiments.models import wire  # noqa: E402

# wire(): the FPN's in_channels are the backbone's width (the arch preset's), see experiments/models.py.
model = wire(
    _base_.model,
    type='MaskRCNN',
    data_preprocessor=dict(type='DetDataPreprocessor', **imagenet_norm(),
                           bgr_to_rgb=True, pad_mask=True, pad_size_divisor=32),
    # Detection: 14x14 window attention in the ViT, one global block closing each quarter.
    # The ViT tokens after the last interaction join all four levels (the official detection backbone).
    backbone=dict(window_attn=True, window_size=14, vit_feature_source='final'),
    neck=dict(type='FPN', out_channels=256, num_outs=5),
    rpn_head=dict(
        type='RPNHead',
        in_channels=256,
        feat_channels=256,
        anchor_generator=dict(type='AnchorGenerator', scales=[8], ratios=[0.5, 1.0, 2.0], strides=[4, 8, 16, 32, 64]),
        bbox_coder=dict(type='DeltaXYWHBBoxCoder', target_means=[.0, .0, .0, .0], target_stds=[1.0, 1.0, 1.0, 1.0]),
        loss_cls=dict(type='CrossEntropyLoss', use_sigmoid=True, loss_weight=1.0),
        loss_bbox=dict(type='L1Loss', loss_weight=1.0)),
    roi_head=dict(
        type='StandardRoIHead',
        bbox_roi_extractor=dict(
            type='SingleRoIExtractor',
            roi_layer=dict(type='RoIAlign', output_size=7, sampling_ratio=0),
            out_channels=256,
            featmap_strides=[4, 8, 16, 32]),
        bbox_head=dict(
            type='Shared2FCBBoxHead',
            in_channels=256,
            fc_out_channels=1024,
            roi_feat_size=7,
            num_classes=80,
            bbox_coder=dict(type='DeltaXYWHBBoxCoder', target_means=[0., 0., 0., 0.],
                            target_stds=[0.1, 0.1, 0.2, 0.2]),
            reg_class_agnostic=False,
            loss_cls=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0),
            loss_bbox=dict(type='L1Loss', loss_weight=1.0)),
        mask_roi_extractor=dict(
            type='SingleRoIExtractor',
            roi_layer=dict(type='RoIAlign', output_size=14, sampling_ratio=0),
            out_channels=256,
            featmap_strides=[4, 8, 16, 32]),
        mask_head=dict(
            type='FCNMaskHead',
            num_convs=4,
            in_channels=256,
            conv_out_channels=256,
            num_classes=80,
            loss_mask=dict(type='CrossEntropyLoss', use_mask=True, loss_weight=1.0))),
    train_cfg=dict(
        rpn=dict(
            assigner=dict(type='MaxIoUAssigner', pos_iou_thr=0.7, neg_iou_thr=0.3, min_pos_iou=0.3,
                          match_low_quality=True, ignore_iof_thr=-1),
            sampler=dict(type='RandomSampler', num=256, pos_fraction=0.5, neg_pos_ub=-1, add_gt_as_proposals=False),
            allowed_border=-1,
            pos_weight=-1,
            debug=False),
        rpn_proposal=dict(nms_pre=2000, max_per_img=1000, nms=dict(type='nms', iou_threshold=0.7), min_bbox_size=0),
        rcnn=dict(
            assigner=dict(type='MaxIoUAssigner', pos_iou_thr=0.5, neg_iou_thr=0.5, min_pos_iou=0.5,
                          match_low_quality=True, ignore_iof_thr=-1),
            sampler=dict(type='RandomSampler', num=512, pos_fraction=0.25, neg_pos_ub=-1, add_gt_as_proposals=True),
            mask_size=28,
            pos_weight=-1,
            debug=False)),
    test_cfg=dict(
        rpn=dict(nms_pre=1000, max_per_img=1000, nms=dict(type='nms', iou_threshold=0.7), min_bbox_size=0),
        rcnn=dict(score_thr=0.05, nms=dict(type='nms', iou_threshold=0.5), max_per_img=100, mask_thr_binary=0.5)))

# The official mask_rcnn_deit_{,adapter_}{tiny,small,base}_fpn_*_coco.py optimiser: AdamW lr 1e-4, wd 0.05, no
# grad clipping; no decay for parameters whose name contains one of the keys (a substring match: 'norm' catches
# the LayerNorms and the adapter's *_norm / norm1..4 layers, not the BatchNorms of the SPM stem, whose weights
# are decayed). T 1x and the L rows change it (maskrcnn_vit_adapter_T_1x.py, maskrcnn_vit_adapter_L.py).
optim_wrapper = dict(
    type='AmpOptimWrapper', dtype='bfloat16', loss_scale=1.0,  # AMP bf16 (experiments/amp.py)
    optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05),
    paramwise_cfg=dict(custom_keys={'level_embed': dict(decay_mult=0.0), 'pos_embed': dict(decay_mult=0.0),
                                    'norm': dict(decay_mult=0.0), 'bias': dict(decay_mult=0.0)}),
    clip_grad=None)


"""Plain-dict model configs of the paper's detectors / segmentors around an adapter backbone.

Pure dicts (no mm* import): used by ``adapter.summary`` to count full-model parameters and by the tests to
build real mmdet / mmseg models through their registries (after importing the ``experiments.shims``).
Heads follow mmdet 3.x ``mask-rcnn_r50_fpn`` (FPN to 256, Shared2FCBBoxHead, FCNMaskHead, 80 classes) and
mmseg 1.x UperNet (UPerHead 512 ch + FCNHead aux 256 ch) / Semantic FPN (FPN 256 + FPNHead 128), 150 classes.
"""
from __future__ import annotations

from typing import Optional


def _width(backbone: dict) -> int:
    from .presets import get_preset
    cfg = get_preset(backbone.get('arch', 'S'))
    return int(backbone.get('embed_dim', cfg['embed_dim']))


def maskrcnn_config(backbone: dict, num_classes: int = 80, img_size: Optional[int] = None) -> dict:
    """mmdet ``MaskRCNN`` model dict with the given backbone dict (type 'ViTAdapter' / 'ViTBaseline')."""
    c = _width(backbone)
    return dict(
        type='MaskRCNN',
        data_preprocessor=dict(type='DetDataPreprocessor', mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375],
                               bgr_to_rgb=True, pad_mask=True, pad_size_divisor=32),
        backbone=backbone,
        neck=dict(type='FPN', in_channels=[c] * 4, out_channels=256, num_outs=5),
        rpn_head=dict(
            type='RPNHead', in_channels=256, feat_channels=256,
            anchor_generator=dict(type='AnchorGenerator', scales=[8], ratios=[0.5, 1.0, 2.0],
                                  strides=[4, 8, 16, 32, 64]),
            bbox_coder=dict(type='DeltaXYWHBBoxCoder', target_means=[.0, .0, .0, .0], target_stds=[1.0, 1.0, 1.0, 1.0]),
            loss_cls=dict(type='CrossEntropyLoss', use_sigmoid=True, loss_weight=1.0),
            loss_bbox=dict(type='L1Loss', loss_weight=1.0)),
        roi_head=dict(
            type='StandardRoIHead',
            bbox_roi_extractor=dict(type='SingleRoIExtractor', out_channels=256, featmap_strides=[4, 8, 16, 32],
                                    roi_layer=dict(type='RoIAlign', output_size=7, sampling_ratio=0)),
            bbox_head=dict(
                type='Shared2FCBBoxHead', in_channels=256, fc_out_channels=1024, roi_feat_size=7,
                num_classes=num_classes, reg_class_agnostic=False,
                bbox_coder=dict(type='DeltaXYWHBBoxCoder', target_means=[0., 0., 0., 0.],
                                target_stds=[0.1, 0.1, 0.2, 0.2]),
                loss_cls=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0),
                loss_bbox=dict(type='L1Loss', loss_weight=1.0)),
            mask_roi_extractor=dict(type='SingleRoIExtractor', out_channels=256, featmap_strides=[4, 8, 16, 32],
                                    roi_layer=dict(type='RoIAlign', output_size=14, sampling_ratio=0)),
            mask_head=dict(type='FCNMaskHead', num_convs=4, in_channels=256, conv_out_channels=256,
                           num_classes=num_classes,
                           loss_mask=dict(type='CrossEntropyLoss', use_mask=True, loss_weight=1.0))),
        train_cfg=dict(
            rpn=dict(assigner=dict(type='MaxIoUAssigner', pos_iou_thr=0.7, neg_iou_thr=0.3, min_pos_iou=0.3,
                                   match_low_quality=True, ignore_iof_thr=-1),
                     sampler=dict(type='RandomSampler', num=256, pos_fraction=0.5, neg_pos_ub=-1,
                                  add_gt_as_proposals=False),
                     allowed_border=-1, pos_weight=-1, debug=False),
            rpn_proposal=dict(nms_pre=2000, max_per_img=1000, nms=dict(type='nms', iou_threshold=0.7), min_bbox_size=0),
            rcnn=dict(assigner=dict(type='MaxIoUAssigner', pos_iou_thr=0.5, neg_iou_thr=0.5, min_pos_iou=0.5,
                                    match_low_quality=True, ignore_iof_thr=-1),
                      sampler=dict(type='RandomSampler', num=512, pos_fraction=0.25, neg_pos_ub=-1,
                                   add_gt_as_proposals=True),
                      mask_size=28, pos_weight=-1, debug=False)),
        test_cfg=dict(
            rpn=dict(nms_pre=1000, max_per_img=1000, nms=dict(type='nms', iou_threshold=0.7), min_bbox_size=0),
            rcnn=dict(score_thr=0.05, nms=dict(type='nms', iou_threshold=0.5), max_per_img=100,
                      mask_thr_binary=0.5)))


def _seg_preprocessor(crop: int) -> dict:
    return dict(type='SegDataPreProcessor', mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375],
                bgr_to_rgb=True, pad_val=0, seg_pad_val=255, size=(crop, crop))


def upernet_config(backbone: dict, num_classes: int = 150, crop: int = 512, channels: int = 512) -> dict:
    """mmseg ``EncoderDecoder`` with UPerHead (``channels``) + FCNHead auxiliary on the stride-16 map."""
    c = _width(backbone)
    norm = dict(type='SyncBN', requires_grad=True)
    return dict(
        type='EncoderDecoder', data_preprocessor=_seg_preprocessor(crop), backbone=backbone,
        decode_head=dict(type='UPerHead', in_channels=[c] * 4, in_index=[0, 1, 2, 3], pool_scales=(1, 2, 3, 6),
                         channels=channels, dropout_ratio=0.1, num_classes=num_classes, norm_cfg=norm,
                         align_corners=False,
                         loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)),
        auxiliary_head=dict(type='FCNHead', in_channels=c, in_index=2, channels=256, num_convs=1,
                            concat_input=False, dropout_ratio=0.1, num_classes=num_classes, norm_cfg=norm,
                            align_corners=False,
                            loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=0.4)),
        train_cfg=dict(), test_cfg=dict(mode='whole'))


def semfpn_config(backbone: dict, num_classes: int = 150, crop: int = 512) -> dict:
    """mmseg Semantic FPN: FPN (256) + FPNHead (128 channels)."""
    c = _width(backbone)
    return dict(
        type='EncoderDecoder', data_preprocessor=_seg_preprocessor(crop), backbone=backbone,
        neck=dict(type='FPN', in_channels=[c] * 4, out_channels=256, num_outs=4),
        decode_head=dict(type='FPNHead', in_channels=[256] * 4, in_index=[0, 1, 2, 3], feature_strides=[4, 8, 16, 32],
                         channels=128, dropout_ratio=0.1, num_classes=num_classes,
                         norm_cfg=dict(type='SyncBN', requires_grad=True), align_corners=False,
                         loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)),
        train_cfg=dict(), test_cfg=dict(mode='whole'))

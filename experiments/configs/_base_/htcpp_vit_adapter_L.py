"""HTC++ + ViT-Adapter-L (AugReg-L, ImageNet-22K) on COCO, 3x+MS (Table 5's ViT-Adapter-L HTC++ row with supervised
ImageNet-22K pre-training), as the official detection/configs/htc++/htc++_augreg_adapter_large_fpn_3x_coco.py.

HTC++ = Hybrid Task Cascade (3 interleaved stages with mask information flow, a semantic branch on COCO-Stuff maps)
plus Swin's extras: an extra global self-attention block on the stride-32 map before the FPN
(``experiments/shims/extra_attention.py``, 32 heads, drop path 0.4), InstaBoost, multi-scale training (long side
1600, short side 400..1400), soft-NMS at test (score 0.001, 300 detections). The ViT-Adapter-L model of Mask R-CNN L
(window attention, gradient checkpointing) with the file's ImageNet normalisation (not AugReg's ``augreg_norm``) and
layer-wise lr decay 0.90; batch 16 as 16 GPUs x 1 image (the official README), 36 epochs.
Needs COCO-Stuff's ``data/coco/stuffthingmaps/train2017`` and the ``instaboostfast`` package (mmdet's InstaBoost).
"""
_base_ = ['./maskrcnn_vit_adapter_L.py']
from experiments.grids import imagenet_norm  # noqa: E402  (after _base_, so mmengine reads a classic config)
from experiments.models import wire  # noqa: E402

_stds = ([0.1, 0.1, 0.2, 0.2], [0.05, 0.05, 0.1, 0.1], [0.033, 0.033, 0.067, 0.067])
_mask = dict(type='HTCMaskHead', num_convs=4, in_channels=256, conv_out_channels=256, num_classes=80,
             loss_mask=dict(type='CrossEntropyLoss', use_mask=True, loss_weight=1.0))
_rcnn = _base_.model.train_cfg.rcnn
model = wire(
    _base_.model,
    type='HybridTaskCascade',
    data_preprocessor=imagenet_norm(),
    backbone=dict(with_cp=True),
    neck=[dict(type='ExtraAttention', num_head=32, with_ffn=True, ffn_ratio=4.0, drop_path=0.4), _base_.model.neck],
    rpn_head=dict(loss_bbox=dict(_delete_=True, type='SmoothL1Loss', beta=1.0 / 9.0, loss_weight=1.0)),
    roi_head=dict(
        _delete_=True, type='HybridTaskCascadeRoIHead', interleaved=True, mask_info_flow=True, num_stages=3,
        stage_loss_weights=[1, 0.5, 0.25],
        bbox_roi_extractor=_base_.model.roi_head.bbox_roi_extractor,
        bbox_head=[dict(_base_.model.roi_head.bbox_head, type='Shared4Conv1FCBBoxHead', reg_class_agnostic=True,
                        bbox_coder=dict(type='DeltaXYWHBBoxCoder', target_means=[0.] * 4, target_stds=s),
                        loss_bbox=dict(type='SmoothL1Loss', beta=1.0, loss_weight=1.0)) for s in _stds],
        mask_roi_extractor=_base_.model.roi_head.mask_roi_extractor,
        mask_head=[dict(_mask, with_conv_res=False), _mask, _mask],
        semantic_roi_extractor=dict(type='SingleRoIExtractor', out_channels=256, featmap_strides=[8],
                                    roi_layer=dict(type='RoIAlign', output_size=14, sampling_ratio=0)),
        semantic_head=dict(type='FusedSemanticHead', num_ins=5, fusion_level=1, seg_scale_factor=1 / 8, num_convs=4,
                           in_channels=256, conv_out_channels=256, num_classes=183,
                           loss_seg=dict(type='CrossEntropyLoss', ignore_index=255, loss_weight=0.2))),
    train_cfg=dict(
        rpn=dict(allowed_border=0),
        rpn_proposal=dict(max_per_img=2000),
        rcnn=[dict(_rcnn, assigner=dict(_rcnn.assigner, pos_iou_thr=t, neg_iou_thr=t, min_pos_iou=t))
              for t in (0.5, 0.6, 0.7)]),
    test_cfg=dict(rcnn=dict(score_thr=0.001, nms=dict(type='soft_nms', iou_threshold=0.5), max_per_img=300)))
optim_wrapper = dict(paramwise_cfg=dict(layer_decay_rate=0.90))

"""GFL + FPN with a ViT-Adapter-S backbone (Table 2), as the official gfl_deit_adapter_small_fpn_3x_coco.py: the ATSS
model (backbone, FPN P3-P7, ATSS assigner, test settings) with mmdet's GFL head (quality focal loss, distribution
focal loss 0.25 over reg_max 16, GIoU 2)."""
_base_ = ['./atss_vit_adapter.py']

model = dict(
    type='GFL',
    bbox_head=dict(
        _delete_=True, type='GFLHead', num_classes=80, in_channels=256, stacked_convs=4, feat_channels=256,
        anchor_generator=dict(type='AnchorGenerator', ratios=[1.0], octave_base_scale=8, scales_per_octave=1,
                              strides=[8, 16, 32, 64, 128]),
        loss_cls=dict(type='QualityFocalLoss', use_sigmoid=True, beta=2.0, loss_weight=1.0),
        loss_dfl=dict(type='DistributionFocalLoss', loss_weight=0.25),
        reg_max=16,
        loss_bbox=dict(type='GIoULoss', loss_weight=2.0)))

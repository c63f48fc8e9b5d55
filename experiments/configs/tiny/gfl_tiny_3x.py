"""Tiny profile of GFL 3x+MS: ``atss_tiny_3x.py`` with the GFL head of ``_base_/gfl_vit_adapter.py`` (quality focal
loss, distribution focal loss over reg_max 16, GIoU) at the tiny ATSS head's sizes."""
_base_ = ['./atss_tiny_3x.py']

model = dict(
    type='GFL',
    bbox_head=dict(
        _delete_=True, type='GFLHead', num_classes=3, in_channels=64, stacked_convs=2, feat_channels=64,
        norm_cfg=dict(type='GN', num_groups=16, requires_grad=True),
        anchor_generator=_base_.model.bbox_head.anchor_generator,
        loss_cls=dict(type='QualityFocalLoss', use_sigmoid=True, beta=2.0, loss_weight=1.0),
        loss_dfl=dict(type='DistributionFocalLoss', loss_weight=0.25),
        reg_max=16,
        loss_bbox=dict(type='GIoULoss', loss_weight=2.0)))

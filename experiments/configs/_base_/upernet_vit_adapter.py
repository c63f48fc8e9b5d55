"""UperNet with a ViT-Adapter-S backbone on ADE20K, 160k iterations (the paper's segmentation recipe)."""
_base_ = ['./ade20k_vit_adapter.py']
from experiments.models import wire  # noqa: E402  (after _base_, so mmengine reads a classic config)

num_classes = 150
norm_cfg = dict(type='SyncBN', requires_grad=True)
# wire(): both heads read the backbone maps, so their in_channels are its width (the arch preset's).
model = wire(
    _base_.model,
    decode_head=dict(
        type='UPerHead',
        in_index=[0, 1, 2, 3],
        pool_scales=(1, 2, 3, 6),
        channels=512,
        dropout_ratio=0.1,
        num_classes=num_classes,
        norm_cfg=norm_cfg,
        align_corners=False,
        loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)),
    auxiliary_head=dict(
        type='FCNHead',
        in_index=2,
        channels=256,
        num_convs=1,
        concat_input=False,
        dropout_ratio=0.1,
        num_classes=num_classes,
        norm_cfg=norm_cfg,
        align_corners=False,
        loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=0.4)),
    test_cfg=dict(mode='slide', crop_size=(512, 512), stride=(341, 341)))

# AdamW lr 1e-4, wd 0.05, layer-wise lr decay 0.95 over the ViT blocks (experiments/optim.py; the number of
# blocks is counted in the model).
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05),
    constructor='ViTLayerDecayOptimWrapperConstructor',
    paramwise_cfg=dict(layer_decay_rate=0.95))
max_iters = 160000
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0, end=1500),  # 1500-iteration warm-up
    dict(type='PolyLR', power=1.0, eta_min=0.0, by_epoch=False, begin=1500, end=max_iters),
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=16000)

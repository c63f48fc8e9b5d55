"""UperNet with a ViT-Adapter-S backbone on ADE20K, 160k iterations (the paper's segmentation recipe)."""
_base_ = ['./ade20k_vit_adapter.py']
from experiments.models import wire  # noqa: E402  (after _base_, so mmengine reads a classic config)
from experiments.recipes import ade20k_pipelines, warmup_poly  # noqa: E402

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

# The recipe of the official upernet_deit_adapter_{small,base}_512_160k_ade20k.py: AdamW lr 6e-5, wd 0.01,
# layer-wise lr decay 0.95 over the ViT blocks (experiments/optim.py, the official LayerDecayOptimizerConstructor's
# rule; the blocks are counted in the model). T, L and the ImageNet-22K B row change lr / wd in their own files.
optim_wrapper = dict(
    type='AmpOptimWrapper', dtype='bfloat16', loss_scale=1.0,  # AMP bf16 (experiments/amp.py)
    optimizer=dict(type='AdamW', lr=6e-5, betas=(0.9, 0.999), weight_decay=0.01),
    constructor='ViTLayerDecayOptimWrapperConstructor',
    paramwise_cfg=dict(layer_decay_rate=0.95))
max_iters = 160000
param_scheduler = warmup_poly(max_iters)  # mmcv's 1,500-iteration warm-up x poly 1.0
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=16000)
# The official test pipeline resizes to a multiple of 32 after the (2048, 512) resize.
test_pipeline = ade20k_pipelines((2048, 512), _base_.crop_size)[1]
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
# fp16 = dict(loss_scale=dict(init_scale=512)) in the official files (not L): read only by their test.py, which
# runs inference under fp16 autocast (mmseg 0.20.2 does not read it in training: fp32 training, fp32 validation).
test_cfg = dict(fp16=True)

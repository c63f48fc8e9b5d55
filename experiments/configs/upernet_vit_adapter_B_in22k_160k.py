"""UperNet 160k on ADE20K (512x512), ViT-Adapter-B pre-trained on ImageNet-22K (Table 4's IN-22K row).

As the official upernet_augreg_adapter_base_512_160k_ade20k.py: AugReg-B/16 at 384, keeping its 24x24 position
embedding (pretrain_size 384 instead of the 'B' preset's 224), AugReg's input normalisation (``augreg_norm``),
and its optimiser: AdamW lr 2e-5, wd 0.01, no layer-wise lr decay but custom keys (no decay for names containing
level_embed / pos_embed / norm / bias, 10x lr for names containing 'head'; a head's bias matches 'bias' first, as
in mmcv: 1x lr, no decay). Schedule, test pipeline and fp16 test as the other UperNet rows.
"""
_base_ = ['./_base_/upernet_vit_adapter_B.py']
from experiments.grids import augreg_norm  # noqa: E402  (after _base_, so mmengine reads a classic config)

model = dict(
    data_preprocessor=augreg_norm(),
    backbone=dict(pretrained='pretrained/B_16-i21k-300ep-lr_0.001-aug_medium1-wd_0.1-do_0.0-sd_0.0--'
                             'imagenet2012-steps_20k-lr_0.01-res_384.pth', pretrain_size=384))
optim_wrapper = dict(
    optimizer=dict(lr=2e-5),
    constructor='DefaultOptimWrapperConstructor',
    paramwise_cfg=dict(_delete_=True, custom_keys={
        'level_embed': dict(decay_mult=0.0), 'pos_embed': dict(decay_mult=0.0), 'norm': dict(decay_mult=0.0),
        'bias': dict(decay_mult=0.0), 'head': dict(lr_mult=10.0)}))

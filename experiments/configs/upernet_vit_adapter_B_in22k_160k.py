"""UperNet 160k on ADE20K (512x512), ViT-Adapter-B pre-trained on ImageNet-22K (Table 4's IN-22K row).

As the official upernet_augreg_adapter_base_512_160k_ade20k.py: AugReg-B/16 at 384, keeping its 24x24 position
embedding (pretrain_size 384 instead of the 'B' preset's 224), and AugReg's input normalisation (mean = std = 127.5).
The optimiser and schedule stay the suite's UperNet recipe (the official file: AdamW lr 2e-5, wd 0.01, heads at 10x
lr, no layer decay).
"""
_base_ = ['./_base_/upernet_vit_adapter_B.py']
model = dict(
    data_preprocessor=dict(mean=[127.5, 127.5, 127.5], std=[127.5, 127.5, 127.5]),
    backbone=dict(pretrained='pretrained/B_16-i21k-300ep-lr_0.001-aug_medium1-wd_0.1-do_0.0-sd_0.0--'
                             'imagenet2012-steps_20k-lr_0.01-res_384.pth', pretrain_size=384))

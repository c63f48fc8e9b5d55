"""UperNet + ViT-Adapter-L: the ViT-Adapter-S model with the L preset (pre-trained: AugReg-L, ImageNet-22K, 384)."""
_base_ = ['./upernet_vit_adapter.py']
vit_width = 1024
vit_depth = 24
model = dict(
    backbone=dict(arch='L', drop_path_rate=0.4, pretrained='pretrained/L_16-i21k-300ep-lr_0.001-aug_medium1-wd_0.1-do_0.1-sd_0.1--imagenet2012-steps_20k-lr_0.01-res_384.pth', pretrain_size=384),
    decode_head=dict(in_channels=[vit_width] * 4),
    auxiliary_head=dict(in_channels=vit_width))
optim_wrapper = dict(paramwise_cfg=dict(num_layers=vit_depth))

"""UperNet + ViT-Adapter-B: the ViT-Adapter-S model with the B preset (pre-trained: DeiT-B, ImageNet-1K)."""
_base_ = ['./upernet_vit_adapter.py']
vit_width = 768
vit_depth = 12
model = dict(
    backbone=dict(arch='B', drop_path_rate=0.3, pretrained='pretrained/deit_base_patch16_224-b5f2ef4d.pth', pretrain_size=224),
    decode_head=dict(in_channels=[vit_width] * 4),
    auxiliary_head=dict(in_channels=vit_width))
optim_wrapper = dict(paramwise_cfg=dict(num_layers=vit_depth))

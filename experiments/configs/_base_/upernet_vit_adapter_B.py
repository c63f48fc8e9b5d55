"""UperNet + ViT-Adapter-B: the ViT-Adapter-S model with the B preset (pre-trained: DeiT-B, ImageNet-1K). The ADE20K B models
use the 384 DeiT-B: the paper's #Param (Table 4) counts its 24x24 position embedding (+0.29M over 224)."""
_base_ = ['./upernet_vit_adapter.py']
vit_width = 768
vit_depth = 12
model = dict(
    backbone=dict(arch='B', drop_path_rate=0.3, pretrained='pretrained/deit_base_patch16_384-8de9b5d1.pth', pretrain_size=384),
    decode_head=dict(in_channels=[vit_width] * 4),
    auxiliary_head=dict(in_channels=vit_width))
optim_wrapper = dict(paramwise_cfg=dict(num_layers=vit_depth))

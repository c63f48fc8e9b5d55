"""Mask R-CNN + ViT-Adapter-T: the ViT-Adapter-S model with the T preset (pre-trained: DeiT-Ti, ImageNet-1K)."""
_base_ = ['./maskrcnn_vit_adapter.py']
vit_width = 192
vit_depth = 12
model = dict(
    backbone=dict(arch='T', drop_path_rate=0.1, pretrained='pretrained/deit_tiny_patch16_224-a1311bcf.pth', pretrain_size=224),
    neck=dict(in_channels=[vit_width] * 4))

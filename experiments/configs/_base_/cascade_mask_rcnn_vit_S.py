"""Cascade Mask R-CNN + plain ViT-S (Table 2's baseline): the ViT-Adapter-S model's heads and recipe around a
``ViTBaseline``. No official config: the official cascade ViT-B baseline's backbone settings (window attention,
layer scale; its drop path 0.2 is the 'S' preset's)."""
_base_ = ['./cascade_mask_rcnn_vit_adapter.py']
model = dict(backbone=dict(_delete_=True, type='ViTBaseline', arch='S', window_attn=True, window_size=14, layer_scale_init=1.0,
                           pretrained='pretrained/deit_small_patch16_224-cd65a155.pth'))

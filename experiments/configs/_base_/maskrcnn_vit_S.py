"""Mask R-CNN + plain ViT-S (the paper's baseline): ViT-Adapter-S with the adapter switched off."""
_base_ = ['./maskrcnn_vit_adapter.py']
model = dict(backbone=dict(type='ViTBaseline', variant='baseline', n_interactions=0))

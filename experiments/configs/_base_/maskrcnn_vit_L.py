"""Mask R-CNN + plain ViT-L (the paper's baseline): ViT-Adapter-L with the adapter switched off."""
_base_ = ['./maskrcnn_vit_adapter_L.py']
model = dict(backbone=dict(type='ViTBaseline', variant='baseline', n_interactions=0))

"""Mask R-CNN + plain ViT-B (the paper's baseline): ViT-Adapter-B with the adapter switched off."""
_base_ = ['./maskrcnn_vit_adapter_B.py']
model = dict(backbone=dict(type='ViTBaseline', variant='baseline', n_interactions=0))

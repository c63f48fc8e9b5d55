"""Semantic FPN + plain ViT-T (the paper's baseline): ViT-Adapter-T with the adapter switched off."""
_base_ = ['./semfpn_vit_adapter_T.py']
model = dict(backbone=dict(type='ViTBaseline', variant='baseline', n_interactions=0))

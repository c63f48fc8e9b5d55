"""Tiny profile of Semantic FPN with the plain-ViT baseline: ``semfpn_tiny.py`` with its backbone replaced by a
``ViTBaseline`` of the same tiny ViT (the baseline refuses the adapter's arguments, so the dict is replaced)."""
_base_ = ['./semfpn_tiny.py']
model = dict(backbone=dict(_delete_=True, type='ViTBaseline', arch='tiny', pretrained=None,
                           window_attn=False, layer_scale_init=1.0))

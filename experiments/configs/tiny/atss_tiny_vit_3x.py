"""Tiny profile of ATSS with the plain-ViT baseline: ``atss_tiny_3x.py`` with its backbone replaced by a
``ViTBaseline`` of the same tiny ViT (the baseline refuses the adapter's arguments, so the dict is replaced)."""
_base_ = ['./atss_tiny_3x.py']
model = dict(backbone=dict(_delete_=True, type='ViTBaseline', arch='tiny', pretrained=None,
                           window_attn=True, window_size=4, layer_scale_init=1.0))

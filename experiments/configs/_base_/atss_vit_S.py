"""ATSS + plain ViT-S (Table 2's baseline): the ViT-Adapter-S model's heads and recipe around a ``ViTBaseline``.
No official config: the backbone settings of the official ViT baselines (window attention, layer scale; drop path
the 'S' preset's 0.2, as the official cascade ViT-B baseline's 0.2)."""
_base_ = ['./atss_vit_adapter.py']
model = dict(backbone=dict(_delete_=True, type='ViTBaseline', arch='S', window_attn=True, window_size=14, layer_scale_init=1.0,
                           pretrained='pretrained/deit_small_patch16_224-cd65a155.pth'))

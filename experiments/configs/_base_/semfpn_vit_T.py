"""Semantic FPN + plain ViT-T (the paper's baseline): the ViT-Adapter-T model's heads and recipe around a
``ViTBaseline`` (the ViT read out by the simple pyramid). The backbone dict is replaced, not edited: the baseline
refuses the adapter's arguments. Width, depth, heads, drop path and pre-training size come from the 'T' preset."""
_base_ = ['./semfpn_vit_adapter_T.py']
model = dict(backbone=dict(_delete_=True, type='ViTBaseline', arch='T', window_attn=False, layer_scale_init=1.0,
                           pretrained='pretrained/deit_tiny_patch16_224-a1311bcf.pth'))

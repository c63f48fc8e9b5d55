"""UperNet + plain ViT-B (the paper's baseline): the ViT-Adapter-B model's heads and recipe around a
``ViTBaseline`` (the ViT read out by the simple pyramid). The backbone dict is replaced, not edited: the baseline
refuses the adapter's arguments. Width, depth, heads, drop path and pre-training size come from the 'B' preset."""
_base_ = ['./upernet_vit_adapter_B.py']
model = dict(backbone=dict(_delete_=True, type='ViTBaseline', arch='B', window_attn=False, layer_scale_init=1.0,
                           pretrained='pretrained/deit_base_patch16_224-b5f2ef4d.pth'))

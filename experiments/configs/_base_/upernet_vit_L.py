"""UperNet + plain ViT-L (the paper's baseline): the ViT-Adapter-L model's heads and recipe around a
``ViTBaseline`` (the ViT read out by the simple pyramid). The backbone dict is replaced, not edited: the baseline
refuses the adapter's arguments. Width, depth, heads, drop path and pre-training size come from the 'L' preset."""
_base_ = ['./upernet_vit_adapter_L.py']
model = dict(backbone=dict(_delete_=True, type='ViTBaseline', arch='L', window_attn=False, layer_scale_init=1.0,
                           pretrained='pretrained/L_16-i21k-300ep-lr_0.001-aug_medium1-wd_0.1-do_0.1-sd_0.1--imagenet2012-steps_20k-lr_0.01-res_384.pth'))

"""Mask R-CNN + plain ViT-B (the paper's baseline): the ViT-Adapter-B model's heads and recipe around a
``ViTBaseline`` (the ViT read out by the simple pyramid). The backbone dict is replaced, not edited: the baseline
refuses the adapter's arguments. Width, depth, heads and pre-training size come from the 'B' preset."""
_base_ = ['./maskrcnn_vit_adapter_B.py']
model = dict(backbone=dict(_delete_=True, type='ViTBaseline', arch='B', window_attn=True, window_size=14, layer_scale_init=1.0,
                           drop_path_rate=0.1,  # the official mask_rcnn_deit_*_fpn_3x baseline config
                           pretrained='pretrained/deit_base_patch16_224-b5f2ef4d.pth'))

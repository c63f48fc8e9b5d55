"""Cascade Mask R-CNN + plain ViT-B (Table 2's baseline): the ViT-Adapter-B model's heads and recipe around a
``ViTBaseline``, as the official cascade_mask_rcnn_deit_base_fpn_3x_coco.py (drop path 0.2; the 'B' preset has 0.3).
That file sets samples_per_gpu=1; the batch stays 16 here (8 x 2, the paper's batch for every row)."""
_base_ = ['./cascade_mask_rcnn_vit_adapter_B.py']
model = dict(backbone=dict(_delete_=True, type='ViTBaseline', arch='B', window_attn=True, window_size=14, layer_scale_init=1.0,
                           drop_path_rate=0.2, pretrained='pretrained/deit_base_patch16_224-b5f2ef4d.pth'))

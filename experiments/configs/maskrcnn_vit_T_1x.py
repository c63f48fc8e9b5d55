"""Mask R-CNN 1x (12 epochs) on COCO, ViT-T."""
_base_ = ['./_base_/maskrcnn_vit_T.py', './_base_/coco_instance.py', './_base_/schedule_1x.py']
# no official ViT-T 1x config: the recipe of its ViT-Adapter-T 1x row (the official
# mask_rcnn_deit_adapter_tiny_fpn_1x_coco.py): lr 2e-4, wd 0.01 (every other Mask R-CNN row: 1e-4, 0.05)
optim_wrapper = dict(optimizer=dict(lr=2e-4, weight_decay=0.01))

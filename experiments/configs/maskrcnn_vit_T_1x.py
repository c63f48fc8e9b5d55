"""Mask R-CNN 1x (12 epochs) on COCO, ViT-T."""
_base_ = ['./_base_/maskrcnn_vit_T.py', './_base_/coco_instance.py', './_base_/schedule_1x.py']

"""Mask R-CNN 3x+MS (36 epochs, multi-scale training) on COCO, ViT-S."""
_base_ = ['./_base_/maskrcnn_vit_S.py', './_base_/coco_instance_ms.py', './_base_/schedule_3x.py']

"""Cascade Mask R-CNN 3x+MS (36 epochs, multi-scale training) on COCO, ViT-Adapter-S (Table 2)."""
_base_ = ['./_base_/cascade_mask_rcnn_vit_adapter.py', './_base_/coco_instance_ms.py', './_base_/schedule_3x.py']

"""Mask R-CNN 1x (12 epochs) on COCO, ViT-Adapter-L."""
_base_ = ['./_base_/maskrcnn_vit_adapter_L.py', './_base_/coco_instance.py', './_base_/schedule_1x.py']

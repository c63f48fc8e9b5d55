"""HTC++ 3x+MS (36 epochs, multi-scale training, soft-NMS) on COCO, ViT-Adapter-L, ImageNet-22K supervised (Table 5)."""
_base_ = ['./_base_/htcpp_vit_adapter_L.py', './_base_/coco_instance_htcpp.py', './_base_/schedule_3x.py']

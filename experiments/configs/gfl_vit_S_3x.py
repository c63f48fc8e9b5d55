"""GFL 3x+MS (36 epochs, multi-scale training, boxes only) on COCO, ViT-S (Table 2)."""
_base_ = ['./_base_/gfl_vit_S.py', './_base_/coco_detection_ms.py', './_base_/schedule_3x.py']

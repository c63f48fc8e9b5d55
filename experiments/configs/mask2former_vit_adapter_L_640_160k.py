"""Mask2Former 160k on ADE20K (640x640), ViT-Adapter-L, ImageNet-22K supervised (AugReg-L) (Table 6)."""
_base_ = ['./_base_/mask2former_vit_adapter_L.py']

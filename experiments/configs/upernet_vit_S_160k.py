"""UperNet 160k on ADE20K (512x512), ViT-S."""
_base_ = ['./_base_/upernet_vit_S.py']

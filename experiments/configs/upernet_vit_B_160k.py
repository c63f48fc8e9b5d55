"""UperNet 160k on ADE20K (512x512), ViT-B."""
_base_ = ['./_base_/upernet_vit_B.py']

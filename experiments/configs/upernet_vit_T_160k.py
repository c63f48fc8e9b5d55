"""UperNet 160k on ADE20K (512x512), ViT-T."""
_base_ = ['./_base_/upernet_vit_T.py']

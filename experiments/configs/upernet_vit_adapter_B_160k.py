"""UperNet 160k on ADE20K (512x512), ViT-Adapter-B."""
_base_ = ['./_base_/upernet_vit_adapter_B.py']

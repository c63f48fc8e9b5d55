"""Semantic FPN 80k on ADE20K (512x512), ViT-S."""
_base_ = ['./_base_/semfpn_vit_S.py']

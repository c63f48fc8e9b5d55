"""Semantic FPN 80k on ADE20K (512x512), ViT-T."""
_base_ = ['./_base_/semfpn_vit_T.py']

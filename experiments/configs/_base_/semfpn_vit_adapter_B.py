"""Semantic FPN + ViT-Adapter-B: the ViT-Adapter-S model at size B; the neck / heads follow its width."""
_base_ = ['./semfpn_vit_adapter.py', './vit_adapter_b.py']
from experiments.models import wire  # noqa: E402  (after _base_, so mmengine reads a classic config)

# ADE20K: the 384 DeiT-B (the paper's Table 4 #Param counts its 24x24 position embedding).
model = wire(_base_.model, backbone=dict(_base_.vit_adapter_b, pretrained='pretrained/deit_base_patch16_384-8de9b5d1.pth',
                                         pretrain_size=384))

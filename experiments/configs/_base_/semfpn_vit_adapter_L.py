"""Semantic FPN + ViT-Adapter-L: the ViT-Adapter-S model at size L; the neck / heads follow its width."""
_base_ = ['./semfpn_vit_adapter.py', './vit_adapter_l.py']
from experiments.models import wire  # noqa: E402  (after _base_, so mmengine reads a classic config)

# No official Semantic FPN config exists; the AugReg-L weights take AugReg's input normalisation (mean = std = 127.5)
# as in every official config that loads them (Mask R-CNN and UperNet L, UperNet B ImageNet-22K).
model = wire(_base_.model, backbone=_base_.vit_adapter_l,
             data_preprocessor=dict(mean=[127.5, 127.5, 127.5], std=[127.5, 127.5, 127.5]))

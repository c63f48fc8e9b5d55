"""Mask R-CNN + ViT-Adapter-L: the ViT-Adapter-S model at size L; the neck / heads follow its width."""
_base_ = ['./maskrcnn_vit_adapter.py', './vit_adapter_l.py']
from experiments.models import wire  # noqa: E402  (after _base_, so mmengine reads a classic config)

model = wire(_base_.model, backbone=_base_.vit_adapter_l)

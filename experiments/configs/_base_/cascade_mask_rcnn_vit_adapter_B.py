"""Cascade Mask R-CNN + ViT-Adapter-B: the ViT-Adapter-S model at size B; the neck / heads follow its width."""
_base_ = ['./cascade_mask_rcnn_vit_adapter.py', './vit_adapter_b.py']
from experiments.models import wire  # noqa: E402  (after _base_, so mmengine reads a classic config)

model = wire(_base_.model, backbone=_base_.vit_adapter_b)

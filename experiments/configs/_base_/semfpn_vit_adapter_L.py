"""Semantic FPN + ViT-Adapter-L: the ViT-Adapter-S model at size L; the neck / heads follow its width."""
_base_ = ['./semfpn_vit_adapter.py', './vit_adapter_l.py']
from experiments.grids import augreg_norm  # noqa: E402  (after _base_, so mmengine reads a classic config)
from experiments.models import wire  # noqa: E402

# No official Semantic FPN config exists; the AugReg-L weights take AugReg's input normalisation (``augreg_norm``)
# as in every official config that loads them (Mask R-CNN and UperNet L, UperNet B ImageNet-22K).
model = wire(_base_.model, backbone=_base_.vit_adapter_l, data_preprocessor=augreg_norm())

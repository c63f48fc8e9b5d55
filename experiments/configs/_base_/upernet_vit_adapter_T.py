"""UperNet + ViT-Adapter-T: the ViT-Adapter-S model at size T; the neck / heads follow its width."""
_base_ = ['./upernet_vit_adapter.py', './vit_adapter_t.py']
from experiments.models import wire  # noqa: E402  (after _base_, so mmengine reads a classic config)

model = wire(_base_.model, backbone=_base_.vit_adapter_t)
# the official upernet_deit_adapter_tiny_512_160k_ade20k.py: lr 12e-5 (S, B: 6e-5)
optim_wrapper = dict(optimizer=dict(lr=12e-5))

"""UperNet + ViT-Adapter-L: the ViT-Adapter-S model at size L (the neck / heads follow its width), with the official L
recipe (normalisation, lr, weight decay, fp32 test)."""
_base_ = ['./upernet_vit_adapter.py', './vit_adapter_l.py']
from experiments.models import wire  # noqa: E402  (after _base_, so mmengine reads a classic config)

# The official upernet_augreg_adapter_large_512_160k_ade20k.py: AugReg's input normalisation (mean = std = 127.5),
# lr 2e-5, wd 0.05 (T/S/B: 0.01), layer decay 0.95 over the 24 blocks as the others; no fp16 key (fp32 test).
model = wire(_base_.model, backbone=_base_.vit_adapter_l,
             data_preprocessor=dict(mean=[127.5, 127.5, 127.5], std=[127.5, 127.5, 127.5]))
optim_wrapper = dict(optimizer=dict(lr=2e-5, weight_decay=0.05))
test_cfg = dict(fp16=False)

"""UperNet + ViT-Adapter-L: the ViT-Adapter-S model at size L (the neck / heads follow its width), with the official L
recipe (normalisation, lr, weight decay, fp32 test)."""
_base_ = ['./upernet_vit_adapter.py', './vit_adapter_l.py']
from experiments.grids import augreg_norm  # noqa: E402  (after _base_, so mmengine reads a classic config)
from experiments.models import wire  # noqa: E402

# The official upernet_augreg_adapter_large_512_160k_ade20k.py: AugReg's input normalisation (``augreg_norm``),
# lr 2e-5, wd 0.05 (T/S/B: 0.01), layer decay 0.95 over the 24 blocks as the others; no fp16 key (fp32 test).
model = wire(_base_.model, backbone=_base_.vit_adapter_l, data_preprocessor=augreg_norm())
optim_wrapper = dict(optimizer=dict(lr=2e-5, weight_decay=0.05))
test_cfg = dict(fp16=False)

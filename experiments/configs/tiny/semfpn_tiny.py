"""Tiny profile of Semantic FPN 80k: arch='tiny', 128x128 synthetic ADE20K, FPN 64 / head 32 channels, 300 iters."""
_base_ = ['../semfpn_vit_adapter_S_80k.py', './_seg_data.py']
from experiments.models import wire  # noqa: E402  (after _base_, so mmengine reads a classic config)

train_dataloader = {{_base_.tiny_seg_train_dataloader}}
val_dataloader = {{_base_.tiny_seg_val_dataloader}}
test_dataloader = val_dataloader
num_classes = 4
norm_cfg = dict(type='BN', requires_grad=True)
model = wire(
    _base_.model,
    data_preprocessor=dict(size=(128, 128)),
    backbone=dict(arch='tiny', norm='BN', pretrained=None),
    neck=dict(out_channels=64),
    decode_head=dict(in_channels=[64] * 4, channels=32, num_classes=num_classes, norm_cfg=norm_cfg))
# CPU profile: the paper's optimiser in fp32 (the paper configs' AmpOptimWrapper needs a GPU; experiments/amp.py).
from experiments.amp import fp32_optim_wrapper  # noqa: E402
optim_wrapper = fp32_optim_wrapper(_base_.optim_wrapper, optimizer=dict(lr=4e-4))
max_iters = 300
param_scheduler = [dict(type='PolyLR', power=0.9, eta_min=0.0, by_epoch=False, begin=0, end=max_iters)]
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
default_hooks = dict(checkpoint=dict(interval=50), logger=dict(interval=25))
auto_scale_lr = dict(base_batch_size=4)

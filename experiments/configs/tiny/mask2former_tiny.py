"""Tiny profile of Mask2Former 160k: arch='tiny', 128x128 synthetic ADE20K (4 classes), the paper config's head at
width 64 (pixel decoder 2 deformable layers, 4 heads, FFN 128; decoder 3 layers; 20 queries; 1,024 sampled points),
whole-image test, 300 iterations with the paper's warm-up + poly shape and layer-wise lr decay."""
_base_ = ['../mask2former_vit_adapter_L_640_160k.py', './_seg_data.py']
from experiments.models import wire  # noqa: E402  (after _base_, so mmengine reads a classic config)

train_dataloader = {{_base_.tiny_seg_train_dataloader}}
val_dataloader = {{_base_.tiny_seg_val_dataloader}}
test_dataloader = val_dataloader
num_classes = 4
dim = 64
_head = _base_.model.decode_head
_attn = dict(_head.transformer_decoder.layer_cfg.self_attn_cfg, embed_dims=dim, num_heads=4)
model = wire(
    _base_.model,
    data_preprocessor=dict(size=(128, 128)),
    backbone=dict(_delete_=True, type='ViTAdapter', arch='tiny', norm='BN', pretrained=None, window_attn=False,
                  vit_feature_source='per_interaction', layer_scale_init=1.0),
    decode_head=dict(
        feat_channels=dim, out_channels=dim, num_classes=num_classes, num_queries=20,
        pixel_decoder=dict(norm_cfg=dict(type='GN', num_groups=16), encoder=dict(num_layers=2, layer_cfg=dict(
            self_attn_cfg=dict(embed_dims=dim, num_heads=4), ffn_cfg=dict(embed_dims=dim, feedforward_channels=2 * dim))),
            positional_encoding=dict(num_feats=dim // 2)),
        positional_encoding=dict(num_feats=dim // 2),
        transformer_decoder=dict(num_layers=3, layer_cfg=dict(
            self_attn_cfg=_attn, cross_attn_cfg=_attn, ffn_cfg=dict(embed_dims=dim, feedforward_channels=2 * dim))),
        loss_cls=dict(class_weight=[1.0] * num_classes + [0.1]),
        train_cfg=dict(num_points=1024)),
    test_cfg=dict(_delete_=True, mode='whole'))
# CPU profile: the paper's optimiser in fp32 (the paper configs' AmpOptimWrapper needs a GPU; experiments/amp.py).
from experiments.amp import fp32_optim_wrapper  # noqa: E402
optim_wrapper = fp32_optim_wrapper(_base_.optim_wrapper, optimizer=dict(lr=4e-4))
max_iters = 300
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0, end=30),
    dict(type='PolyLR', power=1.0, eta_min=0.0, by_epoch=False, begin=30, end=max_iters),
]
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
default_hooks = dict(checkpoint=dict(interval=50), logger=dict(interval=25))
auto_scale_lr = dict(base_batch_size=4)

"""Tiny profile of the BEiT-Adapter Mask2Former 896 80k: ``tiny/mask2former_tiny.py`` (arch='tiny', 128x128 synthetic
ADE20K, the head at width 64) with the paper config's BEiT layout of the ViT: class token through the ViT blocks,
no absolute position embedding, relative position tables (with their class entries) for the 128-px crop's 8x8
grid, q / v biases, layer scale and injector gammas from 1e-6, and twice the queries of the 640 tiny (40, as 200 vs
100). The grid's tiny cells load a synthesised BEiT-format checkpoint (``@synthetic:beit``: a 224-px 14x14 grid,
so the loader resizes its tables as the official BEiT loader does)."""
_base_ = ['./mask2former_tiny.py']
from experiments.models import wire  # noqa: E402  (after _base_, so mmengine reads a classic config)

model = wire(
    _base_.model,
    backbone=dict(pretrain_size=128, rel_pos_bias=True, class_token=True, abs_pos_embed=False, qkv_bias='qv',
                  layer_scale_init=1e-6, init_gamma=1e-6),
    decode_head=dict(num_queries=40))

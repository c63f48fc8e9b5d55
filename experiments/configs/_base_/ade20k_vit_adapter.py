"""ADE20K segmentor with a ViT-Adapter-S backbone: what UperNet and Semantic FPN share (heads are theirs)."""
_base_ = ['./ade20k.py', './seg_runtime.py', './vit_adapter_s.py']
from experiments.grids import imagenet_norm  # noqa: E402  (after _base_, so mmengine reads a classic config)

model = dict(
    type='EncoderDecoder',
    data_preprocessor=dict(type='SegDataPreProcessor', **imagenet_norm(),
                           bgr_to_rgb=True, pad_val=0, seg_pad_val=255, size=(512, 512)),
    # Global attention; level i gets the ViT tokens after interaction i (the official segmentation backbone).
    backbone=dict(window_attn=False, vit_feature_source='per_interaction'),
    train_cfg=dict())
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')

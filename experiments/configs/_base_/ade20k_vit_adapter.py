"""ADE20K segmentor with a ViT-Adapter-S backbone: what UperNet and Semantic FPN share (heads are theirs)."""
_base_ = ['./ade20k.py', './seg_runtime.py']

model = dict(
    type='EncoderDecoder',
    data_preprocessor=dict(type='SegDataPreProcessor', mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375],
                           bgr_to_rgb=True, pad_val=0, seg_pad_val=255, size=(512, 512)),
    backbone=dict(
        type='ViTAdapter',
        arch='S',
        n_interactions=4,
        variant='full',
        attn_type='deformable',
        window_attn=False,
        norm='SyncBN',
        drop_path_rate=0.2,
        pretrained='pretrained/deit_small_patch16_224-cd65a155.pth',
        pretrain_size=224,
        img_size=512),
    train_cfg=dict())
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')

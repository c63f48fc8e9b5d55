"""The paper's ViT-Adapter-S backbone settings, shared by detection and segmentation (tasks add their own)."""
model = dict(
    backbone=dict(
        type='ViTAdapter',
        arch='S',
        n_interactions=4,
        variant='full',
        attn_type='deformable',
        norm='SyncBN',
        drop_path_rate=0.2,
        layer_scale_init=1.0,  # the official ViT: layer scale in every block, gammas initialised to 1.0
        pretrained='pretrained/deit_small_patch16_224-cd65a155.pth',
        pretrain_size=224))

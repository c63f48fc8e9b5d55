"""The paper's ViT-Adapter-S backbone settings, shared by detection and segmentation (tasks add their own).

The sizes (width, depth, heads, drop path, pre-training size...) are the 'S' row of ``adapter/presets.py``; a
config names the arch and its pre-trained checkpoint, never the preset's numbers.
"""
model = dict(
    backbone=dict(
        type='ViTAdapter',
        arch='S',
        n_interactions=4,
        variant='full',
        attn_type='deformable',
        norm='SyncBN',
        layer_scale_init=1.0,  # the official ViT: layer scale in every block, gammas initialised to 1.0
        pretrained='pretrained/deit_small_patch16_224-cd65a155.pth'))

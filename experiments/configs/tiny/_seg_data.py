"""Synthetic ADE20K-style data for the tiny segmentation configs (4 classes after reduce_zero_label).

Used as ``_base_`` next to a paper config, so every name here is prefixed ``tiny_seg_`` (mmengine forbids keys
shared by sibling bases); children pick the loaders with ``{{_base_.tiny_seg_train_dataloader}}``.
"""
tiny_seg_dataset_type = 'BaseSegDataset'
tiny_seg_data_root = 'data/synthetic/ade/ADEChallengeData2016'
tiny_seg_metainfo = dict(classes=('background', 'disc', 'square', 'triangle'),
                         palette=[[40, 40, 40], [220, 60, 60], [60, 200, 60], [70, 90, 230]])
tiny_seg_crop_size = (128, 128)
tiny_seg_train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='RandomResize', scale=(128, 128), ratio_range=(0.75, 1.5), keep_ratio=True),
    dict(type='RandomCrop', crop_size=tiny_seg_crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs'),
]
tiny_seg_test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='PackSegInputs'),
]
tiny_seg_dataset = dict(type=tiny_seg_dataset_type, data_root=tiny_seg_data_root, metainfo=tiny_seg_metainfo,
                        img_suffix='.jpg', seg_map_suffix='.png',
                        reduce_zero_label=True)
tiny_seg_train_dataloader = dict(
    batch_size=4, num_workers=1, persistent_workers=True,
    dataset=dict(tiny_seg_dataset, data_prefix=dict(img_path='images/training', seg_map_path='annotations/training'),
                 pipeline=tiny_seg_train_pipeline))
tiny_seg_val_dataloader = dict(
    batch_size=4, num_workers=1, persistent_workers=True,
    dataset=dict(tiny_seg_dataset,
                 data_prefix=dict(img_path='images/validation', seg_map_path='annotations/validation'),
                 pipeline=tiny_seg_test_pipeline))

"""ADE20K (SceneParsing, 150 classes), read from data/ade/ADEChallengeData2016; 512x512 crops."""
_base_ = []  # none: the line makes mmengine read this file as a classic config despite the import below
from experiments.recipes import ade20k_pipelines  # noqa: E402
dataset_type = 'ADE20KDataset'
data_root = 'data/ade/ADEChallengeData2016'
crop_size = (512, 512)
train_pipeline, test_pipeline = ade20k_pipelines((2048, 512), crop_size, resize_to_multiple=False)
train_dataloader = dict(
    batch_size=2,  # per GPU; 8 GPUs -> 16
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_prefix=dict(img_path='images/training', seg_map_path='annotations/training'),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_prefix=dict(img_path='images/validation', seg_map_path='annotations/validation'),
        pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='IoUMetric', iou_metrics=['mIoU'])
test_evaluator = val_evaluator

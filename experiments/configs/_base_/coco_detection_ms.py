"""COCO boxes only with the 3x+MS augmentation (ATSS, GFL): ``coco_instance_ms.py`` without the masks, evaluated on
bbox AP (the official coco_detection.py base of atss/gfl_deit_adapter_small_fpn_3x_coco.py)."""
_base_ = ['./coco_instance_ms.py']


def _boxes_only(pipeline):
    return [dict(t, with_mask=False) if t['type'] == 'LoadAnnotations' else t for t in pipeline]


train_pipeline = _boxes_only(_base_.train_pipeline)
test_pipeline = _boxes_only(_base_.test_pipeline)
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(metric=['bbox'])
test_evaluator = val_evaluator

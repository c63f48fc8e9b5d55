"""Runtime for the ADE20K segmentors: mmseg scope and visualisation on top of the shared runtime."""
_base_ = ['./runtime.py']

default_scope = 'mmseg'
custom_imports = dict(
    imports=['experiments.shims.mmseg_adapter', 'experiments.optim', 'experiments.hooks'],
    allow_failed_imports=False)
default_hooks = dict(
    logger=dict(log_metric_by_epoch=False),
    checkpoint=dict(interval=4000),
    visualization=dict(type='SegVisualizationHook'))
visualizer = dict(type='SegLocalVisualizer')
log_processor = dict(by_epoch=False)

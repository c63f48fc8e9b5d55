"""Runtime for the COCO detectors: mmdet scope and visualisation on top of the shared runtime."""
_base_ = ['./runtime.py']

default_scope = 'mmdet'
custom_imports = dict(
    imports=['experiments.shims.mmdet_adapter', 'experiments.optim', 'experiments.hooks'],
    allow_failed_imports=False)
default_hooks = dict(
    checkpoint=dict(interval=2000),
    visualization=dict(type='DetVisualizationHook'))
visualizer = dict(type='DetLocalVisualizer')
log_processor = dict(type='LogProcessor', window_size=50, by_epoch=False)

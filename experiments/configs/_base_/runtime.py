"""Runtime shared by the detection and segmentation configs: preemption-safe checkpoints, the suite's hooks."""
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50),
    param_scheduler=dict(type='ParamSchedulerHook'),
    # By iteration, so that a requeued job loses at most `interval` iterations. Two kept (at least two are needed):
    # mmengine removes the oldest before it writes the next, so a save cut off by a crash leaves one intact fallback.
    checkpoint=dict(type='CheckpointHook', by_epoch=False, max_keep_ckpts=2),
    sampler_seed=dict(type='DistSamplerSeedHook'))
# CheckpointRecordHook: size + SHA-256 of each checkpoint in checkpoints.json (a relaunch skips corrupt ones).
custom_hooks = [dict(type='RNGStateHook'), dict(type='FinalMetricsHook'), dict(type='CheckpointRecordHook')]
# GPU speed (the paper profile): cudnn autotuning on, deterministic algorithms off. The launcher sets
# randomness.deterministic from the profile (paper: False; tiny, the CPU profile: True, which also turns cudnn
# benchmark off) unless a config or --cfg-options randomness.deterministic=True asks for it.
env_cfg = dict(
    cudnn_benchmark=True,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    dist_cfg=dict(backend='nccl'))
# LocalVisBackend: <run>/<timestamp>/vis_data/scalars.json (analysis/logs.py reads it). TensorBoard event files in the
# same folder (`tensorboard --logdir runs/`). `python -m experiments.launch --vis wandb|mlflow|tensorboard|none` swaps
# them (experiments/vis.py); neither key is part of a run's identity, so a switch keeps (and resumes) the run.
vis_backends = [dict(type='LocalVisBackend'), dict(type='TensorboardVisBackend')]
visualizer = dict(vis_backends=vis_backends, name='visualizer')
log_level = 'INFO'
load_from = None
resume = False
# Batch 16 = 8 GPUs x 2 images; enable auto_scale_lr when running on a different total batch.
auto_scale_lr = dict(enable=False, base_batch_size=16)

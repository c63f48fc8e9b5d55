"""The ViT-Adapter paper's experiments: mmengine configs, grids, a submitit launcher, run directories.

Entry points: ``python -m experiments.launch GRID``, ``python -m experiments.status GRID``,
``python -m experiments.synthetic``. See ``experiments/README.md``.
"""

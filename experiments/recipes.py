"""Pieces of the official segmentation recipes that several configs share, as functions the configs call.

A config imports them after its ``_base_`` line (``from experiments.recipes import ade20k_pipelines``), as it does
``experiments.models.wire``: mmengine drops functions from a classic config, so the resolved config holds only the
lists they return. The official ADE20K files differ only in sizes (512 UperNet / Semantic FPN, 640 and 896
Mask2Former); list items do not merge across mmengine bases, so without these each file restated its lists.
"""
from __future__ import annotations


def ade20k_pipelines(scale: tuple[int, int], crop_size: tuple[int, int],
                     resize_to_multiple: bool = True) -> tuple[list, list]:
    """(train, test) pipelines of the official ADE20K configs (new lists).

    Train: random resize of ``scale`` by 0.5-2.0 keeping the aspect ratio, random crop ``crop_size`` (at most 75%
    of one class), horizontal flip, photometric distortion. Test: resize to ``scale`` keeping the ratio, then (the
    official test pipelines; ``resize_to_multiple``) to a multiple of 32.
    """
    train = [
        dict(type='LoadImageFromFile'),
        dict(type='LoadAnnotations', reduce_zero_label=True),
        dict(type='RandomResize', scale=scale, ratio_range=(0.5, 2.0), keep_ratio=True),
        dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
        dict(type='RandomFlip', prob=0.5),
        dict(type='PhotoMetricDistortion'),
        dict(type='PackSegInputs'),
    ]
    test = [dict(type='LoadImageFromFile'), dict(type='Resize', scale=scale, keep_ratio=True)]
    if resize_to_multiple:
        test.append(dict(type='ResizeToMultiple', size_divisor=32))
    test += [dict(type='LoadAnnotations', reduce_zero_label=True), dict(type='PackSegInputs')]
    return train, test


def warmup_poly(max_iters: int, warmup_iters: int = 1500) -> list:
    """mmcv's poly schedule (power 1, min lr 0) over all ``max_iters`` iterations from iteration 0, multiplied by
    its linear warm-up (``warmup_iters`` from 1e-6), as mmengine schedulers.

    mmengine's schedulers reach their end value at step ``end - 1``, hence the +1s; the two run side by side in
    tests/experiments/test_official_recipes.py, which checks the lr of every iteration.
    """
    return [
        dict(type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0, end=warmup_iters + 1),
        dict(type='PolyLR', power=1.0, eta_min=0.0, by_epoch=False, begin=0, end=max_iters + 1),
    ]

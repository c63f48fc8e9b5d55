"""Shared fixtures for the experiments tests: a small synthetic dataset and fast tiny-run options."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

#: cfg-options that shrink a tiny run to seconds: few iterations, frequent checkpoints, 8 validation images.
def fast_options(iters: int = 8, ckpt: int = 4, val_images: int = 8) -> list[str]:
    return [f'train_cfg.max_iters={iters}', f'train_cfg.val_interval={iters}',
            f'default_hooks.checkpoint.interval={ckpt}', 'default_hooks.logger.interval=2',
            f'val_dataloader.dataset.indices={val_images}', f'test_dataloader.dataset.indices={val_images}',
            'train_dataloader.batch_size=2']


@pytest.fixture(scope='session')
def synthetic_data() -> Path:
    """The synthetic dataset the tiny configs read (data/synthetic; generated once, idempotent)."""
    from experiments.launch import SYNTHETIC_ROOT
    from experiments.synthetic import ensure
    return ensure(SYNTHETIC_ROOT)


@pytest.fixture(autouse=True)
def _passive_omp(monkeypatch):
    monkeypatch.setenv('OMP_WAIT_POLICY', os.environ.get('OMP_WAIT_POLICY', 'PASSIVE'))

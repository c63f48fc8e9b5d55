"""The paper configs' GPU profile: AMP bf16, cudnn benchmark, SyncBN, deterministic algorithms only when asked;
the tiny (CPU) profile keeps fp32 and determinism (experiments/amp.py, configs/_base_/runtime.py, launch)."""
from __future__ import annotations

from pathlib import Path

import pytest
from mmengine.config import Config

from experiments.amp import fp32_optim_wrapper, on_device

CONFIGS = Path(__file__).resolve().parents[2] / 'experiments' / 'configs'
PAPER3 = ['maskrcnn_vit_adapter_S_1x', 'upernet_vit_adapter_S_160k', 'semfpn_vit_adapter_S_80k']
TINY = {'maskrcnn_tiny_1x': 'maskrcnn_vit_adapter_S_1x', 'upernet_tiny': 'upernet_vit_adapter_S_160k',
        'semfpn_tiny': 'semfpn_vit_adapter_S_80k', 'maskrcnn_tiny_vit_3x': 'maskrcnn_vit_adapter_S_1x'}


def _cfg(path: Path) -> Config:
    return Config.fromfile(str(path), import_custom_modules=False)


@pytest.mark.parametrize('stem', PAPER3)
def test_paper_configs_gpu_profile(stem):
    cfg = _cfg(CONFIGS / f'{stem}.py')
    assert cfg.optim_wrapper.type == 'AmpOptimWrapper' and cfg.optim_wrapper.dtype == 'bfloat16'
    assert cfg.env_cfg.cudnn_benchmark is True
    assert cfg.model.backbone.norm == 'SyncBN'  # the SPM / output norms, synchronised across GPUs
    if stem.startswith(('upernet', 'semfpn')):
        assert cfg.model.decode_head.norm_cfg.type == 'SyncBN'


@pytest.mark.parametrize('tiny,paper', sorted(TINY.items()))
def test_tiny_configs_train_the_same_optimiser_in_fp32(tiny, paper):
    t, p = _cfg(CONFIGS / 'tiny' / f'{tiny}.py').optim_wrapper, _cfg(CONFIGS / f'{paper}.py').optim_wrapper
    assert t.type == 'OptimWrapper' and 'dtype' not in t and 'loss_scale' not in t
    assert t.optimizer.lr == pytest.approx(4e-4)
    assert {k: v for k, v in t.optimizer.items() if k != 'lr'} == {k: v for k, v in p.optimizer.items() if k != 'lr'}
    assert t.get('paramwise_cfg') == p.get('paramwise_cfg') and t.get('constructor') == p.get('constructor')


def test_fp32_optim_wrapper_and_on_device():
    base = dict(type='AmpOptimWrapper', dtype='bfloat16', loss_scale=1.0, optimizer=dict(type='AdamW', lr=1e-4,
                weight_decay=0.05), paramwise_cfg=dict(layer_decay_rate=0.9))
    out = fp32_optim_wrapper(base, optimizer=dict(lr=4e-4))
    assert out == dict(_delete_=True, type='OptimWrapper', optimizer=dict(type='AdamW', lr=4e-4, weight_decay=0.05),
                       paramwise_cfg=dict(layer_decay_rate=0.9))
    cfg = Config(dict(optim_wrapper=base))
    assert on_device(cfg, 'cuda') == [] and cfg.optim_wrapper.type == 'AmpOptimWrapper'
    notes = on_device(cfg, 'cpu')
    assert cfg.optim_wrapper.type == 'OptimWrapper' and 'dtype' not in cfg.optim_wrapper and notes


@pytest.mark.parametrize('profile,extra,expected', [('paper', {}, False), ('tiny', {}, True),
                                                    ('paper', {'randomness.deterministic': True}, True)])
def test_launcher_determinism_by_profile(profile, extra, expected, tmp_path):
    """Deterministic algorithms: off on the paper (GPU) profile unless asked (--cfg-options
    randomness.deterministic=True); on in the tiny (CPU) profile, which resumes bit for bit."""
    from experiments.grids import get_grid
    from experiments.launch import build_config
    spec = get_grid('main-seg').runs(1, only=['semfpn_vit_adapter_S'])[0]
    cfg, _, _ = build_config(spec, profile, extra, tmp_path, dry_run=True)
    assert cfg.randomness.deterministic is expected and cfg.randomness.seed == spec.seed

"""The paper's other detectors and headline heads (Table 2: Cascade Mask R-CNN, ATSS, GFL; Table 5: HTC++; Table 6:
Mask2Former): their grids, and one training step plus one validation step of every tiny cell on CPU.

Each tiny run goes through the launcher and the job (``experiments.launch``), as ``make det-frameworks`` would run it,
shrunk to 1 iteration and 2 validation images; it must finish with a finite loss and its metrics recorded.
Measured on the 2 shared cores (each run is a subprocess: start-up and imports included): see experiments/README.md.
"""
from __future__ import annotations

import json
import math

import pytest

from experiments import launch
from experiments import rundir as rd
from experiments.grids import get_grid

from .conftest import fast_options

T2_RUNS = ['cascade_vit_S', 'cascade_vit_B', 'cascade_vit_adapter_S', 'cascade_vit_adapter_B', 'atss_vit_S',
           'atss_vit_adapter_S', 'gfl_vit_S', 'gfl_vit_adapter_S']


def test_det_frameworks_grid():
    grid = get_grid('det-frameworks')
    assert grid.names == T2_RUNS
    runs = {r.name: r for r in grid.runs(1)}
    assert runs['cascade_vit_adapter_B'].configs == dict(paper='cascade_mask_rcnn_vit_adapter_B_3x.py',
                                                          tiny='tiny/cascade_tiny_3x.py')
    assert runs['gfl_vit_S'].configs == dict(paper='gfl_vit_S_3x.py', tiny='tiny/gfl_tiny_vit_3x.py')
    assert runs['atss_vit_adapter_S'].resolved_overrides('tiny')['model.backbone.embed_dim'] == 64


def _one_step(grid: str, run: str, root, *options: str) -> dict:
    spec = get_grid(grid).runs(1, only=[run])[0]
    extra = launch.parse_cfg_options(fast_options(iters=1, ckpt=1, val_images=2) + ['default_hooks.logger.interval=1',
                                                                                     *options])
    rdir, status = launch.prepare_run(spec, 'tiny', root, extra, 'test', dry_run=False)
    assert status == 'new'
    (_, rc, seconds), = launch._run_local([rdir])
    state = rd.read_state(rdir)
    assert rc == 0 and state['state'] == 'finished', state.get('error')
    metrics = json.loads((rdir / rd.FINAL_METRICS).read_text())
    assert metrics['iters'] == 1
    losses = [json.loads(line) for p in rdir.glob('*/vis_data/scalars.json') for line in p.read_text().splitlines()]
    loss = [x['loss'] for x in losses if 'loss' in x]
    assert loss and all(math.isfinite(v) for v in loss)
    metrics['_seconds'] = seconds
    return metrics


@pytest.mark.parametrize('run', ['cascade_vit_adapter_S', 'cascade_vit_B', 'atss_vit_adapter_S', 'atss_vit_S',
                                 'gfl_vit_adapter_S', 'gfl_vit_S'])
def test_det_frameworks_tiny_one_step(run, tmp_path, synthetic_data):
    # after one step the one-stage heads score every box near their 0.01 prior, under the 0.05 test threshold: keep
    # them all so that the box metric is computed (an empty result leaves mmdet's CocoMetric without a value)
    dense = ['model.test_cfg.score_thr=0.0'] if run.startswith(('atss', 'gfl')) else []
    m = _one_step('det-frameworks', run, tmp_path, *dense)
    assert 'coco/bbox_mAP' in m
    assert ('coco/segm_mAP' in m) == run.startswith('cascade')  # ATSS / GFL: boxes only

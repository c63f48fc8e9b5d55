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


# One train+val step per framework, the two backbone types alternating (all six cells cost 45 s); each framework's
# twin with the other backbone is built and run forward in test_configs.test_tiny_builds_and_runs_forward, and its
# paper-size count checked in analysis/test_params.test_table2_detectors_are_compared.
@pytest.mark.parametrize('run', ['cascade_vit_adapter_S', 'atss_vit_S', 'gfl_vit_adapter_S'])
def test_det_frameworks_tiny_one_step(run, tmp_path, synthetic_data):
    # after one step the one-stage heads score every box near their 0.01 prior, under the 0.05 test threshold: keep
    # them all so that the box metric is computed (an empty result leaves mmdet's CocoMetric without a value)
    dense = ['model.test_cfg.score_thr=0.0'] if run.startswith(('atss', 'gfl')) else []
    m = _one_step('det-frameworks', run, tmp_path, *dense)
    assert 'coco/bbox_mAP' in m
    assert ('coco/segm_mAP' in m) == run.startswith('cascade')  # ATSS / GFL: boxes only


def test_sota_grid():
    runs = {r.name: r for r in get_grid('sota').runs(1)}
    assert list(runs) == ['htcpp_vit_adapter_L', 'mask2former_vit_adapter_L', 'mask2former_beit_adapter_L',
                          'mask2former_beitv2_adapter_L']
    assert (runs['htcpp_vit_adapter_L'].task, runs['mask2former_vit_adapter_L'].task) == ('det', 'seg')
    assert runs['mask2former_vit_adapter_L'].configs['paper'] == 'mask2former_vit_adapter_L_640_160k.py'
    for name, ckpt in (('mask2former_beit_adapter_L', 'beit_large_patch16_224_pt22k_ft22k'),
                       ('mask2former_beitv2_adapter_L', 'beitv2_large_patch16_224_pt1k_ft21k')):
        assert runs[name].configs == dict(paper='mask2former_beit_adapter_L_896_80k.py',
                                          tiny='tiny/mask2former_beit_tiny.py')
        assert runs[name].resolved_overrides('paper')['model.backbone.pretrained'] == f'pretrained/{ckpt}.pth'
        assert runs[name].resolved_overrides('tiny')['model.backbone.pretrained'] == '@synthetic:beit'


def test_mask2former_beit_896_paper_model():
    """The BEiT-Adapter-L 896 config is the 640 one with BEiT's ViT (class token, no position embedding, 111x111
    relative position tables + class entries, q / v biases, gammas from 1e-6) and 200 queries; 570.74M, the paper's
    571M (Table 6; the official README too). Its backbone has the official BEiTAdapter's 331,091,648 parameters
    (the key layout of tests/adapter/data/official_layout.json)."""
    from analysis.model_summary import count_params
    from experiments.models import CONFIG_DIR, build_model, load_config
    from tests.adapter.official_layout import official_param_count
    cfg = load_config(CONFIG_DIR / 'mask2former_beit_adapter_L_896_80k.py')
    model = build_model('seg', cfg.model, device='meta')
    vit, head = model.backbone.vit, model.decode_head
    assert vit.pos_embed is None and vit.cls_token.shape == (1, 1, 1024) and vit.pretrain_grid == (56, 56)
    blk = vit.blocks[0]
    assert blk.attn.rel_pos_table.shape == (16, 111, 111) and blk.attn.rel_pos_cls.shape == (16, 3)
    assert blk.attn.qkv.bias is None and blk.attn.q_bias.shape == (1024,)
    assert (cfg.model.backbone.layer_scale_init, cfg.model.backbone.init_gamma) == (1e-6, 1e-6)  # (meta: no values)
    assert head.num_queries == 200 and head.query_embed.weight.shape == (200, 1024)
    assert count_params(model.backbone) == official_param_count('seg_beit_adapter_L_896') == 331_091_648
    assert count_params(model) / 1e6 == pytest.approx(570.74, abs=0.01)
    assert abs(count_params(model) / 1e6 - 571) <= 0.5   # the paper's rounding (tests/analysis/test_params.py)
    assert (cfg.train_cfg.max_iters, cfg.train_dataloader.batch_size, tuple(cfg.model.test_cfg.stride)) == \
        (80000, 1, (512, 512))


def test_htcpp_paper_model():
    """HTC++'s extras arrive in the model: the extra attention before the FPN, HTC's three interleaved stages with
    the semantic branch, soft-NMS; 400.32M, the official README's 401M (the paper gives no count)."""
    from analysis.model_summary import count_params
    from experiments.models import CONFIG_DIR, build_model, load_config
    cfg = load_config(CONFIG_DIR / 'htcpp_vit_adapter_L_3x.py')
    model = build_model('det', cfg.model, device='meta')
    assert type(model).__name__ == 'HybridTaskCascade' and type(model.neck[0]).__name__ == 'ExtraAttention'
    assert model.neck[0].block.attn.num_heads == 32 and model.roi_head.with_semantic
    assert cfg.model.test_cfg.rcnn.nms.type == 'soft_nms' and cfg.model.test_cfg.rcnn.max_per_img == 300
    assert count_params(model) / 1e6 == pytest.approx(400.32, abs=0.01)


@pytest.mark.parametrize('run', ['htcpp_vit_adapter_L', 'mask2former_vit_adapter_L', 'mask2former_beit_adapter_L'])
def test_sota_tiny_one_step(run, tmp_path, synthetic_data):
    m = _one_step('sota', run, tmp_path)
    assert ('coco/segm_mAP' in m) if run.startswith('htcpp') else ('mIoU' in m)
    if 'beit' in run:  # the synthesised BEiT checkpoint loaded strictly (its 14x14-grid tables resized to 8x8's)
        log = ''.join(p.read_text() for p in tmp_path.rglob('*.log'))
        assert 'format=beit; missing=[]; unexpected=[]' in log and '(2, 27, 27) -> (2, 15, 15)' in log


def test_wire_feeds_a_neck_chain_and_mask2former():
    """models.wire(): every neck of a chain ([ExtraAttention, FPN]) and a Mask2Former head (in_channels, no
    in_index) get the backbone's width."""
    from experiments.models import wire
    m = wire(None, backbone=dict(type='ViTAdapter', arch='B'),
             neck=[dict(type='ExtraAttention', in_channels=[1] * 4), dict(type='FPN', in_channels=[1] * 4)])
    assert [n['in_channels'] for n in m['neck']] == [[768] * 4] * 2
    m = wire(None, backbone=dict(type='ViTAdapter', arch='L'), decode_head=dict(type='Mask2FormerHead',
                                                                                  in_channels=[1] * 4))
    assert m['decode_head']['in_channels'] == [1024] * 4

"""Every paper config trains with the recipe of the official config of its row (czczup/ViT-Adapter).

The official recipes are data, ``data/official_recipes.json``: per official config (mmdet 2.x / mmseg 0.x terms,
read from the file and its ``_base_`` chain) the optimiser, the parameter-wise rule (custom keys or layer-wise lr
decay), grad clipping, schedule, batch, input normalisation, augmentation, test scale, fp16 and evaluation interval;
per paper config the official file of its row, or, for rows without one, whose recipe it keeps (``follows``). The
tests translate each fact to mmengine / mmdet 3.x / mmseg 1.x terms and check the resolved config, and check the
optimiser the config builds parameter by parameter against the official rule applied to the official parameter
names (``adapter.convert.convert_to_official``).
"""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import pytest
import torch
from mmengine.config import Config

from experiments.grids import CONFIG_DIR

DATA = json.loads((Path(__file__).with_name('data') / 'official_recipes.json').read_text())
PAPER = sorted(p.stem for p in CONFIG_DIR.glob('*.py'))
#: COCO train2017 after filter_empty_gt (117,266 images) at batch 16: the iterations of one epoch.
ITERS_PER_EPOCH = 117266 // 16


def recipe(stem: str) -> dict:
    row = DATA['rows'][stem]
    key = row['official'] or row['follows']
    return DATA['official'][key] if key in DATA['official'] else DATA['suite'][key]


@lru_cache(maxsize=None)
def config(stem: str) -> Config:
    return Config.fromfile(str(CONFIG_DIR / f'{stem}.py'), import_custom_modules=False)


def _types(pipeline) -> list:
    return [t['type'] for t in pipeline]


def _one(pipeline, type_: str) -> dict:
    found = [t for t in pipeline if t['type'] == type_]
    assert len(found) == 1, (type_, _types(pipeline))
    return found[0]


# ------------------------------------------------------------------------------------------ official rules
def official_custom_keys(name: str, keys: dict, lr: float, wd: float) -> tuple:
    """lr and weight decay of a parameter under mmcv 1.x custom keys: the longest key first (ties alphabetical),
    the first one contained in the full name decides; unmatched parameters keep the base values."""
    for key in sorted(sorted(keys), key=len, reverse=True):
        if key in name:
            return lr * keys[key].get('lr_mult', 1.0), wd * keys[key].get('decay_mult', 1.0)
    return lr, wd


def official_layer_decay(name: str, ndim: int, num_layers: int, rate: float, lr: float, wd: float,
                         layer0_head: tuple = ()) -> tuple:
    """lr and weight decay of a parameter under the official LayerDecayOptimizerConstructor: layer 0 = the ViT
    embeddings, block i = layer i + 1, anything else (adapter, neck, heads) = layer num_layers + 1 at the full lr;
    lr x rate ** (num_layers + 1 - layer). The segmentation version also puts the head parameters whose names start
    with ``layer0_head`` in layer 0 (the Mask2Former head's mask_embed, cls_embed, level_embed, query_embed and
    query_feat; the other heads have no such names, and there both versions agree).
    No weight decay for 1-D parameters and biases only: its extra check of the bare names 'pos_embed' /
    'cls_token' never matches a full name such as 'backbone.pos_embed', so the embeddings are decayed."""
    if name in ('backbone.cls_token', 'backbone.mask_token', 'backbone.pos_embed', 'backbone.visual_embed') or \
            name.startswith(('backbone.patch_embed', 'backbone.visual_embed')) or \
            (layer0_head and name.startswith(tuple(layer0_head))):
        layer = 0
    elif name.startswith(('backbone.blocks.', 'backbone.layers.')):
        layer = int(name.split('.')[2]) + 1
    else:
        layer = num_layers + 1
    no_decay = ndim == 1 or name.endswith('.bias')
    return lr * rate ** (num_layers + 1 - layer), 0.0 if no_decay else wd


def official_names(model: torch.nn.Module) -> dict:
    """Our parameter name -> the official code's name of the same parameter."""
    from adapter.convert import convert_to_official
    params = dict(model.named_parameters())
    by_id = {id(v): k for k, v in convert_to_official(params).items()}
    out = {name: by_id.get(id(p)) for name, p in params.items()}
    if 'backbone.vit.pos_embed' in out:  # gets its class-token slot back, so a new tensor
        out['backbone.vit.pos_embed'] = 'backbone.pos_embed'
    for name in out:  # BEiT: grid offsets + class entries are one official table (a new tensor)
        if name.endswith(('.attn.rel_pos_table', '.attn.rel_pos_cls')):
            out[name] = name.replace('backbone.vit.', 'backbone.').rsplit('.', 1)[0] + '.relative_position_bias_table'
    assert None not in out.values(), [k for k, v in out.items() if v is None]
    return out


# ------------------------------------------------------------------------------------------------- tests
def test_every_paper_config_has_a_row():
    assert sorted(DATA['rows']) == PAPER
    for stem, row in DATA['rows'].items():
        assert (row['official'] in DATA['official']) if row['official'] else (
            row['follows'] in DATA['official'] or row['follows'] in DATA['suite']), stem


@pytest.mark.parametrize('stem', PAPER)
def test_optimizer(stem):
    r, ow = recipe(stem), config(stem).optim_wrapper
    assert ow.type == 'AmpOptimWrapper' and ow.dtype == 'bfloat16'  # AMP bf16, the suite's GPU profile (fp16 test)
    assert ow.get('clip_grad') is None and r['grad_clip'] is None
    opt = ow.optimizer
    assert opt.type == r['optimizer']['type']
    assert opt.lr == pytest.approx(r['optimizer']['lr'], rel=1e-12)
    assert list(opt.get('betas', (0.9, 0.999))) == r['optimizer']['betas']
    assert opt.weight_decay == pytest.approx(r['optimizer']['weight_decay'], rel=1e-12)


@pytest.mark.parametrize('stem', PAPER)
def test_paramwise_cfg(stem):
    pw, ow = recipe(stem)['paramwise'], config(stem).optim_wrapper
    if 'custom_keys' in pw:
        assert ow.get('constructor', 'DefaultOptimWrapperConstructor') == 'DefaultOptimWrapperConstructor'
        assert ow.paramwise_cfg.to_dict() == {'custom_keys': pw['custom_keys']}
    else:
        ld = pw['layer_decay']
        assert ow.constructor == 'ViTLayerDecayOptimWrapperConstructor'
        assert ow.paramwise_cfg.layer_decay_rate == ld['rate']
        assert list(ow.paramwise_cfg.get('head_embed_keys', [])) == ld.get('layer0_head', [])
        assert ow.paramwise_cfg.get('num_layers', ld['num_layers']) == ld['num_layers']  # else counted: see below


@pytest.mark.parametrize('stem', PAPER)
def test_param_groups_follow_the_official_rule(stem):
    """The optimiser the config builds gives every parameter the lr and weight decay that the official
    constructor gives the same parameter of the official model (meta device: names and shapes only)."""
    from mmengine.optim import build_optim_wrapper

    import experiments.optim  # noqa: F401  (registers the layer-decay constructor)
    from experiments.models import build_model
    import copy

    from experiments.amp import on_device
    cfg, r = copy.deepcopy(config(stem)), recipe(stem)  # config() is cached: change a copy
    on_device(cfg, 'cpu')  # mmengine builds AmpOptimWrapper only on a GPU; the parameter groups do not depend on it
    model = build_model({'mmdet': 'det', 'mmseg': 'seg'}[cfg.default_scope], cfg.model, device='meta')
    groups = build_optim_wrapper(model, cfg.optim_wrapper.to_dict()).optimizer.param_groups
    got = {id(p): (g['lr'], g['weight_decay']) for g in groups for p in g['params']}
    lr, wd = r['optimizer']['lr'], r['optimizer']['weight_decay']
    names = official_names(model) if r in DATA['official'].values() else {n: n for n, _ in model.named_parameters()}
    wrong = []
    for name, p in model.named_parameters():
        off = names[name]
        if 'custom_keys' in r['paramwise']:
            want = official_custom_keys(off, r['paramwise']['custom_keys'], lr, wd)
        else:
            ld = r['paramwise']['layer_decay']
            want = official_layer_decay(off, p.ndim, ld['num_layers'], ld['rate'], lr, wd, ld.get('layer0_head', ()))
        if got[id(p)] != pytest.approx(want, rel=1e-9, abs=0):
            wrong.append(f'{name} ({off}): lr, wd {got[id(p)]} != {want}')
    assert not wrong, f'{len(wrong)} parameters differ, e.g.\n' + '\n'.join(wrong[:12])


@pytest.mark.parametrize('stem', PAPER)
def test_schedule(stem):
    """mmcv's schedules in mmengine terms. mmcv's linear warm-up factor reaches 1 at iteration warmup_iters and
    its poly reaches min_lr at max_iters; mmengine's schedulers reach their end value at step ``end - 1``, so the
    exact translation ends them one step later (test_warmup_composition_is_the_official_one). The suite's own
    Semantic FPN recipe is mmengine-native (PolyLR over 0..80k)."""
    cfg, s = config(stem), recipe(stem)
    row = DATA['rows'][stem]
    exact = int((row['official'] or row['follows']) in DATA['official'])
    sched = cfg.param_scheduler
    assert all(not x.get('by_epoch', True) for x in sched)
    warm = [x for x in sched if x.type == 'LinearLR']
    if s['schedule'].get('warmup_iters'):
        assert len(warm) == 1 and (warm[0].begin, warm[0].end) == (0, s['schedule']['warmup_iters'] + exact)
        assert warm[0].start_factor == s['schedule']['warmup_ratio']
    else:
        assert not warm
    s = s['schedule']
    if 'epochs' in s:  # mmdet 2.x epoch schedule -> iterations
        assert cfg.iters_per_epoch == ITERS_PER_EPOCH
        max_iters = s['epochs'] * ITERS_PER_EPOCH
        assert cfg.train_cfg.max_iters == max_iters
        step = _one(sched, 'MultiStepLR')
        assert step.milestones == [e * ITERS_PER_EPOCH for e in s['steps']] and step.gamma == s['gamma']
        assert (step.begin, step.end) == (0, max_iters)
    else:
        assert cfg.train_cfg.max_iters == s['iters']
        poly = _one(sched, 'PolyLR')
        assert (poly.power, poly.eta_min) == (s['power'], s['min_lr'])
        # mmcv's poly decays over the whole run from iteration 0 and its warm-up multiplies it: PolyLR from 0,
        # alongside the LinearLR warm-up
        assert (poly.begin, poly.end) == (0, s['iters'] + exact)
    assert len(sched) == len(warm) + 1


@pytest.mark.parametrize('stem', PAPER)
def test_batch(stem):
    cfg, r = config(stem), recipe(stem)
    assert cfg.train_dataloader.batch_size == r['samples_per_gpu']
    assert cfg.auto_scale_lr.base_batch_size == r['samples_per_gpu'] * r['gpus']


@pytest.mark.parametrize('stem', PAPER)
def test_data(stem):
    cfg, r = config(stem), recipe(stem)
    pre, norm, aug = cfg.model.data_preprocessor, r['img_norm'], r['train_aug']
    assert list(pre.mean) == norm['mean'] and list(pre.std) == norm['std'] and pre.bgr_to_rgb == norm['to_rgb']
    train = cfg.train_dataloader.dataset.pipeline
    tests = [cfg.val_dataloader.dataset.pipeline, cfg.test_dataloader.dataset.pipeline]
    flip = _one(train, 'RandomFlip')
    assert flip.prob == aug['flip']
    if r['task'] == 'det':
        assert pre.pad_size_divisor == r['test']['size_divisor']
        if 'range' in aug:  # HTC++: InstaBoost, semantic maps, a resize to a random scale in a range, flip
            assert _types(train) == ['LoadImageFromFile', 'InstaBoost', 'LoadAnnotations', 'RandomResize', 'RandomFlip',
                                     'PackDetInputs']
            assert _one(train, 'LoadAnnotations').with_seg and _one(train, 'InstaBoost').aug_ratio == aug['instaboost']
            resize = _one(train, 'RandomResize')
            assert [list(x) for x in resize.scale] == aug['range'] and resize.keep_ratio
        elif 'scale' in aug:
            assert _types(train) == ['LoadImageFromFile', 'LoadAnnotations', 'Resize', 'RandomFlip', 'PackDetInputs']
            resize = _one(train, 'Resize')
            assert tuple(resize.scale) == tuple(aug['scale']) and resize.keep_ratio
        else:  # 3x + MS: flip, one of two resize policies, then a random crop of at most 1024 x 1024
            assert _types(train) == ['LoadImageFromFile', 'LoadAnnotations', 'RandomFlip', 'RandomChoice',
                                     'RandomCrop', 'PackDetInputs']
            main = {(aug['long_side'], s) for s in aug['short_sides']}
            pre_crop = {(aug['long_side'], s) for s in aug['crop_branch_short_sides']}

            def scales(t):
                assert t.type == 'RandomChoiceResize' and t.keep_ratio
                return {tuple(sorted(x, reverse=True)) for x in t.scales}
            a, b = _one(train, 'RandomChoice').transforms
            assert len(a) == 1 and scales(a[0]) == main
            assert len(b) == 3 and scales(b[0]) == pre_crop and scales(b[2]) == main
            assert (b[1].type, b[1].crop_type, tuple(b[1].crop_size), b[1].allow_negative_crop) == \
                ('RandomCrop', 'absolute_range', tuple(aug['crop_branch_crop']), True)
            crop = _one(train, 'RandomCrop')
            assert (crop.crop_type, tuple(crop.crop_size), crop.allow_negative_crop) == \
                ('absolute_range', tuple(aug['final_crop']), True)
        for pipe in tests:
            resize = _one(pipe, 'Resize')
            assert tuple(resize.scale) == tuple(r['test']['scale']) and resize.keep_ratio
            assert 'RandomFlip' not in _types(pipe)
        return
    resize = _one(train, 'RandomResize')
    assert tuple(resize.scale) == tuple(aug['scale']) and tuple(resize.ratio_range) == tuple(aug['ratio_range'])
    assert resize.keep_ratio
    crop = _one(train, 'RandomCrop')
    assert tuple(crop.crop_size) == tuple(aug['crop']) and crop.cat_max_ratio == aug['cat_max_ratio']
    assert ('PhotoMetricDistortion' in _types(train)) == aug['photometric']
    assert tuple(pre.size) == tuple(aug['pad']) and (pre.pad_val, pre.seg_pad_val) == (aug['pad_val'],
                                                                                         aug['seg_pad_val'])
    for pipe in tests:
        resize = _one(pipe, 'Resize')
        assert tuple(resize.scale) == tuple(r['test']['scale']) and resize.keep_ratio
        multiple = [t for t in pipe if t['type'] == 'ResizeToMultiple']
        if r['test']['size_divisor']:  # after the resize, as the official test pipeline
            assert len(multiple) == 1 and multiple[0].size_divisor == r['test']['size_divisor']
            assert _types(pipe).index('ResizeToMultiple') == _types(pipe).index('Resize') + 1
        else:
            assert not multiple
        assert 'RandomFlip' not in _types(pipe)
    tcfg = cfg.model.test_cfg
    assert tcfg.mode == r['test']['mode']
    if tcfg.mode == 'slide':
        assert (tuple(tcfg.crop_size), tuple(tcfg.stride)) == (tuple(r['test']['crop_size']),
                                                               tuple(r['test']['stride']))


@pytest.mark.parametrize('stem', PAPER)
def test_fp16_and_evaluation(stem):
    """The official configs train in fp32 (no official Mask R-CNN config enables fp16; mmseg 0.20.2 does not read the
    segmentation configs' fp16 key in training); the suite departs from them on purpose and trains every paper
    config under AMP bf16 (mmengine's AmpOptimWrapper, as ViTDet; experiments/amp.py), without loss scaling. The
    official test.py runs a config with an fp16 key under fp16 autocast, which mmengine's TestLoop(fp16=True) does.
    In-training validation is fp32, as the official EvalHook."""
    cfg, r = config(stem), recipe(stem)
    assert not r['fp16']['train']
    ow = cfg.optim_wrapper
    assert (ow.type, ow.dtype, ow.loss_scale) == ('AmpOptimWrapper', 'bfloat16', 1.0)
    assert cfg.test_cfg.get('fp16', False) == r['fp16']['test']
    assert not cfg.val_cfg.get('fp16', False)
    if r['task'] == 'det':
        assert cfg.train_cfg.val_interval == r['eval_interval_epochs'] * ITERS_PER_EPOCH
        assert list(cfg.val_evaluator.metric) == r.get('metric', ['bbox', 'segm'])  # ATSS / GFL: boxes only
    else:
        assert cfg.train_cfg.val_interval == r['eval_interval_iters']
        assert list(cfg.val_evaluator.iou_metrics) == ['mIoU']


@pytest.mark.parametrize('stem', [s for s in PAPER if s.startswith(('maskrcnn', 'upernet'))])
def test_neck_and_heads(stem):
    """Neck and head settings that do not follow from the backbone (mmdet 2.x mask_rcnn_r50_fpn.py, mmseg 0.x
    upernet_r50.py, as the official configs use them)."""
    model = config(stem).model
    for path, want in DATA['heads']['det' if stem.startswith('maskrcnn') else 'upernet'].items():
        value = model
        for part in path.split('.'):
            value = value[part]
        assert (list(value) if isinstance(value, (list, tuple)) else value) == want, path


def _lrs(make, base: float, iters: int) -> list:
    """The lr of each of ``iters`` iterations under the mmengine schedulers ``make(optimizer)`` (the runner's
    order: the lr of iteration t is the value after t scheduler steps)."""
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=base)
    scheds = make(opt)
    out = []
    for _ in range(iters):
        out.append(opt.param_groups[0]['lr'])
        opt.step()
        for s in scheds:
            s.step()
    return out


@pytest.mark.parametrize('translation', ['suite', 'mmseg 1.x / mmdet 3.x usual'])
def test_warmup_composition_is_the_official_one(translation):
    """mmcv 1.x, iteration t (0-based): lr = regular(t) * (ratio + (1 - ratio) * t / W) for t < W, regular(t)
    after; regular(t) = base * (1 - t / T) ** power (poly, min lr 0) or base * gamma ** #(milestones <= t) (step).
    The suite's translation -- LinearLR(0, W + 1) alongside PolyLR(0, T + 1) or MultiStepLR -- gives exactly that;
    the usual one (LinearLR(0, W), PolyLR(W, T)) does not."""
    from mmengine.optim.scheduler import LinearLR, MultiStepLR, PolyLR
    base, w, t_max, steps = 1e-4, 15, 400, [300, 375]

    def warm(t, ratio):
        return ratio + (1 - ratio) * t / w if t < w else 1.0
    poly_want = [base * (1 - t / t_max) * warm(t, 1e-6) for t in range(t_max)]
    step_want = [base * 0.1 ** sum(t >= m for m in steps) * warm(t, 1e-3) for t in range(t_max)]
    exact = translation == 'suite'
    poly = _lrs(lambda o: [LinearLR(o, start_factor=1e-6, by_epoch=False, begin=0, end=w + exact),
                           PolyLR(o, power=1.0, eta_min=0.0, by_epoch=False, begin=0 if exact else w,
                                  end=t_max + exact)], base, t_max)
    step = _lrs(lambda o: [LinearLR(o, start_factor=1e-3, by_epoch=False, begin=0, end=w + exact),
                           MultiStepLR(o, milestones=steps, gamma=0.1, by_epoch=False, begin=0, end=t_max)],
                base, t_max)
    if exact:
        assert poly == pytest.approx(poly_want, rel=1e-9) and step == pytest.approx(step_want, rel=1e-9)
    else:
        assert poly != pytest.approx(poly_want, rel=1e-3) and step != pytest.approx(step_want, rel=1e-3)

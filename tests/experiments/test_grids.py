import pytest

from experiments.grids import GRID_NAMES, PROFILES, get_grid

EXPECTED = {
    'components': ['baseline', 'spm_add', 'spm_injector', 'full'],
    'N': ['N0', 'N1', 'N2', 'N4', 'N6'],
    'attention': ['global', 'cswin', 'pale', 'deformable'],
    'pretrain': ['deit_in1k', 'augreg_in22k', 'uniperceiver_mm', 'dinov2_lvd142m', 'mae_in1k', 'eva02_in21k'],
    'main-det': [f'maskrcnn_{s}_{k}_{z}' for s in ('1x', '3x') for k in ('vit', 'vit_adapter') for z in 'TSBL'],
    'main-seg': [f'{h}_{k}_{z}' for h in ('upernet', 'semfpn') for k in ('vit', 'vit_adapter') for z in 'TSBL'],
}
EXPECTED['det-frameworks'] = [f'cascade_{k}_{z}' for k in ('vit', 'vit_adapter') for z in 'SB'] + [
    f'{d}_{k}_S' for d in ('atss', 'gfl') for k in ('vit', 'vit_adapter')]
EXPECTED['sota'] = ['htcpp_vit_adapter_L', 'mask2former_vit_adapter_L', 'mask2former_beit_adapter_L',
                   'mask2former_beitv2_adapter_L']


def test_grid_names_match_the_contract():
    assert set(GRID_NAMES) == set(EXPECTED)
    for name, runs in EXPECTED.items():
        assert get_grid(name).names == runs


def test_seeds_are_an_axis():
    runs = get_grid('N').runs(3)
    assert len(runs) == 15 and sorted({r.seed for r in runs}) == [0, 1, 2]
    assert [r.seed for r in get_grid('N').runs([7])] == [7] * 5
    with pytest.raises(ValueError, match='seeds'):
        get_grid('N').runs(0)


def test_unknown_names_are_errors():
    with pytest.raises(ValueError, match='unknown grid'):
        get_grid('nope')
    with pytest.raises(ValueError, match='has no runs'):
        get_grid('N').runs(1, only=['N3'])
    with pytest.raises(ValueError, match='unknown profile'):
        get_grid('N').runs(1)[0].config_file('huge')


def test_every_run_has_an_existing_config_in_every_profile():
    for name in GRID_NAMES:
        for run in get_grid(name).runs(1):
            assert run.task in ('det', 'seg')
            for profile in PROFILES:
                assert run.config_file(profile).is_file(), (name, run.name, profile)


def test_ablation_overrides():
    n = {r.name: r.resolved_overrides('paper') for r in get_grid('N').runs(1)}
    assert n['N0'] == {}  # the baseline is its own backbone type, so its own config files
    assert {r.name: r.configs for r in get_grid('N').runs(1)}['N0'] == dict(
        paper='maskrcnn_vit_S_1x.py', tiny='tiny/maskrcnn_tiny_vit_1x.py')
    assert n['N6']['model.backbone.n_interactions'] == 6
    att = {r.name: r.resolved_overrides('paper') for r in get_grid('attention').runs(1)}
    assert att['global']['model.backbone.with_cp'] is True and 'model.backbone.with_cp' not in att['pale']
    pre = {r.name: r for r in get_grid('pretrain').runs(1)}
    assert pre['augreg_in22k'].resolved_overrides('paper')['model.backbone.pretrain_size'] == 384
    assert pre['augreg_in22k'].resolved_overrides('paper')['model.data_preprocessor.std'] == [127.5] * 3
    assert 'model.data_preprocessor.std' not in pre['deit_in1k'].resolved_overrides('paper')
    assert pre['deit_in1k'].configs['paper'] == 'maskrcnn_vit_adapter_B_3x.py'
    # beyond the paper's Table 3: DINOv2-B/14 (kernel PI-resized to 16, its 37x37 grid kept) and MAE-B
    dino = pre['dinov2_lvd142m']
    assert dino.resolved_overrides('paper')['model.backbone.pretrain_size'] == 592 == 37 * 16
    assert dino.resolved_overrides('tiny')['model.backbone.pretrained'] == '@synthetic:dinov2'
    assert pre['mae_in1k'].resolved_overrides('tiny')['model.backbone.pretrained'] == '@synthetic:mae'
    eva = pre['eva02_in21k']
    for profile in ('paper', 'tiny'):   # EVA-02's blocks in both profiles, its 16x16 grid kept at patch 16
        o = eva.resolved_overrides(profile)
        assert o['model.backbone.pretrain_size'] == 256 == 16 * 16 and o['model.backbone.rope_ref_grid'] == 16
        assert (o['model.backbone.ffn'], o['model.backbone.qkv_bias'], o['model.backbone.rope']) == (
            'swiglu_ln', 'qv', True)
    assert eva.resolved_overrides('tiny')['model.backbone.pretrained'] == '@synthetic:eva02'
    for name in ('dinov2_lvd142m', 'mae_in1k', 'eva02_in21k'):
        assert all('beyond the paper' in n for n in pre[name].notes.values())
    assert not any('beyond' in n for n in pre['deit_in1k'].notes.values())


def test_tiny_sizes_scale_backbone_and_neck(tmp_path):
    """The grid sets the tiny backbone's width; the launcher's config feeds it to the neck / heads."""
    from experiments.launch import build_config
    runs = {r.name: r for r in get_grid('main-seg').runs(1)}
    runs.update({r.name: r for r in get_grid('main-det').runs(1)})
    for name, width in (('upernet_vit_adapter_T', 32), ('semfpn_vit_L', 128), ('maskrcnn_3x_vit_B', 96)):
        run = runs[name]
        assert not any('in_channels' in k for k in run.resolved_overrides('tiny'))
        cfg, _, _ = build_config(run, 'tiny', {}, tmp_path, dry_run=True)
        assert cfg.model.backbone.embed_dim == width
        ch = cfg.model.neck.in_channels if 'neck' in cfg.model else cfg.model.decode_head.in_channels
        assert ch == [width] * 4
        if 'auxiliary_head' in cfg.model:
            assert cfg.model.auxiliary_head.in_channels == width
    det = runs['maskrcnn_3x_vit_B']
    assert det.configs['tiny'] == 'tiny/maskrcnn_tiny_vit_3x.py'
    cfg, _, _ = build_config(det, 'tiny', {}, tmp_path, dry_run=True)
    assert cfg.model.backbone.type == 'ViTBaseline' and 'n_interactions' not in cfg.model.backbone

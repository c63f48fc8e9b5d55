"""Shapes, identity at init, ablation knobs, bad arguments, freezing and gradient checkpointing."""
import pytest
import torch

from adapter import (ATTN_TYPES, VARIANTS, ViTAdapter, ViTBaseline, build_backbone, get_preset,
                     interaction_indexes)
from adapter.vit import VisionTransformer, window_pattern


def _check_pyramid(outs, b, c, h, w):
    assert isinstance(outs, tuple) and len(outs) == 4
    for o, s in zip(outs, (4, 8, 16, 32)):
        assert o.shape == (b, c, h // s, w // s)
        assert torch.isfinite(o).all()


@pytest.mark.parametrize('arch', ['T', 'S'])
@pytest.mark.parametrize('hw', [(64, 96), (128, 128)])
def test_paper_presets_forward(arch, hw):
    m = ViTAdapter(arch).eval()
    with torch.no_grad():
        _check_pyramid(m(torch.randn(1, 3, *hw)), 1, get_preset(arch)['embed_dim'], *hw)


@pytest.mark.parametrize('arch', ['B', 'L'])
def test_large_presets_instantiate_and_run_tiny_input(arch):
    m = ViTAdapter(arch).eval()
    cfg = get_preset(arch)
    assert m.vit.depth == cfg['depth'] and m.embed_dim == cfg['embed_dim']
    assert len(m.interactions) == 4 and m.indexes[-1][-1] == cfg['depth'] - 1
    with torch.no_grad():
        _check_pyramid(m(torch.randn(1, 3, 32, 64)), 1, cfg['embed_dim'], 32, 64)


@pytest.mark.parametrize('variant', VARIANTS)
@pytest.mark.parametrize('attn_type', ATTN_TYPES)
def test_variants_and_attention_types(variant, attn_type):
    m = ViTAdapter('tiny', variant=variant, attn_type=attn_type, window_attn=True, window_size=3).eval()
    for hw in [(64, 96), (96, 64), (32, 32)]:
        with torch.no_grad():
            _check_pyramid(m(torch.randn(2, 3, *hw)), 2, 64, *hw)


def _n_model(n):
    return ViTBaseline('tiny') if n == 0 else ViTAdapter('tiny', n_interactions=n)


@pytest.mark.parametrize('n', [0, 1, 2, 3, 4, 6, 12])
def test_number_of_interactions(n):
    m = _n_model(n).eval()
    assert m.n_interactions == n
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        _check_pyramid(m(x), 1, 64, 64, 96)
    inter = m.forward_intermediates(x)
    assert len(inter['vit_blocks']) == 12 and inter['vit_blocks'][0].shape == (1, 64, 4, 6)
    assert inter['stride8'].shape == (1, 64, 8, 12)


def test_paper_interaction_indexes():
    assert interaction_indexes(12, 4) == [[0, 2], [3, 5], [6, 8], [9, 11]]
    assert interaction_indexes(24, 4) == [[0, 5], [6, 11], [12, 17], [18, 23]]
    assert ViTAdapter('tiny', n_interactions=2).indexes == [[0, 5], [6, 11]]
    assert window_pattern(True, 12) == [True, True, False] * 4


def test_injector_gamma_zero_keeps_the_vit_untouched():
    """At init (gamma = 0) the adapter's ViT tokens equal a plain ViT with the same weights, block by block."""
    for attn in ('deformable', 'cswin'):
        m = ViTAdapter('tiny', attn_type=attn, window_attn=True, window_size=3).eval()
        vit = VisionTransformer(64, 12, 2, window_attn=True, window_size=3, layer_scale_init=1.0).eval()
        vit.load_state_dict(m.vit.state_dict())
        x = torch.randn(2, 3, 64, 96)
        with torch.no_grad():
            ours = m.forward_intermediates(x)['vit_blocks']
            plain = vit.forward_intermediates(x)
        assert len(ours) == len(plain) == 12
        for a, b in zip(ours, plain):
            torch.testing.assert_close(a, b, rtol=0, atol=0)
        with torch.no_grad():
            m.interactions[0].injector.gamma.fill_(1.0)
            changed = m.forward_intermediates(x)['vit_blocks'][0]
        assert not torch.allclose(changed, plain[0])


def test_baseline_is_its_own_backbone_and_refuses_adapter_arguments():
    a = build_backbone(dict(type='ViTBaseline', arch='tiny', window_attn=True, window_size=4))
    assert isinstance(a, ViTBaseline) and not isinstance(a, ViTAdapter)
    assert a.output_shape() == {'p2': (64, 4), 'p3': (64, 8), 'p4': (64, 16), 'p5': (64, 32)}
    assert not any(k.startswith(('spm.', 'interactions.')) for k in a.state_dict())
    for bad in (dict(n_interactions=4), dict(attn_type='deformable'), dict(norm='BN'), dict(init_gamma=0.0),
                dict(variant='baseline'), dict(deform_heads=2), dict(vit_feature_source='final')):
        with pytest.raises(TypeError, match=r'ViTBaseline \(a plain ViT: adapter arguments do not apply\) got '
                                            r'unknown arguments \[' + repr(next(iter(bad)))):
            ViTBaseline('tiny', **bad)
    for bad in (dict(n_interactions=0), dict(variant='baseline')):
        with pytest.raises(ValueError, match="type='ViTBaseline'"):
            ViTAdapter('tiny', **bad)
    with pytest.raises(TypeError, match='img_size'):  # a nominal size that did nothing is gone
        ViTAdapter('tiny', img_size=128)


@pytest.mark.parametrize('kind', ['adapter', 'baseline'])
def test_fuse_for_inference_is_explicit_and_equal_to_the_training_path(kind):
    torch.manual_seed(0)
    m = (ViTAdapter('tiny', init_gamma=0.5) if kind == 'adapter' else ViTBaseline('tiny')).double()
    with torch.no_grad():  # trained-looking BatchNorm statistics, so folding them is not a no-op
        for bn in [x for x in m.modules() if isinstance(x, torch.nn.BatchNorm2d)]:
            bn.running_mean.normal_()
            bn.running_var.uniform_(0.5, 2.0)
    m.eval()
    x = torch.randn(2, 3, 64, 96, dtype=torch.float64)
    calls = []
    hooks = [c.register_forward_hook(lambda *_: calls.append(1)) for c in m.modules()
             if isinstance(c, torch.nn.BatchNorm2d) and c in set(getattr(getattr(m, 'spm', None), 'modules',
                                                                        lambda: [])())]
    with torch.no_grad():
        plain = m(x)
    n_plain = len(calls)
    m.fuse_for_inference()
    with torch.no_grad():
        fused = m(x)
    for h in hooks:
        h.remove()
    for a, b in zip(plain, fused):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)
    if kind == 'adapter':  # without the call no-grad runs the SPM's BatchNorms; after it they are folded away
        assert n_plain == 6 and len(calls) == n_plain


@pytest.mark.parametrize('kwargs, match', [
    (dict(variant='nope'), 'unknown variant'),
    (dict(attn_type='nope'), 'unknown attn_type'),
    (dict(arch='XL'), 'unknown arch'),
    (dict(n_interactions=13), 'between 1 and the ViT depth 12'),
    (dict(n_interactions=5), 'does not divide the ViT depth 12'),
    (dict(norm='foo'), 'unknown norm'),
    (dict(interaction_indexes=[[0, 3], [5, 11]]), 'consecutive'),
    (dict(attn_type='cswin', deform_heads=3, num_heads=1), 'even number of heads'),
])
def test_bad_arguments_raise_clearly(kwargs, match):
    kwargs = dict(dict(arch='tiny'), **kwargs)
    with pytest.raises(ValueError, match=match):
        ViTAdapter(**kwargs)


@pytest.mark.parametrize('variant', ['full', 'baseline'])
def test_input_not_multiple_of_32_raises(variant):
    m = ViTBaseline('tiny') if variant == 'baseline' else ViTAdapter('tiny', variant=variant)
    with pytest.raises(ValueError, match=r'input size 64x100 .* not a multiple of 32; pad the image to 64x128'):
        m(torch.randn(1, 3, 64, 100))


@pytest.mark.parametrize('norm', ['BN', 'GN', 'LN'])
def test_norm_is_a_parameter(norm):
    m = ViTAdapter('tiny', norm=norm)
    kinds = {'BN': torch.nn.BatchNorm2d, 'GN': torch.nn.GroupNorm, 'LN': torch.nn.LayerNorm}
    assert isinstance(m.norms[0], kinds[norm]) and isinstance(m.spm.stem[1], kinds[norm])
    _check_pyramid(m(torch.randn(2, 3, 32, 64)), 2, 64, 32, 64)


def test_frozen_vit_stays_frozen():
    m = ViTAdapter('tiny', freeze_vit=True, drop_path_rate=0.5).train()
    assert not m.vit.training
    before = {k: v.clone() for k, v in m.vit.state_dict().items()}
    opt = torch.optim.SGD([p for p in m.parameters() if p.requires_grad], lr=0.1)
    sum(o.sum() for o in m(torch.randn(2, 3, 64, 64))).backward()
    opt.step()
    assert all(p.grad is None for p in m.vit.parameters())
    assert all(torch.equal(before[k], v) for k, v in m.vit.state_dict().items())
    assert m.interactions[0].injector.gamma.grad is not None


@pytest.mark.parametrize('variant, attn', [('full', 'deformable'), ('full', 'pale'), ('baseline', 'deformable')])
def test_gradient_checkpointing_same_outputs_and_grads(variant, attn):
    kw = dict(arch='tiny', window_attn=True, window_size=3)
    if variant == 'baseline':
        ref, cp = ViTBaseline(**kw).train(), ViTBaseline(with_cp=True, **kw).train()
    else:
        kw.update(variant=variant, attn_type=attn, norm='GN', init_gamma=0.5)
        ref, cp = ViTAdapter(**kw).train(), ViTAdapter(with_cp=True, **kw).train()
    cp.load_state_dict(ref.state_dict())
    x = torch.randn(2, 3, 64, 64)
    outs = [m(x) for m in (ref, cp)]
    for a, b in zip(*outs):
        torch.testing.assert_close(a, b)
    for m, o in zip((ref, cp), outs):
        sum((t * t).mean() for t in o).backward()
    for (n, p), q in zip(ref.named_parameters(), cp.parameters()):
        torch.testing.assert_close(p.grad, q.grad, msg=n)


def test_adapter_keeps_the_framework_out():
    """Importing every adapter module never imports mmdet / mmseg / mmengine, nor the higher layers
    (experiments, analysis): data flows ops -> adapter -> experiments -> analysis."""
    import subprocess
    import sys
    code = ('import sys, pkgutil, importlib, adapter; '
            '[importlib.import_module("adapter." + m.name) for m in pkgutil.iter_modules(adapter.__path__)]; '
            'bad = [m for m in sys.modules if m.split(".")[0] in ("mmdet", "mmseg", "mmengine", "experiments", '
            '"analysis")]; assert not bad, bad')
    subprocess.run([sys.executable, '-c', code], check=True)

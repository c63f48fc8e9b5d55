"""Figures and feature extraction on synthesised runs (tiny random backbones, no training)."""

import numpy as np
import pytest
import torch

from analysis import features as F
from analysis.collect import collect_grid
from analysis.figures import main, plot_fourier, write_figures
from tests.analysis.fakeruns import add_checkpoint, make_grid_N_with_checkpoints, tiny_backbone_config

EXPECTED = [(r, s) for r in ('N0', 'N1', 'N2', 'N4', 'N6') for s in (0, 1)]


def test_pca_rgb_recovers_planted_components():
    h = w = 12
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, h), torch.linspace(-1, 1, w), indexing='ij')
    pats = torch.stack([3 * xx, 2 * yy, xx * yy])  # decreasing variance, orthogonal
    mix = torch.randn(16, 3, generator=torch.Generator().manual_seed(0))
    q, _ = torch.linalg.qr(mix)  # orthonormal loadings keep the variance order
    fmap = torch.einsum('ck,khw->chw', q, pats)
    rgb = F.pca_rgb(fmap)
    assert rgb.shape == (h, w, 3) and rgb.min() >= 0 and rgb.max() <= 1
    for i in range(3):
        corr = np.corrcoef(rgb[..., i].ravel(), pats[i].numpy().ravel())[0, 1]
        assert abs(corr) > 0.99, (i, corr)
    assert np.allclose(F.pca_rgb(fmap), F.pca_rgb(fmap.clone()))
    cm_ = F.channel_mean(fmap)
    assert cm_.shape == (h, w) and cm_.min() == 0 and cm_.max() == 1


def test_backbone_roundtrip_and_mismatch(tmp_path):
    cfg = tiny_backbone_config('full', 4)
    ckpt = add_checkpoint(tmp_path, cfg, seed=3)
    model, desc = F.load_run_backbone(cfg, ckpt)
    saved = torch.load(ckpt, weights_only=True)['state_dict']
    for k, v in model.state_dict().items():
        assert torch.equal(v, saved['backbone.' + k]), k
    assert desc == str(ckpt)
    with pytest.raises(ValueError, match='missing'):
        F.load_run_backbone(tiny_backbone_config('baseline', 0), ckpt)
    feats = F.intermediates(model, F.demo_tensor(2, 64))
    assert feats['stride8'].shape == (2, 64, 8, 8) and len(feats['vit_blocks']) == 12
    curves = F.fourier_curves(feats, (64, 64))
    f, d = curves['stride8']
    assert d[0] == 0 and f[-1] == pytest.approx(np.pi) and len(curves['vit_blocks']) == 12


def test_write_figures(tmp_path):
    root = make_grid_N_with_checkpoints(tmp_path / 'runs')
    res = collect_grid('N', 'tiny', root, expected=EXPECTED)
    out = tmp_path / 'figs'
    written = write_figures(res, out, n_images=2, size=64)
    names = {p.name for p in written}
    for stem in ('training_curves', 'results_A2', 'fourier_stride8', 'fourier_vit_blocks', 'stride8_features'):
        assert {f'{stem}.png', f'{stem}.pdf'} <= names, stem
    assert all(p.stat().st_size > 1000 for p in written)
    assert any('no checkpoint for N1, N2, N6' in w for w in res.warnings)


def test_plot_fourier_returns_figure():
    fig = plot_fourier({'a': (np.linspace(0, np.pi, 5), np.zeros(5))}, 'title', 'tiny')
    assert 'NOT a reproduction' in fig._suptitle.get_text()


def test_cli_errors(tmp_path, capsys):
    assert main(['N', '--runs-root', str(tmp_path / 'absent')]) == 2
    assert 'does not exist' in capsys.readouterr().err
    assert main(['nope', '--runs-root', str(tmp_path)]) == 2
    assert "unknown grid 'nope'" in capsys.readouterr().err


def test_explore_chosen_checkpoint_and_images(tmp_path):
    from PIL import Image

    from analysis.explore import fourier_analysis
    root = make_grid_N_with_checkpoints(tmp_path / 'runs')
    ckpt = root / 'tiny' / 'N' / 'N4' / 'seed1' / 'iter_40.pth'
    imgs = tmp_path / 'imgs'
    imgs.mkdir()
    for i, pic in enumerate(F.demo_images(3, 80, seed=5)):
        Image.fromarray(pic).save(imgs / f'{i}.png')
    fr = fourier_analysis(checkpoint=str(ckpt), images=str(imgs), n_images=2, size=64)
    assert fr.weights == {'checkpoint': str(ckpt)} and fr.images == f'2 images from {imgs}'
    assert fr.pictures.shape == (2, 64, 64, 3)
    f, d = fr.curves['checkpoint']['stride8']
    assert d[0] == 0 and len(f) == 5
    with pytest.raises(FileNotFoundError, match='no images'):
        fourier_analysis(checkpoint=str(ckpt), images=str(tmp_path), size=64)


def _errorbars(ax):
    """(x, half-height) of every error bar drawn on an axis."""
    from matplotlib.container import ErrorbarContainer
    out = []
    for cont in ax.containers:
        if isinstance(cont, ErrorbarContainer):
            for seg in cont.lines[2][0].get_segments():
                out.append((round(float(seg[0][0]), 6), (seg[1][1] - seg[0][1]) / 2))
    return out


def test_results_error_bars_are_the_tables_intervals(tmp_path):
    """Error bars = the tables' 95% t-intervals; a one-seed run gets no bar (it used to get std 0: a fake ±0)."""
    from analysis.figures import plot_results
    from analysis.layouts import LAYOUTS
    from analysis.tables import build_table
    from tests.analysis.fakeruns import identity_run
    root = tmp_path / 'runs'
    for s, ap in enumerate((0.39, 0.41, 0.45)):
        identity_run(root, 'N0', s, ap)
    identity_run(root, 'N1', 0, 0.43)
    res = collect_grid('N', 'tiny', root, expected=[('N0', s) for s in range(3)] + [('N1', 0)])
    lay = LAYOUTS['N'][0]
    df, _ = build_table(res, lay, sizes={})
    fig = plot_results(res, lay, sizes={})
    bars = _errorbars(fig.axes[0])
    assert {x for x, _ in bars} == {0}  # N = 0 only; N = 1 (one seed) has none
    sd = float(np.std([39, 41, 45], ddof=1))
    assert sorted(h for _, h in bars) == pytest.approx(sorted([df.loc[0, 'APb ci95'], df.loc[0, 'APm ci95']]))
    assert df.loc[0, 'APb ci95'] == pytest.approx(4.3026527 * sd / np.sqrt(3))
    assert 'points without a bar: one seed, no interval exists' in ' '.join(fig._supxlabel.get_text().split())
    one = collect_grid('N', 'tiny', root, expected=[('N0', 0), ('N1', 0)])
    fig = plot_results(one, lay, sizes={})
    assert _errorbars(fig.axes[0]) == []
    assert 'no interval exists, so no error bars' in ' '.join(fig._supxlabel.get_text().split())

"""Figures and feature extraction on synthesised runs (tiny random backbones, no training)."""

import json

import numpy as np
import pytest
import torch

from analysis import features as F
from analysis.collect import collect_grid
from analysis import figures as FIG
from analysis.figures import caption_of, main, plot_fourier, plot_results, plot_training_curves, write_figures
from analysis.layouts import LAYOUTS
from tests.analysis.fakeruns import (add_checkpoint, det_val_line, identity_run,
                                     make_grid_N_with_checkpoints, simple_det_run, tiny_backbone_config, train_line,
                                     write_run)

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
    assert all(p.stat().st_size > 1000 for p in written if p.suffix in ('.png', '.pdf'))
    assert {p.suffix for p in written} == {'.png', '.pdf', '.txt', '.md'}
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
    from analysis.tables import build_table
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
    assert 'points without a bar: one seed, no interval exists' in ' '.join(caption_of(fig).split())
    assert 'Seeds averaged: N0 seeds 0, 1, 2; N1 seed0' in caption_of(fig)
    one = collect_grid('N', 'tiny', root, expected=[('N0', 0), ('N1', 0)])
    fig = plot_results(one, lay, sizes={})
    assert _errorbars(fig.axes[0]) == []
    assert 'no interval exists, so no error bars' in ' '.join(caption_of(fig).split())


# ---------------------------------------------------------------- figures as people read them
def _texts(fig) -> list[str]:
    """Every text of a figure: titles, labels, tick labels, legend entries, annotations, captions."""
    from matplotlib.text import Text
    return [t.get_text() for t in fig.findobj(Text) if t.get_text()]


def _caption_artist(fig) -> str:
    hits = [t.get_text() for t in fig.texts if t.get_gid() == FIG.CAPTION_GID]
    assert len(hits) == 1, hits
    return hits[0]


def _flat(text: str) -> str:
    return ' '.join(text.split())


def _capture_figures(monkeypatch) -> dict:
    """name -> Figure of every figure :func:`analysis.figures.save` writes."""
    figs, real = {}, FIG.save

    def spy(fig, out_dir, name):
        figs[name] = fig
        return real(fig, out_dir, name)
    monkeypatch.setattr(FIG, 'save', spy)
    return figs


def test_one_logged_point_is_a_marker_with_a_note(tmp_path):
    """A seed with one training-loss value and seeds validated once are drawn as markers, and notes say so."""
    root = tmp_path / 'runs'
    simple_det_run(root, 'tiny', 'N', 'N0', 0, 0.10, n_iter=20)  # two loss values, one validation (iteration 20)
    write_run(root, 'tiny', 'N', 'N1', 0, state='running', starts=[[train_line(10, 1.0), det_val_line(10, 0.02)]])
    res = collect_grid('N', 'tiny', root, expected=[('N0', 0), ('N1', 0)])
    fig = plot_training_curves(res)
    ax_loss, ax_val = fig.axes
    single = [ln for ln in ax_loss.lines if len(ln.get_xdata()) == 1]
    assert [ln.get_label() for ln in single] == ['N1 s0 (running)']
    assert single[0].get_marker() not in ('', ' ', 'None', None) and single[0].get_markersize() >= 5
    assert all(ln.get_marker() not in ('', ' ', 'None', None) for ln in ax_val.lines)
    cap = _flat(caption_of(fig))
    assert 'training loss: one logged value, drawn as a point: N1 seed0 (iteration 10)' in cap
    assert 'validation box AP (%): one logged value per seed (at iteration 10, 20), drawn as points' in cap
    assert _flat(_caption_artist(fig)) == cap  # the note is in the figure, not only in the .txt

    # the A2 line with a single finished row: a marker, and a note
    one = tmp_path / 'one'
    identity_run(one, 'N4', 0, 0.40)
    res = collect_grid('N', 'tiny', one, expected=[('N0', 0), ('N4', 0)])
    fig = plot_results(res, LAYOUTS['N'][0], sizes={})
    ours = [ln for ln in fig.axes[0].lines if ln.get_label().endswith('ours')]
    assert ours and all(np.isfinite(ln.get_ydata()).sum() == 1 and ln.get_marker() == 'o' for ln in ours)
    cap = _flat(caption_of(fig))
    assert 'APb ours: one row with a value (N = 4), drawn as a point' in cap
    assert 'no finished run, nothing drawn: N = 0 (N0: 1 missing)' in cap


def test_no_empty_panels(tmp_path, monkeypatch):
    """Every axes of every figure draws something; a panel with nothing to draw is left out with a note."""
    root = tmp_path / 'runs'  # training lines only, nothing validated yet
    write_run(root, 'tiny', 'N', 'N0', 0, state='running', starts=[[train_line(10, 1.0), train_line(20, 0.8)]])
    res = collect_grid('N', 'tiny', root, expected=[('N0', 0), ('N1', 0)])
    fig = plot_training_curves(res)
    assert len(fig.axes) == 1 and fig.axes[0].has_data()
    cap = _flat(caption_of(fig))
    assert 'validation panel left out: no seed logged coco/bbox_mAP yet' in cap
    assert 'not drawn, nothing logged: N1 seed0 (missing, no run directory)' in cap

    empty = tmp_path / 'empty'  # nothing logged at all: no axes, a note
    write_run(empty, 'tiny', 'N', 'N0', 0, state='queued')
    fig = plot_training_curves(collect_grid('N', 'tiny', empty, expected=[('N0', 0)]))
    assert fig.axes == [] and 'training-loss panel left out' in caption_of(fig)

    # five models with checkpoints on a 3-column grid of Fourier panels: no sixth, empty, panel
    full = make_grid_N_with_checkpoints(tmp_path / 'full')
    for run, n in (('N1', 1), ('N2', 2), ('N6', 6)):
        cfg = tiny_backbone_config('full', n)
        d = full / 'tiny' / 'N' / run / 'seed1'
        if run == 'N6':
            simple_det_run(full, 'tiny', 'N', 'N6', 1, 0.16)
        (d / 'config.json').write_text(json.dumps(cfg))
        add_checkpoint(d, cfg)
    figs = _capture_figures(monkeypatch)
    write_figures(collect_grid('N', 'tiny', full, expected=EXPECTED), tmp_path / 'figs', n_images=2, size=64)
    assert set(figs) == {'training_curves', 'results_A2', 'fourier_stride8', 'fourier_vit_blocks', 'stride8_features'}
    for name, fig in figs.items():
        axes = [a for a in fig.axes if a.get_visible()]
        assert sum(a.has_data() for a in axes) == len(axes) == len(fig.axes), name
    blocks = [a for a in figs['fourier_vit_blocks'].axes if a.get_title().endswith('ViT blocks')]
    assert len(blocks) == 5


def test_figures_show_no_absolute_paths(tmp_path, monkeypatch):
    """No text of any figure (titles, labels, legends, captions) nor any caption file names a machine path."""
    from PIL import Image
    root = make_grid_N_with_checkpoints(tmp_path / 'runs')
    imgs = tmp_path / 'imgs'
    imgs.mkdir()
    for i, pic in enumerate(F.demo_images(2, 64, seed=1)):
        Image.fromarray(pic).save(imgs / f'{i}.png')
    figs = _capture_figures(monkeypatch)
    out = tmp_path / 'figs'
    written = write_figures(collect_grid('N', 'tiny', root, expected=EXPECTED), out, images=str(imgs),
                            n_images=2, size=64)
    bad = (str(root), str(tmp_path), '/' + tmp_path.name, str(FIG.REPO_ROOT), '/' + tmp_path.parts[1] + '/')
    assert len(figs) == 5
    for name, fig in figs.items():
        for text in _texts(fig):
            assert not any(b in text for b in bad), (name, text)
    assert 'Inputs: 2 images from imgs' in _flat(caption_of(figs['fourier_stride8']))
    for p in written:
        if p.suffix in ('.txt', '.md'):
            assert not any(b in p.read_text() for b in bad), p


def test_strip_abs_paths_keeps_formulas():
    s = FIG.strip_abs_paths
    assert s('mean ± t(0.975, n-1)·s/√n, s/iter, π/4, <timestamp>/vis_data/scalars.json') == \
        'mean ± t(0.975, n-1)·s/√n, s/iter, π/4, <timestamp>/vis_data/scalars.json'
    assert s('4 images from /data/coco/val2017') == '4 images from …/val2017'
    assert s('weights (/x/runs/tiny/N/N0/seed0/iter_4.pth)', roots=('/x/runs',)) == \
        'weights (tiny/N/N0/seed0/iter_4.pth)'


def test_every_figure_has_a_caption_in_it_and_beside_it(tmp_path, monkeypatch):
    """Each figure carries a caption text (what it shows, how it was computed); the same text is written as
    <name>.txt and collected in index.md."""
    root = make_grid_N_with_checkpoints(tmp_path / 'runs')
    figs = _capture_figures(monkeypatch)
    out = tmp_path / 'figs'
    written = write_figures(collect_grid('N', 'tiny', root, expected=EXPECTED), out, n_images=2, size=64)
    index = (out / 'index.md').read_text()
    assert out / 'index.md' in written
    for name, fig in figs.items():
        cap = caption_of(fig)
        assert cap and _flat(_caption_artist(fig)) == _flat(cap), name
        assert (out / f'{name}.txt').read_text().strip() == cap, name
        assert cap.split('\n')[0] in index and f'![{name}]({name}.png)' in index, name
    tc = _flat(caption_of(figs['training_curves']))
    assert 'vis_data/scalars.json' in tc and 'coco/bbox_mAP' in tc
    assert 'Drawn: N0 seeds 0, 1; N1 seeds 0, 1; N2 seeds 0, 1 (seed0 failed); N4 seeds 0, 1 (seed0 running)' in tc
    rc = _flat(caption_of(figs['results_A2']))
    assert '95% Student-t interval over seeds' in rc and 'final_metrics.json' in rc
    assert 'Seeds averaged: N0 seeds 0, 1; N1 seeds 0, 1; N2 seed1; N4 seed1; N6 no seed' in rc
    for name in ('fourier_stride8', 'fourier_vit_blocks', 'stride8_features'):
        c = _flat(caption_of(figs[name]))
        assert 'N0 seed1 iter_40.pth (finished); N4 seed1 iter_40.pth (finished)' in c, name
        assert 'not shown (no checkpoint in any seed\'s folder): N1, N2, N6' in c, name
    assert 'relative_log_amplitude' in caption_of(figs['fourier_stride8'])
    # figures made outside a grid (notebooks) get the method as their caption
    assert 'relative_log_amplitude' in caption_of(plot_fourier({'a': (np.linspace(0, np.pi, 5), np.zeros(5))}))

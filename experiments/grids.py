"""The paper's experiment grids as data: each grid is a list of named runs (cells), each run a config + overrides.

A run is fully described by (profile, config file, overrides, seed). Profiles are orthogonal to grids:

* ``paper``: the paper's model sizes and schedules on the real datasets (8 GPUs per run);
* ``tiny``: the same model code on CPU with the synthetic dataset (``experiments/synthetic.py``), arch='tiny',
  small images and heads, a few hundred iterations. The default.

Grids (names are a contract with ``analysis/``):

====================  ==============================================  =========================================
grid                  runs                                            paper setting
====================  ==============================================  =========================================
components            baseline, spm_add, spm_injector, full           ViT-Adapter-S, Mask R-CNN 1x (Table A1)
N                     N0, N1, N2, N4, N6                              ViT-Adapter-S, Mask R-CNN 1x (Table A2)
attention             global, cswin, pale, deformable                 ViT-Adapter-S, Mask R-CNN 1x (Table A3)
pretrain              deit_in1k, augreg_in22k, uniperceiver_mm        ViT-Adapter-B, Mask R-CNN 3x+MS (Table 3)
                      (+ dinov2_lvd142m, mae_in1k, eva02_in21k:
                      beyond the paper)
main-det              maskrcnn_{1x,3x}_{vit,vit_adapter}_{T,S,B,L}     Table 1
main-seg              {upernet,semfpn}_{vit,vit_adapter}_{T,S,B,L}     Table 4
det-frameworks        cascade_{vit,vit_adapter}_{S,B},                Table 2 (3x+MS)
                      {atss,gfl}_{vit,vit_adapter}_S
sota                  htcpp_vit_adapter_L, mask2former_vit_adapter_L  Tables 5 / 6 (IN-22K supervised rows)
                      mask2former_beit{,v2}_adapter_L                 Table 6 (BEiT / BEiTv2, 896, 80k rows)
====================  ==============================================  =========================================

Launch a grid with ``python -m experiments.launch N --profile tiny --cluster local`` (or ``make ablation-N``).
"""
from __future__ import annotations

import copy
import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

CONFIG_DIR = Path(__file__).resolve().parent / 'configs'
PROFILES = ('tiny', 'paper')
SIZES = ('T', 'S', 'B', 'L')

#: ImageNet's input normalisation (per RGB channel of 0..255 pixels), the mmdet / mmseg default that the paper
#: configs use with DeiT, BEiT and every other non-AugReg checkpoint. The one copy: the configs read it through
#: :func:`imagenet_norm`, ``analysis.features`` directly.
IMAGENET_MEAN = (123.675, 116.28, 103.53)
IMAGENET_STD = (58.395, 57.12, 57.375)
#: AugReg's input normalisation (per RGB channel of 0..255 pixels: inputs in [-1, 1]), which the official configs
#: that load AugReg weights use (Mask R-CNN L, UperNet L, UperNet B ImageNet-22K). The one copy: the configs and
#: :data:`PRETRAIN_SOURCES` read it through :func:`augreg_norm`.
AUGREG_MEAN = AUGREG_STD = (127.5, 127.5, 127.5)


def imagenet_norm() -> dict:
    """ImageNet's normalisation as ``data_preprocessor`` keys: ``dict(mean=[...], std=[...])`` (new lists); see
    :func:`augreg_norm` for why a function."""
    return dict(mean=list(IMAGENET_MEAN), std=list(IMAGENET_STD))


def augreg_norm() -> dict:
    """AugReg's normalisation as a ``data_preprocessor`` delta: ``dict(mean=[...], std=[...])`` (new lists).

    A function, so that a config can import it (mmengine drops functions from a config, not constants)::

        from experiments.grids import augreg_norm
        model = wire(_base_.model, data_preprocessor=augreg_norm())
    """
    return dict(mean=list(AUGREG_MEAN), std=list(AUGREG_STD))


#: Pre-trained ViT checkpoints of the pre-training ablation (ViT-Adapter-B), in ``pretrained/`` (paper profile).
PRETRAIN_SOURCES = {
    'deit_in1k': dict(file='pretrained/deit_base_patch16_224-b5f2ef4d.pth', format='deit', size=224,
                      label='ImageNet-1K (DeiT-B)'),
    'augreg_in22k': dict(
        file='pretrained/B_16-i21k-300ep-lr_0.001-aug_medium1-wd_0.1-do_0.0-sd_0.0--imagenet2012-steps_20k-'
             'lr_0.01-res_384.npz', format='augreg', size=384, label='ImageNet-22K (AugReg-B)',
        # AugReg weights take AugReg's input normalisation, as every official config that loads them
        model={f'data_preprocessor.{k}': v for k, v in augreg_norm().items()}),
    'uniperceiver_mm': dict(file='pretrained/uni-perceiver-base-L12-H768-224size-torch-pretrained.pth',
                            format='uniperceiver', size=224, label='Multi-modal (Uni-Perceiver-B)',
                            # Uni-Perceiver's encoder is BERT-style (post-norm blocks, normed embeddings); the
                            # loader refuses its weights in a pre-norm ViT. Both profiles build it so.
                            backbone=dict(post_norm=True, embed_norm=True)),
    # Beyond the paper's Table 3 (``beyond_paper``): later pre-training sources, same recipe.
    # DINOv2-B/14 (no registers: the adapter's ViT carries no prefix tokens, so class / register tokens would be
    # dropped anyway): the loader PI-resizes the 14x14 kernel to 16x16; size 592 = the 37x37 grid of its 518 px at
    # patch 16, so the position embedding is not resized at load. Layer scale from the checkpoint's gammas.
    'dinov2_lvd142m': dict(file='pretrained/dinov2_vitb14_pretrain.pth', format='dinov2', size=592,
                           label='LVD-142M (DINOv2-B/14)', beyond_paper=True),
    # MAE-B: the released encoder-only file (timm's key layout; its decoder-free 'norm' is dropped).
    'mae_in1k': dict(file='pretrained/mae_pretrain_vit_base.pth', format='mae', size=224,
                     label='ImageNet-1K, MAE (MAE-B)', beyond_paper=True),
    # EVA-02-B/14, MIM on ImageNet-21K (baaivision/EVA ``eva02_B_pt_in21k_p14.pt``): EVA-02's blocks as ViT options
    # (2D RoPE on q / k rescaled to its 16x16 pre-training grid in windows and global blocks alike, SwiGLU with a
    # LayerNorm inside, q / v biases only; no layer scale in the release, the adapter's gammas start at 1.0). The
    # loader PI-resizes the 14x14 kernel to 16x16; size 256 = its 16x16 grid at patch 16 (pos_embed not resized).
    # Input normalisation: ImageNet's, as EVA-02's own ViTDet detection configs.
    'eva02_in21k': dict(file='pretrained/eva02_B_pt_in21k_p14.pt', format='eva02', size=256,
                        label='ImageNet-21K, MIM (EVA-02-B/14)', beyond_paper=True,
                        backbone=dict(ffn='swiglu_ln', mlp_ratio=4 * 2 / 3, qkv_bias='qv', rope=True,
                                      rope_ref_grid=16)),
}


@dataclass(frozen=True)
class RunSpec:
    """One cell of a grid, for one seed.

    Attributes:
        grid: Grid name.
        name: Run (cell) name, stable across profiles.
        seed: Random seed.
        task: 'det' or 'seg'.
        overrides: mmengine cfg-options (dotted keys) applied in every profile.
        configs: Config file per profile, relative to ``experiments/configs``.
        profile_overrides: Extra cfg-options per profile (applied after ``overrides``).
        notes: Per-profile remarks copied into the manifest (e.g. "no pre-trained weights in tiny").
    """

    grid: str
    name: str
    seed: int
    task: str
    overrides: dict
    configs: dict
    profile_overrides: dict = field(default_factory=dict)
    notes: dict = field(default_factory=dict)

    def config_file(self, profile: str) -> Path:
        """Absolute path of this run's config file in ``profile``."""
        _check_profile(profile)
        return CONFIG_DIR / self.configs[profile]

    def resolved_overrides(self, profile: str) -> dict:
        """``overrides`` updated with the profile's own overrides."""
        _check_profile(profile)
        out = copy.deepcopy(self.overrides)
        out.update(copy.deepcopy(self.profile_overrides.get(profile, {})))
        return out


@dataclass(frozen=True)
class Cell:
    name: str
    task: str
    configs: dict
    overrides: dict = field(default_factory=dict)
    profile_overrides: dict = field(default_factory=dict)
    notes: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Grid:
    """A named list of cells; ``runs(seeds)`` expands it over seeds."""

    name: str
    description: str
    cells: tuple

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.cells]

    def runs(self, seeds: int | Sequence[int] = 1, only: Iterable[str] | None = None) -> list[RunSpec]:
        """Expand to runs.

        Args:
            seeds: K (seeds 0..K-1) or an explicit list of seeds.
            only: Optional subset of cell names (error on unknown names).
        """
        seed_list = list(range(seeds)) if isinstance(seeds, int) else list(seeds)
        if not seed_list:
            raise ValueError('seeds must be >= 1 (or a non-empty list)')
        cells = self.cells
        if only is not None:
            only = list(only)
            unknown = sorted(set(only) - set(self.names))
            if unknown:
                raise ValueError(f'grid {self.name!r} has no runs {unknown}; runs: {self.names}')
            cells = [c for c in cells if c.name in only]
        return [RunSpec(grid=self.name, name=c.name, seed=s, task=c.task, overrides=copy.deepcopy(c.overrides),
                        configs=dict(c.configs), profile_overrides=copy.deepcopy(c.profile_overrides),
                        notes=dict(c.notes))
                for c, s in itertools.product(cells, seed_list)]


def _check_profile(profile: str) -> None:
    if profile not in PROFILES:
        raise ValueError(f'unknown profile {profile!r}; choose one of {PROFILES}')


_TINY_DET = 'tiny/maskrcnn_tiny_1x.py'
_TINY_DET_3X = 'tiny/maskrcnn_tiny_3x.py'
_TINY_DET_VIT = {'1x': 'tiny/maskrcnn_tiny_vit_1x.py', '3x': 'tiny/maskrcnn_tiny_vit_3x.py'}  # ViTBaseline
_ABLATION = dict(paper='maskrcnn_vit_adapter_S_1x.py', tiny=_TINY_DET)
# the plain-ViT baseline of the ablations (N = 0): its own backbone type, so its own config files
_ABLATION_BASELINE = dict(paper='maskrcnn_vit_S_1x.py', tiny=_TINY_DET_VIT['1x'])
_BB = 'model.backbone.'


def _components() -> Grid:
    cells = [Cell('baseline', 'det', _ABLATION_BASELINE)]
    cells += [Cell(v, 'det', _ABLATION, {_BB + 'variant': v}) for v in ('spm_add', 'spm_injector', 'full')]
    return Grid('components', 'Adapter components (Table A1): SPM only (add), + injector, + extractor', tuple(cells))


def _n_interactions() -> Grid:
    cells = [Cell('N0', 'det', _ABLATION_BASELINE)]
    cells += [Cell(f'N{n}', 'det', _ABLATION, {_BB + 'n_interactions': n, _BB + 'variant': 'full'}) for n in (1, 2, 4, 6)]
    return Grid('N', 'Number of interactions N (Table A2)', tuple(cells))


def _attention() -> Grid:
    cells = []
    for a in ('global', 'cswin', 'pale', 'deformable'):
        # The paper's global-attention run needed gradient checkpointing to fit in memory.
        paper = {_BB + 'with_cp': True} if a == 'global' else {}
        cells.append(Cell(a, 'det', _ABLATION, {_BB + 'attn_type': a}, profile_overrides=dict(paper=paper)))
    return Grid('attention', 'Attention type in the adapter (Table A3)', tuple(cells))


def _pretrain() -> Grid:
    cells = []
    for name, src in PRETRAIN_SOURCES.items():
        layout = {_BB + k: v for k, v in src.get('backbone', {}).items()}
        beyond = ' [beyond the paper: not in Table 3]' if src.get('beyond_paper') else ''
        cells.append(Cell(
            name, 'det', dict(paper='maskrcnn_vit_adapter_B_3x.py', tiny=_TINY_DET_3X),
            profile_overrides=dict(
                paper={_BB + 'pretrained': src['file'], _BB + 'pretrain_size': src['size'], **layout,
                       **{'model.' + k: v for k, v in src.get('model', {}).items()}},
                # Filled in at launch time by experiments.pretrain_tiny (a random checkpoint in this format).
                tiny={_BB + 'pretrained': f'@synthetic:{src["format"]}', _BB + 'pretrain_size': src['size'],
                      **layout}),
            notes=dict(paper=src['label'] + beyond,
                       tiny=f'{src["label"]}{beyond}: tiny profile, no real weights (see experiments/pretrain_tiny.py)')))
    return Grid('pretrain', 'Pre-training source, ViT-Adapter-B Mask R-CNN 3x+MS (Table 3; DINOv2, MAE and EVA-02 '
                'rows beyond the paper)', tuple(cells))


#: Tiny stand-ins for T/S/B/L: the 'tiny' preset (12 blocks) at growing widths, so the size axis still means
#: something on CPU. S is the plain 'tiny' preset (width 64).
TINY_SIZES = {'T': (32, 2), 'S': (64, 2), 'B': (96, 3), 'L': (128, 4)}


def _tiny_size(size: str) -> dict:
    """cfg-options that scale the tiny backbone to the stand-in width of ``size`` (the launcher rewires the neck /
    heads it feeds, ``experiments.models.rewire``)."""
    width, heads = TINY_SIZES[size]
    return {_BB + 'embed_dim': width, _BB + 'num_heads': heads}


def _tiny_note(size: str) -> str:
    width, heads = TINY_SIZES[size]
    return f"tiny profile: {size} is arch='tiny' at width {width} ({heads} heads), not the paper's {size}"


def _main_det() -> Grid:
    cells = []
    for sched, kind, size in itertools.product(('1x', '3x'), ('vit', 'vit_adapter'), SIZES):
        tiny = _TINY_DET_VIT[sched] if kind == 'vit' else (_TINY_DET if sched == '1x' else _TINY_DET_3X)
        cells.append(Cell(f'maskrcnn_{sched}_{kind}_{size}', 'det',
                          dict(paper=f'maskrcnn_{kind}_{size}_{sched}.py', tiny=tiny),
                          profile_overrides=dict(tiny=_tiny_size(size)),
                          notes=dict(tiny=_tiny_note(size))))
    return Grid('main-det', 'Mask R-CNN 1x and 3x+MS on COCO, ViT vs ViT-Adapter T/S/B/L (Table 1)', tuple(cells))


def _main_seg() -> Grid:
    cells = []
    for head, kind, size in itertools.product(('upernet', 'semfpn'), ('vit', 'vit_adapter'), SIZES):
        iters = '160k' if head == 'upernet' else '80k'
        tiny = f'tiny/{head}_tiny_vit.py' if kind == 'vit' else f'tiny/{head}_tiny.py'
        cells.append(Cell(f'{head}_{kind}_{size}', 'seg',
                          dict(paper=f'{head}_{kind}_{size}_{iters}.py', tiny=tiny),
                          profile_overrides=dict(tiny=_tiny_size(size)),
                          notes=dict(tiny=_tiny_note(size))))
    return Grid('main-seg', 'UperNet 160k and Semantic FPN 80k on ADE20K, ViT vs ViT-Adapter T/S/B/L (Table 4)',
                tuple(cells))


#: Table 2's detectors (3x+MS): framework -> (paper config stem, tiny config stem, sizes in the paper's table).
DET_FRAMEWORKS = {'cascade': ('cascade_mask_rcnn', 'cascade', ('S', 'B')), 'atss': ('atss', 'atss', ('S',)),
                  'gfl': ('gfl', 'gfl', ('S',))}


def _det_frameworks() -> Grid:
    """Table 2: its own grid, not more cells of main-det. main-det is Table 1 (Mask R-CNN 1x / 3x at T/S/B/L, one
    layout, a schedule axis that --cfg-options may not override); Table 2 is other detectors, all 3x+MS, two of them
    box-only (no mask AP), so it gets its own layout and can be launched and costed on its own."""
    cells = []
    for fw, (paper, tiny, sizes) in DET_FRAMEWORKS.items():
        for kind, size in itertools.product(('vit', 'vit_adapter'), sizes):
            tiny_cfg = f'tiny/{tiny}_tiny_vit_3x.py' if kind == 'vit' else f'tiny/{tiny}_tiny_3x.py'
            cells.append(Cell(f'{fw}_{kind}_{size}', 'det', dict(paper=f'{paper}_{kind}_{size}_3x.py', tiny=tiny_cfg),
                              profile_overrides=dict(tiny=_tiny_size(size)), notes=dict(tiny=_tiny_note(size))))
    return Grid('det-frameworks', 'Cascade Mask R-CNN, ATSS and GFL 3x+MS on COCO, ViT vs ViT-Adapter S/B (Table 2)',
                tuple(cells))


_BUILDERS = {'components': _components, 'N': _n_interactions, 'attention': _attention, 'pretrain': _pretrain,
             'main-det': _main_det, 'main-seg': _main_seg}
_BUILDERS['det-frameworks'] = _det_frameworks


#: Table 6's BEiT-Adapter-L Mask2Former rows (896, 80k): cell -> (pre-trained BEiT checkpoint, label). The config
#: names BEiT-L; the BEiTv2 cell swaps the checkpoint (the official BEiTv2 file differs in nothing else but a flipped
#: single-scale test).
BEIT_SOURCES = {
    'mask2former_beit_adapter_L': ('pretrained/beit_large_patch16_224_pt22k_ft22k.pth', 'IN-22K, BEiT (BEiT-L)'),
    'mask2former_beitv2_adapter_L': ('pretrained/beitv2_large_patch16_224_pt1k_ft21k.pth',
                                     'Multi-modal, BEiTv2 (BEiTv2-L)'),
}


def _sota() -> Grid:
    """The headline heads with ViT-Adapter-L (AugReg-L, ImageNet-22K supervised): HTC++ on COCO (Table 5) and
    Mask2Former on ADE20K (Table 6); and Table 6's BEiT / BEiTv2 Mask2Former rows at 896 (the BEiT-Adapter-L, 80k; the
    paper's COCO-Stuff pre-training of the segmentor is not reproduced). A grid of their own: 8- and 16-GPU runs far
    costlier than any main-det / main-seg cell, compared with other tables. The tiny profile runs them at the tiny
    sizes (no size axis); the BEiT cells load a synthesised BEiT-format checkpoint there."""
    tiny = "tiny profile: arch='tiny' (width 64), not the paper's L"
    cells = [
        Cell('htcpp_vit_adapter_L', 'det', dict(paper='htcpp_vit_adapter_L_3x.py', tiny='tiny/htcpp_tiny_3x.py'),
             notes=dict(tiny=tiny + '; no semantic branch, no InstaBoost')),
        Cell('mask2former_vit_adapter_L', 'seg',
             dict(paper='mask2former_vit_adapter_L_640_160k.py', tiny='tiny/mask2former_tiny.py'),
             notes=dict(tiny=tiny))]
    for name, (ckpt, label) in BEIT_SOURCES.items():
        cells.append(Cell(
            name, 'seg', dict(paper='mask2former_beit_adapter_L_896_80k.py', tiny='tiny/mask2former_beit_tiny.py'),
            profile_overrides=dict(paper={_BB + 'pretrained': ckpt}, tiny={_BB + 'pretrained': '@synthetic:beit'}),
            notes=dict(paper=label + '; no COCO-Stuff-164k pre-training of the segmentor (the paper\'s row has it)',
                       tiny=tiny + f'; {label}: no real weights (a synthesised BEiT-format checkpoint)')))
    return Grid('sota', 'HTC++ 3x+MS on COCO and Mask2Former on ADE20K (AugReg-L 640 160k; BEiT-L / BEiTv2-L 896 '
                '80k), ViT-Adapter-L (Tables 5, 6)', tuple(cells))


_BUILDERS['sota'] = _sota
GRID_NAMES = tuple(_BUILDERS)


def get_grid(name: str) -> Grid:
    """The grid called ``name`` (one of ``GRID_NAMES``)."""
    if name not in _BUILDERS:
        raise ValueError(f'unknown grid {name!r}; choose one of {list(GRID_NAMES)}')
    return _BUILDERS[name]()

"""The paper's table layout for each grid: which run feeds which paper row and column.

A :class:`Layout` lists rows (a paper row label plus the run name of each column group) and
columns (a measured quantity, the paper column it is compared with, and its column group). T1 has
two groups (1x and 3x runs of the same model), T4 two (Semantic FPN and UperNet runs).
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Col:
    """One compared quantity.

    Attributes:
        name: Column name in our table (e.g. ``'APb'``, ``'1x APm50'``).
        metric: Our quantity: a canonical metric (``'APb'``, ``'mIoU'`` ... percent), ``'params_m'``,
            ``'flops_g'``, ``'train_time_per_iter'`` (s) or ``'max_memory_gb'``.
        paper_col: The paper table's column (unique name, see ``PaperTable.columns``), or None when
            the paper has no such number.
        group: Column group selecting the run of a row (``''`` for single-run rows).
        ours: False for a paper column we do not measure (shown as '-' for ours, e.g. multi-scale test).
    """

    name: str
    metric: str
    paper_col: str | None
    group: str = ''
    ours: bool = True


@dataclass(frozen=True)
class Row:
    """One table row.

    Attributes:
        label: Row label in our table.
        paper: Paper row selector: the first column's label, or ``'col=value;col=value'`` when
            several columns identify the row (T3, T4, A4); None when the paper has no such row.
        runs: Column group -> run name (the run names of ``experiments.grids``).
        param_note: Why our #Param differs from the paper's rounded number in this row (a table footnote when
            it does), or ''.
    """

    label: str
    paper: str | None
    runs: dict = field(default_factory=dict)
    param_note: str = ''

    @property
    def multi(self) -> bool:
        return self.paper is not None and '=' in self.paper


@dataclass(frozen=True)
class Layout:
    """A table: paper table id, rows, compared columns, and text columns copied from the paper.

    ``baseline``: the row (label) every other row is compared with in the ``Δ base`` columns; ``''`` = the first
    row; None = no baseline comparison (tables whose rows are different models, not variants of one).
    """

    key: str
    grid: str
    rows: tuple
    cols: tuple
    text_cols: tuple = ()
    caption: str = ''
    baseline: str | None = ''

    def baseline_row(self) -> Row | None:
        """The baseline row, or None when the table has none."""
        if self.baseline is None or not self.rows:
            return None
        if self.baseline == '':
            return self.rows[0]
        hits = [r for r in self.rows if r.label == self.baseline]
        if len(hits) != 1:
            raise ValueError(f'layout {self.key}: baseline {self.baseline!r} is not one row label')
        return hits[0]


def _single(runs_labels, cols, key, grid, text_cols=(), caption=''):
    rows = tuple(Row(label=lbl, paper=paper, runs={'': run}) for run, lbl, paper in runs_labels)
    return Layout(key=key, grid=grid, rows=rows, cols=tuple(cols), text_cols=tuple(text_cols), caption=caption)


_AP = (Col('APb', 'APb', 'APb'), Col('APm', 'APm', 'APm'))
_PARAM = Col('#Param (M)', 'params_m', '#Param')

A1 = _single([('baseline', 'ViT-S baseline', 'ViT-S baseline'), ('spm_add', 'Variant 1 (SPM, add)', 'Variant 1'),
              ('spm_injector', 'Variant 2 (SPM + injector)', 'Variant 2'), ('full', 'ViT-Adapter-S', 'ViT-Adapter-S')],
             [*_AP, _PARAM], 'A1', 'components', text_cols=('SPM', 'Injector', 'Extractor', 'Interaction'),
             caption='Ablation of the adapter components')
A2 = _single([(f'N{n}', f'N = {n}', str(n)) for n in (0, 1, 2, 4, 6)], [*_AP, _PARAM], 'A2', 'N',
             caption='Number of interactions N')
A3 = _single([('global', 'Global', 'Global (Vaswani 2017)'), ('cswin', 'CSwin', 'CSwin (Dong 2021)'),
              ('pale', 'Pale', 'Pale (Wu 2022)'), ('deformable', 'Deformable', 'Deformable (Zhu 2020)')],
             [*_AP, Col('FLOPs (G)', 'flops_g', 'FLOPs'), _PARAM,
              Col('Train time (s/iter)', 'train_time_per_iter', 'Train time'),
              Col('Memory (GB)', 'max_memory_gb', 'Memory')], 'A3', 'attention', text_cols=('Complexity',),
             caption='Attention type in the adapter')
T3 = _single([('deit_in1k', 'ImageNet-1K (DeiT-B)', 'Backbone=ViT-Adapter-B;Pre-train=ImageNet-1K (DeiT-B)'),
              ('augreg_in22k', 'ImageNet-22K (AugReg-B)', 'Backbone=ViT-Adapter-B;Pre-train=ImageNet-22K (AugReg-B)'),
              ('uniperceiver_mm', 'Multi-modal (Uni-Perceiver-B)',
               'Backbone=ViT-Adapter-B;Pre-train=Multi-modal (Uni-Perceiver-B)'),
              # beyond the paper: no paper row (None), marked in the label
              ('dinov2_lvd142m', 'LVD-142M (DINOv2-B/14) [beyond the paper]', None),
              ('mae_in1k', 'ImageNet-1K, MAE (MAE-B) [beyond the paper]', None),
              ('eva02_in21k', 'ImageNet-21K, MIM (EVA-02-B/14) [beyond the paper]', None)],
             list(_AP), 'T3', 'pretrain',
             caption='Pre-training source (ViT-Adapter-B); rows marked [beyond the paper] are not in Table 3')

_T1_LABEL = {('vit', a): f'ViT-{a}' for a in 'TSB'} | {('vit_adapter', a): f'ViT-Adapter-{a}' for a in 'TSB'}
_T1_LABEL |= {('vit', 'L'): 'ViT-L (IN-22K)', ('vit_adapter', 'L'): 'ViT-Adapter-L (IN-22K)'}
T1 = Layout(
    key='T1', grid='main-det', caption='Mask R-CNN, 1x and 3x schedules', baseline=None,  # rows: models of 4 sizes
    rows=tuple(Row(label=_T1_LABEL[m, a], paper=_T1_LABEL[m, a],
                   runs={s: f'maskrcnn_{s}_{m}_{a}' for s in ('1x', '3x')})
               for a in 'TSBL' for m in ('vit', 'vit_adapter')),
    cols=(Col('#Param (M)', 'params_m', '#Param', group='1x'),)
    + tuple(Col(f'{s} {c}', c, f'{s} {c}', group=s) for s in ('1x', '3x')
            for c in ('APb', 'APb50', 'APb75', 'APm', 'APm50', 'APm75')))


#: ADE20K B models pre-trained on ImageNet-1K (T4, A4): why their #Param is below the paper's.
ADE_B_IN1K_NOTE = ("ADE20K B, ImageNet-1K: DeiT-B/16 at 224 as in the official ViT-Adapter-B config of this row "
                   "(a 14x14 position embedding; the official UperNet counts 133.64M). The paper's B numbers, the "
                   "same as its ImageNet-22K row's, count the 24x24 embedding of the 384 setting (0.29M more).")


def _t4_row(m, a):
    method = f'ViT-{a}' if m == 'vit' else f'ViT-Adapter-{a}'
    pre = 'IN-22K' if a == 'L' else 'IN-1K'
    paper = None if (m, a) == ('vit', 'L') else f'Method={method};Pre-train={pre}'  # T4 has no ViT-L row
    return Row(label=f'{method} ({pre})', paper=paper, runs={h: f'{h}_{m}_{a}' for h in ('semfpn', 'upernet')},
               param_note=ADE_B_IN1K_NOTE if a == 'B' else '')


T4 = Layout(
    key='T4', grid='main-seg', caption='ADE20K semantic segmentation (single-scale mIoU; +MS not evaluated)',
    baseline=None,  # rows: models of 4 sizes
    rows=tuple(_t4_row(m, a) for a in 'TSBL' for m in ('vit', 'vit_adapter')),
    cols=tuple(c for h, H in (('semfpn', 'SemFPN'), ('upernet', 'UperNet')) for c in (
        Col(f'{H} #Param (M)', 'params_m', f'{H} #Param', group=h),
        Col(f'{H} mIoU', 'mIoU', f'{H} mIoU', group=h),
        Col(f'{H} +MS', 'mIoU_ms', f'{H} +MS', group=h, ours=False))))

A4 = Layout(
    key='A4', grid='main-seg', caption='Efficiency, Semantic FPN', baseline=None,  # rows: B and L models
    rows=tuple(Row(label=lbl, paper=f'Method={lbl};Segmentor=Semantic FPN', runs={'': run},
                   param_note=ADE_B_IN1K_NOTE if lbl.endswith('-B') else '') for run, lbl in (
        ('semfpn_vit_B', 'ViT-B'), ('semfpn_vit_adapter_B', 'ViT-Adapter-B'),
        ('semfpn_vit_L', 'ViT-L'), ('semfpn_vit_adapter_L', 'ViT-Adapter-L'))),
    cols=(Col('#Param (M)', 'params_m', '#Param'), Col('FLOPs (G)', 'flops_g', 'FLOPs'),
          Col('Train time (s/iter)', 'train_time_per_iter', 'Train time'),
          Col('Train mem (GB)', 'max_memory_gb', 'Train mem'), Col('mIoU', 'mIoU', 'mIoU'),
          Col('+MS', 'mIoU_ms', '+MS', ours=False)),
    text_cols=('Pre-train',))

_T2_FRAMEWORK = {'cascade': 'Cascade Mask R-CNN', 'atss': 'ATSS', 'gfl': 'GFL'}
_T2_RUNS = [(fw, m, a) for fw, a_s in (('cascade', 'SB'), ('atss', 'S'), ('gfl', 'S')) for a in a_s
            for m in ('vit', 'vit_adapter')]
T2 = Layout(
    key='T2', grid='det-frameworks', caption='Other detectors, 3x+MS (box AP)',
    baseline=None,  # rows: ViT / ViT-Adapter pairs of three detectors
    rows=tuple(Row(label=f'{_T2_FRAMEWORK[fw]} {_T1_LABEL[m, a]}',
                   paper=f'Framework={_T2_FRAMEWORK[fw]};Method={_T1_LABEL[m, a]}', runs={'': f'{fw}_{m}_{a}'})
               for fw, m, a in _T2_RUNS),
    cols=(*(Col(c, c, c) for c in ('APb', 'APb50', 'APb75')), _PARAM))

#: Grid -> its tables; the first is the grid's main table (``table.*``), the others ``table_<key>.*``.
LAYOUTS = {'components': (A1,), 'N': (A2,), 'attention': (A3,), 'pretrain': (T3,), 'main-det': (T1,),
           'main-seg': (T4, A4)}
LAYOUTS['det-frameworks'] = (T2,)

#: Table 6's ViT-Adapter-L Mask2Former (IN-22K supervised, 640, 160k): why our #Param is above the paper's 438M.
M2F_NOTE = ("Mask2Former L: the official Mask2Former ViT-Adapter-L head (width 1024, as its BEiT-L config, whose "
            "README counts 568M: 568.20M built here with BEiT-L); no official config or count gives the paper's 438M "
            "for the AugReg-L row")
T5 = Layout(
    key='T5', grid='sota', caption='HTC++ on COCO val2017 (single-scale; +MS and test-dev not evaluated)',
    baseline=None,
    rows=(Row(label='ViT-Adapter-L HTC++ (IN-22K, sup)', paper='Method=ViT-Adapter-L;Pre-train=IN-22K, sup',
              runs={'': 'htcpp_vit_adapter_L'}),),
    cols=(Col('APb', 'APb', 'val APb'), Col('APm', 'APm', 'val APm'),
          Col('+MS APb', 'APb_ms', 'val +MS APb', ours=False), Col('+MS APm', 'APm_ms', 'val +MS APm', ours=False)))
T6 = Layout(
    key='T6', grid='sota', caption='Mask2Former on ADE20K val (single-scale mIoU; +MS not evaluated; the BEiT / BEiTv2 '
    "rows without the paper's COCO-Stuff-164k pre-training of the segmentor)", baseline=None,
    rows=(Row(label='ViT-Adapter-L Mask2Former (IN-22K, sup, 640)',
              paper='Method=ViT-Adapter-L;Framework=Mask2Former;Pre-train=IN-22K, sup',
              runs={'': 'mask2former_vit_adapter_L'}, param_note=M2F_NOTE),
          Row(label='ViT-Adapter-L Mask2Former (IN-22K, BEiT, 896, no COCO-Stuff)',
              paper='Method=ViT-Adapter-L;Framework=Mask2Former;Pre-train=IN-22K, BEiT',
              runs={'': 'mask2former_beit_adapter_L'}),
          Row(label='ViT-Adapter-L Mask2Former (BEiTv2, 896, no COCO-Stuff)',
              paper='Method=ViT-Adapter-L;Framework=Mask2Former;Pre-train=Multi-modal, BEiTv2',
              runs={'': 'mask2former_beitv2_adapter_L'})),
    cols=(Col('mIoU', 'mIoU', 'mIoU'), Col('+MS', 'mIoU_ms', '+MS', ours=False), _PARAM))
LAYOUTS['sota'] = (T5, T6)

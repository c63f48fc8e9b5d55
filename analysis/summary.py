"""``python -m analysis.summary``: #Param and FLOPs of the paper configs beside the paper's numbers.

Each row is a paper-profile cell of a grid (``experiments.grids``: its config file plus the cell's overrides, the
model the launcher would train), placed in a paper table by ``analysis.layouts``, plus the configs no grid runs
(:data:`EXTRA`). The paper's numbers are read from ``analysis/data/paper_tables.json`` (``analysis.paper``);
none is written here.

Parameters: the whole mmdet / mmseg model built on the meta device (``experiments.models``), its backbone, and the
adapter alone (backbone minus its ViT). Where ours differs from the paper's number by more than the paper's
rounding, the row carries a footnote: the cause given by the layout (``Row.param_note``) or "no known cause".
FLOPs (``adapter.flops``, multiply-accumulates): Table A3 (the ViT-Adapter-S backbone at 1280x800: the attention
types differ only in the backbone, so the paper's differences between its Mask R-CNN totals are compared); Table A4
(the whole Semantic FPN at 512x512); with ``--gmacs H W`` also every row's backbone at H x W.

Usage:
    python -m analysis.summary [--no-flops] [--gmacs H W] [--update-readme FILE]
"""
from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from analysis.layouts import LAYOUTS
from analysis.model_summary import count_params
from analysis.paper import paper_table, parse_value, rounding

#: Grids whose tables have a #Param column, in print order.
GRIDS = ('main-det', 'main-seg', 'components', 'N', 'attention', 'det-frameworks', 'sota')
MARK_START = '<!-- summary:start -->'
MARK_END = '<!-- summary:end -->'


@dataclass(frozen=True)
class Entry:
    """One model compared with one paper #Param cell.

    Attributes:
        table: Paper table id.
        label: Our row label (with the column group where a row has several models).
        paper_row: Paper row selector (first-column label, or ``'col=value;...'``); None: no paper row.
        paper_col: The paper's #Param column.
        config: Config file relative to ``experiments/configs``.
        task: 'det' or 'seg'.
        overrides: cfg-options applied to the config (the grid cell's paper overrides).
        note: Why ours may differ from the paper's number (footnote), or ''.
    """

    table: str
    label: str
    paper_row: str | None
    paper_col: str | None
    config: str
    task: str
    overrides: dict = field(default_factory=dict)
    note: str = ''

    @property
    def paper_raw(self) -> str:
        """The paper's cell as printed ('' when the paper has no such row)."""
        if self.paper_row is None or self.paper_col is None:
            return ''
        return paper_table(self.table).row(self.paper_row, by='multi' if '=' in self.paper_row else None)[
            self.paper_col]


#: Paper configs that no grid runs: (table, label, paper row, paper #Param column, config, task).
EXTRA = (
    Entry('T4', 'ViT-Adapter-B (IN-22K) UperNet', 'Method=ViT-Adapter-B;Pre-train=IN-22K', 'UperNet #Param',
          'upernet_vit_adapter_B_in22k_160k.py', 'seg'),
)


def entries(grids=GRIDS) -> list[Entry]:
    """The compared models: every #Param cell of the grids' paper tables, then :data:`EXTRA`."""
    from experiments.grids import get_grid  # noqa: PLC0415
    out = []
    for grid in grids:
        cells = {s.name: s for s in get_grid(grid).runs(1)}
        for layout in LAYOUTS[grid]:
            cols = [c for c in layout.cols if c.metric == 'params_m']
            for row in layout.rows:
                for col in cols:
                    spec = cells[row.runs[col.group]]
                    label = row.label + (f' {col.name.replace(" #Param (M)", "")}' if col.group and len(cols) > 1
                                         else '')
                    out.append(Entry(layout.key, label, row.paper, col.paper_col, spec.configs['paper'], spec.task,
                                     spec.resolved_overrides('paper'), row.param_note))
    return out + list(EXTRA)


@lru_cache(maxsize=None)
def _load(config: str, overrides: tuple):
    from experiments.models import CONFIG_DIR, load_config  # noqa: PLC0415
    return load_config(CONFIG_DIR / config, dict(overrides))


def load(entry: Entry):
    """The mmengine Config of an entry (overrides merged, channels wired)."""
    return _load(entry.config, _key(entry.overrides))


def counts(entry: Entry) -> dict:
    """Millions of parameters: whole model, backbone, adapter (backbone minus its ViT)."""
    return dict(_counts(entry.task, entry.config, _key(entry.overrides)))


def _key(overrides: dict) -> tuple:
    return tuple(sorted(overrides.items(), key=lambda kv: kv[0]))


@lru_cache(maxsize=None)
def _counts(task: str, config: str, overrides: tuple) -> tuple:
    from experiments.models import build_model  # noqa: PLC0415
    model = build_model(task, _load(config, overrides).model, device='meta')
    bb = model.backbone
    return (('model', count_params(model) / 1e6), ('backbone', count_params(bb) / 1e6),
            ('adapter', (count_params(bb) - count_params(bb.vit)) / 1e6))


def compare(entry: Entry, ours: float) -> dict:
    """Paper value, difference, and the footnote when the difference exceeds the paper's rounding."""
    raw = entry.paper_raw
    paper = parse_value(raw) if raw else math.nan
    diff = ours - paper
    beyond = not math.isnan(diff) and abs(diff) > rounding(raw) + 1e-9
    return dict(paper=paper, paper_raw=raw or '-', diff=diff, beyond=beyond,
                footnote=(entry.note or 'no known cause') if beyond else '')


def backbone_module(entry: Entry):
    """The entry's backbone as a plain ``adapter`` module on CPU (no checkpoint read)."""
    from adapter import build_backbone  # noqa: PLC0415
    bb = {k: v for k, v in dict(load(entry).model.backbone).items() if k not in ('init_cfg', '_delete_')}
    bb['pretrained'] = None
    return build_backbone(bb)


def param_table(rows: list[Entry], flops_size: tuple | None = None) -> list[str]:
    """Markdown lines: one row per entry, then the footnotes."""
    from adapter.flops import backbone_flops  # noqa: PLC0415
    head = ['table', 'row', 'config', 'backbone', 'adapter', 'ours', 'paper', 'Δ']
    if flops_size:
        head.append(f'backbone GMACs {flops_size[0]}x{flops_size[1]}')
    lines = ['| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)]
    notes: list[str] = []
    gmacs_cache: dict[str, float] = {}
    for e in rows:
        c = counts(e)
        cmp = compare(e, c['model'])
        mark = ''
        if cmp['footnote']:
            if cmp['footnote'] not in notes:
                notes.append(cmp['footnote'])
            mark = f' [{notes.index(cmp["footnote"]) + 1}]'
        cfg = e.config + (' ' + ' '.join(f'{k.replace("model.backbone.", "")}={v}' for k, v in e.overrides.items())
                          if e.overrides else '')
        diff = '-' if math.isnan(cmp['diff']) else f'{cmp["diff"]:+.2f}'
        cells = [e.table, e.label, f'`{cfg}`', f'{c["backbone"]:.2f}', f'{c["adapter"]:.2f}', f'{c["model"]:.2f}',
                 cmp['paper_raw'], diff + mark]
        if flops_size:
            key = repr(sorted(dict(load(e).model.backbone).items()))
            if key not in gmacs_cache:
                gmacs_cache[key] = backbone_flops(backbone_module(e), tuple(flops_size))['total']
            cells.append(f'{gmacs_cache[key]:.1f}')
        lines.append('| ' + ' | '.join(cells) + ' |')
    lines += [''] + [f'[{i}] {n}' for i, n in enumerate(notes, 1)]
    return lines


def _entry(grid: str, run: str, table: str, paper_row: str | None, col: str | None) -> Entry:
    from experiments.grids import get_grid  # noqa: PLC0415
    spec = get_grid(grid).runs(1, only=[run])[0]
    return Entry(table, run, paper_row, col, spec.configs['paper'], spec.task, spec.resolved_overrides('paper'))


def flops_tables() -> list[str]:
    """Markdown lines of the FLOP checks against Tables A3 and A4."""
    from adapter.flops import backbone_flops  # noqa: PLC0415
    from experiments.models import build_model  # noqa: PLC0415
    a3 = LAYOUTS['attention'][0]
    lines = ['Table A3 (ViT-Adapter-S): backbone GMACs at 1280x800, and the increase over deformable attention '
             "beside the paper's (its FLOPs are whole Mask R-CNN models; the detector is the same for every row)",
             '', '| attention | GMACs | ours - deformable | paper - deformable | paper total |', '|---|---|---|---|---|']
    rows = [(r, _entry('attention', r.runs[''], 'A3', r.paper, 'FLOPs')) for r in a3.rows]
    ours = {r.runs['']: backbone_flops(backbone_module(e), (800, 1280))['total'] for r, e in rows}
    paper = {r.runs['']: parse_value(e.paper_raw) for r, e in rows}
    for r, _ in rows:
        run = r.runs['']
        lines.append(f'| {r.label} | {ours[run]:.0f} | {ours[run] - ours["deformable"]:+.0f} | '
                     f'{paper[run] - paper["deformable"]:+.0f} | {paper[run]:.0f} |')
    lines += ['', 'Table A4: whole Semantic FPN GMACs at 512x512 (mmseg model, 150 classes)', '',
              '| model | ours | paper |', '|---|---|---|']
    for r in LAYOUTS['main-seg'][1].rows:
        e = _entry('main-seg', r.runs[''], 'A4', r.paper, 'FLOPs')
        model = build_model('seg', load(e).model)
        f = backbone_flops(model, (512, 512), call=lambda m, x: m(x, mode='tensor'))['total']
        lines.append(f'| {r.label} | {f:.0f} | {e.paper_raw} |')
    return lines


def summary(flops: bool = True, gmacs: tuple | None = None) -> str:
    """The whole summary as Markdown: the #Param table (with backbone GMACs at ``gmacs`` = (H, W) if given), then
    the FLOP checks unless ``flops`` is False."""
    lines = ['#Param in millions (ours: whole model built from the config; Δ = ours - paper)'
             + (f'; backbone GMACs at {gmacs[0]}x{gmacs[1]}' if gmacs else '') + '.', '']
    lines += param_table(entries(), gmacs)
    if flops:
        lines += [''] + flops_tables()
    return '\n'.join(lines) + '\n'


def update_readme(path: str | Path, markdown: str) -> None:
    """Replace the text between the summary markers of ``path``."""
    path = Path(path)
    text = path.read_text()
    if MARK_START not in text or MARK_END not in text:
        raise SystemExit(f'{path}: no {MARK_START} ... {MARK_END} markers')
    start, end = text.index(MARK_START) + len(MARK_START), text.index(MARK_END)
    path.write_text(text[:start] + '\n<!-- generated by python -m analysis.summary -->\n' + markdown + text[end:])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--gmacs', type=int, nargs=2, metavar=('H', 'W'),
                    help='add a column of backbone GMACs at H x W (multiples of 32; a forward per backbone)')
    ap.add_argument('--no-flops', action='store_true', help='skip the Table A3 / A4 FLOP checks (they run forwards)')
    ap.add_argument('--update-readme', metavar='FILE', help=f'also write the summary between {MARK_START} and '
                    f'{MARK_END} in FILE')
    args = ap.parse_args(argv)
    md = summary(flops=not args.no_flops, gmacs=tuple(args.gmacs) if args.gmacs else None)
    sys.stdout.write(md)
    if args.update_readme:
        update_readme(args.update_readme, md)
    return 0


if __name__ == '__main__':
    sys.exit(main())

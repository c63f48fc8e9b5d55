"""The paper's numbers, carried as data (``analysis/data/paper_tables.json``).

The JSON file is a cell-by-cell transcription of ``paper_tables.md`` (the shared transcription of the
ViT-Adapter slides, copied verbatim to ``analysis/data/paper_tables.md``; the tests parse it
independently and compare every cell): every cell is kept as the paper prints it (``"41.6*"``, ``"1080G"``, ``"0.36s"``,
``"?"``). ``?`` means the value is garbled or cut in the source and stays missing here; it is never
filled in. :func:`parse_value` turns a cell into a number, dropping units and footnote marks.

References:
    Chen et al., "Vision Transformer Adapter for Dense Predictions", ICLR 2023.
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import pandas as pd

PAPER_JSON = Path(__file__).resolve().parent / 'data' / 'paper_tables.json'

_NUM = re.compile(r'^\s*([-+]?\d+(?:\.\d+)?)\s*(G|M|s/iter|s)?\s*(\(\*\)|\*)?\s*$')


def parse_value(cell: str) -> float:
    """Turn one paper cell into a number.

    Args:
        cell: The cell text as printed, e.g. ``"44.7"``, ``"41.6*"``, ``"1080G"``, ``"0.16s/iter"``,
            ``"19.0G (*)"``, ``"86M"``, ``"?"`` (missing), ``"-"`` (not reported), ``""``.

    Returns:
        The number without unit or footnote mark, or NaN for a missing / non-numeric cell.
    """
    m = _NUM.match(str(cell))
    return float(m.group(1)) if m else math.nan


def rounding(cell: str) -> float:
    """Half a unit of the last digit a numeric cell prints (``"133.9"`` -> 0.05, ``"105M"`` -> 0.5), else NaN.

    A value differs from the paper's rounded number when it is farther from it than this.
    """
    m = _NUM.match(str(cell))
    if not m:
        return math.nan
    decimals = m.group(1).partition('.')[2]
    return 0.5 * 10 ** -len(decimals)


def footnote(cell: str) -> str:
    """The footnote mark of a cell (``'*'``, ``'(*)'``) or ``''``."""
    m = _NUM.match(str(cell))
    return (m.group(3) or '') if m else ''


@dataclass
class PaperTable:
    """One table of the paper.

    Attributes:
        key: Table id (``'T1'``, ``'A2'``, ...).
        title: Caption.
        setting: Training/eval setting the numbers belong to.
        header: Column headers exactly as printed (may repeat, e.g. T1's two ``APb50``).
        columns: Unique column names (T1: ``'1x APb'``, ``'3x APb50'``; T4: ``'SemFPN mIoU'``...).
        rows: Cells as printed, one list per row.
        notes: Footnote mark -> explanation.
    """

    key: str
    title: str
    setting: str
    header: list[str]
    columns: list[str]
    rows: list[list[str]]
    notes: dict[str, str] = field(default_factory=dict)

    @property
    def raw(self) -> pd.DataFrame:
        """Cells as strings, columns = :attr:`columns`."""
        return pd.DataFrame(self.rows, columns=self.columns)

    @property
    def numeric(self) -> pd.DataFrame:
        """Cells parsed with :func:`parse_value` (NaN where missing); the first column stays the label."""
        df = self.raw
        for c in self.columns[1:]:
            df[c] = df[c].map(parse_value)
        return df

    def row(self, label: str, *, by: str | None = None) -> dict[str, str]:
        """The raw cells of the row whose label column equals ``label``.

        Args:
            label: Row label, e.g. ``'ViT-Adapter-S'``.
            by: Label column (default: the first column); for several label columns pass a
                ``'col=value;col2=value2'`` string as ``label`` and ``by='multi'``.

        Raises:
            KeyError: No row or several rows match.
        """
        df = self.raw
        if by == 'multi':
            mask = pd.Series(True, index=df.index)
            for part in label.split(';'):
                col, val = part.split('=', 1)
                mask &= df[col] == val
        else:
            mask = df[by or self.columns[0]] == label
        hits = df[mask]
        if len(hits) != 1:
            raise KeyError(f'paper table {self.key}: {len(hits)} rows match {label!r}; '
                           f'labels: {df[self.columns[0]].tolist()}')
        return hits.iloc[0].to_dict()

    def value(self, label: str, column: str, *, by: str | None = None) -> float:
        """Numeric value of one cell (NaN when the paper's cell is ``?``/``-``/empty)."""
        if column not in self.columns:
            raise KeyError(f'paper table {self.key} has no column {column!r}; columns: {self.columns}')
        return parse_value(self.row(label, by=by)[column])


@lru_cache(maxsize=4)
def _load(path: str) -> dict:
    with open(path, encoding='utf-8') as f:
        return json.load(f)


def load_paper_tables(path: str | Path | None = None) -> dict[str, PaperTable]:
    """Load every paper table.

    Args:
        path: JSON file (default: the one shipped in ``analysis/data``).

    Returns:
        Table id -> :class:`PaperTable`.
    """
    data = _load(str(path or PAPER_JSON))
    out = {}
    for key, t in data['tables'].items():
        for i, r in enumerate(t['rows']):
            if len(r) != len(t['columns']):
                raise ValueError(f'{path or PAPER_JSON}: table {key} row {i} has {len(r)} cells, '
                                 f'expected {len(t["columns"])}')
        out[key] = PaperTable(key=key, title=t['title'], setting=t.get('setting', ''), header=t['header'],
                              columns=t['columns'], rows=t['rows'], notes=t.get('notes', {}))
    return out


def paper_table(key: str) -> PaperTable:
    """One paper table by id (``'T1'``..``'T4'``, ``'A1'``..``'A4'``)."""
    tables = load_paper_tables()
    if key not in tables:
        raise KeyError(f'unknown paper table {key!r}; known: {sorted(tables)}')
    return tables[key]

"""What a grid costs before it is launched: GPU-hours per run from measured seconds per iteration.

GPU-hours of a run = s/iter x ``train_cfg.max_iters`` x GPUs / 3600, with s/iter from a table of measurements kept
as data (``experiments/data/speed.json``, or the file ``$VIT_ADAPTER_SPEED_TABLE`` names): one entry per (config,
cell overrides, GPU kind), each with its source. A run no entry matches is 'unknown' -- never a guess. An entry of
scope ``backbone`` measured the backbone alone: its GPU-hours are a lower bound, shown as such.

``python -m experiments.launch GRID --dry-run`` prints the table (:func:`format_costs`).
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

SPEED_TABLE = Path(__file__).resolve().parent / 'data' / 'speed.json'
SPEED_TABLE_ENV = 'VIT_ADAPTER_SPEED_TABLE'
SCOPES = ('train_iter', 'backbone')


class SpeedTableError(ValueError):
    """The speed table is not readable or an entry is incomplete (the message names the file and the entry)."""


@dataclass(frozen=True)
class Speed:
    """One measurement: seconds per iteration of ``config`` (with the cell ``overrides``) on one ``gpu`` kind."""

    config: str
    gpu: str
    s_per_iter: float
    scope: str
    source: str
    overrides: tuple = ()  # sorted (key, json value) pairs

    def matches(self, config: str, overrides: dict) -> bool:
        return self.config == config and self.overrides == _override_key(overrides)


def _override_key(overrides: dict | None) -> tuple:
    return tuple(sorted((str(k), json.dumps(v, sort_keys=True, default=str)) for k, v in (overrides or {}).items()))


def table_path() -> Path:
    """``$VIT_ADAPTER_SPEED_TABLE`` if set, else ``experiments/data/speed.json``."""
    return Path(os.environ.get(SPEED_TABLE_ENV) or SPEED_TABLE)


def load_speed_table(path: str | Path | None = None) -> list[Speed]:
    """The entries of the speed table at ``path`` (default :func:`table_path`).

    Raises:
        SpeedTableError: unreadable JSON, or an entry without config / gpu / a positive s_per_iter / source, or
            with an unknown scope.
    """
    path = Path(path) if path is not None else table_path()
    try:
        data = json.loads(path.read_text(encoding='utf-8'))
    except FileNotFoundError:
        raise SpeedTableError(f'speed table {path} does not exist') from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise SpeedTableError(f'speed table {path} is not readable JSON ({err})') from None
    entries = data.get('entries') if isinstance(data, dict) else None
    if not isinstance(entries, list):
        raise SpeedTableError(f'speed table {path}: expected an object with a list "entries"')
    out = []
    for i, e in enumerate(entries):
        where = f'speed table {path}, entry {i}'
        if not isinstance(e, dict):
            raise SpeedTableError(f'{where}: not an object')
        for key in ('config', 'gpu', 'source'):
            if not isinstance(e.get(key), str) or not e[key].strip():
                raise SpeedTableError(f'{where}: "{key}" must be a non-empty string (every number says where it '
                                      f'comes from)' if key == 'source' else f'{where}: "{key}" must be a non-empty string')
        s = e.get('s_per_iter')
        if isinstance(s, bool) or not isinstance(s, (int, float)) or not math.isfinite(s) or s <= 0:
            raise SpeedTableError(f'{where}: "s_per_iter" must be a positive number of seconds, got {s!r}')
        scope = e.get('scope', 'train_iter')
        if scope not in SCOPES:
            raise SpeedTableError(f'{where}: "scope" must be one of {SCOPES}, got {scope!r}')
        if not isinstance(e.get('overrides', {}), dict):
            raise SpeedTableError(f'{where}: "overrides" must be an object of cfg-options')
        out.append(Speed(config=e['config'], gpu=e['gpu'], s_per_iter=float(s), scope=scope, source=e['source'],
                         overrides=_override_key(e.get('overrides'))))
    return out


def gpu_kinds(table: list[Speed]) -> list[str]:
    """The GPU kinds the table has measurements for, in table order."""
    return list(dict.fromkeys(s.gpu for s in table))


def lookup(table: list[Speed], config: str, overrides: dict, gpu: str) -> Speed | None:
    """The measurement of ``config`` with the cell ``overrides`` on ``gpu``; a whole-iteration one before a
    backbone-only one; None when there is none."""
    found = [s for s in table if s.gpu == gpu and s.matches(config, overrides)]
    found.sort(key=lambda s: SCOPES.index(s.scope))
    return found[0] if found else None


def gpu_hours(s_per_iter: float, max_iters: int, gpus: int) -> float:
    """s/iter x iterations x GPUs / 3600."""
    return s_per_iter * max_iters * gpus / 3600


@dataclass
class RunCost:
    """The cost of one run: its identity in the grid, iterations, GPUs, and per GPU kind the measurement used
    (None: unknown) and the GPU-hours (None: unknown)."""

    run: str
    seed: int
    config: str
    max_iters: int | None
    gpus: int
    speeds: dict  # gpu kind -> Speed | None
    hours: dict  # gpu kind -> float | None


def run_cost(run: str, seed: int, config: str, overrides: dict, max_iters: int | None, gpus: int,
             table: list[Speed]) -> RunCost:
    """Cost of one run on every GPU kind of ``table`` (``max_iters`` None: an epoch-based loop, unknown)."""
    speeds, hours = {}, {}
    for kind in gpu_kinds(table):
        s = lookup(table, config, overrides, kind)
        speeds[kind] = s
        hours[kind] = gpu_hours(s.s_per_iter, max_iters, gpus) if s is not None and max_iters and gpus else None
    return RunCost(run=run, seed=seed, config=config, max_iters=max_iters, gpus=gpus, speeds=speeds, hours=hours)


def _hours_text(cost: RunCost, kind: str) -> str:
    s = cost.speeds.get(kind)
    if cost.gpus == 0:
        return 'no GPU'
    if s is None or cost.max_iters is None:
        return 'unknown'
    h = cost.hours[kind]
    return f'>={h:.1f} (backbone only)' if s.scope == 'backbone' else f'{h:.1f}'


def format_costs(costs: list[RunCost], table: list[Speed], source: Path) -> str:
    """The cost table (indented by four spaces, apart from the run list above it): one line per run (s/iter and GPU-hours per GPU kind), a total per GPU kind, and the source
    of every measurement used."""
    kinds = gpu_kinds(table)
    lines = [f'cost: GPU-hours = s/iter x max_iters x GPUs / 3600, s/iter measured ({source})']
    if not kinds:
        lines.append('    no measurement in the table: every run unknown')
    head = f'    {"run":<34} {"seed":>4}  {"config":<34} {"iters":>8} {"GPUs":>4}'
    for k in kinds:
        head += f'  {k + " s/iter":>14}  {k + " GPU-h":<24}'
    lines.append(head.rstrip())
    for c in costs:
        line = (f'    {c.run:<34} {c.seed:>4}  {c.config:<34} {c.max_iters if c.max_iters else "unknown":>8} '
                f'{c.gpus:>4}')
        for k in kinds:
            s = c.speeds.get(k)
            line += f'  {f"{s.s_per_iter:.4g}" if s else "unknown":>14}  {_hours_text(c, k):<24}'
        lines.append(line.rstrip())
    for k in kinds:
        known = [c for c in costs if c.hours.get(k) is not None]
        unknown = [c for c in costs if c.hours.get(k) is None and c.gpus]
        lower = any(c.speeds[k].scope == 'backbone' for c in known)
        total = sum(c.hours[k] for c in known)
        if not any(c.gpus for c in costs):
            text = 'none (the runs use no GPU)'
        elif not known:
            text = f'unknown ({len(unknown)} run(s) without a measurement)'
        else:
            text = (f'{">=" if lower else ""}{total:.1f} GPU-h over {len(known)} run(s)' +
                    (' (some measurements are backbone only: a lower bound)' if lower else '') +
                    (f' + {len(unknown)} run(s) unknown' if unknown else ''))
        lines.append(f'    total on {k}: {text}')
    used = {(s.gpu, s.config, s.overrides): s for c in costs for s in c.speeds.values() if s is not None}
    for s in used.values():
        lines.append(f'    [{s.gpu}, {s.config}{", " + str(dict(s.overrides)) if s.overrides else ""}, {s.scope}] '
                     f'{s.s_per_iter:.4g} s/iter: {s.source}')
    return '\n'.join(lines)

"""Visualisers of a run: TensorBoard by default, Weights & Biases or MLflow one option away.

``python -m experiments.launch GRID --vis tensorboard|wandb|mlflow|none`` (several may be given) sets the config's
``vis_backends`` (top level and ``visualizer.vis_backends``). mmengine's ``LocalVisBackend`` is always kept: it
writes ``<run>/<timestamp>/vis_data/scalars.json``, which ``analysis/logs.py`` reads. TensorBoard event files go to
the same ``vis_data/`` folder of the run.

Neither key is part of a run's identity (``experiments.rundir.IDENTITY_EXCLUDED``), so switching a visualiser on or
off keeps the run and may resume it.
"""
from __future__ import annotations

import importlib.util

LOCAL = dict(type='LocalVisBackend')
#: --vis choice -> (mmengine backend type, module it imports, the package to install).
BACKENDS = {
    'tensorboard': ('TensorboardVisBackend', 'tensorboard', 'tensorboard'),
    'wandb': ('WandbVisBackend', 'wandb', 'wandb'),
    'mlflow': ('MLflowVisBackend', 'mlflow', 'mlflow'),
}
CHOICES = tuple(BACKENDS) + ('none',)
DEFAULT = ('tensorboard',)
#: mmengine backend type -> --vis choice.
_BY_TYPE = {t: name for name, (t, _, _) in BACKENDS.items()}


class VisUnavailable(RuntimeError):
    """A visualiser was chosen whose package is not installed."""


def backends(choices, run_name: str | None = None, group: str | None = None) -> list[dict]:
    """The ``vis_backends`` list for ``choices`` (e.g. ``['tensorboard']``, ``['none']``).

    Args:
        choices: --vis values; ``'none'`` alone keeps only the local backend.
        run_name: Name of the run in W&B / MLflow (``<grid>/<run>/seed<k>``).
        group: W&B project / MLflow experiment (``vit-adapter-<profile>-<grid>``).
    """
    choices = list(dict.fromkeys(choices))
    if 'none' in choices and len(choices) > 1:
        raise ValueError(f'--vis none cannot be combined with {", ".join(c for c in choices if c != "none")}')
    out = [dict(LOCAL)]
    for name in choices:
        if name == 'none':
            continue
        if name not in BACKENDS:
            raise ValueError(f'--vis {name}: choose from {", ".join(CHOICES)}')
        b = dict(type=BACKENDS[name][0])
        if name == 'wandb':
            b['init_kwargs'] = dict(project=group or 'vit-adapter', name=run_name)
        elif name == 'mlflow':
            b.update(exp_name=group or 'vit-adapter', run_name=run_name)
        out.append(b)
    return out


def apply(cfg, choices, run_name: str | None = None, group: str | None = None) -> None:
    """Set ``cfg.vis_backends`` and ``cfg.visualizer.vis_backends`` (an mmengine ``Config``) to :func:`backends`."""
    vb = backends(choices, run_name, group)
    cfg.vis_backends = vb
    if cfg.get('visualizer') is not None:
        cfg.visualizer.vis_backends = vb


def missing(cfg) -> list[str]:
    """Messages for the visualisers ``cfg`` uses whose package is not installed (empty when all are)."""
    vb = (cfg.get('visualizer') or {}).get('vis_backends') or cfg.get('vis_backends') or []
    out = []
    for b in vb:
        name = _BY_TYPE.get(b.get('type') if isinstance(b, dict) else None)
        if name is None:
            continue
        _, module, package = BACKENDS[name]
        if importlib.util.find_spec(module) is None:
            out.append(f'the {name} visualiser ({BACKENDS[name][0]}) needs the {package} package, which is not '
                       f'installed: `.venv/bin/python -m pip install {package}` (or pick another with --vis '
                       f'{"|".join(CHOICES)})')
    return out

"""Official-layout checkpoints built from the official models' key layout (names and shapes), kept as data in
``data/official_layout.json`` (read from czczup/ViT-Adapter at the commit named in its ``source``)."""
import json
from functools import lru_cache
from pathlib import Path
from typing import Dict

import torch

LAYOUT_FILE = Path(__file__).with_name('data') / 'official_layout.json'


@lru_cache(maxsize=1)
def layouts() -> dict:
    return json.loads(LAYOUT_FILE.read_text())['models']


def official_state_dict(name: str, device: str = 'cpu', seed: int = 0) -> Dict[str, torch.Tensor]:
    """A random checkpoint of official model ``name`` (e.g. 'det_adapter_S'), keys prefixed 'backbone.'.

    BatchNorm variances are positive and ``num_batches_tracked`` is an integer scalar, as in a trained file;
    ``device='meta'`` gives shapes only (for the large models).
    """
    model = layouts()[name]
    gen = torch.Generator().manual_seed(seed)
    out = {}
    for key, shape in model['keys'].items():
        if device == 'meta':
            t = torch.empty(shape, device='meta', dtype=torch.long if key.endswith(
                ('num_batches_tracked', 'relative_position_index')) else torch.float32)
        elif key.endswith('num_batches_tracked'):
            t = torch.tensor(1000)
        elif key.endswith('relative_position_index'):
            t = torch.randint(0, 10, shape, generator=gen)
        elif key.endswith('running_var'):
            t = torch.rand(shape, generator=gen) + 0.5
        else:
            t = torch.randn(shape, generator=gen) * 0.1
        out['backbone.' + key] = t
    return out


def official_param_count(name: str) -> int:
    return layouts()[name]['params']

"""No code from a runs root runs: a malicious checkpoint (beside the old trust marker) or config text in a
manifest / config.py never executes in tables, figures, status or the notebook helpers (a canary file tells)."""
import json
import os
from pathlib import Path

import pytest
import torch

from tests.analysis.fakeruns import make_grid_N, tiny_backbone_config

OLD_MARKER = '.vit_adapter_trusted'  # what the suite used to trust; now meaningless


class _Payload:
    def __init__(self, canary):
        self.canary = str(canary)

    def __reduce__(self):
        return (os.system, (f'touch {self.canary}',))


def _evil_text(canary) -> str:
    """Config text that creates the canary when executed (Config.fromstring / fromfile would run it)."""
    return (f"_pwned = __import__('os').system('touch {canary}')\n"
            "model = dict(type='MaskRCNN', backbone=dict(type='ViTAdapter', arch='tiny', window_size=4, "
            "norm='BN', pretrained=None))\n")


@pytest.fixture
def evil_root(tmp_path, monkeypatch):
    """Grid N where N4/seed1 has a malicious iter_40.pth (with real backbone weights inside, so a loader that
    unpickles it would succeed) next to the old trust marker, and every manifest / config.py holds Python."""
    canary = tmp_path / 'canary'
    root = make_grid_N(tmp_path / 'runs')
    (root / OLD_MARKER).write_text('trusted\n')
    monkeypatch.setenv('VIT_ADAPTER_TRUSTED_DIRS', str(root))
    for man in root.glob('tiny/N/*/seed*/manifest.json'):
        data = json.loads(man.read_text())
        data['config'] = _evil_text(canary)
        man.write_text(json.dumps(data))
        (man.parent / 'config.py').write_text(_evil_text(canary))
        (man.parent / OLD_MARKER).write_text('trusted\n')
    d = root / 'tiny' / 'N' / 'N4' / 'seed1'
    cfg = tiny_backbone_config('full', 4)
    (d / 'config.json').write_text(json.dumps(cfg))
    from analysis.features import backbone_cfg, build_backbone
    sd = {f'backbone.{k}': v for k, v in build_backbone(backbone_cfg(cfg)).state_dict().items()}
    torch.save({'meta': {'iter': 40, 'evil': _Payload(canary)}, 'state_dict': sd}, d / 'iter_40.pth')
    (d / 'last_checkpoint').write_text(str(d / 'iter_40.pth'))
    return root, canary


def test_tables_never_execute_config_text(evil_root, tmp_path, capsys):
    from analysis.tables import main
    root, canary = evil_root
    assert main(['N', '--runs-root', str(root), '--out', str(tmp_path / 'out'), '--seeds', '2']) == 0
    assert not canary.exists()
    out = capsys.readouterr().out
    assert 'no config.json' in out and 'never executed' in out  # old-style runs are reported, not executed


def test_figures_refuse_malicious_checkpoint(evil_root, tmp_path):
    from analysis.collect import collect_grid
    from analysis.figures import write_figures
    root, canary = evil_root
    res = collect_grid('N', 'tiny', root, seeds=2)
    write_figures(res, tmp_path / 'figs', n_images=1, size=32)
    assert not canary.exists()
    failed = [w for w in res.warnings if 'N4/seed1: feature extraction failed' in w]
    assert failed and 'UnsafeCheckpointError' in failed[0] and 'system' in failed[0]


def test_features_and_notebook_helpers_refuse(evil_root):
    from analysis import explore
    from analysis import features as F
    from experiments.compat import UnsafeCheckpointError
    root, canary = evil_root
    ckpt = root / 'tiny' / 'N' / 'N4' / 'seed1' / 'iter_40.pth'
    with pytest.raises(UnsafeCheckpointError, match='system'):
        F.backbone_state_dict(ckpt)
    with pytest.raises(UnsafeCheckpointError):
        explore.fourier_analysis(checkpoint=str(ckpt), size=32)
    res = explore.load_grid('N', 'tiny', str(root))
    explore.tables_markdown(res)
    with pytest.raises(UnsafeCheckpointError):
        explore.fourier_analysis(res, size=32)
    with pytest.raises(TypeError, match='never config text'):
        F.backbone_cfg(_evil_text(canary))
    assert not canary.exists()


def test_status_never_executes(evil_root, capsys):
    from experiments import status
    root, canary = evil_root
    assert status.main(['N', '--runs-root', str(root)]) == 0
    assert 'N4' in capsys.readouterr().out and not canary.exists()


def test_launch_never_executes_what_a_runs_root_holds(evil_root, capsys):
    """The launcher reads the planted manifests and config.py (a relaunch compares them with the suite's config):
    nothing of them runs, whatever it decides about the runs."""
    from experiments import launch
    root, canary = evil_root
    launch.main(['N', '--dry-run', '--runs-root', str(root)])
    capsys.readouterr()
    assert not canary.exists()


def test_config_dict_cannot_name_callables(tmp_path):
    """A data-only config is built through the registries only: a ``type`` naming a Python callable is refused."""
    from analysis.model_summary import backbone_gmacs, model_size_from_config
    canary = tmp_path / 'canary'
    for cfg in (dict(model=dict(type='os.system', command=f'touch {canary}')),
                dict(model=dict(type='MaskRCNN', backbone=dict(type='posix.system', command=f'touch {canary}'))),
                dict(model=dict(type='MaskRCNN', _scope_='os', backbone=dict(type='ViTAdapter')))):
        params, source = model_size_from_config(cfg, 'det')
        assert 'whole model failed' in source or 'not available' in source, source
        assert 'not a registered class name' in source or "_scope_ = 'os'" in source, source
    gm, source = backbone_gmacs(dict(model=dict(backbone=dict(type='os.system', command=f'touch {canary}'))), 32)
    assert gm != gm and 'not a registered class name' in source
    assert not canary.exists()

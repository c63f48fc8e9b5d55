"""Visualisers: TensorBoard event files from a tiny run; switching visualisers keeps (and resumes) a run."""
import importlib.util
import json

import pytest

from experiments import launch
from experiments import rundir as rd
from experiments import vis as vz
from experiments.grids import get_grid

from .conftest import fast_options

SPEC = get_grid('N').runs(1, only=['N2'])[0]


def _types(rdir):
    cfg = rd.read_config(rdir)
    return [b['type'] for b in cfg['visualizer']['vis_backends']], [b['type'] for b in cfg['vis_backends']]


def test_tiny_run_writes_tensorboard_loss_and_a_vis_switch_is_accepted(tmp_path, synthetic_data):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    extra = launch.parse_cfg_options(fast_options(iters=4, ckpt=4, val_images=4))
    rdir, status = launch.prepare_run(SPEC, 'tiny', tmp_path, extra, 'test', dry_run=False)
    assert status == 'new'
    assert _types(rdir) == (['LocalVisBackend', 'TensorboardVisBackend'],) * 2  # TensorBoard on by default
    [(_, rc, _)] = launch._run_local([rdir])
    assert rc == 0 and rd.read_state(rdir)['state'] == 'finished'
    events = sorted(rdir.glob('*/vis_data/events.out.tfevents.*'))
    assert events, f'no TensorBoard event file under {rdir}'
    acc = EventAccumulator(str(events[0].parent)).Reload()
    assert 'loss' in acc.Tags()['scalars']
    loss = acc.Scalars('loss')
    assert [e.step for e in loss] == [2, 4] and all(e.value > 0 for e in loss)  # logger interval 2, 4 iterations
    # relaunching the finished run with the visualiser switched: the same run (done), not "a different run"
    again, status = launch.prepare_run(SPEC, 'tiny', tmp_path, extra, 'test', dry_run=False, vis=['none'])
    assert again == rdir and status == 'done'


def test_switching_visualisers_resumes_the_same_run(tmp_path, synthetic_data):
    rdir, status = launch.prepare_run(SPEC, 'tiny', tmp_path, {}, 'test', dry_run=False, vis=['none'])
    assert status == 'new' and _types(rdir) == (['LocalVisBackend'],) * 2
    identity = json.loads((rdir / rd.MANIFEST).read_text())['identity']
    for vis, extra in ((['tensorboard'], {}), (None, {}),
                       # the documented --cfg-options route: not part of the identity either
                       (['none'], {'visualizer.vis_backends': [dict(type='LocalVisBackend')]})):
        again, status = launch.prepare_run(SPEC, 'tiny', tmp_path, extra, 'test', dry_run=False, vis=vis)
        assert again == rdir and status == 'resume', (vis, extra)
    assert json.loads((rdir / rd.MANIFEST).read_text())['identity'] == identity
    # the job trains what the last launch asked for (config.py is replaced; the identity is not touched)
    assert 'TensorboardVisBackend' not in (rdir / rd.CONFIG).read_text()
    # a real difference (not a visualiser) is still another run
    with pytest.raises(launch.LaunchError, match='different overrides'):
        launch.prepare_run(SPEC, 'tiny', tmp_path, {'train_cfg.max_iters': 3}, 'test', dry_run=False)


def test_wandb_and_mlflow_backends(monkeypatch):
    vb = vz.backends(['tensorboard', 'wandb', 'mlflow'], run_name='N/N2/seed0', group='vit-adapter-tiny-N')
    assert [b['type'] for b in vb] == ['LocalVisBackend', 'TensorboardVisBackend', 'WandbVisBackend',
                                       'MLflowVisBackend']
    assert vb[2]['init_kwargs'] == dict(project='vit-adapter-tiny-N', name='N/N2/seed0')
    assert vb[3]['exp_name'] == 'vit-adapter-tiny-N' and vb[3]['run_name'] == 'N/N2/seed0'


@pytest.mark.parametrize('choice', ['wandb', 'mlflow', 'tensorboard'])
def test_a_visualiser_without_its_package_is_a_clear_error(choice, tmp_path, capsys, monkeypatch, synthetic_data):
    real = importlib.util.find_spec
    monkeypatch.setattr(vz.importlib.util, 'find_spec', lambda name, *a: None if name == choice else real(name, *a))
    rc = launch.main(['N', '--runs', 'N2', '--vis', choice, '--runs-root', str(tmp_path)])
    err = capsys.readouterr().err
    assert rc == 2 and f'pip install {choice}' in err and 'Traceback' not in err
    assert not (tmp_path / 'tiny' / 'N' / 'N2').exists()  # nothing created


def test_vis_none_with_another_is_a_usage_error(tmp_path, capsys, synthetic_data):
    rc = launch.main(['N', '--runs', 'N2', '--vis', 'none', 'tensorboard', '--runs-root', str(tmp_path)])
    assert rc == 2 and '--vis none cannot be combined with tensorboard' in capsys.readouterr().err

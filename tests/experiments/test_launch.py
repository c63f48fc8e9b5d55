"""Launcher behaviour that needs no training: dry runs, the run-directory contract, clear errors."""
import json

import pytest

from experiments import launch
from experiments import rundir as rd
from experiments.grids import get_grid


def test_dry_run_prints_runs_and_sbatch_and_creates_nothing(tmp_path, capsys):
    rc = launch.main(['components', '--profile', 'paper', '--cluster', 'slurm', '--dry-run', '--runs-root',
                      str(tmp_path), '--partition', 'gpu', '--account', 'vit', '--qos', 'high', '--time', '600',
                      '--constraint', 'a100', '--mem', '200G', '--sbatch', 'exclude=node07'])
    out = capsys.readouterr().out
    assert rc == 0 and 'nothing submitted' in out
    for run in ('baseline', 'spm_add', 'spm_injector', 'full'):
        assert run in out
    for flag in ('--partition=gpu', '--account=vit', '--qos=high', '--time=600', '--gpus-per-node=8',
                 '--ntasks-per-node=8', '--constraint=a100', '--mem=200G', '--exclude=node07', '--signal=USR2'):
        assert flag in out, flag
    assert not any(tmp_path.iterdir())


def test_paper_profile_without_dataset_is_a_clear_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(launch.REAL_DATA, 'det', (tmp_path / 'coco', ('train2017',), 'COCO into data/coco'))
    rc = launch.main(['N', '--profile', 'paper', '--runs-root', str(tmp_path / 'runs')])
    err = capsys.readouterr().err
    assert rc == 2 and str(tmp_path / 'coco' / 'train2017') in err and 'Put COCO into data/coco' in err
    assert not (tmp_path / 'runs').exists()


def test_run_dir_contract_mismatch_and_skip(tmp_path, synthetic_data):
    spec = get_grid('N').runs(1, only=['N2'])[0]
    rdir, status = launch.prepare_run(spec, 'tiny', tmp_path, {'train_cfg.max_iters': 10}, 'cmd', dry_run=False)
    assert status == 'new' and rdir == tmp_path.resolve() / 'tiny' / 'N' / 'N2' / 'seed0'
    manifest = json.loads((rdir / rd.MANIFEST).read_text())
    for key in ('grid', 'run', 'seed', 'profile', 'task', 'overrides', 'config', 'git_commit', 'versions', 'command',
                'created'):
        assert key in manifest
    assert manifest['overrides']['model.backbone.n_interactions'] == 2
    assert "max_iters=10" in manifest['config'] and not (rdir / '.vit_adapter_trusted').exists()
    data = rd.read_config(rdir)  # the data-only copy analysis reads
    assert data['train_cfg']['max_iters'] == 10 and data['model']['backbone']['n_interactions'] == 2
    assert rd.read_state(rdir)['state'] == 'queued'
    # The same request again: resume (nothing rewritten).
    before = (rdir / rd.MANIFEST).read_text()
    before_cfg = (rdir / rd.CONFIG).read_text()
    assert launch.prepare_run(spec, 'tiny', tmp_path, {'train_cfg.max_iters': 10}, 'cmd2', False)[1] == 'resume'
    assert (rdir / rd.MANIFEST).read_text() == before
    # A config.py changed after the launcher wrote it is never run: the relaunch replaces it by the resolved config.
    (rdir / rd.CONFIG).write_text(before_cfg + f"\n_x = __import__('os').system('touch {tmp_path / 'canary'}')\n")
    (rdir / rd.CONFIG_JSON).unlink()  # a run made before config.json existed gets one
    assert launch.prepare_run(spec, 'tiny', tmp_path, {'train_cfg.max_iters': 10}, 'cmd2', False)[1] == 'resume'
    assert (rdir / rd.CONFIG).read_text() == before_cfg and rd.read_config(rdir) == data
    assert not (tmp_path / 'canary').exists()
    # A different config in the same place: an error naming the fix.
    with pytest.raises(launch.LaunchError, match='--runs-root'):
        launch.prepare_run(spec, 'tiny', tmp_path, {'train_cfg.max_iters': 11}, 'cmd', False)
    # Finished runs are skipped.
    (rdir / rd.FINAL_METRICS).write_text('{"coco/bbox_mAP": 0.5}')
    assert launch.prepare_run(spec, 'tiny', tmp_path, {'train_cfg.max_iters': 10}, 'cmd', False)[1] == 'done'


def test_status_lists_every_cell(tmp_path, capsys, synthetic_data):
    from experiments import status
    spec = get_grid('N').runs(1, only=['N1'])[0]
    rdir, _ = launch.prepare_run(spec, 'tiny', tmp_path, {}, 'cmd', dry_run=False)
    rd.write_state(rdir, 'failed', error='RuntimeError: boom')
    assert status.main(['N', '--runs-root', str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert 'N1' in out and 'failed' in out and 'boom' in out and out.count('missing') >= 4


def test_tiny_pretrain_cells_load_synthesised_checkpoints(tmp_path, synthetic_data):
    """The tiny pretrain grid exercises the backbone's checkpoint loader with a file in each source format."""
    import torch
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmdet.registry import MODELS
    specs = {s.name: s for s in get_grid('pretrain').runs(1)}
    for name, fmt in (('deit_in1k', 'deit'), ('augreg_in22k', 'augreg'), ('uniperceiver_mm', 'uniperceiver'),
                      ('dinov2_lvd142m', 'dinov2'), ('mae_in1k', 'mae'), ('eva02_in21k', 'eva02')):
        ext = {'augreg': '.npz', 'eva02': '.pt'}.get(fmt, '.pth')
        rdir, _ = launch.prepare_run(specs[name], 'tiny', tmp_path, {}, 'cmd', dry_run=False)
        manifest = json.loads((rdir / rd.MANIFEST).read_text())
        path = manifest['overrides']['model.backbone.pretrained']
        assert path.endswith(ext) and any('synthesised' in n for n in manifest['notes'])
        cfg = Config.fromfile(str(rdir / rd.CONFIG))
        init_default_scope('mmdet')
        model = MODELS.build(cfg.model)
        model.init_weights()
        from experiments.pretrain_tiny import synthesize
        _, sd = synthesize(fmt, tmp_path / 'again', dict(cfg.model.backbone))
        own = model.backbone.vit.state_dict()
        assert all(torch.allclose(own[k], v, atol=1e-6) for k, v in sd.items())
        assert model.backbone.vit.post_norm == (fmt == 'uniperceiver') and model.backbone.vit.rope == (fmt == 'eva02')


def test_resume_refuses_malicious_checkpoint(tmp_path, synthetic_data, monkeypatch):
    """A run directory (with the old trust marker) whose last checkpoint is a malicious pickle: the job refuses to
    load it, records why, and the pickle never runs."""
    import os

    import torch

    from experiments import job
    from experiments.compat import UnsafeCheckpointError
    canary = tmp_path / 'canary'

    class Payload:
        def __reduce__(self):
            return (os.system, (f'touch {canary}',))

    spec = get_grid('N').runs(1, only=['N2'])[0]
    rdir, _ = launch.prepare_run(spec, 'tiny', tmp_path, {'train_cfg.max_iters': 4}, 'cmd', dry_run=False)
    (rdir / '.vit_adapter_trusted').write_text('trusted\n')
    monkeypatch.setenv('VIT_ADAPTER_TRUSTED_DIRS', str(tmp_path))
    torch.save({'meta': Payload(), 'state_dict': {}}, rdir / 'iter_2.pth')
    (rdir / 'last_checkpoint').write_text(str(rdir / 'iter_2.pth'))
    assert launch.prepare_run(spec, 'tiny', tmp_path, {'train_cfg.max_iters': 4}, 'cmd', dry_run=False)[1] == 'resume'
    monkeypatch.chdir(tmp_path)  # job.train changes into the repository; undone after the test
    with pytest.raises(UnsafeCheckpointError, match='system'):
        job.train(rdir)
    assert not canary.exists()
    state = rd.read_state(rdir)
    assert state['state'] == 'failed' and 'UnsafeCheckpointError' in state['error']


def test_job_refuses_config_changed_after_launch(tmp_path, synthetic_data):
    """The launcher hands the job the SHA-256 of the config.py it verified: a file swapped in later never runs."""
    from experiments import job
    canary = tmp_path / 'canary'
    spec = get_grid('N').runs(1, only=['N2'])[0]
    rdir, _ = launch.prepare_run(spec, 'tiny', tmp_path, {'train_cfg.max_iters': 4}, 'cmd', dry_run=False)
    sha = rd.config_sha256(rdir)
    (rdir / rd.CONFIG).write_text(f"_x = __import__('os').system('touch {canary}')\n")
    with pytest.raises(RuntimeError, match='changed after the launcher verified it'):
        job.train(rdir, config_sha256=sha)
    assert not canary.exists() and 'changed after the launcher' in rd.read_state(rdir)['error']


# --------------------------------------------------------------------------------------------- failed submission
def _launch_slurm(runs_root, path):
    """``experiments.launch N --runs N2 --cluster slurm`` as a subprocess with PATH = ``path`` (only)."""
    import os
    import subprocess
    import sys
    env = dict(os.environ, PATH=str(path))
    env.pop('SLURM_CONF', None)
    return subprocess.run([sys.executable, '-m', 'experiments.launch', 'N', '--runs', 'N2', '--cluster', 'slurm',
                           '--runs-root', str(runs_root)], cwd=rd.REPO_ROOT, capture_output=True, text=True, env=env,
                          timeout=600)


def _fake_sbatch(bindir, script):
    """A fake ``sbatch`` running ``script``, next to a fake ``srun`` (submitit wants both; srun never runs here)."""
    bindir.mkdir(exist_ok=True)
    for name, text in (('sbatch', script), ('srun', 'exit 1\n')):
        (bindir / name).write_text('#!/bin/sh\n' + text)
        (bindir / name).chmod(0o755)


def test_submission_without_sbatch_marks_runs_not_submitted(tmp_path, synthetic_data):
    empty = tmp_path / 'bin'
    empty.mkdir()  # PATH without sbatch
    p = _launch_slurm(tmp_path / 'runs', empty)
    assert p.returncode == 1, (p.stdout, p.stderr)
    assert 'Traceback' not in p.stderr
    assert 'error: sbatch and srun are not on PATH' in p.stderr and 'make slurm-up' in p.stderr
    state = rd.read_state(rd.run_dir(tmp_path / 'runs', 'tiny', 'N', 'N2', 0))
    assert state['state'] == 'not submitted' and 'sbatch and srun are not on PATH' in state['error']
    assert state['job_id'] is None


def test_failed_sbatch_marks_runs_not_submitted_and_a_relaunch_submits_them(tmp_path, synthetic_data):
    bindir = tmp_path / 'bin'
    _fake_sbatch(bindir, 'echo "sbatch: error: Batch job submission failed: Unable to contact slurm controller '
                         '(connect failure)" >&2\nexit 1\n')
    p = _launch_slurm(tmp_path / 'runs', bindir)
    assert p.returncode == 1, (p.stdout, p.stderr)
    assert 'Traceback' not in p.stderr
    assert 'error: the SLURM controller did not answer' in p.stderr and 'scontrol ping' in p.stderr
    rdir = rd.run_dir(tmp_path / 'runs', 'tiny', 'N', 'N2', 0)
    state = rd.read_state(rdir)
    assert state['state'] == 'not submitted' and 'Unable to contact slurm controller' in state['error']
    # sbatch works again: the same command submits the run ('not submitted' is resumable, nothing else to do)
    _fake_sbatch(bindir, 'echo "Submitted batch job 4242"\n')
    p = _launch_slurm(tmp_path / 'runs', bindir)
    assert p.returncode == 0, (p.stdout, p.stderr)
    assert 'N2/seed0=4242' in p.stdout
    state = rd.read_state(rdir)
    assert state['state'] == 'queued' and state['job_id'] == '4242' and state['error'] is None


def test_submission_failure_messages_name_cause_and_fix(monkeypatch):
    from experiments import cluster as cl
    monkeypatch.setattr(cl.shutil, 'which', lambda name: f'/usr/bin/{name}')
    msg = cl.submission_failure(RuntimeError('sbatch: error: invalid partition specified: gpux'), 'slurm')
    assert 'invalid partition specified: gpux' in msg and '--partition' in msg and 'relaunch' in msg
    msg = cl.submission_failure(RuntimeError('sbatch: error: Unable to contact slurm controller'), 'slurm')
    assert 'controller did not answer' in msg and 'scontrol ping' in msg
    monkeypatch.setattr(cl.shutil, 'which', lambda name: None if name == 'srun' else f'/usr/bin/{name}')
    msg = cl.submission_failure(RuntimeError('Could not detect "srun"'), 'slurm')
    assert msg.startswith('srun is not on PATH') and 'make slurm-up' in msg


def test_tiny_beit_cell_loads_its_synthesised_checkpoint(tmp_path, synthetic_data):
    """The sota grid's tiny BEiT cell: a synthesised BEiT-format file (14x14-grid tables, learned gammas, class
    token) loads into its backbone with nothing missing; every tensor but the resized tables is the file's."""
    import torch
    from mmengine.config import Config

    from adapter import build_backbone
    from experiments.pretrain_tiny import synthesize
    spec = get_grid('sota').runs(1, only=['mask2former_beit_adapter_L'])[0]
    rdir, _ = launch.prepare_run(spec, 'tiny', tmp_path, {}, 'cmd', dry_run=False)
    manifest = json.loads((rdir / rd.MANIFEST).read_text())
    path = manifest['overrides']['model.backbone.pretrained']
    assert path.endswith('.pth') and any('synthesised random beit' in n for n in manifest['notes'])
    bb = {k: v for k, v in Config.fromfile(str(rdir / rd.CONFIG)).model.backbone.to_dict().items() if k != 'type'}
    model = build_backbone(dict(bb, type='ViTAdapter', pretrained=None))
    rep = model.load_pretrained(path)
    assert rep.format == 'beit' and rep.missing == [] and rep.unexpected == []
    _, sd = synthesize('beit', tmp_path / 'again', dict(bb))
    own = model.vit.state_dict()
    assert set(own) - set(sd) == {f'blocks.{i}.attn.rel_pos_table' for i in range(12)}
    assert all(torch.equal(own[k], v) for k, v in sd.items())
    assert own['blocks.0.attn.rel_pos_table'].shape == (2, 15, 15) and own['cls_token'].shape == (1, 1, 64)

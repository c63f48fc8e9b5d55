"""Launch a grid: one job per (run, seed), on this machine, through submitit on SLURM, or in-process for debugging.

Usage:
    python -m experiments.launch GRID [--profile tiny|paper] [--cluster local|slurm|debug] [--seeds K]
                                      [--runs RUN ...] [--dry-run] [--runs-root DIR] [--cfg-options K=V ...]
                                      [--vis tensorboard|wandb|mlflow|none ...]
                                      [SLURM options: --partition --account --qos --time --nodes --gpus-per-node
                                       --ntasks-per-node --cpus-per-task --mem --constraint --sbatch KEY=VALUE]

Examples:
    python -m experiments.launch N                                  # tiny profile, 5 runs, one after another
    python -m experiments.launch components --profile paper --cluster slurm --partition gpu --account vit \\
        --time 4320 --gpus-per-node 8 --cpus-per-task 10 --sbatch exclude=node07
    python -m experiments.launch main-det --profile paper --cluster slurm --dry-run

Each run lives in ``$RUNS_ROOT/<profile>/<grid>/<run>/seed<k>/`` (see ``experiments/rundir.py``): finished runs
are skipped, unfinished ones resume from their last checkpoint, and a run directory whose manifest differs from
the new configuration is an error (pick a new ``--runs-root`` or delete the directory) -- nothing is overwritten.
Each manifest also records the environment (``pip freeze``, GPU/CUDA/driver; ``experiments/environment.py``), and
SLURM jobs run from a snapshot of the code taken at submission (``experiments/snapshot.py``).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

from experiments import cluster as cl
from experiments import rundir as rd
from experiments import vis as vz
from experiments.grids import GRID_NAMES, PROFILES, RunSpec, get_grid
from experiments.progressbar import RunProgressBar

SYNTHETIC_ROOT = rd.REPO_ROOT / 'data' / 'synthetic'
REAL_DATA = {
    'det': (rd.REPO_ROOT / 'data' / 'coco', ('train2017', 'val2017', 'annotations/instances_train2017.json',
                                             'annotations/instances_val2017.json'),
            'COCO 2017: data/coco/{train2017,val2017}/ and data/coco/annotations/instances_{train,val}2017.json '
            '(https://cocodataset.org/#download)'),
    'seg': (rd.REPO_ROOT / 'data' / 'ade' / 'ADEChallengeData2016',
            ('images/training', 'images/validation', 'annotations/training', 'annotations/validation'),
            'ADE20K SceneParsing: unpack ADEChallengeData2016.zip into data/ade/ so that '
            'data/ade/ADEChallengeData2016/{images,annotations}/{training,validation}/ exist '
            '(http://sceneparsing.csail.mit.edu)'),
}


# OpenMP threads that spin while waiting make small CPU ops 10-20x slower when the cores are shared
# (measured: 11 s vs 0.6 s per tiny Mask R-CNN iteration at load 7 on 2 cores); passive waiting avoids that.
CPU_ENV = {'OMP_WAIT_POLICY': 'PASSIVE'}


class LaunchError(RuntimeError):
    """A problem the user has to fix before anything is submitted."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog='python -m experiments.launch', description=__doc__.split('\n')[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('grid', choices=GRID_NAMES)
    parser.add_argument('--profile', choices=PROFILES, default='tiny')
    parser.add_argument('--cluster', choices=cl.CLUSTERS, default='local')
    parser.add_argument('--seeds', type=int, default=1, help='run seeds 0..K-1 (default 1)')
    parser.add_argument('--runs', nargs='+', metavar='RUN', help='only these runs of the grid')
    parser.add_argument('--runs-root', default=os.environ.get('RUNS_ROOT', str(rd.DEFAULT_RUNS_ROOT)),
                        help='root of the run directories (default $RUNS_ROOT or runs/)')
    parser.add_argument('--dry-run', action='store_true', help='print runs and sbatch settings, submit nothing')
    parser.add_argument('--cfg-options', nargs='+', default=[], metavar='KEY=VALUE',
                        help='mmengine config overrides for every run (recorded in the manifest)')
    parser.add_argument('--vis', nargs='+', choices=vz.CHOICES, default=None, metavar='{' + ','.join(vz.CHOICES) + '}',
                        help='visualisers besides the local scalars.json (default: the configs\', tensorboard); not '
                        'part of a run\'s identity: switching them keeps (and resumes) a run')
    parser.add_argument('--wait', action=argparse.BooleanOptionalAction, default=None,
                        help='wait for SLURM jobs and print their metrics (default: wait except on slurm)')
    cl.add_slurm_arguments(parser)
    return parser


# --------------------------------------------------------------------------------------------- configs
def parse_cfg_options(items: list[str]) -> dict:
    from mmengine.config import DictAction
    ns = argparse.Namespace()
    DictAction(option_strings=['--cfg-options'], dest='opts')(None, ns, items)
    return dict(ns.opts)


def _synthetic_pretrained(fmt: str, cfg, run_root: Path) -> str | None:
    """Path of a synthesised tiny checkpoint in ``fmt`` (experiments.pretrain_tiny), or None if not possible."""
    from experiments import pretrain_tiny
    if fmt not in pretrain_tiny.FORMATS:
        return None
    bb = dict(cfg.model.backbone)
    tag = f'{bb.get("arch")}_w{bb.get("embed_dim", "")}_p{bb.get("pretrain_size")}'
    out = run_root / 'pretrained' / f'synthetic_{fmt}_{tag}{pretrain_tiny.SUFFIX[fmt]}'
    if not out.exists():
        pretrain_tiny.synthesize(fmt, out, bb, seed=0)
    return str(out)


def build_config(spec: RunSpec, profile: str, extra: dict, runs_root: Path, dry_run: bool = False):
    """The frozen mmengine ``Config`` of one run, and notes for the manifest."""
    from mmengine.config import Config

    from experiments.models import rewire
    cfg_file = spec.config_file(profile)
    cfg = Config.fromfile(str(cfg_file), import_custom_modules=False)
    notes = [spec.notes[profile]] if profile in spec.notes else []
    overrides = spec.resolved_overrides(profile)
    pre = overrides.get('model.backbone.pretrained')
    if isinstance(pre, str) and pre.startswith('@synthetic:'):
        fmt = pre.split(':', 1)[1]
        cfg.merge_from_dict({k: v for k, v in overrides.items() if k != 'model.backbone.pretrained'})
        path = None if dry_run else _synthetic_pretrained(fmt, cfg, runs_root / profile)
        overrides['model.backbone.pretrained'] = path
        if dry_run:
            pass
        elif path is None:
            notes.append(f'no {fmt} checkpoint can be synthesised (experiments/pretrain_tiny.py), so this tiny run '
                         'trains from scratch (loader path not exercised)')
        else:
            notes.append(f'pretrained: synthesised random {fmt}-format checkpoint {path} (loader path only)')
    cfg.merge_from_dict(overrides)
    cfg.merge_from_dict(extra)
    # A backbone override (the tiny grids' widths, --cfg-options model.backbone.arch=...) reaches the neck / heads.
    cfg.model = rewire(cfg.model.to_dict())
    deterministic = cfg.get('randomness', {}).get('deterministic', profile != 'paper')
    cfg.randomness = dict(seed=spec.seed, deterministic=deterministic)
    return cfg, overrides, notes


def grid_axes(grid, profile: str, runs_root: Path) -> set[str]:
    """The config keys a grid varies: the leaves of the resolved configs (data) that are not equal in every run of
    the grid (a key set in some runs only counts too)."""
    flats = [rd.flatten(rd.json_data(build_config(spec, profile, {}, runs_root, dry_run=True)[0].to_dict()))
             for spec in grid.runs(1)]
    keys = set().union(*flats)
    return {k for k in keys if any(f.get(k, _ABSENT) != flats[0].get(k, _ABSENT) for f in flats[1:])}


_ABSENT = object()


def check_cfg_options(extra: dict, axes: set[str], grid_name: str) -> None:
    """Refuse ``--cfg-options`` keys that touch a key the grid varies (``grid_axes``): every run would then train
    the same value while the tables report the grid's values."""
    bad = sorted({k for k in extra for a in axes if k == a or a.startswith(k + '.') or k.startswith(a + '.')})
    if bad:
        touched = sorted(a for a in axes if any(a == k or a.startswith(k + '.') or k.startswith(a + '.') for k in bad))
        raise LaunchError(f'--cfg-options {", ".join(bad)}: grid {grid_name!r} varies '
                          f'{", ".join(touched[:6])}{" ..." if len(touched) > 6 else ""} across its runs; overriding '
                          f'it would train every run the same while the tables report the grid\'s values. Launch the '
                          f'runs you want with --runs, or change the grid in experiments/grids.py')


def _versions() -> dict:
    import importlib.metadata as md
    out = {'python': platform.python_version()}
    for pkg in ('torch', 'mmengine', 'mmcv', 'mmdet', 'mmsegmentation', 'submitit', 'numpy'):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            out[pkg] = None
    return out


# --------------------------------------------------------------------------------------------- data
def ensure_data(profile: str, tasks: set[str]) -> None:
    """Generate the synthetic dataset (tiny) or check the real datasets exist (paper)."""
    if profile == 'tiny':
        from experiments.synthetic import ensure
        ensure(SYNTHETIC_ROOT)
        return
    missing = []
    for task in sorted(tasks):
        root, needed, how = REAL_DATA[task]
        absent = [p for p in needed if not (root / p).exists()]
        if absent:
            missing.append(f'- {task}: missing {", ".join(str(root / p) for p in absent)}.\n  Put {how}')
    if missing:
        raise LaunchError('the paper profile needs the real datasets:\n' + '\n'.join(missing) +
                          '\n(or run the tiny profile on the synthetic data: --profile tiny)')


def check_pretrained(cfg, profile: str) -> None:
    pre = cfg.model.backbone.get('pretrained')
    if profile == 'paper' and pre and not (rd.REPO_ROOT / pre).exists() and not Path(pre).exists():
        raise LaunchError(f'pre-trained weights {pre} not found: download them (see experiments/README.md, '
                          f'"Pre-trained weights") and put them at {rd.REPO_ROOT / pre}')


# --------------------------------------------------------------------------------------------- runs
def prepare_run(spec: RunSpec, profile: str, runs_root: Path, extra: dict, command: str,
                dry_run: bool, vis: list[str] | None = None) -> tuple[Path, str]:
    """Create (or check) the run directory; returns (dir, status) with status 'done' | 'new' | 'resume'.

    ``vis``: the visualisers (``--vis``; None keeps the configs' default), not part of the run's identity.
    """
    cfg, overrides, notes = build_config(spec, profile, extra, runs_root, dry_run)
    _apply_vis(cfg, vis, spec, profile)
    try:
        check_pretrained(cfg, profile)
        check_vis(cfg)
    except LaunchError as err:
        if not dry_run:
            raise
        print(f'warning: {err}', file=sys.stderr)
    text = cfg.pretty_text
    rdir = rd.run_dir(runs_root, profile, spec.grid, spec.name, spec.seed)
    config_data = rd.json_data(cfg.to_dict())
    code = rd.code_state()
    manifest = dict(grid=spec.grid, run=spec.name, seed=spec.seed, profile=profile, task=spec.task,
                    overrides=dict(overrides, **extra), config=text, config_file=str(spec.config_file(profile)),
                    config_hash=rd.config_hash(config_data), code=code, identity=rd.identity(config_data, code),
                    notes=notes, git_commit=code['commit'] and code['commit'] + ('-dirty' if code['dirty'] else ''),
                    versions=_versions(), command=command, created=rd.now(), vis=_vis_names(cfg),
                    environment=_environment())
    old = rd.read_json(rdir / rd.MANIFEST)
    if old is not None:
        new = json.loads(json.dumps(manifest, default=str))
        keys = rd.IDENTITY_KEYS if 'config_hash' not in old else \
            tuple(k for k in rd.IDENTITY_KEYS if k != 'config') + ('config_hash',)  # older runs: the config text
        old_config = rd.read_config(rdir)
        if 'config_hash' in old and old_config is not None:  # the hash by today's rule, from the run's own data
            old = dict(old, config_hash=rd.config_hash(old_config))
        diff = rd.manifest_mismatch(_without_excluded(old), _without_excluded(new), keys)
        if diff:
            raise LaunchError(
                f'{rdir} holds a run with a different {", ".join(diff)} than the one requested now. Nothing is '
                f'overwritten: pass another --runs-root, or delete {rdir} if that run is no longer wanted.')
        if rd.is_finished(rdir):
            return rdir, 'done'
        status = _busy(rdir)
        if status:
            return rdir, status
        if 'code' in old and (old['code'] or {}).get('code_sha256') != code['code_sha256']:
            raise LaunchError(
                f'{rdir} was started with {rd.describe_code(old["code"])} and the code is now '
                f'{rd.describe_code(code)}: resuming would train one run with two codes. Finish it with the code it '
                f'started with (git checkout {str(old["code"].get("commit"))[:10]}, same uncommitted changes), or '
                f'delete {rdir} to run it again with the current code.')
        # The job executes config.py: it must be the config resolved here from experiments/configs (the same run, the
        # manifest matches), not whatever a (shared) runs root holds, so a changed file is replaced, never run. (Runs
        # started before this check have mmengine's runtime dump there, which is replaced the same way.)
        cfg_py = rdir / rd.CONFIG
        if not dry_run and (not cfg_py.is_file() or cfg_py.read_text() != text):
            print(f'note: {cfg_py} differed from the config resolved now from experiments/configs; replaced by it '
                  f'(the old file was not executed)', file=sys.stderr)
            rd.write_config_py(rdir, text)
        if not dry_run and rd.read_config(rdir) != config_data:  # missing (older run) or changed
            rd.write_config_json(rdir, cfg)
        return rdir, 'resume'
    if not dry_run:
        rdir.mkdir(parents=True, exist_ok=True)
        rd.write_config_py(rdir, text)
        rd.write_config_json(rdir, cfg)
        rd.write_json(rdir / rd.MANIFEST, manifest)
        rd.write_state(rdir, 'queued')
    return rdir, 'new'


def _apply_vis(cfg, vis: list[str] | None, spec: RunSpec, profile: str) -> None:
    """Set the visualisers of ``cfg`` from ``--vis`` (None: keep the configs' default)."""
    if vis:
        try:
            vz.apply(cfg, vis, run_name=f'{spec.grid}/{spec.name}/seed{spec.seed}',
                     group=f'vit-adapter-{profile}-{spec.grid}')
        except ValueError as err:
            raise LaunchError(str(err)) from None


def check_vis(cfg) -> None:
    """A chosen visualiser whose package is missing: an error naming the pip install, before anything runs."""
    problems = vz.missing(cfg)
    if problems:
        raise LaunchError('; '.join(problems))


def _vis_names(cfg) -> list[str]:
    vb = (cfg.get('visualizer') or {}).get('vis_backends') or cfg.get('vis_backends') or []
    return [b.get('type') for b in vb if isinstance(b, dict)]


def _environment() -> dict:
    """``pip freeze`` and GPU/CUDA/driver for the manifest (recorded, not part of the identity)."""
    from experiments.environment import environment
    return environment()


def _without_excluded(manifest: dict) -> dict:
    """``manifest`` with the ``overrides`` of keys outside a run's identity (``rundir.IDENTITY_EXCLUDED``:
    visualiser, log level, ...) left out, so that ``--cfg-options visualizer...`` does not make it another run."""
    ov = manifest.get('overrides')
    if not isinstance(ov, dict):
        return manifest
    return dict(manifest, overrides={k: v for k, v in ov.items() if k.split('.', 1)[0] not in rd.IDENTITY_EXCLUDED})


def _busy(rdir: Path) -> str | None:
    """'locked' when a live process trains ``rdir`` now, 'submitted' when a SLURM job for it is still queued or
    running (said on stderr, with who); None when the run may be started."""
    holder, alive = rd.lock_holder(rdir)
    if alive:
        print(f'note: {rdir} is being trained by {rd.describe_holder(holder)}; skipped (not started twice)',
              file=sys.stderr)
        return 'locked'
    info = rd.read_run(rdir)
    st = info.state_file or {}
    if info.state in ('queued', 'running') and st.get('scheduler') == 'slurm' and st.get('job_id') and \
            rd.slurm_job_alive(st['job_id'], None):
        print(f'note: {rdir} is already submitted as SLURM job {st["job_id"]} ({info.state}); skipped',
              file=sys.stderr)
        return 'submitted'
    return None


#: Environment variable naming the run folder in the job process and everything it starts (DataLoader workers), so
#: that what belongs to a run can be found (and the tests check nothing is left behind).
RUN_ENV = 'VIT_ADAPTER_RUN_DIR'


def _run_local(rdirs: list[Path]) -> list[tuple[Path, int, float]]:
    """Train each run folder in a ``python -m experiments.job`` subprocess, one after another.

    Returns (folder, exit code, seconds) per run; exit code :data:`experiments.rundir.LOCKED_EXIT` means another
    live process trains that folder (skipped). Ctrl-C reaches the job too (same process group): it records the run
    as ``interrupted`` and stops its workers; the launcher waits for that (a second Ctrl-C kills it), then raises
    ``KeyboardInterrupt``.
    """
    results = []
    for i, rdir in enumerate(rdirs):
        print(f'\n=== [{i + 1}/{len(rdirs)}] {rdir}', flush=True)
        if _busy(rdir):
            results.append((rdir, rd.LOCKED_EXIT, 0.0))
            continue
        t0 = time.time()
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(rd.REPO_ROOT), os.environ.get('PYTHONPATH', '')]))
        env.update({k: v for k, v in CPU_ENV.items() if k not in os.environ})
        env[RUN_ENV] = str(rdir)
        # on a terminal: a progress bar on stderr, read from the run's log, under the job's own output
        with RunProgressBar(rdir, label=f'[{i + 1}/{len(rdirs)}] {rdir.parent.name}/{rdir.name}',
                            enabled=sys.stderr.isatty()) as bar:
            proc = subprocess.Popen([sys.executable, '-m', 'experiments.job', str(rdir), '--config-sha256',
                                     rd.config_sha256(rdir)], cwd=rd.REPO_ROOT, env=bar.child_env(env),
                                    **bar.popen_kwargs())
            bar.follow(proc)
            try:
                rc = proc.wait()
            except KeyboardInterrupt:
                print(f'\ninterrupted: waiting for the job to record {rdir} as interrupted and stop (Ctrl-C again to '
                      f'kill it)', file=sys.stderr, flush=True)
                try:
                    proc.wait(timeout=120)
                except (KeyboardInterrupt, subprocess.TimeoutExpired):
                    proc.kill()
                    proc.wait()
                raise
        dt = time.time() - t0
        results.append((rdir, rc, dt))
        if rc == rd.LOCKED_EXIT:
            print(f'=== {rdir.name} of {rdir.parent.name}: skipped, another process trains it', flush=True)
        else:
            print(f'=== {rdir.name} of {rdir.parent.name}: exit {rc} after {dt:.0f} s', flush=True)
    return results


class SubmissionError(LaunchError):
    """The scheduler did not take the jobs (the runs are marked 'not submitted'; a relaunch submits them again)."""


def submit_submitit(rdirs: list[Path], cluster: str, folder: Path, params: dict, max_num_timeout: int):
    """Submit one TrainJob per run dir (a job array on SLURM); returns the submitit jobs.

    On SLURM the jobs run from a snapshot of the code (:func:`_code_snapshot`), so a job that starts or requeues
    after the checkout moved still runs the code its manifest names.

    Raises:
        SubmissionError: the executor could not be made or the submission failed (no sbatch, controller down,
            sbatch refused the options, the code could not be snapshotted); every run not submitted is marked
            'not submitted' with the error.
    """
    from experiments.job import TrainJob
    jobs = []
    try:
        executor = cl.make_executor(cluster, folder, dict(params), job_name='vit-adapter',
                                    max_num_timeout=max_num_timeout)
        if cluster == 'slurm':
            executor.update_parameters(slurm_setup=_code_snapshot(rdirs, folder.parent, params)['slurm_setup'])
            with executor.batch():  # one job array: submitted (all of it) when the block ends
                for rdir in rdirs:
                    jobs.append(executor.submit(TrainJob(str(rdir), rd.config_sha256(rdir))))
        else:
            for rdir in rdirs:
                jobs.append(executor.submit(TrainJob(str(rdir), rd.config_sha256(rdir))))
    except SubmissionError:  # no code snapshot: already recorded in the runs
        raise
    except Exception as err:  # noqa: BLE001 - any failure to submit: recorded in the runs, reported without traceback
        msg = cl.submission_failure(err, cluster)
        submitted = [] if cluster == 'slurm' else jobs
        for rdir, job in zip(rdirs, submitted):
            rd.write_state(rdir, 'queued', job_id=str(job.job_id))
        for rdir in rdirs[len(submitted):]:
            rd.write_state(rdir, 'not submitted', error=msg)
        raise SubmissionError(f'{msg}. {len(rdirs) - len(submitted)} run(s) marked \'not submitted\'.') from err
    for rdir, job in zip(rdirs, jobs):
        rd.write_state(rdir, 'queued', job_id=str(job.job_id), scheduler='slurm' if cluster == 'slurm' else cluster)
    return jobs


def _code_snapshot(rdirs: list[Path], grid_dir: Path, params: dict) -> dict:
    """Snapshot the code for SLURM jobs (``experiments/snapshot.py``) into ``<grid_dir>/_snapshots/<code hash>/``;
    returns ``params`` with a ``slurm_setup`` that runs the job from there.

    The snapshot must be the code the manifests of ``rdirs`` record (it is, unless the checkout changed since
    ``prepare_run``); otherwise nothing is submitted and the runs are marked 'not submitted'. Outside a git checkout
    (no code hash in the manifests) there is nothing to snapshot: the jobs run the checkout, with a warning.
    """
    from experiments import snapshot
    manifests = [rd.read_json(r / rd.MANIFEST) or {} for r in rdirs]
    # runs made before manifests had a code hash have none to match
    codes = {json.dumps(m['code'], sort_keys=True) for m in manifests if (m.get('code') or {}).get('code_sha256')}
    if not codes and not rd.code_state().get('code_sha256'):
        print(f'warning: {rd.REPO_ROOT} is not a git checkout (or git is not on PATH): the SLURM jobs run the code '
              f'found there when they start, not a snapshot', file=sys.stderr)
        return dict(params)
    try:
        if len(codes) > 1:
            raise snapshot.SnapshotError('the runs to submit were prepared with different code')
        snap = snapshot.take(grid_dir / snapshot.SNAPSHOTS, code=json.loads(codes.pop()) if codes else None)
    except snapshot.SnapshotError as err:
        msg = f'no code snapshot for the SLURM jobs: {err}'
        for rdir in rdirs:
            rd.write_state(rdir, 'not submitted', error=msg)
        raise SubmissionError(f'{msg}. {len(rdirs)} run(s) marked \'not submitted\'.') from None
    print(f'code snapshot for the jobs: {snap}')
    return dict(params, slurm_setup=snapshot.slurm_setup(snap) + list(params.get('slurm_setup') or []))


def print_metrics(rdirs: list[Path]) -> None:
    """A plain table of every run's final metrics (the analysis package makes the real tables)."""
    print('\nrun                                seed  state         metrics')
    for rdir in rdirs:
        try:
            metrics = rd.read_json(rdir / rd.FINAL_METRICS)
            state = (rd.read_state(rdir) or {}).get('state', '?')
        except rd.CorruptRunFile:
            metrics, state = None, 'corrupt'
        keys = ('coco/bbox_mAP', 'coco/segm_mAP', 'mIoU', 'aAcc', 'train_time_per_iter')
        shown = ', '.join(f'{k}={metrics[k]:.4g}' for k in keys if metrics and metrics.get(k) is not None)
        print(f'{rdir.parent.name:<34} {rdir.name[4:]:>4}  {state:<13} {shown}')


def gpus_per_run(cluster: str, profile: str, params: dict) -> int:
    """GPUs one run uses: on SLURM, nodes x GPUs per node of its sbatch settings; locally one process, so one GPU
    in a GPU profile (paper) and none in the tiny (CPU) profile."""
    if cluster == 'slurm':
        return int(params.get('nodes') or 1) * int(params.get('gpus_per_node') or 0)
    return 1 if cl.PROFILE_RESOURCES[profile]['gpus_per_node'] else 0


def print_dry_run_costs(specs: list[RunSpec], profile: str, extra: dict, runs_root: Path, gpus: int) -> bool:
    """Print the cost table of ``--dry-run`` (``experiments.cost``): GPU-hours per run and in total, from measured
    s/iter. False (and the error on stderr) when the speed table is not readable."""
    from experiments import cost
    from experiments.runlog import max_iters
    try:
        table = cost.load_speed_table()
    except cost.SpeedTableError as err:
        print(f'error: {err}', file=sys.stderr)
        return False
    costs = []
    for spec in specs:
        cfg = build_config(spec, profile, extra, runs_root, dry_run=True)[0]
        costs.append(cost.run_cost(spec.name, spec.seed, spec.configs[profile], spec.resolved_overrides(profile),
                                   max_iters(rd.json_data(cfg.to_dict())), gpus, table))
    print(cost.format_costs(costs, table, cost.table_path()))
    if extra:
        print('    (the measurements are of the configs without --cfg-options; the iterations include them)')
    return True


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    command = cl.format_command(['python', '-m', 'experiments.launch'] + (argv if argv is not None else sys.argv[1:]))
    runs_root = Path(args.runs_root).resolve()
    grid = get_grid(args.grid)
    if args.seeds < 1:
        build_parser().error(f'--seeds {args.seeds}: give the number of seeds to run, at least 1')
    try:
        specs = grid.runs(args.seeds, only=args.runs)
    except ValueError as err:  # an unknown run name: a usage error (exit 2), not a traceback
        build_parser().error(f'--runs: {err}')
    extra = parse_cfg_options(args.cfg_options)
    try:
        if extra:
            check_cfg_options(extra, grid_axes(grid, args.profile, runs_root), args.grid)
        try:
            ensure_data(args.profile, {s.task for s in specs})
        except LaunchError as err:
            if not args.dry_run:
                raise
            print(f'warning: {err}', file=sys.stderr)
        prepared, corrupt = [], 0
        for s in specs:
            try:
                prepared.append((s,) + prepare_run(s, args.profile, runs_root, extra, command, args.dry_run,
                                                   vis=args.vis))
            except rd.CorruptRunFile as err:  # this run is skipped and named; the rest of the grid goes on
                corrupt += 1
                print(f'error: {err}', file=sys.stderr)
                prepared.append((s, rd.run_dir(runs_root, args.profile, s.grid, s.name, s.seed), 'corrupt'))
    except LaunchError as err:
        print(f'error: {err}', file=sys.stderr)
        return 2
    params = cl.slurm_parameters(args, args.profile) if args.cluster == 'slurm' else {}
    print(f'grid {args.grid} ({grid.description}), profile {args.profile}, cluster {args.cluster}, '
          f'{len(specs)} run(s) under {runs_root / args.profile / args.grid}')
    for spec, rdir, status in prepared:
        print(f'  {spec.name:<34} seed {spec.seed}  {status:<6} {spec.configs[args.profile]}  '
              f'{spec.resolved_overrides(args.profile) or ""}')
    if args.cluster == 'slurm':
        folder = runs_root / args.profile / args.grid / '_submitit'
        print('sbatch settings (per run):\n' + cl.sbatch_preview(folder, params))
    if args.dry_run:
        if not print_dry_run_costs(specs, args.profile, extra, runs_root,
                                   gpus_per_run(args.cluster, args.profile, params)):
            return 2
        print('dry run: nothing submitted')
        return 1 if corrupt else 0
    todo = [rdir for _, rdir, status in prepared if status not in ('done', 'corrupt', 'locked', 'submitted')]
    all_dirs = [rdir for _, rdir, _ in prepared]
    if not todo:
        counts = {}
        for _, _, status in prepared:
            counts[status] = counts.get(status, 0) + 1
        said = dict(done='finished', locked='being trained by another process', submitted='already submitted to SLURM')
        print('nothing to run: ' + ', '.join(f'{n} {said.get(k, k)}' for k, n in counts.items()))
        print_metrics(all_dirs)
        return 1 if corrupt else 0
    wait = args.wait if args.wait is not None else args.cluster != 'slurm'
    failures = 0
    if args.cluster == 'local':
        try:
            results = _run_local(todo)
        except KeyboardInterrupt:
            print(f'interrupted: relaunch the same command to resume (finished runs are skipped, the interrupted one '
                  f'resumes from its last checkpoint); python -m experiments.status {args.grid} --profile '
                  f'{args.profile} shows where each run stands', file=sys.stderr)
            return 130
        failures = sum(rc not in (0, rd.LOCKED_EXIT) for _, rc, _ in results)
        print('\nper-run wall time (s): ' + ', '.join(f'{r.parent.name}/{r.name}={dt:.0f}' for r, _, dt in results))
    else:
        folder = runs_root / args.profile / args.grid / '_submitit'
        try:
            jobs = submit_submitit(todo, args.cluster, folder, params, args.requeue_limit)
        except SubmissionError as err:
            print(f'error: {err}', file=sys.stderr)
            return 1
        print('submitted: ' + ', '.join(f'{r.parent.name}/{r.name}={j.job_id}' for r, j in zip(todo, jobs)))
        print(f'follow with: python -m experiments.status {args.grid} --profile {args.profile} '
              f'--runs-root {runs_root}')
        if wait:
            for rdir, job in zip(todo, jobs):
                try:
                    job.result()
                except Exception as err:  # noqa: BLE001 - report every failed run, keep waiting for the rest
                    failures += 1
                    print(f'run {rdir} failed: {str(err).strip().splitlines()[-1] if str(err).strip() else err}')
    if wait:
        print_metrics(all_dirs)
    return 1 if failures or corrupt else 0


if __name__ == '__main__':
    sys.exit(main())

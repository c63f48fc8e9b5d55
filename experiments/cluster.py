"""Everything cluster-specific in one place: submitit executors, SLURM options, squeue queries.

``--cluster slurm`` uses ``submitit.AutoExecutor(cluster='slurm')`` (one job per run, SLURM job arrays through
``executor.batch()``); ``debug`` uses submitit's ``DebugExecutor`` (in this process, for pdb); ``local`` runs the
jobs one after another as ``python -m experiments.job RUN_DIR`` subprocesses with their output on the terminal.
"""
from __future__ import annotations

import argparse
import shlex
import shutil
import subprocess
from pathlib import Path

CLUSTERS = ('local', 'slurm', 'debug')


def add_slurm_arguments(parser: argparse.ArgumentParser) -> None:
    """SLURM options (all optional; defaults come from the profile)."""
    g = parser.add_argument_group('SLURM options (--cluster slurm)')
    g.add_argument('--partition', help='sbatch --partition')
    g.add_argument('--account', help='sbatch --account')
    g.add_argument('--qos', help='sbatch --qos')
    g.add_argument('--time', type=int, dest='time_min', help='time limit per job in minutes (sbatch --time)')
    g.add_argument('--nodes', type=int, help='nodes per run (default 1)')
    g.add_argument('--gpus-per-node', type=int, help='GPUs per node (paper profile: 8; tiny: 0)')
    g.add_argument('--ntasks-per-node', type=int, help='tasks per node (default: one per GPU, or 1 on CPU)')
    g.add_argument('--cpus-per-task', type=int, help='CPUs per task')
    g.add_argument('--mem', help='memory per node, e.g. 64G (sbatch --mem)')
    g.add_argument('--constraint', help='sbatch --constraint')
    g.add_argument('--array-parallelism', type=int, default=256, help='max simultaneous array tasks')
    g.add_argument('--requeue-limit', type=int, default=3, help='timeouts a run may requeue after (submitit)')
    g.add_argument('--sbatch', action='append', default=[], metavar='KEY=VALUE',
                   help='extra sbatch option (repeatable), e.g. --sbatch exclude=node12 --sbatch mail-type=END')


# Resources per profile when the user does not say otherwise.
PROFILE_RESOURCES = {
    'paper': dict(nodes=1, gpus_per_node=8, cpus_per_task=10, time_min=3 * 24 * 60, mem='0'),
    'tiny': dict(nodes=1, gpus_per_node=0, cpus_per_task=2, time_min=60, mem=None),
}


def slurm_parameters(args: argparse.Namespace, profile: str) -> dict:
    """submitit ``update_parameters`` kwargs (``slurm_*``) from the parsed options and the profile defaults."""
    res = dict(PROFILE_RESOURCES[profile])
    for key in ('nodes', 'gpus_per_node', 'cpus_per_task', 'time_min', 'mem'):
        if getattr(args, key, None) is not None:
            res[key] = getattr(args, key)
    gpus = res['gpus_per_node']
    ntasks = args.ntasks_per_node if getattr(args, 'ntasks_per_node', None) else max(gpus, 1)
    params = dict(
        timeout_min=res['time_min'],
        nodes=res['nodes'],
        tasks_per_node=ntasks,
        cpus_per_task=res['cpus_per_task'],
        slurm_array_parallelism=args.array_parallelism,
    )
    if gpus:
        params['gpus_per_node'] = gpus
    # Passive OpenMP waiting: spinning threads make CPU ops 10-20x slower on shared cores (see launch.CPU_ENV).
    params['slurm_setup'] = ['export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}']
    if res.get('mem'):
        params['slurm_mem'] = res['mem']
    for key in ('partition', 'account', 'qos', 'constraint'):
        if getattr(args, key, None):
            params[f'slurm_{key}'] = getattr(args, key)
    extra = {}
    for item in args.sbatch:
        if '=' not in item:
            raise ValueError(f'--sbatch expects KEY=VALUE (e.g. exclude=node12), got {item!r}')
        k, v = item.split('=', 1)
        extra[k.strip().lstrip('-')] = v
    if extra:
        params['slurm_additional_parameters'] = extra
    return params


def make_executor(cluster: str, folder: Path, params: dict | None = None, job_name: str = 'vit-adapter',
                  max_num_timeout: int = 3):
    """A submitit executor for ``cluster`` ('slurm' or 'debug') writing its logs under ``folder``."""
    import submitit
    if cluster == 'slurm':
        if shutil.which('sbatch') is None:
            raise RuntimeError('--cluster slurm: sbatch is not on PATH. Load your site\'s SLURM module, or start a '
                               'local test SLURM with `make slurm-up` and export SLURM_CONF as it prints')
        executor = submitit.AutoExecutor(folder=str(folder), cluster='slurm',
                                         slurm_max_num_timeout=max_num_timeout)
        executor.update_parameters(name=job_name, **(params or {}))
        return executor
    if cluster == 'debug':
        return submitit.AutoExecutor(folder=str(folder), cluster='debug')
    raise ValueError(f'no submitit executor for cluster {cluster!r}')


def submission_failure(err: BaseException, cluster: str) -> str:
    """One message for a failed submission: the cause (the scheduler's own words) and how to fix it."""
    text = ' '.join(str(err).split()) or type(err).__name__
    if cluster != 'slurm':
        return f'submitting to {cluster} failed ({type(err).__name__}: {text}); fix the cause and relaunch'
    missing = [c for c in ('sbatch', 'srun') if shutil.which(c) is None]  # submitit needs both
    if missing:
        return (f"{' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} not on PATH, so nothing could be "
                f"submitted to SLURM. Load your site's SLURM module (e.g. `module load slurm`), or start a local test "
                f"SLURM with `make slurm-up` and export SLURM_CONF as it prints; then relaunch the same command")
    if any(s in text.lower() for s in ('slurm controller', 'connection refused', 'connect failure',
                                       'unable to contact', 'unable to establish')):
        return (f'the SLURM controller did not answer ({text}). Check it with `scontrol ping` (and that SLURM_CONF '
                f'names the right cluster; for the local test SLURM: `make slurm-up`); then relaunch the same command')
    return (f'the SLURM submission failed ({text}). Check the SLURM options (--partition, --account, --qos, --time, '
            f'--mem, --sbatch ...) against `sinfo` and your account, and the controller with `scontrol ping`; then '
            f'relaunch the same command')


def sbatch_preview(folder: Path, params: dict, job_name: str = 'vit-adapter') -> str:
    """The sbatch header submitit would write for these parameters (for --dry-run)."""
    from submitit.slurm.slurm import _make_sbatch_string
    kwargs = {k[len('slurm_'):] if k.startswith('slurm_') else k: v for k, v in params.items()}
    kwargs.pop('array_parallelism', None)
    kwargs['time'] = kwargs.pop('timeout_min')
    kwargs['ntasks_per_node'] = kwargs.pop('tasks_per_node')
    text = _make_sbatch_string(command='python -u -m submitit.core._submit <folder>', folder=str(folder),
                               job_name=job_name, **kwargs)
    return '\n'.join(line for line in text.splitlines() if line.startswith(('#SBATCH', 'export')))


_SQUEUE_WORKS: bool | None = None


def squeue_works() -> bool:
    """Whether ``squeue`` is on PATH and answers (a controller is reachable); asked once per process."""
    global _SQUEUE_WORKS
    if _SQUEUE_WORKS is None:
        if shutil.which('squeue') is None:
            _SQUEUE_WORKS = False
        else:
            try:
                _SQUEUE_WORKS = subprocess.run(['squeue', '-h', '-o', '%i'], capture_output=True,
                                               timeout=10).returncode == 0
            except (OSError, subprocess.TimeoutExpired):
                _SQUEUE_WORKS = False
    return _SQUEUE_WORKS


def squeue_states(job_ids: list[str]) -> dict[str, str]:
    """SLURM state per job id ('PENDING', 'RUNNING', ...) for those squeue knows; {} without SLURM."""
    ids = [j for j in job_ids if j and not j.startswith('pid')]
    if not ids or shutil.which('squeue') is None:
        return {}
    try:
        out = subprocess.run(['squeue', '-h', '-r', '-o', '%i %T', '-j', ','.join(ids)], capture_output=True,
                             text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return {}
    states = {}
    for line in out.stdout.splitlines():
        parts = line.split()
        if len(parts) == 2:
            states[parts[0]] = parts[1]
    return states


def format_command(argv: list[str]) -> str:
    return ' '.join(shlex.quote(a) for a in argv)

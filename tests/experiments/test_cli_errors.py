"""Bad command-line input gets a message and exit code 2, never a traceback; status honours RUNS_ROOT."""
import subprocess
import sys

import pytest

from experiments.rundir import REPO_ROOT


def _run(*args, env=None):
    import os
    full_env = dict(os.environ, **(env or {}))
    return subprocess.run([sys.executable, '-m', *args], cwd=REPO_ROOT, capture_output=True, text=True,
                          env=full_env, timeout=120)


@pytest.mark.parametrize('args, message', [
    (('experiments.launch', 'N', '--seeds', '0', '--dry-run'), '--seeds 0'),
    (('experiments.launch', 'N', '--runs', 'N3', '--dry-run'), "no runs ['N3']"),
    (('analysis.tables', 'N', '--seeds', 'abc'), "--seeds 'abc'"),
    (('analysis.tables', 'N', '--seeds', '0'), 'a count must be >= 1'),
])
def test_usage_errors_exit_2_with_a_message(args, message, tmp_path):
    p = _run(*args, '--runs-root', str(tmp_path))
    assert p.returncode == 2, (p.stdout, p.stderr)
    assert message in p.stderr and 'Traceback' not in p.stderr


def test_status_reads_runs_root_from_the_environment(tmp_path):
    p = _run('experiments.status', 'N', env={'RUNS_ROOT': str(tmp_path)})
    assert p.returncode == 0, p.stderr
    assert str(tmp_path.resolve() / 'tiny' / 'N') in p.stdout


def test_a_corrupt_run_file_is_named_and_the_rest_of_the_grid_goes_on(tmp_path):
    from experiments import rundir as rd
    bad = rd.run_dir(tmp_path, 'tiny', 'N', 'N2', 0)
    bad.mkdir(parents=True)
    (bad / rd.MANIFEST).write_text('{"grid": "N", "run": "N2", "se')  # cut off by a crash
    p = _run('experiments.launch', 'N', '--dry-run', '--runs-root', str(tmp_path))
    assert p.returncode == 1 and 'Traceback' not in p.stderr
    assert f'{bad / rd.MANIFEST} is corrupt' in p.stderr and 'delete it' in p.stderr
    lines = {line.split()[0]: line for line in p.stdout.splitlines() if line.startswith('  N')}
    assert 'corrupt' in lines['N2'] and all(' new ' in lines[n] for n in ('N0', 'N1', 'N4', 'N6'))
    (bad / rd.STATE).write_text('\x00\x00')  # status: the run is shown as corrupt, the others as usual
    p = _run('experiments.status', 'N', '--runs-root', str(tmp_path))
    assert p.returncode == 0 and 'Traceback' not in p.stderr
    assert 'totals: corrupt 1, missing 4' in p.stdout


def test_run_files_are_written_atomically(tmp_path, monkeypatch):
    import os

    from experiments import rundir as rd
    path = tmp_path / 'state.json'
    rd.write_json(path, {'state': 'running'})

    def crash(*_):
        raise OSError('disk gone')
    monkeypatch.setattr(os, 'replace', crash)
    with pytest.raises(OSError):
        rd.write_json(path, {'state': 'finished', 'x': list(range(1000))})
    assert rd.read_json(path) == {'state': 'running'}  # the old file, whole

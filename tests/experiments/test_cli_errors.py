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

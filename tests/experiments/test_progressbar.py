"""The local launcher's progress line: a bar on stderr (only on a terminal) updated from the run's scalars log, with
the job's own output still printed (above it)."""
import io
import json
import subprocess
import sys
import textwrap

from rich.console import Console

from experiments import launch
from experiments import rundir as rd
from experiments.progressbar import RunProgressBar, describe, read
from tests.analysis import fakeruns as fr


def _run_folder(tmp_path, upto=100):
    lines = [fr.train_line(s, loss=2.0 / (s / 10), time=0.5 * (4 if s == 10 else 1)) for s in range(10, upto + 1, 10)]
    d = fr.write_run(tmp_path, 'tiny', 'N', 'N1', 0, state='queued', config=fr.schedule_config(max_iters=400),
                     starts=[lines] if lines else [])
    (d / rd.CONFIG).write_text('# config\n')
    return d


def _terminal():
    buf = io.StringIO()
    return buf, Console(file=buf, force_terminal=True, width=200)


def test_the_bar_shows_the_runs_progress_and_the_jobs_output(tmp_path):
    d = _run_folder(tmp_path)
    assert describe(read(d)) == '100/400 iters, ETA 2m 30s, 0.5 s/iter, loss 0.2'
    buf, console = _terminal()
    with RunProgressBar(d, console=console, redirect_stdout=True, interval=0.05) as bar:
        proc = subprocess.Popen([sys.executable, '-c', 'import sys; print("job says hello"); '
                                 'print("job warns", file=sys.stderr)'], env=bar.child_env({}), **bar.popen_kwargs())
        bar.follow(proc)
        assert proc.wait() == 0
    out = buf.getvalue()
    assert 'job says hello' in out and 'job warns' in out
    assert 'N1/seed0' in out and '25%' in out and '100/400 iters, ETA 2m 30s' in out


def test_without_a_terminal_nothing_changes(tmp_path):
    bar = RunProgressBar(_run_folder(tmp_path), enabled=False)
    with bar:
        assert bar.popen_kwargs() == {} and bar.child_env({'A': '1'}) == {'A': '1'}


def test_run_local_follows_the_run_in_progress(tmp_path, monkeypatch):
    """_run_local with the bar on: a stand-in job logs 200 more iterations; the bar ends at 300/400, its output shows."""
    d = _run_folder(tmp_path)
    job = textwrap.dedent(f'''
        import json, os, sys
        log = {str(d / '20261121_100000' / 'vis_data' / 'scalars.json')!r}
        with open(log, 'a') as f:
            for s in range(110, 301, 10):
                f.write(json.dumps(dict(loss=0.05, time=0.5, iter=s, step=s)) + "\\n")
        print("job log line", os.environ.get("PYTHONUNBUFFERED"))
    ''')
    real_popen = subprocess.Popen
    monkeypatch.setattr(launch.subprocess, 'Popen', lambda args, **kw: real_popen([sys.executable, '-c', job], **kw))
    buf, console = _terminal()

    class OnATerminal(RunProgressBar):
        def __init__(self, rdir, label=None, enabled=False):
            super().__init__(rdir, label, enabled=True, console=console, redirect_stdout=True, interval=0.05)
    monkeypatch.setattr(launch, 'RunProgressBar', OnATerminal)
    [(rdir, rc, _)] = launch._run_local([d])
    out = buf.getvalue()
    assert rc == 0 and 'job log line 1' in out
    assert '[1/1] N1/seed0' in out and '300/400 iters' in out and '75%' in out

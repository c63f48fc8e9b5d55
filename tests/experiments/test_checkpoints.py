"""Crash-safe checkpoints: each saved checkpoint's size and SHA-256 are recorded (``checkpoints.json``); a relaunch
resumes from the newest intact one and skips a truncated or corrupt one with a warning.

The unit tests fabricate checkpoint files; the end-to-end test trains a tiny run to two checkpoints, cuts the last
one off (as a crash during the save would) and relaunches: it resumes from the previous checkpoint and ends with
the metrics and weights of an uninterrupted run.
"""
import pytest
import torch

from experiments import launch
from experiments import rundir as rd
from experiments.compat import UnsafeCheckpointError

from .conftest import fast_options
from .test_resume import _metrics, _train, _weights  # the same tiny N2 run and its comparisons


def _save(rdir, step, size=2000):
    path = rdir / f'iter_{step}.pth'
    torch.save({'meta': {'iter': step}, 'state_dict': {'w': torch.arange(size, dtype=torch.float32) + step}}, path)
    return path


def _truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])


def _flip_byte(path):
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, different content
    path.write_bytes(bytes(data))


def test_resume_checkpoint_picks_newest_intact(tmp_path):
    warnings = []
    assert rd.resume_checkpoint(tmp_path, warn=warnings.append) is None  # never a checkpoint: start from scratch
    paths = [_save(tmp_path, s) for s in (2, 4, 6)]
    (tmp_path / 'last_checkpoint').write_text(str(paths[-1]))
    records = rd.record_checkpoints(tmp_path, paths)
    assert set(records) == {'iter_2.pth', 'iter_4.pth', 'iter_6.pth'}
    assert records['iter_6.pth']['size'] == paths[-1].stat().st_size
    assert records['iter_6.pth']['sha256'] == rd.file_sha256(paths[-1])
    assert rd.read_checkpoint_records(tmp_path) == records  # what the record file holds
    assert rd.resume_checkpoint(tmp_path, warn=warnings.append) == paths[-1] and not warnings

    assert rd.newest_checkpoint(tmp_path) == paths[-1]
    _truncate(paths[-1])  # the last save was cut off: the previous checkpoint, with a warning naming the bad one
    assert rd.newest_checkpoint(tmp_path) == paths[1]  # analysis's cheap pick (size only) skips it too
    assert rd.resume_checkpoint(tmp_path, warn=warnings.append) == paths[1]
    assert len(warnings) == 1 and str(paths[-1]) in warnings[0] and 'truncated' in warnings[0]
    # The function `last_checkpoint` still names what mmengine wrote (other callers use it).
    assert rd.last_checkpoint(tmp_path) == paths[-1]

    warnings.clear()
    _flip_byte(paths[1])  # same size, other bytes: the hash tells
    assert rd.resume_checkpoint(tmp_path, warn=warnings.append) == paths[0]
    assert [str(p) in w for w, p in zip(warnings, (paths[2], paths[1]))] == [True, True]
    assert 'SHA-256' in warnings[1]


def test_unrecorded_checkpoints_are_checked_by_loading(tmp_path):
    warnings = []
    old = _save(tmp_path, 4)  # a run from before the record existed: no checkpoints.json
    assert rd.resume_checkpoint(tmp_path, warn=warnings.append) == old and not warnings
    rd.record_checkpoints(tmp_path, [old])
    cut = _save(tmp_path, 8)  # newer, never recorded (the process died while saving it), and truncated
    _truncate(cut)
    assert rd.resume_checkpoint(tmp_path, warn=warnings.append) == old
    assert len(warnings) == 1 and str(cut) in warnings[0] and 'does not load' in warnings[0]
    # A corrupt checkpoints.json: every checkpoint is checked by loading it.
    (tmp_path / rd.CHECKPOINTS).write_text('{"checkpoints": {"iter_4')
    warnings.clear()
    assert rd.resume_checkpoint(tmp_path, warn=warnings.append) == old
    assert any(rd.CHECKPOINTS in w for w in warnings)


def test_no_intact_checkpoint_is_an_error_naming_the_files_and_the_fix(tmp_path):
    paths = [_save(tmp_path, s) for s in (2, 4)]
    rd.record_checkpoints(tmp_path, paths)
    for p in paths:
        _truncate(p)
    with pytest.raises(rd.NoIntactCheckpoint) as info:
        rd.resume_checkpoint(tmp_path, warn=lambda msg: None)
    msg = str(info.value)
    assert all(str(p) in msg for p in paths) and 'delete' in msg and 'from the start' in msg


def test_unsafe_unrecorded_checkpoint_is_refused_not_skipped(tmp_path):
    import os

    class Payload:
        def __reduce__(self):
            return (os.system, ('true',))
    good = _save(tmp_path, 2)
    rd.record_checkpoints(tmp_path, [good])
    torch.save({'meta': Payload()}, tmp_path / 'iter_4.pth')
    with pytest.raises(UnsafeCheckpointError):
        rd.resume_checkpoint(tmp_path, warn=lambda msg: None)


def test_records_of_removed_checkpoints_are_dropped(tmp_path):
    a, b = _save(tmp_path, 2), _save(tmp_path, 4)
    rd.record_checkpoints(tmp_path, [a, b])
    a.unlink()  # mmengine's max_keep_ckpts removed it
    c = _save(tmp_path, 6)
    assert set(rd.record_checkpoints(tmp_path, [c])) == {'iter_4.pth', 'iter_6.pth'}


def test_configs_record_checkpoints_and_keep_a_fallback():
    from mmengine.config import Config

    from experiments.grids import CONFIG_DIR
    for path in (CONFIG_DIR / 'tiny' / 'maskrcnn_tiny_1x.py', CONFIG_DIR / 'tiny' / 'upernet_tiny.py',
                 CONFIG_DIR / 'maskrcnn_vit_adapter_B_3x.py', CONFIG_DIR / 'upernet_vit_adapter_L_160k.py'):
        cfg = Config.fromfile(str(path))
        assert any(h['type'] == 'CheckpointRecordHook' for h in cfg.custom_hooks), path
        assert cfg.default_hooks.checkpoint.max_keep_ckpts >= 2, path  # an intact previous one to fall back to


# --------------------------------------------------------------------------------------------- end to end
HOOKS = [dict(type='RNGStateHook'), dict(type='FinalMetricsHook'), dict(type='CheckpointRecordHook')]


def _extra(**more):
    extra = launch.parse_cfg_options(fast_options(iters=8, ckpt=2, val_images=8))
    extra.update(more)
    return extra


def test_truncated_last_checkpoint_resumes_from_the_previous_one(tmp_path, synthetic_data, capfd):
    ref, rc = _train(tmp_path / 'ref', _extra(custom_hooks=HOOKS))
    assert rc == 0 and rd.read_state(ref)['state'] == 'finished'
    records = rd.read_checkpoint_records(ref)  # the hook recorded what mmengine kept (max_keep_ckpts=2)
    assert set(records) == {'iter_6.pth', 'iter_8.pth'}
    assert all(records[n]['sha256'] == rd.file_sha256(ref / n) and records[n]['size'] == (ref / n).stat().st_size
               for n in records)

    # Crash after iteration 8's update, before its checkpoint: iter_4 and iter_6 on disk, then iter_6 cut off.
    hooks = HOOKS + [dict(type='FaultInjectionHook', at_iter=8)]
    run, rc = _train(tmp_path / 'run', _extra(custom_hooks=hooks))
    assert rc != 0 and not rd.is_finished(run)
    assert rd.last_checkpoint(run).name == 'iter_6.pth'
    assert set(rd.read_checkpoint_records(run)) == {'iter_4.pth', 'iter_6.pth'}
    _truncate(run / 'iter_6.pth')
    capfd.readouterr()

    again, rc = _train(tmp_path / 'run', _extra(custom_hooks=hooks))  # relaunch: resumes from iter_4
    err = capfd.readouterr().err
    assert again == run and rc == 0 and rd.read_state(run)['state'] == 'finished', err[-3000:]
    assert f'checkpoint {run / "iter_6.pth"} skipped' in err
    second_log = next(sorted(p for p in run.iterdir() if p.is_dir())[-1].glob('*.log')).read_text()
    assert 'resumed epoch: 0, iter: 4' in second_log
    assert _metrics(run) == _metrics(ref)
    wa, wb = _weights(ref), _weights(run)
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    # the re-saved iter_6 and the new iter_8 are recorded again
    records = rd.read_checkpoint_records(run)
    assert set(records) == {'iter_6.pth', 'iter_8.pth'}
    assert records['iter_6.pth']['sha256'] == rd.file_sha256(run / 'iter_6.pth')

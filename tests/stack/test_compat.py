"""experiments.compat: mmengine checkpoints written by this suite resume on torch>=2.6 weights-only (with the
allow-list); a pickle that wants anything else never runs, wherever it lies; corrupt files are called corrupt."""
import os
import pickle

import pytest
import torch
from torch import nn
from torch.utils.data import Dataset

from experiments import compat


class _ToyModel:
    """Built lazily so importing this test module does not import mmengine."""

    @staticmethod
    def create():
        from mmengine.model import BaseModel

        class ToyModel(BaseModel):
            def __init__(self):
                super().__init__()
                self.linear = nn.Linear(4, 1)

            def forward(self, inputs, labels, mode='tensor'):
                pred = self.linear(inputs)
                if mode == 'loss':
                    return dict(loss=((pred - labels) ** 2).mean())
                return pred

        return ToyModel()


class _ToyData(Dataset):
    def __init__(self, n=32):
        g = torch.Generator().manual_seed(0)
        self.x = torch.randn(n, 4, generator=g)
        self.y = self.x @ torch.tensor([[1.0], [-2.0], [0.5], [3.0]])

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return dict(inputs=self.x[i], labels=self.y[i])


def _runner(work_dir, name, hooks=(), resume=False):
    from mmengine.runner import Runner
    torch.manual_seed(0)
    return Runner(
        model=_ToyModel.create(), work_dir=str(work_dir), experiment_name=name,
        train_dataloader=dict(batch_size=4, dataset=_ToyData(), sampler=dict(type='InfiniteSampler', shuffle=True),
                              collate_fn=dict(type='default_collate'), num_workers=0),
        train_cfg=dict(by_epoch=False, max_iters=8),
        optim_wrapper=dict(optimizer=dict(type='AdamW', lr=0.05, weight_decay=0.05)),
        param_scheduler=[dict(type='MultiStepLR', by_epoch=False, milestones=[5], gamma=0.1)],
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=4, by_epoch=False),
                           logger=dict(type='LoggerHook', interval=1)),
        custom_hooks=list(hooks), randomness=dict(seed=0), resume=resume, default_scope='mmengine')


class _Interrupted(RuntimeError):
    pass


def _interrupt_hook(at_iter):
    from mmengine.hooks import Hook

    class Interrupt(Hook):
        priority = 'LOWEST'  # after CheckpointHook has saved

        def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
            if runner.iter + 1 == at_iter:
                raise _Interrupted(f'simulated preemption at iteration {at_iter}')

    return Interrupt()


def test_stock_mmengine_cannot_resume_its_own_checkpoint(tmp_path):
    """The break this module fixes: mmengine's stock local loader under torch's weights_only default."""
    from mmengine.runner.checkpoint import load_from_local
    runner = _runner(tmp_path / 'w', 'stock')
    runner.train()
    with pytest.raises(pickle.UnpicklingError):
        load_from_local(str(tmp_path / 'w' / 'iter_8.pth'), map_location='cpu')


def _rng_hooks():
    from experiments import hooks  # noqa: F401 - registers RNGStateHook / FinalMetricsHook
    return [dict(type='RNGStateHook'), dict(type='FinalMetricsHook', skip_first=0)]


def test_save_interrupt_resume_matches_uninterrupted_run(tmp_path):
    compat.patch_mmengine()
    straight = _runner(tmp_path / 'straight', 'straight')
    straight.train()

    work = tmp_path / 'resumed'  # no marker, no environment variable: nothing is trusted, resume still works
    first = _runner(work, 'first', hooks=[_interrupt_hook(6)] + _rng_hooks())
    with pytest.raises(_Interrupted):
        first.train()
    assert (work / 'iter_4.pth').is_file() and not (work / 'iter_8.pth').exists()
    # every global of a suite checkpoint (message hub, numpy RNG state, schedulers) is on the allow-list
    found = set(torch.serialization.get_unsafe_globals_in_checkpoint(str(work / 'iter_4.pth')))
    assert found and found <= compat.allowed_names(), found - compat.allowed_names()
    second = _runner(work, 'second', hooks=_rng_hooks(), resume=True)
    assert second._resume
    second.train()
    assert second.iter == 8
    final, reference = second.model.state_dict(), straight.model.state_dict()
    for key in reference:
        assert torch.equal(final[key], reference[key]), key
    # the scheduler and optimizer state came back too (lr decayed once at iteration 5)
    assert second.optim_wrapper.get_lr()['lr'][0] == pytest.approx(0.005)
    hub = compat.load_checkpoint_file(work / 'iter_8.pth')['message_hub']['log_scalars']
    assert float(hub['train/loss'].mean()) > 0  # HistoryBuffer came back with its statistics methods


class _Payload:
    def __init__(self, canary):
        self.canary = str(canary)

    def __reduce__(self):
        return (os.system, (f'touch {self.canary}',))


def test_malicious_checkpoint_beside_old_trust_marker_never_runs(tmp_path, monkeypatch):
    """A shared runs root with the old ``.vit_adapter_trusted`` marker (and the old env variable): the pickle is
    refused through mmengine's loader and through resume, with the global it wanted; the canary is never made."""
    compat.patch_mmengine()
    from mmengine.runner.checkpoint import _load_checkpoint
    canary = tmp_path / 'pwned'
    work = tmp_path / 'runs' / 'w'
    work.mkdir(parents=True)
    for d in (tmp_path / 'runs', work):
        (d / '.vit_adapter_trusted').write_text('trusted\n')
    monkeypatch.setenv('VIT_ADAPTER_TRUSTED_DIRS', str(tmp_path / 'runs'))
    path = work / 'iter_400.pth'
    torch.save({'state_dict': {'linear.weight': torch.ones(1, 4)}, 'meta': _Payload(canary)}, path)
    with pytest.raises(compat.UnsafeCheckpointError, match=r'system') as info:
        _load_checkpoint(str(path), map_location='cpu')
    assert 'allow-list' in str(info.value)
    (work / 'last_checkpoint').write_text(str(path))
    runner = _runner(work, 'resume', resume=True)
    with pytest.raises(compat.UnsafeCheckpointError):
        runner.train()
    # the old pickle format too
    torch.save({'meta': _Payload(canary)}, work / 'legacy.pth', _use_new_zipfile_serialization=False)
    with pytest.raises(compat.UnsafeCheckpointError, match='system'):
        compat.load_checkpoint_file(work / 'legacy.pth')
    assert not canary.exists()


def test_getattr_is_only_allowed_for_history_buffer_statistics(tmp_path):
    from mmengine.logging.history_buffer import HistoryBuffer

    class Sneaky:
        def __reduce__(self):
            return (getattr, (HistoryBuffer, '__init__'))

    torch.save({'x': Sneaky()}, tmp_path / 'g.pth')
    with pytest.raises(compat.UnsafeCheckpointError, match='getattr'):
        compat.load_checkpoint_file(tmp_path / 'g.pth')


@pytest.mark.parametrize('content', [b'', b'hello world\n', os.urandom(4096), 'truncated'])
def test_corrupt_file_is_called_corrupt_without_trust_advice(tmp_path, content):
    path = tmp_path / 'x.pth'
    if content == 'truncated':
        torch.save({'state_dict': {'w': torch.randn(64, 64)}}, path)
        content = path.read_bytes()[:1500]
    path.write_bytes(content)
    with pytest.raises(compat.CorruptCheckpointError, match='not a readable torch checkpoint') as info:
        compat.load_checkpoint_file(path)
    assert 'trust' not in str(info.value).lower()
    from adapter.checkpoint import read_checkpoint
    with pytest.raises(RuntimeError, match='not a readable torch checkpoint') as info:
        read_checkpoint(path)
    assert 'trust' not in str(info.value).lower()


def test_plain_weights_still_load(tmp_path):
    compat.patch_mmengine()
    from mmengine.runner.checkpoint import _load_checkpoint
    path = tmp_path / 'deit.pth'
    torch.save({'model': {'pos_embed': torch.zeros(1, 5, 8)}}, path)
    ckpt = _load_checkpoint(str(path), map_location='cpu')
    assert ckpt['model']['pos_embed'].shape == (1, 5, 8)

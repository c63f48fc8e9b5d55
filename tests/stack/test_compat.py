"""experiments.compat: mmengine checkpoints written by this suite resume on torch>=2.6; foreign pickles don't load."""
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


def test_save_interrupt_resume_matches_uninterrupted_run(tmp_path):
    compat.patch_mmengine()
    straight = _runner(tmp_path / 'straight', 'straight')
    straight.train()

    work = tmp_path / 'resumed'
    compat.trust_dir(work)
    first = _runner(work, 'first', hooks=[_interrupt_hook(6)])
    with pytest.raises(_Interrupted):
        first.train()
    assert (work / 'iter_4.pth').is_file() and not (work / 'iter_8.pth').exists()
    second = _runner(work, 'second', resume=True)
    assert second._resume
    second.train()
    assert second.iter == 8
    final, reference = second.model.state_dict(), straight.model.state_dict()
    for key in reference:
        assert torch.equal(final[key], reference[key]), key
    # the scheduler and optimizer state came back too (lr decayed once at iteration 5)
    assert second.optim_wrapper.get_lr()['lr'][0] == pytest.approx(0.005)


def test_untrusted_pickled_checkpoint_is_refused_and_not_executed(tmp_path):
    compat.patch_mmengine()
    from mmengine.runner.checkpoint import _load_checkpoint
    canary = tmp_path / 'pwned'

    class Payload:
        def __reduce__(self):
            return (os.system, (f'touch {canary}',))

    path = tmp_path / 'downloads' / 'evil.pth'
    path.parent.mkdir()
    torch.save({'state_dict': {'w': torch.ones(1)}, 'meta': Payload()}, path)
    with pytest.raises(compat.UntrustedCheckpointError, match='trust_dir'):
        _load_checkpoint(str(path), map_location='cpu')
    assert not canary.exists()


def test_untrusted_plain_weights_still_load(tmp_path):
    compat.patch_mmengine()
    from mmengine.runner.checkpoint import _load_checkpoint
    path = tmp_path / 'deit.pth'
    torch.save({'model': {'pos_embed': torch.zeros(1, 5, 8)}}, path)
    ckpt = _load_checkpoint(str(path), map_location='cpu')
    assert ckpt['model']['pos_embed'].shape == (1, 5, 8)


def test_trust_by_environment_variable(tmp_path, monkeypatch):
    path = tmp_path / 'shared_ckpts' / 'x.pth'
    path.parent.mkdir()
    assert not compat.is_trusted(path)
    monkeypatch.setenv(compat.ENV_TRUSTED, str(path.parent))
    assert compat.is_trusted(path)

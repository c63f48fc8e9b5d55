"""Feature maps of trained backbones for the figures: load a run's backbone, pick images, run
``forward_intermediates``, and turn maps into Fourier curves and RGB pictures.

The backbone is rebuilt with ``adapter.build_backbone(cfg['model']['backbone'])`` from the run's data-only config
(``config.json``, a dict; no config text is ever executed) and loaded from the checkpoint's ``state_dict`` keys
``backbone.*`` (strictly; missing or unexpected keys are an error that lists them). Checkpoints are read with
``experiments.compat.load_checkpoint_file`` (``weights_only=True`` with the suite's allow-list: a checkpoint that
wants anything else is refused, whatever directory it is in).
"""
from __future__ import annotations

import importlib
import math
from pathlib import Path

import numpy as np
import torch

from analysis.fourier import relative_log_amplitude
from experiments.grids import IMAGENET_MEAN, IMAGENET_STD  # the configs' default; used when a config gives none

IMAGE_EXTS = ('.jpg', '.jpeg', '.png', '.bmp')


def _config(config) -> dict:
    """A run's data-only config (a dict). Config text is refused: analysis never executes it."""
    if isinstance(config, str):
        raise TypeError('analysis reads the data-only config (config.json, a dict), never config text: pass the '
                        'dict (e.g. RunRecord.config)')
    if not isinstance(config, dict):
        raise TypeError(f'config must be a dict (the run\'s config.json), got {type(config).__name__}')
    return config


def backbone_cfg(config: dict) -> dict:
    """The ``model.backbone`` dict of a data-only config, without mm-only keys and pre-trained weights."""
    bb = dict((_config(config).get('model') or {}).get('backbone') or {})
    if not bb:
        raise KeyError('the config has no model.backbone')
    for k in ('_delete_', 'init_cfg'):
        bb.pop(k, None)
    bb['pretrained'] = None
    return bb


def build_backbone(bb_cfg: dict) -> torch.nn.Module:
    """``adapter.build_backbone`` with a clear error when the adapter package is unavailable."""
    try:
        adapter = importlib.import_module('adapter')
        build = adapter.build_backbone
    except (ImportError, AttributeError) as e:
        raise RuntimeError(f'adapter.build_backbone is not available ({e}); the Fourier figures need it') from e
    return build(dict(bb_cfg))


def backbone_state_dict(checkpoint: str | Path) -> dict:
    """The ``backbone.*`` weights of an mmengine checkpoint, prefix stripped."""
    try:
        from experiments.compat import load_checkpoint_file  # noqa: PLC0415
        ckpt = load_checkpoint_file(checkpoint, map_location='cpu')
    except ImportError:
        ckpt = torch.load(checkpoint, map_location='cpu', weights_only=True)
    sd = ckpt.get('state_dict', ckpt) if isinstance(ckpt, dict) else None
    if not isinstance(sd, dict):
        raise ValueError(f'{checkpoint}: no state_dict in the checkpoint')
    out = {k[len('backbone.'):]: v for k, v in sd.items() if k.startswith('backbone.')}
    if not out:
        raise ValueError(f'{checkpoint}: no "backbone.*" keys in its state_dict (keys start with '
                         f'{sorted({k.split(".")[0] for k in sd})})')
    return out


def load_run_backbone(config: dict, checkpoint: str | Path | None) -> tuple[torch.nn.Module, str]:
    """Rebuild a run's backbone from its data-only config; load its trained weights when a checkpoint is given.

    Returns:
        (model in eval mode, description of the weights: the checkpoint path or 'random init').
    """
    model = build_backbone(backbone_cfg(config))
    if checkpoint is None:
        return model.eval(), 'random init (no checkpoint)'
    sd = backbone_state_dict(checkpoint)
    missing, unexpected = model.load_state_dict(sd, strict=False)
    if missing or unexpected:
        raise ValueError(f'{checkpoint}: backbone weights do not match the config: missing {missing[:8]}'
                         f'{"..." if len(missing) > 8 else ""}, unexpected {unexpected[:8]}'
                         f'{"..." if len(unexpected) > 8 else ""}')
    return model.eval(), str(checkpoint)


def normalisation(config: dict | None) -> tuple[tuple, tuple]:
    """(mean, std) in RGB 0-255 from the config's data_preprocessor (ImageNet values otherwise)."""
    if config:
        dp = (_config(config).get('model') or {}).get('data_preprocessor') or {}
        if dp.get('mean') is not None and dp.get('std') is not None:
            return tuple(dp['mean']), tuple(dp['std'])
    return IMAGENET_MEAN, IMAGENET_STD


def config_image_dir(config: dict, root: str | Path = '.') -> Path | None:
    """The validation image folder of a config (mmdet ``data_prefix.img``, mmseg ``img_path``)."""
    ds = (_config(config).get('val_dataloader') or {}).get('dataset') or {}
    while 'dataset' in ds:  # wrappers (RepeatDataset, ...)
        ds = ds['dataset']
    prefix = ds.get('data_prefix') or {}
    sub = prefix.get('img') or prefix.get('img_path') or ''
    if not ds.get('data_root') and not sub:
        return None
    p = Path(ds.get('data_root') or '') / sub
    return p if p.is_absolute() else Path(root) / p


def list_images(folder: str | Path, n: int) -> list[Path]:
    """The first ``n`` images (sorted by name) of a folder or a single image file."""
    folder = Path(folder)
    if folder.is_file():
        return [folder]
    if not folder.is_dir():
        raise FileNotFoundError(f'image folder {folder} does not exist (generate the synthetic data with '
                                f'`make data-synthetic`, or pass an images path)')
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTS)
    if not files:
        raise FileNotFoundError(f'no images ({", ".join(IMAGE_EXTS)}) in {folder}')
    return files[:n]


def read_pictures(paths, size: int) -> np.ndarray:
    """Read RGB images resized to ``size x size`` (no padding: every pixel is real).

    Returns:
        (B, size, size, 3) uint8.
    """
    from PIL import Image  # noqa: PLC0415

    return np.stack([np.asarray(Image.open(p).convert('RGB').resize((size, size), Image.BILINEAR)) for p in paths])


def normalise(pictures: np.ndarray, mean=IMAGENET_MEAN, std=IMAGENET_STD) -> torch.Tensor:
    """(B, H, W, 3) uint8 RGB -> (B, 3, H, W) float32 ``(x - mean) / std``."""
    x = torch.from_numpy(np.asarray(pictures, dtype=np.float32)).permute(0, 3, 1, 2)
    return ((x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)).contiguous()


def load_images(paths, size: int, mean=IMAGENET_MEAN, std=IMAGENET_STD) -> torch.Tensor:
    """:func:`read_pictures` then :func:`normalise`: (B, 3, size, size) float32."""
    return normalise(read_pictures(paths, size), mean, std)


def inputs_for(config: dict | None, images: str | Path | None, n: int, size: int,
               root: str | Path = '.') -> tuple[np.ndarray, torch.Tensor, str]:
    """Pictures and model inputs: ``images`` (file or folder) if given, else the config's validation
    images, else :func:`demo_images`; normalised with the config's data_preprocessor values.

    Returns:
        (pictures (B, size, size, 3) uint8, inputs (B, 3, size, size) float32, description).

    Raises:
        FileNotFoundError: ``images`` was given but holds no images.
    """
    mean, std = normalisation(config)
    if images:
        paths = list_images(images, n)
        return (pics := read_pictures(paths, size)), normalise(pics, mean, std), f'{len(paths)} images from {images}'
    folder = config_image_dir(config, root) if config else None
    if folder is not None and folder.is_dir():
        paths = list_images(folder, n)
        return (pics := read_pictures(paths, size)), normalise(pics, mean, std), f'{len(paths)} images from {folder}'
    pics = demo_images(n, size)
    where = f' at {folder}' if folder is not None else ''
    return pics, normalise(pics, mean, std), f'{n} built-in demo pictures (no image folder found{where})'


def demo_images(n: int = 2, size: int = 128, seed: int = 0) -> np.ndarray:
    """Deterministic test pictures (discs and squares, stripes, noise) when no dataset is at hand.

    Returns:
        (n, size, size, 3) uint8 RGB.
    """
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    out = []
    for _ in range(n):
        img = np.empty((size, size, 3), np.float32)
        img[:] = rng.uniform(60, 120, 3)
        img += 20 * np.sin(2 * np.pi * (xx * rng.uniform(2, 6) + yy * rng.uniform(2, 6)))[..., None]
        for _ in range(4):
            cx, cy, r = rng.uniform(0.2, 0.8), rng.uniform(0.2, 0.8), rng.uniform(0.08, 0.2)
            col = rng.uniform(0, 255, 3)
            mask = ((xx - cx) ** 2 + (yy - cy) ** 2 < r * r) if rng.random() < 0.5 else \
                ((abs(xx - cx) < r) & (abs(yy - cy) < r))
            img[mask] = col
        img += rng.normal(0, 6, img.shape)
        out.append(np.clip(img, 0, 255).astype(np.uint8))
    return np.stack(out)


def demo_tensor(n: int = 2, size: int = 128, seed: int = 0, mean=IMAGENET_MEAN, std=IMAGENET_STD) -> torch.Tensor:
    """:func:`demo_images` normalised: (n, 3, size, size) float32."""
    return normalise(demo_images(n, size, seed), mean, std)


@torch.no_grad()
def intermediates(model: torch.nn.Module, images: torch.Tensor) -> dict:
    """``model.forward_intermediates(images)`` in eval mode; checks the contract keys."""
    if not hasattr(model, 'forward_intermediates'):
        raise TypeError(f'{type(model).__name__} has no forward_intermediates(x); see adapter/README.md')
    model.eval()
    out = model.forward_intermediates(images)
    for k in ('stride8', 'vit_blocks'):
        if k not in out:
            raise KeyError(f'forward_intermediates returned no {k!r} (keys: {sorted(out)})')
    return out


def fourier_curves(feats: dict, input_hw: tuple[int, int], image_hw: tuple[int, int] | None = None) -> dict:
    """Delta log amplitude curves of the stride-8 map and of every ViT block.

    Args:
        feats: Output of :func:`intermediates`.
        input_hw: (H, W) of the input tensor.
        image_hw: (h, w) of its real pixels when the input was padded (default: all real); each map
            is cropped to ``ceil(h * map_H / H)`` x ``ceil(w * map_W / W)`` before the square crop.

    Returns:
        dict(stride8=(freqs, delta), vit_blocks=[(freqs, delta), ...]) as numpy float64 arrays.
    """
    image_hw = image_hw or input_hw

    def curve(m):
        valid = (math.ceil(image_hw[0] * m.shape[-2] / input_hw[0]), math.ceil(image_hw[1] * m.shape[-1] / input_hw[1]))
        f, d = relative_log_amplitude(m, valid)
        return f.numpy(), d.numpy()

    return dict(stride8=curve(feats['stride8']), vit_blocks=[curve(m) for m in feats['vit_blocks']])


def channel_mean(fmap: torch.Tensor) -> np.ndarray:
    """(C, H, W) -> (H, W) channel mean, min-max scaled to [0, 1]."""
    m = fmap.detach().double().mean(0)
    return _unit(m).numpy()


def pca_rgb(fmap: torch.Tensor, k: int = 3) -> np.ndarray:
    """First ``k`` (<= 3) principal components of the channels as an RGB picture.

    Args:
        fmap: (C, H, W) feature map; pixels are samples, channels are variables.

    Returns:
        (H, W, 3) float in [0, 1]; each component min-max scaled; missing components (k < 3 or
        C < 3) are zero. The sign of each component is fixed so that its largest loading is positive.
    """
    c, h, w = fmap.shape
    x = fmap.detach().double().reshape(c, h * w).T
    x = x - x.mean(0, keepdim=True)
    k = min(k, 3, c, h * w)
    _, _, v = torch.linalg.svd(x, full_matrices=False)
    comps = v[:k]
    sign = torch.sign(comps.gather(1, comps.abs().argmax(1, keepdim=True)))
    proj = x @ (comps * sign).T
    rgb = torch.zeros(h * w, 3, dtype=torch.float64)
    for i in range(k):
        rgb[:, i] = _unit(proj[:, i])
    return rgb.reshape(h, w, 3).numpy()


def _unit(t: torch.Tensor) -> torch.Tensor:
    lo, hi = t.min(), t.max()
    return (t - lo) / (hi - lo) if hi > lo else torch.zeros_like(t)

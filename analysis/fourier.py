"""Fourier analysis of feature maps (Park & Kim, "How Do Vision Transformers Work?", ICLR 2022).

For a feature map (B, C, H, W): crop to a square of real pixels, take the 2-D FFT of each channel, the
log amplitude ``log(|F| + eps)``, shift zero frequency to the centre, average over images and channels,
read the half diagonal from the centre (per-axis frequency 0 to pi) and subtract the value at
frequency 0. The result, "delta log amplitude", says how much weaker each frequency is than the
mean (DC) component; a curve that drops less towards pi keeps more high-frequency signal.

What is exactly true (the tests check these):

- ``delta[0] == 0`` by construction.
- Amplitudes ignore circular shifts, so a rolled map gives the same curve.
- A constant map ``c`` has ``|F| = |c| H W`` at DC and 0 elsewhere, so
  ``delta[k > 0] = log(eps) - log(|c| H W + eps)`` (not zero; zero only for ``c = 0``).
- ``1 + cos(2 pi k0 (i + j) / n)`` has ``|F| = n^2`` at DC and ``n^2 / 2`` at ``(k0, k0)``: a peak
  ``delta[k0] = log(1/2)`` standing ``log(n^2 / 2 / eps)`` above its neighbours.
- White noise: DC and the diagonal Nyquist bin ``(n/2, n/2)`` are real Gaussians, the other bins complex
  Gaussians of the same power, and ``E log|F|`` differs between the two by ``log(2) / 2``; so the mean
  curve is flat at ``+log(2)/2`` for ``0 < k < n/2`` and back at 0 at ``k = n/2`` (exactly, in expectation).

Differences to the reference notebook: the diagonal includes the Nyquist bin ``(n/2, n/2)`` for even
``n`` (it wraps to index 0 after the shift and the notebook drops it), so the curve ends at pi; the
x values are the exact per-axis frequencies ``2 pi k / n``.

References:
    N. Park and S. Kim, "How Do Vision Transformers Work?", ICLR 2022 (fourier_analysis.ipynb of
    xxxnell/how-do-vits-work: method only, written anew).
"""
from __future__ import annotations

import math

import torch

EPS = 1e-6


def crop_square(x: torch.Tensor, valid_hw: tuple[int, int] | None = None) -> torch.Tensor:
    """Crop a feature map to its top-left square of real (unpadded) pixels.

    Args:
        x: (B, C, H, W) feature map.
        valid_hw: (h, w) extent of real pixels (the image before padding, at this map's stride);
            default the whole map.

    Returns:
        (B, C, S, S) with ``S = min(h, w)``.
    """
    if x.dim() != 4:
        raise ValueError(f'expected a (B, C, H, W) feature map, got shape {tuple(x.shape)}')
    h, w = valid_hw if valid_hw is not None else x.shape[-2:]
    h, w = min(int(h), x.shape[-2]), min(int(w), x.shape[-1])
    s = min(h, w)
    if s < 2:
        raise ValueError(f'need at least 2x2 real pixels, got {h}x{w}')
    return x[..., :s, :s]


def log_amplitude_spectrum(x: torch.Tensor, eps: float = EPS) -> torch.Tensor:
    """Mean log amplitude of the 2-D FFT, zero frequency at the centre.

    Args:
        x: (B, C, H, W) real feature map.
        eps: Added to ``|F|`` before the log.

    Returns:
        (H, W) ``mean over B, C of log(|fft2(x)| + eps)``, ``fftshift``-ed: zero frequency at
        ``(H // 2, W // 2)``. Computed in float64.
    """
    if x.dim() != 4:
        raise ValueError(f'expected a (B, C, H, W) feature map, got shape {tuple(x.shape)}')
    f = torch.fft.fft2(x.detach().to(torch.float64))
    la = torch.log(f.abs() + eps).mean(dim=(0, 1))
    return torch.fft.fftshift(la, dim=(-2, -1))


def half_diagonal(spec: torch.Tensor) -> torch.Tensor:
    """Half diagonal of a centred (S, S) spectrum: bins (k, k) for k = 0 .. S // 2.

    Args:
        spec: (S, S) spectrum with zero frequency at ``(S // 2, S // 2)``.

    Returns:
        (S // 2 + 1,) values; for even S the last is the Nyquist bin (it wraps to index 0 after
        the shift).
    """
    s = spec.shape[-1]
    if spec.shape[-2] != s:
        raise ValueError(f'half_diagonal needs a square spectrum, got {tuple(spec.shape)}')
    c = s // 2
    idx = (torch.arange(s // 2 + 1) + c) % s
    return spec[idx, idx]


def diagonal_frequencies(size: int) -> torch.Tensor:
    """Per-axis angular frequency (rad/pixel) of the half-diagonal bins: ``2 pi k / size``, k = 0..size//2."""
    return 2 * math.pi * torch.arange(size // 2 + 1, dtype=torch.float64) / size


def relative_log_amplitude(x: torch.Tensor, valid_hw: tuple[int, int] | None = None,
                           eps: float = EPS) -> tuple[torch.Tensor, torch.Tensor]:
    """Delta log amplitude along the half diagonal (Park & Kim).

    Args:
        x: (B, C, H, W) feature map (several images and channels are averaged).
        valid_hw: (h, w) of real pixels, see :func:`crop_square`.
        eps: See :func:`log_amplitude_spectrum`.

    Returns:
        (freqs, delta): both (S // 2 + 1,) float64; ``freqs`` from 0 to pi (even S), ``delta[0] == 0``.
    """
    sq = crop_square(x, valid_hw)
    curve = half_diagonal(log_amplitude_spectrum(sq, eps))
    return diagonal_frequencies(sq.shape[-1]), curve - curve[0]


def tokens_to_map(tokens: torch.Tensor, hw: tuple[int, int] | None = None) -> torch.Tensor:
    """(B, N, C) ViT tokens (no class token) -> (B, C, H, W); square when ``hw`` is not given."""
    b, n, c = tokens.shape
    if hw is None:
        h = int(round(math.sqrt(n)))
        if h * h != n:
            raise ValueError(f'{n} tokens are not a square grid; pass hw=(H, W)')
        hw = (h, h)
    return tokens.transpose(1, 2).reshape(b, c, *hw)

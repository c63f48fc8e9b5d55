"""Fourier analysis on inputs whose spectra are known exactly (see analysis/fourier.py docstring)."""
import math

import pytest
import torch

from analysis.fourier import (EPS, crop_square, diagonal_frequencies, half_diagonal, log_amplitude_spectrum,
                              relative_log_amplitude, tokens_to_map)


def test_zero_frequency_and_range():
    f, d = relative_log_amplitude(torch.randn(2, 3, 16, 16))
    assert d[0] == 0 and d.shape == (9,) and f[0] == 0 and f[-1] == pytest.approx(math.pi)
    f, d = relative_log_amplitude(torch.randn(1, 2, 15, 15))  # odd: stops below pi
    assert d.shape == (8,) and f[-1] == pytest.approx(2 * math.pi * 7 / 15)


@pytest.mark.parametrize('c', [1.0, -3.5, 1e-3])
def test_constant_map_is_not_zero_but_log_eps_ratio(c):
    n = 16
    _, d = relative_log_amplitude(torch.full((2, 4, n, n), c, dtype=torch.float64))
    assert d[0] == 0
    expected = math.log(EPS) - math.log(abs(c) * n * n + EPS)
    assert torch.allclose(d[1:], torch.full_like(d[1:], expected), atol=1e-6)


def test_zero_map_is_all_zero():
    _, d = relative_log_amplitude(torch.zeros(1, 1, 8, 8))
    assert torch.equal(d, torch.zeros_like(d))


@pytest.mark.parametrize('k0', [1, 3, 5, 8])
def test_single_diagonal_sinusoid_peaks_at_its_frequency(k0):
    n = 16
    i = torch.arange(n, dtype=torch.float64)
    x = 1 + torch.cos(2 * math.pi * k0 * (i[:, None] + i[None, :]) / n)
    f, d = relative_log_amplitude(x[None, None])
    assert int(torch.argmax(d[1:])) + 1 == k0
    assert f[k0] == pytest.approx(2 * math.pi * k0 / n)
    # Nyquist (k0 = n/2): cos(pi (i+j)) is real at that bin with amplitude n^2, not n^2/2
    peak = n * n / 2 if k0 < n // 2 else n * n
    assert d[k0] == pytest.approx(math.log(peak + EPS) - math.log(n * n + EPS), abs=1e-9)
    others = torch.cat([d[1:k0], d[k0 + 1:]])
    assert torch.all(others < math.log(0.5) - 10)


def test_white_noise_is_flat_with_known_offsets():
    g = torch.Generator().manual_seed(0)
    n = 32
    x = torch.randn(8, 256, n, n, generator=g, dtype=torch.float64)
    _, d = relative_log_amplitude(x)
    inner = d[1:-1]
    # complex-Gaussian bins vs the real-Gaussian DC bin: E log|F| differs by log(2)/2
    assert torch.all((inner - math.log(2) / 2).abs() < 0.08), inner
    assert (inner.max() - inner.min()) < 0.12  # flat
    assert abs(float(d[-1])) < 0.1  # Nyquist bin is real like DC


def test_shift_invariance_and_scale():
    x = torch.randn(2, 3, 12, 12, dtype=torch.float64)
    _, d = relative_log_amplitude(x)
    _, d_roll = relative_log_amplitude(torch.roll(x, shifts=(5, -3), dims=(2, 3)))
    assert torch.allclose(d, d_roll, atol=1e-9)
    _, d_scaled = relative_log_amplitude(1000 * x)
    assert torch.allclose(d, d_scaled, atol=1e-4)  # eps is negligible at this scale


def test_crop_excludes_padding():
    x = torch.randn(1, 2, 10, 14)
    padded = torch.nn.functional.pad(x, (0, 6, 0, 10))  # (1, 2, 20, 20) with zero padding
    assert crop_square(padded, (10, 14)).shape == (1, 2, 10, 10)
    assert torch.equal(crop_square(padded, (10, 14)), x[..., :10, :10])
    _, d_pad = relative_log_amplitude(padded, valid_hw=(10, 14))
    _, d_ref = relative_log_amplitude(x[..., :10, :10])
    assert torch.allclose(d_pad, d_ref)
    with pytest.raises(ValueError, match=r'\(B, C, H, W\)'):
        crop_square(torch.zeros(3, 4, 4))


def test_spectrum_centre_and_half_diagonal():
    x = torch.ones(1, 1, 6, 6)
    spec = log_amplitude_spectrum(x)
    assert spec.shape == (6, 6) and int(torch.argmax(spec)) == 3 * 6 + 3  # DC at the centre
    s = torch.arange(36.).reshape(6, 6)
    assert half_diagonal(s).tolist() == [21., 28., 35., 0.]  # (3,3),(4,4),(5,5), then wrapped Nyquist (0,0)
    assert diagonal_frequencies(6).tolist() == pytest.approx([0, math.pi / 3, 2 * math.pi / 3, math.pi])


def test_tokens_to_map():
    t = torch.arange(2 * 9 * 4.).reshape(2, 9, 4)
    m = tokens_to_map(t)
    assert m.shape == (2, 4, 3, 3) and m[1, 2, 0, 1] == t[1, 1, 2]
    with pytest.raises(ValueError, match='not a square'):
        tokens_to_map(torch.zeros(1, 6, 2))

"""Audio perturbations on batches of mono waveforms (N, T), floats in [-1, 1], at a known sample rate.

All of them work on the whole batch along the last axis (scipy filters, FFT convolution, STFT),
and keep the length T, so the model can take the result.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from pytest_aisp.multimodal.inputs import Context
from pytest_aisp.multimodal.perturbation import Perturbation

DEFAULT = ("white_noise", "pink_noise", "speed", "time_shift", "clipping", "lowpass", "reverb", "mp3")
_EPS = 1e-12


def _power(x: np.ndarray) -> np.ndarray:
    return np.mean(x.astype(np.float64) ** 2, axis=-1, keepdims=True) + _EPS


def _at_snr(signal: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """``signal`` plus ``noise`` scaled so the signal-to-noise ratio is ``snr_db`` per example."""
    scale = np.sqrt(_power(signal) / (_power(noise) * 10 ** (snr_db / 10)))
    return signal + noise * scale


def pink(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Pink (1/f power) noise of ``shape`` along the last axis."""
    spectrum = np.fft.rfft(rng.standard_normal(shape), axis=-1)
    freqs = np.arange(spectrum.shape[-1], dtype=np.float64)
    freqs[0] = 1.0
    return np.fft.irfft(spectrum / np.sqrt(freqs), n=shape[-1], axis=-1)


def _fit_length(x: np.ndarray, length: int) -> np.ndarray:
    if x.shape[-1] >= length:
        return x[..., :length]
    return np.pad(x, [(0, 0)] * (x.ndim - 1) + [(0, length - x.shape[-1])])


def _resample(x: np.ndarray, factor: float) -> np.ndarray:
    """Play ``x`` ``factor`` times faster (length / factor), by band-limited resampling."""
    from fractions import Fraction

    from scipy.signal import resample_poly

    ratio = Fraction(1 / factor).limit_denominator(64)
    return resample_poly(x, ratio.numerator, ratio.denominator, axis=-1)


def _time_stretch(x: np.ndarray, rate: float, n_fft: int = 512) -> np.ndarray:
    """Phase-vocoder time stretch: ``rate`` > 1 is shorter, same pitch."""
    from scipy.signal import istft, stft

    hop = n_fft // 4
    _, _, spec = stft(x, nperseg=n_fft, noverlap=n_fft - hop, axis=-1)
    steps = np.arange(0, spec.shape[-1] - 1, rate)
    phase_advance = np.linspace(0, np.pi * hop, spec.shape[-2])[:, None]
    left, right = spec[..., np.floor(steps).astype(int)], spec[..., np.floor(steps).astype(int) + 1]
    frac = steps - np.floor(steps)
    magnitude = (1 - frac) * np.abs(left) + frac * np.abs(right)
    delta = np.angle(right) - np.angle(left) - phase_advance
    delta = delta - 2 * np.pi * np.round(delta / (2 * np.pi))
    phase = np.angle(spec[..., :1]) + np.cumsum(phase_advance + delta, axis=-1)
    phase = np.concatenate([np.angle(spec[..., :1]), phase[..., :-1]], axis=-1)
    _, out = istft(
        magnitude * np.exp(1j * phase), nperseg=n_fft, noverlap=n_fft - hop, time_axis=-1, freq_axis=-2
    )
    return out


def _butter(x: np.ndarray, cutoff_hz: float, kind: str, sample_rate: int) -> np.ndarray:
    from scipy.signal import butter, sosfiltfilt

    nyquist = sample_rate / 2
    sos = butter(4, min(max(cutoff_hz / nyquist, 1e-4), 0.999), btype=kind, output="sos")
    return sosfiltfilt(sos, x, axis=-1)


# --- the operations ---------------------------------------------------------------------------


def _white_noise(x: np.ndarray, p: Mapping[str, Any], rng: np.random.Generator, c: Context) -> np.ndarray:
    return _at_snr(x, rng.standard_normal(x.shape), p["snr_db"])


def _pink_noise(x: np.ndarray, p: Mapping[str, Any], rng: np.random.Generator, c: Context) -> np.ndarray:
    return _at_snr(x, pink(rng, x.shape), p["snr_db"])


def _speed(x: np.ndarray, p: Mapping[str, Any], rng: np.random.Generator, c: Context) -> np.ndarray:
    return _fit_length(_resample(x, p["factor"]), x.shape[-1])


def _pitch_shift(x: np.ndarray, p: Mapping[str, Any], rng: np.random.Generator, c: Context) -> np.ndarray:
    ratio = 2 ** (p["semitones"] / 12)
    # stretch to ratio x the length at the same pitch, then play it ratio x faster
    stretched = _time_stretch(x, 1 / ratio)
    return _fit_length(_resample(stretched, ratio), x.shape[-1])


def _time_shift(x: np.ndarray, p: Mapping[str, Any], rng: np.random.Generator, c: Context) -> np.ndarray:
    shift = round(p["fraction"] * x.shape[-1])
    out = np.zeros_like(x)
    if shift >= 0:
        out[..., shift:] = x[..., : x.shape[-1] - shift]
    else:
        out[..., :shift] = x[..., -shift:]
    return out


def _clipping(x: np.ndarray, p: Mapping[str, Any], rng: np.random.Generator, c: Context) -> np.ndarray:
    peak = np.max(np.abs(x), axis=-1, keepdims=True)
    limit = peak * p["level"]
    return np.clip(x, -limit, limit)


def _lowpass(x: np.ndarray, p: Mapping[str, Any], rng: np.random.Generator, c: Context) -> np.ndarray:
    return _butter(x, p["cutoff_fraction"] * c.sample_rate / 2, "lowpass", c.sample_rate)  # type: ignore[operator]


def _highpass(x: np.ndarray, p: Mapping[str, Any], rng: np.random.Generator, c: Context) -> np.ndarray:
    return _butter(x, p["cutoff_fraction"] * c.sample_rate / 2, "highpass", c.sample_rate)  # type: ignore[operator]


def _reverb(x: np.ndarray, p: Mapping[str, Any], rng: np.random.Generator, c: Context) -> np.ndarray:
    from scipy.signal import fftconvolve

    rate = int(c.sample_rate)  # type: ignore[arg-type]
    length = max(2, round(p["rt60"] * rate))
    t = np.arange(length) / rate
    # exponentially decaying noise: -60 dB after rt60 seconds
    impulse = rng.standard_normal(length) * 10 ** (-3 * t / p["rt60"])
    impulse[0] = 1.0
    impulse /= np.sqrt(np.sum(impulse**2))
    wet = fftconvolve(x, impulse[None, :], axes=-1)[..., : x.shape[-1]]
    wet *= np.sqrt(_power(x) / _power(wet))
    return (1 - p["wet"]) * x + p["wet"] * wet


def _mp3(x: np.ndarray, p: Mapping[str, Any], rng: np.random.Generator, c: Context) -> np.ndarray:
    """Band limit plus coarse spectral quantisation: what a low-bitrate perceptual codec does."""
    from scipy.signal import istft, stft

    rate = int(c.sample_rate)  # type: ignore[arg-type]
    n_fft = 512
    freqs, _, spec = stft(x, fs=rate, nperseg=n_fft, axis=-1)
    spec[..., freqs > p["bandwidth_hz"], :] = 0
    magnitude = np.abs(spec)
    peak = magnitude.max(axis=(-2, -1), keepdims=True) + _EPS
    # drop what is far below the loudest component (masking) and quantise the rest
    spec[magnitude < peak * 10 ** (-p["dynamic_range_db"] / 20)] = 0
    step = peak * 2.0 ** (-p["bits"])
    spec = np.round(spec.real / step) * step + 1j * np.round(spec.imag / step) * step
    _, out = istft(spec, fs=rate, nperseg=n_fft, time_axis=-1, freq_axis=-2)
    return _fit_length(out, x.shape[-1])


def background_signal(rng: np.random.Generator, length: int, sample_rate: int) -> np.ndarray:
    """A synthetic busy background: mains hum, brown rumble and a few warbling tones."""
    t = np.arange(length) / sample_rate
    hum = 0.3 * np.sin(2 * np.pi * 50 * t) + 0.1 * np.sin(2 * np.pi * 150 * t)
    rumble = np.cumsum(rng.standard_normal(length))
    rumble = (rumble - np.linspace(rumble[0], rumble[-1], length)) / (np.std(rumble) + _EPS) * 0.3
    tones = np.zeros(length)
    for _ in range(4):
        f0 = rng.uniform(200, min(3000, sample_rate / 2.5))
        tones += np.sin(2 * np.pi * f0 * t + 3 * np.sin(2 * np.pi * rng.uniform(0.5, 4) * t))
    return hum + rumble + 0.2 * tones


def _background(x: np.ndarray, p: Mapping[str, Any], rng: np.random.Generator, c: Context) -> np.ndarray:
    noise = np.stack(
        [
            background_signal(rng, x.shape[-1], int(c.sample_rate))  # type: ignore[arg-type]
            for _ in range(x.shape[0])
        ]
    )
    return _at_snr(x, noise, p["snr_db"])


def _native(function: Any) -> Any:
    def run(
        batch: np.ndarray, params: Mapping[str, Any], rng: np.random.Generator, context: Context
    ) -> np.ndarray:
        out = function(batch.astype(np.float64), params, rng, context)
        return np.clip(out, -1.0, 1.0).astype(batch.dtype)

    return run


def _perturbation(name: str, mapping: str, params: Any, native: Any) -> Perturbation:
    parameters = params if params.__code__.co_argcount == 3 else (lambda s, rng, n, _f=params: _f(s))
    return Perturbation(
        name=f"audio:{name}",
        mapping=mapping,
        parameters=parameters,
        native=_native(native),
        augly_note="AugLy's audio module needs librosa and torchaudio",
    )


def _sign(rng: np.random.Generator) -> float:
    return -1.0 if rng.random() < 0.5 else 1.0


PERTURBATIONS: tuple[Perturbation, ...] = (
    _perturbation(
        "white_noise", "white noise at SNR = 40 − 40·s dB", lambda s: {"snr_db": 40 - 40 * s}, _white_noise
    ),
    _perturbation(
        "pink_noise", "pink (1/f) noise at SNR = 40 − 40·s dB", lambda s: {"snr_db": 40 - 40 * s}, _pink_noise
    ),
    _perturbation(
        "speed",
        "speed factor 1 ± 0.4·s (pitch follows, seeded direction), length kept",
        lambda s, rng, n: {"factor": 1 + 0.4 * s * _sign(rng)},
        _speed,
    ),
    _perturbation(
        "pitch_shift",
        "pitch shift by ±6·s semitones (seeded), duration kept",
        lambda s, rng, n: {"semitones": 6 * s * _sign(rng)},
        _pitch_shift,
    ),
    _perturbation(
        "time_shift",
        "shift by ±0.3·s of the length (seeded), zero fill",
        lambda s, rng, n: {"fraction": 0.3 * s * _sign(rng)},
        _time_shift,
    ),
    _perturbation(
        "clipping",
        "hard clipping at (1 − 0.9·s) of each example's peak",
        lambda s: {"level": 1 - 0.9 * s},
        _clipping,
    ),
    _perturbation(
        "lowpass",
        "4th-order low-pass at 0.03^s of Nyquist",
        lambda s: {"cutoff_fraction": 0.03**s * 0.999},
        _lowpass,
    ),
    _perturbation(
        "highpass",
        "4th-order high-pass at 0.3·s of Nyquist",
        lambda s: {"cutoff_fraction": 0.3 * s},
        _highpass,
    ),
    _perturbation(
        "reverb",
        "synthetic room: RT60 = 0.05 + 0.95·s s, wet mix 0.8·s",
        lambda s: {"rt60": 0.05 + 0.95 * s, "wet": 0.8 * s},
        _reverb,
    ),
    _perturbation(
        "mp3",
        "codec-like: bandwidth 16 kHz·(3/16)^s, 60 − 30·s dB range, 10 − 6·s bits",
        lambda s: {
            "bandwidth_hz": 16000 * (3 / 16) ** s,
            "dynamic_range_db": 60 - 30 * s,
            "bits": 10 - 6 * s,
        },
        _mp3,
    ),
    _perturbation(
        "background",
        "synthetic background (hum, rumble, tones) at SNR = 30 − 30·s dB",
        lambda s: {"snr_db": 30 - 30 * s},
        _background,
    ),
)

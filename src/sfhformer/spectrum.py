"""Fourier spectra of images, as in the paper's analysis of where degradations live.

Colour images are analysed through their luminance (BT.601: 0.299 R + 0.587 G + 0.114 B).
Before the FFT the mean is removed and a 2-D Hann window applied, so that the image's
borders (which the DFT treats as periodic) do not smear energy over every frequency.
Frequencies are in cycles per pixel: 0 (flat) to 0.5 (Nyquist) along an axis, up to
0.5 * sqrt(2) along a diagonal.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import ImageError
from .io import read_image


def luminance(img: np.ndarray) -> np.ndarray:
    """(H, W), (H, W, 1) or (H, W, 3|4) image, integer or float in [0, 1] -> (H, W) float64 in [0, 1]."""
    x = np.asarray(img)
    scale = float(np.iinfo(x.dtype).max) if np.issubdtype(x.dtype, np.integer) else 1.0
    x = x.astype(np.float64) / scale
    if x.ndim == 3:
        x = x[..., 0] if x.shape[2] in (1, 2) else x[..., :3] @ np.array([0.299, 0.587, 0.114])
    return x


def power_spectrum(img: np.ndarray) -> np.ndarray:
    """Centred power spectrum |F|^2 of the windowed, mean-removed luminance, (H, W)."""
    y = luminance(img)
    y = y - y.mean()
    window = np.outer(np.hanning(y.shape[0]), np.hanning(y.shape[1]))
    return np.abs(np.fft.fftshift(np.fft.fft2(y * window))) ** 2


def log_magnitude(img: np.ndarray) -> np.ndarray:
    """log10(1 + |F|) of :func:`power_spectrum`, centred: what the paper's figures show."""
    return np.log10(1 + np.sqrt(power_spectrum(img)))


def radial_frequencies(h: int, w: int) -> np.ndarray:
    """Radial frequency (cycles/pixel) of each entry of a centred (h, w) spectrum."""
    fy = np.fft.fftshift(np.fft.fftfreq(h))[:, None]
    fx = np.fft.fftshift(np.fft.fftfreq(w))[None, :]
    return np.sqrt(fx ** 2 + fy ** 2)


@dataclass
class RadialProfile:
    """Share of the image's (non-DC) energy in each radial frequency band."""

    centers: np.ndarray  # (bins,) band centres, cycles/pixel
    energy: np.ndarray   # (bins,) fraction of the total energy, sums to 1
    edges: np.ndarray    # (bins + 1,)

    def peak(self) -> float:
        return float(self.centers[int(np.argmax(self.energy))])

    def high_frequency_share(self, cutoff: float = 0.25) -> float:
        """Fraction of the energy above ``cutoff`` cycles/pixel: "high-frequency degradation" as a number."""
        return float(self.energy[self.centers >= cutoff].sum())


def radial_profile(img: np.ndarray, bins: int = 32) -> RadialProfile:
    """Energy by frequency band: the power spectrum summed over rings of equal width."""
    power = power_spectrum(img)
    r = radial_frequencies(*power.shape)
    edges = np.linspace(0, 0.5 * np.sqrt(2), bins + 1)
    energy, _ = np.histogram(r, bins=edges, weights=power)
    total = energy.sum()
    return RadialProfile((edges[:-1] + edges[1:]) / 2, energy / total if total > 0 else energy, edges)


def spectrum_figure(image: np.ndarray, clean: np.ndarray | None = None, titles: tuple[str, str] = ("input", "clean")):
    """A matplotlib figure: the images, their centred log spectra, the spectrum of their
    difference, and the radial energy profiles of each."""
    from matplotlib.figure import Figure  # not pyplot: no global backend or figure registry

    panels = [(titles[0], image, False)]
    if clean is not None:
        if luminance(clean).shape != luminance(image).shape:
            raise ImageError(f"image and clean reference differ in size: {luminance(image).shape} vs "
                             f"{luminance(clean).shape}")
        panels += [(titles[1], clean, False), (f"{titles[0]} - {titles[1]}", luminance(image) - luminance(clean), True)]
    n = len(panels)
    fig = Figure(figsize=(4.2 * n, 10.5), layout="constrained")
    grid = fig.add_gridspec(3, n, height_ratios=[1, 1, 0.9])
    h, w = luminance(image).shape
    extent = (-0.5, 0.5, -0.5, 0.5)
    profile_ax = fig.add_subplot(grid[2, :])
    for i, (title, img, difference) in enumerate(panels):
        ax = fig.add_subplot(grid[0, i])
        arr = np.asarray(img)
        if difference:  # signed: a colour map centred on zero
            lim = float(np.abs(arr).max()) or 1.0
            im = ax.imshow(arr, cmap="coolwarm", vmin=-lim, vmax=lim)
            fig.colorbar(im, ax=ax, shrink=0.8, label="luminance difference")
        else:
            ax.imshow(arr if arr.ndim == 3 and arr.shape[2] >= 3 else luminance(arr), cmap="gray")
        ax.set_title(title)
        ax.set_axis_off()
        ax = fig.add_subplot(grid[1, i])
        im = ax.imshow(log_magnitude(img), cmap="magma", extent=extent, origin="lower")
        ax.set_title(f"log spectrum: {title}")
        ax.set_xlabel("horizontal frequency (cycles/pixel)")
        ax.set_ylabel("vertical frequency (cycles/pixel)")
        fig.colorbar(im, ax=ax, shrink=0.8, label="log10(1 + |F|)")
        prof = radial_profile(img)
        profile_ax.semilogy(prof.centers, np.maximum(prof.energy, 1e-12),
                            label=f"{title} (energy above 0.25 c/px: {prof.high_frequency_share():.1%})")
    profile_ax.set_xlabel("radial frequency (cycles/pixel)")
    profile_ax.set_ylabel("share of energy per band")
    profile_ax.set_title(f"radial energy profile ({h}x{w}, luminance, Hann window)")
    profile_ax.grid(True, which="both", alpha=0.3)
    profile_ax.legend()
    return fig


def save_spectrum(image_path: str | os.PathLike, output: str | os.PathLike,
                  clean_path: str | os.PathLike | None = None) -> dict[str, RadialProfile]:
    """Write the spectrum figure of an image file (and its clean reference) to a PNG; return
    the radial profiles."""
    from .utils import atomic_path

    image = read_image(image_path).pixels
    clean = read_image(clean_path).pixels if clean_path is not None else None
    names = (Path(image_path).stem, Path(clean_path).stem if clean_path else "clean")
    fig = spectrum_figure(image, clean, names)
    with atomic_path(output, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    out = {names[0]: radial_profile(image)}
    if clean is not None:
        out[names[1]] = radial_profile(clean)
        out["difference"] = radial_profile(luminance(image) - luminance(clean))
    return out

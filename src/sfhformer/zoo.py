"""The model zoo: the models that ship in the package and every checkpoint the authors released,
with how to load and score each, and the paper's numbers to compare with.

Nothing here is downloaded: the authors' files are fetched by hand (``docs/model-zoo.md``
says where) and loaded by path. The paper's scores are for all the benchmarks of its tables,
including those without a released checkpoint.
"""

from __future__ import annotations

from dataclasses import dataclass

REPOSITORY = "https://github.com/deng-ai-lab/SFHformer"


@dataclass(frozen=True)
class ZooModel:
    """One model: ``weights`` is a bundled name or the file as its authors distribute it."""

    weights: str
    task: str
    dataset: str
    preset: str
    layout: str
    paper: tuple[float, float] | None  # the paper's PSNR / SSIM on ``dataset``
    source: str  # where the file comes from
    protocol: str = "authors"

    def eval_command(self, data: str = "DATA") -> str:
        preset = f" --preset {self.preset}" if self.preset not in ("", "bundled") else ""
        return (f"sfhformer eval --weights {self.weights}{preset} --data {data} --layout {self.layout} "
                f"--protocol {self.protocol}")


MODELS: tuple[ZooModel, ...] = (
    ZooModel("denoise", "denoising (Gaussian, Poisson-Gaussian)", "our held-out photos", "bundled", "paired", None,
             "ships in the package (docs/bundled-models.md)", "basicsr"),
    ZooModel("deblur", "motion deblurring", "our held-out photos", "bundled", "paired", None,
             "ships in the package (docs/bundled-models.md)", "basicsr"),
    ZooModel("sfhformer_haze_its.pth", "dehazing", "SOTS-indoor", "haze_its", "sots_indoor", (43.03, 0.9966),
             f"{REPOSITORY} dehazing/ (also its README's Baidu link)"),
    ZooModel("sfhformer_haze_ots.pth", "dehazing", "SOTS-outdoor", "haze_ots", "sots_outdoor", (38.83, 0.9951),
             f"{REPOSITORY} dehazing/ (also its README's Baidu link)"),
    ZooModel("sfhformer_22422_lolv2r.pth", "low light", "LOL-v2-real", "lol_m", "lol_v2_real", (23.78, 0.872),
             f"{REPOSITORY} lowlight/ (also its README's Baidu link)"),
    ZooModel("sfhformer_11211_lolv2s.pth", "low light", "LOL-v2-synthetic", "lol_s", "lol_v2_synthetic",
             (25.80, 0.937), f"{REPOSITORY} lowlight/ (also its README's Baidu link)"),
    ZooModel("sfhformer_motion_blur", "motion deblurring", "GoPro", "motion_blur", "gopro", (34.01, 0.969),
             "its README's Baidu link (Motion deblur GoPro)"),
)

# The paper's tables (PSNR, SSIM), as the authors' README shows them; the checkpoints above
# cover five of them.
PAPER_SCORES: dict[str, tuple[float, float]] = {
    "SOTS-indoor": (43.03, 0.9966), "SOTS-outdoor": (38.83, 0.9951), "O-HAZE": (25.81, 0.94),
    "NH-HAZE": (20.73, 0.80), "Dense-Haze": (17.84, 0.68),
    "Rain200L": (41.85, 0.9908), "Rain200H": (32.33, 0.9351), "DID": (35.44, 0.9655), "DDN": (34.38, 0.9594),
    "SPA": (50.11, 0.9942), "Raindrop-A": (33.10, 0.946), "Raindrop-B": (27.17, 0.838),
    "CSD": (37.45, 0.99), "SRRS": (32.39, 0.98), "Snow100K": (33.94, 0.95),
    "GoPro": (34.01, 0.969), "HIDE": (31.66, 0.948), "RealBlur-R": (36.33, 0.963), "RealBlur-J": (29.05, 0.884),
    "DPDD (combined)": (26.12, 0.807),
    "LOL-v1": (24.29, 0.862), "LOL-v2-real": (23.78, 0.872), "LOL-v2-synthetic": (25.80, 0.937),
    "MIT-Adobe FiveK": (25.12, 0.915), "LSUI": (30.18, 0.9449), "UIEB": (23.54, 0.9177), "SIDD": (40.19, 0.961),
}


def format_models() -> str:
    """The table ``sfhformer models`` prints."""
    lines = [f"{'weights':<28} {'task':<20} {'dataset':<20} {'preset':<11} {'paper PSNR/SSIM':>16}"]
    for m in MODELS:
        paper = f"{m.paper[0]:.2f} / {m.paper[1]:.4g}" if m.paper else "-"
        lines.append(f"{m.weights:<28} {m.task:<20} {m.dataset:<20} {m.preset:<11} {paper:>16}")
    lines.append("")
    from .pretrained import VERSIONS
    lines += [f"{name}: {w.file}, SHA-256 {w.sha256}" for name, w in VERSIONS.items()]
    lines += [f"{m.weights}: {m.eval_command()}" for m in MODELS if m.preset != "bundled"]
    lines.append("The authors' files are not downloaded: docs/model-zoo.md says where each one is.")
    return "\n".join(lines)

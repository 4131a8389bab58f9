"""Real photographs from Debian's desktop-background packages: larger and darker training,
validation and test data than the pip samples, freely licensed, installed with apt-get
(``configs/bundled/install_photos.sh``). The split is fixed here, once.

Only photographs of real scenes are listed (no renders, drawings, gradients or logos), each at
the path Debian installs it to, with the licence that ``/usr/share/doc/PKG/copyright`` (or,
where it says more, the upstream licence file beside the images) gives for that file:

- mate-backgrounds: GPL-2+, per file in debian/copyright.
- plasma-workspace-wallpapers: GPL-2+ in debian/copyright (``Files: *``); each wallpaper's
  metadata.json says LGPLv3. The largest landscape size of each wallpaper is listed.
- lxqt-themes: CC-BY-SA-3.0, from /usr/share/lxqt/wallpapers/License (photographer Stef Binde;
  debian/copyright puts them under LGPL-2.1+). The EXIF of beam, fog, Valendas and
  this-is-not-windows as packaged still says CC BY-NC-SA: stale, fixed upstream (lxqt-themes
  commit 757cf3f, "Updated license exif data", to CC BY-SA 3.0).
- lomiri-wallpapers-16.04 / -20.04: per file in debian/copyright (CC-BY-4.0, CC-BY-SA-4.0,
  CC0-1.0, CC-BY-SA-3.0). The CC BY licences need the photographer credited (in the file name).

Comments: size, mean luminance (Rec. 709 weights on the sRGB values, 0-1), what it shows.
Dark (mean < 0.25): butterfly, path (val); after_the_rain, one_stands_out (held_out).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import ConfigError, NotFoundError

PACKAGES: tuple[str, ...] = ("mate-backgrounds", "plasma-workspace-wallpapers", "lxqt-themes",
                             "lomiri-wallpapers-16.04", "lomiri-wallpapers-20.04")

SPLITS: tuple[str, ...] = ("train", "val", "held_out", "all")

_MATE = "/usr/share/backgrounds/mate/nature/"
_PLASMA = "/usr/share/wallpapers/"
_LXQT = "/usr/share/lxqt/wallpapers/"
_LOMIRI = "/usr/share/backgrounds/"

# name -> (Debian package, installed path, licence, split)
DEBIAN_PHOTOS: dict[str, tuple[str, str, str, str]] = {
    # --- train ---
    "beam": ("lxqt-themes", _LXQT + "beam.png", "CC-BY-SA-3.0", "train"),
    # 2592x1944, 0.31, sunbeam through clouds over misty hills
    "appleflower": ("lxqt-themes", _LXQT + "appleflower.png", "CC-BY-SA-3.0", "train"),
    # 3000x1993, 0.42, apple blossom on green bokeh
    "flowers": ("lxqt-themes", _LXQT + "flowers.png", "CC-BY-SA-3.0", "train"),
    # 3000x1993, 0.38, purple wildflowers in meadow grass
    "fog": ("lxqt-themes", _LXQT + "fog.jpg", "CC-BY-SA-3.0", "train"),
    # 2048x1536, 0.43, fog rolling over brown field
    "this_is_not_windows": ("lxqt-themes", _LXQT + "this-is-not-windows.jpg", "CC-BY-SA-3.0", "train"),
    # 2048x1536, 0.37, green hills under blue sky
    "darkest_hour": ("plasma-workspace-wallpapers", _PLASMA + "DarkestHour/contents/images/2560x1600.jpg",
                     "GPL-2+", "train"),
    # 2560x1600, 0.30, misty blue lake at dusk
    "evening_glow": ("plasma-workspace-wallpapers", _PLASMA + "EveningGlow/contents/images/2560x1600.jpg",
                     "GPL-2+", "train"),
    # 2560x1600, 0.36, rowing boats on lake, sunset sky
    "fallen_leaf": ("plasma-workspace-wallpapers", _PLASMA + "FallenLeaf/contents/images/2560x1600.jpg",
                    "GPL-2+", "train"),
    # 2560x1600, 0.44, autumn maple leaves close-up
    "summer_1am": ("plasma-workspace-wallpapers", _PLASMA + "summer_1am/contents/images/2560x1600.jpg",
                   "GPL-2+", "train"),
    # 2560x1600, 0.52, calm lake with reeds, pink twilight
    "aqua": ("mate-backgrounds", _MATE + "Aqua.jpg", "GPL-2+", "train"),
    # 2560x1600, 0.58, water drop splash close-up
    "blinds": ("mate-backgrounds", _MATE + "Blinds.jpg", "GPL-2+", "train"),
    # 1920x1200, 0.58, bright green leaf veins macro
    "garden": ("mate-backgrounds", _MATE + "Garden.jpg", "GPL-2+", "train"),
    # 2560x1600, 0.49, red-orange marigold flower
    "green_meadow": ("mate-backgrounds", _MATE + "GreenMeadow.jpg", "GPL-2+", "train"),
    # 1280x1024, 0.60, young green grass blades
    "ladybird": ("mate-backgrounds", _MATE + "LadyBird.jpg", "GPL-2+", "train"),
    # 2560x1600, 0.48, ladybird on stem, blue flowers
    "raindrops": ("mate-backgrounds", _MATE + "RainDrops.jpg", "GPL-2+", "train"),
    # 1920x1200, 0.39, raindrops on green leaves
    "two_wings": ("mate-backgrounds", _MATE + "TwoWings.jpg", "GPL-2+", "train"),
    # 2560x1600, 0.39, dandelion seeds before orange flowers
    "wood": ("mate-backgrounds", _MATE + "Wood.jpg", "GPL-2+", "train"),
    # 2560x1920, 0.82, pale weathered wooden planks
    "bridge": ("lomiri-wallpapers-16.04", _LOMIRI + "Bridge_by_Sander_Klootwijk.jpg", "CC-BY-SA-4.0", "train"),
    # 4352x2448, 0.69, bridge cables over tidal flats
    "dragonfly": ("lomiri-wallpapers-16.04", _LOMIRI + "Dragonfly_by_Bolly.jpg", "CC-BY-SA-4.0", "train"),
    # 4224x3168, 0.33, dragonfly on twig, leaves, sky
    "paint_brushes": ("lomiri-wallpapers-16.04", _LOMIRI + "Picture_1A_by_freespace.jpg", "CC-BY-4.0", "train"),
    # 1365x1074, 0.39, colourful paint brushes close-up
    "wine": ("lomiri-wallpapers-16.04", _LOMIRI + "Wine_by_Jakkub_Mede.jpg", "CC-BY-4.0", "train"),
    # 2560x3837, 0.41, drum and wine bottle indoors (portrait)
    "aitzgorri": ("lomiri-wallpapers-16.04", _LOMIRI + "aitzgorri_by_Aitzol_Berasategi.jpg", "CC-BY-4.0",
                  "train"),
    # 3088x2056, 0.54, autumn meadow below mountain ridge
    "free": ("lomiri-wallpapers-16.04", _LOMIRI + "free_by_Peter_Nerlich.jpg", "CC-BY-SA-4.0", "train"),
    # 2880x2160, 0.62, bird ornament under white lamps
    "greentock": ("lomiri-wallpapers-16.04", _LOMIRI + "greentock_by_Peter_Nerlich.jpg", "CC-BY-SA-4.0",
                  "train"),
    # 2880x2160, 0.68, wall clock face close-up
    "seeding": ("lomiri-wallpapers-16.04", _LOMIRI + "seeding_by_Clements_Engelhardt.jpg", "CC0-1.0", "train"),
    # 5312x2988, 0.34, dandelion clocks in backlit meadow
    "sunset": ("lomiri-wallpapers-16.04", _LOMIRI + "sunset_by_Aitzol_Berasategi.jpg", "CC-BY-4.0", "train"),
    # 4272x2848, 0.44, sun setting over hilltop
    # --- val ---
    "butterfly": ("lxqt-themes", _LXQT + "butterfly.png", "CC-BY-SA-3.0", "val"),
    # 3000x1994, 0.19, swallowtail on thistle, dark background
    "path": ("plasma-workspace-wallpapers", _PLASMA + "Path/contents/images/2560x1600.jpg", "GPL-2+", "val"),
    # 2560x1600, 0.16, dark forest path, green undergrowth
    "fresh_flower": ("mate-backgrounds", _MATE + "FreshFlower.jpg", "GPL-2+", "val"),
    # 1600x1203, 0.28, saturated orange flower petals
    "kite": ("plasma-workspace-wallpapers", _PLASMA + "Kite/contents/images/2560x1600.jpg", "GPL-2+", "val"),
    # 2560x1600, 0.33, rainbow kite in deep blue sky
    "grey": ("plasma-workspace-wallpapers", _PLASMA + "Grey/contents/images/2560x1600.jpg", "GPL-2+", "val"),
    # 2560x1600, 0.46, black-and-white woven building facade
    "picos_de_europa": ("lomiri-wallpapers-16.04", _LOMIRI + "picosdeeuropa_by_Aitzol_Berasategi.jpg",
                        "CC-BY-4.0", "val"),
    # 3264x2448, 0.42, rocky mountains, trail, clouds
    "friends": ("lomiri-wallpapers-16.04", _LOMIRI + "friends_by_Aitzol_Berasategi.jpg", "CC-BY-4.0", "val"),
    # 2056x3088, 0.55, two spaniels at a door (portrait)
    "drop": ("lxqt-themes", _LXQT + "drop.png", "CC-BY-SA-3.0", "val"),
    # 2000x1333, 0.38, dewdrop on grass blade, green
    "fig_bowl": ("lomiri-wallpapers-16.04", _LOMIRI + "Picture_0B_by_freespace.jpg", "CC-BY-4.0", "val"),
    # 2572x1740, 0.39, halved fig in red bowl
    # --- held_out ---
    "after_the_rain": ("lxqt-themes", _LXQT + "after-the-rain.jpg", "CC-BY-SA-3.0", "held_out"),
    # 3000x1993, 0.24, dark clouds lit orange, dusk
    "one_stands_out": ("plasma-workspace-wallpapers", _PLASMA + "OneStandsOut/contents/images/2560x1600.jpg",
                       "GPL-2+", "held_out"),
    # 2560x1600, 0.18, dark moss, one orange sprig
    "yellow_flower": ("mate-backgrounds", _MATE + "YellowFlower.jpg", "GPL-2+", "held_out"),
    # 2560x1600, 0.43, saturated yellow flower macro
    "colorful_cups": ("plasma-workspace-wallpapers", _PLASMA + "ColorfulCups/contents/images/2560x1600.jpg",
                      "GPL-2+", "held_out"),
    # 2560x1600, 0.47, stacked colourful plastic cups
    "cold_ripple": ("plasma-workspace-wallpapers", _PLASMA + "ColdRipple/contents/images/2560x1600.jpg",
                    "GPL-2+", "held_out"),
    # 2560x1600, 0.50, black-and-white pier in fog
    "valendas": ("lxqt-themes", _LXQT + "Valendas.png", "CC-BY-SA-3.0", "held_out"),
    # 1920x1277, 0.37, mountain silhouettes under hazy sky
    "kleiber": ("lomiri-wallpapers-20.04", _LOMIRI + "Kleiber_by_Lukas_Baubkus.jpg", "CC-BY-SA-3.0", "held_out"),
    # 6028x3391, 0.62, nuthatch on tree trunk
    "life": ("lomiri-wallpapers-16.04", _LOMIRI + "life_by_Aitzol_Berasategi.jpg", "CC-BY-4.0", "held_out"),
    # 3088x2056, 0.40, forest stream over limestone rocks
    "dune": ("mate-backgrounds", _MATE + "Dune.jpg", "GPL-2+", "held_out"),
    # 1680x1050, 0.56, dune grass against sea
}


def debian_photographs(split: str = "all") -> list[Path]:
    """Installed files of a split (``"train"``, ``"val"``, ``"held_out"`` or ``"all"``);
    photographs whose package is not installed are left out."""
    return [Path(DEBIAN_PHOTOS[name][1]) for name in installed_names(split)]


def installed_names(split: str = "all") -> list[str]:
    """Names (keys of :data:`DEBIAN_PHOTOS`) of a split's photographs that are installed."""
    if split not in SPLITS:
        raise ConfigError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    return [name for name, (_, path, _, part) in DEBIAN_PHOTOS.items()
            if split in ("all", part) and Path(path).is_file()]


def load_debian_photograph(name: str, width: int | None = 640) -> np.ndarray:
    """One photograph of :data:`DEBIAN_PHOTOS` as (H, W, 3) uint8 RGB, resampled (Lanczos) to
    ``width`` pixels wide with its aspect kept (None: full size). 640 px is the
    width of the reported dark-flower case; shrinking also averages away the files' own noise.

    Raises:
        ConfigError: ``name`` is not listed.
        NotFoundError: its package is not installed (the message names the install script).
    """
    from PIL import Image

    if name not in DEBIAN_PHOTOS:
        raise ConfigError(f"{name!r} is not one of the Debian photographs ({', '.join(DEBIAN_PHOTOS)})")
    package, path, _, _ = DEBIAN_PHOTOS[name]
    if not Path(path).is_file():
        raise NotFoundError(f"{path}: not installed ({package}; bash configs/bundled/install_photos.sh)")
    with Image.open(path) as im:
        im = im.convert("RGB")
        if width is not None and im.width != width:
            im = im.resize((width, round(width * im.height / im.width)), Image.LANCZOS)
        return np.array(im)  # writable (torch.from_numpy warns on a read-only array)

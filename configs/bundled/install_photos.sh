#!/usr/bin/env bash
# Installs the Debian desktop-background packages whose real photographs (44 of them: landscapes,
# plants, animals, close-ups, dark and strongly coloured scenes) are the train / val / held_out
# data listed in src/sfhformer/data/debian.py (DEBIAN_PHOTOS, debian_photographs()). They need
# no download beyond Debian's own archive, and every file listed there is freely licensed:
#
#   mate-backgrounds             GPL-2+ (per file in its debian/copyright)
#   plasma-workspace-wallpapers  GPL-2+ (debian/copyright; each wallpaper's metadata says LGPLv3)
#   lxqt-themes                  CC-BY-SA-3.0 (/usr/share/lxqt/wallpapers/License, Stef Binde)
#   lomiri-wallpapers-16.04      CC-BY-4.0, CC-BY-SA-4.0, CC0-1.0 (per file in debian/copyright)
#   lomiri-wallpapers-20.04      CC-BY-SA-3.0 (Kleiber_by_Lukas_Baubkus.jpg)
#
# About 200 MB installed (without recommends; lxqt-themes still pulls lxqt-system-theme and
# x11-utils). Runs apt-get as root, or through sudo otherwise.
#
#   bash configs/bundled/install_photos.sh
set -euo pipefail
packages=(mate-backgrounds plasma-workspace-wallpapers lxqt-themes lomiri-wallpapers-16.04 lomiri-wallpapers-20.04)
apt=(env DEBIAN_FRONTEND=noninteractive apt-get)
if [[ $(id -u) != 0 ]]; then apt=(sudo "${apt[@]}"); fi
"${apt[@]}" update -qq
"${apt[@]}" install -y -qq --no-install-recommends "${packages[@]}"

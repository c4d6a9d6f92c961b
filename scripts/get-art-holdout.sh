#!/bin/sh
# The art hold-out (pixelsmith/data/art.py): download its Debian packages and unpack them into
# DIR without installing anything (about 500 MB of packages; the images are a few MB of them).
# Then: PIXELSMITH_ART_HOLDOUT=DIR python bench/editing.py --holdout art --tasks sr2
set -e
dir=${1:?usage: sh scripts/get-art-holdout.sh DIR}
# The packages of ART_HOLDOUT (tests/test_art_holdout.py keeps the two lists equal).
pkgs="wesnoth-1.16-data wesnoth-1.16-httt wesnoth-1.16-ttb texlive-fonts-extra-doc lilypond-doc-html lilypond-doc krita-data"
mkdir -p "$dir/.debs"
cd "$dir/.debs"
apt-get download $pkgs || { apt-get update -q >/dev/null && apt-get download $pkgs; }
for f in *.deb; do dpkg-deb -x "$f" ..; done
echo "unpacked $pkgs into $dir"

#!/bin/sh
# Make Fashion-MNIST available offline: Debian's dataset-fashion-mnist package holds the idx files.
set -e
DIR="${PIXELSMITH_FASHION_MNIST:-/usr/share/datasets/fashion-mnist}"
if [ -f "$DIR/train-images-idx3-ubyte.gz" ] || [ -f "$DIR/train-images-idx3-ubyte" ]; then
  exit 0
fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing Fashion-MNIST (Debian package dataset-fashion-mnist)..." >&2
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist >/dev/null
  exit 0
fi
echo "Fashion-MNIST is missing: run 'sudo apt-get install dataset-fashion-mnist'," >&2
echo "or set PIXELSMITH_FASHION_MNIST to a folder holding its idx files." >&2
exit 1

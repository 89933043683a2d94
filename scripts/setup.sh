#!/usr/bin/env bash
# Install everything FVI needs on a fresh Debian 12 machine: apt packages, a virtualenv with pinned
# packages, the tritonserver binary (nvidia-pytriton wheel) and perf_analyzer (tritonclient 2.48 wheel).
# Idempotent: a second run only checks. Usage: scripts/setup.sh [serve|train|convert]
# (convert: TensorFlow + tf2onnx in their own virtualenv, VENV=.venv-tf)
set -euo pipefail
cd "$(dirname "$0")/.."
KIND=${1:-serve}
VENV=${VENV:-.venv}
PY=${PYTHON:-python3}
STAMP="$VENV/.fvi-setup-$KIND"

# tesseract-ocr + tesseract-ocr-vie: the peer the evaluation (bench/evaluate.py) reports next to ours;
# mate-backgrounds: photographs the wild capture style (fvi.synth.photo.WILD) lays cards on
APT_PACKAGES="libpython3.11 libb64-0d fonts-dejavu-core fonts-dejavu-extra fonts-noto-core fonts-liberation2 fonts-roboto fonts-roboto-slab fonts-freefont-ttf fonts-sil-gentium fonts-sil-charis fonts-sil-andika fonts-inter fonts-open-sans fonts-lato fonts-crosextra-carlito fonts-linuxlibertine fonts-cantarell fonts-ebgaramond fonts-texgyre tesseract-ocr tesseract-ocr-vie mate-backgrounds"
missing=$(for p in $APT_PACKAGES; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || echo "$p"; done)
if [ -n "$missing" ]; then
  echo "setup: installing apt packages: $missing"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing >/dev/null
fi

if [ -f "$STAMP" ] && [ "$STAMP" -nt "requirements/$KIND.txt" ] && [ "$STAMP" -nt requirements/serve.txt ]; then
  exit 0
fi
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
"$VENV/bin/pip" install -q --upgrade pip
"$VENV/bin/pip" install -q -r "requirements/$KIND.txt"
if [ "$KIND" = convert ]; then  # the TensorFlow converter's own environment: nothing else goes in it
  touch "$STAMP"
  echo "setup: convert environment ready in $VENV"
  exit 0
fi
# the server binary only: pytriton's Python API (and its numpy/tritonclient pins) is not used
"$VENV/bin/pip" install -q --no-deps nvidia-pytriton==0.7.0
"$VENV/bin/pip" install -q --no-deps -e .
# training: PP-OCRv4's DB text detector as rapidocr ships it (converters/db_detector.py reads the file only, so
# none of the package's own dependencies are needed)
[ "$KIND" = train ] && "$VENV/bin/pip" install -q --no-deps rapidocr_onnxruntime==1.4.4
# perf_analyzer: the binary inside tritonclient 2.48.0's wheel runs on glibc 2.36 (newer ones need 2.38)
if [ ! -x "$VENV/bin/perf_analyzer" ]; then
  tmp=$(mktemp -d)
  "$VENV/bin/pip" download -q --no-deps -d "$tmp" tritonclient==2.48.0 --platform manylinux1_x86_64 --only-binary=:all:
  "$VENV/bin/python" - "$tmp" "$VENV/bin/perf_analyzer" <<'PY'
import sys, zipfile, glob, os
whl = glob.glob(os.path.join(sys.argv[1], "tritonclient-2.48.0-*.whl"))[0]
with zipfile.ZipFile(whl) as z:
    data = z.read("tritonclient-2.48.0.data/data/bin/perf_analyzer")
with open(sys.argv[2], "wb") as f:
    f.write(data)
os.chmod(sys.argv[2], 0o755)
PY
  rm -rf "$tmp"
fi
touch "$STAMP"
echo "setup: $KIND environment ready in $VENV"

#!/usr/bin/env bash
# Installs everything splatops needs into the active Python (a virtualenv if
# one is active), plus the system libraries it loads. Safe to run again.
#   bash scripts/setup.sh          # library, CLI and app
#   bash scripts/setup.sh --test   # also the test tools and a headless Chromium
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
WITH_TEST=0
[[ "${1:-}" == "--test" ]] && WITH_TEST=1

apt_pkgs=(libusb-1.0-0 libegl1 libgl1 libgomp1)
[[ $WITH_TEST == 1 ]] && apt_pkgs+=(chromium)
missing=()
for p in "${apt_pkgs[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if (( ${#missing[@]} )); then
  SUDO=""; [[ $(id -u) != 0 ]] && SUDO="sudo"
  echo "[setup] apt-get install ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# A CPU build of torch first, so nothing below pulls a CUDA build.
if ! $PY -c "import torch, sys; sys.exit(0 if torch.__version__.startswith('2.13.0') else 1)" 2>/dev/null; then
  echo "[setup] pip install torch==2.13.0"
  $PY -m pip install -q torch==2.13.0
fi
extra=""; [[ $WITH_TEST == 1 ]] && extra="[test]"
echo "[setup] pip install -e .$extra"
$PY -m pip install -q -e ".$extra"
echo "[setup] done"

#!/usr/bin/env bash
# One-time set-up of a fresh machine: system packages for headless OpenGL (EGL + Mesa llvmpipe),
# then worldsim and its Python dependencies. Safe to run again; it skips what is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
# EGL + Mesa: headless OpenGL for the engines; chromium + its driver: the web app's browser tests (Debian's build,
# driven by selenium; nothing downloads a browser of its own).
for pkg in libegl1 libegl-mesa0 libgl1-mesa-dri libgles2 libglx-mesa0 chromium chromium-driver; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  echo "setup: installing system packages: ${need[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}"
fi

PY=${PYTHON:-python3}
# torch first, pinned, so the CPU build is used and no CUDA wheels are pulled.
$PY -m pip install -q "torch==2.13.0"
$PY -m pip install -q -e ".[dev,bench,ray,lerobot,hf,rl,games,web]"
echo "setup: done ($($PY -c 'import worldsim, torch; print("worldsim", worldsim.__version__, "torch", torch.__version__)'))"

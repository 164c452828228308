#!/usr/bin/env bash
# What the offline image builder (python -m envci.images build) needs from Debian: mmdebstrap for the base
# root filesystem, busybox-static for the busybox image, gcc for the pause program, binutils' strip for the
# debug information some wheels carry. Idempotent and quiet.
set -euo pipefail

need=()
command -v mmdebstrap >/dev/null 2>&1 || need+=(mmdebstrap)
dpkg -s busybox-static >/dev/null 2>&1 || need+=(busybox-static)
command -v gcc >/dev/null 2>&1 || need+=(gcc libc6-dev)
command -v strip >/dev/null 2>&1 || need+=(binutils)
if [ ${#need[@]} -gt 0 ]; then
  echo "images: installing ${need[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
else
  echo "images: mmdebstrap, busybox-static, gcc and strip present"
fi

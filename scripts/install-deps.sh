#!/usr/bin/env bash
# Installs what attnmap needs to build and test on Debian (bookworm or newer), only what is
# missing. Used by scripts/example.sh and scripts/test.sh.
set -euo pipefail
packages=(cmake make gcc pkg-config libjansson-dev libopenblas-dev libcriterion-dev
          zlib1g-dev libpng-dev
          libopenmpi-dev openmpi-bin jq) # mpirun attnmap analyze and its test (docs/cluster.md)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "installing: ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi

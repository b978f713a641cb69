#!/usr/bin/env bash
# Screenshots of the report of a run (default: the bundled example run) for the README:
# examples/report-{heads,agreement,example}.png, taken by headless Chromium with the page's
# ?section= filter. Usage: examples/make_report_screenshots.sh [RUN]
set -euo pipefail
cd "$(dirname "$0")/.."
run=${1:-examples/runs/minilm-sentiment}
cli=${ATTNMAP_CLI:-./build/attnmap}
"$cli" report "$run" --quiet
page="$(cd "$run/report" && pwd)/index.html"
first=$(grep -o 'href="#ex-[0-9]*"' "$page" | head -n 1 | sed 's/href="#\(.*\)"/\1/')
shot() { # name, window size, query and hash
  chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size="$2" \
    --screenshot="examples/report-$1.png" "file://$page$3" >/dev/null 2>&1
}
shot heads 1240,1000 "?section=heads"
shot agreement 1360,900 "?section=agreement"
shot example 1240,1400 "?section=examples&ex=$first"
ls -l examples/report-*.png

#!/usr/bin/env bash
# Renders an example `replayctl compare --html` report in headless Chromium and saves a
# screenshot, to check by eye that the page reads well (CDFs, tails, per-task bars).
# The results files are synthetic (written by the StatsTests fixture writer): base, a
# same-distribution set and a 25 % slower set.
#   usage: scripts/render-compare-html.sh [OUTDIR]   (default /tmp/replayctl-compare-html)
set -euo pipefail
out=${1:-/tmp/replayctl-compare-html}
mkdir -p "$out"
cd "$(dirname "$0")/.."
command -v chromium >/dev/null || { echo "chromium missing: apt-get install -y chromium" >&2; exit 1; }
REPLAYCTL_WRITE_FIXTURES="$out" flock /tmp/replayctl-build.lock swift test --filter writeExampleFiles >/dev/null
flock /tmp/replayctl-build.lock swift build --product replayctl >/dev/null
bin=$(swift build --show-bin-path)/replayctl
"$bin" compare "$out/base.json" "$out/same.json" "$out/slow.json" --html "$out/report.html" > "$out/report.txt"
chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --screenshot="$out/report.png" \
  --window-size=1200,2400 "file://$out/report.html" 2>/dev/null
echo "wrote $out/report.html, $out/report.txt and $out/report.png"

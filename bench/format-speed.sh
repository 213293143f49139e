#!/usr/bin/env bash
# Size and speed of the .rpl format (issue targets: ≤ 4 bytes/event, encode ≥ 10 M events/s,
# decode ≥ 20 M events/s, one core, release build).
#   bench/format-speed.sh                  synthetic streams, plus every traces/*.rpl
#   bench/format-speed.sh FILE.rpl …       only these traces
#   ROUNDS=11 EVENTS=5000000 bench/format-speed.sh
# Prints medians of ROUNDS rounds (default 7). Builds Benchmarks/ in release mode; the
# benchmark runs single-threaded (pinned to one CPU when taskset is available). The script
# takes /tmp/replayctl-build.lock itself for the build: do not wrap it in flock.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds="${ROUNDS:-7}"
events="${EVENTS:-2000000}"
lock=(flock /tmp/replayctl-build.lock)
command -v flock >/dev/null || lock=()
"${lock[@]}" swift build --package-path Benchmarks -c release --product FormatBenchmark >&2
binary="$(swift build --package-path Benchmarks -c release --show-bin-path)/FormatBenchmark"
pin=()
command -v taskset >/dev/null && pin=(taskset -c 0)

files=("$@")
if [ ${#files[@]} -eq 0 ]; then
    "${pin[@]}" "$binary" --rounds "$rounds" --events "$events"
    shopt -s nullglob
    files=(traces/*.rpl)
fi
if [ ${#files[@]} -gt 0 ]; then
    "${pin[@]}" "$binary" --rounds "$rounds" "${files[@]}"
fi

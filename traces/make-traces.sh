#!/bin/sh
# Regenerates the sample traces in traces/ (needs root; run from the repository root).
#   sh traces/make-traces.sh [path/to/replayctl]
# Each workload is sized to run about a second and to keep its trace under 2 MB.
set -eu
REPLAYCTL=${1:-.build/release/replayctl}
WORKLOADS=${WORKLOADS:-../shared/workloads}
[ -x "$REPLAYCTL" ] || { echo "build first: swift build -c release" >&2; exit 1; }
[ -d "$WORKLOADS" ] || { echo "no workloads in $WORKLOADS (set WORKLOADS=…)" >&2; exit 1; }
cd "$(dirname "$0")/.."
rec() { name=$1; shift; "$REPLAYCTL" record -o "traces/$name.rpl" -- "$@"; "$REPLAYCTL" info "traces/$name.rpl" --limit 8 > "traces/$name.info.txt"; }
LOOPS=60000 rec pipe-pingpong sh "$WORKLOADS/pipe-pingpong.sh"
LOOPS=120 rec messaging sh "$WORKLOADS/messaging.sh"
LOOPS=450 rec periodic sh "$WORKLOADS/periodic.sh"
ls -l traces/*.rpl

#!/usr/bin/env bash
# Computes the power-vs-runs table of docs/compare.md: how often `compare` calls a known
# change of the wakeup-latency p99 "worse", by number of runs per set, on the synthetic
# model of Tests/StatsTests/Synthetic.swift. Release build (the simulation replays
# millions of samples).   usage: scripts/power-table.sh [TRIALS]   (default 200)
set -euo pipefail
cd "$(dirname "$0")/.."
REPLAYCTL_POWER_TABLE=${1:-200} flock /tmp/replayctl-build.lock \
  swift test -c release -Xswiftc -enable-testing --filter powerTable 2>&1 | sed -n '/POWER TABLE/,/^$/p;/passed after\|failed after/p'

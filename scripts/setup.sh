#!/usr/bin/env bash
# README command 1: installs what replayctl needs on a Debian/Ubuntu machine (as root or
# with sudo), builds it in release mode, and replays a sample trace (the main job).
set -euo pipefail
cd "$(dirname "$0")/.."
packages=(libtracefs-dev libtraceevent-dev pkg-config linux-perf trace-cmd rt-tests stress-ng rt-app python3-jsonschema)
sudo=()
[ "$(id -u)" -eq 0 ] || sudo=(sudo)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing ${missing[*]}"
    "${sudo[@]}" apt-get update -q
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -q "${missing[@]}"
fi
command -v swift >/dev/null || { echo "setup: swift not found — install Swift 6.3 (https://swift.org/install) and put it on PATH" >&2; exit 1; }
swift build -c release
bin="$(swift build -c release --show-bin-path)"
echo "setup: built $bin/replayctl"
sample=traces/messaging.rpl
# --all: the sample was recorded while other builds used 35 % of the machine; replaying
# those tasks too reproduces what the workload competed with (makespan ×1.03 against ×0.73
# for the workload alone, 5 runs each, 2026-12-08; `replay` says so when they are left out).
echo "setup: running: replayctl replay $sample --all --runs 5"
"$bin/replayctl" replay "$sample" --all --runs 5

#!/usr/bin/env bash
# Starts `replayctl corpus serve` on a free loopback port with the sample traces pushed to it,
# renders GET / in headless Chromium and writes the PNG (default bench/out/corpus-page.png).
# Usage: scripts/corpus-screenshot.sh [OUTPUT.png]    (run from anywhere; builds replayctl)
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-bench/out/corpus-page.png}"
mkdir -p "$(dirname "$out")"

if ! command -v chromium >/dev/null; then
    echo "corpus-screenshot: installing chromium (Debian package)"
    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium
fi
flock /tmp/replayctl-build.lock swift build --product replayctl >/dev/null
bin="$(swift build --show-bin-path)/replayctl"

work="$(mktemp -d)"
server=""
cleanup() {
    if [ -n "$server" ]; then kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

echo "$(head -c 24 /dev/urandom | base64 | tr -d '/+=') screenshot" > "$work/tokens"
"$bin" corpus serve --listen 127.0.0.1:0 --corpus "$work/corpus" --token-file "$work/tokens" >"$work/server.out" 2>"$work/server.err" &
server=$!
for _ in $(seq 100); do grep -q '^listening on' "$work/server.out" && break; sleep 0.1; done
url="$(grep -o 'http://127\.0\.0\.1:[0-9]*' "$work/server.out" | head -1)"
[ -n "$url" ] || { echo "corpus-screenshot: the server did not start:"; cat "$work/server.err"; exit 1; }
echo "corpus-screenshot: server at $url"

"$bin" corpus push traces/pipe-pingpong.rpl --server "$url" --token-file "$work/tokens" \
    --description "perf bench sched pipe: two tasks passing a token" --tag pipe --tag task-wakeups
"$bin" corpus push traces/messaging.rpl --server "$url" --token-file "$work/tokens" \
    --description "perf bench sched messaging, 80 senders/receivers" --tag sockets --tag many-tasks
"$bin" corpus push traces/periodic.rpl --server "$url" --token-file "$work/tokens" \
    --description "cyclictest, two timer threads" --tag timer --tag irq-wakeups
# An anonymised copy, to show the pseudonyms on the page.
"$bin" corpus add traces/periodic.rpl --anonymize --corpus "$work/local" >/dev/null
id="$("$bin" corpus list --json --corpus "$work/local" | grep '"id"' | head -1 | cut -d'"' -f4)"
"$bin" corpus get "$id" -o "$work/anonymised.rpl" --corpus "$work/local" >/dev/null
"$bin" corpus push "$work/anonymised.rpl" --server "$url" --token-file "$work/tokens" \
    --description "cyclictest, anonymised (host, command and task names replaced)" --tag timer

chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --screenshot="$out" --window-size=1200,900 "$url/" 2>/dev/null
echo "corpus-screenshot: wrote $out ($(stat -c %s "$out") bytes)"

#!/usr/bin/env bash
# Builds the libFuzzer target for the .rpl reader/decoder (and the replay PlanBuilder) and runs it.
#   fuzz/run.sh [SECONDS] [extra libFuzzer flags…]     (default 60 s; 0 = until stopped)
# Crashing inputs are written to fuzz/crash-*; the working corpus grows in fuzz/corpus/.
# Kept apart from `swift build`/`swift test`: the sanitizer flags apply only here.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-60}"
shift || true
out=.build/fuzz
mkdir -p "$out" fuzz/corpus
sources=(Sources/TraceFormat/*.swift)

echo "fuzz: building the seed generator and the fuzz target (swiftc -sanitize=fuzzer,address)"
swiftc -O -parse-as-library -module-name RPLSeeds "${sources[@]}" fuzz/MakeSeeds.swift -o "$out/make-seeds"
# The gold linker warns "Cannot export local symbol" for Swift symbols: harmless.
# PlanBuilder and the rt-app export are fuzzed too, compiled into the same module (its import of TraceFormat removed).
for f in PlanBuilder ReplayPlan RtAppExport; do sed '/^import TraceFormat$/d' "Sources/Replayer/$f.swift" > "$out/$f.swift"; done
swiftc -O -g -sanitize=fuzzer,address -parse-as-library -module-name RPLFuzz \
    "${sources[@]}" "$out/PlanBuilder.swift" "$out/ReplayPlan.swift" "$out/RtAppExport.swift" fuzz/FuzzDecoder.swift -o "$out/fuzz-decoder" 2> >(grep -v "Cannot export local symbol" >&2)
"$out/make-seeds" fuzz/corpus
# Version 1.0 files too (the reader still decodes them): the golden trace and its truncated copy.
cp traces/golden/small-v1.rpl fuzz/corpus/seed-golden-v1.rpl

echo "fuzz: running for ${seconds} s"
"$out/fuzz-decoder" fuzz/corpus -max_total_time="$seconds" -max_len=65536 -timeout=10 -rss_limit_mb=2048 \
    -artifact_prefix=fuzz/crash- -print_final_stats=1 "$@"

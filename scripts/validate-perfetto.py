#!/usr/bin/env python3
"""Checks a `replayctl export --format perfetto` file: loads it with Python's json, validates it
against docs/perfetto-export.schema.json, and checks that every flow id has one "s" and one "f".
Usage: scripts/validate-perfetto.py trace.json   (exit 0 and a summary line when valid)"""
import json, os, sys
import jsonschema

path = sys.argv[1]
schema_path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "docs", "perfetto-export.schema.json")
with open(path) as f:
    trace = json.load(f)
with open(schema_path) as f:
    schema = json.load(f)
jsonschema.validate(trace, schema, cls=jsonschema.Draft202012Validator)
events = trace["traceEvents"]
starts = [e["id"] for e in events if e["ph"] == "s"]
ends = [e["id"] for e in events if e["ph"] == "f"]
if sorted(starts) != sorted(ends) or len(set(starts)) != len(starts):
    sys.exit(f"{path}: flow ids unpaired or repeated")
slices = sum(1 for e in events if e["ph"] == "X")
print(f"{path}: valid, {len(events)} events, {slices} slices, {len(starts)} flows")

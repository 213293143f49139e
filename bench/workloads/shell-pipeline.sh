#!/bin/sh
# A shell pipeline: four processes streaming through pipes, each woken by the one before it.
seq 1 "${LINES:-3000000}" | awk '{ print $1 * 3 }' | grep -v 7 | wc -l >/dev/null

#!/bin/sh
# A parallel build: make -j2 compiling small C files (fork, exec, exit, pipes, disk waits).
set -e
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
n=${FILES:-30}
i=0
while [ "$i" -lt "$n" ]; do
  cat >"$dir/f$i.c" <<C
int f$i(int x) { int s = 0; for (int k = 0; k < x; k++) s += k * $i; return s; }
C
  i=$((i + 1))
done
echo 'int main(void) { return 0; }' >"$dir/main.c"
{
  printf 'OBJS ='
  i=0; while [ "$i" -lt "$n" ]; do printf ' f%s.o' "$i"; i=$((i + 1)); done
  printf '\nprog: main.o $(OBJS)\n\tcc -o $@ main.o $(OBJS)\n%%.o: %%.c\n\tcc -O2 -c $< -o $@\n'
} >"$dir/Makefile"
make -s -C "$dir" -j"${JOBS:-2}" prog

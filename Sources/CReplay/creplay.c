// C shims for the replayer: calls Swift cannot make (variadic syscall/prctl, spin loops).

import TraceFormat
/// Replays traces: programs built from a trace, and the threaded engine that runs them.
public enum ReplayerModule {}

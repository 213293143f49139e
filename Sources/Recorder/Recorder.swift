import TraceFormat
/// Records scheduler events from tracefs into .rpl traces.
public enum RecorderModule {}

/// Latency distributions and comparisons.
public enum StatsModule {}

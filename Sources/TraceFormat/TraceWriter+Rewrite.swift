extension TraceWriter {
    /// Writes every event, task and the metadata of `reader` to a new file at `path`, in this
    /// version of the format: converts an older file, or re-encodes one. Tasks keep their
    /// indices and are defined just before the first chunk that names them, as a recording does;
    /// the task rows are the table's final ones, and the metadata is the final metadata in both
    /// the first and the last block.
    /// - Throws: `TraceError` when `reader` has a damaged chunk or `path` cannot be written.
    /// - Returns: the number of events written.
    @discardableResult
    public static func rewrite(_ reader: TraceReader, to path: String) throws -> UInt64 {
        let writer = try TraceWriter(path: path, metadata: reader.metadata)
        let tasks = reader.tasks
        func define(upTo index: TaskIndex) {
            while writer.taskCount <= index.intValue && writer.taskCount < tasks.count {
                _ = writer.addTask(tasks[writer.taskCount])
            }
        }
        try reader.forEachEvent { event in
            define(upTo: event.kind.highestTask)
            try writer.append(event)
        }
        define(upTo: TaskIndex(tasks.count - 1))
        try writer.finish(metadata: reader.metadata)
        return writer.eventCount
    }
}

extension Event.Kind {
    /// The largest task index the event names.
    var highestTask: TaskIndex {
        switch self {
        case let .switchTask(prev, _, next): max(prev, next)
        case let .waking(waker, target, _, _): max(waker ?? .idle, target)
        case let .wakeupNew(target, _): target
        case let .fork(parent, child): max(parent, child)
        case let .exec(task, _), let .exit(task), let .migrate(task, _, _), let .runtime(task, _): task
        }
    }
}

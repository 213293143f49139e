import Foundation

/// What can be wrong with a results file given to `compare`. Each case names the file and,
/// where it applies, the field, and says what to do.
public enum ResultsError: Error, Equatable, CustomStringConvertible {
    /// The file cannot be read.
    case io(file: String, reason: String)
    /// The file is not JSON at all.
    case notJSON(file: String, detail: String)
    /// The `schema` field is missing or names another format.
    case wrongSchema(file: String, found: String?)
    /// A field the schema requires is absent.
    case missingField(file: String, field: String)
    /// A field has the wrong type or an impossible value.
    case badField(file: String, field: String, detail: String)
    /// Every run is a warmup (or there are no runs).
    case noMeasuredRuns(file: String)
    /// Two files are results of different traces.
    case differentTraces(base: String, baseSHA256: String, other: String, otherSHA256: String)

    public var description: String {
        switch self {
        case let .io(file, reason):
            "\(file): \(reason)"
        case let .notJSON(file, detail):
            "\(file): not a JSON results file (\(detail)) — give the file written by `replayctl replay --output FILE.json`"
        case let .wrongSchema(file, found):
            if let found {
                "\(file): field \"schema\" is \"\(found)\", expected \"\(ReplayResults.schemaName)\" — this replayctl reads only that format; re-run the replay with this version"
            } else {
                "\(file): no \"schema\" field — not a replayctl results file; give the file written by `replayctl replay --output FILE.json`"
            }
        case let .missingField(file, field):
            "\(file): missing field \"\(field)\" required by \(ReplayResults.schemaName) (docs/results-json.md) — the file is truncated or was not written by replayctl"
        case let .badField(file, field, detail):
            "\(file): field \"\(field)\": \(detail) (schema \(ReplayResults.schemaName), docs/results-json.md)"
        case let .noMeasuredRuns(file):
            "\(file): no measured runs (all runs are warmups, or none completed) — replay again with more --runs"
        case let .differentTraces(base, baseSHA, other, otherSHA):
            "\(other) and \(base) are results of different traces (trace.sha256 \(otherSHA.prefix(12))… vs \(baseSHA.prefix(12))…): "
                + "compare only replays of the same trace file"
        }
    }
}

extension ReplayResults {
    /// Decodes and checks a results file's bytes.
    /// - Parameters:
    ///   - data: the file's content.
    ///   - file: the file's name, for messages.
    /// - Throws: `ResultsError` naming the file and the field at fault.
    public static func decode(_ data: Data, file: String) throws -> ReplayResults {
        struct SchemaOnly: Decodable { var schema: String? }
        let probe: SchemaOnly
        do {
            probe = try JSONDecoder().decode(SchemaOnly.self, from: data)
        } catch {
            throw ResultsError.notJSON(file: file, detail: describeJSONFailure(error))
        }
        guard probe.schema == schemaName else { throw ResultsError.wrongSchema(file: file, found: probe.schema) }
        let results: ReplayResults
        do {
            results = try JSONDecoder().decode(ReplayResults.self, from: data)
        } catch let DecodingError.keyNotFound(key, context) {
            throw ResultsError.missingField(file: file, field: fieldPath(context.codingPath + [key]))
        } catch let DecodingError.typeMismatch(type, context) {
            throw ResultsError.badField(file: file, field: fieldPath(context.codingPath), detail: "expected \(typeName(type)): \(context.debugDescription)")
        } catch let DecodingError.valueNotFound(type, context) {
            throw ResultsError.badField(file: file, field: fieldPath(context.codingPath), detail: "null where \(typeName(type)) is required")
        } catch let DecodingError.dataCorrupted(context) {
            throw ResultsError.badField(file: file, field: fieldPath(context.codingPath), detail: context.debugDescription)
        } catch {
            throw ResultsError.notJSON(file: file, detail: "\(error)")
        }
        guard !results.trace.sha256.isEmpty else {
            throw ResultsError.badField(file: file, field: "trace.sha256", detail: "empty: the trace cannot be identified")
        }
        guard !results.measuredRuns.isEmpty else { throw ResultsError.noMeasuredRuns(file: file) }
        return results
    }

    /// Throws `ResultsError.differentTraces` unless both are results of the same trace file.
    public static func checkSameTrace(base: ReplayResults, baseFile: String, other: ReplayResults, otherFile: String) throws {
        guard base.trace.sha256.lowercased() == other.trace.sha256.lowercased() else {
            throw ResultsError.differentTraces(base: baseFile, baseSHA256: base.trace.sha256, other: otherFile, otherSHA256: other.trace.sha256)
        }
    }

    /// All measured (non-warmup) runs' samples of one histogram merged.
    public func merged(_ histogram: KeyPath<ReplayRun, LatencyHistogram>) -> LatencyHistogram {
        var h = LatencyHistogram()
        for run in measuredRuns { h.merge(run[keyPath: histogram]) }
        return h
    }

    static func fieldPath(_ path: [CodingKey]) -> String {
        var text = ""
        for key in path {
            if let i = key.intValue { text += "[\(i)]" } else { text += (text.isEmpty ? "" : ".") + key.stringValue }
        }
        return text.isEmpty ? "(top level)" : text
    }

    static func typeName(_ type: Any.Type) -> String {
        switch type {
        case is String.Type: "a string"
        case is Bool.Type: "true or false"
        case is Int.Type, is Int32.Type, is UInt64.Type: "an integer"
        case is Double.Type: "a number"
        default: "\(type)".hasPrefix("Array") ? "an array" : (("\(type)".hasPrefix("Dictionary")) ? "an object" : "\(type)")
        }
    }

    static func describeJSONFailure(_ error: Error) -> String {
        if case let DecodingError.dataCorrupted(context) = error {
            if let underlying = context.underlyingError as NSError?, let detail = underlying.userInfo["NSDebugDescription"] as? String {
                return detail
            }
            return context.debugDescription
        }
        if case DecodingError.typeMismatch = error { return "the top level is not a JSON object" }
        return "\(error)"
    }
}

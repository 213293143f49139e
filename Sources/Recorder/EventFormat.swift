import Foundation

/// One field of a trace event, from the kernel's `events/<system>/<event>/format` file.
struct FieldLayout: Equatable, Sendable {
    var name: String
    var offset: Int
    var size: Int
    var isSigned: Bool
    /// `__data_loc` / `__rel_loc`: the field holds (length << 16 | offset) of a variable-length array.
    var isDynamic: Bool
    /// `__rel_loc`: the offset counts from the end of this field, not from the start of the record.
    var isRelative: Bool
}

/// Layout of one event: its type id and fields, parsed from its `format` file.
struct EventLayout: Equatable, Sendable {
    var name: String
    var id: UInt16
    var fields: [String: FieldLayout]

    /// Parses the text of a `format` file. `path` is only used in errors.
    static func parse(_ text: String, path: String) throws -> EventLayout {
        var name = ""
        var id: UInt16?
        var fields: [String: FieldLayout] = [:]
        for line in text.split(separator: "\n", omittingEmptySubsequences: true) {
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            if trimmed.hasPrefix("name:") {
                name = trimmed.dropFirst(5).trimmingCharacters(in: .whitespaces)
            } else if trimmed.hasPrefix("ID:") {
                id = UInt16(trimmed.dropFirst(3).trimmingCharacters(in: .whitespaces))
            } else if trimmed.hasPrefix("field:") {
                var declaration = ""
                var offset: Int?
                var size: Int?
                var signed = false
                for part in trimmed.split(separator: ";") {
                    let p = part.trimmingCharacters(in: .whitespaces)
                    if p.hasPrefix("field:") { declaration = String(p.dropFirst(6)) }
                    else if p.hasPrefix("offset:") { offset = Int(p.dropFirst(7)) }
                    else if p.hasPrefix("size:") { size = Int(p.dropFirst(5)) }
                    else if p.hasPrefix("signed:") { signed = p.dropFirst(7) == "1" }
                }
                guard let offset, let size, var last = declaration.split(separator: " ").last.map(String.init) else {
                    throw RecorderError.badEventFormat(path: path, reason: "cannot parse the line `\(trimmed)`")
                }
                if let bracket = last.firstIndex(of: "[") { last = String(last[..<bracket]) }
                let dynamic = declaration.contains("__data_loc") || declaration.contains("__rel_loc")
                fields[last] = FieldLayout(name: last, offset: offset, size: size, isSigned: signed,
                                           isDynamic: dynamic, isRelative: declaration.contains("__rel_loc"))
            }
        }
        guard let id else { throw RecorderError.badEventFormat(path: path, reason: "no `ID:` line") }
        return EventLayout(name: name, id: id, fields: fields)
    }

    /// The field `name`, checked to be `size` bytes (or dynamic when `dynamic`).
    func field(_ fieldName: String, size expected: [Int], dynamic: Bool = false, path: String) throws -> FieldLayout {
        guard let f = fields[fieldName] else {
            throw RecorderError.badEventFormat(path: path, reason: "no field `\(fieldName)` in \(name)")
        }
        if dynamic ? !(f.isDynamic || f.size == 16) : (f.isDynamic || !expected.contains(f.size)) {
            throw RecorderError.badEventFormat(path: path, reason: "field `\(fieldName)` of \(name) has size \(f.size)\(f.isDynamic ? " (dynamic)" : ""), expected \(expected)")
        }
        return f
    }
}

import ArgumentParser
import Foundation
import Corpus
import Replayer
import Recorder
import TraceFormat

/// sysexits.h codes used by every command.
enum ExitStatus {
    static let usage: Int32 = 64       // EX_USAGE
    static let dataError: Int32 = 65   // EX_DATAERR: a bad trace or results file
    static let noInput: Int32 = 66     // EX_NOINPUT: a file that does not exist
    static let software: Int32 = 70    // EX_SOFTWARE
    static let ioError: Int32 = 74     // EX_IOERR
    static let noPermission: Int32 = 77 // EX_NOPERM
}

/// The one place where errors become messages and exit codes. Every command's `run()` calls
/// its work through this.
func reportingErrors<T>(_ body: () throws -> T) throws -> T {
    do {
        return try body()
    } catch let error as ExitCode {
        throw error
    } catch let error as ValidationError {
        throw error
    } catch {
        let (message, code) = describe(error)
        printError("replayctl: \(message)")
        throw ExitCode(code)
    }
}

/// Message and exit code for an error of any module.
func describe(_ error: Error) -> (String, Int32) {
    switch error {
    case let e as TraceError:
        switch e {
        case let .io(path, reason) where reason == "no such file":
            return ("\(path): no such file", ExitStatus.noInput)
        case .io:
            return (e.description, ExitStatus.ioError)
        default:
            return (e.description, ExitStatus.dataError)
        }
    case let e as ReplayError:
        return (e.description, e == .interrupted ? 130 : ExitStatus.software)
    case let e as RecorderError:
        if e.isPermissionProblem { return (e.description, ExitStatus.noPermission) }
        if case .invalidOption = e { return (e.description, ExitStatus.usage) }
        if case .noSuchProcess = e { return (e.description, ExitStatus.noInput) }
        if case .cannotStartCommand = e { return (e.description, ExitStatus.noInput) }
        return (e.description, ExitStatus.software)
    case let e as CorpusError:
        return (e.description, e.exitStatus)
    case let e as CommandError:
        return (e.message, e.code)
    default:
        return ("\(error)", ExitStatus.software)
    }
}

/// An error raised by the command layer itself.
struct CommandError: Error {
    var message: String
    var code: Int32
    static func usage(_ message: String) -> CommandError { CommandError(message: message, code: ExitStatus.usage) }
    static func data(_ message: String) -> CommandError { CommandError(message: message, code: ExitStatus.dataError) }
}

/// Writes a line to standard error (glibc's `stderr` is not usable from Swift 6).
func printError(_ line: String) {
    let text = line + "\n"
    _ = text.withCString { write(2, $0, strlen($0)) }
}

// swift-tools-version: 6.1
import PackageDescription

let package = Package(
    name: "replayctl",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "replayctl", targets: ["replayctl"]),
        .library(name: "TraceFormat", targets: ["TraceFormat"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.0.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.0.0"),
    ],
    targets: [
        .systemLibrary(
            name: "CTraceFS",
            pkgConfig: "libtracefs",
            providers: [.apt(["libtracefs-dev", "libtraceevent-dev"])]
        ),
        .target(name: "CReplay"),
        .target(name: "TraceFormat"),
        .target(name: "Stats"),
        .target(name: "Recorder", dependencies: ["CTraceFS", "TraceFormat"]),
        .target(
            name: "Replayer", dependencies: ["CReplay", "TraceFormat", "Stats"],
            // The engine's own cost per atom must stay far below the µs-long runs it replays,
            // in the test suite (debug builds) too.
            swiftSettings: [.unsafeFlags(["-O"], .when(configuration: .debug))]
        ),
        .target(
            name: "Corpus",
            dependencies: [
                "TraceFormat", "Stats",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Hummingbird", package: "hummingbird"),
            ]
        ),
        .executableTarget(
            name: "replayctl",
            dependencies: [
                "TraceFormat", "Recorder", "Replayer", "Stats", "Corpus",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .target(name: "TestSupport", path: "Tests/TestSupport"),
        .testTarget(name: "TraceFormatTests", dependencies: ["TraceFormat", "TestSupport"]),
        .testTarget(name: "RecorderTests", dependencies: ["Recorder", "TraceFormat", "TestSupport"]),
        .testTarget(name: "ReplayerTests", dependencies: ["Replayer", "TraceFormat", "Recorder", "Stats", "TestSupport"]),
        .testTarget(name: "StatsTests", dependencies: ["Stats"]),
        .testTarget(name: "CorpusTests", dependencies: ["Corpus", "TraceFormat", "TestSupport"]),
    ]
)

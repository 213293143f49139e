// swift-tools-version: 6.1
// Speed and size benchmarks of the .rpl format, kept out of the main package so that
// `swift build` and `swift test` never build them. Run with bench/format-speed.sh.
import PackageDescription

let package = Package(
    name: "Benchmarks",
    platforms: [.macOS(.v14)],
    dependencies: [
        .package(name: "replayctl", path: ".."),
    ],
    targets: [
        .executableTarget(
            name: "FormatBenchmark",
            dependencies: [.product(name: "TraceFormat", package: "replayctl")]
        ),
    ]
)

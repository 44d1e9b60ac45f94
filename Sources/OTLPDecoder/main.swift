import Foundation
import OTLPSpan
import OTLPTraceWire

// orchestrate-otlp: decodes OTLP/HTTP trace exports (protobuf) for `orchestrate up`'s dashboard, in a process of its
// own so that SwiftProtobuf is not linked into `orchestrate` (9.5 MB smaller, no protobuf in the CLI's build; it did
// not measurably change start-up, BENCHMARKS.md "dashboard"). On standard input: frames of a 4-byte big-endian length, then that many bytes of an
// ExportTraceServiceRequest. On standard output: one JSON line per frame, `{"spans":[…]}` or `{"error":"…"}`.
// It exits at the end of its input, which is also when `up` exits.

let maximumFrame = 1 << 20
let encoder = JSONEncoder()
encoder.outputFormatting = [.sortedKeys]

func readExactly(_ count: Int) -> [UInt8]? {
    var bytes = [UInt8](repeating: 0, count: count)
    var filled = 0
    while filled < count {
        let got = bytes.withUnsafeMutableBytes { read(0, $0.baseAddress! + filled, count - filled) }
        if got < 0, errno == EINTR { continue }
        guard got > 0 else { return nil }
        filled += got
    }
    return bytes
}

func answer(_ object: some Encodable) {
    var data = (try? encoder.encode(object)) ?? Data(#"{"error":"cannot encode"}"#.utf8)
    data.append(UInt8(ascii: "\n"))
    data.withUnsafeBytes { buffer in
        var offset = 0
        while offset < buffer.count {
            let written = write(1, buffer.baseAddress! + offset, buffer.count - offset)
            if written < 0, errno == EINTR { continue }
            guard written > 0 else { exit(0) }
            offset += written
        }
    }
}

struct Spans: Encodable { var spans: [ReceivedSpan] }
struct Failure: Encodable { var error: String }

while let header = readExactly(4) {
    let length = header.reduce(0) { $0 << 8 | Int($1) }
    guard length <= maximumFrame, let body = length == 0 ? [] : readExactly(length) else {
        answer(Failure(error: "a frame of \(length) bytes: at most \(maximumFrame)"))
        exit(1)
    }
    do {
        answer(Spans(spans: try OTLPTraceDecoder.decode(body)))
    } catch {
        answer(Failure(error: error.description))
    }
}

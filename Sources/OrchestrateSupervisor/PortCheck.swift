import Foundation

/// Before spawning: can each replica's address and port be bound, and if not, who holds it. The holder is found
/// through /proc/net/tcp (the listening socket's inode) and /proc/PID/fd (who has that socket open): Linux only;
/// elsewhere the message names the address without a PID.
public enum PortCheck {
    public struct Holder: Sendable, Equatable {
        public var pid: Int32
        public var command: String
    }

    /// nil when `address:port` can be bound now; else the bind error's text.
    public static func bindError(address: String, port: Int) -> String? {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else { return "cannot create a socket" }
        defer { close(descriptor) }
        var reuse: Int32 = 1
        setsockopt(descriptor, SOL_SOCKET, SO_REUSEADDR, &reuse, socklen_t(MemoryLayout<Int32>.size))
        var socketAddress = sockaddr_in()
        socketAddress.sin_family = sa_family_t(AF_INET)
        socketAddress.sin_port = in_port_t(UInt16(port).bigEndian)
        guard inet_pton(AF_INET, address, &socketAddress.sin_addr) == 1 else {
            return "\(address) is not an IPv4 address"
        }
        let result = withUnsafePointer(to: &socketAddress) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        return result == 0 ? nil : String(cString: strerror(errno))
    }

    /// The process listening on `address:port` (or on 0.0.0.0:port, which takes every address).
    public static func holder(address: String, port: Int) -> Holder? {
        guard let table = try? String(contentsOfFile: "/proc/net/tcp", encoding: .utf8) else { return nil }
        let wanted = [hex(address: address, port: port), hex(address: "0.0.0.0", port: port)].compactMap { $0 }
        var inodes: Set<String> = []
        for line in table.split(separator: "\n").dropFirst() {
            let fields = line.split(separator: " ")
            // sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode
            guard fields.count > 9, fields[3] == "0A", wanted.contains(String(fields[1])) else { continue }
            inodes.insert(String(fields[9]))
        }
        guard !inodes.isEmpty, let processes = try? FileManager.default.contentsOfDirectory(atPath: "/proc") else {
            return nil
        }
        for entry in processes {
            guard let pid = Int32(entry),
                let descriptors = try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(entry)/fd")
            else { continue }
            for descriptor in descriptors {
                guard
                    let target = try? FileManager.default.destinationOfSymbolicLink(
                        atPath: "/proc/\(entry)/fd/\(descriptor)"),
                    target.hasPrefix("socket:[")
                else { continue }
                if inodes.contains(String(target.dropFirst("socket:[".count).dropLast())) {
                    return Holder(pid: pid, command: ProcessInfoReader.command(of: pid) ?? "?")
                }
            }
        }
        return nil
    }

    /// `127.0.0.3:3001` as /proc/net/tcp writes it on a little-endian machine: `0300007F:0BB9`.
    static func hex(address: String, port: Int) -> String? {
        var raw = in_addr()
        guard inet_pton(AF_INET, address, &raw) == 1 else { return nil }
        let value = UInt32(littleEndian: raw.s_addr)  // the address bytes as the kernel prints the u32
        return String(format: "%08X:%04X", value, port)
    }
}

import CSupervisorSpawn
import Foundation

/// `.orchestrate/hosts`: what every replica sees as /etc/hosts under `up` (in its own mount namespace), so any
/// program resolves the services' names with whatever resolver it uses: glibc, musl, Python, Node, Go.
///
/// The machine's own entries come first (`localhost`, the host name), then each service's name at its stable
/// address (`127.0.2.1  catalog catalog.shop.local`), where its forwarder spreads connections over the ready
/// replicas, then each replica's own name (`127.0.0.3  2.catalog.shop.local`).
enum PrivateHosts {
    static func text(machine: String, plan: LocalPlan) -> String {
        let project = plan.project.lowercased()
        var text = machine
        if !text.isEmpty, !text.hasSuffix("\n") { text += "\n" }
        text += "# services of \(project), written by orchestrate up\n"
        for (service, address) in plan.serviceAddresses.sorted(by: {
            $0.value.compare($1.value, options: .numeric) == .orderedAscending
        }) {
            text += "\(address)\t\(service) \(service).\(project).local\n"
        }
        for replica in plan.replicas.sorted(by: { ($0.service, $0.index) < ($1.service, $1.index) }) {
            text += "\(replica.address)\t\(replica.index).\(replica.service).\(project).local\n"
        }
        return text
    }

    /// Writes `text` into the file at `path` in place: a replica's bind mount holds the file, not its name, so the
    /// same file must change. It is overwritten from the start and then cut to length, never emptied first, so a
    /// reader meanwhile still finds the lines that did not change (the machine's, then the services' names, which
    /// a swap under `up --watch` never moves). A symbolic link at `path` is refused, not followed (O_NOFOLLOW).
    static func write(_ text: String, to path: String) throws(SupervisorError) {
        let descriptor = open(path, O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else {
            throw SupervisorError(.start, "cannot write \(path): \(String(cString: strerror(errno)))")
        }
        defer { close(descriptor) }
        let bytes = Array(text.utf8)
        var written = 0
        while written < bytes.count {
            let count = bytes[written...].withUnsafeBytes { Foundation.write(descriptor, $0.baseAddress, $0.count) }
            if count < 0, errno == EINTR { continue }
            guard count > 0 else {
                throw SupervisorError(.start, "cannot write \(path): \(String(cString: strerror(errno)))")
            }
            written += count
        }
        guard ftruncate(descriptor, off_t(bytes.count)) == 0 else {
            throw SupervisorError(.start, "cannot write \(path): \(String(cString: strerror(errno)))")
        }
    }

    /// Nil when a child can be given `path` as its /etc/hosts; else why not (strerror of the step that failed).
    static func unavailableReason(path: String) -> String? {
        #if os(Linux)
            let error = orchestrate_hosts_namespace_check(path)
            return error == 0 ? nil : String(cString: strerror(error))
        #else
            return "private mount namespaces are Linux only"
        #endif
    }
}

import OrchestrateSpec

/// A container's own check of a probe that any image with bash can run: no curl, no wget, and no subcommand the
/// service binary must understand. bash opens the TCP connection itself (`/dev/tcp`); for HTTP it sends one
/// `GET` and reads the status line, which passes from 200 to 399, as a Kubernetes `httpGet` probe does. Compose
/// runs it with the probe's timeout, which ends a check that hangs.
enum ContainerProbe {
    /// The command, without compose's `CMD`: `bash -c SCRIPT`. Nil for a check with nothing to connect to.
    static func command(_ check: Probe.Check, port: Int?) -> [String]? {
        switch check {
        case .http(let path):
            guard let port else { return nil }
            // The path reaches the request line as printf's argument, quoted: neither the shell nor printf's
            // format reads it.
            let script =
                "exec 3<>/dev/tcp/127.0.0.1/\(port)"
                + " && printf 'GET %s HTTP/1.0\\r\\nHost: 127.0.0.1\\r\\n\\r\\n' \(shellQuoted(path)) >&3"
                + " && read -r _ code _ <&3 && [ \"$code\" -ge 200 ] && [ \"$code\" -lt 400 ]"
            return ["bash", "-c", script]
        case .tcp(let port):
            return ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/\(port)"]
        case .command:
            return nil
        }
    }

    /// `'text'`, with each `'` written as `'\''`: one word to the shell, whatever it holds.
    static func shellQuoted(_ text: String) -> String {
        "'" + text.replacing("'", with: "'\\''") + "'"
    }
}

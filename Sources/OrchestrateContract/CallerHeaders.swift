/// Who a request acts for, as the gateway tells the services behind it: the subject of the verified token and its
/// roles. Only the gateway sets these headers (it drops any copy a client sends), and a service believes them only on
/// a request that also carries the internal service token, so a client that reaches a service directly cannot claim
/// to be anyone.
public enum CallerHeaders {
    /// The token's `sub`, as it is.
    public static let subject = "X-Authenticated-Subject"
    /// The token's roles, comma-separated; a role that is not a plain word (`[A-Za-z0-9._:-]`, 1–64 bytes) is left
    /// out rather than passed on.
    public static let roles = "X-Authenticated-Roles"
    /// The role that may list and read everything.
    public static let adminRole = "admin"
    /// The claim the gateway reads roles from when `gateway.jwt.rolesClaim` does not name another.
    public static let defaultRolesClaim = "roles"
    /// The longest subject passed on; a longer one is refused (401).
    public static let maximumSubjectBytes = 255

    /// Whether `role` can travel in the roles header: a plain word, so no comma, space or control byte can split
    /// or extend the list.
    public static func isValidRole(_ role: some StringProtocol) -> Bool {
        (1...64).contains(role.utf8.count)
            && role.utf8.allSatisfy { byte in
                switch byte {
                case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                    UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: ":"),
                    UInt8(ascii: "-"):
                    true
                default: false
                }
            }
    }

    /// Whether `subject` can travel in the subject header: 1–255 bytes, no control characters (so no CR or LF).
    public static func isValidSubject(_ subject: some StringProtocol) -> Bool {
        (1...maximumSubjectBytes).contains(subject.utf8.count)
            && !subject.unicodeScalars.contains { $0.properties.generalCategory == .control }
    }
}

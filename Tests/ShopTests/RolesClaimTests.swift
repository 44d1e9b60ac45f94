import Foundation
import Testing

@testable import APIGatewayCore

@Suite(.timeLimit(.minutes(1))) struct RolesClaimTests {
    /// A token's payload as the gateway sees it after the signature was checked (the signature part is not read).
    func token(_ payload: String) -> Substring {
        let encoded = Data(payload.utf8).base64EncodedString().replacingOccurrences(of: "+", with: "-")
            .replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
        return Substring("eyJhbGciOiJIUzI1NiJ9.\(encoded).signature")
    }

    @Test func rolesComeFromTheConfiguredClaimAsAListOrWords() {
        let nested = token(#"{"sub":"a","realm_access":{"roles":["admin","reader"]},"roles":["other"]}"#)
        #expect(GatewayProxy.roles(inVerifiedToken: nested, at: ["realm_access", "roles"]) == ["admin", "reader"])
        #expect(GatewayProxy.roles(inVerifiedToken: nested, at: ["roles"]) == ["other"])
        #expect(
            GatewayProxy.roles(inVerifiedToken: token(#"{"scope":"admin  read:orders"}"#), at: ["scope"]) == [
                "admin", "read:orders",
            ])
        // Not there, or not text: no roles.
        #expect(GatewayProxy.roles(inVerifiedToken: nested, at: ["missing", "roles"]).isEmpty)
        #expect(GatewayProxy.roles(inVerifiedToken: token(#"{"roles":{"admin":true}}"#), at: ["roles"]).isEmpty)
        #expect(GatewayProxy.roles(inVerifiedToken: token(#"{"roles":[1,true]}"#), at: ["roles"]).isEmpty)
        // A role that could split or extend the header is dropped, whatever else it says.
        let hostile = token(#"{"roles":["admin,root","admin\r\nX-Evil: 1","ad min","x","\u0000"]}"#)
        #expect(GatewayProxy.roles(inVerifiedToken: hostile, at: ["roles"]) == ["x"])
        #expect(GatewayProxy.roles(inVerifiedToken: "not-a-token", at: ["roles"]).isEmpty)
    }
}

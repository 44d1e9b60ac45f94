#!/usr/bin/env python3
"""Writes a valid services.yaml of N services shaped like the shop's: a database each, dependencies on earlier
services, routes with auth and rate limits, probes, resources, shared env through a merge key, events."""
import sys

def main(count: int) -> None:
    out = [
        "version: 1",
        f"name: bench-{count}",
        'images: { registry: ghcr.io/example/bench, tag: "1.0.0" }',
        "broker: { engine: redis }",
        "gateway:",
        "  service: gateway",
        "  jwt: { secret: jwt-secret, algorithm: HS256 }",
        "x-env: &env",
        "  INTERNAL_TOKEN: { secret: internal-token }",
        "  LOG_LEVEL: info",
        "services:",
        "  gateway:",
        "    product: APIGateway",
        "    port: 3000",
        "    public: true",
        "    env: { <<: *env }",
    ]
    for index in range(1, count):
        name = f"svc-{index:04d}"
        deps = [f"svc-{d:04d}" for d in (index - 1, index // 2) if d >= 1 and d != index]
        deps = sorted(set(deps))
        out += [
            f"  {name}:",
            f"    product: Service{index}",
            f"    port: {3000 + index}",
            f"    replicas: {1 + index % 3}",
            f"    database: {{ engine: postgres, name: db-{index:04d}, storage: 1Gi }}",
        ]
        if deps:
            out.append(f"    dependsOn: [{', '.join(deps)}]")
        out += [
            f"    publishes: [event-{index:04d}.created]",
        ]
        if index > 1:
            out.append(f"    subscribes: [event-{index - 1:04d}.created]")
        out += [
            "    env:",
            "      <<: *env",
            f"      FEATURE_FLAG: \"flag-{index}\"",
            "    probes:",
            "      liveness: /health",
            "      readiness: { http: /ready, interval: 5s, timeout: 1s, failureThreshold: 3 }",
            "    routes:",
            f"      - {{ prefix: /api/s{index}, rewrite: /items, auth: jwt, rateLimit: {{ rps: 50, burst: 100 }} }}",
            "    resources: { cpu: 100m, memory: 128Mi, cpuLimit: 500m, memoryLimit: 256Mi }",
        ]
    print("\n".join(out))

if __name__ == "__main__":
    main(int(sys.argv[1]))

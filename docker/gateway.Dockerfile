# syntax=docker/dockerfile:1
# The image of orchestrate's built-in gateway (`builtin: gateway`), which generated compose and Kubernetes files
# name orchestrate-gateway:VERSION (OrchestrateVersion.current). Build it from this repository's root:
#   docker build -f docker/gateway.Dockerfile -t orchestrate-gateway:0.2.0 .
FROM swift:6.1-noble AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/src/.build \
    swift build -c release --product APIGateway --static-swift-stdlib \
 && install -D "$(swift build -c release --show-bin-path)/APIGateway" /out/orchestrate-gateway

FROM ubuntu:24.04
# Exact apt versions are not pinned: the archive drops old versions, and a pinned build breaks without notice.
# hadolint ignore=DL3008
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates tzdata \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --gid 10001 app && useradd --uid 10001 --gid 10001 --no-create-home --shell /usr/sbin/nologin app
COPY --from=build /out/orchestrate-gateway /app/orchestrate-gateway
RUN ln -s /app/orchestrate-gateway /app/service
USER 10001:10001
ENTRYPOINT ["/app/service"]

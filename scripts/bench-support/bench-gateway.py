#!/usr/bin/env python3
"""scripts/bench gateway: nginx and APIGateway proxying the same route to the same upstream, interleaved.

    bench-gateway.py NGINX APIGATEWAY WORKDIR

The upstream is one nginx worker answering a fixed 32-byte JSON body. The proxies are nginx (one worker, keep-alive
pool upstream) and APIGateway (release) on the same route and rewrite, and APIGateway again with JWT auth and a
rate limit on the route (a bucket large enough never to refuse), to show what the features cost. Each round runs
wrk -t1 -c32 against each proxy in turn (ROUNDS rounds, DURATION seconds each, after a warm-up); the order rotates
every round. With BASELINE=PATH, a second APIGateway binary (an earlier commit's release build) runs the plain route
too, in the same rounds. With FLOOR=PATH (scripts/bench builds it: scripts/bench-support/nio-floor), two floors run in the
same rounds as well: a SwiftNIO relay that copies bytes without parsing HTTP, and a SwiftNIO HTTP/1 proxy with
NIOHTTP1's codecs and nothing else. CPU per request is user+sys time of the proxy's processes from /proc, divided by the requests wrk
completed: it does not depend on how the two cores are shared, so it is the stable figure on this machine.
"""
import base64
import hashlib
import hmac
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request

NGINX, GATEWAY, WORK = sys.argv[1], sys.argv[2], sys.argv[3]
ROUNDS = int(os.environ.get("ROUNDS", "3"))
DURATION = int(os.environ.get("DURATION", "10"))
CONNECTIONS = 32
TICKS = os.sysconf("SC_CLK_TCK")
SECRET = "bench-secret-0123456789abcdef0123456789"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def nginx_conf(directory, workers, body):
    os.makedirs(directory, exist_ok=True)
    with open(f"{directory}/nginx.conf", "w") as f:
        f.write(f"""worker_processes {workers};
pid {directory}/nginx.pid;
error_log {directory}/error.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  client_body_temp_path {directory}/body; proxy_temp_path {directory}/proxy; fastcgi_temp_path {directory}/fcgi;
  uwsgi_temp_path {directory}/uwsgi; scgi_temp_path {directory}/scgi;
  keepalive_requests 1000000;
  {body}
}}
""")


def token():
    def b64(data):
        return base64.urlsafe_b64encode(data).rstrip(b"=")
    header = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    payload = b64(json.dumps({"sub": "bench", "exp": int(time.time()) + 3600, "iss": "bench"}).encode())
    signature = b64(hmac.new(SECRET.encode(), header + b"." + payload, hashlib.sha256).digest())
    return (header + b"." + payload + b"." + signature).decode()


def cpu_seconds(pids):
    total = 0
    for pid in pids:
        try:
            fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
        except FileNotFoundError:
            pass
    return total / TICKS


def children(pid):
    try:
        return [int(p) for p in open(f"/proc/{pid}/task/{pid}/children").read().split()]
    except FileNotFoundError:
        return []


def wait_for(url, headers=None):
    for _ in range(200):
        try:
            request = urllib.request.Request(url, headers=headers or {})
            if b"upstream" in urllib.request.urlopen(request, timeout=1).read():
                return
        except Exception:
            time.sleep(0.1)
    sys.exit(f"no answer from {url}")


def ms(value):
    number, unit = re.match(r"([\d.]+)(us|ms|s)", value).groups()
    return float(number) * {"us": 0.001, "ms": 1, "s": 1000}[unit]


def wrk(url, seconds, headers=()):
    command = ["wrk", "-t1", f"-c{CONNECTIONS}", f"-d{seconds}s", "--latency"]
    for header in headers:
        command += ["-H", header]
    text = subprocess.run(command + [url], capture_output=True, text=True, check=True).stdout
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    if errors:
        sys.exit(f"{url}: {errors.group(1)} error responses\n{text}")
    requests = int(re.search(r"(\d+) requests in", text).group(1))
    return {
        "requests": requests,
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1)),
        "p50": ms(re.search(r"^\s+50%\s+(\S+)", text, re.M).group(1)),
        "p99": ms(re.search(r"^\s+99%\s+(\S+)", text, re.M).group(1)),
    }


def main():
    upstream_port, nginx_port, gateway_port, featured_port, baseline_port, relay_port, http_port = (
        free_port() for _ in range(7))
    baseline = os.environ.get("BASELINE")
    floor = os.environ.get("FLOOR")
    processes = []
    try:
        nginx_conf(f"{WORK}/upstream", 1, f"server {{ listen 127.0.0.1:{upstream_port}; location / {{ "
                   "default_type application/json; return 200 '{\"id\":\"7\",\"name\":\"upstream\"}'; } }")
        nginx_conf(f"{WORK}/proxy", 1, f"upstream backend {{ server 127.0.0.1:{upstream_port}; keepalive 64; }}\n"
                   f"  server {{ listen 127.0.0.1:{nginx_port}; location /api/users/ {{ proxy_pass http://backend/users/;"
                   " proxy_http_version 1.1; proxy_set_header Connection \"\"; } }")
        for name in ("upstream", "proxy"):
            processes.append(subprocess.Popen([NGINX, "-c", f"{WORK}/{name}/nginx.conf", "-p", f"{WORK}/{name}",
                                               "-g", "daemon off;"]))
        route = {"prefix": "/api/users", "rewrite": "/users", "methods": [],
                 "upstream": {"service": "user-service", "port": upstream_port,
                              "url": f"http://127.0.0.1:{upstream_port}"},
                 "auth": None, "timeoutMilliseconds": 5000, "maxBodyBytes": 1048576}
        featured = dict(route, auth="jwt", rateLimit={"rps": 1e9, "burst": 1000000000})
        gateways = [(GATEWAY, gateway_port, {"routes": [route]}),
                    (GATEWAY, featured_port, {"jwt": {"algorithm": "HS256", "issuer": "bench"}, "routes": [featured]})]
        if baseline:
            gateways.append((baseline, baseline_port, {"routes": [route]}))
        for binary, port, table in gateways:
            with open(f"{WORK}/routes-{port}.json", "w") as f:
                json.dump(table, f)
            environment = dict(os.environ, PORT=str(port), ROUTES_FILE=f"{WORK}/routes-{port}.json",
                               LOG_LEVEL="warning", REQUEST_LOG_LEVEL="debug", JWT_SECRET=SECRET)
            processes.append(subprocess.Popen([binary], env=environment, stdout=open(f"{WORK}/gateway-{port}.log", "w"),
                                              stderr=subprocess.STDOUT))
        floors = []
        if floor:
            for name, port, arguments in (("SwiftNIO relay, no HTTP (floor)", relay_port, ["relay"]),
                                          ("SwiftNIO HTTP/1 proxy, codecs only (floor)", http_port,
                                           ["http", "/api/users", "/users"])):
                process = subprocess.Popen([floor, arguments[0], str(port), str(upstream_port)] + arguments[1:])
                processes.append(process)
                floors.append((name, port, lambda process=process: [process.pid], ()))
        bearer = f"Authorization: Bearer {token()}"
        wait_for(f"http://127.0.0.1:{upstream_port}/users/7")
        wait_for(f"http://127.0.0.1:{nginx_port}/api/users/7")
        wait_for(f"http://127.0.0.1:{gateway_port}/api/users/7")
        wait_for(f"http://127.0.0.1:{featured_port}/api/users/7", {"Authorization": bearer.split(": ", 1)[1]})
        proxy_master = processes[1].pid
        targets = [
            ("nginx", nginx_port, lambda: [proxy_master] + children(proxy_master), ()),
            ("APIGateway", gateway_port, lambda: [processes[2].pid], ()),
            ("APIGateway + JWT + rate limit", featured_port, lambda: [processes[3].pid], (bearer,)),
        ]
        if baseline:
            wait_for(f"http://127.0.0.1:{baseline_port}/api/users/7")
            targets.append(("APIGateway, baseline build", baseline_port, lambda: [processes[4].pid], ()))
        for name, port, *_ in floors:
            wait_for(f"http://127.0.0.1:{port}/api/users/7")
        targets += floors
        results = {name: [] for name, *_ in targets}
        for name, port, _, headers in targets:
            wrk(f"http://127.0.0.1:{port}/api/users/7", 3, headers)  # warm-up
        for round_number in range(ROUNDS):
            order = targets[round_number % len(targets):] + targets[:round_number % len(targets)]
            for name, port, pids, headers in order:
                before = cpu_seconds(pids())
                result = wrk(f"http://127.0.0.1:{port}/api/users/7", DURATION, headers)
                result["cpu_us"] = (cpu_seconds(pids()) - before) / result["requests"] * 1e6
                results[name].append(result)
        nginx_cpu = statistics.median(r["cpu_us"] for r in results["nginx"])
        nginx_rps = statistics.median(r["rps"] for r in results["nginx"])
        nginx_p99 = statistics.median(r["p99"] for r in results["nginx"])
        print(f"wrk -t1 -c{CONNECTIONS}, {ROUNDS} interleaved rounds of {DURATION} s after a 3 s warm-up; nginx with one "
              f"worker; medians of the rounds; CPU per request = user+sys of the proxy's processes / requests.")
        print()
        print("| proxy | req/s | p50 | p99 | CPU per request | CPU ratio to nginx | req/s ratio | p99 ratio |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|")
        for name, *_ in targets:
            rows = results[name]
            cpu = statistics.median(r["cpu_us"] for r in rows)
            rps = statistics.median(r["rps"] for r in rows)
            p50 = statistics.median(r["p50"] for r in rows)
            p99 = statistics.median(r["p99"] for r in rows)
            print(f"| {name} | {rps:,.0f} | {p50:.2f} ms | {p99:.2f} ms | {cpu:.1f} µs | {cpu / nginx_cpu:.2f}× | "
                  f"{rps / nginx_rps:.2f}× | {p99 / nginx_p99:.2f}× |")
        print()
        print("Targets (issue 19): CPU per request ≤ 2.0× nginx's, req/s ≥ 0.5×, p99 ≤ 2×.")
    finally:
        for process in reversed(processes):
            process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()


main()

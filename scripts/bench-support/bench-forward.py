#!/usr/bin/env python3
"""scripts/bench forward: what a call through a service's stable address costs beside a direct connection.

orchestrate up runs examples/storefront with one catalog replica. wrk then calls catalog's /items ROUNDS times
each way, alternating: straight to the replica's own address, and through the service's address (127.0.2.1),
where the supervisor's forwarder copies the bytes. Each way twice: with keep-alive (one connection per wrk
connection, the pooled-client case) and with `Connection: close` (a new connection per call, as Python's urllib
makes). CPU per request is the supervisor's utime+stime over the run (from /proc) divided by the requests wrk
completed, beside the catalog replica's own CPU per request in the same run (the example's services are the debug
build scripts/test makes; the supervisor is release). Every wait is bounded; everything
started is stopped."""
import json, os, re, shutil, signal, statistics, subprocess, sys, tempfile, time, urllib.request

orchestrate, bins, example = sys.argv[1], sys.argv[2], sys.argv[3]
ROUNDS = int(os.environ.get("ROUNDS", "3"))
SECONDS = int(os.environ.get("SECONDS_PER_RUN", "5"))
ticks = os.sysconf("SC_CLK_TCK")

def cpu(pid):
    fields = open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / ticks

def wrk(url, close):
    command = ["wrk", "-t1", "-c16", "-d%ds" % SECONDS, "--latency", url]
    if close:
        command[1:1] = ["-H", "Connection: close"]
    output = subprocess.run(command, capture_output=True, text=True, timeout=SECONDS + 30).stdout
    requests = int(re.search(r"(\d+) requests in", output).group(1))
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    p50 = re.search(r"50%\s+([\d.]+)(us|ms|s)", output)
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[p50.group(2)]
    # With `Connection: close` the server ends every connection after its response, which wrk counts as a read
    # error: only failed connects, writes, timeouts and non-2xx answers are failures.
    connect, _, write, timeout = map(int, errors.groups()) if errors else (0, 0, 0, 0)
    failed = connect + write + timeout + (int(non2xx.group(1)) if non2xx else 0)
    return requests, float(p50.group(1)) * scale, failed

work = tempfile.mkdtemp(prefix="bench-forward-")
up = None
try:
    text = open(os.path.join(example, "services.yaml")).read().replace("    replicas: 2\n", "    replicas: 1\n")
    # Without the built-in gateway (edge) and the routes it serves: only catalog's forwarder is measured, and `up`
    # then needs no APIGateway beside the release orchestrate.
    text = re.sub(r"(?m)^gateway:\n(  .*\n)+", "", text)
    text = re.sub(r"(?m)^  edge:\n(    .*\n)+", "", text)
    text = re.sub(r"(?m)^    routes:\n(      .*\n)+", "", text)
    open(os.path.join(work, "services.yaml"), "w").write(text)
    shutil.copy(os.path.join(example, "recommender.py"), work)
    log = open(os.path.join(work, "up.log"), "w")
    up = subprocess.Popen([orchestrate, "up", "-f", os.path.join(work, "services.yaml"), "--no-build", "--bin-path", bins,
                           "--color", "never"], stdout=log, stderr=subprocess.STDOUT)
    end = time.monotonic() + 120
    while "ready in" not in open(os.path.join(work, "up.log")).read() or "all 3 replicas" not in open(os.path.join(work, "up.log")).read():
        if time.monotonic() > end or up.poll() is not None:
            sys.exit("up did not become ready:\n" + open(os.path.join(work, "up.log")).read())
        time.sleep(0.1)
    status = json.loads(subprocess.run([orchestrate, "status", "--format", "json", "-f", os.path.join(work, "services.yaml")],
                                       capture_output=True, text=True, timeout=30).stdout)
    catalog = next(row for row in status if row["service"] == "catalog")
    direct = "http://%s:%d/items" % (catalog["address"], catalog["port"])
    forwarded = "http://127.0.2.1:%d/items" % catalog["port"]
    results = {}
    for round_ in range(ROUNDS):
        for close in (False, True):
            ways = [("direct", direct), ("forwarded", forwarded)]
            if round_ % 2:
                ways.reverse()
            for name, url in ways:
                before = (cpu(up.pid), cpu(catalog["pid"]))
                requests, p50, failed = wrk(url, close)
                after = (cpu(up.pid), cpu(catalog["pid"]))
                entry = results.setdefault((close, name), {"requests": [], "p50": [], "sup": [], "cat": [], "failed": 0})
                entry["requests"].append(requests / SECONDS)
                entry["p50"].append(p50)
                entry["sup"].append((after[0] - before[0]) / requests * 1e6)
                entry["cat"].append((after[1] - before[1]) / requests * 1e6)
                entry["failed"] += failed
    print("| connections | path | requests/s | p50 latency | supervisor CPU per request | catalog CPU per request | failed |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for close in (False, True):
        base = results[(close, "direct")]
        for name in ("direct", "forwarded"):
            entry = results[(close, name)]
            rps, p50 = statistics.median(entry["requests"]), statistics.median(entry["p50"])
            sup, cat = statistics.median(entry["sup"]), statistics.median(entry["cat"])
            ratio = "" if name == "direct" else " (%.2f× direct)" % (rps / statistics.median(base["requests"]))
            latency = "" if name == "direct" else " (%.2f×)" % (p50 / statistics.median(base["p50"]))
            share = "" if name == "direct" else " (%.2f× the catalog's own)" % (sup / cat if cat else float("nan"))
            print("| %s | %s | %.0f%s | %.2f ms%s | %.1f µs%s | %.1f µs | %d |" % (
                "new per call" if close else "keep-alive", name, rps, ratio, p50, latency, sup, share, cat, entry["failed"]))
finally:
    if up is not None and up.poll() is None:
        up.send_signal(signal.SIGTERM)
        try:
            up.wait(timeout=60)
        except subprocess.TimeoutExpired:
            up.kill()
    shutil.rmtree(work, ignore_errors=True)

#!/usr/bin/env python3
"""scripts/bench up: orchestrate up on the root services.yaml, products already built (debug, as `swift build`).

1. Floor: each service's own start-to-ready time, started alone by this script with the environment up gives it
   (GET /ready polled every 2 ms), median of RUNS; the floor is the largest sum along a dependency chain.
2. up: time from starting `orchestrate up --no-build` to its "all N replicas ... ready" line, median of RUNS.
3. Restart: kill -9 of user-service-1 to its "ready again" line, beside user-service's cold start (1.).
4. Idle: the supervisor's CPU (utime+stime from /proc) and resident memory over IDLE seconds with the shop running.
Every wait is bounded; every process started is stopped."""
import json, os, shutil, signal, socket, statistics, subprocess, sys, tempfile, threading, time, urllib.request

root, bins = sys.argv[1], sys.argv[2]
RUNS = int(os.environ.get("RUNS", "5"))
IDLE = int(os.environ.get("IDLE", "60"))
orchestrate = os.path.join(bins, "orchestrate")

import yaml  # PyYAML: only to read dependsOn
spec = yaml.safe_load(open(os.path.join(root, "services.yaml")))
services = spec["services"]

def wait_ready(url, limit=30.0):
    end = time.monotonic() + limit
    while time.monotonic() < end:
        try:
            with urllib.request.urlopen(url, timeout=0.5) as response:
                if response.status == 200:
                    return True
        except Exception:
            pass
        time.sleep(0.002)
    return False

def alone(name, work):
    """Start one service by itself, as up would; seconds until GET /ready answers 200."""
    service = services[name]
    port = service["port"]
    env = {"PATH": os.environ["PATH"], "HOST": "127.0.0.9", "PORT": str(port), "INTERNAL_TOKEN": "x" * 64,
           "JWT_SECRET": "y" * 64, "JWT_ISSUER": "shop", "LOG_LEVEL": "warning",
           "ROUTES_FILE": os.path.join(work, "routes.json"),
           "DATABASE_URL": "sqlite://" + os.path.join(work, name + ".sqlite")}
    for dependency in service.get("dependsOn", []):
        env[dependency.upper().replace("-", "_") + "_URL"] = "http://127.0.0.1:%d" % services[dependency]["port"]
    started = time.monotonic()
    process = subprocess.Popen([os.path.join(bins, service["product"])], env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    try:
        if not wait_ready("http://127.0.0.9:%d/ready" % port):
            sys.exit("%s did not become ready alone" % name)
        return time.monotonic() - started
    finally:
        process.terminate()
        process.wait(timeout=30)
        for suffix in ("", "-wal", "-shm"):
            try: os.remove(os.path.join(work, name + ".sqlite" + suffix))
            except FileNotFoundError: pass

def chain(name, cost, memo={}):
    if name not in memo:
        memo[name] = cost[name] + max([chain(d, cost) for d in services[name].get("dependsOn", [])] or [0])
    return memo[name]

class Up:
    """orchestrate up in a fresh copy of the spec; its lines timestamped as they arrive."""
    def __init__(self):
        self.work = tempfile.mkdtemp(prefix="bench-up-")
        shutil.copy(os.path.join(root, "services.yaml"), self.work)
        self.lines = []
        self.started = time.monotonic()
        self.process = subprocess.Popen(
            [orchestrate, "up", "-f", os.path.join(self.work, "services.yaml"), "--no-build", "--bin-path", bins,
             "--color", "never"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            env={"PATH": os.environ["PATH"], "HOME": self.work})
        threading.Thread(target=self.read, daemon=True).start()
    def read(self):
        for line in self.process.stdout:
            self.lines.append((time.monotonic(), line.rstrip("\n")))
    def wait_for(self, text, after=0.0, limit=120.0):
        end = time.monotonic() + limit
        while time.monotonic() < end:
            for stamp, line in list(self.lines):
                if stamp >= after and text in line:
                    return stamp
            time.sleep(0.005)
        sys.exit("no line with %r within %.0f s" % (text, limit))
    def status(self):
        output = subprocess.run([orchestrate, "status", "--format", "json", "-f", os.path.join(self.work, "services.yaml")],
                                capture_output=True, text=True, timeout=30).stdout
        return json.loads(output)
    def stop(self):
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=120)
        shutil.rmtree(self.work, ignore_errors=True)

work = tempfile.mkdtemp(prefix="bench-alone-")
subprocess.run([orchestrate, "generate", "gateway", "-f", os.path.join(root, "services.yaml"), "-o", work],
               check=True, stdout=subprocess.DEVNULL)
shutil.copy(os.path.join(work, "gateway", "routes.json"), work)
alone_times = {name: statistics.median(alone(name, work) for _ in range(RUNS)) for name in services}
shutil.rmtree(work, ignore_errors=True)
floor = max(chain(name, alone_times) for name in services)

ups, restarts = [], []
replicas = sum(s.get("replicas", 1) for s in services.values())
for run in range(RUNS):
    up = Up()
    ready = up.wait_for("all %d replicas" % replicas)
    ups.append(ready - up.started)
    victim = next(r for r in up.status() if r["service"] == "user-service" and r["replica"] == 1)
    killed = time.monotonic()
    os.kill(victim["pid"], signal.SIGKILL)
    again = up.wait_for("user-service-1 ready again", after=killed, limit=60)
    restarts.append(again - killed)
    if run == RUNS - 1:
        pid = up.process.pid
        def cpu():
            fields = open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        time.sleep(2)
        before, t0 = cpu(), time.monotonic()
        peak = 0
        while time.monotonic() - t0 < IDLE:
            time.sleep(1)
            rss = int(next(l for l in open("/proc/%d/status" % pid) if l.startswith("VmRSS")).split()[1])
            peak = max(peak, rss)
        idle_cpu = (cpu() - before) / (time.monotonic() - t0)
    up.stop()

chain_names = max(services, key=lambda name: chain(name, alone_times))
up_median, restart_median = statistics.median(ups), statistics.median(restarts)
cold = alone_times["user-service"]
print("| measure | ours | comparison | ratio | target |")
print("|---|---:|---:|---:|---:|")
print("| `up` to all %d replicas ready | %.0f ms (median of %d; %s) | floor %.0f ms (longest chain, ending at %s; each service alone: %s) | %.2f× | ≤ 1.3× |"
      % (replicas, up_median * 1000, RUNS, ", ".join("%.0f" % (u * 1000) for u in ups), floor * 1000, chain_names,
         ", ".join("%s %.0f" % (n, t * 1000) for n, t in alone_times.items()), up_median / floor))
print("| `kill -9` user-service-1 to ready again | %.0f ms (median of %d; %s) | user-service cold start alone %.0f ms | %.2f× | ≤ 1.5× |"
      % (restart_median * 1000, RUNS, ", ".join("%.0f" % (r * 1000) for r in restarts), cold * 1000, restart_median / cold))
print("| supervisor idle, shop running, %d s | %.2f%% of a core, peak RSS %.1f MiB | — | — | < 1%%, < 30 MB |"
      % (IDLE, idle_cpu * 100, peak / 1024))

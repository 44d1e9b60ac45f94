#!/usr/bin/env python3
"""scripts/bench watch: `orchestrate up --watch`'s edit-to-ready time beside its floor, measured in the same run.

For each scenario, ROUNDS (5) rounds, each of them:
1. Floor: with nothing running, the one-line change written, then the same `swift build` that `up --watch` runs for
   it, then the service's binary started alone (the environment its replica had under `up`, on a free address)
   until GET /ready answers 200. Floor = build + cold start to ready, from the write.
2. Watch: `orchestrate up --watch` started (the products already built), the next one-line change written, then
   the log read until the build is done, then the service's stable address called (a new connection per call,
   every 2 ms) until the answer shows the change.
   Edit-to-ready = from the write to that answer: the watcher, the build, the new replica's start and readiness,
   and the swap. The log's "built in" and "swapped in" lines split it.
Scenarios: a leaf service (catalog in a copy of examples/storefront, the --product build) and ServiceKit, the
shop's shared target (a copy of this repository; every service product is rebuilt: one `swift build`).
Every wait is bounded; every process started is stopped; the edited files are put back.
ROUNDS (5) sets the rounds, ONLY a part of a scenario's name to run that one alone."""
import json, os, re, resource, signal, socket, statistics, subprocess, sys, time, urllib.request

orchestrate = sys.argv[1]
copies = os.path.abspath(sys.argv[2])
ROUNDS = int(os.environ.get("ROUNDS", "5"))
# Seconds between "all ready" and the edit, as a developer edits a while after `up` started, not while its
# services are still warming up.
SETTLE = float(os.environ.get("SETTLE", "5"))

SCENARIOS = [
    dict(name="leaf service (catalog, examples/storefront)", directory=os.path.join(copies, "storefront"),
         file="Sources/Catalog/Catalog.swift", old='"tea", "kettle", "cup"', new='"tea", "kettle", "cup", "v{n}"',
         build=["--product", "Catalog"], product="Catalog", service="catalog", path="/items", replicas=5),
    dict(name="shared target (ServiceKit, the shop)", directory=os.path.join(copies, "shop"),
         file="Sources/ServiceKit/ServiceMain.swift", old='["status": "ok"]', new='["status": "ok-v{n}"]',
         build=[], product="UserService", service="user-service", path="/health", replicas=8),
]


def get(url, timeout=1.0):
    """The body of a 200 answer on a new connection, else None."""
    try:
        request = urllib.request.Request(url, headers={"Connection": "close"})
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.read().decode() if response.status == 200 else None
    except Exception:
        return None


def wait_for(condition, limit, interval=0.005):
    end = time.monotonic() + limit
    while time.monotonic() < end:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    return None


def write(path, text):
    # As an editor saves: the whole file, renamed into place.
    temporary = path + ".bench-tmp"
    with open(temporary, "w") as handle:
        handle.write(text)
    os.replace(temporary, path)


class Up:
    def __init__(self, directory, replicas):
        self.log_path = os.path.join(directory, ".bench-up.log")
        self.log = open(self.log_path, "w")
        self.process = subprocess.Popen(
            [orchestrate, "up", "--watch", "--no-dashboard", "--color", "never", "-f",
             os.path.join(directory, "services.yaml")], cwd=directory, stdout=self.log, stderr=subprocess.STDOUT,
            start_new_session=True)
        self.directory = directory
        ready = lambda: self.process.poll() is not None or (
            re.search(r"all \d+ replicas", self.text()) is not None and "watching" in self.text())
        if not wait_for(ready, 600, 0.05) or self.process.poll() is not None:
            self.stop()
            sys.exit("up --watch did not get ready:\n" + self.text()[-3000:])

    def text(self):
        with open(self.log_path) as handle:
            return handle.read()

    def status(self):
        output = subprocess.run([orchestrate, "status", "--format", "json", "-f",
                                 os.path.join(self.directory, "services.yaml")], capture_output=True, text=True,
                                timeout=60).stdout
        return json.loads(output)

    def stop(self):
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=30)
        self.log.close()


def stable_address(directory, service):
    with open(os.path.join(directory, ".orchestrate", "hosts")) as handle:
        for line in handle:
            fields = line.split()
            if len(fields) >= 2 and fields[1] == service:
                return fields[0]
    sys.exit("no stable address for %s" % service)


def environment_of(pid):
    with open("/proc/%d/environ" % pid, "rb") as handle:
        pairs = [item.split(b"=", 1) for item in handle.read().split(b"\0") if b"=" in item]
    return {key.decode(): value.decode() for key, value in pairs}


def cpu_of(pid):
    """(own CPU, reaped children's CPU) of a process in seconds, from /proc/PID/stat."""
    with open("/proc/%d/stat" % pid) as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks, (int(fields[13]) + int(fields[14])) / ticks


def children_cpu():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def floor(scenario, source, n, environment, port):
    """Seconds from the write to the service, built alone and started alone, answering /ready; the build's CPU."""
    directory = scenario["directory"]
    cpu = children_cpu()
    started = time.monotonic()
    write(source, scenario["original"].replace(scenario["old"], scenario["new"].format(n=n)))
    # In the package's directory, as up --watch builds: swiftc's commands name the working directory, so a build
    # from elsewhere does not match the last one's and recompiles far more (20 s instead of 7 s for ServiceKit).
    subprocess.run(["swift", "build", "--package-path", directory] + scenario["build"], check=True, cwd=directory,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=1800)
    built = time.monotonic()
    build_cpu = children_cpu() - cpu
    binary = os.path.join(directory, ".build", "debug", scenario["product"])
    process = subprocess.Popen([binary], env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        if not wait_for(lambda: get("http://%s:%d/ready" % (environment["HOST"], port)) is not None, 120, 0.002):
            sys.exit("%s did not get ready alone" % scenario["service"])
        ready = time.monotonic()
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
    return ready - started, built - started, ready - built, build_cpu


def watch(scenario, source, n, replicas):
    """Seconds from the write to the change served at the service's stable address; the log's "built in"; the
    supervisor's own CPU and its builds' CPU over that time."""
    up = Up(scenario["directory"], replicas)
    try:
        rows = [row for row in up.status() if row["service"] == scenario["service"]]
        url = "http://%s:%d%s" % (stable_address(scenario["directory"], scenario["service"]), rows[0]["port"],
                                  scenario["path"])
        marker = "v%d" % n
        environment = environment_of(rows[0]["pid"])
        time.sleep(SETTLE)
        before = len(up.text())
        own, children = cpu_of(up.process.pid)
        started = time.monotonic()
        write(source, scenario["original"].replace(scenario["old"], scenario["new"].format(n=n)))
        # The log is read until the build is done, and only then is the service called (every 2 ms): calls during
        # the build would take CPU from it, which the floor's build does not share.
        if not wait_for(lambda: "built in" in up.text()[before:] or "build failed" in up.text()[before:], 1800,
                        0.01):
            sys.exit("the build never ended:\n" + up.text()[-3000:])
        if not wait_for(lambda: (get(url) or "").find(marker) >= 0, 300, 0.002):
            sys.exit("the change was never served:\n" + up.text()[-3000:])
        served = time.monotonic() - started
        own_after, children_after = cpu_of(up.process.pid)
        log = up.text()[before:]
        built = re.search(r"built in ([0-9.]+) s", log)
        return (served, float(built.group(1)) if built else None, environment, rows[0]["port"], own_after - own,
                children_after - children)
    finally:
        up.stop()


def main():
    print("## watch")
    print()
    print("Machine: %d cores, %s; %s" % (os.cpu_count(), os.uname().machine, subprocess.run(
        ["swift", "--version"], capture_output=True, text=True).stdout.splitlines()[0].split(" (")[0]))
    print()
    print("| change | floor: build + cold start (median) | watch: edit to ready (median) | watch ÷ floor | "
          "floor runs (s) | watch runs (s) | of which build, under watch (s) | build CPU alone / under watch "
          "(median) | supervisor's own CPU per edit (median) |")
    print("|---|---:|---:|---:|---|---|---|---:|---:|")
    for scenario in [s for s in SCENARIOS if os.environ.get("ONLY", "") in s["name"]]:
        source = os.path.join(scenario["directory"], scenario["file"])
        with open(source) as handle:
            scenario["original"] = handle.read()
        if scenario["old"] not in scenario["original"]:
            sys.exit("%s has no %s" % (source, scenario["old"]))
        floors, watches, builds, starts, floor_cpu, watch_cpu, own_cpu = [], [], [], [], [], [], []
        environment, port = None, None
        n = int(time.time()) % 100000 * 100
        try:
            # A first watch run: the replica's environment for the floor's alone-run; not counted.
            n += 1
            _, _, environment, port, _, _ = watch(scenario, source, n, scenario["replicas"])
            environment = dict(environment, HOST="127.0.0.250")
            for _ in range(ROUNDS):
                n += 1
                total, build, start, cpu = floor(scenario, source, n, environment, port)
                floors.append(total)
                starts.append(start)
                floor_cpu.append(cpu)
                n += 1
                served, built, _, _, own, children = watch(scenario, source, n, scenario["replicas"])
                watches.append(served)
                builds.append(built)
                own_cpu.append(own)
                watch_cpu.append(children)
        finally:
            write(source, scenario["original"])
            subprocess.run(["swift", "build", "--package-path", scenario["directory"]] + scenario["build"],
                           cwd=scenario["directory"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           timeout=1800)
        floor_median, watch_median = statistics.median(floors), statistics.median(watches)
        print("| %s | %.2f s | %.2f s | %.2f× | %s | %s | %s | %.2f s / %.2f s | %.0f ms |" % (
            scenario["name"], floor_median, watch_median, watch_median / floor_median,
            ", ".join("%.2f" % value for value in floors), ", ".join("%.2f" % value for value in watches),
            ", ".join("%.2f" % value if value is not None else "?" for value in builds),
            statistics.median(floor_cpu), statistics.median(watch_cpu), statistics.median(own_cpu) * 1000))
        sys.stdout.flush()
        print("", file=sys.stderr)
        print("%s: cold start to ready alone: %s s" % (scenario["name"], ", ".join("%.3f" % s for s in starts)),
              file=sys.stderr)
    print()
    print("Command: scripts/bench watch (ROUNDS=%d)" % ROUNDS)


# A SIGTERM ends the run through the `finally`s: the edited files are put back, up is stopped.
signal.signal(signal.SIGTERM, lambda *_: sys.exit("scripts/bench watch: terminated"))
main()

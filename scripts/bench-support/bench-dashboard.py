#!/usr/bin/env python3
"""scripts/bench dashboard: the supervisor's idle cost with the dashboard, beside --no-dashboard, in one run.

`orchestrate up --no-build` on the root services.yaml (products already built), three ways, each for IDLE seconds
after every replica is ready: --no-dashboard; the dashboard with no page open; the dashboard with one page's live
feed connected (a client reading /api/events). Measured: the supervisor's CPU (utime+stime from /proc/PID/stat, with
its trace decoder's, a child process) as a share of one core, and its resident memory (VmRSS at the end, VmHWM peak). Every wait is bounded; every process
started is stopped."""
import os, re, shutil, signal, subprocess, sys, tempfile, threading, time, urllib.request

orchestrate, root = sys.argv[1], sys.argv[2]
bins = sys.argv[3]
IDLE = int(os.environ.get("IDLE", "30"))
ticks = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    fields = open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / ticks


def decoders(pid):
    """The supervisor's trace decoder (orchestrate-otlp / OTLPDecoder), a child of its own: its CPU is counted too."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = open("/proc/%s/stat" % entry).read()
            except OSError:
                continue
            name, rest = stat.split("(", 1)[1].rsplit(")", 1)
            if int(rest.split()[1]) == pid and name in ("OTLPDecoder", "orchestrate-otlp"):
                found.append(int(entry))
    return found


def cpu_with_decoder(pid):
    return cpu_seconds(pid) + sum(cpu_seconds(child) for child in decoders(pid))


def memory(pid):
    status = dict(line.split(":", 1) for line in open("/proc/%d/status" % pid))
    return int(status["VmRSS"].split()[0]) / 1024, int(status["VmHWM"].split()[0]) / 1024


def run(mode):
    work = tempfile.mkdtemp(prefix="orchestrate-bench-dashboard.")
    shutil.copy(os.path.join(root, "services.yaml"), work)
    log = os.path.join(work, "up.log")
    arguments = [orchestrate, "up", "-f", os.path.join(work, "services.yaml"), "--no-build", "--bin-path", bins,
                 "--color", "never"] + (["--no-dashboard"] if mode == "off" else [])
    up = subprocess.Popen(arguments, stdout=open(log, "w"), stderr=subprocess.STDOUT, start_new_session=True)
    reader = None
    try:
        end = time.monotonic() + 120
        while "services ready in" not in open(log).read():
            if up.poll() is not None or time.monotonic() > end:
                sys.exit("up did not get ready:\n" + open(log).read()[-3000:])
            time.sleep(0.1)
        if mode == "page":
            url = re.search(r"dashboard: (http://\S+)", open(log).read()).group(1)
            stream = urllib.request.urlopen(url.replace("/?", "/api/events?"), timeout=IDLE + 30)
            reader = threading.Thread(target=lambda: [None for _ in iter(lambda: stream.read(4096), b"")], daemon=True)
            reader.start()
        time.sleep(2)
        before, started = cpu_with_decoder(up.pid), time.monotonic()
        time.sleep(IDLE)
        share = (cpu_with_decoder(up.pid) - before) / (time.monotonic() - started)
        rss, peak = memory(up.pid)
        return share * 100, rss, peak
    finally:
        os.killpg(up.pid, signal.SIGINT)
        try:
            up.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(up.pid, signal.SIGKILL)
        shutil.rmtree(work, ignore_errors=True)


results = {mode: run(mode) for mode in ["off", "idle", "page"]}
base = results["off"]
print("| supervisor, shop ready, %d s | CPU (%% of a core) | RSS now | RSS peak |" % IDLE)
print("|---|---:|---:|---:|")
for mode, label in [("off", "`--no-dashboard`"), ("idle", "dashboard, no page open"), ("page", "dashboard, one page live")]:
    cpu, rss, peak = results[mode]
    print("| %s | %.2f%% | %.1f MiB (%+.1f) | %.1f MiB |" % (label, cpu, rss, rss - base[1], peak))

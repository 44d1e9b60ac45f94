#!/usr/bin/env python3
"""scripts/bench events: order.created from order-service's commit to notification-service's stored notification.

For each broker (Redis Streams on a redis-server started here, and the embedded SQLite event log) it starts
user-, payment-, order- and notification-service from BIN_DIR on loopback (SQLite databases in a temporary
directory), creates 20 users and then:
  - one client: orders placed one after another (the latency of an unloaded pipeline);
  - 16 clients: orders placed as fast as order-service takes them (throughput, and latency under load).
Latency is notification.created_at - event.occurred_at, both stored by the services (event time: the order's
transaction, milliseconds). Throughput is notifications stored per second over the loaded phase. Beside them,
redis-benchmark's XADD throughput on the same machine, 16 clients, no pipelining.

Usage: bench-events.py PACKAGE_DIR BIN_DIR   (ORDERS=3000 SEQUENTIAL=300)
"""
import http.client
import json
import os
import re
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time

root, bins = sys.argv[1], sys.argv[2]
ORDERS = int(os.environ.get("ORDERS", "3000"))
SEQUENTIAL = int(os.environ.get("SEQUENTIAL", "300"))
CLIENTS = 16
TOKEN = "bench-token"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def request(port, method, path, body=None):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"X-Service-Token": TOKEN}
    if body is not None:
        headers["Content-Type"] = "application/json"
    connection.request(method, path, body=json.dumps(body) if body is not None else None, headers=headers)
    response = connection.getresponse()
    data = response.read()
    connection.close()
    return response.status, (json.loads(data) if data else {})


def wait_ready(port, process, name, seconds=60):
    end = time.time() + seconds
    while time.time() < end:
        if process.poll() is not None:
            sys.exit(f"{name} exited with {process.returncode}")
        try:
            if request(port, "GET", "/ready")[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.05)
    sys.exit(f"{name} not ready after {seconds} s")


def percentile(values, p):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def latencies(database, event_ids):
    """Milliseconds from each event's time to its notification's, for the given events."""
    with sqlite3.connect(database, timeout=30) as db:
        rows = db.execute("SELECT event_id, (created_at - event_at) * 1000 FROM notifications").fetchall()
    wanted = set(event_ids)
    return [ms for event_id, ms in rows if event_id in wanted]


def notified(database):
    try:
        with sqlite3.connect(database, timeout=30) as db:
            return db.execute("SELECT count(*), max(created_at) FROM notifications").fetchone()
    except sqlite3.OperationalError:
        return (0, None)


def run(broker_name, broker_url, work):
    env_common = dict(os.environ, INTERNAL_TOKEN=TOKEN, LOG_LEVEL="warning", REQUEST_LOG_LEVEL="debug",
                      BROKER_URL=broker_url)
    ports = {name: free_port() for name in ["user", "payment", "order", "notification"]}
    products = {"user": "UserService", "payment": "PaymentService", "order": "OrderService",
                "notification": "NotificationService"}
    processes = {}
    log = open(os.path.join(work, f"services-{broker_name}.log"), "w")
    try:
        for name in ["user", "payment", "order", "notification"]:
            env = dict(env_common, PORT=str(ports[name]), HOST="127.0.0.1",
                       DATABASE_URL=f"sqlite://{work}/{broker_name}-{name}.sqlite",
                       USER_SERVICE_URL=f"http://127.0.0.1:{ports['user']}",
                       PAYMENT_SERVICE_URL=f"http://127.0.0.1:{ports['payment']}")
            processes[name] = subprocess.Popen([os.path.join(bins, products[name])], env=env, stdout=log, stderr=log,
                                               stdin=subprocess.DEVNULL)
            wait_ready(ports[name], processes[name], products[name])
        users = [request(ports["user"], "POST", "/users", {"name": f"Bench {i}", "email": f"bench{i}@example.com"})[1]["id"]
                 for i in range(20)]
        database = f"{work}/{broker_name}-notification.sqlite"

        def place(index):
            status, order = request(ports["order"], "POST", "/orders", {
                "userId": users[index % len(users)], "items": [{"sku": f"sku-{index}", "quantity": 1, "unitPrice": 100 + index}]})
            if status != 201:
                sys.exit(f"order {index}: {status} {order}")
            return order["id"]

        def wait_for(count, seconds=300):
            end = time.time() + seconds
            while time.time() < end:
                done, last = notified(database)
                if done >= count:
                    return last
                time.sleep(0.05)
            sys.exit(f"{broker_name}: only {notified(database)[0]} of {count} notifications after {seconds} s")

        for index in range(100):  # warm-up
            place(index)
        wait_for(100)

        sequential = [place(100 + index) for index in range(SEQUENTIAL)]
        wait_for(100 + SEQUENTIAL)
        one = latencies(database, sequential)

        placed, lock, next_index = [], threading.Lock(), [0]

        def client():
            while True:
                with lock:
                    index = next_index[0]
                    next_index[0] += 1
                if index >= ORDERS:
                    return
                order_id = place(100 + SEQUENTIAL + index)
                with lock:
                    placed.append(order_id)

        start = time.time()
        threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        orders_done = time.time()
        last = wait_for(100 + SEQUENTIAL + ORDERS)
        loaded = latencies(database, placed)
        with sqlite3.connect(database, timeout=30) as db:
            duplicates = db.execute("SELECT count(*) - count(DISTINCT event_id) FROM notifications").fetchone()[0]
        if duplicates or len(loaded) != ORDERS or len(one) != SEQUENTIAL:
            sys.exit(f"{broker_name}: {len(loaded)}/{ORDERS} and {len(one)}/{SEQUENTIAL} notified, {duplicates} twice")
        return {
            "one_p50": statistics.median(one), "one_p99": percentile(one, 99),
            "orders_per_s": ORDERS / (orders_done - start), "events_per_s": ORDERS / (last - start),
            "p50": statistics.median(loaded), "p99": percentile(loaded, 99),
        }
    finally:
        for process in processes.values():
            process.terminate()
        for process in processes.values():
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
        log.close()


def main():
    work = tempfile.mkdtemp(prefix="bench-events-")
    redis_port = free_port()
    redis = subprocess.Popen(["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--dir", work,
                              "--save", "", "--appendonly", "yes", "--appendfsync", "everysec"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", redis_port), 0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        results = {
            "Redis Streams": run("redis", f"redis://127.0.0.1:{redis_port}", work),
            "embedded SQLite log": run("embedded", f"sqlite://{work}/events.sqlite", work),
        }
        payload = json.dumps({"orderId": "0" * 36, "userId": "0" * 36, "items": [{"sku": "sku-1", "quantity": 1, "unitPrice": 101}],
                              "total": 101, "currency": "USD"})
        text = subprocess.run(
            ["redis-benchmark", "-h", "127.0.0.1", "-p", str(redis_port), "-c", str(CLIENTS), "-n", "200000", "-q",
             "XADD", "bench", "*", "id", "x" * 36, "type", "order.created", "payload", payload],
            capture_output=True, text=True, check=True).stdout
        xadd = float(re.findall(r"([\d.]+) requests per second", text)[-1])
    finally:
        redis.terminate()
        redis.wait(10)
        shutil.rmtree(work, ignore_errors=True)

    print(f"| broker | 1 client: p50 / p99 commit → stored | {CLIENTS} clients: orders/s | events/s (stored) "
          f"| p50 / p99 commit → stored | events/s ÷ redis-benchmark XADD/s |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, r in results.items():
        print(f"| {name} | {r['one_p50']:.1f} / {r['one_p99']:.1f} ms | {r['orders_per_s']:,.0f} | {r['events_per_s']:,.0f} "
              f"| {r['p50']:.1f} / {r['p99']:.1f} ms | {r['events_per_s'] / xadd:.3f}× |")
    print()
    print(f"redis-benchmark XADD ({CLIENTS} clients, no pipelining, a {len(payload)}-byte payload): {xadd:,.0f} requests/s.")
    print(f"Orders: {SEQUENTIAL} one at a time, then {ORDERS:,} from {CLIENTS} clients, after 100 to warm up; "
          "every notification checked present once.")


main()

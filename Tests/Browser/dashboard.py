"""The dashboard in a real browser: `orchestrate up` on the root services.yaml, Debian's chromium driven headless by
Selenium. Run by scripts/test-dashboard (which installs both): python dashboard.py REPO BIN OUTPUT.

Checks: the page lists the five services ready, with their replicas, CPU and memory; restart on notification-service
restarts it and the page shows the new PID; after an order through the gateway, the log view filtered to
order-service shows that request's lines, JSON lines as fields, and its trace id shows the lines of every service;
the trace is listed across the gateway, order-, user- and payment-service, its waterfall shows their spans, and a
span leads back to the log lines. Screenshots go to OUTPUT. Every wait is bounded.
"""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

repo, bin_dir, output = sys.argv[1:4]
os.makedirs(output, exist_ok=True)
work = tempfile.mkdtemp(prefix="orchestrate-dashboard.")
shutil.copy(os.path.join(repo, "services.yaml"), work)
expected = {"api-gateway": 2, "user-service": 2, "order-service": 1, "payment-service": 1, "notification-service": 1}


def wait_for(condition, what, timeout=60):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        try:
            result = condition()
            if result:
                return result
        except Exception as error:  # the page is mid-render: look again
            last = error
        time.sleep(0.25)
    raise SystemExit(f"dashboard test: {what} within {timeout} s (last error: {last})")


def click(selector, what, by=By.CSS_SELECTOR):
    """Clicks what `selector` finds, again if the page re-rendered it in between (it redraws on live updates)."""
    wait_for(lambda: driver.find_element(by, selector).click() or True, "clicking " + what, timeout=20)


def text_of(selector):
    return driver.find_element(By.CSS_SELECTOR, selector).text


log_path = os.path.join(work, "up.log")
up = subprocess.Popen(
    [os.path.join(bin_dir, "orchestrate"), "up", "-f", os.path.join(work, "services.yaml"), "--no-build",
     "--bin-path", bin_dir, "--color", "never"],
    stdout=open(log_path, "w"), stderr=subprocess.STDOUT, cwd=work, start_new_session=True)
driver = None
try:
    def started():
        if up.poll() is not None:
            raise SystemExit("dashboard test: orchestrate up exited:\n" + open(log_path).read()[-4000:])
        text = open(log_path).read()
        found = re.search(r"dashboard: (http://127\.0\.0\.1:\d+/\?token=[0-9a-f]{32})", text)
        return found.group(1) if found and "services ready in" in text else None
    url = wait_for(started, "orchestrate up printed its dashboard and every service ready", timeout=180)
    print("dashboard test: " + url.split("?")[0])

    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for argument in ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1600,1000"]:
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    driver.set_page_load_timeout(30)

    # Without the token the page loads nothing.
    driver.get(url.split("?")[0])
    assert "token" in driver.page_source, "the dashboard answered without its token"

    driver.get(url)

    def resources():
        rows = {row.get_attribute("data-service"): row for row in driver.find_elements(By.CSS_SELECTOR, "tr.service")}
        if not set(expected) <= set(rows):
            return None
        for name, replicas in expected.items():
            row = rows[name]
            cells = {cell: row.find_element(By.CSS_SELECTOR, "td." + cell).text for cell in ["ready", "cpu", "memory", "pid"]}
            if cells["ready"] != f"{replicas}/{replicas}" or not cells["cpu"].endswith("%") \
                    or not cells["memory"].endswith("MiB") or len(cells["pid"].split()) != replicas:
                return None
        return rows
    wait_for(resources, "the five services ready with CPU, memory and a PID per replica")
    click('tr.service[data-service="user-service"] .toggle', "user-service's row")
    wait_for(lambda: len(driver.find_elements(By.CSS_SELECTOR, 'tr.replica[data-replica^="user-service-"]')) == 2,
             "user-service expanded to its two replicas")
    graph = driver.find_elements(By.CSS_SELECTOR, '#graph g[data-state="running"]')
    assert len(graph) >= 5, f"the dependency graph shows {len(graph)} running services"
    driver.save_screenshot(os.path.join(output, "resources.png"))

    # Restart notification-service from the page: a new PID, ready again.
    row = 'tr.service[data-service="notification-service"]'
    old_pid = wait_for(lambda: text_of(row + " td.pid"), "notification-service's PID")
    click(row + ' button[data-action="restart"]', "restart on notification-service")

    def restarted():
        pid = text_of(row + " td.pid")
        return pid if pid and pid != old_pid and text_of(row + " td.ready") == "1/1" else None
    new_pid = wait_for(restarted, "notification-service restarted with a new PID and ready")
    print(f"dashboard test: notification-service restarted from the page, PID {old_pid} -> {new_pid}")
    driver.save_screenshot(os.path.join(output, "restarted.png"))

    # An order through the gateway, then its lines in the log view, filtered to order-service.
    token = subprocess.run([os.path.join(bin_dir, "orchestrate"), "token", "--sub", "dashboard-test"], cwd=work,
                           check=True, capture_output=True, text=True).stdout.strip()

    def post(path, body):
        request = urllib.request.Request("http://localhost:3000/api" + path, data=json.dumps(body).encode(),
                                         method="POST", headers={"Authorization": "Bearer " + token,
                                                                 "Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=20) as response:
            return response.status, json.loads(response.read())
    status, user = post("/users", {"name": "Dashboard", "email": "dashboard@example.com"})
    assert status == 201, f"POST /users: {status} {user}"
    status, order = post("/orders", {"userId": user["id"], "items": [{"sku": "lamp", "quantity": 1, "unitPrice": 4200}]})
    assert status == 201, f"POST /orders: {status} {order}"
    click("#tab-logs", "the Logs tab")
    Select(driver.find_element(By.ID, "f-service")).select_by_value("order-service")
    driver.find_element(By.ID, "f-text").send_keys("/orders")

    def order_lines():
        lines = driver.find_elements(By.CSS_SELECTOR, "#lines .line")
        if not lines or any(line.get_attribute("data-service") != "order-service" for line in lines):
            return None
        posted = [(line.text, line.find_element(By.CSS_SELECTOR, "a.trace").text.split("=", 1)[1])
                  for line in lines if "POST" in line.text and line.find_elements(By.CSS_SELECTOR, ".field")]
        return posted or None
    try:
        lines = wait_for(order_lines, "order-service's lines of the order, as fields, in the filtered log view")
    except SystemExit:
        print("\n".join(line.text for line in driver.find_elements(By.CSS_SELECTOR, "#lines .line")))
        driver.save_screenshot(os.path.join(output, "logs-failed.png"))
        raise
    print(f"dashboard test: {len(lines)} order-service line(s) of POST /orders, e.g. {lines[-1][0][:160]!r}")
    driver.save_screenshot(os.path.join(output, "logs.png"))

    # The order's trace id, clicked: that request's lines from every service it went through.
    trace_id = lines[-1][1]
    click(f"//div[@id='lines']//a[contains(@class, 'trace') and contains(., '{trace_id}')]", "the order's trace id",
          by=By.XPATH)

    def request_lines():
        shown = driver.find_elements(By.CSS_SELECTOR, "#lines .line")
        services = {line.get_attribute("data-service") for line in shown}
        return services if len(services) >= 2 and all(trace_id in line.text for line in shown) else None
    services = wait_for(request_lines, f"lines of trace {trace_id} from more than one service")
    print(f"dashboard test: trace {trace_id}: lines from {', '.join(sorted(services))}")
    driver.save_screenshot(os.path.join(output, "request.png"))
    # The same request in the trace list: one trace across the gateway and the three services it went through;
    # its waterfall; from a span, back to that request's log lines.
    click("#tab-traces", "the Traces tab")
    through = {"api-gateway", "order-service", "user-service", "payment-service"}

    def listed():
        rows = driver.find_elements(By.CSS_SELECTOR, f'#trace-list tr[data-trace="{trace_id}"]')
        services = set(rows[0].find_element(By.CSS_SELECTOR, "td.services").text.split(", ")) if rows else set()
        return rows[0] if through <= services else None
    wait_for(listed, f"trace {trace_id} listed across {', '.join(sorted(through))}")
    click(f'#trace-list tr[data-trace="{trace_id}"]', "the order's trace")

    def waterfall():
        spans = driver.find_elements(By.CSS_SELECTOR, "#waterfall .span")
        return len(spans) if through <= {span.get_attribute("data-service") for span in spans} else None
    spans = wait_for(waterfall, "the trace's waterfall with a span of each service")
    print(f"dashboard test: trace {trace_id}: {spans} spans in the waterfall across {', '.join(sorted(through))}")
    driver.execute_script("document.getElementById('waterfall').scrollIntoView()")
    driver.save_screenshot(os.path.join(output, "trace.png"))
    click('#waterfall .span[data-service="payment-service"]', "a payment-service span")
    wait_for(lambda: not driver.find_element(By.ID, "logs").get_attribute("class")
             and driver.find_element(By.ID, "f-text").get_attribute("value") == trace_id
             and driver.find_elements(By.CSS_SELECTOR, '#lines .line[data-service="payment-service"]'),
             "a span's click showing its request's log lines")

    # Metrics, scraped while the page is open: the order's requests and latency in order-service's series, its
    # breakers (to user-service and payment-service) closed.
    click("#tab-metrics", "the Metrics tab")
    wait_for(lambda: driver.execute_script(
        'return ["api-gateway", "order-service", "user-service", "payment-service"].every((s) =>'
        ' (metricSeries[s] || []).some((p) => p.requestsPerSecond > 0 && p.p50 !== null && p.p99 !== null))'),
        "request rate and p50/p99 of the gateway and the three services in the metrics", timeout=60)
    breakers = wait_for(lambda: {b.get_attribute("data-upstream"): b.get_attribute("class") for b in
                                 driver.find_elements(By.CSS_SELECTOR, '.card[data-service="order-service"] .breaker')}
                        or None, "order-service's circuit breakers in the metrics")
    assert all("breaker-closed" in state for state in breakers.values()), f"order-service's breakers: {breakers}"
    print(f"dashboard test: metrics: order-service's breakers {sorted(breakers)} closed")
    driver.save_screenshot(os.path.join(output, "metrics.png"))

    # The page's own script raised nothing (the 401 of the token-less load above is the browser's, not a script's).
    errors = [entry for entry in driver.get_log("browser")
              if entry["level"] == "SEVERE" and "401" not in entry["message"]]
    assert not errors, f"the page's script failed: {errors}"
    print(f"dashboard test: passed; screenshots in {output}")
finally:
    if driver is not None:
        driver.quit()
    if up.poll() is None:
        os.killpg(up.pid, signal.SIGINT)
        try:
            up.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(up.pid, signal.SIGKILL)
            up.wait()
    shutil.rmtree(work, ignore_errors=True)

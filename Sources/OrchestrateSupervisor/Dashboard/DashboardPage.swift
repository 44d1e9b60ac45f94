/// The dashboard's one page: HTML, CSS and JavaScript in the binary, nothing fetched from anywhere else (no CDN, no
/// build step). Every value from a service (a log line, a detail) goes into the page as text, never as markup.
enum DashboardPage {
    static let html = #"""
        <!doctype html>
        <html lang="en"><head><meta charset="utf-8"><title>orchestrate up</title>
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <style>
        :root { --ok:#1a7f37; --warn:#9a6700; --bad:#cf222e; --off:#6e7781; --line:#d0d7de; --bg:#f6f8fa; }
        body { font: 14px/1.4 system-ui, sans-serif; margin: 0; color: #1f2328; }
        header { display:flex; gap:1.5em; align-items:center; padding:.6em 1em; border-bottom:1px solid var(--line); background:var(--bg); }
        header h1 { font-size:16px; margin:0; } header nav button { margin-right:.3em; }
        button { font:inherit; padding:.15em .6em; border:1px solid var(--line); border-radius:4px; background:#fff; cursor:pointer; }
        button.on { background:#0969da; color:#fff; border-color:#0969da; }
        main { padding:1em; } .hidden { display:none; }
        table { border-collapse:collapse; width:100%; } th, td { text-align:left; padding:.3em .5em; border-bottom:1px solid var(--line); white-space:nowrap; }
        th { font-weight:600; background:var(--bg); } td.detail { white-space:normal; color:#57606a; }
        tr.replica td:first-child { padding-left:2em; color:#57606a; } .toggle { cursor:pointer; user-select:none; }
        .state { font-weight:600; } .s-running { color:var(--ok); } .s-starting, .s-waiting, .s-unready, .s-backoff, .s-stopping { color:var(--warn); }
        .s-failed { color:var(--bad); } .s-stopped { color:var(--off); }
        #graph { border:1px solid var(--line); border-radius:6px; margin-bottom:1em; background:#fff; }
        #graph text { font-size:12px; } .filters { display:flex; gap:.5em; margin-bottom:.6em; flex-wrap:wrap; align-items:center; }
        #lines { font:12px/1.45 ui-monospace, monospace; border:1px solid var(--line); border-radius:6px; max-height:70vh; overflow:auto; }
        .line { padding:.1em .5em; border-bottom:1px solid #eaeef2; white-space:pre-wrap; word-break:break-word; }
        .line .t { color:#6e7781; } .line .r { font-weight:600; } .field { background:#eaeef2; border-radius:3px; padding:0 .3em; margin-left:.3em; }
        #trace-list tr { cursor:pointer; } #trace-list tr:hover { background:var(--bg); } tr.error td { color:var(--bad); }
        #waterfall { margin-top:1em; } .span { display:flex; align-items:center; gap:.5em; cursor:pointer; padding:.1em 0; }
        .span .label { width:34%; box-sizing:border-box; overflow:hidden; text-overflow:ellipsis; white-space:nowrap; font-size:12px; }
        .span .track { position:relative; flex:1; height:14px; background:var(--bg); }
        .span .bar { position:absolute; top:0; height:14px; background:#0969da; border-radius:2px; min-width:2px; }
        .span.error .bar { background:var(--bad); }
        #metric-cards { display:grid; grid-template-columns:repeat(auto-fill, minmax(330px, 1fr)); gap:1em; }
        .card { border:1px solid var(--line); border-radius:6px; padding:.6em .8em; } .card h3 { margin:0 0 .4em; font-size:14px; }
        .chart { display:flex; align-items:center; gap:.5em; font-size:12px; } .chart .name { width:5.5em; color:#57606a; }
        .chart svg { flex:1; height:28px; background:var(--bg); } .chart .value { width:6em; text-align:right; }
        .breaker-open { color:var(--bad); font-weight:600; } .breaker-half-open { color:var(--warn); }
        .lv-error, .lv-critical { color:var(--bad); } .lv-warning { color:var(--warn); } .note { color:#57606a; }
        </style></head>
        <body>
        <header><h1 id="project">orchestrate up</h1>
        <nav><button id="tab-resources" class="on">Resources</button><button id="tab-logs">Logs</button><button id="tab-traces">Traces</button><button id="tab-metrics">Metrics</button></nav>
        <span id="connection" class="note">connecting…</span></header>
        <main>
        <section id="resources">
          <svg id="graph" width="100%" height="120" role="img" aria-label="dependency graph"></svg>
          <table><thead><tr><th>Service</th><th>State</th><th>Ready</th><th>Restarts</th><th>Uptime</th><th>Address</th>
          <th>PID</th><th>CPU</th><th>Memory</th><th>Detail</th><th></th></tr></thead><tbody id="rows"></tbody></table>
        </section>
        <section id="traces" class="hidden">
          <p class="filters"><label><input id="t-all" type="checkbox"> also probes and one-span background work</label>
          <span class="note" id="trace-note"></span></p>
          <table><thead><tr><th>Time</th><th>Root</th><th>Services</th><th>Duration</th><th>Spans</th><th>Errors</th></tr></thead>
          <tbody id="trace-list"></tbody></table>
          <div id="waterfall"></div>
        </section>
        <section id="metrics" class="hidden">
          <p class="note">From each replica's /metrics, every 5 s while this page is open (requests, errors, latency
          quantiles from the duration histogram, circuit breakers).</p>
          <div id="metric-cards"></div>
        </section>
        <section id="logs" class="hidden">
          <div class="filters">
            <select id="f-service"><option value="">every service</option></select>
            <select id="f-replica"><option value="">every replica</option></select>
            <select id="f-level"><option value="">every level</option><option>trace</option><option>debug</option>
              <option>info</option><option>notice</option><option>warning</option><option>error</option><option>critical</option></select>
            <input id="f-text" type="search" placeholder="text">
            <span id="log-note" class="note"></span>
          </div>
          <div id="lines"></div>
        </section>
        </main>
        <script>
        "use strict";
        const token = new URLSearchParams(location.search).get("token") || "";
        const api = (path) => path + (path.includes("?") ? "&" : "?") + "token=" + encodeURIComponent(token);
        let state = null, lastSequence = 0;
        const logs = [], maxShown = 2000, expanded = new Set();
        function el(tag, attributes, ...children) {
          const node = document.createElement(tag);
          for (const [key, value] of Object.entries(attributes || {})) {
            if (key === "class") node.className = value; else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
            else node.setAttribute(key, value);
          }
          for (const child of children) if (child !== null && child !== undefined)
            node.append(typeof child === "string" || typeof child === "number" ? String(child) : child);
          return node;
        }
        function svg(tag, attributes, text) {
          const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
          for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, value);
          if (text !== undefined) node.textContent = text;
          return node;
        }
        const duration = (s) => s == null ? "" : s < 60 ? Math.floor(s) + "s" : s < 3600 ? Math.floor(s / 60) + "m" + Math.floor(s % 60) + "s" : Math.floor(s / 3600) + "h" + Math.floor(s % 3600 / 60) + "m";
        const megabytes = (b) => b == null ? "" : (b / 1048576).toFixed(1) + " MiB";
        const percent = (p) => p == null ? "" : p.toFixed(1) + " %";
        function serviceState(replicas) {
          const states = replicas.map((r) => r.status.state);
          for (const s of ["failed", "backoff", "starting", "waiting", "unready", "stopping"]) if (states.includes(s)) return s;
          return states.every((s) => s === "stopped") ? "stopped" : "running";
        }
        const colour = { running: "#1a7f37", failed: "#cf222e", stopped: "#6e7781" };
        async function act(service, command, button) {
          button.disabled = true;
          try {
            const answer = await fetch(api("/api/services/" + encodeURIComponent(service) + "/" + command), { method: "POST" });
            if (!answer.ok) alert(service + ": " + ((await answer.json()).error || {}).message);
          } finally { button.disabled = false; }
        }
        function renderGraph() {
          const graph = document.getElementById("graph");
          graph.replaceChildren();
          const services = state.services, depth = {};
          const find = (name, seen) => {
            if (depth[name] !== undefined) return depth[name];
            const service = services.find((s) => s.name === name);
            if (!service || seen.has(name)) return 0;
            seen.add(name);
            return depth[name] = Math.max(-1, ...service.dependsOn.map((d) => find(d, seen))) + 1;
          };
          services.forEach((s) => find(s.name, new Set()));
          const columns = [];
          services.forEach((s) => (columns[depth[s.name]] = columns[depth[s.name]] || []).push(s.name));
          const position = {}, width = 215, height = 34;
          columns.forEach((names, column) => names.forEach((name, row) => position[name] = { x: 10 + column * (width + 50), y: 10 + row * (height + 14) }));
          graph.setAttribute("height", 20 + Math.max(...columns.map((c) => c.length)) * (height + 14));
          for (const s of services) for (const d of s.dependsOn) if (position[d]) {
            const a = position[s.name], b = position[d];
            graph.append(svg("line", { x1: a.x, y1: a.y + height / 2, x2: b.x + width, y2: b.y + height / 2, stroke: "#8c959f" }));
          }
          for (const s of services) {
            const p = position[s.name], st = serviceState(state.replicas.filter((r) => r.status.service === s.name));
            const group = svg("g", { "data-service": s.name, "data-state": st });
            group.append(svg("rect", { x: p.x, y: p.y, width, height, rx: 6, fill: "#fff", stroke: colour[st] || "#9a6700", "stroke-width": 2 }));
            group.append(svg("text", { x: p.x + 8, y: p.y + 21 }, s.name + " · " + st));
            graph.append(group);
          }
        }
        function renderResources() {
          document.getElementById("project").textContent = state.project + " · orchestrate up";
          renderGraph();
          const rows = document.getElementById("rows");
          rows.replaceChildren();
          for (const service of state.services) {
            const replicas = state.replicas.filter((r) => r.status.service === service.name);
            const st = serviceState(replicas), open = expanded.has(service.name);
            const ready = replicas.filter((r) => r.status.ready).length;
            const sum = (f) => replicas.reduce((t, r) => t + (f(r) || 0), 0);
            const waiting = replicas.find((r) => !r.status.ready);
            const toggle = el("span", { class: "toggle", onclick: () => { open ? expanded.delete(service.name) : expanded.add(service.name); renderResources(); } },
              (open ? "▾ " : "▸ ") + service.name);
            const buttons = el("td", {}, ...["restart", "stop", "start"].map((command) =>
              el("button", { "data-action": command, onclick: (event) => act(service.name, command, event.target) }, command)));
            rows.append(el("tr", { class: "service", "data-service": service.name },
              el("td", {}, toggle), el("td", { class: "state s-" + st }, st), el("td", { class: "ready" }, ready + "/" + replicas.length),
              el("td", {}, sum((r) => r.status.restarts)), el("td", {}, duration(Math.min(...replicas.map((r) => r.status.uptimeSeconds ?? Infinity)) === Infinity ? null : Math.min(...replicas.map((r) => r.status.uptimeSeconds ?? Infinity)))),
              el("td", {}, service.url ? el("a", { href: service.url, target: "_blank", rel: "noreferrer" }, service.url) : (service.address || "")),
              el("td", { class: "pid" }, replicas.map((r) => r.status.pid).filter((p) => p).join(" ")),
              el("td", { class: "cpu" }, percent(replicas.some((r) => r.usage && r.usage.cpuPercent != null) ? sum((r) => r.usage && r.usage.cpuPercent) : null)),
              el("td", { class: "memory" }, megabytes(replicas.some((r) => r.usage) ? sum((r) => r.usage && r.usage.residentBytes) : null)),
              el("td", { class: "detail" }, waiting ? waiting.status.detail : ""), buttons));
            if (!open) continue;
            for (const r of replicas) {
              const s = r.status, address = s.address + (s.port ? ":" + s.port : "");
              rows.append(el("tr", { class: "replica", "data-replica": s.service + "-" + s.replica },
                el("td", {}, s.service + "-" + s.replica), el("td", { class: "state s-" + s.state }, s.state), el("td", {}, s.ready ? "yes" : "no"),
                el("td", {}, s.restarts), el("td", {}, duration(s.uptimeSeconds)),
                el("td", {}, s.port ? el("a", { href: "http://" + address, target: "_blank", rel: "noreferrer" }, address) : address),
                el("td", { class: "pid" }, s.pid || ""), el("td", { class: "cpu" }, percent(r.usage && r.usage.cpuPercent)),
                el("td", { class: "memory" }, megabytes(r.usage && r.usage.residentBytes)), el("td", { class: "detail" }, s.detail), el("td", {})));
            }
          }
          const services = document.getElementById("f-service"), replicas = document.getElementById("f-replica");
          if (services.options.length === 1) for (const s of state.services) services.append(el("option", { value: s.name }, s.name));
          const names = state.replicas.map((r) => r.status.service + "-" + r.status.replica);
          if (replicas.options.length !== names.length + 1) {
            replicas.replaceChildren(el("option", { value: "" }, "every replica"), ...names.map((n) => el("option", { value: n }, n)));
          }
          document.getElementById("log-note").textContent = "the last " + state.logCapacity + " lines of each service are kept";
        }
        function matches(line) {
          const service = document.getElementById("f-service").value, replica = document.getElementById("f-replica").value;
          const level = document.getElementById("f-level").value, text = document.getElementById("f-text").value.toLowerCase();
          return (!service || line.service === service) && (!replica || line.replica === replica || (line.replica === "orchestrate" && line.text.startsWith(replica + " ")))
            && (!level || line.level === level) && (!text || line.text.toLowerCase().includes(text));
        }
        function lineNode(line) {
          const time = new Date(line.time).toISOString().slice(11, 23);
          const node = el("div", { class: "line" + (line.level ? " lv-" + line.level : ""), "data-service": line.service, "data-replica": line.replica },
            el("span", { class: "t" }, time + " "), el("span", { class: "r" }, line.replica + " "));
          if (line.message !== undefined && line.message !== null) {
            node.append(el("span", { class: "level" }, (line.level || "") + " "), el("span", { class: "message" }, line.message));
            try {
              for (const [key, value] of Object.entries(JSON.parse(line.text))) {
                if (["message", "level", "time", "timestamp"].includes(key)) continue;
                const text = key + "=" + (typeof value === "string" ? value : JSON.stringify(value));
                // A trace id shows every line of that request, from every service.
                node.append(key === "trace_id" || key === "traceID" ? el("a", { class: "field trace", href: "#", "data-field": key,
                  onclick: (event) => { event.preventDefault(); showTrace(String(value)); } }, text) : el("span", { class: "field", "data-field": key }, text));
              }
            } catch (error) { /* shown as text above */ }
          } else node.append(el("span", { class: "text" }, line.text));
          return node;
        }
        function showTrace(id) {
          document.getElementById("f-service").value = "";
          document.getElementById("f-replica").value = "";
          document.getElementById("f-level").value = "";
          document.getElementById("f-text").value = id;
          renderLogs();
        }
        function renderLogs() {
          const box = document.getElementById("lines"), atBottom = box.scrollTop + box.clientHeight >= box.scrollHeight - 20;
          box.replaceChildren(...logs.filter(matches).slice(-maxShown).map(lineNode));
          if (atBottom) box.scrollTop = box.scrollHeight;
        }
        function addLogs(lines) {
          const fresh = lines.filter((l) => l.sequence > lastSequence);
          if (!fresh.length) return;
          lastSequence = fresh[fresh.length - 1].sequence;
          logs.push(...fresh);
          if (logs.length > 20000) logs.splice(0, logs.length - 20000);
          // Redrawn only when a new line is shown: a steady view for a reader (and for a test's clicks).
          if (!document.getElementById("logs").classList.contains("hidden") && fresh.some(matches)) renderLogs();
        }
        const milliseconds = (n) => (n / 1e6).toFixed(n < 1e7 ? 2 : 0) + " ms";
        async function renderTraces() {
          const all = await (await fetch(api("/api/traces"))).json(), everything = document.getElementById("t-all").checked;
          const probe = (t) => /: \/(ready|health|metrics)$/.test(t.root);
          const traces = all.filter((t) => everything || (t.spans > 1 && !probe(t)));
          document.getElementById("trace-note").textContent = traces.length + " of the " + all.length + " most recent traces";
          document.getElementById("trace-list").replaceChildren(...traces.map((t) => el("tr",
            { class: t.errors ? "error" : "", "data-trace": t.traceID, onclick: () => renderWaterfall(t.traceID) },
            el("td", {}, new Date(t.startNanoseconds / 1e6).toISOString().slice(11, 23)), el("td", { class: "root" }, t.root),
            el("td", { class: "services" }, t.services.join(", ")), el("td", {}, milliseconds(t.durationNanoseconds)),
            el("td", {}, t.spans), el("td", {}, t.errors))));
        }
        async function renderWaterfall(traceID) {
          const spans = await (await fetch(api("/api/traces/" + encodeURIComponent(traceID)))).json();
          const box = document.getElementById("waterfall");
          if (!spans.length) { box.replaceChildren(); return; }
          const start = Math.min(...spans.map((s) => s.startNanoseconds)), end = Math.max(...spans.map((s) => s.endNanoseconds));
          const total = Math.max(1, end - start), depth = {}, byID = Object.fromEntries(spans.map((s) => [s.spanID, s]));
          const level = (s) => depth[s.spanID] ?? (depth[s.spanID] = s.parentSpanID && byID[s.parentSpanID] ? level(byID[s.parentSpanID]) + 1 : 0);
          box.replaceChildren(el("h3", {}, "trace " + traceID + " · " + milliseconds(total) + " · click a span for its request's log lines"),
            ...spans.map((s) => el("div", { class: "span" + (s.isError ? " error" : ""), "data-service": s.service, "data-span": s.spanID,
                onclick: () => { show("logs"); showTrace(s.traceID); } },
              el("span", { class: "label", style: "padding-left:" + level(s) + "em" }, (s.instance || s.service) + " · " + s.name),
              el("span", { class: "track" }, el("span", { class: "bar", title: milliseconds(s.endNanoseconds - s.startNanoseconds),
                style: "left:" + ((s.startNanoseconds - start) / total * 100) + "%;width:" + ((s.endNanoseconds - s.startNanoseconds) / total * 100) + "%" })),
              el("span", { class: "note" }, milliseconds(s.endNanoseconds - s.startNanoseconds)))));
        }
        setInterval(() => { if (!document.getElementById("traces").classList.contains("hidden")) renderTraces(); }, 2000);
        let metricSeries = {};
        function sparkline(points, key) {
          const values = points.map((p) => p[key]), known = values.filter((v) => v !== null && v !== undefined);
          const max = Math.max(1e-9, ...known), chart = svg("svg", { viewBox: "0 0 120 28", preserveAspectRatio: "none" });
          const coordinates = values.map((v, i) => v === null || v === undefined ? null
            : ((values.length === 1 ? 60 : i / (values.length - 1) * 120).toFixed(1) + "," + (26 - v / max * 24).toFixed(1))).filter((c) => c);
          if (coordinates.length) chart.append(svg("polyline", { points: coordinates.join(" "), fill: "none", stroke: "#0969da", "stroke-width": 1.5 }));
          return chart;
        }
        function renderMetrics() {
          const charts = [["requestsPerSecond", "req/s", (v) => v.toFixed(2)], ["errorsPerSecond", "errors/s", (v) => v.toFixed(2)],
            ["p50", "p50", (v) => v.toFixed(1) + " ms"], ["p99", "p99", (v) => v.toFixed(1) + " ms"]];
          document.getElementById("metric-cards").replaceChildren(...Object.keys(metricSeries).sort().map((service) => {
            const points = metricSeries[service], last = points[points.length - 1] || {};
            const breakers = Object.entries(last.breakers || {}).sort();
            return el("div", { class: "card", "data-service": service }, el("h3", {}, service),
              ...charts.map(([key, name, format]) => el("div", { class: "chart", "data-metric": key }, el("span", { class: "name" }, name),
                sparkline(points, key), el("span", { class: "value" }, last[key] === null || last[key] === undefined ? "–" : format(last[key])))),
              el("div", { class: "breakers" }, breakers.length ? "breakers: " : "no circuit breakers",
                ...breakers.map(([upstream, state]) => el("span", { class: "breaker breaker-" + state, "data-upstream": upstream }, upstream + " " + state + " "))));
          }));
        }
        function show(tab) {
          for (const name of ["resources", "logs", "traces", "metrics"]) {
            document.getElementById(name).classList.toggle("hidden", name !== tab);
            document.getElementById("tab-" + name).classList.toggle("on", name === tab);
          }
          if (tab === "logs") renderLogs();
          if (tab === "traces") renderTraces();
          if (tab === "metrics") renderMetrics();
        }
        document.getElementById("tab-resources").addEventListener("click", () => show("resources"));
        document.getElementById("tab-logs").addEventListener("click", () => show("logs"));
        document.getElementById("tab-traces").addEventListener("click", () => show("traces"));
        document.getElementById("tab-metrics").addEventListener("click", () => show("metrics"));
        document.getElementById("t-all").addEventListener("input", renderTraces);
        for (const id of ["f-service", "f-replica", "f-level", "f-text"]) document.getElementById(id).addEventListener("input", renderLogs);
        function connect() {
          const events = new EventSource(api("/api/events?after=" + lastSequence));
          const connection = document.getElementById("connection");
          events.onopen = () => { connection.textContent = "live"; };
          events.onerror = () => { connection.textContent = "reconnecting…"; };
          events.addEventListener("state", (event) => { state = JSON.parse(event.data); renderResources(); });
          events.addEventListener("logs", (event) => addLogs(JSON.parse(event.data)));
          events.addEventListener("metrics", (event) => {
            metricSeries = JSON.parse(event.data);
            if (!document.getElementById("metrics").classList.contains("hidden")) renderMetrics();
          });
        }
        (async () => {
          const answer = await fetch(api("/api/state"));
          if (!answer.ok) { document.getElementById("connection").textContent = ((await answer.json()).error || {}).message || "refused"; return; }
          state = await answer.json();
          renderResources();
          addLogs(await (await fetch(api("/api/logs"))).json());
          connect();
        })();
        </script></body></html>
        """#
}

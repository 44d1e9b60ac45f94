"""recommender: a service that is not Swift, run by `orchestrate up` through `command:`.

Python's standard library only. GET /recommendations calls catalog through CATALOG_URL; GET
/recommendations/by-name calls http://catalog:PORT; both answer with catalog's body.
"""
import http.server
import json
import os
import signal
import sys
import urllib.parse
import urllib.request

HOST = os.environ.get("HOST", "127.0.0.1")
PORT = int(os.environ.get("PORT", "8082"))
CATALOG_URL = os.environ["CATALOG_URL"]
CATALOG_PORT = urllib.parse.urlsplit(CATALOG_URL).port


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path in ("/health", "/ready"):
            return self.answer(200, b'{"status":"ok"}')
        if self.path == "/recommendations":
            return self.fetch(CATALOG_URL + "/items")
        if self.path == "/recommendations/by-name":
            return self.fetch("http://catalog:%d/items" % CATALOG_PORT)
        return self.answer(404, b'{"error":"not found"}')

    def fetch(self, url):
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return self.answer(response.status, response.read())
        except Exception as error:  # the caller gets the reason, as storefront's 502 gives it
            return self.answer(502, json.dumps({"error": "%s: %s" % (url, error)}).encode())

    def answer(self, status, body):
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format, *arguments):
        sys.stdout.write("%s %s\n" % (self.command, self.path))
        sys.stdout.flush()


server = http.server.ThreadingHTTPServer((HOST, PORT), Handler)
server.timeout = 10
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
print("listening on %s:%d" % (HOST, PORT), flush=True)
try:
    server.serve_forever()
finally:
    server.server_close()

#!/usr/bin/python3
"""Loopback receivers for the monitord tests: an HTTP endpoint that records
every POST (path and JSON body) as one JSON line, and answers 500 on paths
starting with /down; and an SMTP sink (Debian's aiosmtpd) that records every
message. Usage: monitor_sinks.py DIR; writes DIR/http.port, DIR/smtp.port,
DIR/http.jsonl, DIR/smtp.jsonl; runs until killed."""
import json
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from aiosmtpd.controller import Controller

d = sys.argv[1]
lock = threading.Lock()


def record(name, obj):
    obj["received"] = time.time()
    with lock, open(f"{d}/{name}.jsonl", "a") as f:
        f.write(json.dumps(obj) + "\n")


class H(BaseHTTPRequestHandler):
    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n)
        try:
            doc = json.loads(body)
        except ValueError:
            doc = body.decode("utf-8", "replace")
        record("http", {"path": self.path, "body": doc})
        code = 500 if self.path.startswith("/down") else 202
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b'{"status":"ok"}')

    def log_message(self, *a):
        pass


class Sink:
    async def handle_DATA(self, server, session, envelope):
        record("smtp", {"from": envelope.mail_from, "to": envelope.rcpt_tos,
                        "data": envelope.content.decode("utf-8", "replace")})
        return "250 OK"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


httpd = ThreadingHTTPServer(("127.0.0.1", 0), H)
threading.Thread(target=httpd.serve_forever, daemon=True).start()
smtp_port = free_port()
ctl = Controller(Sink(), hostname="127.0.0.1", port=smtp_port)
ctl.start()
for name, port in (("http", httpd.server_address[1]), ("smtp", smtp_port)):
    with open(f"{d}/{name}.port.tmp", "w") as f:
        f.write(f"{port}\n")
    import os
    os.rename(f"{d}/{name}.port.tmp", f"{d}/{name}.port")
while True:
    time.sleep(3600)

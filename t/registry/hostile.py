#!/usr/bin/env python3
"""A misbehaving registry, for the tests of the module's bounds: raw sockets,
Python 3 standard library only. It reads one request per connection and
answers it the way a broken registry or proxy would.

Usage: hostile.py --port PORT --mode MODE

Modes:
  headers-forever   200, then header lines that never end
  echo              400 with an HTML page that echoes the request (its lines,
                    last first), as some proxies' error pages do
  etcd-endless-line an etcd v3 gateway: a range read answers one server; a
                    watch answers its head, then one line that never ends
  etcd-trickle      the same, but the endless line comes a byte every 100 ms
  etcd-forged       the same range; a watch answers a cancellation whose
                    reason carries a newline and a forged log line

Every connection is counted; GET /_stats (any mode) answers
{"connections": N}. SIGTERM stops it.
"""

import argparse
import base64
import json
import signal
import socket
import sys
import threading
import time

FORGED = "bye\n2026/01/01 00:00:00 [emerg] 1#1: forged by the registry"


class Registry:
    def __init__(self, mode, server):
        self.mode = mode
        self.server = server
        self.connections = 0
        self.lock = threading.Lock()

    def serve(self, conn):
        with self.lock:
            self.connections += 1
        try:
            request = read_request(conn)
            if request is None:
                return
            line = request.split(b"\r\n", 1)[0].decode("latin-1")
            if " /_stats " in line:
                return send(conn, 200, json.dumps({"connections": self.connections}))
            getattr(self, self.mode.replace("-", "_"))(conn, line, request)
        except OSError:
            pass
        finally:
            conn.close()

    def headers_forever(self, conn, line, request):
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n")
        filler = b"X-Filler: " + b"a" * 1000 + b"\r\n"
        while True:
            conn.sendall(filler * 16)

    def echo(self, conn, line, request):
        # Last lines first (a credential header, a JSON body), as a page
        # that lists what it found wrong would show them.
        lines = b"\n".join(reversed(request.split(b"\r\n")))
        page = b"<html><body><h1>400 Bad Request</h1><pre>" + lines + b"</pre></body></html>"
        send(conn, 400, page, "text/html")

    def etcd_range(self, conn):
        key = base64.b64encode(b"/upstreams/app/" + self.server.encode()).decode()
        body = {"header": {"revision": "5"}, "kvs": [{"key": key, "value": "", "mod_revision": "5"}],
                "count": "1"}
        send(conn, 200, json.dumps(body))

    def watch_head(self, conn):
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                     b"Transfer-Encoding: chunked\r\n\r\n")

    def chunk(self, conn, data):
        conn.sendall(b"%x\r\n%s\r\n" % (len(data), data))

    def etcd_endless_line(self, conn, line, request):
        if "/v3/watch" not in line:
            return self.etcd_range(conn)
        self.watch_head(conn)
        self.chunk(conn, b'{"result":{"header":{"revision":"5"},"created":true}}\n')
        piece = b'{"result":' + b"x" * 65536
        while True:
            self.chunk(conn, piece)

    def etcd_trickle(self, conn, line, request):
        if "/v3/watch" not in line:
            return self.etcd_range(conn)
        self.watch_head(conn)
        self.chunk(conn, b'{"result":{"header":{"revision":"5"},"created":true}}\n')
        while True:
            self.chunk(conn, b"x")
            time.sleep(0.1)

    def etcd_forged(self, conn, line, request):
        if "/v3/watch" not in line:
            return self.etcd_range(conn)
        self.watch_head(conn)
        msg = {"result": {"header": {"revision": "5"}, "canceled": True, "cancel_reason": FORGED}}
        self.chunk(conn, json.dumps(msg).encode() + b"\n")
        conn.sendall(b"0\r\n\r\n")


def read_request(conn):
    """The request's head and its Content-Length body, or None."""
    data = b""
    while b"\r\n\r\n" not in data:
        more = conn.recv(65536)
        if not more:
            return None
        data += more
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for h in head.split(b"\r\n")[1:]:
        name, _, value = h.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip() or 0)
    while len(body) < length:
        more = conn.recv(65536)
        if not more:
            break
        body += more
    return head + b"\r\n\r\n" + body


def send(conn, status, body, content_type="application/json"):
    if isinstance(body, str):
        body = body.encode()
    reason = {200: "OK", 400: "Bad Request"}.get(status, "Error")
    conn.sendall(b"HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n"
                 b"Connection: close\r\n\r\n%s" % (status, reason.encode(), content_type.encode(),
                                                   len(body), body))


def main():
    ap = argparse.ArgumentParser(description="a misbehaving registry for tests")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--mode", required=True,
                    choices=["headers-forever", "echo", "etcd-endless-line", "etcd-trickle",
                             "etcd-forged"])
    ap.add_argument("--server", default="127.0.0.1:1", help="the server the etcd range holds")
    args = ap.parse_args()
    registry = Registry(args.mode, args.server)
    sock = socket.create_server(("127.0.0.1", args.port), reuse_port=False)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print("listening 127.0.0.1:%d" % sock.getsockname()[1], flush=True)
    while True:
        conn, _ = sock.accept()
        threading.Thread(target=registry.serve, args=(conn,), daemon=True).start()


if __name__ == "__main__":
    main()

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
  etcd-watch-ends   the same range; a watch is created and ends at once
  etcd-compacted    the same range; a watch answers "compacted" at once
  etcd-401          every request: 401 "invalid auth token" (an auth request
                    gets a token first)
  etcd2-events      an etcd v2 directory of one server; a watch answers an
                    event at once
  status-500        every request: 500 "boom"
  close             every request: the connection is closed, no answer
  silent            reads the request, never answers
  bad-keys          Consul KV: the server plus --bad N keys that are not
                    addresses, a new X-Consul-Index each time, after 200 ms

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


    def etcd_watch_ends(self, conn, line, request):
        if "/v3/watch" not in line:
            return self.etcd_range(conn)
        self.watch_head(conn)
        self.chunk(conn, b'{"result":{"header":{"revision":"5"},"created":true}}\n')
        conn.sendall(b"0\r\n\r\n")

    def etcd_compacted(self, conn, line, request):
        if "/v3/watch" not in line:
            return self.etcd_range(conn)
        self.watch_head(conn)
        msg = {"result": {"header": {"revision": "5"}, "compact_revision": "4", "canceled": True}}
        self.chunk(conn, json.dumps(msg).encode() + b"\n")
        conn.sendall(b"0\r\n\r\n")

    def etcd_401(self, conn, line, request):
        if "/v3/auth/authenticate" in line:
            return send(conn, 200, json.dumps({"header": {}, "token": "tok.%d" % self.connections}))
        send(conn, 401, json.dumps({"error": "etcdserver: invalid auth token", "code": 16}))

    def etcd2_events(self, conn, line, request):
        node = {"key": "/upstreams/app/" + self.server, "value": "", "modifiedIndex": 5}
        if "wait=true" in line:
            body = {"action": "set", "node": node}
        else:
            body = {"action": "get", "node": {"key": "/upstreams/app", "dir": True, "nodes": [node]}}
        body = json.dumps(body).encode()
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Etcd-Index: 5\r\n"
                     b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body))

    def status_500(self, conn, line, request):
        send(conn, 500, "boom", "text/plain")

    def close(self, conn, line, request):
        pass

    def silent(self, conn, line, request):
        time.sleep(3600)

    def bad_keys(self, conn, line, request):
        time.sleep(0.2)
        keys = [{"Key": "upstreams/app/" + self.server, "Value": None}]
        keys += [{"Key": "upstreams/app/bad-%d" % i, "Value": None} for i in range(self.bad)]
        body = json.dumps(keys).encode()
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Consul-Index: %d\r\n"
                     b"Content-Length: %d\r\nConnection: close\r\n\r\n%s"
                     % (self.connections + 10, len(body), body))


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
    reason = {200: "OK", 400: "Bad Request", 401: "Unauthorized"}.get(status, "Error")
    conn.sendall(b"HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n"
                 b"Connection: close\r\n\r\n%s" % (status, reason.encode(), content_type.encode(),
                                                   len(body), body))


def main():
    ap = argparse.ArgumentParser(description="a misbehaving registry for tests")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--mode", required=True,
                    choices=["headers-forever", "echo", "etcd-endless-line", "etcd-trickle",
                             "etcd-forged", "etcd-watch-ends", "etcd-compacted", "etcd-401",
                             "etcd2-events", "status-500", "close", "silent", "bad-keys"])
    ap.add_argument("--server", default="127.0.0.1:1", help="the server the answers hold")
    ap.add_argument("--bad", type=int, default=10000, help="bad keys (bad-keys)")
    args = ap.parse_args()
    registry = Registry(args.mode, args.server)
    registry.bad = args.bad
    sock = socket.create_server(("127.0.0.1", args.port), reuse_port=False)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print("listening 127.0.0.1:%d" % sock.getsockname()[1], flush=True)
    while True:
        conn, _ = sock.accept()
        threading.Thread(target=registry.serve, args=(conn,), daemon=True).start()


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""A Consul HTTP API stand-in for the tests (Consul itself cannot be installed
here). It follows Consul's documented semantics for what the module uses:

KV        GET /v1/kv/<key>[?recurse][&keys]; PUT /v1/kv/<key>[?cas=N][&flags=N]
          (body = raw value); DELETE /v1/kv/<key>[?recurse]. An empty or
          missing prefix answers 404 with an empty body; the X-Consul-Index
          header is always set.
Catalog   PUT /v1/catalog/register, PUT /v1/catalog/deregister,
          GET /v1/catalog/service/<name>[?tag=t] (unknown service: []).
Health    GET /v1/health/service/<name>[?passing][&tag=t].
Blocking  ?index=N&wait=D on every read: an answer at once when the result's
          index is above N, else held until a write changes what the query
          returns (other writes do not wake it) or until wait (default 5m,
          max 10m) plus up to wait/16 of jitter passes. index=0 never blocks.
ACL       --token T: every /v1/ request needs X-Consul-Token: T (or
          Authorization: Bearer T); otherwise 403 "Permission denied".

Test controls, never subject to faults or ACL:
  PUT  /_test/fault  {"mode": "none|garbage|hang|huge|status500|close",
                      "paths": "/v1/...", "size": N, "index_override": N}
       garbage: 200 with a body that is not JSON; hang: accept and never
       answer (until the fault is cleared); huge: 200 with a JSON array of
       `size` bytes (default 20 MiB); status500: 500 "rpc error"; close:
       close the connection without an answer. index_override forces the
       X-Consul-Index header of every read. mode "none" clears the mode.
  GET  /_test/stats  {"requests": N, "blocking": N, "by_path": {...}}
  POST /_test/reset  drop all data and stats (the index keeps growing)

Usage: consul_standin.py --port PORT [--token T] [--verbose]; port 0 picks
a free one. Prints "listening 127.0.0.1:<port>" once ready. Stops cleanly
on SIGTERM or SIGINT.
"""

import argparse
import base64
import json
import random
import re
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

MAX_WAIT = 600.0
DEFAULT_WAIT = 300.0


def parse_duration(text):
    """Go-style duration: 10s, 500ms, 1m30s, 1h. A bare number is seconds."""
    if re.fullmatch(r"\d+", text):
        return float(text)
    units = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(text)
    return sum(float(n) * units[u] for n, u in parts)


class State:
    """All data, one raft-like index, a condition notified on every write."""

    def __init__(self):
        self.cond = threading.Condition()
        self.index = 10
        self.kv = {}  # key -> dict(CreateIndex, ModifyIndex, LockIndex, Flags, Value)
        # The index of the last write that removed something, per key: a
        # deletion must raise the index a query under that prefix returns.
        self.kv_tombstones = {}
        self.nodes = {}  # node -> {"Address", "services": {id: svc}, "checks": {id: chk}, "index"}
        self.service_tombstones = {}  # service name -> index of last removal
        self.fault = {"mode": "none"}
        self.stats = {"requests": 0, "blocking": 0, "by_path": {}}

    def bump(self):
        self.index += 1
        return self.index

    # -- KV ----------------------------------------------------------------
    def kv_index(self, prefix, recurse):
        keys = [k for k in self.kv if (k.startswith(prefix) if recurse else k == prefix)]
        idx = max((self.kv[k]["ModifyIndex"] for k in keys), default=0)
        gone = [i for k, i in self.kv_tombstones.items()
                if (k.startswith(prefix) if recurse else k == prefix)]
        idx = max([idx] + gone)
        return idx if idx else 1

    # -- catalog -------------------------------------------------------------
    def instances(self, name):
        out = []
        for node_name in sorted(self.nodes):
            node = self.nodes[node_name]
            for sid in sorted(node["services"]):
                svc = node["services"][sid]
                if svc["Service"] == name:
                    checks = [c for c in node["checks"].values()
                              if not c.get("ServiceID") or c.get("ServiceID") == sid]
                    out.append((node_name, node, svc, checks))
        return out

    def service_index(self, name):
        idx = self.service_tombstones.get(name, 0)
        for _, node, svc, checks in self.instances(name):
            idx = max([idx, node["index"], svc["ModifyIndex"]] + [c["ModifyIndex"] for c in checks])
        return idx if idx else 1


STATE = State()
TOKEN = None
VERBOSE = False


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "consul-standin"

    def log_message(self, fmt, *args):  # never log headers (the token)
        if VERBOSE:
            sys.stderr.write("%s\n" % (fmt % args))

    # -- plumbing -----------------------------------------------------------
    def reply(self, status, body=b"", ctype="application/json", index=None):
        if isinstance(body, str):
            body = body.encode()
        self.send_response(status)
        if body or ctype == "application/json":
            self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        if index is not None:
            override = STATE.fault.get("index_override")
            self.send_header("X-Consul-Index", str(override if override is not None else index))
            self.send_header("X-Consul-KnownLeader", "true")
            self.send_header("X-Consul-LastContact", "0")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def reply_json(self, obj, index=None, status=200):
        self.reply(status, json.dumps(obj, indent=None).encode(), index=index)

    def body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def json_body(self):
        try:
            return json.loads(self.body() or b"null")
        except ValueError as e:
            self.reply(400, "Request decode failed: %s" % e, "text/plain")
            return None

    def route(self):
        parts = urlsplit(self.path)
        self.query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        path = unquote(parts.path)
        with STATE.cond:
            STATE.stats["requests"] += 1
            STATE.stats["by_path"][path] = STATE.stats["by_path"].get(path, 0) + 1
        if path.startswith("/_test/"):
            return self.test_control(path)
        if not self.authorized():
            return self.reply(403, "Permission denied", "text/plain")
        if self.apply_fault(path):
            return
        if path == "/v1/status/leader":
            return self.reply_json("127.0.0.1:8300")
        if path.startswith("/v1/kv/"):
            return self.kv(path[len("/v1/kv/"):])
        if path in ("/v1/catalog/register", "/v1/catalog/deregister"):
            if self.command != "PUT":
                return self.reply(405, "method not allowed", "text/plain")
            return self.register() if path.endswith("/register") else self.deregister()
        m = re.fullmatch(r"/v1/(catalog|health)/service/([^/]+)", path)
        if m:
            if self.command != "GET":
                return self.reply(405, "method not allowed", "text/plain")
            return self.service(m.group(1), m.group(2))
        self.reply(404, "", "text/plain")

    do_GET = do_PUT = do_DELETE = do_POST = do_HEAD = route

    def authorized(self):
        if TOKEN is None:
            return True
        given = (self.headers.get("X-Consul-Token") or self.query.get("token")
                 or (self.headers.get("Authorization") or "").removeprefix("Bearer "))
        return given == TOKEN

    # -- faults and stats ---------------------------------------------------
    def apply_fault(self, path):
        fault = STATE.fault
        mode = fault.get("mode", "none")
        if mode == "none" or not path.startswith(fault.get("paths") or "/v1/"):
            return False
        if mode == "garbage":
            self.reply(200, "<html>not json", "text/html", index=STATE.index)
        elif mode == "status500":
            self.reply(500, "rpc error", "text/plain", index=STATE.index)
        elif mode == "huge":
            size = int(fault.get("size") or 20 * 1024 * 1024)
            item = b'"' + b"x" * 1000 + b'",'
            body = b"[" + item * max(1, size // len(item)) + b'""]'
            self.reply(200, body, index=STATE.index)
        elif mode == "close":
            self.close_connection = True
            self.connection.shutdown(2)
        elif mode == "hang":
            with STATE.cond:
                STATE.stats["blocking"] += 1
                STATE.cond.wait_for(lambda: STATE.fault.get("mode") != "hang" or STOPPING.is_set())
                STATE.stats["blocking"] -= 1
            self.close_connection = True
        return True

    def test_control(self, path):
        if path == "/_test/fault" and self.command == "PUT":
            fault = self.json_body()
            if fault is None:
                return
            if not isinstance(fault, dict) or fault.get("mode", "none") not in (
                    "none", "garbage", "hang", "huge", "status500", "close"):
                return self.reply(400, "bad fault", "text/plain")
            with STATE.cond:
                STATE.fault = fault
                STATE.cond.notify_all()
            return self.reply_json(True)
        if path == "/_test/stats" and self.command == "GET":
            with STATE.cond:
                return self.reply_json(STATE.stats)
        if path == "/_test/reset" and self.command == "POST":
            with STATE.cond:
                STATE.kv.clear()
                STATE.kv_tombstones.clear()
                STATE.nodes.clear()
                STATE.service_tombstones.clear()
                STATE.stats = {"requests": 0, "blocking": 0, "by_path": {}}
                STATE.bump()
                STATE.cond.notify_all()
            return self.reply_json(True)
        self.reply(404, "", "text/plain")

    # -- blocking queries ---------------------------------------------------
    def blocking(self, current_index):
        """Holds the request per Consul's rules; returns False on a bad query."""
        raw = self.query.get("index")
        if raw is None:
            return True
        if not re.fullmatch(r"\d+", raw):
            self.reply(400, "Invalid index", "text/plain")
            return False
        index = int(raw)
        if index == 0:
            return True
        try:
            wait = parse_duration(self.query.get("wait", "")) if "wait" in self.query else DEFAULT_WAIT
        except ValueError:
            self.reply(400, "Invalid wait time", "text/plain")
            return False
        wait = min(wait, MAX_WAIT)
        deadline = time.monotonic() + wait + random.uniform(0, wait / 16)
        with STATE.cond:
            STATE.stats["blocking"] += 1
            try:
                while current_index() <= index and not STOPPING.is_set():
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    STATE.cond.wait(left)
            finally:
                STATE.stats["blocking"] -= 1
        return True

    # -- KV -----------------------------------------------------------------
    def kv(self, key):
        recurse = "recurse" in self.query
        if self.command == "GET":
            listing = recurse or "keys" in self.query
            if not self.blocking(lambda: STATE.kv_index(key, listing)):
                return
            with STATE.cond:
                index = STATE.kv_index(key, listing)
                keys = sorted(k for k in STATE.kv if (k.startswith(key) if listing else k == key))
                if "keys" in self.query:
                    sep = self.query.get("separator")
                    names = []
                    for k in keys:
                        if sep and sep in k[len(key):]:
                            k = key + k[len(key):].split(sep, 1)[0] + sep
                        if k not in names:
                            names.append(k)
                    result = names
                else:
                    result = [dict(STATE.kv[k], Key=k, Value=(
                        base64.b64encode(STATE.kv[k]["Value"]).decode()
                        if STATE.kv[k]["Value"] is not None else None)) for k in keys]
            if not result:
                return self.reply(404, b"", "text/plain", index=index)
            return self.reply_json(result, index=index)
        if self.command == "PUT":
            value = self.body()
            with STATE.cond:
                entry = STATE.kv.get(key)
                if "cas" in self.query:
                    cas = int(self.query["cas"] or 0)
                    if (cas == 0 and entry) or (cas and (not entry or entry["ModifyIndex"] != cas)):
                        return self.reply_json(False)
                idx = STATE.bump()
                STATE.kv[key] = {
                    "CreateIndex": entry["CreateIndex"] if entry else idx,
                    "ModifyIndex": idx,
                    "LockIndex": 0,
                    "Flags": int(self.query.get("flags") or (entry or {}).get("Flags", 0)),
                    "Value": value,
                }
                STATE.cond.notify_all()
            return self.reply_json(True)
        if self.command == "DELETE":
            with STATE.cond:
                idx = STATE.bump()
                gone = [k for k in STATE.kv if (k.startswith(key) if recurse else k == key)]
                for k in gone:
                    del STATE.kv[k]
                    STATE.kv_tombstones[k] = idx
                STATE.kv_tombstones[key] = idx
                STATE.cond.notify_all()
            return self.reply_json(True)
        self.reply(405, "method not allowed", "text/plain")

    # -- catalog and health -------------------------------------------------
    def register(self):
        reg = self.json_body()
        if reg is None:
            return
        if not isinstance(reg, dict) or not reg.get("Node"):
            return self.reply(400, "Must provide node", "text/plain")
        with STATE.cond:
            idx = STATE.bump()
            node = STATE.nodes.setdefault(reg["Node"], {"services": {}, "checks": {}, "index": idx})
            node["Address"] = reg.get("Address", node.get("Address", ""))
            node["index"] = idx
            svc = reg.get("Service")
            if svc:
                sid = svc.get("ID") or svc.get("Service")
                old = node["services"].get(sid)
                node["services"][sid] = {
                    "ID": sid, "Service": svc.get("Service", sid), "Tags": svc.get("Tags") or [],
                    "Address": svc.get("Address", ""), "Port": svc.get("Port", 0),
                    "Meta": svc.get("Meta") or {},
                    "Weights": svc.get("Weights") or {"Passing": 1, "Warning": 1},
                    "CreateIndex": old["CreateIndex"] if old else idx, "ModifyIndex": idx,
                }
            checks = reg.get("Checks") or ([reg["Check"]] if reg.get("Check") else [])
            for chk in checks:
                cid = chk.get("CheckID") or chk.get("Name")
                old = node["checks"].get(cid)
                node["checks"][cid] = {
                    "Node": reg["Node"], "CheckID": cid, "Name": chk.get("Name", cid),
                    "Status": chk.get("Status", "critical"), "Notes": "", "Output": "",
                    "ServiceID": chk.get("ServiceID", ""), "Type": "",
                    "CreateIndex": old["CreateIndex"] if old else idx, "ModifyIndex": idx,
                }
            STATE.cond.notify_all()
        self.reply_json(True)

    def deregister(self):
        reg = self.json_body()
        if reg is None:
            return
        if not isinstance(reg, dict) or not reg.get("Node"):
            return self.reply(400, "Must provide node", "text/plain")
        with STATE.cond:
            idx = STATE.bump()
            node = STATE.nodes.get(reg["Node"])
            if node:
                names = set()
                if reg.get("ServiceID"):
                    svc = node["services"].pop(reg["ServiceID"], None)
                    if svc:
                        names.add(svc["Service"])
                    for cid in [c for c, v in node["checks"].items()
                                if v.get("ServiceID") == reg["ServiceID"]]:
                        del node["checks"][cid]
                elif reg.get("CheckID"):
                    node["checks"].pop(reg["CheckID"], None)
                    names.update(s["Service"] for s in node["services"].values())
                else:
                    names.update(s["Service"] for s in node["services"].values())
                    del STATE.nodes[reg["Node"]]
                for name in names:
                    STATE.service_tombstones[name] = idx
            STATE.cond.notify_all()
        self.reply_json(True)

    def service(self, kind, name):
        if not self.blocking(lambda: STATE.service_index(name)):
            return
        tag = self.query.get("tag")
        with STATE.cond:
            index = STATE.service_index(name)
            out = []
            for node_name, node, svc, checks in STATE.instances(name):
                if tag and tag not in svc["Tags"]:
                    continue
                if kind == "health" and "passing" in self.query and any(
                        c["Status"] != "passing" for c in checks):
                    continue
                node_obj = {"ID": "", "Node": node_name, "Address": node["Address"],
                            "Datacenter": "dc1", "TaggedAddresses": {}, "Meta": {}}
                if kind == "catalog":
                    out.append({
                        "ID": "", "Node": node_name, "Address": node["Address"], "Datacenter": "dc1",
                        "TaggedAddresses": {}, "NodeMeta": {}, "ServiceKind": "",
                        "ServiceID": svc["ID"], "ServiceName": svc["Service"],
                        "ServiceTags": svc["Tags"], "ServiceAddress": svc["Address"],
                        "ServiceWeights": svc["Weights"], "ServiceMeta": svc["Meta"],
                        "ServicePort": svc["Port"], "ServiceEnableTagOverride": False,
                        "CreateIndex": svc["CreateIndex"], "ModifyIndex": svc["ModifyIndex"],
                    })
                else:
                    out.append({
                        "Node": node_obj,
                        "Service": {"ID": svc["ID"], "Service": svc["Service"], "Tags": svc["Tags"],
                                    "Address": svc["Address"], "Meta": svc["Meta"],
                                    "Port": svc["Port"], "Weights": svc["Weights"],
                                    "EnableTagOverride": False},
                        "Checks": [dict(c, ServiceName=svc["Service"] if c["ServiceID"] else "",
                                        ServiceTags=svc["Tags"] if c["ServiceID"] else [])
                                   for c in sorted(checks, key=lambda c: c["CheckID"])],
                    })
        self.reply_json(out, index=index)


STOPPING = threading.Event()


def main():
    global TOKEN, VERBOSE
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--token")
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args()
    TOKEN, VERBOSE = args.token, args.verbose

    ThreadingHTTPServer.daemon_threads = True
    ThreadingHTTPServer.allow_reuse_address = True
    server = ThreadingHTTPServer((args.host, args.port), Handler)

    def stop(*_):
        STOPPING.set()
        with STATE.cond:
            STATE.cond.notify_all()
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print("listening %s:%d" % server.server_address[:2], flush=True)
    server.serve_forever(poll_interval=0.2)
    server.server_close()


if __name__ == "__main__":
    main()

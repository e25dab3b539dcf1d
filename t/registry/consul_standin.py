#!/usr/bin/env python3
"""A stand-in for Consul's HTTP API, for the tests (Consul itself cannot be
installed here). Python 3 standard library only.

It follows the semantics of Consul's documented HTTP API (and, where the
documentation is silent, of Consul's source) for the endpoints the module
talks to. Everything it answers is what a single-server Consul in datacenter
"dc1" would answer; the comments cite the rule each piece implements.

Usage:
    consul_standin.py --port PORT [--host 127.0.0.1] [--token TOKEN]
                      [--max-wait SECONDS] [--verbose]

    --port 0 picks a free port. Once listening, one line is printed to stdout:
    "listening 127.0.0.1:<port>". SIGTERM or SIGINT stops it (exit code 0).
    --max-wait caps the time a blocking query may be held (for tests; Consul's
    own cap is 10m and its default 5m). --verbose logs each request line to
    stderr (tokens in query strings are masked; headers are never logged).

Consul API served (all reads support blocking queries, ?index=N&wait=D):
    GET    /v1/kv/<key>[?recurse][?keys[&separator=S]][?raw]
    PUT    /v1/kv/<key>[?flags=N][?cas=N]            body = the raw value
    DELETE /v1/kv/<key>[?recurse][?cas=N]
    PUT    /v1/catalog/register    PUT /v1/catalog/deregister
    GET    /v1/catalog/service/<name>[?tag=T]   GET /v1/catalog/services
    GET    /v1/health/service/<name>[?passing][&tag=T]
    GET    /v1/status/leader       GET /v1/status/peers
    PUT    /v1/txn                 KV set, delete and delete-tree, applied as
                                   one write at one index (at most 64 ops)

ACL: with --token T, every /v1/ request except /v1/status/* (which Consul
serves without ACL) needs the token, read as Consul does: ?token=T, else the
X-Consul-Token header, else "Authorization: Bearer T". Otherwise: 403 with
the body "Permission denied".

Test controls (never subject to faults or ACL, not counted in the stats):
    PUT  /_test/fault   JSON {"mode": M, "paths": P, "index_override": N,
                              "size": BYTES, "extra": NAME}
        Replaces the whole fault setting. P is a path prefix (or a list of
        them) the fault applies to; default "/v1/". Modes:
          none       no fault (the default)
          garbage    200 with the non-JSON body "<html>not json"
          hang       read the request, never answer: the connection is held
                     (no CPU used) until the fault setting changes, then the
                     request is handled under the new setting; on server stop
                     it is closed without an answer
          huge       200 with a valid JSON array body of `size` bytes
                     (default 20 MiB)
          status500  500 with the body "rpc error"
          close      close the connection without an answer
          flap       for benchmarks: a KV GET answers at once with a new
                     index and the keys' weight alternating 1 and 2, so
                     every poll is a real change (other paths: no fault);
                     with "extra": "<name>", the key <prefix><name> is
                     also there every other answer, so every poll adds or
                     removes a server
        index_override (with any mode, "none" included): every response on
        P that carries X-Consul-Index gets this value instead. Only the
        header changes: blocking decisions still use the real index, as
        after a Consul snapshot restore. {"mode": "none"} clears it all.
    GET  /_test/fault   the current setting
    GET  /_test/stats   {"requests": N, "blocking": N, "hanging": N,
                         "connections": N,
                         "by_path": {"<path without query>": N},
                         "tls": {"handshakes": N, "resumed": N, "failed": N,
                                 "sni": [the server names clients sent]}}
        requests and by_path count every non-/_test/ request since the start
        or the last reset; blocking is the number of blocking queries being
        held right now, hanging the number of requests held by "hang",
        connections the number of client connections open right now (the
        /_test/ requests' own included).
    GET  /_test/requests  the targets (path and query, a token masked) of the
        last 100 non-/_test/ requests, oldest first
    POST /_test/reset   (or PUT) drops all KV and catalog data, the stats and
        the fault setting. The index keeps growing (a reset is a write, so
        held queries on data that disappeared answer with a higher index).
"""

import argparse
import base64
import collections
import hmac
import json
import random
import re
import signal
import socket
import socketserver
import ssl
import sys
import threading
import time
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

DATACENTER = "dc1"
LEADER = "127.0.0.1:8300"
START_INDEX = 10  # the first raft index; anything > 1 would do
DEFAULT_WAIT = 300.0  # Consul: "If not set, the wait time defaults to 5 minutes"
MAX_WAIT = 600.0  # Consul: "This is limited to 10 minutes"
JITTER_FRACTION = 16  # Consul adds RandomStagger(wait / 16) to every wait
KV_MAX_VALUE_SIZE = 512 * 1024  # Consul's default kv_max_value_size
MAX_BODY = 64 * 1024 * 1024  # what the stand-in accepts at all
FAULT_MODES = ("none", "garbage", "hang", "huge", "status500", "close", "flap")
DEFAULT_HUGE_SIZE = 20 * 1024 * 1024


class HTTPError(Exception):
    """An error answer: status and a text/plain body, as Consul sends them."""

    def __init__(self, status, message, headers=None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or []


class Result:
    """An answer ready to send. `index` becomes X-Consul-Index when set."""

    def __init__(self, status=200, body=b"", content_type=None, index=None, headers=None):
        self.status = status
        self.body = body
        self.content_type = content_type
        self.index = index
        self.headers = list(headers or [])


def json_bytes(obj):
    # Go's encoding/json: compact, UTF-8.
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def json_result(obj, status=200, index=None):
    return Result(status, json_bytes(obj), "application/json", index)


def text_result(status, message):
    return Result(status, message.encode("utf-8"), "text/plain; charset=utf-8")


# ---------------------------------------------------------------------------
# Query parameters

# Go's time.ParseDuration: [-+]?([0-9]*(\.[0-9]*)?[a-z]+)+ or "0".
_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "\u00b5s": 1e-6, "\u03bcs": 1e-6,
                   "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_DURATION_PART = re.compile(r"([0-9]*)(?:\.([0-9]*))?(ns|us|\u00b5s|\u03bcs|ms|s|m|h)")


def parse_go_duration(text):
    """Seconds in a Go duration string ("10s", "500ms", "1m30s", "1.5h",
    "0"). Raises ValueError like time.ParseDuration (a bare number other
    than 0 has no unit and is an error)."""
    s = text
    sign = 1.0
    if s[:1] in ("+", "-"):
        sign = -1.0 if s[0] == "-" else 1.0
        s = s[1:]
    if s == "0":
        return 0.0
    if not s:
        raise ValueError("invalid duration %r" % text)
    total, pos = 0.0, 0
    while pos < len(s):
        m = _DURATION_PART.match(s, pos)
        if not m or (m.group(1) == "" and not m.group(2)):
            raise ValueError("invalid duration %r" % text)
        number = float((m.group(1) or "0") + "." + (m.group(2) or "0"))
        total += number * _DURATION_UNITS[m.group(3)]
        pos = m.end()
    return sign * total


def parse_uint(text):
    """Go's strconv.ParseUint(text, 10, 64)."""
    if not re.fullmatch(r"[0-9]+", text or "") or int(text) >= 1 << 64:
        raise ValueError(text)
    return int(text)


class Query:
    """The query string of a request, with Go's url.Values semantics: a
    parameter given without a value ("?recurse") is present with value ""."""

    def __init__(self, raw):
        self.values = parse_qs(raw, keep_blank_values=True)

    def has(self, name):
        return name in self.values

    def get(self, name, default=None):
        v = self.values.get(name)
        return v[0] if v else default

    def all(self, name):
        return self.values.get(name, [])


class BlockingOptions:
    """?index, ?wait, ?dc and consistency mode, parsed as Consul's
    HTTPHandlers.parse() does (same error texts)."""

    def __init__(self, query, max_wait):
        dc = query.get("dc", "")
        if dc and dc != DATACENTER:
            raise HTTPError(500, "No path to datacenter")
        if query.has("stale") and query.has("consistent"):
            raise HTTPError(400, "Cannot specify ?stale with ?consistent, conflicting semantics.")
        self.consistency = ("stale" if query.has("stale")
                            else "consistent" if query.has("consistent") else "leader")
        wait = 0.0
        if query.get("wait"):
            try:
                wait = parse_go_duration(query.get("wait"))
            except ValueError:
                raise HTTPError(400, "Invalid wait time")
        self.min_index = 0
        if query.get("index"):
            try:
                self.min_index = parse_uint(query.get("index"))
            except ValueError:
                raise HTTPError(400, "Invalid index")
        # Consul's blockingQuery(): a wait above the maximum is cut to it, a
        # missing, zero or negative wait becomes the default; then jitter of
        # up to wait/16 is added "to spread out the wake up time".
        cap = min(MAX_WAIT, max_wait) if max_wait else MAX_WAIT
        if wait > cap:
            wait = cap
        elif wait <= 0:
            wait = min(DEFAULT_WAIT, cap)
        self.wait = wait + random.uniform(0, wait / JITTER_FRACTION)


# ---------------------------------------------------------------------------
# The data: one raft-like index, KV and catalog tables

class State:
    """Everything Consul would keep in its state store. All methods run with
    `cond` held; `cond` is notified on every write that changes something.

    Index bookkeeping (Consul's state store keeps the same):
      * every write takes the next index (a raft log entry), even a write
        that changes nothing (a failed CAS, a delete of a missing key);
      * kv_table_index: the last write that changed the KV table;
      * tombstones: key -> index of the write that deleted it (Consul's KV
        "graveyard"), so that a deletion raises the index of a prefix;
      * service_index: service name (lowercase) -> last write that changed
        any of its instances or their checks (Consul's "service.<name>"
        index entry); extinction_index: the last write that removed the
        last instance of some service; catalog_index: last catalog change.
    """

    def __init__(self):
        self.cond = threading.Condition()
        self.index = START_INDEX
        self.stopping = False
        self.blocking = 0  # blocking queries currently held
        self.clear(START_INDEX)

    def clear(self, index):
        self.kv = {}  # key -> entry dict (see kv_put)
        self.tombstones = {}
        self.kv_table_index = index
        self.nodes = {}  # node name -> node dict
        self.services = {}  # (node name, service ID) -> service dict
        self.checks = {}  # (node name, check ID) -> check dict
        self.service_index = {}
        self.extinction_index = 0
        self.catalog_index = index

    def next_index(self):
        self.index += 1
        return self.index

    def reset(self):
        """/_test/reset: a write that removes everything."""
        idx = self.next_index()
        self.clear(idx)
        self.cond.notify_all()

    # -- blocking queries ----------------------------------------------------
    def blocking_query(self, opts, run, version):
        """Consul's blockingQuery(): run the query; if the client gave no
        index (or 0), or the result's index is above it, answer at once.
        Otherwise wait until something the query watches changes (version()
        returns another value) and run the query again, until its index is
        above the client's or the wait (with jitter) is over; on timeout the
        last result is answered (same data, same index). A return is not a
        change: the caller must compare."""
        with self.cond:
            result = run()
            if opts.min_index == 0 or result.index > opts.min_index:
                return result
            deadline = time.monotonic() + opts.wait
            seen = version()
            self.blocking += 1
            try:
                while not self.stopping:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    self.cond.wait(left)
                    now = version()
                    if now != seen:
                        seen = now
                        result = run()
                        if result.index > opts.min_index:
                            break
            finally:
                self.blocking -= 1
            return result

    # -- KV ------------------------------------------------------------------
    def kv_scope_index(self, key, recurse):
        """The last write that touched the key (or any key under the prefix):
        the highest ModifyIndex among the matching keys or tombstones, 0 if
        none. Consul's kvsListTxn(): "If the prefix is empty then just use
        the full table indexes since we are listing everything."."""
        if recurse and key == "":
            return self.kv_table_index
        if recurse:
            live = max((e["ModifyIndex"] for k, e in self.kv.items() if k.startswith(key)),
                       default=0)
            dead = max((i for k, i in self.tombstones.items() if k.startswith(key)), default=0)
            return max(live, dead)
        entry = self.kv.get(key)
        return max(entry["ModifyIndex"] if entry else 0, self.tombstones.get(key, 0))

    def kv_index(self, key, recurse):
        """X-Consul-Index of a KV read: the scope's index, or when nothing
        ever existed there the KV table index (Consul: "Use the sub index if
        it was set and there are entries, otherwise use the full table
        index"). Never 0: Consul answers at least 1 so clients can block."""
        return max(1, self.kv_scope_index(key, recurse) or self.kv_table_index)

    def kv_matching(self, key, recurse):
        if recurse:
            # A plain string prefix: "a/b" also matches "a/bc/d". Sorted by
            # key (byte order; Python's code point order is the same).
            return [self.kv[k] for k in sorted(k for k in self.kv if k.startswith(key))]
        entry = self.kv.get(key)
        return [entry] if entry else []

    @staticmethod
    def kv_render(entry):
        value = entry["Value"]
        return {"LockIndex": entry["LockIndex"], "Key": entry["Key"], "Flags": entry["Flags"],
               "Value": base64.b64encode(value).decode("ascii") if value is not None else None,
               "CreateIndex": entry["CreateIndex"], "ModifyIndex": entry["ModifyIndex"]}

    def kv_put(self, key, value, flags, cas, idx=None):
        """Consul's KVS.Apply with KVSet or KVCAS. Answers True or, for a
        CAS that does not apply, False. `idx`: the write of a transaction."""
        idx = idx or self.next_index()
        existing = self.kv.get(key)
        if cas is not None:
            # kvsSetCASTxn: cas=0 only creates; cas=M only replaces an entry
            # whose ModifyIndex is M.
            if cas == 0 and existing is not None:
                return False
            if cas != 0 and (existing is None or existing["ModifyIndex"] != cas):
                return False
        self.kv[key] = {
            "Key": key,
            "CreateIndex": existing["CreateIndex"] if existing else idx,
            "ModifyIndex": idx,
            "LockIndex": existing["LockIndex"] if existing else 0,
            "Flags": flags,  # a PUT without ?flags sets them to 0
            "Value": value,
        }
        self.kv_table_index = idx
        self.cond.notify_all()
        return True

    def kv_delete(self, key, recurse, cas, idx=None):
        """KVDelete / KVDeleteTree / KVDeleteCAS."""
        idx = idx or self.next_index()
        if recurse:
            gone = [k for k in self.kv if k.startswith(key)]
        else:
            existing = self.kv.get(key)
            if cas is not None and existing is not None and existing["ModifyIndex"] != cas:
                return False
            # kvsDeleteCASTxn answers true for a missing key.
            gone = [key] if existing is not None else []
        for k in gone:
            del self.kv[k]
            self.tombstones[k] = idx
        if gone:
            self.kv_table_index = idx
            self.cond.notify_all()
        return True

    def kv_txn(self, ops):
        """/v1/txn: KV operations applied as one write, at one index (one
        raft entry). `ops` are validated (verb, key, value) tuples."""
        idx = self.next_index()
        results = []
        for verb, key, value, flags in ops:
            if verb == "set":
                self.kv_put(key, value, flags, None, idx)
                entry = dict(self.kv_render(self.kv[key]), Value=None)
                results.append({"KV": entry})
            else:
                self.kv_delete(key, verb == "delete-tree", None, idx)
        return results

    def kv_read(self, key, mode, separator, raw):
        """Query and version functions for a KV read. mode: "get" (one key),
        "recurse" or "keys"."""
        recurse = mode != "get"

        def version():
            return self.kv_scope_index(key, recurse)

        def run():
            index = self.kv_index(key, recurse)
            entries = self.kv_matching(key, recurse)
            if mode == "keys":
                names, last = [], None
                for e in entries:
                    k = e["Key"]
                    # kvsListKeysTxn: with a separator, a key is cut after
                    # the first separator following the prefix, deduplicated.
                    cut = k[len(key):].find(separator) if separator else -1
                    if cut >= 0:
                        k = k[:len(key) + cut + len(separator)]
                        if k == last:
                            continue
                        last = k
                    names.append(k)
                # KVSGetKeys: "We do not generate not found for the root, but
                # just provide the empty list".
                if not names and key != "":
                    return Result(404, index=index)
                return json_result(names, index=index)
            # KVSGet: no entry -> 404 with an empty body (the index is set).
            if not entries:
                return Result(404, index=index)
            if raw and mode == "get":
                return Result(200, entries[0]["Value"] or b"", "text/plain; charset=utf-8",
                              index, [("X-Content-Type-Options", "nosniff")])
            return json_result([self.kv_render(e) for e in entries], index=index)

        return run, version

    # -- catalog -------------------------------------------------------------
    def instances(self, name):
        """(node name, service) of every instance of a service, sorted by node
        then service ID. Consul's service-name index is case-insensitive."""
        lname = name.lower()
        found = [(node, svc) for (node, _), svc in self.services.items()
                 if svc["Service"].lower() == lname]
        found.sort(key=lambda t: (t[0], t[1]["ID"]))
        return found

    def service_query_index(self, name, exists):
        """maxIndexForService(): the service's own index when it has
        instances; otherwise the last "extinction" of any service, or the
        catalog index when no service ever went away. Never 0."""
        if exists:
            idx = self.service_index.get(name.lower(), 0)
        else:
            idx = self.extinction_index or self.catalog_index
        return max(1, idx)

    def services_of_node(self, node):
        return [svc for (n, _), svc in self.services.items() if n == node]

    def services_of_check(self, node, check):
        """Names of the services a check belongs to: its service, or for a
        node-level check every service of the node (Consul's ensureCheckTxn
        updates the index of all the node's services for those)."""
        if check["ServiceID"]:
            svc = self.services.get((node, check["ServiceID"]))
            return {svc["Service"].lower()} if svc else set()
        return {svc["Service"].lower() for svc in self.services_of_node(node)}

    def touch_services(self, names, idx):
        for name in names:
            self.service_index[name] = idx
            # catalogUpdateServiceExtinctionIndex: the last instance went away.
            if not self.instances(name):
                self.extinction_index = idx

    def catalog_register(self, reg):
        """Consul's ensureRegistrationTxn: node, then service, then checks;
        each part is only written (and its indexes raised) when it differs
        from what is stored, so an identical re-registration changes
        nothing. Other services and checks of the node are kept."""
        node_name = reg["Node"]
        # Validate before writing anything (the transaction is atomic).
        for chk in reg["Checks"]:
            sid = chk["ServiceID"]
            if sid and (node_name, sid) not in self.services and not (
                    reg["Service"] and reg["Service"]["ID"] == sid):
                raise HTTPError(500, "Missing service registration")
        idx = self.next_index()
        touched = set()  # names of the services whose index must rise
        changed = False

        node = self.nodes.get(node_name)
        fields = reg["NodeFields"]
        if node is None or (not reg["SkipNodeUpdate"]
                            and any(node[k] != v for k, v in fields.items())):
            self.nodes[node_name] = dict(
                fields, Node=node_name,
                CreateIndex=node["CreateIndex"] if node else idx, ModifyIndex=idx)
            changed = True
            # The node's services show its data: updateAllServiceIndexesOfNode.
            touched |= {s["Service"].lower() for s in self.services_of_node(node_name)}

        svc = reg["Service"]
        if svc is not None:
            key = (node_name, svc["ID"])
            old = self.services.get(key)
            if old is None or any(old[k] != v for k, v in svc.items()):
                self.services[key] = dict(svc, CreateIndex=old["CreateIndex"] if old else idx,
                                          ModifyIndex=idx)
                changed = True
                touched.add(svc["Service"].lower())
                if old is not None:  # a renamed service leaves its old name
                    touched.add(old["Service"].lower())

        for chk in reg["Checks"]:
            key = (node_name, chk["CheckID"])
            old = self.checks.get(key)
            if old is not None and all(old[k] == v for k, v in chk.items()):
                continue  # HealthCheck.IsSame(): nothing to write
            self.checks[key] = dict(chk, CreateIndex=old["CreateIndex"] if old else idx,
                                    ModifyIndex=idx)
            changed = True
            touched |= self.services_of_check(node_name, self.checks[key])
            if old is not None:
                touched |= self.services_of_check(node_name, old)

        if changed:
            self.touch_services(touched, idx)
            self.catalog_index = idx
            self.cond.notify_all()

    def catalog_deregister(self, node_name, service_id, check_id):
        """Consul's Catalog.Deregister: a service (with its checks), a check,
        or, with neither, the whole node with its services and checks.
        Removing what does not exist is not an error."""
        idx = self.next_index()
        touched = set()
        changed = False
        if service_id:
            svc = self.services.pop((node_name, service_id), None)
            if svc is not None:
                changed = True
                touched.add(svc["Service"].lower())
                for key in [k for k, c in self.checks.items()
                            if k[0] == node_name and c["ServiceID"] == service_id]:
                    del self.checks[key]
        if check_id:
            chk = self.checks.get((node_name, check_id))
            if chk is not None:
                changed = True
                touched |= self.services_of_check(node_name, chk)
                del self.checks[(node_name, check_id)]
        if not service_id and not check_id and node_name in self.nodes:
            changed = True
            for key in [k for k in self.services if k[0] == node_name]:
                touched.add(self.services.pop(key)["Service"].lower())
            for key in [k for k in self.checks if k[0] == node_name]:
                del self.checks[key]
            del self.nodes[node_name]
        if changed:
            self.touch_services(touched, idx)
            self.catalog_index = idx
            self.cond.notify_all()

    def render_check(self, chk):
        svc = self.services.get((chk["Node"], chk["ServiceID"])) if chk["ServiceID"] else None
        return {
            "Node": chk["Node"], "CheckID": chk["CheckID"], "Name": chk["Name"],
            "Status": chk["Status"], "Notes": chk["Notes"], "Output": chk["Output"],
            "ServiceID": chk["ServiceID"],
            "ServiceName": svc["Service"] if svc else "",
            # The HTTP handler turns a nil tag list into [].
            "ServiceTags": list(svc["Tags"] or []) if svc else [],
            "Type": chk["Type"],
            "CreateIndex": chk["CreateIndex"], "ModifyIndex": chk["ModifyIndex"],
        }

    def instance_checks(self, node, svc):
        """The node's node-level checks, then the service's own checks
        (Consul's parseCheckServiceNodes order), each by check ID."""
        mine = [c for (n, _), c in self.checks.items() if n == node]
        node_level = sorted((c for c in mine if not c["ServiceID"]), key=lambda c: c["CheckID"])
        own = sorted((c for c in mine if c["ServiceID"] == svc["ID"]), key=lambda c: c["CheckID"])
        return node_level + own

    def service_read(self, kind, name, tags, passing, flt=None):
        """Query and version functions for /v1/catalog/service/<name>
        (kind "catalog") and /v1/health/service/<name> (kind "health");
        `flt` keeps the entries a ?filter expression selects."""

        def version():
            return self.service_index.get(name.lower(), 0)

        def run():
            everything = self.instances(name)
            index = self.service_query_index(name, bool(everything))
            out = []
            for node_name, svc in everything:
                # serviceTagFilter: every requested tag, case-insensitively.
                have = {t.lower() for t in svc["Tags"] or []}
                if any(t.lower() not in have for t in tags):
                    continue
                node = self.nodes[node_name]
                if kind == "catalog":
                    out.append(self.catalog_entry(node, svc))
                    continue
                checks = self.instance_checks(node_name, svc)
                # ?passing: "Specifies that the server should return only
                # nodes with all checks in the passing state".
                if passing and any(c["Status"] != "passing" for c in checks):
                    continue
                out.append({
                    "Node": {"ID": node["ID"], "Node": node["Node"], "Address": node["Address"],
                             "Datacenter": DATACENTER, "TaggedAddresses": node["TaggedAddresses"],
                             "Meta": node["Meta"], "CreateIndex": node["CreateIndex"],
                             "ModifyIndex": node["ModifyIndex"]},
                    "Service": {"ID": svc["ID"], "Service": svc["Service"],
                                "Tags": list(svc["Tags"] or []), "Address": svc["Address"],
                                "Meta": svc["Meta"], "Port": svc["Port"],
                                "Weights": svc["Weights"],
                                "EnableTagOverride": svc["EnableTagOverride"],
                                "CreateIndex": svc["CreateIndex"],
                                "ModifyIndex": svc["ModifyIndex"]},
                    "Checks": [self.render_check(c) for c in checks],
                })
            if flt is not None:
                out = [item for item in out if flt(item)]
            # Unknown service: 200 with [] (unlike KV).
            return json_result(out, index=index)

        return run, version

    @staticmethod
    def catalog_entry(node, svc):
        return {
            "ID": node["ID"], "Node": node["Node"], "Address": node["Address"],
            "Datacenter": DATACENTER, "TaggedAddresses": node["TaggedAddresses"],
            "NodeMeta": node["Meta"], "ServiceKind": "", "ServiceID": svc["ID"],
            "ServiceName": svc["Service"],
            "ServiceTags": list(svc["Tags"] or []),  # nil -> [] in the HTTP handler
            # Empty means "use the node's Address".
            "ServiceAddress": svc["Address"],
            "ServiceWeights": svc["Weights"], "ServiceMeta": svc["Meta"],
            "ServicePort": svc["Port"], "ServiceEnableTagOverride": svc["EnableTagOverride"],
            "CreateIndex": svc["CreateIndex"], "ModifyIndex": svc["ModifyIndex"],
        }

    def services_read(self):
        """/v1/catalog/services: {name: [tags]}, indexed by the catalog."""

        def version():
            return self.catalog_index

        def run():
            out = {}
            for svc in self.services.values():
                out.setdefault(svc["Service"], set()).update(svc["Tags"] or [])
            return json_result({k: sorted(v) for k, v in sorted(out.items())},
                               index=max(1, self.catalog_index))

        return run, version


# ---------------------------------------------------------------------------
# Decoding registration bodies (Go's encoding/json into Consul's structs)

def _decode_error(msg):
    return HTTPError(400, "Request decode failed: " + msg)


def _field(obj, name, kind, default):
    """obj[name] with Go's encoding/json rules: the field name matches
    case-insensitively, null leaves the default, a wrong type is an error."""
    if name in obj:
        value = obj[name]
    else:
        value = next((v for k, v in obj.items() if k.lower() == name.lower()), None)
    if value is None:
        return default
    ok = {
        "str": lambda v: isinstance(v, str),
        "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "bool": lambda v: isinstance(v, bool),
        "object": lambda v: isinstance(v, dict),
        "strmap": lambda v: isinstance(v, dict) and all(isinstance(x, str) for x in v.values()),
        "strlist": lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v),
        "list": lambda v: isinstance(v, list),
    }[kind](value)
    if not ok:
        raise _decode_error("json: cannot unmarshal %s into field %s"
                            % (type(value).__name__, name))
    return value


def decode_json_object(body):
    try:
        obj = json.loads(body.decode("utf-8")) if body.strip() else None
    except (ValueError, UnicodeDecodeError) as e:
        raise _decode_error(str(e))
    if not isinstance(obj, dict):
        raise _decode_error("expected a JSON object")
    return obj


def decode_registration(body):
    """structs.RegisterRequest, with the defaults Catalog.Register applies."""
    obj = decode_json_object(body)
    node = _field(obj, "Node", "str", "")
    address = _field(obj, "Address", "str", "")
    skip = _field(obj, "SkipNodeUpdate", "bool", False)
    if not node:
        raise HTTPError(500, "Must provide node")
    if not address and not skip:
        raise HTTPError(500, "Must provide address if SkipNodeUpdate is not set")
    reg = {
        "Node": node,
        "SkipNodeUpdate": skip,
        "NodeFields": {
            "ID": _field(obj, "ID", "str", ""),
            "Address": address,
            # Absent maps stay nil in Consul and are answered as null.
            "TaggedAddresses": _field(obj, "TaggedAddresses", "strmap", None),
            "Meta": _field(obj, "NodeMeta", "strmap", None),
        },
        "Service": None,
        "Checks": [],
    }
    svc = _field(obj, "Service", "object", None)
    if svc is not None:
        name = _field(svc, "Service", "str", "")
        sid = _field(svc, "ID", "str", "") or name  # "ID defaults to Service"
        if not name:
            raise HTTPError(500, "Must provide service name with ID")
        weights = _field(svc, "Weights", "object", None)
        # ToServiceNode(): invalid or missing weights -> {1, 1}.
        passing_w = _field(weights, "Passing", "int", 0) if weights else 0
        warning_w = _field(weights, "Warning", "int", 0) if weights else 0
        if weights is None or passing_w < 1 or warning_w < 0:
            passing_w, warning_w = 1, 1
        reg["Service"] = {
            "ID": sid,
            "Service": name,
            "Tags": _field(svc, "Tags", "strlist", None),
            "Address": _field(svc, "Address", "str", ""),
            "Meta": _field(svc, "Meta", "strmap", None),
            "Port": _field(svc, "Port", "int", 0),
            "Weights": {"Passing": passing_w, "Warning": warning_w},
            "EnableTagOverride": _field(svc, "EnableTagOverride", "bool", False),
        }
    checks = list(_field(obj, "Checks", "list", []))
    single = _field(obj, "Check", "object", None)
    if single is not None:  # the old single-check form joins the list
        checks.append(single)
    for chk in checks:
        if not isinstance(chk, dict):
            raise _decode_error("json: cannot unmarshal into field Checks")
        name = _field(chk, "Name", "str", "")
        cid = _field(chk, "CheckID", "str", "") or name  # checkPreApply()
        if not cid:
            raise HTTPError(500, "Missing check ID")
        chk_node = _field(chk, "Node", "str", "") or node
        if chk_node != node:
            raise HTTPError(500, 'check node "%s" does not match node "%s"' % (chk_node, node))
        reg["Checks"].append({
            "Node": node,
            "CheckID": cid,
            "Name": name,
            # The stand-in's assumption for a missing status: not passing.
            "Status": _field(chk, "Status", "str", "") or "critical",
            "Notes": _field(chk, "Notes", "str", ""),
            "Output": _field(chk, "Output", "str", ""),
            "ServiceID": _field(chk, "ServiceID", "str", ""),
            "Type": _field(chk, "Type", "str", ""),
        })
    return reg


# ---------------------------------------------------------------------------
# Faults, stats, ACL: the application around the state

class App:
    def __init__(self, token=None, max_wait=None, verbose=False):
        self.state = State()
        self.token = token
        self.max_wait = max_wait
        self.verbose = verbose
        self.lock = threading.Condition()  # faults and stats
        self.fault = {"mode": "none"}
        self.fault_generation = 0
        self.hanging = 0
        self.connections = 0
        self.requests = 0
        self.by_path = {}
        self.tls = {"handshakes": 0, "resumed": 0, "failed": 0, "sni": []}
        # The last requests' targets (path and query, a token masked), for
        # tests that check what a client sent.
        self.targets = collections.deque(maxlen=100)
        self._huge_cache = {}

    # -- stats ---------------------------------------------------------------
    def count(self, path, target=None):
        with self.lock:
            self.requests += 1
            self.by_path[path] = self.by_path.get(path, 0) + 1
            if target is not None:
                self.targets.append(_TOKEN_IN_TEXT.sub(r"\1<hidden>", target))

    def stats(self):
        with self.state.cond:
            blocking = self.state.blocking
        with self.lock:
            return {"requests": self.requests, "blocking": blocking, "hanging": self.hanging,
                    "connections": self.connections, "by_path": dict(self.by_path),
                    "tls": dict(self.tls, sni=list(self.tls["sni"]))}

    def reset(self):
        with self.state.cond:
            self.state.reset()
        with self.lock:
            self.requests = 0
            self.by_path = {}
            self.targets.clear()
            self.set_fault_locked({"mode": "none"})

    def stop(self):
        with self.state.cond:
            self.state.stopping = True
            self.state.cond.notify_all()
        with self.lock:
            self.set_fault_locked(dict(self.fault))  # wakes the hanging ones

    # -- faults --------------------------------------------------------------
    @staticmethod
    def validate_fault(obj):
        mode = obj.get("mode", "none")
        if mode not in FAULT_MODES:
            raise HTTPError(400, "mode must be one of: " + ", ".join(FAULT_MODES))
        paths = obj.get("paths") or ["/v1/"]
        if isinstance(paths, str):
            paths = [paths]
        if not (isinstance(paths, list) and all(isinstance(p, str) for p in paths)):
            raise HTTPError(400, "paths must be a string or a list of strings")
        fault = {"mode": mode, "paths": paths}
        for name in ("index_override", "size"):
            v = obj.get(name)
            if v is not None:
                if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                    raise HTTPError(400, name + " must be a non-negative integer")
                fault[name] = v
        extra = obj.get("extra")
        if extra is not None:
            if not (isinstance(extra, str) and extra):
                raise HTTPError(400, "extra must be a key name")
            fault["extra"] = extra
        return fault

    def set_fault_locked(self, fault):
        self.fault = fault
        self.fault_generation += 1
        self.lock.notify_all()

    def fault_for(self, path):
        """The fault setting if it applies to this path, else None."""
        with self.lock:
            fault = self.fault
        if any(path.startswith(p) for p in fault.get("paths", ["/v1/"])):
            return fault
        return None

    def hang(self):
        """Hold the request (no CPU) until the fault setting changes or the
        server stops. Returns False when the server stops."""
        with self.lock:
            generation = self.fault_generation
            self.hanging += 1
            try:
                while self.fault_generation == generation:
                    self.lock.wait()
            finally:
                self.hanging -= 1
        return not self.state.stopping

    def huge_body(self, size):
        """A valid JSON array of exactly `size` bytes: [0,0,...,0] padded
        with trailing whitespace."""
        body = self._huge_cache.get(size)
        if body is None:
            n = max(1, (size - 1) // 2)
            body = b"[" + b"0," * (n - 1) + b"0]"
            body += b" " * max(0, size - len(body))
            self._huge_cache = {size: body}
        return body

    # -- ACL -----------------------------------------------------------------
    def authorized(self, query, headers):
        """Consul's parseToken(): ?token= first, then X-Consul-Token, then
        "Authorization: Bearer <token>"."""
        if self.token is None:
            return True
        given = query.get("token", "")
        if not given:
            given = headers.get("X-Consul-Token", "")
        if not given:
            parts = headers.get("Authorization", "").split(" ")
            if len(parts) == 2 and parts[0].lower() == "bearer":
                given = parts[1].strip()
        return hmac.compare_digest(given.encode("utf-8"), self.token.encode("utf-8"))

    # -- the Consul API --------------------------------------------------------
    def route(self, method, path, query, body):
        """Answers an authorized /v1/ request with a Result (or HTTPError)."""
        if path.startswith("/v1/kv/"):
            return self.kv(method, path[len("/v1/kv/"):], query, body)
        if path == "/v1/txn":
            allow(method, "PUT")
            ops = decode_txn(body)
            with self.state.cond:
                results = self.state.kv_txn(ops)
            return json_result({"Results": results, "Errors": None})
        if path == "/v1/catalog/register":
            allow(method, "PUT")
            reg = decode_registration(body)
            with self.state.cond:
                self.state.catalog_register(reg)
            return json_result(True)
        if path == "/v1/catalog/deregister":
            allow(method, "PUT")
            obj = decode_json_object(body)
            node = _field(obj, "Node", "str", "")
            if not node:
                raise HTTPError(500, "Must provide node")
            with self.state.cond:
                self.state.catalog_deregister(node, _field(obj, "ServiceID", "str", ""),
                                              _field(obj, "CheckID", "str", ""))
            return json_result(True)
        if path == "/v1/catalog/services":
            allow(method, "GET")
            return self.read(query, *self.state.services_read())
        for prefix, kind in (("/v1/catalog/service/", "catalog"), ("/v1/health/service/", "health")):
            if path.startswith(prefix):
                allow(method, "GET")
                name = path[len(prefix):]
                if not name:
                    raise HTTPError(400, "Missing service name")
                passing = False
                if kind == "health" and query.has("passing"):
                    # getBoolQueryParam: "?passing" alone is true.
                    v = query.get("passing", "")
                    if v.lower() not in ("", "1", "t", "true", "0", "f", "false"):
                        raise HTTPError(400, "Invalid value for ?passing")
                    passing = v.lower() in ("", "1", "t", "true")
                flt = parse_filter(query.get("filter")) if query.has("filter") else None
                return self.read(query, *self.state.service_read(
                    kind, name, query.all("tag"), passing, flt))
        raise HTTPError(404, "404 page not found")

    def read(self, query, run, version):
        opts = BlockingOptions(query, self.max_wait)
        result = self.state.blocking_query(opts, run, version)
        result.headers.append(("X-Consul-Effective-Consistency", opts.consistency))
        return result

    def kv(self, method, key, query, body):
        allow(method, "GET", "PUT", "DELETE")
        if method == "GET":
            # KVSEndpoint: ?keys wins over ?recurse; ?recurse is a presence
            # flag (any value, even "false", recurses).
            mode = "keys" if query.has("keys") else "recurse" if query.has("recurse") else "get"
            if mode == "get" and not key:
                raise HTTPError(400, "Missing key name")
            # "seperator" is Consul's historic spelling, still accepted.
            sep = query.get("separator", query.get("seperator", ""))
            return self.read(query, *self.state.kv_read(key, mode, sep, query.has("raw")))
        if method == "PUT":
            if not key:
                raise HTTPError(400, "Missing key name")
            if query.has("acquire") or query.has("release"):
                raise HTTPError(400, "sessions (?acquire, ?release) are not supported "
                                     "by the stand-in")
            flags = uint_param(query, "flags", 0)
            cas = uint_param(query, "cas", None)
            if len(body) > KV_MAX_VALUE_SIZE:
                raise HTTPError(413, "Request body(%d bytes) too large, max size: %d bytes."
                                % (len(body), KV_MAX_VALUE_SIZE))
            # Consul copies the body into a nil buffer: an empty body stores
            # a nil value, read back as "Value": null.
            value = body if body else None
            with self.state.cond:
                ok = self.state.kv_put(key, value, flags, cas)
            return json_result(ok)
        # DELETE
        recurse = query.has("recurse")
        if recurse and query.has("cas"):
            raise HTTPError(400, "Conflicting flags: recurse & cas")
        if not recurse and not key:
            raise HTTPError(400, "Missing key name")
        cas = uint_param(query, "cas", None)
        with self.state.cond:
            ok = self.state.kv_delete(key, recurse, cas)
        return json_result(ok)


# Consul's limit on the operations of one transaction (txn_max_ops).
TXN_MAX_OPS = 64
TXN_VERBS = ("set", "cas", "lock", "unlock", "get", "get-tree", "check-index",
             "check-session", "check-not-exists", "delete", "delete-tree", "delete-cas")


def decode_txn(body):
    """The body of PUT /v1/txn: a JSON array of {"KV": {"Verb", "Key",
    "Value" (base64), "Flags"}}. The stand-in applies set, delete and
    delete-tree; Consul's other verbs are refused with 400."""
    try:
        ops = json.loads(body or b"null")
    except ValueError as e:
        raise HTTPError(400, "Failed to parse body: %s" % e)
    if not isinstance(ops, list):
        raise HTTPError(400, "Failed to parse body: not a JSON array")
    if len(ops) > TXN_MAX_OPS:
        raise HTTPError(413, "Transaction contains too many operations (%d > %d)"
                        % (len(ops), TXN_MAX_OPS))
    out = []
    for op in ops:
        kv = op.get("KV") if isinstance(op, dict) else None
        if not isinstance(kv, dict):
            raise HTTPError(400, "the stand-in supports only KV operations in a transaction")
        verb = kv.get("Verb")
        if verb not in TXN_VERBS:
            raise HTTPError(400, "Failed to parse body: unknown KV verb %r" % (verb,))
        if verb not in ("set", "delete", "delete-tree"):
            raise HTTPError(400, "the stand-in does not support the KV verb %r" % verb)
        key = kv.get("Key")
        if not isinstance(key, str) or (not key and verb != "delete-tree"):
            raise HTTPError(400, "Missing key name")
        value = None
        if verb == "set" and kv.get("Value") is not None:
            try:
                value = base64.b64decode(kv["Value"], validate=True) or None
            except (ValueError, TypeError):
                raise HTTPError(400, "Failed to parse body: bad base64 value")
        flags = kv.get("Flags", 0)
        if not isinstance(flags, int) or flags < 0:
            raise HTTPError(400, "Failed to parse body: bad flags")
        out.append((verb, key, value, flags))
    return out


def allow(method, *methods):
    if method not in methods:
        raise HTTPError(405, "method %s not allowed" % method,
                        [("Allow", ", ".join(methods))])


def uint_param(query, name, default):
    if not query.has(name):
        return default
    try:
        return parse_uint(query.get(name))
    except ValueError:
        raise HTTPError(400, "Invalid %s" % name)


# ---------------------------------------------------------------------------
# HTTP

_FILTER_TERM = re.compile(
    r'^\s*(?:"(?P<v1>[^"]*)"\s+(?P<in>in|not in)\s+(?P<s1>[A-Za-z][\w.]*)'
    r'|(?P<s2>[A-Za-z][\w.]*)\s+(?P<op>==|!=|contains|not contains)\s+"(?P<v2>[^"]*)")\s*$')


def parse_filter(expression):
    """A ?filter expression (go-bexpr) on catalog and health entries, in the
    subset the stand-in implements: terms `Selector == "v"`, `!=`,
    `Selector contains "v"`, `not contains`, `"v" in Selector`, `not in`,
    joined by `and`. A selector is a dotted path (`Service.Tags`,
    `ServiceMeta.env`). Anything else is refused with Consul's 400 text."""
    terms = []
    for part in re.split(r"\s+and\s+", expression or ""):
        m = _FILTER_TERM.match(part)
        if not m:
            raise HTTPError(400, "Failed to create boolean expression evaluator: "
                                 "unsupported expression %r (the stand-in knows ==, !=, "
                                 "contains, in and and)" % part)
        if m.group("s1"):
            op = "contains" if m.group("in") == "in" else "not contains"
            terms.append((m.group("s1").split("."), op, m.group("v1")))
        else:
            terms.append((m.group("s2").split("."), m.group("op"), m.group("v2")))

    def field(item, path):
        for key in path:
            if not isinstance(item, dict) or key not in item:
                return None
            item = item[key]
        return item

    def keep(item):
        for path, op, value in terms:
            got = field(item, path)
            if op in ("contains", "not contains"):
                found = value in got if isinstance(got, (list, dict)) else (
                    isinstance(got, str) and value in got)
                ok = found if op == "contains" else not found
            else:
                same = str(got).lower() == value.lower() if isinstance(got, bool) else got == value
                ok = same if op == "==" else not same
            if not ok:
                return False
        return True

    return keep


_TOKEN_IN_TEXT = re.compile(r"(token=)[^&\s\"']*", re.IGNORECASE)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive; every answer has Content-Length
    server_version = "consul-standin"
    disable_nagle_algorithm = True

    def version_string(self):
        return self.server_version

    @property
    def app(self):
        return self.server.app

    def log_message(self, fmt, *args):
        # Only the request line is ever logged, never headers; a token in
        # the query string is masked.
        if self.app.verbose:
            text = _TOKEN_IN_TEXT.sub(r"\1<hidden>", fmt % args)
            sys.stderr.write("%s - %s\n" % (self.address_string(), text))

    def setup(self):
        super().setup()
        with self.app.lock:
            self.app.connections += 1

    def finish(self):
        with self.app.lock:
            self.app.connections -= 1
        super().finish()

    def handle_one_request(self):
        try:
            super().handle_one_request()
        except (ConnectionError, TimeoutError):
            self.close_connection = True

    def do_GET(self):
        try:
            self.dispatch()
        except (ConnectionError, TimeoutError):
            self.close_connection = True
        except Exception:  # never let bad input take the server down
            traceback.print_exc(file=sys.stderr)
            self.close_connection = True

    do_PUT = do_DELETE = do_POST = do_HEAD = do_PATCH = do_OPTIONS = do_GET

    def read_body(self):
        """The request body: Content-Length or chunked. None if unusable."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks, total = [], 0
            while True:
                line = self.rfile.readline(65537)
                size = int(line.split(b";", 1)[0].strip() or b"x", 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(chunks)
                total += size
                if total > MAX_BODY:
                    return None
                chunks.append(self.rfile.read(size))
                self.rfile.readline(65537)
        length = self.headers.get("Content-Length")
        if length is None:
            return b""
        n = int(length)
        if n < 0 or n > MAX_BODY:
            return None
        return self.rfile.read(n)

    def dispatch(self):
        try:
            body = self.read_body()
        except ValueError:
            body = None
        if body is None:
            self.close_connection = True
            return self.send(text_result(400, "Bad request body"))
        split = urlsplit(self.path)
        path = unquote(split.path)  # Go's URL.Path is decoded
        query = Query(split.query)
        if path.startswith("/_test/"):
            return self.send(self.test_control(path, body))

        self.app.count(path, self.path)
        fault = self.app.fault_for(path)
        while fault is not None and fault["mode"] == "hang":
            if not self.app.hang():
                self.close_connection = True
                return
            fault = self.app.fault_for(path)
        mode = fault["mode"] if fault else "none"
        if mode == "close":
            self.close_connection = True
            return
        if mode == "flap" and self.command == "GET" and path.startswith("/v1/kv/"):
            return self.send(self.flap_result(path[len("/v1/kv/"):], fault), fault)
        if mode not in ("none", "flap"):
            return self.send(self.fault_result(mode, fault), fault)

        try:
            # /v1/status/* needs no ACL in Consul.
            if not path.startswith("/v1/status/"):
                if not self.app.authorized(query, self.headers):
                    raise HTTPError(403, "Permission denied")
            elif path in ("/v1/status/leader", "/v1/status/peers"):
                allow(self.command, "GET")
                result = json_result(LEADER if path.endswith("leader") else [LEADER])
                return self.send(result, fault)
            result = self.app.route(self.command, path, query, body)
        except HTTPError as e:
            result = text_result(e.status, e.message)
            result.headers = e.headers
        self.send(result, fault)

    def flap_result(self, prefix, fault):
        state = self.app.state
        with state.cond:
            idx = state.next_index()
            value = b'{"weight":%d}' % (1 + idx % 2)
            items = [dict(state.kv_render(e), ModifyIndex=idx,
                          Value=base64.b64encode(value).decode("ascii"))
                     for e in state.kv_matching(prefix, True)]
            if fault.get("extra") and idx % 2:
                items.append({"LockIndex": 0, "Key": prefix + fault["extra"], "Flags": 0,
                              "Value": base64.b64encode(b"{}").decode("ascii"),
                              "CreateIndex": idx, "ModifyIndex": idx})
        return Result(200, json.dumps(items).encode(), "application/json", idx)

    def fault_result(self, mode, fault):
        index = self.app.state.index
        if mode == "garbage":
            return Result(200, b"<html>not json", "application/json", index)
        if mode == "huge":
            size = fault.get("size", DEFAULT_HUGE_SIZE)
            return Result(200, self.app.huge_body(size), "application/json", index)
        return Result(500, b"rpc error", "text/plain; charset=utf-8")  # status500

    def send(self, result, fault=None):
        self.send_response(result.status)
        if result.content_type and result.body:
            self.send_header("Content-Type", result.content_type)
        if result.index is not None:
            # Consul's setMeta(): on every read answer, 404 included.
            index = result.index
            if fault is not None and fault.get("index_override") is not None:
                index = fault["index_override"]
            self.send_header("X-Consul-Index", str(index))
            self.send_header("X-Consul-KnownLeader", "true")
            self.send_header("X-Consul-LastContact", "0")
        for name, value in result.headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(result.body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD" and result.body:
            self.wfile.write(result.body)

    # -- /_test/ ---------------------------------------------------------------
    def test_control(self, path, body):
        app = self.app
        try:
            if path == "/_test/fault":
                allow(self.command, "GET", "PUT", "POST")
                if self.command == "GET":
                    with app.lock:
                        return Result(200, json.dumps(app.fault).encode(), "application/json")
                try:
                    obj = json.loads(body.decode("utf-8") or "{}")
                except (ValueError, UnicodeDecodeError) as e:
                    raise HTTPError(400, "Request decode failed: %s" % e)
                if not isinstance(obj, dict):
                    raise HTTPError(400, "Request decode failed: expected a JSON object")
                fault = App.validate_fault(obj)
                with app.lock:
                    app.set_fault_locked(fault)
                return json_result(True)
            if path == "/_test/requests":
                allow(self.command, "GET")
                with app.lock:
                    targets = list(app.targets)
                return Result(200, json.dumps(targets).encode(), "application/json")
            if path == "/_test/stats":
                allow(self.command, "GET")
                # json.dumps' default separators: tests match '"blocking": 1'.
                return Result(200, json.dumps(app.stats()).encode(), "application/json")
            if path == "/_test/reset":
                allow(self.command, "POST", "PUT")
                app.reset()
                return json_result(True)
            raise HTTPError(404, "404 page not found")
        except HTTPError as e:
            result = text_result(e.status, e.message)
            result.headers = e.headers
            return result


class Server(ThreadingHTTPServer):
    daemon_threads = True  # a held request must not keep the process alive
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address, app):
        self.app = app
        if ":" in address[0]:
            self.address_family = socket.AF_INET6  # --host ::1
        super().__init__(address, Handler)

    def server_bind(self):
        # HTTPServer.server_bind() resolves the host name (getfqdn), which
        # may stall without DNS; the name is not needed.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]

    def handle_error(self, request, client_address):
        exc = sys.exc_info()[1]
        if not isinstance(exc, (ConnectionError, TimeoutError, ssl.SSLError)):
            super().handle_error(request, client_address)


class TlsServer(Server):
    """The same API over TLS (--tls-port): the handshake runs in the
    request's thread; handshakes, resumed sessions and the SNI names sent
    are counted in /_test/stats' "tls"."""

    def __init__(self, address, app, context):
        self.context = context
        context.sni_callback = self.sni
        super().__init__(address, app)

    def sni(self, sock, name, context):
        if name is not None:
            with self.app.lock:
                if name not in self.app.tls["sni"]:
                    self.app.tls["sni"].append(name)

    def get_request(self):
        sock, addr = super().get_request()
        return self.context.wrap_socket(sock, server_side=True,
                                        do_handshake_on_connect=False), addr

    def finish_request(self, request, client_address):
        try:
            request.do_handshake()
        except (ssl.SSLError, OSError):
            with self.app.lock:
                self.app.tls["failed"] += 1
            return
        with self.app.lock:
            self.app.tls["handshakes"] += 1
            self.app.tls["resumed"] += int(request.session_reused)
        super().finish_request(request, client_address)


def main(argv=None):
    ap = argparse.ArgumentParser(description="Consul HTTP API stand-in for tests")
    ap.add_argument("--port", type=int, required=True, help="0 picks a free port")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--token", help="ACL token every /v1/ request must carry")
    ap.add_argument("--max-wait", type=float, default=None,
                    help="cap on blocking query waits, in seconds (tests only)")
    ap.add_argument("--verbose", action="store_true", help="log request lines to stderr")
    ap.add_argument("--tls-port", type=int, help="also serve the API over TLS on this port")
    ap.add_argument("--tls-cert", help="the TLS listener's certificate (PEM)")
    ap.add_argument("--tls-key", help="its key")
    ap.add_argument("--tls-ca", help="require client certificates signed by this CA")
    args = ap.parse_args(argv)

    app = App(token=args.token, max_wait=args.max_wait, verbose=args.verbose)
    server = Server((args.host, args.port), app)
    servers = [server]
    if args.tls_port:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(args.tls_cert, args.tls_key)
        if args.tls_ca:
            context.load_verify_locations(args.tls_ca)
            context.verify_mode = ssl.CERT_REQUIRED
        tls = TlsServer((args.host, args.tls_port), app, context)
        servers.append(tls)
        threading.Thread(target=tls.serve_forever, kwargs={"poll_interval": 0.1},
                         daemon=True).start()

    def stop(signum, frame):
        # shutdown() waits for serve_forever() to return: not from the
        # signal handler, which runs in the thread serving.
        for s in servers:
            threading.Thread(target=s.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    host, port = server.server_address[:2]
    sys.stdout.write("listening %s:%d\n" % ("[%s]" % host if ":" in host else host, port))
    sys.stdout.flush()
    try:
        server.serve_forever(poll_interval=0.1)
    finally:
        app.stop()
        for s in servers:
            s.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

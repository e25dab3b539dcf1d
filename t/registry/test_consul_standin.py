"""Tests of the Consul stand-in (consul_standin.py): it must follow Consul's
documented HTTP semantics, since the module's tests rely on it.

Run from the repository root:
    python3 -m unittest discover -s t/registry -p 'test_*.py' -v
"""

import base64
import http.client
import json
import os
import select
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.dont_write_bytecode = True  # no __pycache__ in the source tree
import consul_standin  # noqa: E402  (for the pure functions)

JITTER = 1.0 / 16  # Consul's jitter: up to wait/16
SLACK = 0.5  # scheduling slack for timing assertions


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers  # http.client.HTTPMessage: case-insensitive
        self.body = body

    def json(self):
        return json.loads(self.body)

    @property
    def index(self):
        return int(self.headers["X-Consul-Index"])


class Server:
    """The stand-in as a subprocess on a free port."""

    def __init__(self, *args):
        self.stderr = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            [sys.executable, os.path.join(HERE, "consul_standin.py"), "--port", "0", *args],
            stdout=subprocess.PIPE, stderr=self.stderr)
        ready, _, _ = select.select([self.proc.stdout], [], [], 10)
        line = self.proc.stdout.readline().decode() if ready else ""
        if not line.startswith("listening "):
            self.proc.kill()
            raise RuntimeError("the stand-in did not start: %r" % line)
        host, port = line.split()[1].rsplit(":", 1)
        self.host, self.port = host.strip("[]"), int(port)

    def request(self, method, path, body=None, headers=None, timeout=10):
        conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            r = conn.getresponse()
            return Response(r.status, r.headers, r.read())
        finally:
            conn.close()

    def stats(self):
        return self.request("GET", "/_test/stats").json()

    def wait_blocking(self, n, timeout=5):
        """Wait until n blocking queries are held (so a write that follows
        really happens while they block)."""
        deadline = time.monotonic() + timeout
        while self.stats()["blocking"] != n:
            if time.monotonic() > deadline:
                raise AssertionError("never saw %d blocking queries" % n)
            time.sleep(0.02)

    def stop(self, sig=signal.SIGTERM):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            code = self.proc.wait(10)
        finally:
            self.proc.stdout.close()
        self.stderr.seek(0)
        self.stderr_text = self.stderr.read().decode(errors="replace")
        self.stderr.close()
        return code


def in_thread(fn):
    """Run fn in a thread; box gets "result" (or "error") and "at" (the
    monotonic time it returned)."""
    box = {}

    def run():
        try:
            box["result"] = fn()
        except BaseException as e:  # reported by the test
            box["error"] = e
        box["at"] = time.monotonic()

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t, box


SERVER = None


def setUpModule():
    global SERVER
    SERVER = Server()


def tearDownModule():
    code = SERVER.stop()
    assert code == 0, code
    # bad input, dropped connections and faults never raise in the server
    assert "Traceback" not in SERVER.stderr_text, SERVER.stderr_text


class StandinCase(unittest.TestCase):
    """Tests sharing the module's server, reset before each test."""

    def setUp(self):
        self.s = SERVER
        r = self.s.request("POST", "/_test/reset")
        self.assertEqual((r.status, r.body), (200, b"true"))

    def put(self, key, value=b"", query=""):
        r = self.s.request("PUT", "/v1/kv/" + key + query, value)
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual(r.headers["Content-Type"], "application/json")
        return r.json()

    def get(self, path, **kw):
        return self.s.request("GET", path, **kw)

    def register(self, node, address, service=None, checks=None, **extra):
        body = dict(Node=node, Address=address, **extra)
        if service is not None:
            body["Service"] = service
        if checks is not None:
            body["Checks"] = checks
        r = self.s.request("PUT", "/v1/catalog/register", json.dumps(body))
        self.assertEqual((r.status, r.body), (200, b"true"))

    def deregister(self, **body):
        r = self.s.request("PUT", "/v1/catalog/deregister", json.dumps(body))
        self.assertEqual((r.status, r.body), (200, b"true"))


class KVTests(StandinCase):
    def test_put_get_recurse(self):
        self.assertIs(self.put("up/test/127.0.0.1:8080", b'{"weight":2}'), True)
        self.put("up/test/127.0.0.1:8081", b"\x00\xffbinary")
        r = self.get("/v1/kv/up/test/?recurse")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.headers["Content-Type"], "application/json")
        self.assertEqual(r.headers["X-Consul-KnownLeader"], "true")
        self.assertEqual(r.headers["X-Consul-LastContact"], "0")
        items = r.json()
        self.assertEqual([i["Key"] for i in items], ["up/test/127.0.0.1:8080", "up/test/127.0.0.1:8081"])
        self.assertEqual(base64.b64decode(items[0]["Value"]), b'{"weight":2}')
        self.assertEqual(base64.b64decode(items[1]["Value"]), b"\x00\xffbinary")
        for item in items:
            self.assertEqual(set(item), {"LockIndex", "Key", "Flags", "Value", "CreateIndex", "ModifyIndex"})
            self.assertEqual((item["LockIndex"], item["Flags"]), (0, 0))
        # X-Consul-Index: the highest ModifyIndex under the prefix.
        self.assertEqual(r.index, max(i["ModifyIndex"] for i in items))
        # recurse=true is the same; Consul only tests the parameter's presence.
        self.assertEqual(self.get("/v1/kv/up/test/?recurse=true").json(), items)
        self.assertEqual(self.get("/v1/kv/up/test/?recurse=false").json(), items)

    def test_txn_is_one_write(self):
        self.put("up/t/127.0.0.1:1", b"old")
        before = self.get("/v1/kv/up/t/?recurse").index
        ops = [{"KV": {"Verb": "set", "Key": "up/t/127.0.0.1:%d" % p,
                       "Value": base64.b64encode(b'{"weight":2}').decode()}} for p in (2, 3)]
        ops.append({"KV": {"Verb": "delete", "Key": "up/t/127.0.0.1:1"}})
        r = self.s.request("PUT", "/v1/txn", json.dumps(ops))
        self.assertEqual(r.status, 200, r.body)
        out = r.json()
        self.assertIsNone(out["Errors"])
        self.assertEqual([x["KV"]["Key"] for x in out["Results"]],
                         ["up/t/127.0.0.1:2", "up/t/127.0.0.1:3"])
        self.assertIsNone(out["Results"][0]["KV"]["Value"])
        r = self.get("/v1/kv/up/t/?recurse")
        items = r.json()
        self.assertEqual([i["Key"] for i in items], ["up/t/127.0.0.1:2", "up/t/127.0.0.1:3"])
        # One raft entry: every key written at the same index, just above.
        self.assertEqual({i["ModifyIndex"] for i in items}, {r.index})
        self.assertEqual(r.index, before + 1)
        self.assertEqual(base64.b64decode(items[0]["Value"]), b'{"weight":2}')
        # delete-tree, then an empty prefix answers 404.
        r = self.s.request("PUT", "/v1/txn", json.dumps([{"KV": {"Verb": "delete-tree", "Key": "up/t/"}}]))
        self.assertEqual((r.status, r.json()["Results"]), (200, []))
        self.assertEqual(self.get("/v1/kv/up/t/?recurse").status, 404)

    def test_txn_refusals(self):
        many = [{"KV": {"Verb": "set", "Key": "k%d" % i}} for i in range(65)]
        r = self.s.request("PUT", "/v1/txn", json.dumps(many))
        self.assertEqual(r.status, 413)
        self.assertIn(b"too many operations (65 > 64)", r.body)
        for body in ("not json", '{"KV": {}}', '[{"KV": {"Verb": "frob", "Key": "k"}}]',
                     '[{"KV": {"Verb": "cas", "Key": "k"}}]', '[{"KV": {"Verb": "set"}}]'):
            self.assertEqual(self.s.request("PUT", "/v1/txn", body).status, 400, body)
        self.assertEqual(self.s.request("GET", "/v1/txn").status, 405)
        # Nothing was written by a refused transaction.
        self.assertEqual(self.get("/v1/kv/?recurse").status, 404)

    def test_single_key(self):
        self.put("a/b", b"v1")
        r = self.get("/v1/kv/a/b")
        self.assertEqual(r.status, 200)
        [item] = r.json()
        self.assertEqual((item["Key"], base64.b64decode(item["Value"])), ("a/b", b"v1"))
        self.assertEqual(r.index, item["ModifyIndex"])
        # An exact read does not match longer keys.
        self.put("a/bc", b"v2")
        self.assertEqual(len(self.get("/v1/kv/a/b").json()), 1)
        # ?raw: the value itself
        r = self.get("/v1/kv/a/b?raw")
        self.assertEqual((r.status, r.body), (200, b"v1"))
        # A missing key: 404, empty body, index still set.
        r = self.get("/v1/kv/a/missing")
        self.assertEqual((r.status, r.body), (404, b""))
        self.assertGreater(r.index, 0)
        # Percent-encoded keys are decoded, as Go does.
        self.put("sp%20ace", b"x")
        self.assertEqual(self.get("/v1/kv/sp%20ace").json()[0]["Key"], "sp ace")

    def test_empty_value_is_null(self):
        # Consul copies an empty body into a nil buffer: "Value": null.
        self.put("up/test/127.0.0.1:8089")
        [item] = self.get("/v1/kv/up/test/127.0.0.1:8089").json()
        self.assertIsNone(item["Value"])
        self.assertEqual(self.get("/v1/kv/up/test/127.0.0.1:8089?raw").body, b"")

    def test_create_and_modify_index_and_flags(self):
        self.put("k", b"1", "?flags=42")
        [first] = self.get("/v1/kv/k").json()
        self.assertEqual(first["Flags"], 42)
        self.assertEqual(first["CreateIndex"], first["ModifyIndex"])
        self.put("k", b"2")
        [second] = self.get("/v1/kv/k").json()
        self.assertEqual(second["CreateIndex"], first["CreateIndex"])
        self.assertGreater(second["ModifyIndex"], first["ModifyIndex"])
        self.assertEqual(second["Flags"], 0)  # a PUT without ?flags sets 0
        self.assertEqual(self.s.request("PUT", "/v1/kv/k?flags=x", b"").status, 400)

    def test_empty_prefix_is_404_with_index(self):
        r = self.get("/v1/kv/nothing/?recurse")
        self.assertEqual((r.status, r.body), (404, b""))
        self.assertGreater(r.index, 0)
        r = self.get("/v1/kv/nothing/?keys")
        self.assertEqual((r.status, r.body), (404, b""))
        self.assertGreater(r.index, 0)

    def test_prefix_is_a_plain_string_prefix(self):
        self.put("upstreams/test/1.1.1.1:80")
        self.put("upstreams/test01/2.2.2.2:80")
        self.put("upstreams/test/")  # the folder key itself
        keys = [i["Key"] for i in self.get("/v1/kv/upstreams/test?recurse").json()]
        self.assertEqual(keys, ["upstreams/test/", "upstreams/test/1.1.1.1:80",
                                "upstreams/test01/2.2.2.2:80"])
        keys = [i["Key"] for i in self.get("/v1/kv/upstreams/test/?recurse").json()]
        self.assertEqual(keys, ["upstreams/test/", "upstreams/test/1.1.1.1:80"])

    def test_keys_and_separator(self):
        for k in ("up/a/1", "up/a/2", "up/b/1", "up/c", "other"):
            self.put(k)
        r = self.get("/v1/kv/up/?keys")
        self.assertEqual(r.json(), ["up/a/1", "up/a/2", "up/b/1", "up/c"])
        self.assertEqual(self.get("/v1/kv/up/?keys&separator=/").json(), ["up/a/", "up/b/", "up/c"])
        # the root answers [] rather than 404 when empty; here it lists all
        self.assertEqual(self.get("/v1/kv/?keys&separator=/").json(), ["other", "up/"])

    def test_delete_and_delete_recurse(self):
        for k in ("d/1", "d/2", "d2/1"):
            self.put(k)
        before = self.get("/v1/kv/d/?recurse").index
        r = self.s.request("DELETE", "/v1/kv/d/1")
        self.assertEqual((r.status, r.body), (200, b"true"))
        r = self.get("/v1/kv/d/?recurse")
        self.assertEqual([i["Key"] for i in r.json()], ["d/2"])
        # a deletion raises the prefix's index above the remaining ModifyIndex
        self.assertGreater(r.index, before)
        after_one = r.index
        r = self.s.request("DELETE", "/v1/kv/d?recurse")  # plain prefix: d2/ goes too
        self.assertEqual((r.status, r.body), (200, b"true"))
        r = self.get("/v1/kv/d?recurse")
        self.assertEqual(r.status, 404)
        self.assertGreater(r.index, after_one)
        # deleting what is missing is fine
        self.assertEqual(self.s.request("DELETE", "/v1/kv/nope").body, b"true")

    def test_cas(self):
        self.assertIs(self.put("c", b"1", "?cas=0"), True)  # create only
        self.assertIs(self.put("c", b"2", "?cas=0"), False)
        [item] = self.get("/v1/kv/c").json()
        self.assertIs(self.put("c", b"3", "?cas=%d" % (item["ModifyIndex"] + 100)), False)
        self.assertIs(self.put("c", b"4", "?cas=%d" % item["ModifyIndex"]), True)
        [item] = self.get("/v1/kv/c").json()
        self.assertEqual(base64.b64decode(item["Value"]), b"4")
        self.assertIs(self.put("never", b"x", "?cas=5"), False)
        # DELETE ?cas
        r = self.s.request("DELETE", "/v1/kv/c?cas=1")
        self.assertEqual(r.body, b"false")
        r = self.s.request("DELETE", "/v1/kv/c?cas=%d" % item["ModifyIndex"])
        self.assertEqual(r.body, b"true")
        self.assertEqual(self.get("/v1/kv/c").status, 404)

    def test_index_is_monotonic(self):
        seen = [self.get("/v1/kv/m/?recurse").index]
        for i in range(5):
            self.put("m/%d" % i)
            seen.append(self.get("/v1/kv/m/?recurse").index)
        self.s.request("DELETE", "/v1/kv/m/0")
        seen.append(self.get("/v1/kv/m/?recurse").index)
        self.assertEqual(seen, sorted(set(seen)), "strictly increasing")
        # a reset is a write: the index keeps growing
        self.s.request("POST", "/_test/reset")
        self.assertGreater(self.get("/v1/kv/m/?recurse").index, seen[-1])

    def test_errors(self):
        self.assertEqual(self.get("/v1/kv/").status, 400)  # Missing key name
        self.assertEqual(self.s.request("POST", "/v1/kv/x").status, 405)
        r = self.get("/v1/kv/x?index=abc")
        self.assertEqual((r.status, r.body), (400, b"Invalid index"))
        self.assertEqual(self.get("/v1/kv/x?index=-1").status, 400)
        r = self.get("/v1/kv/x?index=1&wait=10")  # a Go duration needs a unit
        self.assertEqual((r.status, r.body), (400, b"Invalid wait time"))
        self.assertEqual(self.get("/v1/kv/x?dc=other").status, 500)
        r = self.s.request("PUT", "/v1/kv/big", b"x" * (512 * 1024 + 1))
        self.assertEqual(r.status, 413)
        self.assertEqual(self.get("/v1/nothing/here").status, 404)
        self.assertEqual(self.get("/elsewhere").status, 404)
        r = self.get("/v1/status/leader")
        self.assertEqual((r.status, r.json()), (200, "127.0.0.1:8300"))


class DurationTests(unittest.TestCase):
    def test_go_durations(self):
        parse = consul_standin.parse_go_duration
        for text, seconds in (("10s", 10), ("500ms", 0.5), ("1m", 60), ("1m30s", 90),
                              ("1.5h", 5400), ("0", 0), ("100us", 1e-4), ("-2s", -2)):
            self.assertAlmostEqual(parse(text), seconds, msg=text)
        for text in ("", "10", "1x", "s", ".s", "1m30", "5 s"):
            self.assertRaises(ValueError, parse, text)


class BlockingTests(StandinCase):
    def test_stale_index_answers_at_once(self):
        self.put("b/1")
        old = self.get("/v1/kv/b/?recurse").index
        self.put("b/2")
        start = time.monotonic()
        r = self.get("/v1/kv/b/?recurse&index=%d&wait=5s" % old)
        self.assertLess(time.monotonic() - start, 1)
        self.assertGreater(r.index, old)
        self.assertEqual(len(r.json()), 2)

    def test_index_zero_never_blocks(self):
        self.put("b/1")
        start = time.monotonic()
        self.assertEqual(self.get("/v1/kv/b/?recurse&index=0&wait=5s").status, 200)
        self.assertEqual(self.get("/v1/kv/nothing/?recurse&index=0&wait=5s").status, 404)
        self.assertLess(time.monotonic() - start, 1)

    def test_blocks_until_a_write_under_the_prefix(self):
        self.put("b/1")
        idx = self.get("/v1/kv/b/?recurse").index
        t, box = in_thread(lambda: self.get("/v1/kv/b/?recurse&index=%d&wait=10s" % idx, timeout=20))
        self.s.wait_blocking(1)
        time.sleep(0.2)
        self.assertTrue(t.is_alive())
        written_at = time.monotonic()
        self.put("b/2", b"new")
        t.join(5)
        self.assertFalse(t.is_alive())
        r = box["result"]
        self.assertGreaterEqual(box["at"], written_at, "answered after the write")
        self.assertLess(box["at"] - written_at, 2)
        self.assertGreater(r.index, idx)
        self.assertEqual([i["Key"] for i in r.json()], ["b/1", "b/2"])
        self.assertEqual(self.s.stats()["blocking"], 0)

    def test_empty_prefix_blocks_until_created_and_delete_wakes(self):
        r = self.get("/v1/kv/e/?recurse")
        self.assertEqual(r.status, 404)
        t, box = in_thread(lambda: self.get("/v1/kv/e/?recurse&index=%d&wait=10s" % r.index,
                                            timeout=20))
        self.s.wait_blocking(1)
        self.put("e/1")
        t.join(5)
        created = box["result"]
        self.assertEqual((created.status, len(created.json())), (200, 1))
        self.assertGreater(created.index, r.index)
        # a deletion wakes it too, with a higher index and a 404
        t, box = in_thread(lambda: self.get("/v1/kv/e/?recurse&index=%d&wait=10s" % created.index,
                                            timeout=20))
        self.s.wait_blocking(1)
        self.s.request("DELETE", "/v1/kv/e/1")
        t.join(5)
        self.assertEqual(box["result"].status, 404)
        self.assertGreater(box["result"].index, created.index)

    def test_single_key_blocking(self):
        self.put("s/k", b"1")
        idx = self.get("/v1/kv/s/k").index
        t, box = in_thread(lambda: self.get("/v1/kv/s/k?index=%d&wait=10s" % idx, timeout=20))
        self.s.wait_blocking(1)
        self.put("s/k", b"2")
        t.join(5)
        self.assertEqual(base64.b64decode(box["result"].json()[0]["Value"]), b"2")
        self.assertGreater(box["result"].index, idx)

    def test_other_writes_do_not_wake_and_wait_expires(self):
        self.put("upstreams/test/1.1.1.1:80")
        first = self.get("/v1/kv/upstreams/test/?recurse")
        t, box = in_thread(lambda: self.get(
            "/v1/kv/upstreams/test/?recurse&index=%d&wait=1s" % first.index, timeout=10))
        start = time.monotonic()
        self.s.wait_blocking(1)
        # writes elsewhere: another prefix, a sibling sharing the string
        # "upstreams/test" but not "upstreams/test/", the catalog
        self.put("upstreams/other/2.2.2.2:80")
        self.put("upstreams/test01/3.3.3.3:80")
        self.s.request("DELETE", "/v1/kv/nothing/here")
        self.register("n1", "127.0.0.1", {"Service": "web", "Port": 80})
        time.sleep(0.3)
        self.assertTrue(t.is_alive(), "woken by a write elsewhere")
        t.join(5)
        elapsed = box["at"] - start
        self.assertGreaterEqual(elapsed, 1.0)
        self.assertLess(elapsed, 1.0 + JITTER + SLACK)
        r = box["result"]
        self.assertEqual(r.index, first.index, "same index after the wait")
        self.assertEqual(r.body, first.body)

    def test_wait_expiry_on_an_empty_prefix(self):
        first = self.get("/v1/kv/void/?recurse")
        start = time.monotonic()
        r = self.get("/v1/kv/void/?recurse&index=%d&wait=500ms" % first.index)
        elapsed = time.monotonic() - start
        self.assertGreaterEqual(elapsed, 0.5)
        self.assertLess(elapsed, 0.5 + 0.5 * JITTER + SLACK)
        self.assertEqual((r.status, r.index), (404, first.index))

    def test_index_ahead_of_the_server_blocks_then_answers_the_real_one(self):
        # Consul blocks while the index is <= the client's; a client that
        # sees the index go backwards must reset.
        self.put("f/1")
        real = self.get("/v1/kv/f/?recurse").index
        start = time.monotonic()
        r = self.get("/v1/kv/f/?recurse&index=%d&wait=200ms" % (real + 1000))
        self.assertGreaterEqual(time.monotonic() - start, 0.2)
        self.assertEqual(r.index, real)


class CatalogHealthTests(StandinCase):
    WEB1 = {"ID": "web1", "Service": "web", "Address": "", "Port": 8080,
            "Tags": ["weight=2"], "Meta": {"k": "v"}, "Weights": {"Passing": 1, "Warning": 1}}

    def test_register_and_catalog_listing(self):
        self.register("n2", "10.0.0.2", {"ID": "web2", "Service": "web", "Address": "10.9.9.9",
                                         "Port": 9090})
        self.register("n1", "10.0.0.1", self.WEB1)
        self.register("n1", "10.0.0.1", {"ID": "db1", "Service": "db", "Port": 5432})
        r = self.get("/v1/catalog/service/web")
        self.assertEqual(r.status, 200)
        items = r.json()
        self.assertEqual([(i["Node"], i["ServiceID"]) for i in items], [("n1", "web1"), ("n2", "web2")])
        first = items[0]
        for field in ("ID", "Node", "Address", "Datacenter", "TaggedAddresses", "NodeMeta",
                      "ServiceKind", "ServiceID", "ServiceName", "ServiceTags", "ServiceAddress",
                      "ServiceWeights", "ServiceMeta", "ServicePort", "ServiceEnableTagOverride",
                      "CreateIndex", "ModifyIndex"):
            self.assertIn(field, first)
        self.assertEqual(first["Address"], "10.0.0.1")
        self.assertEqual(first["ServiceAddress"], "")  # empty: use the node's Address
        self.assertEqual(first["ServicePort"], 8080)
        self.assertEqual(first["ServiceTags"], ["weight=2"])
        self.assertEqual(first["ServiceMeta"], {"k": "v"})
        self.assertEqual(first["ServiceWeights"], {"Passing": 1, "Warning": 1})
        self.assertEqual(first["Datacenter"], "dc1")
        self.assertEqual(items[1]["ServiceAddress"], "10.9.9.9")
        self.assertEqual(items[1]["ServiceTags"], [])  # nil tags -> []
        self.assertEqual(items[1]["ServiceWeights"], {"Passing": 1, "Warning": 1})  # default
        self.assertEqual(r.index, max(i["ModifyIndex"] for i in items))
        # ?tag filters (case-insensitively, as Consul)
        tagged = self.get("/v1/catalog/service/web?tag=WEIGHT=2").json()
        self.assertEqual([i["ServiceID"] for i in tagged], ["web1"])
        # unknown service: 200 []
        r = self.get("/v1/catalog/service/nope")
        self.assertEqual((r.status, r.json()), (200, []))
        self.assertGreater(r.index, 0)
        self.assertEqual(self.get("/v1/catalog/services").json(), {"db": [], "web": ["weight=2"]})

    def test_reregister_replaces_and_identical_is_a_noop(self):
        self.register("n1", "10.0.0.1", self.WEB1)
        idx = self.get("/v1/catalog/service/web").index
        self.register("n1", "10.0.0.1", self.WEB1)  # identical: nothing changes
        self.assertEqual(self.get("/v1/catalog/service/web").index, idx)
        self.register("n1", "10.0.0.1", dict(self.WEB1, Port=8081))
        r = self.get("/v1/catalog/service/web")
        self.assertEqual([i["ServicePort"] for i in r.json()], [8081])
        self.assertGreater(r.index, idx)

    def test_deregister(self):
        self.register("n1", "10.0.0.1", self.WEB1,
                      [{"CheckID": "c1", "Name": "c1", "Status": "passing", "ServiceID": "web1"}])
        self.register("n2", "10.0.0.2", dict(self.WEB1, ID="web2"))
        idx = self.get("/v1/catalog/service/web").index
        self.deregister(Node="n1", ServiceID="web1")
        r = self.get("/v1/catalog/service/web")
        self.assertEqual([i["ServiceID"] for i in r.json()], ["web2"])
        self.assertGreater(r.index, idx)
        self.assertEqual(self.get("/v1/health/service/web").json()[0]["Checks"], [])
        # the whole node
        self.deregister(Node="n2")
        r2 = self.get("/v1/catalog/service/web")
        self.assertEqual(r2.json(), [])
        self.assertGreater(r2.index, r.index)
        self.deregister(Node="nobody")  # not an error

    def test_health_passing_filter_and_checks(self):
        self.register("n1", "10.0.0.1", self.WEB1, [
            {"CheckID": "serfHealth", "Name": "Serf", "Status": "passing"},  # node-level
            {"CheckID": "c1", "Name": "c1", "Status": "passing", "ServiceID": "web1"}])
        self.register("n2", "10.0.0.2", dict(self.WEB1, ID="web2"), [
            {"CheckID": "c2", "Name": "c2", "Status": "critical", "ServiceID": "web2"}])
        items = self.get("/v1/health/service/web").json()
        self.assertEqual([i["Service"]["ID"] for i in items], ["web1", "web2"])
        entry = items[0]
        self.assertEqual(set(entry), {"Node", "Service", "Checks"})
        self.assertEqual(entry["Node"]["Node"], "n1")
        self.assertEqual(entry["Node"]["Address"], "10.0.0.1")
        self.assertEqual(entry["Node"]["Datacenter"], "dc1")
        svc = entry["Service"]
        self.assertEqual((svc["Service"], svc["Port"], svc["Address"], svc["Tags"]),
                         ("web", 8080, "", ["weight=2"]))
        self.assertEqual(svc["Weights"], {"Passing": 1, "Warning": 1})
        self.assertEqual([c["CheckID"] for c in entry["Checks"]], ["serfHealth", "c1"])
        node_check, svc_check = entry["Checks"]
        self.assertEqual((node_check["ServiceID"], node_check["ServiceName"]), ("", ""))
        self.assertEqual((svc_check["ServiceName"], svc_check["ServiceTags"]), ("web", ["weight=2"]))
        for field in ("Node", "CheckID", "Name", "Status", "Notes", "Output", "ServiceID",
                      "ServiceName", "ServiceTags", "Type", "CreateIndex", "ModifyIndex"):
            self.assertIn(field, svc_check)
        passing = self.get("/v1/health/service/web?passing").json()
        self.assertEqual([i["Service"]["ID"] for i in passing], ["web1"])
        self.assertEqual(len(self.get("/v1/health/service/web?passing=false").json()), 2)
        # a failing node-level check takes every service of the node out
        self.register("n1", "10.0.0.1", checks=[
            {"CheckID": "serfHealth", "Name": "Serf", "Status": "critical"}])
        self.assertEqual(self.get("/v1/health/service/web?passing").json(), [])
        r = self.get("/v1/health/service/nope?passing")
        self.assertEqual((r.status, r.json()), (200, []))
        # the single "Check" form, and a check deregistration
        self.register("n3", "10.0.0.3", dict(self.WEB1, ID="web3"), Check={
            "CheckID": "c3", "Name": "c3", "Status": "passing", "ServiceID": "web3"})
        self.assertEqual([i["Service"]["ID"] for i in self.get(
            "/v1/health/service/web?passing").json()], ["web3"])
        self.deregister(Node="n2", CheckID="c2")
        self.assertEqual([i["Service"]["ID"] for i in self.get(
            "/v1/health/service/web?passing").json()], ["web2", "web3"])

    def test_filter_subset_and_request_log(self):
        self.register("n1", "10.0.0.1", dict(self.WEB1, Tags=["v2", "weight=2"]))
        self.register("n2", "10.0.0.2", dict(self.WEB1, ID="web2", Tags=["v1"]))
        q = "/v1/catalog/service/web?filter="
        ids = lambda path: [i["ServiceID"] for i in self.get(path).json()]
        self.assertEqual(ids(q + "%22v2%22%20in%20ServiceTags"), ["web1"])
        self.assertEqual(ids(q + "ServiceTags%20contains%20%22v1%22"), ["web2"])
        self.assertEqual(ids(q + "Node%20%21%3D%20%22n1%22%20and%20ServiceID%20%3D%3D%20%22web2%22"),
                         ["web2"])
        health = [i["Service"]["ID"] for i in self.get(
            "/v1/health/service/web?filter=Service.Tags%20not%20contains%20%22v1%22").json()]
        self.assertEqual(health, ["web1"])
        r = self.get(q + "ServiceTags%20matches%20%22v.*%22")
        self.assertEqual(r.status, 400)
        self.assertIn(b"Failed to create boolean expression evaluator", r.body)
        self.get("/v1/kv/x?token=secret&dc=dc1")
        targets = self.get("/_test/requests").json()
        self.assertEqual(targets[-1], "/v1/kv/x?token=<hidden>&dc=dc1")

    def test_health_blocking_woken_by_a_check_status_change(self):
        check = {"CheckID": "c1", "Name": "c1", "Status": "passing", "ServiceID": "web1"}
        self.register("n1", "10.0.0.1", self.WEB1, [check])
        self.register("n9", "10.0.0.9", {"ID": "db", "Service": "db", "Port": 1})
        r = self.get("/v1/health/service/web?passing")
        self.assertEqual(len(r.json()), 1)
        t, box = in_thread(lambda: self.get(
            "/v1/health/service/web?passing&index=%d&wait=10s" % r.index, timeout=20))
        self.s.wait_blocking(1)
        self.register("n9", "10.0.0.9", {"ID": "db", "Service": "db", "Port": 2})  # other service
        time.sleep(0.2)
        self.assertTrue(t.is_alive(), "woken by another service")
        written_at = time.monotonic()
        self.register("n1", "10.0.0.1", self.WEB1, [dict(check, Status="critical")])
        t.join(5)
        self.assertFalse(t.is_alive())
        self.assertGreaterEqual(box["at"], written_at)
        self.assertGreater(box["result"].index, r.index)
        self.assertEqual(box["result"].json(), [])

    def test_catalog_blocking_woken_by_deregistration(self):
        self.register("n1", "10.0.0.1", self.WEB1)
        r = self.get("/v1/catalog/service/web")
        t, box = in_thread(lambda: self.get(
            "/v1/catalog/service/web?index=%d&wait=10s" % r.index, timeout=20))
        self.s.wait_blocking(1)
        self.deregister(Node="n1", ServiceID="web1")
        t.join(5)
        self.assertEqual(box["result"].json(), [])
        self.assertGreater(box["result"].index, r.index)

    def test_bad_bodies(self):
        r = self.s.request("PUT", "/v1/catalog/register", b"{not json")
        self.assertEqual(r.status, 400)
        self.assertTrue(r.body.startswith(b"Request decode failed"))
        self.assertEqual(self.s.request("PUT", "/v1/catalog/register", b"[1]").status, 400)
        bad_type = json.dumps({"Node": "n", "Address": "a", "Service": {"Service": "x", "Port": "80"}})
        self.assertEqual(self.s.request("PUT", "/v1/catalog/register", bad_type).status, 400)
        self.assertEqual(self.s.request("PUT", "/v1/catalog/register", b'{"Address":"a"}').status, 500)
        self.assertEqual(self.s.request("PUT", "/v1/catalog/deregister", b"\xff").status, 400)
        unknown_svc = json.dumps({"Node": "n", "Address": "a", "Checks": [{"CheckID": "c", "ServiceID": "s"}]})
        self.assertEqual(self.s.request("PUT", "/v1/catalog/register", unknown_svc).status, 500)
        self.assertEqual(self.s.request("GET", "/v1/catalog/register").status, 405)
        self.assertEqual(self.s.request("PUT", "/v1/health/service/web").status, 405)
        # a request that is not HTTP at all
        with socket.create_connection(("127.0.0.1", self.s.port), timeout=5) as sock:
            sock.sendall(b"GARBAGE\r\n\r\n")
            self.assertIn(b" 400 ", sock.recv(4096))
        self.assertEqual(self.get("/v1/status/leader").status, 200)  # still alive

    def test_keep_alive(self):
        conn = http.client.HTTPConnection("127.0.0.1", self.s.port, timeout=5)
        try:
            conn.request("PUT", "/v1/kv/ka", b"1")
            self.assertEqual(conn.getresponse().read(), b"true")
            sock = conn.sock
            conn.request("GET", "/v1/kv/ka")
            r = conn.getresponse()
            self.assertEqual(r.status, 200)
            r.read()
            self.assertIs(conn.sock, sock, "the connection was kept")
        finally:
            conn.close()


class FaultTests(StandinCase):
    def fault(self, **setting):
        r = self.s.request("PUT", "/_test/fault", json.dumps(setting))
        self.assertEqual((r.status, r.body), (200, b"true"))

    def test_flap_changes_every_answer_and_extra_comes_and_goes(self):
        self.put("fl/127.0.0.1:1")
        self.fault(mode="flap", extra="127.0.0.1:2")
        seen = []
        for _ in range(4):
            r = self.get("/v1/kv/fl/?recurse&index=1&wait=5s", timeout=2)
            self.assertEqual(r.status, 200)
            keys = sorted(e["Key"] for e in r.json())
            weights = {json.loads(base64.b64decode(e["Value"])).get("weight") for e in r.json()}
            seen.append((r.index, keys, weights))
        indexes = [i for i, _, _ in seen]
        self.assertEqual(indexes, sorted(set(indexes)), "a new index every answer")
        with_extra = [k for _, k, _ in seen if "fl/127.0.0.1:2" in k]
        self.assertEqual(len(with_extra), 2, seen)
        self.assertIn(["fl/127.0.0.1:1"], [k for _, k, _ in seen])

    def test_garbage(self):
        self.fault(mode="garbage")
        r = self.get("/v1/kv/x/?recurse")
        self.assertEqual((r.status, r.body), (200, b"<html>not json"))
        self.assertRaises(ValueError, json.loads, r.body)

    def test_status500(self):
        self.fault(mode="status500")
        r = self.get("/v1/health/service/web")
        self.assertEqual((r.status, r.body), (500, b"rpc error"))

    def test_huge(self):
        self.fault(mode="huge")
        r = self.get("/v1/kv/x/?recurse", timeout=30)
        self.assertEqual(r.status, 200)
        self.assertEqual(len(r.body), 20 * 1024 * 1024)
        self.assertEqual((r.body[:1], r.body.rstrip()[-1:]), (b"[", b"]"))
        self.fault(mode="huge", size=100001)
        r = self.get("/v1/kv/x/?recurse")
        self.assertEqual(len(r.body), 100001)
        self.assertIsInstance(json.loads(r.body), list)

    def test_close(self):
        self.fault(mode="close")
        with self.assertRaises((http.client.HTTPException, ConnectionError)):
            self.get("/v1/kv/x/?recurse")

    def test_hang(self):
        self.fault(mode="hang")
        start = time.monotonic()
        with self.assertRaises(TimeoutError):  # socket.timeout
            self.get("/v1/kv/x/?recurse", timeout=1)
        self.assertGreaterEqual(time.monotonic() - start, 1)
        self.assertEqual(self.s.stats()["hanging"], 1)
        self.fault(mode="none")
        deadline = time.monotonic() + 5
        while self.s.stats()["hanging"] and time.monotonic() < deadline:
            time.sleep(0.02)
        self.assertEqual(self.s.stats()["hanging"], 0)
        self.assertEqual(self.get("/v1/kv/x/?recurse").status, 404)

    def test_paths_and_index_override(self):
        self.put("p/1")
        self.fault(mode="status500", paths="/v1/catalog/")
        self.assertEqual(self.get("/v1/kv/p/?recurse").status, 200)
        self.assertEqual(self.get("/v1/catalog/service/web").status, 500)
        # /_test/ is never faulted
        self.fault(mode="status500", paths="/")
        self.assertEqual(self.get("/_test/stats").status, 200)
        self.fault(mode="none", index_override=3)
        r = self.get("/v1/kv/p/?recurse")
        self.assertEqual((r.status, r.index), (200, 3))
        self.assertEqual(self.get("/_test/fault").json()["index_override"], 3)
        self.fault(mode="none")
        self.assertGreater(self.get("/v1/kv/p/?recurse").index, 3)
        self.assertEqual(self.s.request("PUT", "/_test/fault", b'{"mode":"bogus"}').status, 400)
        self.assertEqual(self.s.request("PUT", "/_test/fault", b"{bad").status, 400)

    def test_stats(self):
        self.put("st/1")
        self.get("/v1/kv/st/?recurse")
        self.get("/v1/kv/st/?recurse&index=0")
        self.s.stats()
        stats = self.s.stats()
        self.assertEqual(stats["requests"], 3)  # /_test/ is not counted
        self.assertEqual(stats["by_path"], {"/v1/kv/st/1": 1, "/v1/kv/st/": 2})
        self.assertEqual(stats["blocking"], 0)
        # the format other tests match with a regex
        self.assertIn(b'"blocking": 0', self.get("/_test/stats").body)
        self.s.request("POST", "/_test/reset")
        self.assertEqual(self.s.stats()["requests"], 0)

    def test_stats_count_open_connections(self):
        def settle(want):
            deadline = time.time() + 5
            while time.time() < deadline:
                # the stats request's own connection is open while it answers
                if self.s.stats()["connections"] == want + 1:
                    return True
                time.sleep(0.02)
            return False

        self.assertTrue(settle(0))
        clients = [socket.create_connection(("127.0.0.1", self.s.port)) for _ in range(3)]
        try:
            self.assertTrue(settle(3), self.s.stats())
        finally:
            for c in clients:
                c.close()
        self.assertTrue(settle(0), self.s.stats())


class Ipv6Tests(unittest.TestCase):
    def test_listens_on_ipv6_loopback(self):
        s = Server("--host", "::1")
        try:
            self.assertEqual(s.host, "::1")
            self.assertEqual(s.request("PUT", "/v1/kv/six/[::1]:80").status, 200)
            r = s.request("GET", "/v1/kv/six/?recurse")
            self.assertEqual([e["Key"] for e in r.json()], ["six/[::1]:80"])
        finally:
            s.stop()


class OptionsTests(unittest.TestCase):
    """A server of its own: --token, --max-wait, --verbose."""

    TOKEN = "s3cr3t-t0ken"

    @classmethod
    def setUpClass(cls):
        cls.s = Server("--token", cls.TOKEN, "--max-wait", "0.3", "--verbose")

    def test_token(self):
        s = self.s
        r = s.request("GET", "/v1/kv/t/?recurse")
        self.assertEqual((r.status, r.body), (403, b"Permission denied"))
        r = s.request("GET", "/v1/kv/t/?recurse", headers={"X-Consul-Token": "wrong"})
        self.assertEqual((r.status, r.body), (403, b"Permission denied"))
        self.assertEqual(s.request("PUT", "/v1/kv/t/1", b"x").status, 403)
        ok = {"X-Consul-Token": self.TOKEN}
        self.assertEqual(s.request("PUT", "/v1/kv/t/1", b"x", headers=ok).status, 200)
        self.assertEqual(s.request("GET", "/v1/kv/t/?recurse", headers=ok).status, 200)
        self.assertEqual(s.request("GET", "/v1/kv/t/?recurse&token=" + self.TOKEN).status, 200)
        bearer = {"Authorization": "Bearer " + self.TOKEN}
        self.assertEqual(s.request("GET", "/v1/kv/t/?recurse", headers=bearer).status, 200)
        # the test controls and /v1/status need no token
        self.assertEqual(s.request("GET", "/_test/stats").status, 200)
        self.assertEqual(s.request("GET", "/v1/status/leader").status, 200)

    def test_max_wait_caps_the_default_wait(self):
        ok = {"X-Consul-Token": self.TOKEN}
        first = self.s.request("GET", "/v1/kv/w/?recurse", headers=ok)
        start = time.monotonic()
        r = self.s.request("GET", "/v1/kv/w/?recurse&index=%d" % first.index, headers=ok)
        elapsed = time.monotonic() - start
        self.assertEqual(r.status, 404)
        self.assertGreaterEqual(elapsed, 0.3)
        self.assertLess(elapsed, 0.3 + SLACK)

    @classmethod
    def tearDownClass(cls):
        cls.s.request("GET", "/v1/kv/t/?recurse&token=" + cls.TOKEN)  # logged, masked
        code = cls.s.stop()
        assert code == 0, code
        assert "GET /v1/kv/t/?recurse" in cls.s.stderr_text, cls.s.stderr_text
        assert cls.TOKEN not in cls.s.stderr_text, "the token was logged"


class LifecycleTests(unittest.TestCase):
    def test_sigterm_exits_cleanly_with_requests_held(self):
        s = Server()
        s.request("PUT", "/_test/fault", json.dumps({"mode": "hang", "paths": "/v1/kv/hang"}))
        threads = [in_thread(lambda: s.request("GET", "/v1/kv/x?index=%d&wait=1m" % (1 << 40), timeout=10))[0],
                   in_thread(lambda: s.request("GET", "/v1/kv/hang", timeout=10))[0]]
        s.wait_blocking(1)
        start = time.monotonic()
        self.assertEqual(s.stop(signal.SIGTERM), 0)
        self.assertLess(time.monotonic() - start, 5)
        for t in threads:
            t.join(10)

    def test_sigint_exits_cleanly(self):
        s = Server()
        self.assertEqual(s.stop(signal.SIGINT), 0)
        self.assertEqual(s.stderr_text, "")


if __name__ == "__main__":
    unittest.main()

"""The Consul stand-in follows Consul's documented HTTP semantics.

Run: python3 -m unittest discover -s t/registry -p 'test_*.py'
"""

import base64
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))


class Server:
    def __init__(self, *args):
        self.proc = subprocess.Popen(
            [sys.executable, os.path.join(HERE, "consul_standin.py"), "--port", "0", *args],
            stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        assert line.startswith("listening "), line
        self.port = int(line.rsplit(":", 1)[1])

    def request(self, method, path, body=None, headers=None, timeout=10):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            r = conn.getresponse()
            return r.status, dict(r.getheaders()), r.read()
        finally:
            conn.close()

    def json(self, method, path, body=None, **kw):
        status, headers, data = self.request(method, path, body, **kw)
        return status, headers, (json.loads(data) if data else None)

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(10)
        self.proc.stdout.close()
        return code


class ConsulStandin(unittest.TestCase):
    def setUp(self):
        self.s = Server()

    def tearDown(self):
        self.s.stop()

    def put(self, key, value=b""):
        status, _, body = self.s.request("PUT", "/v1/kv/" + key, value)
        self.assertEqual((status, body), (200, b"true"))

    def test_kv_put_get_recurse_keys(self):
        self.put("up/test/127.0.0.1:8080", b'{"weight":2}')
        self.put("up/test/127.0.0.1:8081")
        self.put("up/test01/127.0.0.1:9")
        status, headers, items = self.s.json("GET", "/v1/kv/up/test/?recurse")
        self.assertEqual(status, 200)
        self.assertEqual([i["Key"] for i in items], ["up/test/127.0.0.1:8080", "up/test/127.0.0.1:8081"])
        self.assertEqual(base64.b64decode(items[0]["Value"]), b'{"weight":2}')
        self.assertEqual(base64.b64decode(items[1]["Value"]), b"")
        self.assertEqual(int(headers["X-Consul-Index"]), max(i["ModifyIndex"] for i in items))
        # a prefix without the slash also matches test01, as in Consul
        _, _, items = self.s.json("GET", "/v1/kv/up/test?recurse")
        self.assertEqual(len(items), 3)
        _, _, keys = self.s.json("GET", "/v1/kv/up/?keys&separator=/")
        self.assertEqual(keys, ["up/test/", "up/test01/"])
        status, _, items = self.s.json("GET", "/v1/kv/up/test/127.0.0.1:8080")
        self.assertEqual((status, len(items)), (200, 1))

    def test_empty_prefix_is_404_with_an_index(self):
        status, headers, body = self.s.request("GET", "/v1/kv/nothing/?recurse")
        self.assertEqual((status, body), (404, b""))
        self.assertIn("X-Consul-Index", headers)
        self.put("x/a:1")
        self.s.request("DELETE", "/v1/kv/x/?recurse")
        status, headers2, _ = self.s.request("GET", "/v1/kv/x/?recurse")
        self.assertEqual(status, 404)
        _, headers3, _ = self.s.request("GET", "/v1/kv/nothing/?recurse")
        self.assertGreater(int(headers2["X-Consul-Index"]), 1, "a deletion raises the prefix index")

    def test_delete_one_and_recurse(self):
        self.put("d/a")
        self.put("d/b")
        self.s.request("DELETE", "/v1/kv/d/a")
        _, _, items = self.s.json("GET", "/v1/kv/d/?recurse")
        self.assertEqual([i["Key"] for i in items], ["d/b"])
        self.s.request("DELETE", "/v1/kv/d/?recurse")
        self.assertEqual(self.s.request("GET", "/v1/kv/d/?recurse")[0], 404)

    def test_cas(self):
        self.assertEqual(self.s.request("PUT", "/v1/kv/c?cas=0", b"1")[2], b"true")
        self.assertEqual(self.s.request("PUT", "/v1/kv/c?cas=0", b"2")[2], b"false")
        _, _, items = self.s.json("GET", "/v1/kv/c")
        idx = items[0]["ModifyIndex"]
        self.assertEqual(self.s.request("PUT", "/v1/kv/c?cas=%d" % idx, b"3")[2], b"true")

    def blocked_get(self, path, result):
        start = time.monotonic()
        result.append((self.s.request("GET", path), time.monotonic() - start))

    def test_blocking_query_wakes_on_a_change_under_the_prefix_only(self):
        self.put("b/one")
        _, headers, _ = self.s.request("GET", "/v1/kv/b/?recurse")
        index = int(headers["X-Consul-Index"])
        # stale index: at once
        start = time.monotonic()
        self.s.request("GET", "/v1/kv/b/?recurse&index=%d&wait=5s" % (index - 1))
        self.assertLess(time.monotonic() - start, 0.5)
        result = []
        t = threading.Thread(target=self.blocked_get,
                             args=("/v1/kv/b/?recurse&index=%d&wait=10s" % index, result))
        t.start()
        time.sleep(0.4)
        self.put("other/x")  # not under the prefix: must not wake it
        time.sleep(0.4)
        self.assertEqual(result, [])
        self.put("b/two")
        t.join(5)
        (status, headers2, body), elapsed = result[0]
        self.assertEqual(status, 200)
        self.assertGreater(int(headers2["X-Consul-Index"]), index)
        self.assertGreaterEqual(elapsed, 0.8)
        self.assertEqual(len(json.loads(body)), 2)

    def test_blocking_query_ends_at_wait_with_the_same_index(self):
        self.put("w/a")
        _, headers, _ = self.s.request("GET", "/v1/kv/w/?recurse")
        index = headers["X-Consul-Index"]
        start = time.monotonic()
        _, headers2, _ = self.s.request("GET", "/v1/kv/w/?recurse&index=%s&wait=1s" % index)
        elapsed = time.monotonic() - start
        self.assertGreaterEqual(elapsed, 1.0)
        self.assertLess(elapsed, 1.0 + 1 / 16 + 0.5)
        self.assertEqual(headers2["X-Consul-Index"], index)
        start = time.monotonic()
        self.s.request("GET", "/v1/kv/w/?recurse&index=0&wait=5s")
        self.assertLess(time.monotonic() - start, 0.5, "index 0 never blocks")
        self.assertEqual(self.s.request("GET", "/v1/kv/w/?index=abc")[0], 400)

    def register(self, node, sid, port, status="passing", address="", tags=()):
        body = {"Node": node, "Address": "127.0.0.%d" % (1 + len(node)),
                "Service": {"ID": sid, "Service": "web", "Address": address, "Port": port,
                            "Tags": list(tags)},
                "Checks": [{"CheckID": "c-" + sid, "Name": "c", "Status": status, "ServiceID": sid}]}
        self.assertEqual(self.s.request("PUT", "/v1/catalog/register", json.dumps(body))[0], 200)

    def test_catalog_and_health(self):
        self.assertEqual(self.s.json("GET", "/v1/catalog/service/web")[2], [])
        self.register("n1", "a", 80, tags=["weight=2"])
        self.register("n2", "b", 81, status="critical", address="10.0.0.9")
        _, headers, items = self.s.json("GET", "/v1/catalog/service/web")
        self.assertEqual([(i["ServiceAddress"], i["ServicePort"]) for i in items], [("", 80), ("10.0.0.9", 81)])
        self.assertEqual(items[0]["Address"], "127.0.0.3")
        _, _, health = self.s.json("GET", "/v1/health/service/web")
        self.assertEqual([h["Checks"][0]["Status"] for h in health], ["passing", "critical"])
        _, _, passing = self.s.json("GET", "/v1/health/service/web?passing")
        self.assertEqual([h["Service"]["ID"] for h in passing], ["a"])
        # a check status change wakes a blocked health query
        index = int(headers["X-Consul-Index"])
        result = []
        t = threading.Thread(target=self.blocked_get,
                             args=("/v1/health/service/web?index=%d&wait=10s" % index, result))
        t.start()
        time.sleep(0.3)
        self.register("n2", "b", 81, status="passing", address="10.0.0.9")
        t.join(5)
        (status, _, body), _ = result[0]
        self.assertEqual([h["Checks"][0]["Status"] for h in json.loads(body)], ["passing", "passing"])
        self.s.request("PUT", "/v1/catalog/deregister", json.dumps({"Node": "n1", "ServiceID": "a"}))
        _, headers2, items = self.s.json("GET", "/v1/catalog/service/web")
        self.assertEqual([i["ServiceID"] for i in items], ["b"])
        self.assertGreater(int(headers2["X-Consul-Index"]), index)

    def test_faults_and_stats(self):
        self.put("f/a")
        self.s.request("PUT", "/_test/fault", json.dumps({"mode": "garbage"}))
        self.assertEqual(self.s.request("GET", "/v1/kv/f/?recurse")[2], b"<html>not json")
        self.s.request("PUT", "/_test/fault", json.dumps({"mode": "status500"}))
        self.assertEqual(self.s.request("GET", "/v1/kv/f/?recurse")[0], 500)
        self.s.request("PUT", "/_test/fault", json.dumps({"mode": "huge", "size": 100000}))
        self.assertGreaterEqual(len(self.s.request("GET", "/v1/kv/f/?recurse")[2]), 99000)
        self.s.request("PUT", "/_test/fault", json.dumps({"mode": "close"}))
        with self.assertRaises((http.client.HTTPException, ConnectionError)):
            self.s.request("GET", "/v1/kv/f/?recurse")
        self.s.request("PUT", "/_test/fault", json.dumps({"mode": "hang"}))
        with self.assertRaises(socket.timeout):
            self.s.request("GET", "/v1/kv/f/?recurse", timeout=1)
        self.s.request("PUT", "/_test/fault", json.dumps({"mode": "none", "index_override": 3}))
        status, headers, _ = self.s.request("GET", "/v1/kv/f/?recurse")
        self.assertEqual((status, headers["X-Consul-Index"]), (200, "3"))
        _, _, stats = self.s.json("GET", "/_test/stats")
        self.assertGreaterEqual(stats["by_path"]["/v1/kv/f/"], 6)

    def test_sigterm_exits_cleanly(self):
        self.assertEqual(self.s.stop(), 0)
        self.s = Server()


class Token(unittest.TestCase):
    def test_token_required(self):
        s = Server("--token", "s3cret")
        try:
            self.assertEqual(s.request("GET", "/v1/kv/a?recurse")[:3:2], (403, b"Permission denied"))
            self.assertEqual(s.request("GET", "/v1/kv/a?recurse", headers={"X-Consul-Token": "bad"})[0], 403)
            self.assertEqual(s.request("GET", "/v1/kv/a?recurse", headers={"X-Consul-Token": "s3cret"})[0], 404)
        finally:
            self.assertEqual(s.stop(), 0)


if __name__ == "__main__":
    unittest.main()

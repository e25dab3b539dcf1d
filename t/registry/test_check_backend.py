"""Tests of the health check backend (check_backend.py): each proto and mode
against the real process, on real sockets, with the bytes the C check module
(yaoweibin/nginx_upstream_check_module) sends.

Run from the repository root:
    python3 -m unittest discover -s t/registry -p 'test_*.py' -v
"""

import http.client
import json
import os
import select
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.dont_write_bytecode = True

QUIET = 0.3  # how long "nothing comes" is watched for

# The check module's ssl_hello probe, byte for byte: the data of
# `sslv3_client_hello_pkt` in yaoweibin/nginx_upstream_check_module
# ngx_http_upstream_check_module.c at e538034 (lines 596-624; its random is
# NGX_SSL_RANDOM, line 588; the "Unix GMT Time" stays zero, the module never
# fills it). Record TLS 1.0, hello TLS 1.2, 13 suites, two extensions.
C_CLIENT_HELLO = (
    b"\x16\x03\x01\x00\x6f"                  # handshake record, TLS 1.0, 111 bytes
    b"\x01\x00\x00\x6b"                      # ClientHello, 107 bytes
    b"\x03\x03"                              # TLS 1.2
    b"\x00\x00\x00\x00"                      # gmt time
    b"NGX_HTTP_CHECK_SSL_HELLO\n\n\n\n"      # 28 random bytes
    b"\x00"                                  # no session id
    b"\x00\x1a"                              # 13 cipher suites
    b"\xc0\x2b\xc0\x2f\xcc\xa9\xcc\xa8\xc0\x0a\xc0\x09\xc0\x13\xc0\x14"
    b"\x00\x33\x00\x39\x00\x2f\x00\x35\x00\x0a"
    b"\x01\x00"                              # null compression
    b"\x00\x28"                              # extensions, 40 bytes
    b"\x00\x0a\x00\x08\x00\x06\x00\x17\x00\x18\x00\x19"  # supported groups
    b"\x00\x0d\x00\x18\x00\x16"              # signature algorithms
    b"\x04\x01\x05\x01\x06\x01\x02\x01\x04\x03\x05\x03\x06\x03\x02\x03"
    b"\x05\x02\x04\x02\x02\x02")
C_SUITES = {C_CLIENT_HELLO[46 + 2 * i:48 + 2 * i] for i in range(13)}
# sizeof(ngx_ssl_server_hello_t) on LP64: the module needs this much
SERVER_HELLO_MIN = 47

AJP_CPING = b"\x12\x34\x00\x01\x0a"  # what the module sends (5 bytes)
AJP_CPONG = b"\x41\x42\x00\x01\x09"


def fcgi_record(rtype, req_id, content=b"", padding=0):
    return struct.pack(">BBHHBB", 1, rtype, req_id, len(content), padding, 0) + content + b"\0" * padding


def fcgi_pairs(params):
    out = b""
    for k, v in params:
        for s in (k, v):
            out += bytes([len(s)]) if len(s) < 128 else struct.pack(">I", len(s) | 0x80000000)
        out += k + v
    return out


def c_fastcgi_request(params=((b"REQUEST_METHOD", b"GET"), (b"REQUEST_URI", b"/"),
                              (b"SCRIPT_FILENAME", b"index.php"))):
    """What the check module sends (Y:3445-3547): BEGIN_REQUEST (responder,
    no KEEP_CONN), PARAMS padded to 8, empty PARAMS, then the 8 bytes of a
    STDIN header it never fills in (zeros here)."""
    body = fcgi_pairs(params)
    pad = (8 - len(body) % 8) % 8
    return (fcgi_record(1, 1, b"\x00\x01\x00" + b"\0" * 5)
            + fcgi_record(4, 1, body, pad) + fcgi_record(4, 1) + b"\0" * 8)


def fcgi_parse(data):
    """[(type, request id, content)] of the whole records in data."""
    out = []
    while len(data) >= 8:
        version, rtype, req_id, clen, plen = struct.unpack(">BBHHB", data[:7])
        assert version == 1, data
        if len(data) < 8 + clen + plen:
            break
        out.append((rtype, req_id, data[8:8 + clen]))
        data = data[8 + clen + plen:]
    return out


class Backend:
    """check_backend.py as a subprocess on free ports."""

    def __init__(self, *args):
        self.stderr = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            [sys.executable, os.path.join(HERE, "check_backend.py"), "--port", "0", *args],
            stdout=subprocess.PIPE, stderr=self.stderr)
        out, deadline = b"", time.time() + 10
        fd = self.proc.stdout.fileno()  # raw reads: no buffered lines for select to miss
        while out.count(b"\n") < 2 and time.time() < deadline:
            if select.select([fd], [], [], max(0, deadline - time.time()))[0]:
                chunk = os.read(fd, 4096)
                if not chunk:
                    break
                out += chunk
        lines = (out.decode().split("\n") + ["", ""])[:2]
        if not (lines[0].startswith("listening ") and lines[1].startswith("control ")):
            self.proc.kill()
            self.proc.wait()
            self.stderr.seek(0)
            raise RuntimeError("the backend did not start: %r %r" % (lines, self.stderr.read()))
        self.port = int(lines[0].split()[1].rsplit(":", 1)[1])
        self.control_port = int(lines[1].split()[1].rsplit(":", 1)[1])

    def control(self, method, path, body=None):
        c = http.client.HTTPConnection("127.0.0.1", self.control_port, timeout=5)
        try:
            c.request(method, path, body=body)
            r = c.getresponse()
            return r.status, r.read().decode()
        finally:
            c.close()

    def mode(self, mode):
        status, body = self.control("PUT", "/mode", mode)
        assert status == 200, (status, body)

    def stats(self, reset=False):
        return json.loads(self.control("GET", "/stats" + ("?reset=1" if reset else ""))[1])

    def log(self, reset=False):
        return json.loads(self.control("GET", "/log" + ("?reset=1" if reset else ""))[1])

    def connect(self, timeout=2):
        return socket.create_connection(("127.0.0.1", self.port), timeout=timeout)

    def stop(self, sig=signal.SIGTERM):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                code = self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                code = self.proc.wait()
        else:
            code = self.proc.returncode
        self.proc.stdout.close()
        self.stderr.close()
        return code


def read_until_close(sock, timeout=2):
    """Everything the peer sends until it closes (a reset counts as a close)."""
    sock.settimeout(timeout)
    data = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            return data
        if not chunk:
            return data
        data += chunk


def read_exact(sock, n, timeout=2):
    sock.settimeout(timeout)
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise EOFError("closed after %r" % data)
        data += chunk
    return data


def quiet(sock, seconds=QUIET):
    """True when the peer sends nothing and keeps the connection open."""
    sock.settimeout(seconds)
    try:
        return sock.recv(1) is None
    except socket.timeout:
        return True
    except ConnectionResetError:
        return False


def closed_at_once(sock):
    """True when the peer closes without sending anything."""
    sock.settimeout(2)
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False


def read_http_response(sock, timeout=2):
    """(status, headers, body) of one response; headers lower-cased."""
    sock.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise EOFError("closed after %r" % data)
        data += chunk
    head, rest = data.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    headers = dict((k.strip().lower(), v.strip()) for k, v in
                   (line.split(":", 1) for line in lines[1:]))
    return lines[0], headers, rest


class CommonCases:
    """Modes every proto has, checked on each (mixed into each proto's case)."""

    def test_close_mode(self):
        self.b.mode("close")
        with self.b.connect() as s:
            self.assertTrue(closed_at_once(s))
        st = self.b.stats()
        self.assertEqual((st["connections"], st["requests"]), (1, 0))

    def test_refuse_then_listen_again(self):
        held = self.b.connect()
        self.b.mode("refuse")
        with self.assertRaises(ConnectionRefusedError):
            self.b.connect()
        read_until_close(held)  # the open ones are closed too (no timeout)
        held.close()
        self.assertEqual(self.b.stats()["open"], 0)
        self.b.mode("ok")
        with self.b.connect():
            pass
        self.assertEqual(self.b.control("GET", "/mode"), (200, "ok\n"))

    def test_unknown_mode(self):
        status, body = self.b.control("PUT", "/mode", "nonsense")
        self.assertEqual(status, 400)
        self.assertIn("modes:", body)
        self.assertEqual(self.b.control("GET", "/mode")[1], "ok\n")


class ProtoCase(unittest.TestCase):
    args = ()

    @classmethod
    def setUpClass(cls):
        cls.b = Backend(*cls.args)

    @classmethod
    def tearDownClass(cls):
        cls.b.stop()

    def setUp(self):
        self.b.mode("ok")
        self.b.control("POST", "/reset")


class HttpTest(CommonCases, ProtoCase):
    args = ("--proto", "http", "--name", "one")

    def test_http10_probe(self):
        with self.b.connect() as s:
            s.sendall(b"GET / HTTP/1.0\r\n\r\n")
            data = read_until_close(s)
        self.assertTrue(data.startswith(b"HTTP/1.1 200 OK\r\n"), data)
        head, body = data.split(b"\r\n\r\n", 1)
        self.assertEqual(body, b"one\n")
        self.assertIn(b"Content-Length: 4\r\n", head)
        self.assertIn(b"\r\nConnection: close", head)
        self.assertIn(b"X-Backend: one\r\n", head)
        st = self.b.stats()
        self.assertEqual((st["connections"], st["requests"]), (1, 1))
        self.assertEqual(st["by_request"], {"GET / HTTP/1.0": 1})
        self.assertEqual(st["probes_by_peer"], {"127.0.0.1": 1})
        self.assertEqual(st["last_request"], "GET / HTTP/1.0\r\n\r\n")

    def test_http11_keepalive(self):
        with self.b.connect() as s:
            for req in (b"HEAD / HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\n\r\n",
                        b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n"):
                s.sendall(req)
                line, headers, rest = read_http_response(s)
                self.assertEqual(line, "HTTP/1.1 200 OK")
                self.assertEqual(headers["connection"], "keep-alive")
                self.assertEqual(headers["content-length"], "4")
                if req.startswith(b"GET"):
                    rest += read_exact(s, 4 - len(rest))
                    self.assertEqual(rest, b"one\n")
                else:
                    self.assertEqual(rest, b"")  # HEAD: no body
            self.assertTrue(quiet(s))  # still open
        st = self.b.stats()
        self.assertEqual((st["connections"], st["requests"]), (1, 2))

    def test_http11_close_and_http10_keepalive(self):
        with self.b.connect() as s:
            s.sendall(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            _, headers, _ = read_http_response(s)
            self.assertEqual(headers["connection"], "keep-alive")
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            data = read_until_close(s)
        self.assertIn(b"Connection: close", data)
        self.assertTrue(data.endswith(b"one\n"))

    def test_request_bodies_and_pipelining(self):
        with self.b.connect() as s:
            s.sendall(b"POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
                      b"PUT /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                      b"3\r\nabc\r\n0\r\n\r\n"
                      b"DELETE /d HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            data = read_until_close(s)
        self.assertEqual(data.count(b"HTTP/1.1 200 OK"), 3)
        self.assertEqual(self.b.stats()["by_request"],
                         {"POST /p HTTP/1.1": 1, "PUT /c HTTP/1.1": 1, "DELETE /d HTTP/1.1": 1})

    def test_http_client(self):
        c = http.client.HTTPConnection("127.0.0.1", self.b.port, timeout=2)
        for _ in range(3):
            c.request("GET", "/")
            r = c.getresponse()
            self.assertEqual((r.status, r.read()), (200, b"one\n"))
        c.close()
        self.assertEqual(self.b.stats()["connections"], 1)

    def test_status_modes(self):
        for mode, line in (("500", b"HTTP/1.1 500 Internal Server Error\r\n"),
                           ("404", b"HTTP/1.1 404 Not Found\r\n"),
                           ("302", b"HTTP/1.1 302 Found\r\n")):
            self.b.mode(mode)
            with self.b.connect() as s:
                s.sendall(b"HEAD / HTTP/1.0\r\n\r\n")
                data = read_until_close(s)
            self.assertTrue(data.startswith(line), data)
            self.assertTrue(data.endswith(b"\r\n\r\n"))  # HEAD

    def test_mode_applies_to_open_connections(self):
        with self.b.connect() as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            self.assertEqual(read_http_response(s)[0], "HTTP/1.1 200 OK")
            self.b.mode("503")
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            self.assertEqual(read_http_response(s)[0], "HTTP/1.1 503 Service Unavailable")
            self.b.mode("close")
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            self.assertEqual(read_until_close(s), b"")

    def test_hang(self):
        self.b.mode("hang")
        with self.b.connect() as s:
            s.sendall(b"GET / HTTP/1.0\r\n\r\n")
            self.assertTrue(quiet(s))
            self.assertEqual(self.b.stats()["requests"], 1)  # read, not answered

    def test_bad_request(self):
        with self.b.connect() as s:
            s.sendall(b"nonsense\r\n\r\n")
            self.assertTrue(read_until_close(s).startswith(b"HTTP/1.1 400 "))

    def test_ssl_only_mode_rejected(self):
        self.assertEqual(self.b.control("PUT", "/mode", "bad")[0], 400)
        self.assertEqual(self.b.control("PUT", "/mode", "600")[0], 400)

    def test_stats_reset_and_log(self):
        t0 = time.time()
        for _ in range(3):
            with self.b.connect() as s:
                s.sendall(b"GET / HTTP/1.0\r\n\r\n")
                read_until_close(s)
        log = self.b.log()
        self.assertEqual([k for _, k in log], ["connect", "request"] * 3)
        times = [t for t, _ in log]
        self.assertEqual(times, sorted(times))
        self.assertTrue(t0 - 1 <= times[0] <= time.time() + 1)
        before = self.b.stats(reset=True)
        self.assertEqual((before["connections"], before["requests"]), (3, 3))
        after = self.b.stats()
        self.assertEqual((after["connections"], after["requests"], after["by_request"]), (0, 0, {}))
        self.assertEqual(self.b.log(), [])
        with self.b.connect() as s:
            s.sendall(b"GET / HTTP/1.0\r\n\r\n")
            read_until_close(s)
        self.assertEqual(len(self.b.log(reset=True)), 2)
        self.assertEqual(self.b.log(), [])

    def test_control_unknown_path(self):
        self.assertEqual(self.b.control("GET", "/nothing")[0], 404)


class StartupTest(unittest.TestCase):
    def test_default_name_start_refused_and_sigterm(self):
        b = Backend("--proto", "http", "--mode", "refuse")
        try:
            with self.assertRaises(ConnectionRefusedError):
                b.connect()
            b.mode("ok")
            with b.connect() as s:
                s.sendall(b"GET / HTTP/1.0\r\n\r\n")
                self.assertTrue(read_until_close(s).endswith(b"127.0.0.1:%d\n" % b.port))
            self.assertEqual(b.stats()["name"], "127.0.0.1:%d" % b.port)
        finally:
            self.assertEqual(b.stop(), 0)

    def test_fixed_ports(self):
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
        probe.close()
        proc = subprocess.run(
            [sys.executable, os.path.join(HERE, "check_backend.py"), "--proto", "tcp",
             "--port", "0", "--mode", "wrong"], capture_output=True, timeout=10)
        self.assertEqual(proc.returncode, 2)  # argparse's usage error
        b = Backend("--proto", "tcp", "--control-port", str(port))
        try:
            self.assertEqual(b.control_port, port)
        finally:
            b.stop()


class TcpTest(CommonCases, ProtoCase):
    args = ("--proto", "tcp")

    def test_ok_holds_quietly(self):
        with self.b.connect() as s:
            self.assertTrue(quiet(s))
            s.sendall(b"anything")
            self.assertTrue(quiet(s))
            # the check module's peek: nothing to read, but not closed
            s.setblocking(False)
            with self.assertRaises(BlockingIOError):
                s.recv(1, socket.MSG_PEEK)
        st = self.b.stats()
        self.assertEqual((st["connections"], st["requests"]), (1, 0))

    def test_hang_is_ok(self):
        self.b.mode("hang")
        with self.b.connect() as s:
            self.assertTrue(quiet(s))


class MysqlTest(CommonCases, ProtoCase):
    args = ("--proto", "mysql")

    def greeting(self):
        with self.b.connect() as s:
            head = read_exact(s, 4)
            payload = read_exact(s, int.from_bytes(head[:3], "little"))
            self.assertTrue(quiet(s))  # held open after it
        return head, payload

    def test_greeting(self):
        head, payload = self.greeting()
        self.assertEqual(head[3], 0)  # packet number: what the module checks
        self.assertEqual(payload[0], 10)  # protocol v10
        version, rest = payload[1:].split(b"\0", 1)
        self.assertTrue(version.startswith(b"5.7."))
        # thread id 4, salt 8, filler, caps 2, charset, status 2, caps 2,
        # auth data length, 10 reserved, salt 12 + NUL, plugin name
        self.assertEqual(rest[12], 0)
        caps = struct.unpack("<H", rest[13:15])[0] | struct.unpack("<H", rest[18:20])[0] << 16
        self.assertTrue(caps & 0x200)  # PROTOCOL_41
        self.assertEqual(rest[20], 21)
        self.assertEqual(rest[-22:], b"mysql_native_password\0")
        self.assertEqual(len(rest), 4 + 8 + 1 + 2 + 1 + 2 + 2 + 1 + 10 + 13 + 22)
        self.assertEqual(self.b.stats()["requests"], 1)

    def test_bad_packet_number(self):
        self.b.mode("bad")
        head, payload = self.greeting()
        self.assertEqual(head[3], 1)
        self.assertEqual(payload[0], 10)

    def test_hang(self):
        self.b.mode("hang")
        with self.b.connect() as s:
            self.assertTrue(quiet(s))


class AjpTest(CommonCases, ProtoCase):
    args = ("--proto", "ajp")

    def test_cping_cpong(self):
        with self.b.connect() as s:
            for _ in range(2):
                s.sendall(AJP_CPING)
                self.assertEqual(read_exact(s, 5), AJP_CPONG)
            self.assertTrue(quiet(s))
        st = self.b.stats()
        self.assertEqual((st["connections"], st["requests"], st["by_request"]), (1, 2, {"cping": 2}))

    def test_bad(self):
        self.b.mode("bad")
        with self.b.connect() as s:
            s.sendall(AJP_CPING)
            reply = read_exact(s, 6)
        self.assertNotEqual(reply[:5], AJP_CPONG)
        self.assertEqual(reply[:2], b"AB")

    def test_hang(self):
        self.b.mode("hang")
        with self.b.connect() as s:
            s.sendall(AJP_CPING)
            self.assertTrue(quiet(s))

    def test_not_ajp(self):
        with self.b.connect() as s:
            s.sendall(b"GET / HTTP/1.0\r\n\r\n")
            self.assertEqual(read_until_close(s), b"")


class FastcgiTest(CommonCases, ProtoCase):
    args = ("--proto", "fastcgi")

    def test_c_module_probe(self):
        with self.b.connect() as s:
            s.sendall(c_fastcgi_request())
            # The module parses STDOUT only if more bytes follow it in the
            # same read: the answer must come in one piece.
            select.select([s], [], [], 2)
            time.sleep(0.05)
            first = s.recv(65536)
            rest = read_until_close(s)  # no KEEP_CONN: closed after
        self.assertEqual(rest, b"")
        recs = fcgi_parse(first)
        self.assertEqual([(t, i) for t, i, _ in recs], [(6, 1), (6, 1), (3, 1)])
        self.assertEqual(recs[0][2], b"Status: 200 OK\r\nContent-Type: text/plain\r\n\r\nok")
        self.assertEqual(recs[1][2], b"")
        self.assertEqual(recs[2][2], b"\0" * 8)  # app status 0, REQUEST_COMPLETE
        st = self.b.stats()
        self.assertEqual(st["last_params"], {"REQUEST_METHOD": "GET", "REQUEST_URI": "/",
                                             "SCRIPT_FILENAME": "index.php"})
        self.assertEqual(st["by_request"], {"GET /": 1})

    def test_keep_conn_with_stdin(self):
        long_value = b"v" * 300  # a 4-byte length
        with self.b.connect() as s:
            for req_id, uri in ((1, b"/a"), (2, b"/b")):
                s.sendall(fcgi_record(1, req_id, b"\x00\x01\x01" + b"\0" * 5)
                          + fcgi_record(4, req_id, fcgi_pairs([(b"REQUEST_METHOD", b"POST"),
                                                               (b"REQUEST_URI", uri)]))
                          + fcgi_record(4, req_id, fcgi_pairs([(b"LONG", long_value)]))
                          + fcgi_record(4, req_id)
                          + fcgi_record(5, req_id, b"body") + fcgi_record(5, req_id))
                data = b""
                while not any(t == 3 for t, _, _ in fcgi_parse(data)):
                    data += read_exact(s, 1)
                self.assertEqual([(t, i) for t, i, _ in fcgi_parse(data)],
                                 [(6, req_id), (6, req_id), (3, req_id)])
            self.assertTrue(quiet(s))  # KEEP_CONN: still open
        st = self.b.stats()
        self.assertEqual(st["by_request"], {"POST /a": 1, "POST /b": 1})
        self.assertEqual(st["last_params"]["LONG"], "v" * 300)
        self.assertEqual(st["connections"], 1)

    def test_status_500(self):
        self.b.mode("500")
        with self.b.connect() as s:
            s.sendall(c_fastcgi_request())
            recs = fcgi_parse(read_until_close(s))
        self.assertTrue(recs[0][2].startswith(b"Status: 500 Internal Server Error\r\n"), recs)

    def test_stderr(self):
        self.b.mode("stderr")
        with self.b.connect() as s:
            s.sendall(c_fastcgi_request())
            recs = fcgi_parse(read_until_close(s))
        self.assertEqual([t for t, _, _ in recs], [7, 6, 6, 3])

    def test_hang(self):
        self.b.mode("hang")
        with self.b.connect() as s:
            s.sendall(c_fastcgi_request())
            self.assertTrue(quiet(s))
        self.assertEqual(self.b.stats()["requests"], 1)


class SslTest(CommonCases, ProtoCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.certs = os.path.join(cls.tmp.name, "certs")
        subprocess.run(["bash", os.path.join(ROOT, "t", "lib", "make-certs.sh"), cls.certs],
                       check=True, timeout=60)
        cls.args = ("--proto", "ssl", "--name", "secure",
                    "--cert", os.path.join(cls.certs, "server.pem"),
                    "--key", os.path.join(cls.certs, "server.key"))
        super().setUpClass()

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        cls.tmp.cleanup()

    def test_c_module_client_hello(self):
        self.assertEqual(len(C_CLIENT_HELLO), 116)
        for _ in range(2):
            with self.b.connect() as s:
                s.sendall(C_CLIENT_HELLO)
                data = read_exact(s, SERVER_HELLO_MIN)  # what the module reads
                self.assertEqual(data[0], 0x16)  # handshake record
                self.assertEqual(data[5], 0x02)  # ServerHello
                self.assertEqual(data[9:11], b"\x03\x03")  # TLS 1.2, as offered
                sid_len = data[43]
                data += read_exact(s, 44 + sid_len + 2 - len(data))
                self.assertIn(data[44 + sid_len:46 + sid_len], C_SUITES)
            # the probe closes here, as the module's does
        deadline = time.time() + 2
        while self.b.stats()["handshake_failures"] < 2 and time.time() < deadline:
            time.sleep(0.02)
        st = self.b.stats()
        self.assertEqual((st["connections"], st["requests"], st["handshake_failures"],
                          st["handshakes"]), (2, 2, 2, 0))

    def test_https_request(self):
        ctx = ssl.create_default_context(cafile=os.path.join(self.certs, "ca.pem"))
        c = http.client.HTTPSConnection("127.0.0.1", self.b.port, timeout=2, context=ctx)
        for _ in range(2):
            c.request("GET", "/")
            r = c.getresponse()
            self.assertEqual((r.status, r.read()), (200, b"secure\n"))
        c.close()
        st = self.b.stats()
        self.assertEqual((st["handshakes"], st["by_request"]),
                         (1, {"hello": 1, "GET / HTTP/1.1": 2}))

    @unittest.skipUnless(shutil.which("openssl"), "no openssl")
    def test_openssl_s_client(self):
        for extra in ([], ["-tls1_2", "-cipher", "ECDHE-RSA-AES128-GCM-SHA256"]):
            p = subprocess.run(
                ["openssl", "s_client", "-connect", "127.0.0.1:%d" % self.b.port,
                 "-CAfile", os.path.join(self.certs, "ca.pem"), "-verify_return_error", "-ign_eof", *extra],
                input=b"GET / HTTP/1.0\r\n\r\n", capture_output=True, timeout=10)
            out = p.stdout.decode("latin-1")
            self.assertIn("Verify return code: 0 (ok)", out)
            self.assertIn("secure\n", out)

    def test_bad(self):
        self.b.mode("bad")
        with self.b.connect() as s:
            s.sendall(C_CLIENT_HELLO)
            data = read_until_close(s)
        self.assertTrue(data.startswith(b"HTTP/1.1 400 "), data)
        self.assertNotEqual(data[0], 0x16)

    def test_hang(self):
        self.b.mode("hang")
        with self.b.connect() as s:
            s.sendall(C_CLIENT_HELLO)
            self.assertTrue(quiet(s))


if __name__ == "__main__":
    unittest.main()

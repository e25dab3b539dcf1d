#!/usr/bin/env python3
"""A backend for the active health check tests: on one TCP port it speaks the
protocol a probe of one `check type=...` expects (the types of yaoweibin's
nginx_upstream_check_module, see ../shared/reference/health-checks.md §1.1),
and its behaviour can be switched at run time. Python 3 standard library only.

Usage:
    check_backend.py --proto http|tcp|mysql|ajp|fastcgi|ssl --port PORT
                     [--host 127.0.0.1] [--control-port 0] [--name NAME]
                     [--mode MODE] [--cert FILE --key FILE] [--verbose]

    --port 0 and --control-port 0 (the default) pick free ports. Once both
    listen, two lines are printed to stdout, in this order:
        listening 127.0.0.1:<port>
        control 127.0.0.1:<control port>
    (an IPv6 --host is printed in brackets: "listening [::1]:<port>").
    SIGTERM or SIGINT stops it (exit code 0). --name (default "host:port") is
    what the http proto answers in its bodies. --mode is the mode at start
    (default ok). --cert/--key (PEM) are required with --proto ssl.
    --verbose logs each connection and request to stderr.

Modes, per proto (every proto also has `close` and `refuse`):
    close   close each connection right after accepting it (requests on
            connections already open are closed unanswered when they come)
    refuse  stop listening: the listening socket is closed, so connects are
            refused, and the connections open are closed (as if the process
            died); any other mode listens again on the same port
    hang    accept and read, never answer (the connection is held until the
            peer closes it); for tcp the same as ok

    http     ok: every request (any method, HTTP/1.0 or 1.1, a body by
             Content-Length or chunked) is answered 200 with the body
             "NAME\\n", Content-Length set, an X-Backend: NAME header;
             keep-alive when the request asks for it (1.1 unless
             "Connection: close", 1.0 with "Connection: keep-alive").
             A status code 100..599 (e.g. 500, 404): the same answer with
             that status. So it serves probes and proxied traffic alike.
    tcp      ok: hold the connection open quietly (read and discard).
    mysql    ok: a MySQL protocol v10 initial handshake packet (packet
             number 0) on accept, then the connection is held (anything
             read is discarded). bad: the same packet with packet number 1.
    ajp      ok: each CPING (12 34 00 01 0a) is answered CPONG
             (41 42 00 01 09), on the same connection as long as the peer
             keeps it. bad: each CPING is answered with an AJP END_RESPONSE
             packet (41 42 00 02 05 00) instead.
    fastcgi  ok: a FastCGI responder: BEGIN_REQUEST, PARAMS until the empty
             PARAMS record, then it answers at once (STDIN records are read
             and ignored, before or after), in one write: STDOUT
             "Status: 200 OK\\r\\nContent-Type: text/plain\\r\\n\\r\\nok", an
             empty STDOUT, END_REQUEST (complete). FCGI_KEEP_CONN is
             honoured; without it the connection is closed after the answer.
             A status code 100..599 (e.g. 500): "Status: 500 ..." instead.
             stderr: an FCGI_STDERR record first ("check_backend: stderr
             mode"), then the 200 answer.
    ssl      ok: a real TLS server (Python's ssl module, TLS 1.2 and 1.3);
             after a completed handshake it serves HTTP inside TLS as the
             http proto's ok does. bad: answers the first bytes with a
             plain-text "HTTP/1.1 400" (as an HTTP server that is sent TLS),
             so the reply does not start with 0x16.

Control API (HTTP/1.1 on the control port; never counted):
    GET  /mode                 the current mode (text)
    PUT  /mode   body = MODE   switch; answers the new mode, or 400 with the
                               modes the proto accepts. It returns once the
                               change is in place (after `refuse`, connects
                               are refused).
    GET  /stats[?reset=1]      JSON: {"proto", "name", "mode", "port",
             "connections": accepted connections,
             "open": connections open now,
             "requests": requests read (http requests, fastcgi requests,
                 ajp CPINGs, mysql greetings sent, TLS ClientHellos seen),
                 whatever the mode made of them,
             "handshakes": TLS handshakes completed (ssl),
             "handshake_failures": TLS handshakes that failed (ssl; the
                 check module's probe closes after the ServerHello, so each
                 of its probes counts here),
             "probes_by_peer": {"<peer ip>": requests},
             "by_request": {"<http request line>", "<fastcgi
                 REQUEST_METHOD REQUEST_URI>", "cping" or "hello" (a TLS
                 ClientHello): requests},
             "last_request": the last http request head (text, latin-1),
             "last_params": the last fastcgi request's PARAMS (object)}
        With reset=1, the answer is the counters before they are zeroed
        (the log too); open and mode are not reset.
    GET  /log[?reset=1]        JSON list of [unix time (float), kind], oldest
                               first, kind "connect" (accepted) or "request"
                               (as counted above), or "handshake" (ssl); at
                               most the last 100000 entries
    POST /reset                zero the counters and the log

For tcp, a probe is a connection: count "connections" (requests stays 0).
"""

import argparse
import http
import json
import os
import secrets
import signal
import socket
import ssl
import struct
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

PROTOS = ("http", "tcp", "mysql", "ajp", "fastcgi", "ssl")
COMMON_MODES = ("ok", "close", "refuse", "hang")
EXTRA_MODES = {
    "http": "a status code 100..599",
    "tcp": "",
    "mysql": "bad",
    "ajp": "bad",
    "fastcgi": "stderr, a status code 100..599",
    "ssl": "bad",
}
MAX_HEAD = 64 * 1024
MAX_LOG = 100000

# AJP13 (https://tomcat.apache.org/connectors-doc/ajp/ajpv13a.html):
# container-bound packets start 0x12 0x34, server-bound ones "AB".
AJP_CPING = 0x0A
AJP_CPONG = b"\x41\x42\x00\x01\x09"
AJP_END_RESPONSE = b"\x41\x42\x00\x02\x05\x00"

# FastCGI 1.0 record types and constants.
FCGI_BEGIN_REQUEST, FCGI_ABORT_REQUEST, FCGI_END_REQUEST = 1, 2, 3
FCGI_PARAMS, FCGI_STDIN, FCGI_STDOUT, FCGI_STDERR = 4, 5, 6, 7
FCGI_GET_VALUES, FCGI_GET_VALUES_RESULT, FCGI_UNKNOWN_TYPE = 9, 10, 11
FCGI_KEEP_CONN = 1

# MySQL capability flags of the greeting: LONG_PASSWORD, FOUND_ROWS,
# LONG_FLAG, CONNECT_WITH_DB, PROTOCOL_41, TRANSACTIONS, SECURE_CONNECTION,
# PLUGIN_AUTH.
MYSQL_CAPS = 0x1 | 0x2 | 0x4 | 0x8 | 0x200 | 0x2000 | 0x8000 | 0x80000
MYSQL_VERSION = b"5.7.99-check-backend"


def status_mode(mode):
    """The status code a mode names, or None."""
    if len(mode) == 3 and mode.isdigit() and 100 <= int(mode) <= 599:
        return int(mode)
    return None


def reason(code):
    try:
        return http.HTTPStatus(code).phrase
    except ValueError:
        return "Status %d" % code


def valid_mode(proto, mode):
    if mode in COMMON_MODES:
        return True
    if proto in ("http", "fastcgi") and status_mode(mode) is not None:
        return True
    if proto == "fastcgi" and mode == "stderr":
        return True
    return proto in ("mysql", "ajp", "ssl") and mode == "bad"


def fmt_addr(host, port):
    return "%s:%d" % ("[%s]" % host if ":" in host else host, port)


class Closed(Exception):
    """The peer closed the connection (or it was closed under us)."""


class Reader:
    """Buffered reads from a socket (plain or TLS)."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    def more(self):
        try:
            data = self.sock.recv(65536)
        except (OSError, ssl.SSLError):
            data = b""
        if not data:
            raise Closed()
        self.buf += data

    def exact(self, n):
        while len(self.buf) < n:
            self.more()
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def until(self, sep, limit):
        while True:
            i = self.buf.find(sep)
            if i >= 0:
                data, self.buf = self.buf[:i + len(sep)], self.buf[i + len(sep):]
                return data
            if len(self.buf) > limit:
                raise ValueError("too long")
            self.more()

    def drain(self):
        """Read and discard until the peer closes."""
        self.buf = b""
        while True:
            try:
                data = self.sock.recv(65536)
            except (OSError, ssl.SSLError):
                return
            if not data:
                return


class Backend:
    def __init__(self, args):
        self.proto = args.proto
        self.host = args.host
        self.port = args.port
        self.name = args.name
        self.mode = args.mode
        self.verbose = args.verbose
        self.lock = threading.Lock()
        self.listen_lock = threading.Lock()  # serializes opening/closing
        self.listener = None
        self.conns = set()
        self.family = socket.getaddrinfo(args.host, None, 0, socket.SOCK_STREAM)[0][0]
        self.ssl_context = None
        if self.proto == "ssl":
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(args.cert, args.key)
            # Python's defaults (TLS 1.2 minimum, its cipher list) accept the
            # check module's TLS 1.2 ClientHello (ECDHE-RSA-AES128-GCM-SHA256
            # is chosen); nothing is relaxed.
            self.ssl_context = ctx
        self.reset()

    # --- counters -------------------------------------------------------

    def reset(self):
        with self.lock:
            self.stats = {"connections": 0, "requests": 0, "handshakes": 0,
                          "handshake_failures": 0, "probes_by_peer": {},
                          "by_request": {}, "last_request": None, "last_params": None}
            self.log = []

    def _log(self, kind):
        self.log.append([time.time(), kind])
        if len(self.log) > MAX_LOG:
            del self.log[:len(self.log) - MAX_LOG]

    def count_connection(self):
        with self.lock:
            self.stats["connections"] += 1
            self._log("connect")

    def count_request(self, peer, what=None):
        with self.lock:
            s = self.stats
            s["requests"] += 1
            s["probes_by_peer"][peer] = s["probes_by_peer"].get(peer, 0) + 1
            if what is not None:
                s["by_request"][what] = s["by_request"].get(what, 0) + 1
            self._log("request")

    def count_handshake(self, ok):
        with self.lock:
            if ok:
                self.stats["handshakes"] += 1
                self._log("handshake")
            else:
                self.stats["handshake_failures"] += 1

    def snapshot(self, reset=False):
        with self.lock:
            out = dict(self.stats)
            out["probes_by_peer"] = dict(out["probes_by_peer"])
            out["by_request"] = dict(out["by_request"])
            out.update(proto=self.proto, name=self.name, mode=self.mode,
                       port=self.port, open=len(self.conns))
        if reset:
            self.reset()
        return out

    def log_snapshot(self, reset=False):
        with self.lock:
            out = list(self.log)
            if reset:
                self.log = []
        return out

    def say(self, msg):
        if self.verbose:
            sys.stderr.write("%.3f %s\n" % (time.time(), msg))
            sys.stderr.flush()

    # --- listening ------------------------------------------------------

    def open_listener(self):
        s = socket.socket(self.family, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((self.host, self.port))
        s.listen(128)
        self.port = s.getsockname()[1]
        self.listener = s
        threading.Thread(target=self.accept_loop, args=(s,), daemon=True).start()

    def close_listener(self):
        s, self.listener = self.listener, None
        if s is None:
            return
        try:
            s.shutdown(socket.SHUT_RDWR)  # wakes the accept() (Linux)
        except OSError:
            pass
        s.close()

    def set_mode(self, mode):
        with self.listen_lock:
            with self.lock:
                self.mode = mode
            if mode == "refuse":
                self.close_listener()
                with self.lock:  # accept_loop adds no more now
                    conns = list(self.conns)
                    self.conns.clear()  # closed below: no longer "open"
                for c in conns:
                    try:
                        socket.socket.shutdown(c, socket.SHUT_RDWR)
                    except OSError:
                        pass
            elif self.listener is None:
                self.open_listener()

    def accept_loop(self, listener):
        while True:
            try:
                conn, addr = listener.accept()
            except OSError:
                return  # closed by `refuse` or at exit
            self.count_connection()
            with self.lock:
                if self.mode == "refuse":  # accepted just before the close
                    conn.close()
                    continue
                self.conns.add(conn)
            threading.Thread(target=self.serve, args=(conn, addr[0]), daemon=True).start()

    def serve(self, conn, peer):
        self.say("connect %s (%s)" % (peer, self.mode))
        try:
            if self.mode == "close":
                return
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            getattr(self, "serve_" + self.proto)(conn, peer)
        except Closed:
            pass
        except Exception as e:  # a broken connection must not stop the server
            self.say("connection error: %r" % (e,))
        finally:
            with self.lock:
                self.conns.discard(conn)
            try:
                conn.close()
            except OSError:
                pass

    def lingering_close(self, sock, reader):
        """Half-close, then read until the peer closes (bounded), so that
        data the peer still sends does not turn the close into a reset."""
        try:
            socket.socket.shutdown(sock, socket.SHUT_WR)
        except OSError:
            return
        sock.settimeout(2)
        reader.drain()

    # --- http -------------------------------------------------------------

    def serve_http(self, sock, peer):
        r = Reader(sock)
        while True:
            try:
                head = r.until(b"\r\n\r\n", MAX_HEAD)
            except ValueError:
                self.http_answer(sock, 400, False, False)
                return
            lines = head.decode("latin-1").split("\r\n")
            parts = lines[0].split(" ")
            if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
                self.http_answer(sock, 400, False, False)
                return
            method, version = parts[0], parts[2]
            headers = {}
            for line in lines[1:]:
                if ":" in line:
                    k, v = line.split(":", 1)
                    headers[k.strip().lower()] = v.strip()
            try:
                self.read_http_body(r, headers)
            except ValueError:
                self.http_answer(sock, 400, False, False)
                return
            conn_tokens = [t.strip().lower() for t in headers.get("connection", "").split(",")]
            if version == "HTTP/1.1":
                keep = "close" not in conn_tokens
            else:
                keep = "keep-alive" in conn_tokens
            self.count_request(peer, lines[0])
            with self.lock:
                self.stats["last_request"] = head.decode("latin-1")
                mode = self.mode
            self.say("request %s %r -> %s" % (peer, lines[0], mode))
            if mode == "hang":
                r.drain()
                return
            if mode in ("close", "refuse"):
                return
            # (ssl's "bad" applies to new connections only: 200 inside TLS)
            self.http_answer(sock, status_mode(mode) or 200, keep, method == "HEAD")
            if not keep:
                self.lingering_close(sock, r)
                return

    def read_http_body(self, r, headers):
        if "chunked" in headers.get("transfer-encoding", "").lower():
            while True:
                line = r.until(b"\r\n", 1024)
                size = int(line.split(b";")[0].strip() or b"x", 16)
                if size == 0:
                    while r.until(b"\r\n", MAX_HEAD) != b"\r\n":
                        pass  # trailers
                    return
                r.exact(size + 2)
        elif "content-length" in headers:
            n = int(headers["content-length"])
            if n < 0:
                raise ValueError("negative length")
            while n > 0:
                n -= len(r.exact(min(n, 65536)))

    def http_answer(self, sock, code, keep, head_only):
        body = (self.name + "\n").encode()
        out = ["HTTP/1.1 %d %s" % (code, reason(code)),
               "Content-Type: text/plain",
               "Content-Length: %d" % len(body),
               "X-Backend: %s" % self.name,
               "Connection: %s" % ("keep-alive" if keep else "close")]
        data = ("\r\n".join(out) + "\r\n\r\n").encode("latin-1")
        if not head_only:
            data += body
        try:
            sock.sendall(data)
        except OSError:
            raise Closed()

    # --- tcp ----------------------------------------------------------------

    def serve_tcp(self, sock, peer):
        Reader(sock).drain()

    # --- mysql ----------------------------------------------------------------

    def mysql_greeting(self, seq):
        salt = bytes(secrets.choice(range(33, 127)) for _ in range(20))
        payload = (bytes([10]) + MYSQL_VERSION + b"\0"
                   + struct.pack("<I", threading.get_ident() & 0x7FFFFFFF)
                   + salt[:8] + b"\0"
                   + struct.pack("<H", MYSQL_CAPS & 0xFFFF)
                   + bytes([33])                 # utf8_general_ci
                   + struct.pack("<H", 0x0002)   # SERVER_STATUS_AUTOCOMMIT
                   + struct.pack("<H", MYSQL_CAPS >> 16)
                   + bytes([21])                 # auth plugin data length
                   + b"\0" * 10
                   + salt[8:] + b"\0"
                   + b"mysql_native_password\0")
        return len(payload).to_bytes(3, "little") + bytes([seq]) + payload

    def serve_mysql(self, sock, peer):
        mode = self.mode
        if mode in ("ok", "bad"):
            self.count_request(peer)
            sock.sendall(self.mysql_greeting(1 if mode == "bad" else 0))
        Reader(sock).drain()

    # --- ajp --------------------------------------------------------------------

    def serve_ajp(self, sock, peer):
        r = Reader(sock)
        while True:
            head = r.exact(4)
            if head[:2] != b"\x12\x34":
                return
            length = struct.unpack(">H", head[2:])[0]
            body = r.exact(length)
            kind = body[0] if body else None
            self.count_request(peer, "cping" if kind == AJP_CPING else "ajp %s" % kind)
            mode = self.mode
            if mode == "hang":
                r.drain()
                return
            if mode in ("close", "refuse"):
                return
            if kind != AJP_CPING:
                return  # only CPING is spoken here
            sock.sendall(AJP_END_RESPONSE if mode == "bad" else AJP_CPONG)

    # --- fastcgi ------------------------------------------------------------------

    @staticmethod
    def fcgi_record(rtype, req_id, content=b""):
        return struct.pack(">BBHHBB", 1, rtype, req_id, len(content), 0, 0) + content

    @staticmethod
    def fcgi_pairs(data):
        out, i = {}, 0

        def length():
            nonlocal i
            if data[i] & 0x80:
                n = struct.unpack(">I", data[i:i + 4])[0] & 0x7FFFFFFF
                i += 4
            else:
                n = data[i]
                i += 1
            return n

        try:
            while i < len(data):
                kl = length()
                vl = length()
                k = data[i:i + kl].decode("latin-1")
                i += kl
                out[k] = data[i:i + vl].decode("latin-1")
                i += vl
        except IndexError:
            pass
        return out

    def serve_fastcgi(self, sock, peer):
        r = Reader(sock)
        reqs = {}  # request id -> [keep_conn, params bytes]
        while True:
            head = r.exact(8)
            version, rtype, req_id, clen, plen = struct.unpack(">BBHHB", head[:7])
            if version != 1:
                return  # not FastCGI (the check module's last 8 bytes are
                # an unfilled STDIN header: never read when it closes first)
            content = r.exact(clen)
            r.exact(plen)
            if rtype == FCGI_BEGIN_REQUEST:
                flags = content[2] if len(content) > 2 else 0
                reqs[req_id] = [bool(flags & FCGI_KEEP_CONN), b""]
            elif rtype == FCGI_PARAMS and req_id in reqs:
                if clen:
                    reqs[req_id][1] += content
                    continue
                keep, raw = reqs.pop(req_id)
                params = self.fcgi_pairs(raw)
                what = "%s %s" % (params.get("REQUEST_METHOD", "-"), params.get("REQUEST_URI", "-"))
                self.count_request(peer, what)
                with self.lock:
                    self.stats["last_params"] = params
                    mode = self.mode
                self.say("fastcgi %s %r keep_conn=%s -> %s" % (peer, what, keep, mode))
                if mode == "hang":
                    r.drain()
                    return
                if mode in ("close", "refuse"):
                    return
                sock.sendall(self.fcgi_answer(req_id, mode))
                if not keep:
                    self.lingering_close(sock, r)
                    return
            elif rtype in (FCGI_STDIN, FCGI_ABORT_REQUEST):
                if rtype == FCGI_ABORT_REQUEST and reqs.pop(req_id, None) is not None:
                    sock.sendall(self.fcgi_record(FCGI_END_REQUEST, req_id, b"\0" * 8))
            elif rtype == FCGI_GET_VALUES and req_id == 0:
                sock.sendall(self.fcgi_record(FCGI_GET_VALUES_RESULT, 0))
            elif req_id == 0:
                sock.sendall(self.fcgi_record(FCGI_UNKNOWN_TYPE, 0, bytes([rtype]) + b"\0" * 7))

    def fcgi_answer(self, req_id, mode):
        code = status_mode(mode) or 200
        body = "ok" if code == 200 else "%d" % code
        stdout = ("Status: %d %s\r\nContent-Type: text/plain\r\n\r\n%s"
                  % (code, reason(code), body)).encode("latin-1")
        out = b""
        if mode == "stderr":
            out += self.fcgi_record(FCGI_STDERR, req_id, b"check_backend: stderr mode\n")
        # One write: the check module parses the STDOUT record only when more
        # bytes follow it in the same read (Y:1772).
        out += self.fcgi_record(FCGI_STDOUT, req_id, stdout)
        out += self.fcgi_record(FCGI_STDOUT, req_id)
        out += self.fcgi_record(FCGI_END_REQUEST, req_id, b"\0" * 8)
        return out

    # --- ssl ------------------------------------------------------------------------

    def serve_ssl(self, sock, peer):
        r = Reader(sock)
        try:
            first = sock.recv(1, socket.MSG_PEEK)
        except OSError:
            return
        if not first:
            return
        self.count_request(peer, "hello" if first == b"\x16" else None)
        mode = self.mode
        if mode == "hang":
            r.drain()
            return
        if mode in ("close", "refuse"):
            return
        sock.settimeout(10)  # bounds the handshake
        if mode == "bad":
            r.more()
            body = b"plain HTTP here\n"
            sock.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\n"
                         b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body))
            self.lingering_close(sock, r)
            return
        try:
            tls = self.ssl_context.wrap_socket(sock, server_side=True,
                                               do_handshake_on_connect=False)
        except (OSError, ssl.SSLError):
            return
        with self.lock:
            # wrap_socket detached sock: track the TLS socket (same fd),
            # unless `refuse` has closed it meanwhile
            if sock in self.conns:
                self.conns.discard(sock)
                self.conns.add(tls)
        try:
            tls.do_handshake()
        except (OSError, ssl.SSLError) as e:
            self.count_handshake(False)
            self.say("handshake failed %s: %r" % (peer, e))
            with self.lock:
                self.conns.discard(tls)
            tls.close()
            return
        self.count_handshake(True)
        tls.settimeout(None)
        try:
            self.serve_http(tls, peer)
        finally:
            with self.lock:
                self.conns.discard(tls)
            tls.close()


class ControlHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    backend = None

    def log_message(self, fmt, *args):
        pass

    def reply(self, code, body, ctype="text/plain"):
        if isinstance(body, str):
            body = body.encode()
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n > 0 else b""

    def do_GET(self):
        b = self.backend
        url = urlsplit(self.path)
        reset = parse_qs(url.query).get("reset", ["0"])[0] not in ("0", "")
        if url.path == "/mode":
            self.reply(200, b.mode + "\n")
        elif url.path == "/stats":
            self.reply(200, json.dumps(b.snapshot(reset)) + "\n", "application/json")
        elif url.path == "/log":
            self.reply(200, json.dumps(b.log_snapshot(reset)) + "\n", "application/json")
        else:
            self.reply(404, "not found\n")

    def do_PUT(self):
        b = self.backend
        path = urlsplit(self.path).path
        body = self.body()
        if path == "/mode":
            mode = body.decode("latin-1").strip()
            if not valid_mode(b.proto, mode):
                extra = EXTRA_MODES[b.proto]
                self.reply(400, "unknown mode %r for %s; modes: %s%s\n"
                           % (mode, b.proto, " ".join(COMMON_MODES), ", " + extra if extra else ""))
                return
            try:
                b.set_mode(mode)
            except OSError as e:
                self.reply(500, "cannot listen again: %s\n" % e)
                return
            b.say("mode %s" % mode)
            self.reply(200, mode + "\n")
        elif path == "/reset":
            b.reset()
            self.reply(200, "reset\n")
        else:
            self.reply(404, "not found\n")

    do_POST = do_PUT


def main(argv=None):
    ap = argparse.ArgumentParser(description="a backend for health check probes (tests)")
    ap.add_argument("--proto", required=True, choices=PROTOS)
    ap.add_argument("--port", type=int, required=True, help="0 picks a free port")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--control-port", type=int, default=0, help="0 picks a free port")
    ap.add_argument("--name", help='the name in http answers (default "host:port")')
    ap.add_argument("--mode", default="ok", help="the mode at start")
    ap.add_argument("--cert", help="ssl: the server certificate (PEM)")
    ap.add_argument("--key", help="ssl: its key (PEM)")
    ap.add_argument("--verbose", action="store_true", help="log connections to stderr")
    args = ap.parse_args(argv)
    if not valid_mode(args.proto, args.mode):
        ap.error("mode %r is not one of %s's" % (args.mode, args.proto))
    if args.proto == "ssl" and not (args.cert and args.key):
        ap.error("--proto ssl needs --cert and --key")

    backend = Backend(args)
    backend.open_listener()  # even for refuse: to learn the port
    if args.mode == "refuse":
        backend.close_listener()
    if backend.name is None:
        backend.name = fmt_addr(args.host, backend.port)

    handler = type("Handler", (ControlHandler,), {"backend": backend})
    ControlServer = type("ControlServer", (ThreadingHTTPServer,),
                         {"address_family": backend.family, "daemon_threads": True})
    control = ControlServer((args.host, args.control_port), handler)

    def stop(signum, frame):
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    sys.stdout.write("listening %s\n" % fmt_addr(args.host, backend.port))
    sys.stdout.write("control %s\n" % fmt_addr(args.host, control.server_address[1]))
    sys.stdout.flush()
    threading.Thread(target=control.serve_forever, kwargs={"poll_interval": 0.1},
                     daemon=True).start()
    try:
        while True:
            time.sleep(3600)
    except SystemExit:
        pass
    with backend.listen_lock:
        backend.close_listener()
    control.server_close()
    sys.stdout.flush()
    os._exit(0)  # daemon threads may be blocked in recv(): do not wait


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""A small HTTP CONNECT proxy on 127.0.0.1, for the tests: a corporate proxy that works, refuses or breaks.

    python3 tests/proxy.py [--mode MODE] [--user U --password P] [--port 0]    (MODE: see MODES)

Run as a process, it prints its URL as the first stdout line and, when SIGINT or SIGTERM stops it, the
request lines it received on stderr.

In-process: Proxy(mode, ...).start(); .url (http://127.0.0.1:PORT); .stop(). Modes, for each CONNECT:
  tunnel   connect to the target and relay bytes both ways; by default the target is 127.0.0.1 on the
           port asked for, whatever the host, so https://api.landbase.com:PORT reaches a sandbox on
           127.0.0.1:PORT (the proxy resolves nothing)
  refuse   403 Forbidden, as a proxy whose policy blocks the host
  auth     407 with Proxy-Authenticate unless Proxy-Authorization carries Basic user:password, then tunnel
  stall    read the request and never answer
  drop     close the connection right after reading the request
  unauthorized  401, as tinyproxy answers credentials it does not accept
A proxy that is broken or hostile (the server fuzzer's, tests/fuzz_server.py), which never connects
anywhere:
  garbage  a status line that is not HTTP at all, then it closes
  long-header  200, then a header line over 64 KiB (what http.client refuses to read)
  drip     "HTTP/1.1 200 " and then a reason phrase one byte every `drip` seconds (1 by default),
           never ending the line, until the client leaves, the proxy stops or DRIP_CAP seconds
           have passed; .held has, for each such connection, the seconds until the client left
           (None: it never did)
  echo     407 whose reason phrase, a header and the body echo the Proxy-Authorization value it
           received, as echo(value) writes it (as it is by default): a proxy that prints what it
           was sent
With times=N, only the first N CONNECTs meet the mode; the later ones are tunnelled (auth still checked).
A request that is not a CONNECT is recorded and answered 405.

What it saw, for the assertions: .requests, the (request line, header block) of every request, as
text; .received, every byte any client sent (request heads and what went into the tunnels); .connects,
how many CONNECT requests; .connections, how many connections it accepted. It never prints anything;
an unexpected exception in a connection's thread is kept in .errors instead.
"""

import argparse
import base64
import itertools
import select
import signal
import socket
import sys
import threading
import time

MODES = ("tunnel", "refuse", "auth", "stall", "drop", "unauthorized", "garbage", "long-header",
         "drip", "echo")
HEAD_LIMIT = 64 * 1024              # a request head longer than this is refused
IDLE = 30.0                         # seconds a client may take to send its request head
DRIP_CAP = 60.0                     # a dripping answer stops then, whether or not the client left


def free_port():
    """A port on 127.0.0.1 where nothing listens (bound, then closed): a proxy that is down."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


def refusing_lookups(domain, getaddrinfo):
    """getaddrinfo that fails for `domain` and its subdomains: patched over socket.getaddrinfo, a request
    that should have gone through the proxy fails at once instead of leaving the host."""
    domain = domain.lower().strip(".")

    def refusing(host, *args, **kwargs):
        name = (host.decode("ascii", "replace") if isinstance(host, bytes) else str(host or "")).lower().rstrip(".")
        if name == domain or name.endswith("." + domain):
            raise socket.gaierror(socket.EAI_NONAME, "%s is never looked up in the tests" % name)
        return getaddrinfo(host, *args, **kwargs)
    return refusing


class Proxy:
    """The proxy in background daemon threads: Proxy(...).start(); .url; .stop()."""

    def __init__(self, mode="tunnel", user=None, password=None, target=None, times=None, port=0,
                 drip=1.0, echo=None):
        if mode not in MODES:
            raise ValueError("mode must be one of %s" % ", ".join(MODES))
        if (mode == "auth") != (user is not None and password is not None):
            raise ValueError("mode auth, and only it, takes a user and a password")
        self.mode, self.user, self.password, self.target, self.times = mode, user, password, target, times
        self.drip = drip
        self.echo = echo
        self.held = []                  # drip: seconds each client held on (None: it never left)
        self.lock = threading.Lock()
        self.requests = []              # (request line, header block) of every request received
        self.received = bytearray()     # every byte clients sent
        self.connections = 0
        self.errors = []
        self.stopping = threading.Event()
        self.open = set()               # live sockets, shut down by stop()
        self.threads = []
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", port))
        self.listener.listen(64)
        self.listener.settimeout(0.05)
        self.port = self.listener.getsockname()[1]
        self.address = "127.0.0.1:%d" % self.port
        self.url = "http://" + self.address
        self.thread = threading.Thread(target=self._accept, daemon=True)

    @property
    def connects(self):
        with self.lock:
            return sum(1 for line, _ in self.requests if line.startswith("CONNECT "))

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.stopping.set()
        self.thread.join(5)
        self.listener.close()
        with self.lock:
            live, threads = list(self.open), list(self.threads)
        for sock in live:
            _shut(sock)
        for thread in threads:
            thread.join(5)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # -- plumbing
    def _accept(self):
        while True:
            try:
                connection, _ = self.listener.accept()
            except socket.timeout:
                if self.stopping.is_set():      # drained: every connection queued before stop() is counted
                    return
                continue
            except OSError:
                return
            thread = threading.Thread(target=self._serve, args=(connection,), daemon=True)
            with self.lock:
                self.connections += 1
                self.open.add(connection)
                self.threads.append(thread)
            thread.start()

    def _serve(self, client):
        sockets = [client]              # and the upstream one, once _handle opens it
        try:
            self._handle(client, sockets)
        except OSError:
            pass                        # a client that left, a target that closed: nothing to report
        except Exception as exc:        # the thread's boundary: kept for the test, never printed
            with self.lock:
                self.errors.append("%s: %s" % (type(exc).__name__, exc))
        finally:
            for sock in sockets:
                with self.lock:
                    self.open.discard(sock)
                sock.close()

    def _handle(self, client, sockets):
        """Read one request head and act on it; the upstream socket it opens is added to `sockets`."""
        client.settimeout(IDLE)
        head, rest = self._read_head(client)
        if head is None:
            return
        line, _, headers = head.partition("\r\n")
        with self.lock:
            self.requests.append((line, headers))
            index = sum(1 for seen, _ in self.requests if seen.startswith("CONNECT "))
        method, _, target = line.partition(" ")
        target = target.rsplit(" ", 1)[0]
        if method != "CONNECT":
            client.sendall(_answer(405, "Method Not Allowed", "only CONNECT is served here"))
            return
        mode = self.mode if self.times is None or index <= self.times or self.mode == "auth" else "tunnel"
        if mode == "drop":
            return
        if mode == "stall":
            self.stopping.wait()
            return
        if mode == "refuse":
            client.sendall(_answer(403, "Forbidden", "<html><body>Blocked by the proxy's policy</body></html>"))
            return
        if mode == "unauthorized":      # what tinyproxy answers wrong credentials with (407 when there are none)
            client.sendall(_answer(401, "Unauthorized", "<html>wrong credentials</html>"))
            return
        if mode in ("garbage", "long-header", "drip", "echo"):
            self._misbehave(mode, client, headers)
            return
        if mode == "auth" and not self._authorized(headers):
            client.sendall(_answer(407, "Proxy Authentication Required", "<html>proxy authentication required</html>",
                                   'Proxy-Authenticate: Basic realm="test proxy"\r\n'))
            return
        host, _, port = target.rpartition(":")
        try:
            address = self.target or ("127.0.0.1", int(port))
            upstream = socket.create_connection(address, timeout=5)
        except (OSError, ValueError):
            client.sendall(_answer(502, "Bad Gateway", "cannot reach %s" % target))
            return
        sockets.append(upstream)
        with self.lock:
            self.open.add(upstream)
        client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
        if rest:
            upstream.sendall(rest)
        self._relay(client, upstream)

    def _read_head(self, client):
        """(request head as text, bytes after it), or (None, b"") for a client that sent no complete head."""
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = client.recv(4096)
            if not chunk:
                return None, b""
            with self.lock:
                self.received += chunk
            data += chunk
            if len(data) > HEAD_LIMIT:
                client.sendall(_answer(431, "Request Header Fields Too Large", ""))
                return None, b""
        head, _, rest = data.partition(b"\r\n\r\n")
        return head.decode("latin-1") + "\r\n", rest

    def _misbehave(self, mode, client, headers):
        """The answers of a broken or hostile proxy (see the modes above)."""
        if mode == "garbage":
            client.sendall(b"SSH-2.0-OpenSSH_9.6\r\nProtocol mismatch.\r\n\r\n")
        elif mode == "long-header":
            pad = b"a" * (HEAD_LIMIT + 4096)
            client.sendall(b"HTTP/1.1 200 Connection established\r\nX-Pad: " + pad + b"\r\n\r\n")
        elif mode == "echo":
            value = _header(headers, "proxy-authorization") or "(none)"
            text = value if self.echo is None else self.echo(value)
            raw = text.encode("latin-1", "replace").replace(b"\r", b" ").replace(b"\n", b" ")
            head = [b"HTTP/1.1 407 " + raw + b" (proxy authentication required)",
                    b'Proxy-Authenticate: Basic realm="' + raw + b'"', b"X-Echo: " + raw,
                    b"Content-Length: %d" % len(raw), b"Connection: close"]
            client.sendall(b"\r\n".join(head) + b"\r\n\r\n" + raw)
        else:
            self._drip(client)

    def _drip(self, client):
        """A status line that never ends, a byte every self.drip seconds; .held gets how long the
        client stayed (None when it was still there at DRIP_CAP or when the proxy stopped)."""
        started = time.monotonic()
        held = None
        client.sendall(b"HTTP/1.1 200 ")
        for byte in itertools.cycle(b"Connection established "):
            if _left(client, self.drip, self.stopping):
                held = time.monotonic() - started
                break
            if self.stopping.is_set() or time.monotonic() - started > DRIP_CAP:
                break
            try:
                client.sendall(bytes([byte]))
            except OSError:             # it left between two bytes
                held = time.monotonic() - started
                break
        with self.lock:
            self.held.append(held)

    def _authorized(self, headers):
        expected = "Basic " + base64.b64encode(("%s:%s" % (self.user, self.password)).encode("utf-8")).decode()
        for header in headers.split("\r\n"):
            name, _, value = header.partition(":")
            if name.strip().lower() == "proxy-authorization" and value.strip() == expected:
                return True
        return False

    def _relay(self, client, upstream):
        """Bytes both ways until either side closes or the proxy stops."""
        client.settimeout(None)
        upstream.settimeout(None)
        peers = {client: upstream, upstream: client}
        while not self.stopping.is_set():
            ready, _, _ = select.select(list(peers), [], [], 0.1)
            for sock in ready:
                chunk = sock.recv(65536)
                if not chunk:
                    return
                if sock is client:
                    with self.lock:
                        self.received += chunk
                peers[sock].sendall(chunk)


def _answer(status, reason, body, headers=""):
    raw = body.encode("utf-8")
    return ("HTTP/1.1 %d %s\r\nContent-Type: text/html\r\nContent-Length: %d\r\n%sConnection: close\r\n\r\n"
            % (status, reason, len(raw), headers)).encode("latin-1") + raw


def _header(block, name):
    """The value of the header `name` (lower case) in a header block, or None."""
    for line in block.split("\r\n"):
        key, _, value = line.partition(":")
        if key.strip().lower() == name:
            return value.strip()
    return None


def _left(client, seconds, stopping):
    """Whether the client closed its end within `seconds` (watched in short steps, so that a proxy
    that stops does not wait them out)."""
    deadline = time.monotonic() + seconds
    while not stopping.is_set():
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        readable, _, _ = select.select([client], [], [], min(0.05, left))
        if readable:
            try:
                if not client.recv(65536):
                    return True
            except OSError:
                return True
    return False


def _shut(sock):
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass                            # already closed


def main(argv=None):
    parser = argparse.ArgumentParser(description="A test CONNECT proxy on 127.0.0.1 (see tests/proxy.py).")
    parser.add_argument("--mode", choices=MODES, default="tunnel")
    parser.add_argument("--user")
    parser.add_argument("--password")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    proxy = Proxy(args.mode, args.user, args.password, port=args.port).start()
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    sys.stdout.write(proxy.url + "\n")
    sys.stdout.flush()
    while not stop.wait(0.2):
        pass
    proxy.stop()
    for line, _ in proxy.requests:
        sys.stderr.write("proxy: %s\n" % line)
    return 0


if __name__ == "__main__":
    sys.exit(main())

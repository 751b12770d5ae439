#!/usr/bin/env python3
"""`make test-browser`: the browser login, with a real headless Chromium pressing Approve.

Run without arguments it is the test: it starts the sandbox and runs
`landbase_import.py auth login` with BROWSER pointing back at this file. Run by
the tool as BROWSER (CHROMIUM_PERSON=1 in the environment) it is the person:
it starts Chromium headless on the URL, waits for the sign-in page, clicks the
Approve button through the DevTools protocol, and waits until the browser has
landed on the tool's "you can close this tab" page. Skipped, with a message,
where no Chromium is installed (Debian: apt-get install chromium).
"""

import base64
import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time
from urllib.parse import urlsplit

HERE = os.path.dirname(os.path.abspath(__file__))
TOOL = os.path.join(os.path.dirname(HERE), "landbase_import.py")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--remote-debugging-port=0"]


def find_chromium():
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    return None


# ---- a minimal DevTools client: a WebSocket over a plain socket

class DevTools:
    def __init__(self, url):
        parts = urlsplit(url)
        self.sock = socket.create_connection((parts.hostname, parts.port), timeout=15)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(("GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                           "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n"
                           % (parts.path, parts.hostname, parts.port, key)).encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(1)
            if not chunk:
                raise OSError("DevTools closed the connection during the handshake")
            head += chunk
        if b" 101 " not in head.split(b"\r\n")[0]:
            raise OSError("DevTools refused the WebSocket: %r" % head[:100])
        self.next_id = 0

    def _read(self, count):
        data = b""
        while len(data) < count:
            chunk = self.sock.recv(count - len(data))
            if not chunk:
                raise OSError("DevTools closed the connection")
            data += chunk
        return data

    def _send_text(self, text):
        payload = text.encode()
        mask = os.urandom(4)
        header = bytes([0x81])
        if len(payload) < 126:
            header += bytes([0x80 | len(payload)])
        elif len(payload) < 65536:
            header += bytes([0x80 | 126]) + struct.pack(">H", len(payload))
        else:
            header += bytes([0x80 | 127]) + struct.pack(">Q", len(payload))
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(header + mask + masked)

    def _receive_text(self):
        message = b""
        while True:
            first, second = self._read(2)
            length = second & 0x7F
            if length == 126:
                length = struct.unpack(">H", self._read(2))[0]
            elif length == 127:
                length = struct.unpack(">Q", self._read(8))[0]
            payload = self._read(length)
            if first & 0x0F == 0x8:
                raise OSError("DevTools closed the WebSocket")
            message += payload
            if first & 0x80:
                return message.decode("utf-8", "replace")

    def evaluate(self, expression):
        self.next_id += 1
        self._send_text(json.dumps({"id": self.next_id, "method": "Runtime.evaluate",
                                    "params": {"expression": expression, "returnByValue": True}}))
        while True:
            answer = json.loads(self._receive_text())
            if answer.get("id") == self.next_id:
                return answer.get("result", {}).get("result", {}).get("value")


def be_the_person(url):
    """Open url in headless Chromium, click Approve, wait for the tool's closing page."""
    profile = tempfile.mkdtemp(prefix="lbi-chromium-")
    chromium = subprocess.Popen([find_chromium()] + FLAGS + ["--user-data-dir=" + profile, url],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        port_file = os.path.join(profile, "DevToolsActivePort")
        deadline = time.monotonic() + 60
        while not os.path.exists(port_file) or os.path.getsize(port_file) == 0:
            if time.monotonic() > deadline or chromium.poll() is not None:
                raise SystemExit("chromium_login: Chromium did not start its DevTools endpoint")
            time.sleep(0.1)
        with open(port_file) as handle:
            port = int(handle.readline())
        sys.path.insert(0, HERE)
        from support import direct_opener
        direct = direct_opener()
        while True:
            with direct.open("http://127.0.0.1:%d/json/list" % port, timeout=10) as response:
                pages = [t for t in json.loads(response.read().decode()) if t.get("type") == "page"]
            if pages:
                break
            time.sleep(0.1)
        tab = DevTools(pages[0]["webSocketDebuggerUrl"])
        wait_for(tab, "document.readyState === 'complete' && !!document.getElementById('approve')", deadline)
        tab.evaluate("document.getElementById('approve').click(); true")
        wait_for(tab, "location.pathname === '/callback' && document.body && "
                      "document.body.innerText.indexOf('close this tab') >= 0", deadline)
        sys.stderr.write("chromium_login: Chromium clicked Approve and reached %s\n"
                         % tab.evaluate("location.origin + location.pathname"))
        return 0
    finally:
        chromium.terminate()
        try:
            chromium.wait(10)
        except subprocess.TimeoutExpired:
            chromium.kill()
        shutil.rmtree(profile, ignore_errors=True)


def wait_for(tab, condition, deadline):
    while not tab.evaluate("!!(%s)" % condition):
        if time.monotonic() > deadline:
            raise SystemExit("chromium_login: gave up waiting for: %s" % condition)
        time.sleep(0.1)


def run_test():
    if find_chromium() is None:
        print("test-browser: skipped: Chromium is not installed (Debian: apt-get install chromium)")
        return 0
    sys.path.insert(0, HERE)
    import sandbox
    box = sandbox.Sandbox().start()
    config = tempfile.mkdtemp(prefix="lbi-browser-")
    try:
        from support import subprocess_env
        env = subprocess_env(box.url, os.path.join(config, "landbase"), BROWSER=os.path.abspath(__file__),
                             CHROMIUM_PERSON="1")
        result = subprocess.run([sys.executable, TOOL, "auth", "login"], env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, universal_newlines=True, timeout=180)
        sys.stderr.write(result.stderr)
        ok = result.returncode == 0 and json.loads(result.stdout or "{}").get("userId") == "usr_demo"
        approvals = [r for r in box.platform.requests if r[:2] == ("POST", "/cli/authorize")]
        ok = ok and len(approvals) == 1 and "Chrom" in approvals[0][2].get("User-Agent", "")
        print(result.stdout.strip())
        print("test-browser: %d passed, %d failed" % (ok, not ok))
        return 0 if ok else 1
    finally:
        box.stop()
        shutil.rmtree(config, ignore_errors=True)


if __name__ == "__main__":
    if os.environ.get("CHROMIUM_PERSON") and len(sys.argv) == 2:
        sys.exit(be_the_person(sys.argv[1]))
    sys.exit(run_test())

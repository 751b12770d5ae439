#!/usr/bin/env python3
"""`make test-proxy`: the tool through a real proxy, Debian's tinyproxy, which asks for Basic authentication.

tinyproxy listens on 127.0.0.1 and passes each CONNECT on to tests/proxy.py as its upstream proxy, which
tunnels api.landbase.com to the TLS sandbox on 127.0.0.1: tinyproxy never looks the name up, and nothing
leaves the host. The tool (under fastclock.py) runs auth status, start and wait through it, the credentials
percent-encoded in HTTPS_PROXY; then status without them: tinyproxy answers 407, which is NETWORK_ERROR
after one CONNECT. Skipped, with a message, where tinyproxy is not installed (Debian: apt-get install
tinyproxy).
"""

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import proxy  # noqa: E402
from support import run_cli, sandbox, subprocess_env, write_session  # noqa: E402

USER, PASSWORD = "corp-user", "S3cr3t"     # tinyproxy's configuration takes no '@' or ':' in them
BODY = '{"datasetId": "ds_demo", "tagName": "through tinyproxy"}'


def start_tinyproxy(work, upstream):
    """tinyproxy in the foreground on a free port; (process, port, log path)."""
    port = proxy.free_port()
    config, log = os.path.join(work, "tinyproxy.conf"), os.path.join(work, "tinyproxy.log")
    with open(config, "w") as handle:
        handle.write("Port %d\nListen 127.0.0.1\nTimeout 30\nMaxClients 20\nLogLevel Connect\nLogFile \"%s\"\n"
                     "Upstream http %s\nBasicAuth %s %s\n" % (port, log, upstream, USER, PASSWORD))
    process = subprocess.Popen(["tinyproxy", "-d", "-c", config], stdout=subprocess.DEVNULL,
                               stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and process.poll() is None:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return process, port, log
        except OSError:
            time.sleep(0.05)
    process.kill()
    raise RuntimeError("tinyproxy did not start (exit %s)" % process.wait())


def main():
    if not shutil.which("tinyproxy"):
        print("test-proxy: skipped: tinyproxy is not installed (Debian: apt-get install tinyproxy)")
        return 0
    work = tempfile.mkdtemp(prefix="lbi-tinyproxy-")
    box = sandbox.Sandbox(certfile=os.path.join(HERE, "tls", "localhost.pem"), min_poll_interval=0).start()
    inner = proxy.Proxy().start()
    process = None
    failures, printed = [], []
    try:
        process, port, log = start_tinyproxy(work, inner.address)
        token = box.platform.mint_token()
        write_session(os.path.join(work, "landbase"), token)
        base = "https://api.landbase.com:%d" % box.server.server_address[1]

        def run(argv, proxy_url, stdin=""):
            env = subprocess_env(None, os.path.join(work, "landbase"), HTTPS_PROXY=proxy_url,
                                 SSL_CERT_FILE=os.path.join(HERE, "tls", "ca.pem"), LANDBASE_PLATFORM_API_URL=base,
                                 FASTCLOCK_NO_LOOKUP="landbase.com", FASTCLOCK_ADVANCE=box.url)
            result = run_cli(argv, env, stdin=stdin, timeout=60, fast=True)
            printed.append(result.stdout + result.stderr)
            return result

        def check(what, ok, result):
            print("test-proxy: %s: %s" % (what, "ok" if ok else "FAILED"))
            if not ok:
                failures.append(what)
                print(result)

        with_credentials = "http://%s:%s@127.0.0.1:%d" % (USER, PASSWORD.replace("3", "%33"), port)
        result = run(["auth", "status"], with_credentials)
        check("auth status through tinyproxy", result.code == 0 and result.json["userId"] == "usr_demo", result)
        result = run(["contacts-import", "start", "--json", "-"], with_credentials, stdin=BODY)
        check("start through tinyproxy", result.code == 0, result)
        if result.code == 0:
            result = run(["contacts-import", "wait", str(result.json["importId"])], with_credentials)
            check("wait through tinyproxy", result.code == 0 and result.json["phase"] == "completed", result)
        with open(log, encoding="utf-8", errors="replace") as handle:
            before = handle.read().count(": CONNECT ")
        result = run(["contacts-import", "status", "1"], "http://127.0.0.1:%d" % port)
        with open(log, encoding="utf-8", errors="replace") as handle:
            text = handle.read()
        envelope = json.loads(result.stderr.strip().splitlines()[-1]) if result.code else {}
        check("no credentials: 407 is NETWORK_ERROR after one CONNECT",
              result.code == 4 and envelope["error"]["code"] == "NETWORK_ERROR"
              and text.count(": CONNECT ") - before == 1, result)
        check("neither the token nor the proxy password printed, the token in no byte the proxies saw",
              token not in text and token.encode() not in inner.received
              and not any(token in out or PASSWORD in out or USER in out for out in printed), result)
    finally:
        if process is not None:
            process.terminate()
            process.wait(10)
        inner.stop()
        box.stop()
        shutil.rmtree(work, ignore_errors=True)
    print("test-proxy: %s" % ("%d FAILED" % len(failures) if failures else "all passed"))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

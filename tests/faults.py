"""The fault matrix: each command of the tool, as a subprocess, against each fault of the sandbox.

run_matrix() returns one row per (command, fault) with what happened; test_faults.py
asserts the rows against CLI.md and API.md, and reliability.py prints them as a table.
The subprocess is the real file run by fastclock.py, so retries and polls are real
requests but their waits take no time (each wait is logged and checked).
"""

import email.utils
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

import sandbox

HERE = os.path.dirname(os.path.abspath(__file__))
FASTCLOCK = os.path.join(HERE, "fastclock.py")
TLS_DIR = os.path.join(HERE, "tls")
BODY = '{"datasetId": "ds_demo", "tagName": "fault matrix"}'

# command name: (argv, the sandbox route it exercises, a 200 with the wrong types for that route)
COMMANDS = {
    "start": (["contacts-import", "start", "--json", "-"], "start", {"importId": "7", "runRef": 5}),
    "status": (["contacts-import", "status", "1"], "status",
               {"importId": 1, "phase": 3, "percent": "42", "counts": [1, 2]}),
    "wait": (["contacts-import", "wait", "1"], "status",
             {"importId": 1, "phase": 3, "percent": "42", "counts": [1, 2]}),
    "account set": (["account", "set", "acc_team"], "accounts", {"accounts": {"id": 5}}),
    "auth login --with-token": (["auth", "login", "--with-token"], "me", {"userId": 5, "email": []}),
}

# fault name: (the sandbox fault, or a special setup; is it transient?)
FAULTS = [
    ("connection refused", "refused", True),
    ("connection reset before the answer", {"reset": True}, True),
    ("connection dropped mid-response", {"drop": True}, True),
    ("no answer within --timeout", {"delay": 1.5}, True),
    ("500", {"status": 500}, True),
    ("502 with an HTML body", {"status": 502, "body": "<html><body><h1>502 Bad Gateway</h1>nginx</body></html>"},
     True),
    ("503 with Retry-After: 30", {"status": 503, "headers": {"Retry-After": "30"}}, True),
    ("429 with Retry-After as an HTTP date", "429-date", True),
    ("524", {"status": 524, "body": "<html>A timeout occurred</html>"}, True),
    ("truncated JSON", {"truncate": True}, True),
    ("200 that is not JSON", {"status": 200, "body": "<html>maintenance</html>"}, True),
    ("200 with wrong types", "wrong-types", True),
    ("same-origin redirect (307)", "same-origin", None),
    ("cross-origin redirect", "cross-origin", False),
    ("TLS certificate not trusted", "tls", False),
]

TRANSIENT_CODES = {
    "connection refused": "NETWORK_ERROR", "connection reset before the answer": "NETWORK_ERROR",
    "connection dropped mid-response": "NETWORK_ERROR", "no answer within --timeout": "TIMEOUT",
    "429 with Retry-After as an HTTP date": "RATE_LIMITED",
}
EXIT = {"NETWORK_ERROR": 4, "TIMEOUT": 4, "API_ERROR": 2, "RATE_LIMITED": 2}


def expected(command, fault_name, fault, transient):
    """(exit, code, attempts) that CLI.md and API.md promise for this command and fault."""
    if transient is None:                                   # followed: the command works
        return 0, None, 2
    if not transient:
        code = "NETWORK_ERROR" if fault == "tls" else "API_ERROR"
        return EXIT[code], code, 1
    if command == "wait":
        if fault == "refused":                              # the platform never comes back
            return 4, "TIMEOUT", 92
        return 0, None, 4                                   # three failed polls, then the final status
    code = TRANSIENT_CODES.get(fault_name, "API_ERROR")
    return EXIT[code], code, 4


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def run_case(command, fault_name, fault, transient, python=sys.executable):
    argv, route, wrong = COMMANDS[command]
    tls = fault == "tls"
    box = sandbox.Sandbox(min_poll_interval=0, certfile=os.path.join(TLS_DIR, "localhost.pem") if tls else None)
    other = sandbox.Sandbox() if fault == "cross-origin" else None
    work = tempfile.mkdtemp(prefix="lbi-fault-")
    box.start()
    if other:
        other.start()
    try:
        platform = box.platform
        platform.imports[1]["enqueued"] = -1000.0          # import 1 has already completed
        url = box.url.replace("127.0.0.1", "localhost") if tls else box.url
        token = platform.mint_token()
        config = os.path.join(work, "landbase")
        if command != "auth login --with-token":
            os.makedirs(config, 0o700)
            with open(os.open(os.path.join(config, "platform.json"), os.O_WRONLY | os.O_CREAT, 0o600), "w") as handle:
                json.dump({"accessToken": token, "expiresAt": time.strftime(
                    "%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 6 * 86400)), "accountId": "acc_demo"}, handle)
        times = 3 if command == "wait" else 4
        if fault == "refused":
            url = "http://127.0.0.1:%d" % free_port()
        elif fault == "429-date":
            when = email.utils.formatdate(time.time() + 40, usegmt=True)
            platform.inject(route, {"status": 429, "headers": {"Retry-After": when}}, times)
        elif fault == "wrong-types":
            platform.inject(route, {"json": wrong}, times)
        elif fault == "same-origin":
            path = "/v1/accounts/acc_demo/contacts-imports" + ("" if route == "start" else "/1")
            path = {"accounts": "/v1/accounts", "me": "/v1/me"}.get(route, path)
            platform.inject(route, {"redirect": path, "status": 307})
        elif fault == "cross-origin":
            platform.inject(route, {"redirect": other.url + "/v1/me"}, times)
        elif isinstance(fault, dict):
            platform.inject(route, fault, times)
        log = os.path.join(work, "sleeps")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("LANDBASE_", "SSL_CERT"))}
        env.update(LANDBASE_CONFIG_DIR=config, LANDBASE_PLATFORM_API_URL=url, LANDBASE_PLATFORM_WEB_URL=url,
                   NO_PROXY="127.0.0.1,localhost", no_proxy="127.0.0.1,localhost", FASTCLOCK_LOG=log)
        stdin = token + "\n" if command == "auth login --with-token" else BODY
        extra = ["--timeout", "0.5"] if fault_name == "no answer within --timeout" else []
        started = time.monotonic()
        process = subprocess.run([python, FASTCLOCK] + argv + extra, input=stdin.encode(), env=env,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=300)
        seconds = time.monotonic() - started
        stderr = process.stderr.decode("utf-8", "replace")
        try:
            with open(log) as handle:
                sleeps = [round(float(line), 1) for line in handle]     # the wait's own ms are not ours
        except FileNotFoundError:
            sleeps = []
        lines = stderr.strip().splitlines()
        try:
            code = json.loads(lines[-1])["error"]["code"] if process.returncode else None
        except (ValueError, KeyError, TypeError, IndexError):
            code = "NO ENVELOPE"
        attempts = platform.count("GET" if route != "start" else "POST", {"start": "/contacts-imports",
                                                                          "status": "/contacts-imports/1",
                                                                          "accounts": "/v1/accounts",
                                                                          "me": "/v1/me"}[route])
        if fault == "tls":                                  # no request gets through: count the connections
            attempts = platform.connections
        if fault == "refused":                              # nothing gets through: count the reports
            attempts = stderr.count("poll failed") if command == "wait" else stderr.count(" failed (") + 1
        return {"command": command, "fault": fault_name, "exit": process.returncode, "code": code,
                "attempts": attempts, "sleeps": sleeps, "stdout": process.stdout.decode("utf-8", "replace"),
                "stderr": stderr, "seconds": seconds, "expected": expected(command, fault_name, fault, transient),
                "leaked": other.platform.requests if other else [], "token": token}
    finally:
        box.stop()
        if other:
            other.stop()
        shutil.rmtree(work, ignore_errors=True)


def run_matrix(python=sys.executable, jobs=4):
    cases = [(command, name, fault, transient) for command in COMMANDS for name, fault, transient in FAULTS]
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        return list(pool.map(lambda case: run_case(*case, python=python), cases))


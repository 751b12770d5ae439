"""The fault matrix: each command of the tool, as a subprocess, against each fault of the sandbox.

run_matrix() returns one row per (command, fault) with what happened; expected() says what the README
and the HTTP protocol (README) promise for it (exit, code, requests, the waits between them); test_faults.py asserts
the rows against it and reliability.py prints them as a table.

The subprocess is the real file run by fastclock.py, so retries and polls are real requests but
their waits take no time (each wait is logged and checked). Attempts are counted where they arrive:
requests on the route the command exercises, or connections where no request gets through (a TLS
handshake, a listener that closes what it accepts), or CONNECTs at the test proxy (tests/proxy.py)
for the rows through HTTPS_PROXY; where the proxy is down, nothing arrives anywhere, and the
connections fastclock.py sees the tool open to it are counted instead. Each run is started by a small
launcher process that reaps it with wait4(), for its ru_maxrss (see Launcher).

The proxy rows run the command against https://api.landbase.com:PORT through HTTPS_PROXY: the proxy
tunnels that name to the TLS sandbox on 127.0.0.1:PORT, and fastclock.py makes every landbase.com
lookup fail, so a request that skipped the proxy could not leave the host.
"""

import collections
import email.utils
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from concurrent.futures import ThreadPoolExecutor

import proxy
import sandbox
from support import EXITS, subprocess_env, tool_command, write_session

HERE = os.path.dirname(os.path.abspath(__file__))
TLS_DIR = os.path.join(HERE, "tls")
CERTFILE = os.path.join(TLS_DIR, "localhost.pem")      # the sandbox's certificate and key
TEST_CA = os.path.join(TLS_DIR, "ca.pem")              # the CA that signed it, for SSL_CERT_FILE
BODY = '{"datasetId": "ds_demo", "tagName": "fault matrix"}'

TIMEOUT = 5.0                   # --timeout of each run, unless the fault sets its own
MAX_RSS = 64 * 1024 * 1024      # the tool's memory stays under this whatever the server sends
STARTUP_MARGIN = 15.0           # what a run may take beyond its waits and --timeout per request
TOLERANCE = 0.5                 # a logged wait matches a planned one within this (the poller's waits
                                # are measured from the end of the poll, less the few ms since)
# The README's schedules, written out rather than computed the way the tool computes them:
# a one-shot command tries once and retries 3 times, after 5, 10 and 20 s
RETRIES = [5, 10, 20]
# wait polls at once, after 5 s, 10 s, then every 20 s, and gives up with TIMEOUT after 30 minutes:
# polls at 0, 5, 15, 35, 55, ..., 1795 s (92 of them), then the last wait runs to 1800 s
WAIT_LIMIT = 1800
POLLS_TO_THE_LIMIT = [5, 10] + [20] * 89 + [5]

# command name: (argv, the sandbox route it exercises)
COMMANDS = collections.OrderedDict([
    ("start", (["contacts-import", "start", "--json", "-"], "start")),
    ("status", (["contacts-import", "status", "1"], "status")),
    ("wait", (["contacts-import", "wait", "1"], "status")),
    ("account set", (["account", "set", "acc_team"], "accounts")),
    ("auth login --with-token", (["auth", "login", "--with-token"], "me")),
])

Route = collections.namedtuple("Route", "method path wrong_types nan")
# route: the request, a 200 with the wrong types for it, and a 200 that a lenient JSON reader would
# take (NaN where a number goes); the HTTP protocol (README): an answer that is not strict JSON is a broken answer
ROUTES = {
    "start": Route("POST", "/v1/accounts/acc_demo/contacts-imports", {"importId": "7", "runRef": 5},
                   '{"importId": 7, "runRef": "run_NAN", "estimatedSeconds": NaN}'),
    "status": Route("GET", "/v1/accounts/acc_demo/contacts-imports/1",
                    {"importId": 1, "phase": 3, "percent": "42", "counts": [1, 2]},
                    '{"importId": 1, "phase": "completed", "percent": 100, "counts": {"total": NaN, '
                    '"imported": 232, "skipped": 8, "failed": 0}, "error": null}'),
    "accounts": Route("GET", "/v1/accounts", {"accounts": {"id": 5}},
                      '{"accounts": [{"id": "acc_demo", "name": "Demo Co", "seats": NaN}, '
                      '{"id": "acc_team", "name": "Demo Team", "seats": 3}]}'),
    "me": Route("GET", "/v1/me", {"userId": 5, "email": []},
                '{"userId": "usr_demo", "email": "sam@acme.example", "quota": NaN}'),
}

Fault = collections.namedtuple("Fault", "name setup code transient times retry_after timeout")


def fault(name, setup, code, transient=True, times=None, retry_after=None, timeout=TIMEOUT):
    """One row of the matrix.

    setup: a sandbox fault (a dict) or the name of a special setup (see run_case).
    code: what one failed attempt is (None: the fault is followed and the command works).
    transient: retried by one-shot commands and ridden out by wait (the HTTP protocol (README), the README).
    times: how many requests meet the fault: None for as many as the command makes before it
      gives up (4 for a one-shot command, 3 for wait, then the real answer), a number for that
      many, "always" for a platform that never comes back.
    retry_after: the seconds each failed answer asks to wait (a number or a (low, high) range),
      which a longer one overrides the planned wait.
    timeout: the run's --timeout."""
    return Fault(name, setup, code, transient, times, retry_after, timeout)


FAULTS = [
    fault("connection closed as soon as accepted", "closing", "NETWORK_ERROR", times="always"),
    fault("connection reset before the answer", {"reset": True}, "NETWORK_ERROR"),
    fault("connection dropped mid-response", {"drop": True}, "NETWORK_ERROR"),
    fault("TLS handshake dropped once", "tls-drop", "NETWORK_ERROR", times=1),
    fault("no answer within --timeout", {"delay": 1.5}, "TIMEOUT", timeout=0.5),
    fault("answer dripped a byte every 0.2 s", {"drip": 0.2}, "TIMEOUT", timeout=0.5),
    fault("500", {"status": 500}, "API_ERROR"),
    fault("502 with an HTML body", {"status": 502, "body": "<html><body><h1>502 Bad Gateway</h1>nginx</body></html>"},
          "API_ERROR"),
    fault("503 with Retry-After: 30", {"status": 503, "headers": {"Retry-After": "30"}}, "API_ERROR",
          retry_after=[30, 30, 30]),
    fault("503 with Retry-After: \u00b2", {"status": 503, "headers": {"Retry-After": "\u00b2"}}, "API_ERROR"),
    # the date is 40 s ahead when the fault is set: the first wait is what is left of it when the
    # answer arrives (less the run's start-up), the next ones find it past
    fault("429 with Retry-After as an HTTP date", "429-date", "RATE_LIMITED",
          retry_after=[(40 - STARTUP_MARGIN, 41), 0, 0]),
    fault("524", {"status": 524, "body": "<html>A timeout occurred</html>"}, "API_ERROR"),
    fault("truncated JSON", {"truncate": True}, "API_ERROR"),
    fault("200 that is not JSON", {"status": 200, "body": "<html>maintenance</html>"}, "API_ERROR"),
    fault("200 with wrong types", "wrong-types", "API_ERROR"),
    fault("200 with NaN in a number", "nan", "API_ERROR"),
    fault("200 with an endless chunked body", {"endless": True}, "API_ERROR"),
    fault("200 with a 100 MB body", {"size": 100 * 1024 * 1024}, "API_ERROR"),
    fault("302 to a Location with a bad port", "bad-port", "API_ERROR"),
    fault("same-origin redirect (307)", "same-origin", None, transient=None, times=1),
    fault("cross-origin redirect", "cross-origin", "API_ERROR", transient=False),
    fault("TLS certificate not trusted", "tls", "NETWORK_ERROR", transient=False),
    # through HTTPS_PROXY: a proxy that refuses the tunnel is a configuration error, not an outage
    fault("proxy refuses CONNECT (403)", "proxy-403", "NETWORK_ERROR", transient=False, times="always"),
    fault("proxy requires authentication (407)", "proxy-407", "NETWORK_ERROR", transient=False, times="always"),
    fault("proxy down", "proxy-down", "NETWORK_ERROR", times="always"),
    fault("proxy never answers CONNECT (within --timeout)", "proxy-stall", "TIMEOUT", timeout=0.5),
    fault("proxy drops the connection", "proxy-drop", "NETWORK_ERROR"),
]
# the test proxy's mode and options for each proxy row (proxy-down has none: nothing listens there)
PROXIES = {"proxy-403": {"mode": "refuse"}, "proxy-407": {"mode": "auth", "user": "corp.user", "password": "unsaid"},
           "proxy-stall": {"mode": "stall"}, "proxy-drop": {"mode": "drop"}}

Expect = collections.namedtuple("Expect", "exit code attempts schedule limit")


def expected(command, fault):
    """Expect(exit, code, attempts, schedule, limit): what the README promise for this command
    against this fault. schedule: the waits between the attempts, each a number (matched within
    TOLERANCE) or a (low, high) range. limit: for a wait that ends at its limit, that limit in
    seconds (its last wait is then cut short by it; see schedule_problem)."""
    if fault.code is None:                                  # followed: the command works
        return Expect(0, None, 2, [], None)
    if not fault.transient:                                 # not retried, whatever the command
        return Expect(EXITS[fault.code], fault.code, 1, [], None)
    if command == "wait" and fault.times == "always":       # polled on its schedule until the limit
        return Expect(4, "TIMEOUT", len(POLLS_TO_THE_LIMIT), list(POLLS_TO_THE_LIMIT), WAIT_LIMIT)
    if command == "wait":                                   # rides the failures out, then the real answer
        failed = 3
        if fault.times is not None:
            failed = fault.times
        planned = POLLS_TO_THE_LIMIT[:failed]
        gives_up = False
    else:                                                   # one try and 3 retries at most
        failed = 4
        if fault.times not in (None, "always"):
            failed = min(4, fault.times)
        gives_up = failed == 4
        planned = RETRIES[:failed]                          # a wait after each failure but a 4th
    waits = []
    for index, wait in enumerate(planned):
        asked = fault.retry_after[index] if fault.retry_after else None
        if isinstance(asked, tuple):                        # a longer Retry-After is honoured
            wait = (max(wait, asked[0]), max(wait, asked[1]))
        elif asked is not None:
            wait = max(wait, asked)
        waits.append(wait)
    if gives_up:
        return Expect(EXITS[fault.code], fault.code, failed, waits, None)
    return Expect(0, None, failed + 1, waits, None)


def window(wait):
    return wait if isinstance(wait, tuple) else (wait - TOLERANCE, wait + TOLERANCE)


def schedule_problem(row):
    """None when the row's waits are its expected schedule; otherwise what differs.

    A wait that ends at its limit: fastclock's clock is real time plus the skipped waits, so the
    real seconds the run took (its polls) come out of the last wait, the one to the limit; each
    wait but that one follows the schedule, and the waits plus the real time reach the limit."""
    expect, sleeps = row["expected"], row["sleeps"]
    if expect.limit is None:
        bad = len(sleeps) != len(expect.schedule) or any(
            not window(w)[0] <= s <= window(w)[1] for s, w in zip(sleeps, expect.schedule))
        return "waits %s, expected %s" % (sleeps, expect.schedule) if bad else None
    if not sleeps or len(sleeps) > len(expect.schedule):
        return "%d waits, expected at most %d" % (len(sleeps), len(expect.schedule))
    for index, (slept, wait) in enumerate(zip(sleeps, expect.schedule)):
        low, high = window(wait)
        if slept > high or (slept < low and index < len(sleeps) - 1):
            return "wait %d was %g s, expected %s (waits %s)" % (index + 1, slept, wait, sleeps[:index + 2])
    total = sum(sleeps)
    if not (expect.limit - TOLERANCE <= total + row["seconds"] and total <= expect.limit + TOLERANCE):
        return "waited %g s (and %.1f s of real time), expected to end at %d s" % (total, row["seconds"],
                                                                                  expect.limit)
    return None


def expected_attempts(row):
    """The requests (or connections) the row should have seen: for a wait that ends at its limit,
    one per wait (the last wait runs to the limit), which schedule_problem() checks against the
    schedule; otherwise expected().attempts."""
    return len(row["sleeps"]) if row["expected"].limit is not None else row["expected"].attempts


def expected_reports(row):
    """The failed attempts the tool reports on stderr (one line each, with the fault's code): every
    one it waits after, a retry or a failed poll (the last failure of a one-shot command is the
    envelope instead)."""
    return expected_attempts(row) if row["expected"].limit is not None else len(row["expected"].schedule)


def real_bound(expect, timeout):
    """Real seconds a run may take: --timeout per request and a margin (its waits take none). Real
    time on purpose: the promise is about time, --timeout bounding each request whatever the
    server does (the rows that drip or never answer); the margin makes it a hang's bound, not a
    speed test."""
    return expect.attempts * timeout + STARTUP_MARGIN


def wall_bound(row):
    """Seconds, on fastclock's clock (real time plus the waits), the run may take: its waits, then
    --timeout per request and a margin."""
    return sum(window(w)[1] for w in row["expected"].schedule) + real_bound(row["expected"], row["timeout"])


def reports(row):
    """The stderr lines that report a failed attempt with the fault's code (a retry, a failed poll)."""
    code = re.escape(row["fault_code"] or "")
    if row["command"] == "wait":
        return re.findall(r"import \d+: poll failed \(%s: .*; next poll in \d+s$" % code, row["stderr"], re.M)
    return re.findall(r" failed \(%s: .*; retry \d of 3 in \d+s$" % code, row["stderr"], re.M)


def problems(row):
    """Every way the row breaks its contract, as short phrases (empty when it keeps it)."""
    if row["error"]:
        return ["the harness failed: " + row["error"].strip().splitlines()[-1]]
    found = []
    expect = row["expected"]
    if (row["exit"], row["code"]) != (expect.exit, expect.code):
        found.append("exit %s %s, expected %s %s" % (row["exit"], row["code"], expect.exit, expect.code))
    if row["attempts"] != expected_attempts(row):
        found.append("%d attempts, expected %d" % (row["attempts"], expected_attempts(row)))
    schedule = schedule_problem(row)
    if schedule:
        found.append(schedule)
    if row["transient"] and len(reports(row)) != expected_reports(row):
        found.append("%d failures reported, expected %d" % (len(reports(row)), expected_reports(row)))
    if row["maxrss"] >= MAX_RSS:
        found.append("max RSS %.1f MiB" % (row["maxrss"] / 2.0 ** 20))
    if row["seconds"] > real_bound(expect, row["timeout"]) or row["seconds"] + sum(row["sleeps"]) > wall_bound(row):
        found.append("took %.1f s and waited %g s, bounds %.1f s and %.1f s in all" % (
            row["seconds"], sum(row["sleeps"]), real_bound(expect, row["timeout"]), wall_bound(row)))
    for text in ("Traceback", "internal error", row["token"]):
        if text in row["stdout"] + row["stderr"]:
            found.append("printed %r" % text[:12])
    if row["leaked"]:
        found.append("a request reached another origin")
    if row["proxy_saw_token"]:
        found.append("the token reached the proxy")
    unnamed = unnamed_proxy(row)
    if unnamed:
        found.append("%d error lines do not name the proxy %s and HTTPS_PROXY" % (len(unnamed), row["proxy"]))
    return found


def unnamed_proxy(row):
    """For a row through the proxy, its error lines (each reported failure, and the envelope unless it is
    a wait's limit) that do not name the proxy (host:port) and the variable it came from: every transport
    error through a proxy names it."""
    if not row["proxy"]:
        return []
    lines = reports(row)
    if row["exit"] and row["expected"].limit is None:
        lines.append(row["stderr"].strip().splitlines()[-1] if row["stderr"].strip() else "")
    return [line for line in lines if row["proxy"] not in line or not re.search(r"\bHTTPS_PROXY\b", line)]


# A child's ru_maxrss on Linux also counts the memory it had before exec(): a copy of its parent's
# (vfork: the parent's peak). A child of the test runner would report the runner's size, so the
# runs are started by this small process instead, which reports each one's wait4() figures.
LAUNCHER = r"""
import json, os, signal, subprocess, sys, threading, time
lock = threading.Lock()
def kill(pid):
    try:
        os.killpg(pid, signal.SIGKILL)
    except OSError:
        pass
def run(job):
    started = time.monotonic()
    with open(job["stdin"], "rb") as i, open(job["stdout"], "wb") as o, open(job["stderr"], "wb") as e:
        process = subprocess.Popen(job["argv"], env=job["env"], stdin=i, stdout=o, stderr=e, start_new_session=True)
    killer = threading.Timer(job["kill_after"], kill, (process.pid,))
    killer.start()
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.monotonic() - started
    killer.cancel()
    process.returncode = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
    report = {"id": job["id"], "exit": process.returncode, "seconds": seconds,
              "cpu": usage.ru_utime + usage.ru_stime,
              "maxrss": usage.ru_maxrss * (1 if sys.platform == "darwin" else 1024)}
    with lock:
        sys.stdout.write(json.dumps(report) + "\n")
        sys.stdout.flush()
sys.stdout.write(json.dumps({"version": list(sys.version_info[:2])}) + "\n")
sys.stdout.flush()
for line in sys.stdin:
    threading.Thread(target=run, args=(json.loads(line),)).start()
"""


class Launcher:
    """The launcher process: run() starts a command there and returns {exit, seconds, cpu, maxrss}.

    The measured runner, and the one way to run the tool as a process besides support.run_cli: the
    fault matrix, make reliability and make bench report each run's peak memory and CPU, and a
    child's ru_maxrss on Linux counts the memory it had before exec(), its parent's (see LAUNCHER):
    a child of the test runner would report the runner's size. So each run is the child of this
    small process, reaped with wait4(). The command it runs is built by the caller, for the tool
    with support.tool_command (run_case)."""

    def __init__(self, python):
        self.process = subprocess.Popen([python, "-S", "-E", "-c", LAUNCHER], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, universal_newlines=True)
        self.version = tuple(json.loads(self.process.stdout.readline())["version"])
        self.lock = threading.Lock()
        self.waiting = {}
        self.jobs = 0
        self.reader = threading.Thread(target=self._read)
        self.reader.daemon = True
        self.reader.start()

    def _read(self):
        for line in self.process.stdout:
            report = json.loads(line)
            with self.lock:
                done, slot = self.waiting.pop(report["id"])
            slot.append(report)
            done.set()
        with self.lock:                 # the launcher is gone: nobody waits for ever
            for done, _ in self.waiting.values():
                done.set()

    def run(self, argv, env, stdin, stdout, stderr, kill_after):
        done, slot = threading.Event(), []
        with self.lock:
            self.jobs += 1
            self.waiting[self.jobs] = (done, slot)
            self.process.stdin.write(json.dumps({"id": self.jobs, "argv": argv, "env": env, "stdin": stdin,
                                                 "stdout": stdout, "stderr": stderr,
                                                 "kill_after": kill_after}) + "\n")
            self.process.stdin.flush()
        done.wait()
        if not slot:
            raise RuntimeError("the launcher process ended early")
        return slot[0]

    def close(self):
        self.process.stdin.close()
        self.process.wait()
        self.reader.join(5)
        self.process.stdout.close()


class ClosingListener:
    """A port where each connection is accepted and closed unread, as a dead backend behind a
    listening port does: the tool sees a network error, and the test counts the connections where
    they arrive (a refused connection arrives nowhere, so it could only be counted by the tool)."""

    def __init__(self):
        self.socket = socket.socket()
        self.socket.bind(("127.0.0.1", 0))
        self.socket.listen(64)
        self.socket.settimeout(0.05)
        self.url = "http://127.0.0.1:%d" % self.socket.getsockname()[1]
        self.connections = 0
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._serve)
        self.thread.daemon = True
        self.thread.start()

    def _serve(self):
        while True:
            try:
                connection, _ = self.socket.accept()
            except socket.timeout:
                if self.stopping.is_set():  # drained: whatever was queued has been accepted
                    return
                continue
            self.connections += 1
            connection.close()

    def stop(self):
        self.stopping.set()
        self.thread.join(5)
        self.socket.close()


def fault_times(fault, command):
    """How many attempts meet the fault (None: every one): fault.times, where None means as many as the
    command makes before it gives up (4 for a one-shot command; 3 for wait, which then gets the answer)."""
    return {None: 3 if command == "wait" else 4, "always": None}.get(fault.times, fault.times)


def sandbox_fault(setup, route, other):
    """The sandbox fault for a special setup name (a dict is the fault itself)."""
    if isinstance(setup, dict):
        return setup
    info = ROUTES[route]
    return {
        "429-date": {"status": 429, "headers": {"Retry-After": email.utils.formatdate(time.time() + 40,
                                                                                       usegmt=True)}},
        "wrong-types": {"json": info.wrong_types},
        "nan": {"raw": info.nan, "status": 202 if route == "start" else 200},
        "bad-port": {"redirect": "http://127.0.0.1:99999" + info.path, "status": 302},
        "same-origin": {"redirect": info.path, "status": 307},
        "cross-origin": {"redirect": other.url + "/v1/me" if other else None},
    }.get(setup)


def run_case(command, fault, python=sys.executable, launcher=None, cache=None):
    """One row: the command, as a subprocess, against the fault; what happened, and what was expected.

    The run is `python -S fastclock.py ...`: the tool needs nothing from site-packages, and a site's
    .pth files are neither its start-up time nor its memory. With `cache` (a directory) and Python
    3.8 or later, the compiled tool is kept there (PYTHONPYCACHEPREFIX) for the next runs, which
    saves a compilation per row (about 60 ms of CPU and 6 MB of peak memory, which a real run,
    compiling the file, also has)."""
    row = {"command": command, "fault": fault.name, "fault_code": fault.code, "transient": fault.transient,
           "timeout": fault.timeout, "expected": expected(command, fault), "exit": None, "code": None,
           "attempts": 0, "connections": 0, "sleeps": [], "stdout": "", "stderr": "", "seconds": 0.0,
           "maxrss": 0, "leaked": [], "token": "lbs_", "proxy": None, "proxy_saw_token": False, "error": None}
    argv, route = COMMANDS[command]
    info = ROUTES[route]
    proxied = str(fault.setup).startswith("proxy-")
    tls = fault.setup in ("tls", "tls-drop") or proxied
    work = tempfile.mkdtemp(prefix="lbi-fault-")
    box = other = listener = relay = None
    try:
        box = sandbox.Sandbox(min_poll_interval=0, certfile=CERTFILE if tls else None).start()
        other = sandbox.Sandbox().start() if fault.setup == "cross-origin" else None
        listener = ClosingListener() if fault.setup == "closing" else None
        if proxied and fault.setup in PROXIES:
            relay = proxy.Proxy(times=fault_times(fault, command), **PROXIES[fault.setup]).start()
        if proxied:
            row["proxy"] = relay.address if relay else "127.0.0.1:%d" % proxy.free_port()
        platform = box.platform
        platform.imports[1]["enqueued"] = -1000.0          # import 1 has already completed
        url = box.url.replace("127.0.0.1", "localhost") if tls else listener.url if listener else box.url
        if proxied:
            url = "https://api.landbase.com:%d" % box.server.server_address[1]
        token = row["token"] = platform.mint_token()
        config = os.path.join(work, "landbase")
        if command != "auth login --with-token":
            write_session(config, token)
        if fault.setup == "tls-drop":
            platform.drop_handshakes = fault.times
        spec = sandbox_fault(fault.setup, route, other)
        if spec is not None:
            platform.inject(route, spec, fault_times(fault, command) or 10 ** 6)
        log = os.path.join(work, "sleeps")
        env = subprocess_env(url, config, FASTCLOCK_LOG=log)
        if fault.setup == "tls-drop" or proxied:
            env["SSL_CERT_FILE"] = TEST_CA
        if proxied:
            env.update(HTTPS_PROXY="http://" + row["proxy"], FASTCLOCK_NO_LOOKUP="landbase.com",
                       FASTCLOCK_CONNECT_LOG=os.path.join(work, "connects"))
        paths = [os.path.join(work, name) for name in ("stdin", "stdout", "stderr")]
        with open(paths[0], "w") as handle:
            handle.write(token + "\n" if command == "auth login --with-token" else BODY)
        full = tool_command(fast=True, python=python) + argv + ["--timeout", "%g" % fault.timeout]
        kill_after = real_bound(row["expected"], fault.timeout) + 5     # a hang fails the row, in bounded time
        if launcher is None:
            launcher = own = Launcher(python)
        else:
            own = None
        if cache and launcher.version >= (3, 8):
            env.pop("PYTHONDONTWRITEBYTECODE", None)
            env["PYTHONPYCACHEPREFIX"] = cache
        else:
            env["PYTHONDONTWRITEBYTECODE"] = "1"        # no __pycache__ in the repository
        try:
            report = launcher.run(full, env, paths[0], paths[1], paths[2], kill_after)
        finally:
            if own is not None:
                own.close()
        row.update(exit=report["exit"], seconds=report["seconds"], maxrss=report["maxrss"], cpu=report["cpu"])
        with open(paths[1], "rb") as handle:
            row["stdout"] = handle.read().decode("utf-8", "replace")
        with open(paths[2], "rb") as handle:
            row["stderr"] = handle.read().decode("utf-8", "replace")
        try:
            with open(log) as handle:
                row["sleeps"] = [round(float(line), 1) for line in handle]     # the wait's own ms are not ours
        except FileNotFoundError:
            pass
        lines = row["stderr"].strip().splitlines()
        try:
            row["code"] = json.loads(lines[-1])["error"]["code"] if row["exit"] else None
        except (ValueError, KeyError, TypeError, IndexError):
            row["code"] = "NO ENVELOPE"
        if listener is not None:
            listener.stop()
            row["attempts"] = row["connections"] = listener.connections
        elif relay is not None:
            relay.stop()
            row["attempts"], row["connections"] = relay.connects, relay.connections
            row["proxy_saw_token"] = any(piece.encode() in relay.received for piece in (token, token[4:]))
        elif proxied:                   # nothing listens: the connections the tool opened to it
            try:
                with open(os.path.join(work, "connects")) as handle:
                    row["attempts"] = row["connections"] = handle.read().split().count(row["proxy"])
            except FileNotFoundError:
                pass
        else:
            with platform.lock:
                requests = [(method, path) for method, path, _ in platform.requests]
                row["connections"] = platform.connections
            on_route = requests.count((info.method, info.path))
            # a handshake that fails is a connection and no request: count the connections, less
            # those of the requests on other routes (login reads /v1/accounts after /v1/me)
            row["attempts"] = row["connections"] - (len(requests) - on_route) if tls else on_route
        row["leaked"] = list(other.platform.requests) if other else []
    except Exception:
        row["error"] = traceback.format_exc()
    finally:
        for server in (box, other, relay):
            if server is not None:
                server.stop()
        if listener is not None and listener.thread.is_alive():
            listener.stop()
        shutil.rmtree(work, ignore_errors=True)
    return row


def cost(case):
    """A rough real duration, to start the slow rows first."""
    command, fault = case
    expect = expected(command, fault)
    return (fault.timeout if fault.timeout < TIMEOUT else 0.05) * expect.attempts + (
        2 if expect.limit else 0)


def commands_to_run():
    """make test runs the matrix for start (the one-shot retries) and wait (the poller); make reliability
    and CI, with LANDBASE_TEST_FULL=1, for every command."""
    return list(COMMANDS) if os.environ.get("LANDBASE_TEST_FULL") else ["start", "wait"]


def cases_to_run(commands=None):
    """(command, fault) for each row to run: every fault for each command, except that make test runs
    the proxy rows for start only (test_proxy.py runs wait and status against a refusing, stalling or
    absent proxy in-process)."""
    full = commands is not None or os.environ.get("LANDBASE_TEST_FULL")
    return [(command, fault) for command in (commands or commands_to_run()) for fault in FAULTS
            if full or command == "start" or not str(fault.setup).startswith("proxy-")]


def run_matrix(python=sys.executable, jobs=6, commands=None):
    """Every row, command by command in FAULTS order. The rows that mostly wait for a --timeout
    start first, and more rows run at once than there are cores, so that they overlap the rest."""
    cases = cases_to_run(commands)
    launcher = Launcher(python)
    cache = tempfile.mkdtemp(prefix="lbi-fault-pyc-")
    try:
        # one row alone first: it fills the bytecode cache (the tool, and the modules it imports for
        # https and for a failure), so the others neither compile them again nor count that memory
        first = next(index for index, (command, fault) in enumerate(cases) if fault.setup == "tls-drop")
        rows = {first: run_case(cases[first][0], cases[first][1], python, launcher, cache)}
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            order = sorted(set(range(len(cases))) - {first}, key=lambda index: cost(cases[index]), reverse=True)
            futures = {index: pool.submit(run_case, cases[index][0], cases[index][1], python, launcher, cache)
                       for index in order}
            rows.update((index, future.result()) for index, future in futures.items())
        return [rows[index] for index in range(len(cases))]
    finally:
        launcher.close()
        shutil.rmtree(cache, ignore_errors=True)

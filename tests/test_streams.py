"""End to end: closed and full streams, odd files, proxies, the login callback, the device flow, odd tokens,
hostile text on a terminal and the log form, each asserted against the README (Streams, Exit codes, The HTTP protocol).

The real file runs as a subprocess through support.run_cli, as users run it (through /bin/sh
where a descriptor must be closed, `>&-`, `2>&-`, `<&-`; from its code compiled once for the
suite, but for the closed stdin: see support.tool_command), against an in-process sandbox: one
sandbox and one config directory per case, so that the request counts are that case's own.
Where the tool would sleep, it runs under tests/fastclock.py (virtual time; the sleeps are read
back from FASTCLOCK_LOG). Independent cases run a few at a time.

StreamWorld (a support.World for one case), run_on_pty() and leaks() serve this module only.
"""

import calendar
import html
import json
import os
import re
import socket
import stat
import struct
import subprocess
import sys
import threading
import time
import unittest
from concurrent.futures import ThreadPoolExecutor

from support import STAMP, Result, ResultTestCase, World, run_cli, tool

HERE = os.path.dirname(os.path.abspath(__file__))
FAKE_BROWSER = os.path.join(HERE, "fake_browser.py")
BODY = b'{"datasetId": "ds_demo", "tagName": "streams"}'
HANG = 20                   # seconds: every command here ends in well under one, and a hang is forever: the
                            # margin is for a loaded machine (8 s failed twice under other work)
WORKERS = 4                 # cases run at once (subprocesses mostly wait on each other and the sandbox)
STAMP_AT = re.compile(r"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)Z ")

# the four commands of promise 1: (name, argv, does it name an import, stdin)
START = ["contacts-import", "start", "--json", "-"]
STREAM_COMMANDS = [
    ("start", START, True, BODY),
    ("status", ["contacts-import", "status", "1"], True, b""),
    ("wait", ["contacts-import", "wait", "1"], True, b""),
    ("auth status", ["auth", "status"], False, b""),
]


class StreamWorld(World):
    """support.World with a session stored (session=False: none), import 1 already completed (as
    tests/faults.py sets it), polls allowed within real milliseconds (fastclock), and FASTCLOCK_LOG."""

    def __init__(self, test, session=True, **options):
        options.setdefault("min_poll_interval", 0)
        World.__init__(self, test, session, **options)
        self.platform.imports[1]["enqueued"] = -1000.0
        self.sleeps_path = os.path.join(self.dir, "sleeps")
        self.env["FASTCLOCK_LOG"] = self.sleeps_path

    def sleeps(self):
        try:
            with open(self.sleeps_path) as handle:
                return [float(line) for line in handle]
        except FileNotFoundError:
            return []

    def created(self):
        """The ids of the imports created on this sandbox (import 1 is seeded)."""
        return sorted(i for i in self.platform.imports if i != 1)


def in_parallel(function, items):
    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        return list(pool.map(function, items))


# The columns a terminal gives each character the tests send: the oracle of "never wraps", stated here
# (Unicode's East Asian Width: W and F take two; a combining mark none) rather than computed as the tool does
WIDE = "\uff21\uff22\u6f22\u5b57"        # two fullwidth letters (F), two CJK ideographs (W)
COMBINING = "\u0301"                       # a combining acute accent, over the letter before it
COLUMNS = dict([(ch, 2) for ch in WIDE] + [(COMBINING, 0), ("\u2026", 1), ("\ufffd", 1)])


def cells(text):
    """The columns `text` takes on a terminal, from COLUMNS and printable ASCII; any other character is
    one the test did not plan for, and fails it."""
    unknown = sorted(set(ch for ch in text if not " " <= ch <= "~" and ch not in COLUMNS))
    if unknown:
        raise AssertionError("characters of unknown width: %r in %r" % (unknown, text))
    return sum(COLUMNS.get(ch, 1) for ch in text)


def run_on_pty(world, argv, columns, term):
    """The tool under fastclock with stderr on a pseudo-terminal of `columns` columns and stdout a pipe
    (x=$(... wait 7)); (Result, the bytes written to the terminal). The terminal does no output processing,
    so the bytes are the tool's own."""
    import fcntl
    import pty
    import termios
    master, slave = pty.openpty()
    attributes = termios.tcgetattr(slave)
    attributes[1] &= ~termios.OPOST                             # no \n -> \r\n translation
    termios.tcsetattr(slave, termios.TCSANOW, attributes)
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
    env = dict(world.env, TERM=term)
    chunks = []

    def drain():
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:                                     # EIO: every writer has gone
                return
            if not chunk:
                return
            chunks.append(chunk)
    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        running = run_cli(argv, env, fast=True, stderr=slave, background=True)
    finally:
        os.close(slave)
    result = running.finish(timeout=30)
    reader.join(5)
    os.close(master)
    written = b"".join(chunks)
    on_pty = Result(result.code, result.raw_stdout, written, argv, result.seconds, result.hung)
    return on_pty, written


def leaks(text, secret):
    """The forms of `secret` found in text: itself, JSON-escaped, and its distinctive pieces."""
    forms = {secret, json.dumps(secret)[1:-1], json.dumps(secret, ensure_ascii=False)[1:-1]}
    pieces = [piece for piece in re.split(r"[^A-Za-z0-9]+", secret) if len(piece) >= 4]
    return sorted(form for form in forms | set(pieces) if form and form in text)


class StreamTests(ResultTestCase):
    # ------------------------------------------------------------ 1. closed and full streams

    def test_closed_or_full_stdout_is_output_failed_naming_the_import(self):
        cases = [(name, argv, names_import, stdin, redirect, StreamWorld(self))
                 for redirect in (">&-", ">/dev/full") for name, argv, names_import, stdin in STREAM_COMMANDS]
        results = in_parallel(lambda case: run_cli(case[1], case[5].env, case[3], case[4]), cases)
        for (name, argv, names_import, stdin, redirect, world), result in zip(cases, results):
            with self.subTest(command=name, stdout=redirect):
                envelope = self.assertFails(result, "OUTPUT_FAILED", 2)
                self.assertEqual(result.raw_stdout, b"", result)
                meta = envelope["error"]["meta"]
                if name == "start":
                    # the work was done exactly once, and its id survives on stderr
                    self.assertEqual(world.count("POST", "/contacts-imports"), 1, result)
                    created = world.created()
                    self.assertEqual(len(created), 1, created)
                    self.assertEqual(meta.get("importId"), created[0], result)
                    self.assertRegex(result.stderr, r"(?m)^%s Started import %d "
                                     % (STAMP.pattern[1:-1], created[0]))
                elif names_import:
                    self.assertEqual(meta.get("importId"), 1, result)
                    self.assertGreaterEqual(world.count("GET", "/contacts-imports/1"), 1, result)
                else:
                    self.assertNotIn("importId", meta, result)
                    self.assertEqual(world.count("GET", "/v1/me"), 1, result)

    def test_closed_stderr_changes_no_exit_code(self):
        # with stderr open these exit 0, and auth status without a session 3 (asserted below, and elsewhere)
        cases = [(name, argv, stdin, "2>&-", StreamWorld(self), True) for name, argv, _, stdin in STREAM_COMMANDS]
        cases += [("auth status", ["auth", "status"], b"", redirect, StreamWorld(self, session=False), False)
                  for redirect in ("", "2>&-")]
        results = in_parallel(lambda case: run_cli(case[1], case[4].env, case[2], case[3]), cases)
        for (name, argv, stdin, redirect, world, session), result in zip(cases, results):
            with self.subTest(command=name, stderr=redirect or "open", session=session):
                self.assertClean(result)
                if redirect:
                    self.assertEqual(result.raw_stderr, b"", "stderr was not closed: %r" % result)
                if not session:                         # auth status without a session: 3, whatever stderr is
                    self.assertEqual(result.code, 3, result)
                    self.assertEqual(result.raw_stdout, b"", result)
                    if not redirect:
                        self.assertEqual(result.code_name, "AUTH_REQUIRED", result)
                    continue
                doc = self.assertOk(result)
                if name == "start":
                    self.assertEqual(world.count("POST", "/contacts-imports"), 1, result)
                    self.assertEqual([doc["importId"]], world.created(), result)
                elif name == "auth status":
                    self.assertEqual(doc["userId"], "usr_demo", result)
                else:
                    self.assertEqual((doc["importId"], doc["phase"]), (1, "completed"), result)

    def test_closed_stdin(self):
        # where stdin is read: INVALID_INPUT, nothing sent
        login = StreamWorld(self, session=False)
        start = StreamWorld(self)
        # where it is not read: nothing changes (the body from a file)
        body_file = os.path.join(start.dir, "body.json")
        with open(body_file, "wb") as handle:
            handle.write(BODY)
        from_file = StreamWorld(self)
        status = StreamWorld(self)
        cases = [("start --json -", start, START),
                 ("auth login --with-token", login, ["auth", "login", "--with-token"]),
                 ("start --json FILE", from_file, ["contacts-import", "start", "--json", body_file]),
                 ("status", status, ["contacts-import", "status", "1"])]
        results = in_parallel(lambda case: run_cli(case[2], case[1].env, None, as_user=True),
                              cases)
        for (name, world, argv), result in zip(cases, results):
            with self.subTest(command=name):
                if name in ("start --json -", "auth login --with-token"):
                    envelope = self.assertFails(result, "INVALID_INPUT", 1)
                    self.assertIn("stdin", envelope["error"]["message"], result)
                    self.assertEqual(world.platform.requests, [], result)
                    self.assertEqual(result.raw_stdout, b"", result)
                else:
                    doc = self.assertOk(result)
                    if name == "start --json FILE":
                        self.assertEqual([doc["importId"]], world.created(), result)
        self.assertFalse(os.path.exists(login.session_path))

    def test_a_reader_that_left_is_quiet(self):
        cases = [(name, argv, stdin, StreamWorld(self)) for name, argv, _, stdin in STREAM_COMMANDS]

        def departed(case):
            read_end, write_end = os.pipe()
            os.close(read_end)                  # `| head -c0` that has already exited: every write is EPIPE
            try:
                return run_cli(case[1], case[3].env, case[2], stdout=write_end)
            finally:
                os.close(write_end)
        results = in_parallel(departed, cases)
        for (name, argv, stdin, world), result in zip(cases, results):
            with self.subTest(command=name):
                self.assertClean(result)
                self.assertEqual(result.code, 0, result)
                self.assertIsNone(result.envelope, result)
                for line in result.stderr.splitlines():     # only the tool's own log lines, no error
                    self.assertRegex(line, STAMP, result)
                if name == "start":
                    created = world.created()
                    self.assertEqual(len(created), 1, result)
                    self.assertEqual(world.count("POST", "/contacts-imports"), 1, result)
                    self.assertIn("Started import %d " % created[0], result.stderr)

    # ------------------------------------------------------------ 2. a FIFO or a directory for platform.json

    def test_a_fifo_or_a_directory_in_place_of_platform_json(self):
        commands = [
            ("auth status", ["auth", "status"], {}),
            ("auth status, env token", ["auth", "status"], {"LANDBASE_ACCESS_TOKEN": "env"}),
            ("auth logout", ["auth", "logout"], {}),
            ("account list", ["account", "list"], {}),
            ("account set", ["account", "set", "acc_demo"], {}),
            ("start", ["contacts-import", "start", "--json", "BODY", "--account=acc_demo"], {}),
            ("start --dry-run", ["contacts-import", "start", "--json", "BODY", "--dry-run", "--account=acc_demo"], {}),
            ("status", ["contacts-import", "status", "1", "--account=acc_demo"], {}),
            ("wait", ["contacts-import", "wait", "1", "--account=acc_demo"], {}),
            ("auth login --with-token", ["auth", "login", "--with-token"], {}),
        ]
        cases = []
        for kind in ("fifo", "directory"):
            # every command against a FIFO (the hang); a directory takes the same path: a few of them
            for name, argv, extra in commands if kind == "fifo" else [c for c in commands if c[0] in (
                    "status", "start", "auth logout", "auth login --with-token")]:
                world = StreamWorld(self, session=False)
                os.makedirs(world.config, 0o700)
                if kind == "fifo":
                    os.mkfifo(world.session_path, 0o600)
                    self.assertTrue(stat.S_ISFIFO(os.lstat(world.session_path).st_mode))
                else:
                    os.mkdir(world.session_path, 0o700)
                body = os.path.join(world.dir, "body.json")
                with open(body, "wb") as handle:
                    handle.write(BODY)
                argv = [body if word == "BODY" else word for word in argv]
                if extra.get("LANDBASE_ACCESS_TOKEN"):
                    extra = {"LANDBASE_ACCESS_TOKEN": world.platform.mint_token()}
                stdin = (world.platform.mint_token() + "\n").encode() if "--with-token" in argv else b""
                cases.append((kind, name, argv, dict(world.env, **extra), stdin, world))
        results = in_parallel(lambda case: run_cli(case[2], case[3], case[4], timeout=HANG), cases)
        for (kind, name, argv, env, stdin, world), result in zip(cases, results):
            with self.subTest(platform_json=kind, command=name):
                self.assertFalse(result.hung, "hung on a %s in place of platform.json: %r" % (kind, result))
                self.assertClean(result)
                if name == "auth login --with-token" and kind == "fifo":
                    # the FIFO is replaced by the new session
                    doc = self.assertOk(result)
                    self.assertEqual(doc["userId"], "usr_demo", result)
                    mode = os.lstat(world.session_path).st_mode
                    self.assertTrue(stat.S_ISREG(mode) and stat.S_IMODE(mode) == 0o600, oct(mode))
                    self.assertEqual(world.stored()["accessToken"], stdin.decode().strip())
                    continue
                if name == "auth logout" and kind == "fifo":
                    # logout removes what it cannot read, and says so, naming the path (a directory it
                    # cannot remove: SETUP_FAILED, below)
                    self.assertEqual(self.assertOk(result), {"loggedOut": True, "revoked": False}, result)
                    self.assertIn(world.session_path, result.stderr, result)
                    self.assertFalse(os.path.lexists(world.session_path), result)
                    continue
                envelope = self.assertFails(result, "SETUP_FAILED", 1)
                message = envelope["error"]["message"]
                self.assertIn(world.session_path, message, result)
                if name == "auth login --with-token":      # says why it cannot replace a directory
                    self.assertIn("directory", message.lower(), result)
                mode = os.lstat(world.session_path).st_mode       # left as it was
                self.assertTrue(stat.S_ISFIFO(mode) if kind == "fifo" else stat.S_ISDIR(mode), result)
                self.assertEqual(world.count("POST", "/contacts-imports"), 0, result)

    # ------------------------------------------------------------ 3. a proxy never sees loopback traffic

    def test_http_proxy_is_never_used_for_a_loopback_base(self):
        seen = []
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        listener.settimeout(0.1)
        stop = threading.Event()
        self.addCleanup(listener.close)
        self.addCleanup(stop.set)

        def serve():                    # any connection is recorded: the first bytes, then a 502
            while not stop.is_set():
                try:
                    connection, _ = listener.accept()
                except socket.timeout:
                    continue
                except OSError:
                    return
                with connection:
                    connection.settimeout(2)
                    try:
                        seen.append(connection.recv(4096))
                        connection.sendall(b"HTTP/1.0 502 Proxy\r\nContent-Length: 0\r\n\r\n")
                    except OSError:
                        seen.append(b"")
        threading.Thread(target=serve, daemon=True).start()
        proxy = "http://127.0.0.1:%d" % listener.getsockname()[1]
        cases = []
        for host in ("127.0.0.1", "localhost"):
            for argv in (["auth", "status"], ["contacts-import", "status", "1"]):
                world = StreamWorld(self)
                base = world.sandbox.url.replace("127.0.0.1", host)
                env = dict(world.env, http_proxy=proxy, HTTP_PROXY=proxy, all_proxy=proxy, ALL_PROXY=proxy,
                           LANDBASE_PLATFORM_API_URL=base, LANDBASE_PLATFORM_WEB_URL=base)
                for name in ("NO_PROXY", "no_proxy"):
                    env.pop(name)
                cases.append((host, argv, env, world))
        # fastclock: a tool that sent these to the proxy would retry its 502s, in virtual time
        results = in_parallel(lambda case: run_cli(case[1], case[2], fast=True), cases)
        for (host, argv, env, world), result in zip(cases, results):
            with self.subTest(base=host, command=" ".join(argv)):
                self.assertOk(result)
                me_or_status = "/v1/me" if argv[0] == "auth" else "/contacts-imports/1"
                self.assertEqual(world.count("GET", me_or_status), 1, result)
        self.assertEqual(seen, [], "the proxy received a request bound for loopback")
        # the control: with this environment, plain urllib does go through the proxy
        control = subprocess.run([sys.executable, "-c", "import sys, urllib.request\ntry:\n"
                                  "    urllib.request.urlopen(sys.argv[1] + '/v1/me', timeout=5)\n"
                                  "except Exception as exc:\n    print(exc)", world.sandbox.url],
                                 env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
        self.assertEqual(len(seen), 1, control)
        self.assertIn(b"/v1/me", seen[0])

    # ------------------------------------------------------------ 4. the login callback

    BROWSER_SCRIPT = r'''#!%(python)s
"""BROWSER for these tests: misbehave on the tool's callback port, then be the person who approves."""
import os, socket, struct, subprocess, sys, time
from urllib.parse import parse_qs, urlsplit
url = sys.argv[1]
port = urlsplit(parse_qs(urlsplit(url).query)["redirect_uri"][0]).port
log = open(os.environ["HOSTILE_LOG"], "a")
held = []
for mode in os.environ["HOSTILE_MODE"].split(","):
    if mode == "idle":                  # connect and say nothing, until the login is over
        held.append(socket.create_connection(("127.0.0.1", port)))
        log.write("idle connected\n")
    elif mode == "reset":               # half a request, then a reset (RST) while the tool reads it
        sock = socket.create_connection(("127.0.0.1", port))
        sock.sendall(b"GET /callback?state=x HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Half: ")
        time.sleep(0.3)                 # real: let the tool's handler be inside its read when the RST comes
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()
        log.write("reset sent\n")
    elif mode == "oops":
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        sock.sendall(b"GET //[oops/callback HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        answer = b""
        try:
            while b"\r\n" not in answer:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                answer += chunk
        except OSError as exc:
            log.write("oops: %%r\n" %% exc)
        sock.close()
        log.write("oops answered: %%s\n" %% answer.split(b"\r\n")[0].decode("latin-1"))
log.flush()
started = time.monotonic()
code = subprocess.call([sys.executable, %(fake_browser)r, url], stderr=log)
log.write("fake_browser exited %%d after %%.1fs; idle connections still held: %%d\n"
          %% (code, time.monotonic() - started, sum(1 for s in held if s.fileno() >= 0)))
log.close()
sys.exit(code)
'''

    def login_with_hostile_browser(self, modes):
        world = StreamWorld(self, session=False)
        script = os.path.join(world.dir, "browser.py")
        with open(script, "w") as handle:
            handle.write(self.BROWSER_SCRIPT % {"python": sys.executable, "fake_browser": FAKE_BROWSER})
        os.chmod(script, 0o700)
        log = os.path.join(world.dir, "browser.log")
        env = dict(world.env, BROWSER=script, HOSTILE_LOG=log, HOSTILE_MODE=modes)
        result = run_cli(["auth", "login"], env, timeout=30)
        # the tool starts the browser detached and does not wait for it: its last line may come later
        deadline = time.monotonic() + 20
        while True:
            with open(log) as handle:
                text = handle.read()
            if "fake_browser exited" in text or time.monotonic() > deadline:
                return world, result, text
            time.sleep(0.05)

    def assertLoggedIn(self, world, result, browser_log):
        doc = self.assertOk(result)
        self.assertEqual(doc["userId"], "usr_demo", (result, browser_log))
        self.assertIn("fake_browser exited 0", browser_log)
        self.assertEqual(world.count("POST", "/v1/oauth/token"), 1, result)
        self.assertTrue(world.stored()["accessToken"].startswith("lbs_"))
        for line in result.stderr.splitlines():            # only the tool's own (dated) lines
            self.assertRegex(line, STAMP, (result, browser_log))

    def test_an_idle_connection_does_not_hold_the_login_callback(self):
        world, result, browser_log = self.login_with_hostile_browser("idle")
        self.assertIn("idle connected", browser_log)
        self.assertIn("idle connections still held: 1", browser_log)
        self.assertLoggedIn(world, result, browser_log)
        # well before the 5-minute limit, and before the 10 s a connection may last: a listener that
        # serves one connection at a time, freed only when the idle one times out, takes at least that
        # (real time on purpose: the promise is about time, an idle connection's 10 s not waited)
        self.assertLess(result.seconds, tool.CALLBACK_CONNECTION_TIMEOUT, result)

    def test_a_reset_and_a_malformed_request_on_the_login_callback_print_nothing(self):
        world, result, browser_log = self.login_with_hostile_browser("reset,oops")
        self.assertIn("reset sent", browser_log)
        # refused (400; 3.11+'s http.server folds the leading // itself, and then it is a 404), not a crash
        self.assertRegex(browser_log, r"oops answered: HTTP/1\.[01] 4[0-9][0-9] ")
        self.assertLoggedIn(world, result, browser_log)

    # ------------------------------------------------------------ 5. device login, in virtual time

    def device_world(self, device_answer=None, token_faults=()):
        world = StreamWorld(self, session=False)
        if device_answer is not None:
            answer = {"deviceCode": "dc_streams", "userCode": "WDJB-MJHT",
                      "verificationUri": world.sandbox.url + "/cli/device", "interval": 5, "expiresIn": 600}
            answer.update(device_answer)
            world.platform.inject("device", {"json": answer})
        for fault, times in token_faults:
            world.platform.inject("token", fault, times)
        # record, as each token poll arrives, how many sleeps the tool had logged before it
        world.polls = []
        take_fault = world.platform.take_fault

        def recording(route):
            if route == "token":
                world.polls.append(len(world.sleeps()))
            return take_fault(route)
        world.platform.take_fault = recording
        return world

    @staticmethod
    def envelope_json(code, message):
        return {"json": {"error": {"code": code, "message": message, "meta": {}}}, "status": 400}

    def test_device_login_is_bounded_and_honours_retry_after(self):
        forever = 10 ** 6
        slow = self.device_world({"expiresIn": 1e12}, [(self.envelope_json("SLOW_DOWN", "slow down"), forever)])
        huge = self.device_world({"interval": 1e300},
                                 [(self.envelope_json("AUTHORIZATION_PENDING", "waiting"), forever)])
        limited = self.device_world(None, [({"status": 429, "headers": {"Retry-After": "60"}}, 1),
                                           (self.envelope_json("ACCESS_DENIED", "no"), 1)])
        worlds = [slow, huge, limited]
        results = in_parallel(lambda world: run_cli(["auth", "login", "--device"], world.env,
                                                    fast=True, timeout=20), worlds)
        for world, result in zip(worlds, results):
            self.assertClean(result)            # not hung: it ended within the run's 20 s
            # bounded in virtual time (below), and no two polls without a wait between them
            self.assertEqual(world.polls, sorted(set(world.polls)), result)
            self.assertEqual(world.count("POST", "/v1/oauth/device"), 1, result)
            self.assertIn("WDJB-MJHT" if world is not limited else "enter the code", result.stderr, result)
            self.assertFalse(os.path.exists(world.session_path))
        (slow_run, huge_run, limited_run) = results
        with self.subTest("SLOW_DOWN forever, expiresIn 1e12"):
            self.assertFails(slow_run, "TIMEOUT", 4)
            sleeps = slow.sleeps()
            self.assertLessEqual(sum(sleeps), 15 * 60, (sleeps, slow_run))
            self.assertGreaterEqual(len(slow.polls), 2, slow_run)
            waits = [sum(sleeps[a:b]) for a, b in zip([0] + slow.polls, slow.polls)]
            for before, after in zip(waits, waits[1:]):     # each SLOW_DOWN adds 5 s to the interval
                self.assertGreaterEqual(after, before + 5 - 0.01, waits)
        with self.subTest("interval 1e300"):
            self.assertFails(huge_run, "TIMEOUT", 4)
            sleeps = huge.sleeps()
            self.assertLessEqual(sum(sleeps), 600, (sleeps, huge_run))
        with self.subTest("429 with Retry-After: 60"):
            self.assertFails(limited_run, "AUTH_FAILED", 3)
            sleeps = limited.sleeps()
            self.assertEqual(len(limited.polls), 2, (limited.polls, sleeps, limited_run))
            between = sum(sleeps[limited.polls[0]:limited.polls[1]])
            self.assertGreaterEqual(between, 60, (sleeps, limited.polls, limited_run))

    # ------------------------------------------------------------ 6. a token of odd shape is never printed

    def test_a_token_of_odd_shape_is_printed_nowhere(self):
        token = 'tok,EN;w1th "0dd" ch4rs'
        status_of = lambda phase, error: {"json": {"importId": 1, "phase": phase, "percent": 40,  # noqa: E731
                                                   "counts": {"total": 10, "imported": 4}, "error": error}}
        cases = [
            ("echoed in an error message", ["auth", "status"], "me",
             [({"json": {"error": {"code": "AUTH_FAILED", "message": "ECHO-A " + token, "meta": {"token": token}}},
                "status": 401}, 1)], "ECHO-A"),
            ("a header-ish body", ["auth", "status"], "me",
             [({"raw": "ECHO-B Authorization: Bearer %s\r\nX-Token: %s\r\n" % (token, token), "status": 400,
                "headers": {"X-Echo": "Bearer " + token}}, 1)], "ECHO-B"),
            ("a status phase", ["contacts-import", "status", "1"], "status",
             [(status_of("ECHO-C " + token, {"code": token, "message": "Bearer " + token}), 1)], "ECHO-C"),
            ("a status phase, --query", ["contacts-import", "status", "1", "--query", "phase,error.message"],
             "status", [(status_of("ECHO-D " + token, {"code": "X", "message": "Bearer " + token}), 1)], "ECHO-D"),
            ("a wait that ends failed", ["contacts-import", "wait", "1"], "status",
             [(status_of("ECHO-E " + token, None), 1),
              (status_of("failed", {"code": "X", "message": "ECHO-F " + token}), 1)], "ECHO-F"),
            ("a runRef", START, "start", [({"json": {"importId": 555, "runRef": "ECHO-G " + token},
                                            "status": 202}, 1)], "ECHO-G"),
            ("an account name", ["account", "list"], "accounts",
             [({"json": {"accounts": [{"id": "acc_demo", "name": "ECHO-H " + token}]}}, 1)], "ECHO-H"),
            # JSON as System.Text.Json writes it by default: '"' as \u0022
            ("a JSON body with \\u0022 escapes", ["auth", "status"], "me",
             [({"raw": '{"error": {"code": "AUTH_FAILED", "message": "ECHO-I %s"}}' % token.replace('"', "\\u0022"),
                "status": 401}, 1)], "ECHO-I"),
            # a proxy's error page that shows the request's headers, HTML-escaped
            ("an HTML page echoing the header", ["auth", "status"], "me",
             [({"raw": "<html><body><h1>400 Bad Request</h1><p>ECHO-J Authorization: Bearer %s</p></body></html>"
                       % html.escape(token), "status": 400}, 1)], "ECHO-J"),
        ]
        worlds = []
        for name, argv, route, faults, marker in cases:
            world = StreamWorld(self, session=False)
            for fault, times in faults:
                world.platform.inject(route, fault, times)
            world.env.update(LANDBASE_ACCESS_TOKEN=token, LANDBASE_ACCOUNT_ID="acc_demo")
            worlds.append(world)
        results = in_parallel(lambda pair: run_cli(pair[0][1] + ["--verbose"], pair[1].env, BODY,
                                                   fast=True), list(zip(cases, worlds)))
        for (name, argv, route, faults, marker), world, result in zip(cases, worlds, results):
            with self.subTest(name):
                self.assertClean(result)
                sent = [headers.get("Authorization") for _, _, headers in world.platform.requests]
                self.assertIn("Bearer " + token, sent, "the environment's token was not used")
                self.assertTrue(all(times == 0 for _, _, times in world.platform.faults), "a fault was not served")
                # the server's text around the token was printed, the token in no form
                self.assertIn(marker, result.stdout + result.stderr, result)
                self.assertEqual(leaks(result.stdout, token), [], result)
                self.assertEqual(leaks(result.stderr, token), [], result)

    # ------------------------------------------------------------ 7. hostile text on a terminal

    def hostile_world(self):
        world = StreamWorld(self)
        phase = "\u001b]0;TITLE\u0007\u001b[2J\u2026 e" + COMBINING + WIDE * 4 + " " + world.token + "\nforged"
        world.platform.inject("status", {"json": {"importId": 1, "phase": phase, "percent": 42, "error": None,
                                                  "counts": {"total": 123456, "imported": 51000, "skipped": 12,
                                                             "failed": 3}}}, 2)
        return world                    # two polls in flight (0 s, 5 s), then the real answer: completed

    def assertNoTerminalControl(self, written, token):
        for sequence in (b"\x1b]", b"\x1b[2J", b"\x07"):
            self.assertNotIn(sequence, written)
        text = written.decode("utf-8")                  # strict: the terminal gets valid UTF-8
        self.assertNotIn(token, text)
        self.assertNotIn(token[4:10], text)             # not even the start of it, cut by the width
        return text

    def test_a_hostile_phase_on_a_terminal(self):
        widths = (40, 80)
        worlds = [self.hostile_world() for _ in widths]
        runs = in_parallel(lambda pair: run_on_pty(pair[0], ["contacts-import", "wait", "1"], pair[1], "xterm"),
                           list(zip(worlds, widths)))
        for world, columns, (result, written) in zip(worlds, widths, runs):
            with self.subTest(columns=columns):
                self.assertClean(result)
                self.assertEqual(result.code, 0, result)
                self.assertEqual(json.loads(result.stdout)["phase"], "completed")
                text = self.assertNoTerminalControl(written, world.token)
                self.assertNotIn("\x1b[J", text)          # erase-line only, never erase-display
                shown = re.sub(r"\x1b\[K|\x1b\[[0-9]+A|\x1b\[[0-9;]*m", "", text)
                self.assertNotIn("\x1b", shown, "an escape sequence that is not the tool's own: %r" % text)
                # one progress line, redrawn: no newline inside it, and the final newline ends it
                self.assertTrue(shown.endswith("\n"), repr(text[-200:]))
                self.assertEqual(shown.count("\n"), 1, repr(text))
                redraws = [line for line in shown[:-1].split("\r") if line]
                self.assertGreaterEqual(len(redraws), 5, redraws)          # once a (virtual) second
                for line in redraws:
                    self.assertLessEqual(cells(line), columns, "wraps at %d columns: %r" % (columns, line))
                    self.assertTrue(line.startswith("import 1 "), line)
                self.assertTrue(any("TITLE" in line for line in redraws), redraws)   # the phase was shown
                self.assertIn("completed", redraws[-1])

    def test_term_dumb_on_a_terminal_gets_the_log_form(self):
        world = self.hostile_world()
        result, written = run_on_pty(world, ["contacts-import", "wait", "1"], 80, "dumb")
        self.assertClean(result)
        self.assertEqual(result.code, 0, result)
        text = self.assertNoTerminalControl(written, world.token)
        self.assertNotIn("\x1b", text)
        self.assertNotIn("\r", text)
        lines = text.split("\n")
        self.assertEqual(lines[-1], "", repr(text))
        self.assertEqual(len(lines[:-1]), 3, lines)                    # one line per poll
        for line in lines[:-1]:
            self.assertRegex(line, STAMP)
            self.assertIn("import 1: ", line)

    # ------------------------------------------------------------ 8. the log form

    def test_the_log_form_dates_every_line_and_ends_with_pure_json(self):
        failing = StreamWorld(self)
        forged = 'x\n{"error": {"code": "FORGED", "message": "m", "meta": {}}}\n2026-01-01T00:00:00Z forged'
        for fault in ({"status": 503, "headers": {"Retry-After": "1"}},
                      {"json": {"importId": 1, "phase": forged, "percent": 10, "counts": None, "error": None}},
                      {"json": {"importId": 1, "phase": "failed", "percent": 40, "counts": None,
                                "error": {"code": "X", "message": "broken\n" + forged}}}):
            failing.platform.inject("status", fault)
        watching = StreamWorld(self)
        watching.platform.inject("status", {}, 2)           # the real answers: a draft, in flight
        watching.platform.inject("status", {"json": {"importId": 100, "phase": "completed", "percent": 100,
                                                     "counts": None, "error": None}})
        # a time zone far from UTC: the stamps must still be UTC
        for world in (failing, watching):
            world.env["TZ"] = "<+0545>-05:45"
        log_file = os.path.join(failing.dir, "stderr.log")
        began = time.time()

        def to_file():
            with open(log_file, "wb") as handle:
                return run_cli(["contacts-import", "wait", "1"], failing.env, fast=True,
                               stderr=handle)
        failed, watched = in_parallel(lambda job: job(), [
            to_file, lambda: run_cli(START + ["--watch"], watching.env, BODY, fast=True)])
        ended = time.time()
        with open(log_file, "rb") as handle:
            failed.raw_stderr = handle.read()
            failed.stderr = failed.raw_stderr.decode("utf-8")
        for name, world, result, code in (("wait to a file", failing, failed, "IMPORT_FAILED"),
                                          ("start --watch to a pipe", watching, watched, None)):
            with self.subTest(name):
                self.assertClean(result)
                self.assertTrue(result.stderr.endswith("\n"), result)
                lines = result.stderr[:-1].split("\n")
                if code is not None:
                    self.assertEqual(result.code, 2, result)
                    envelope = lines.pop()
                    self.assertTrue(envelope.startswith('{"error": '), "not pure JSON: %r" % envelope)
                    self.assertEqual(list(json.loads(envelope)), ["error"], envelope)
                    self.assertEqual(json.loads(envelope)["error"]["code"], code, envelope)
                else:
                    self.assertOk(result)
                self.assertGreaterEqual(len(lines), 3, lines)
                virtual = sum(world.sleeps())
                stamps = []
                for line in lines:
                    match = STAMP_AT.match(line)
                    self.assertIsNotNone(match, "a line without its UTC time: %r" % line)
                    stamps.append(calendar.timegm(tuple(int(g) for g in match.groups()) + (0, 0, 0)))
                    self.assertNotIn("FORGED", line[:40])
                for stamp in stamps:
                    self.assertTrue(began - 2 <= stamp <= ended + virtual + 2,
                                    "not the UTC time: %r (began %d, virtual %ds)" % (lines, began, virtual))
                self.assertEqual(stamps, sorted(stamps), lines)


if __name__ == "__main__":
    unittest.main()

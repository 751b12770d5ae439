"""Shared test helpers: the tool in-process with an injected clock, a World (sandbox, config directory and
environment), the tool as a subprocess, and the assertions on what a run left (Result)."""

import atexit
import contextlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import unittest
from unittest import mock

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
TOOL = os.path.join(ROOT, "landbase_import.py")
sys.path.insert(0, ROOT)
sys.path.insert(0, HERE)

import sandbox  # noqa: E402
from launch import load  # noqa: E402

LAUNCH = os.path.join(HERE, "launch.py")
FASTCLOCK = os.path.join(HERE, "fastclock.py")
if not os.environ.get("LBI_TEST_CACHE"):        # not under tests/run.py, which keeps one for the suite
    os.environ["LBI_TEST_CACHE"] = tempfile.mkdtemp(prefix="lbi-code-")
    atexit.register(shutil.rmtree, os.environ["LBI_TEST_CACHE"], True)


def import_tool():
    """`import landbase_import`, from the code compiled once for the suite (see launch.py)."""
    if "landbase_import" not in sys.modules:
        sys.modules["landbase_import"] = load("landbase_import", TOOL)
    return sys.modules["landbase_import"]


tool = import_tool()

STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ ", re.M)
TRACES = ("Traceback", "internal error", "Exception occurred")    # the last: socketserver's handle_error
# CLI.md's table of exit codes (the README's Exit codes), stated here rather than read from the
# tool, whose own table is what it checks. The one copy in the tests: every other module imports it
EXITS = {"INVALID_INPUT": 1, "VALIDATION_ERROR": 1, "SETUP_FAILED": 1,
         "NOT_FOUND": 2, "CONFLICT": 2, "API_ERROR": 2, "RATE_LIMITED": 2, "UPGRADE_REQUIRED": 2,
         "IMPORT_FAILED": 2, "IMPORT_PARTIAL": 2, "OUTPUT_FAILED": 2,
         "AUTH_REQUIRED": 3, "AUTH_FAILED": 3, "TIMEOUT": 4, "NETWORK_ERROR": 4,
         "INTERRUPTED": 130, "TERMINATED": 143}
# the environment a test must not inherit: the tool's own variables, proxies, terminal and colour settings
CLEARED = ("all_proxy", "ALL_PROXY", "TZ", "COLUMNS", "LINES", "FASTCLOCK_LOG",
           "FASTCLOCK_ADVANCE", "FASTCLOCK_NO_LOOKUP", "FASTCLOCK_CONNECT_LOG",
           "FASTCLOCK_SLOW_FSYNC", "LANDBASE_ACCESS_TOKEN", "LANDBASE_ACCOUNT_ID",
           "LANDBASE_ALLOW_CUSTOM_API_URL", "LANDBASE_CONFIG_DIR", "LANDBASE_PLATFORM_API_URL",
           "LANDBASE_PLATFORM_WEB_URL", "BROWSER", "SSH_CONNECTION", "SSH_TTY", "NO_COLOR",
           "HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "TERM", "SSL_CERT_FILE",
           "SSL_CERT_DIR")


def direct_opener():
    """A urllib opener that uses no proxy, whatever the environment says: the tests talk to loopback."""
    import urllib.request
    return urllib.request.build_opener(urllib.request.ProxyHandler({}))


def envelope_of(stderr):
    """The error envelope: the last stderr line, which must be one."""
    return json.loads(stderr.rstrip("\n").split("\n")[-1])


def write_session(directory, token, account="acc_demo", days=6, **extra):
    """platform.json in `directory` as a login leaves it (0600 in a 0700 directory), without the tool."""
    os.makedirs(directory, 0o700, exist_ok=True)
    doc = {"accessToken": token, "accountId": account, "deviceName": "test-host",
           "expiresAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + days * 86400))}
    doc.update(extra)
    path = os.path.join(directory, "platform.json")
    with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as handle:
        json.dump(doc, handle)
    return path


def on_sleep(clock, count, action):
    """Make the clock call action() when the tool sleeps for the count-th time (then sleep as usual)."""
    real = clock.sleep
    calls = []

    def sleep(seconds):
        calls.append(seconds)
        if len(calls) == count:
            action()
        real(seconds)
    clock.sleep = sleep


class FakeClock(tool.Clock):
    """Time that moves only when the tool sleeps; each sleep also moves the sandbox's platform time."""

    def __init__(self, platform=None, wall=None):
        self.t = 1000.0
        self.wall0 = time.time() if wall is None else wall
        self.sleeps = []
        self.platform = platform

    def now(self):
        return self.t

    def wall(self):
        return self.wall0 + self.t - 1000.0

    def sleep(self, seconds):
        seconds = max(0.0, seconds)
        self.sleeps.append(seconds)
        self.t += seconds
        if self.platform is not None:
            self.platform.advance(seconds)

    def wait_event(self, event, seconds):
        if event.wait(0.05):            # an answer already on its way; else the time passes at once
            return True
        self.t += seconds
        return event.is_set()


class Result:
    """What a run of the tool left: its exit code, stdout and stderr (as text; as bytes too, raw_stdout and
    raw_stderr, when it ran as a process), and for a process its arguments, seconds and whether it hung."""

    def __init__(self, code, stdout, stderr, argv=(), seconds=0.0, hung=False):
        self.code, self.argv, self.seconds, self.hung = code, list(argv), seconds, hung
        self.raw_stdout, self.stdout = self._both(stdout)
        self.raw_stderr, self.stderr = self._both(stderr)

    @staticmethod
    def _both(output):
        if isinstance(output, str):
            return output.encode("utf-8", "surrogateescape"), output
        return output or b"", (output or b"").decode("utf-8", "replace")

    @property
    def json(self):
        return json.loads(self.stdout)

    @property
    def log(self):
        """stderr without the UTC time that begins each line of the log form (the envelope has none)."""
        return STAMP.sub("", self.stderr)

    @property
    def lines(self):
        return self.log.rstrip("\n").split("\n") if self.log else []

    @property
    def envelope(self):
        """The error envelope, which must be the last stderr line; None when that line is not one."""
        try:
            doc = envelope_of(self.stderr)
        except ValueError:
            return None
        return doc if isinstance(doc, dict) and isinstance(doc.get("error"), dict) else None

    @property
    def code_name(self):
        envelope = self.envelope
        return envelope["error"].get("code") if envelope else None

    def __repr__(self):
        return "Result(%s: exit=%r%s, %.1fs, stdout=%r, stderr=%r)" % (
            " ".join(self.argv) or "in-process", self.code, " HUNG" if self.hung else "", self.seconds,
            self.stdout[-800:], self.stderr[-2000:])


class ResultTestCase(unittest.TestCase):
    """The assertions on a Result, wherever the tool ran: in-process or as a process."""

    def assertClean(self, result, bug=False):
        """No hang, no traceback, no internal error (socketserver's tracebacks included); with bug=True
        the test planted a bug, and its internal error is expected."""
        self.assertFalse(result.hung, "hung: %r" % result)
        for trace in TRACES[:1] if bug else TRACES:
            self.assertNotIn(trace, result.stderr, result)
            self.assertNotIn(trace, result.stdout, result)

    def assertFails(self, result, code, exit_code=None, bug=False):
        """The exit code follows the README's table, stderr ends with the envelope of `code`."""
        self.assertClean(result, bug)
        expected_exit = EXITS[code] if exit_code is None else exit_code
        self.assertEqual(result.code, expected_exit, result)
        envelope = result.envelope
        self.assertIsNotNone(envelope, "the last stderr line is not an envelope: %r" % result)
        self.assertEqual(envelope["error"]["code"], code, result)
        self.assertIsInstance(envelope["error"]["message"], str, result)
        self.assertIsInstance(envelope["error"]["meta"], dict, result)
        return envelope

    def assertOk(self, result):
        """Exit 0 and one JSON document on one line of stdout, which is returned."""
        self.assertClean(result)
        self.assertEqual(result.code, 0, result)
        self.assertTrue(result.stdout.endswith("\n") and result.stdout.count("\n") == 1, result)
        return json.loads(result.stdout)


def stop_later(box):
    """Stop a sandbox without waiting: its serve loop takes up to its poll interval (50 ms) to notice, a
    wait that every test paid, some 15 s of the suite's module time (test_login: 32 tests, 5.4 s)."""
    threading.Thread(target=box.stop, daemon=True).start()


class World:
    """One test's platform and files: a sandbox (stopped when the test ends; none with start=False), a
    throwaway directory whose landbase/ is the config directory, and `env`, the environment of the tool
    run against them as a process (`host` in its URLs, `env_extra` added). session=True stores a session."""

    def __init__(self, test, session=False, start=True, host="127.0.0.1", env_extra=None, **options):
        self.dir = tempfile.mkdtemp(prefix="lbi-test-")
        test.addCleanup(shutil.rmtree, self.dir, True)
        self.config = os.path.join(self.dir, "landbase")
        self.session_path = os.path.join(self.config, "platform.json")
        self.sandbox = self.platform = self.url = None
        if start:
            self.sandbox = sandbox.Sandbox(**options).start()
            test.addCleanup(stop_later, self.sandbox)
            self.platform = self.sandbox.platform
            self.url = self.sandbox.url.replace("127.0.0.1", host)
        self.env = subprocess_env(self.url, self.config, **(env_extra or {}))
        self.token = self.write_session() if session else None

    def write_session(self, account="acc_demo", user="usr_demo", **extra):
        """platform.json holding a new token of `user`, as a login leaves it; the token."""
        token = self.platform.mint_token(user)
        write_session(self.config, token, account, **extra)
        return token

    def count(self, method, path_part):
        return self.platform.count(method, path_part)

    def stored(self, raw=False):
        """The stored session: platform.json as it is now, parsed (raw=True: its bytes, for a test
        that it was left as it was); None when there is none. The one reader of it in the tests (a
        FIFO in its place would hang it: a test that plants one does not call it)."""
        try:
            with open(self.session_path, "rb") as handle:
                data = handle.read()
        except FileNotFoundError:
            return None
        if raw:
            return data
        return json.loads(data.decode("utf-8"))


class ToolTestCase(ResultTestCase):
    """A sandbox per test, a throwaway config directory, a clean environment, the tool in-process."""

    sandbox_options = {"min_poll_interval": 1.0}
    start_sandbox = True

    def setUp(self):
        options = dict(self.sandbox_options)
        options.setdefault("speed", 0)            # the platform's time moves with the fake clock's sleeps alone
        self.world = World(self, start=self.start_sandbox, **options)
        self.config, self.sandbox, self.platform = self.world.dir, self.world.sandbox, self.world.platform
        env = {name: None for name in CLEARED}
        env.update(LANDBASE_CONFIG_DIR=self.world.config,
                   NO_PROXY="127.0.0.1,localhost", no_proxy="127.0.0.1,localhost")
        if self.sandbox:
            env.update(LANDBASE_PLATFORM_API_URL=self.world.url, LANDBASE_PLATFORM_WEB_URL=self.world.url)
        self.env = env
        patcher = mock.patch.dict(os.environ, {k: v for k, v in env.items() if v is not None})
        patcher.start()
        self.addCleanup(patcher.stop)
        for name, value in env.items():
            if value is None:
                os.environ.pop(name, None)
        self.clock = FakeClock(self.platform if self.sandbox else None)
        clock_patch = mock.patch.object(tool, "CLOCK", self.clock)
        clock_patch.start()
        self.addCleanup(clock_patch.stop)

    @property
    def session_path(self):
        return self.world.session_path

    def stored(self, raw=False):
        """The stored session (World.stored)."""
        return self.world.stored(raw)

    def login(self, user="usr_demo", account="acc_demo", **extra):
        """A stored session for `user`, as auth login would leave it."""
        return self.world.write_session(account, user, days=7, **extra)

    def run_tool(self, *argv, **kwargs):
        """main(argv) in-process; stdin may be text or bytes, or None for a closed stdin (`<&-`)."""
        stdin = kwargs.pop("stdin", b"")
        if isinstance(stdin, str):
            stdin = stdin.encode("utf-8")
        out, err = io.StringIO(), io.StringIO()
        fake_in = None if stdin is None else io.TextIOWrapper(io.BytesIO(stdin), encoding="utf-8")
        with mock.patch.object(sys, "argv", [TOOL]), mock.patch.object(sys, "stdin", fake_in), \
                contextlib.redirect_stdout(out), \
                contextlib.redirect_stderr(err):
            code = tool.main(list(argv))
        return Result(code, out.getvalue(), err.getvalue())


def subprocess_env(base_url=None, config_dir=None, **extra):
    """The environment of the tool run as a subprocess against a loopback sandbox: nothing inherited that
    would change what it does, no proxy for loopback, no bytecode written."""
    env = {k: v for k, v in os.environ.items() if k not in CLEARED and not k.startswith("LANDBASE_")}
    env.update(NO_PROXY="127.0.0.1,localhost", no_proxy="127.0.0.1,localhost", PYTHONDONTWRITEBYTECODE="1")
    if base_url:
        env.update(LANDBASE_PLATFORM_API_URL=base_url, LANDBASE_PLATFORM_WEB_URL=base_url)
    if config_dir:
        env["LANDBASE_CONFIG_DIR"] = config_dir
    env.update({k: v for k, v in extra.items() if v is not None})
    return env


def tool_command(as_user=False, fast=False, python=None, program=TOOL, shebang=False, options=()):
    """The command that runs the tool (or `program`) as a process, before its arguments.

    Most runs start it from its code compiled once for the suite (launch.py: the same process as
    `python3 landbase_import.py`, less the compiling), and without `site` (-S: the tool imports
    nothing outside the standard library, and a site's .pth files are no part of it; here one costs
    ~70 ms a start). as_user=True runs the file as users do, in a fixed set of tests: test_e2e's wait
    on the real schedule, --help/--version and closed stdout; test_e2e_sessions' signals;
    test_streams' closed stdin; test_unattended's processes; test_harness's check of the launcher.
    shebang=True runs the file by its #! line (test_e2e). fast=True runs fastclock.py (virtual
    sleeps; FASTCLOCK_ADVANCE in the environment moves the sandbox's clock along), also with -S.
    python: another interpreter than this one (the fault matrix on every version); options: the
    interpreter's own, before the script (-X dev, -W error::ResourceWarning: test_devmode)."""
    if python is None:
        python = sys.executable
    python = [python] + list(options)
    if shebang:
        return [program]
    if fast:
        return python + ["-S", FASTCLOCK]
    if as_user:
        return python + [program]
    return python + ["-S", LAUNCH, program]


def _default_sigint():
    """In the child, before exec: SIGINT at its default, as in a terminal's foreground job (a
    background job of a non-interactive shell, as under make, inherits it ignored: PITFALLS)."""
    import signal
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class Running:
    """The tool started as a process by run_cli(): `process` is its Popen, finish() its Result."""

    def __init__(self, argv, command, env, stdin, stdout, stderr, background):
        self.argv = list(argv)
        self.started = time.monotonic()
        self.input = stdin
        closed = stdin is None
        self.process = subprocess.Popen(
            command, env=env, stdout=stdout, stderr=stderr,
            stdin=subprocess.DEVNULL if closed else subprocess.PIPE,
            preexec_fn=_default_sigint if background else None)
        if background and not closed:
            # the whole input now, then end of file: a command started in the background reads it
            # while the test waits on something else (a request, a line on stderr)
            try:
                self.process.stdin.write(stdin)
                self.process.stdin.close()
            except BrokenPipeError:
                pass                                # it ended without reading: its Result says how
            self.process.stdin = None
            self.input = None

    def finish(self, timeout=60):
        """The Result once the process has ended; one still going after `timeout` seconds is
        killed and marked hung (a hang is a failure that assertClean names, not a test that waits
        forever)."""
        hung = False
        try:
            out, err = self.process.communicate(self.input, timeout=timeout)
        except subprocess.TimeoutExpired:
            hung = True
            self.process.kill()
            out, err = self.process.communicate()
        seconds = time.monotonic() - self.started
        return Result(self.process.returncode, out, err, self.argv, seconds, hung)


NOBODY_COPIES = {}


def copy_for_nobody(program):
    """A copy of `program` that the user nobody can read, in a directory nobody may enter, made
    once for the run of the tests."""
    if program not in NOBODY_COPIES:
        directory = tempfile.mkdtemp(prefix="lbi-nobody-")
        atexit.register(shutil.rmtree, directory, True)
        os.chmod(directory, 0o755)
        copy = os.path.join(directory, os.path.basename(program))
        shutil.copyfile(program, copy)
        os.chmod(copy, 0o644)
        NOBODY_COPIES[program] = copy
    return NOBODY_COPIES[program]


def run_cli(argv, env, stdin=b"", redirect="", extra_env=None, fast=False, as_user=False,
            timeout=60, background=False, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            python=None, program=TOOL, shebang=False, options=(), nobody=False):
    """The tool as a process: the one way the tests start it (faults.Launcher, which measures a
    run, builds its command with tool_command too). Its Result; with background=True, the Running
    process instead (SIGINT at its default, its input already written), for a test that signals it
    or reads its stderr while it runs, then calls finish().

    env: the whole environment (World.env, subprocess_env()); extra_env: changes to it, where None
    removes a variable. stdin: text or bytes, or None for a closed stdin (`<&-`). redirect: a shell
    redirection applied by /bin/sh, as a user types `landbase_import.py ... >&-`. stdout, stderr: a
    pipe (read into the Result), or a file or descriptor the test reads itself. fast, as_user,
    python, program, shebang, options: see tool_command. nobody=True runs it as the user nobody
    (setpriv; the tests run as root in CI, and root may write anything), from a copy of the file
    nobody can read, as users run it: a clone in a directory only its owner may enter (mktemp -d
    makes one) is closed to nobody, launch.py with it. A run still going after `timeout` is killed
    and marked hung."""
    if isinstance(stdin, str):
        stdin = stdin.encode("utf-8")
    env = dict(env)
    for name, value in (extra_env or {}).items():
        env.pop(name, None)
        if value is not None:
            env[name] = value
    if nobody:
        program = copy_for_nobody(program)
        as_user = True
    command = tool_command(as_user, fast, python, program, shebang, options) + list(argv)
    if nobody:
        command = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--"] + command
    if stdin is None:
        redirect = (redirect + " <&-").strip()
    if redirect:
        command = ["/bin/sh", "-c", 'exec "$@" ' + redirect, "sh"] + command
    running = Running(argv, command, env, stdin, stdout, stderr, background)
    if background:
        return running
    return running.finish(timeout)

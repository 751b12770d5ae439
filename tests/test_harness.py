"""The harness itself: support.run_cli (the one way the tests run the tool as a process),
launch.py (the tool from its code compiled once), fastclock.py (virtual sleeps), World.stored()
(the one reader of the session file), support.EXITS against the README, and run.py's count. Each
test here was seen failing with the piece it checks broken."""

import io
import json
import os
import re
import select
import signal
import sys
import unittest

import run
from support import (EXITS, FASTCLOCK, LAUNCH, ROOT, TOOL, World, run_cli, subprocess_env,
                     tool_command, write_session)

PROBE = r'''"""A program that prints what a run of it can see of how it was started."""
import os, signal, sys, time
names = sorted((k, type(v).__name__) for k, v in globals().items()
               if k not in ("os", "signal", "sys", "time"))
print(names, __name__, __file__, __doc__, sys.argv, sys.path[0],
      sys.modules["__main__"].__dict__ is globals())
print([signal.getsignal(s)
       for s in (signal.SIGINT, signal.SIGTERM, signal.SIGPIPE, signal.SIGHUP)])
# what -S leaves out
site = ("no_site", "site-packages", "exit", "quit", "help", "copyright", "credits", "license")
path = [p for i, p in enumerate(sys.path)
        if i and "site-packages" not in p and p not in sys.path[:i]]
print(repr(sys.flags).replace("no_site=1", "no_site=0"), path,
      sorted(name for name in vars(__builtins__) if name not in site), sys.stdin.read())
sys.stdout.flush()
if sys.argv[1] == "exit":
    sys.exit(int(sys.argv[2]))
if sys.argv[1] == "raise":
    raise ValueError("raised")
os.kill(os.getpid(), getattr(signal, sys.argv[1]))
time.sleep(5)
'''

# what a process started by run_cli sees of its streams, environment and SIGINT, as one line of
# JSON on stderr (its stdout may be what the test closes); `sleep` makes it outlast a timeout
STREAMS = r'''import json, os, signal, sys, time
if sys.argv[1:] == ["sleep"]:
    time.sleep(30)
seen = {"stdin": None if sys.stdin is None else sys.stdin.read(),
        "stdout_open": sys.stdout is not None, "A": os.environ.get("A"), "B": os.environ.get("B"),
        "sigint_ignored": signal.getsignal(signal.SIGINT) is signal.SIG_IGN}
sys.stderr.write(json.dumps(seen) + "\n")
'''


class LauncherTests(unittest.TestCase):
    def test_the_launcher_runs_a_file_as_python_runs_it(self):
        """Most process runs start the tool from its compiled code (support.tool_command): the
        program sees the same names, arguments, path, signal handlers and streams, and ends with
        the same exit; only what `site` does is not done (-S: its flag, site-packages, exit() and
        the like, sys.path without duplicates)."""
        probe = os.path.join(World(self, start=False).dir, "probe.py")
        with open(probe, "w") as handle:
            handle.write(PROBE)
        for ending in (["exit", "3"], ["raise"], ["SIGINT"]):
            with self.subTest(ending=ending):
                runs = [run_cli(ending, subprocess_env(), b"in", program=probe, as_user=as_user)
                        for as_user in (True, False)]
                self.assertEqual(runs[0].raw_stdout.decode().count("\n"), 3, runs[0])
                self.assertEqual(runs[1].code, runs[0].code)
                self.assertEqual(runs[1].raw_stdout, runs[0].raw_stdout)
                last_lines = [run.raw_stderr.splitlines()[-1:] for run in runs]
                self.assertEqual(last_lines[1], last_lines[0])


class ToolCommandTests(unittest.TestCase):
    def test_each_way_of_starting_the_tool(self):
        python = "/opt/python3.6"
        self.assertEqual(tool_command(), [sys.executable, "-S", LAUNCH, TOOL])
        self.assertEqual(tool_command(as_user=True), [sys.executable, TOOL])
        self.assertEqual(tool_command(shebang=True), [TOOL])
        self.assertEqual(tool_command(fast=True, python=python), [python, "-S", FASTCLOCK])
        self.assertEqual(tool_command(python=python, program="/x/probe.py"),
                         [python, "-S", LAUNCH, "/x/probe.py"])


class RunCliTests(unittest.TestCase):
    """run_cli's options each do what they say, seen from inside the process (STREAMS)."""

    def setUp(self):
        self.world = World(self, start=False)
        self.program = os.path.join(self.world.dir, "streams.py")
        with open(self.program, "w") as handle:
            handle.write(STREAMS)

    def seen(self, result):
        """What the probe saw, from its one line on stderr."""
        self.assertEqual(result.code, 0, result)
        return json.loads(result.stderr)

    def run_probe(self, *argv, **options):
        return run_cli(list(argv), self.world.env, program=self.program, as_user=True, **options)

    def test_stdin_text_bytes_or_closed(self):
        self.assertEqual(self.seen(self.run_probe(stdin="t\u00e9xt"))["stdin"], "t\u00e9xt")
        self.assertEqual(self.seen(self.run_probe(stdin=b"bytes"))["stdin"], "bytes")
        self.assertIsNone(self.seen(self.run_probe(stdin=None))["stdin"])      # `<&-`: none at all

    def test_a_redirect_is_applied_by_the_shell(self):
        self.assertTrue(self.seen(self.run_probe())["stdout_open"])
        self.assertFalse(self.seen(self.run_probe(redirect=">&-"))["stdout_open"])

    def test_extra_env_adds_and_removes(self):
        env = dict(self.world.env, A="base", B="base")
        result = run_cli([], env, program=self.program, as_user=True,
                         extra_env={"A": "extra", "B": None})
        self.assertEqual((self.seen(result)["A"], self.seen(result)["B"]), ("extra", None))
        self.assertEqual(env["B"], "base", "the caller's environment is left as it was")

    def test_a_run_past_its_timeout_is_killed_and_marked_hung(self):
        """(Really waits half a second: the timeout is real time.)"""
        result = self.run_probe("sleep", timeout=0.5)
        self.assertTrue(result.hung, result)
        self.assertEqual(result.code, -signal.SIGKILL, result)

    def test_background_has_its_input_at_once_and_sigint_at_its_default(self):
        # as under make in the background, this process ignores SIGINT: its children inherit that,
        # but for a background run, which a test may interrupt
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        self.addCleanup(signal.signal, signal.SIGINT, previous)
        running = self.run_probe(stdin=b"given", background=True)
        # before finish(): the input is already there, and so the probe's line (else a hang)
        ready = select.select([running.process.stderr], [], [], 20)[0]
        line = running.process.stderr.readline() if ready else b"{}"
        result = running.finish(timeout=30)
        self.assertTrue(ready, "no line before finish(): the input was not written at the start")
        self.assertEqual(result.code, 0, result)
        seen = json.loads(line.decode())
        self.assertEqual((seen["stdin"], seen["sigint_ignored"]), ("given", False))
        self.assertTrue(self.seen(self.run_probe())["sigint_ignored"])    # inherited otherwise


class FastClockTests(unittest.TestCase):
    def test_a_wait_under_fastclock_sleeps_in_virtual_time_and_moves_the_sandbox_along(self):
        world = World(self, session=True, speed=0, min_poll_interval=0)
        world.platform.imports[1].update(dataset="ds_complete", enqueued=world.platform.elapsed())
        log = os.path.join(world.dir, "sleeps")
        result = run_cli(["contacts-import", "wait", "1", "--account=acc_demo"], world.env,
                         fast=True,
                         extra_env={"FASTCLOCK_LOG": log, "FASTCLOCK_ADVANCE": world.url})
        self.assertEqual(result.code, 0, result)
        self.assertEqual(result.json["phase"], "completed")   # 45 s of the platform's time went by
        with open(log) as handle:
            # to a tenth: the poller measures each wait from the end of its poll, less the ms since
            self.assertEqual([round(float(line), 1) for line in handle], [5, 10, 20, 20])
        self.assertEqual(world.count("GET", "/contacts-imports/1"), 5)
        # real time on purpose: the promise is that 55 s of waits take none
        self.assertLess(result.seconds, 20, result)


class StoredSessionTests(unittest.TestCase):
    def test_none_then_the_document_then_its_bytes(self):
        world = World(self, start=False)
        self.assertIsNone(world.stored())
        self.assertIsNone(world.stored(raw=True))
        write_session(world.config, "lbs_stored", account="acc_team")
        stored = world.stored()
        self.assertEqual((stored["accessToken"], stored["accountId"]), ("lbs_stored", "acc_team"))
        with open(world.session_path, "rb") as handle:
            self.assertEqual(world.stored(raw=True), handle.read())


class ExitTableTests(unittest.TestCase):
    def test_exits_is_the_readmes_table(self):
        """support.EXITS, the tests' one exit table, is the README's (CLI.md's): each code in the
        row of its exit. TERMINATED is also 129, after a SIGHUP (test_unattended sends one)."""
        with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as handle:
            readme = handle.read()
        section = re.search(r"^#+ Exit codes\n+((?:\|.*\n)+)", readme, re.M)
        self.assertIsNotNone(section, "no table under a heading 'Exit codes' in README.md")
        documented = {}
        for exit_code, codes in re.findall(r"^\| (\d+) \|(.*)\|$", section.group(1), re.M):
            for code in re.findall(r"`([A-Z][A-Z_]+)`", codes):
                documented.setdefault(code, set()).add(int(exit_code))
        expected = {code: {exit_code} for code, exit_code in EXITS.items()}
        expected["TERMINATED"].add(129)
        self.assertEqual(documented, expected)


class RunnerTests(unittest.TestCase):
    def test_the_count_is_of_tests_that_passed(self):
        class Sample(unittest.TestCase):
            def test_passes(self):
                pass

            def test_fails(self):
                self.fail("on purpose")

            @unittest.skip("on purpose")
            def test_skipped(self):
                pass
        suite = unittest.defaultTestLoader.loadTestsFromTestCase(Sample)
        result = unittest.TextTestRunner(stream=io.StringIO(), resultclass=run.Counted).run(suite)
        self.assertEqual((result.passed, len(result.failures), len(result.skipped)), (1, 1, 1))

    def test_the_summary_line_is_what_the_suite_reads(self):
        summary = "x\ntests: 3 passed, 1 failed, 2 skipped\n"
        self.assertEqual(run.SUMMARY.findall(summary), [("3", "1", "2")])
        self.assertEqual(run.SUMMARY.findall("tests: 3 passed\n"), [])


if __name__ == "__main__":
    unittest.main()

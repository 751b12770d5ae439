"""End to end: the real file as a subprocess against the sandbox, as a user types it (started from its code
compiled once for the suite, or, in the tests named in support.tool_command, as the file itself).

The logins and the signals are in test_e2e_sessions.py. One wait runs on the real schedule (test_start_status_and_wait_for_completed_partial_and_failed: it
sleeps a real 5 s, on purpose, to prove the schedule is kept outside any fake clock); the others run
through fastclock.py, whose virtual sleeps move the sandbox's clock too. The poll schedule itself, a
429, an expired token mid-wait are test_poll's, on the fake clock.
"""

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

from support import TOOL, ResultTestCase, World, direct_opener, run_cli, subprocess_env, tool, tool_command

DIRECT = direct_opener()
BROWSER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fake_browser.py")


class EndToEndTestCase(ResultTestCase):
    """A sandbox at --speed 10 and a config directory per test; the tool as a subprocess (the file itself
    in the tests that set as_user: see support.tool_command)."""

    as_user = False

    def setUp(self):
        world = World(self, speed=10, device_interval=1, min_poll_interval=0, env_extra={"BROWSER": BROWSER})
        self.sandbox, self.platform, self.config, self.env = world.sandbox, world.platform, world.dir, world.env

    def cli(self, *argv, **kwargs):
        env = dict(self.env)
        env.update(kwargs.pop("env", {}))
        kwargs.setdefault("as_user", self.as_user)
        return run_cli(argv, env, **kwargs)

    def log_in(self, user="usr_demo"):
        token = self.platform.mint_token(user)
        self.assertOk(self.cli("auth", "login", "--with-token", stdin=token + "\n"))
        return token

class EndToEndTests(EndToEndTestCase):
    def test_start_status_and_wait_for_completed_partial_and_failed(self):
        self.as_user = True
        self.log_in()
        self.assertOk(self.cli("account", "set", "acc_demo"))
        ids = []
        for dataset in ("ds_demo", "ds_partial", "ds_failed"):
            doc = self.assertOk(self.cli("contacts-import", "start", "--json", "-",
                                   stdin=json.dumps({"datasetId": dataset, "tagName": "e2e"})))
            self.assertTrue(doc["runRef"].startswith("run_"))
            ids.append(doc["importId"])
        snapshot = self.assertOk(self.cli("contacts-import", "status", str(ids[0])))
        self.assertEqual(sorted(snapshot), ["counts", "error", "importId", "percent", "phase"])
        self.assertIn(snapshot["phase"], ("draft", "preparing", "in_progress", "completed"))
        # each first poll fails, whatever the imports' state by then: so the second poll, 5 real seconds
        # later, is the one that sees them end, and the wait cannot end before the schedule allows
        self.platform.inject("status", {"status": 503}, times=3)
        started = time.monotonic()
        result = self.cli("contacts-import", "wait", *[str(i) for i in ids])
        self.assertGreaterEqual(time.monotonic() - started, 5)         # the real schedule: 0 s, then 5 s
        self.assertEqual(result.log.count("poll failed (API_ERROR"), 3)
        envelope = self.assertFails(result, "IMPORT_PARTIAL", 2)           # the first id that did not complete
        self.assertEqual(envelope["error"]["meta"], {"importIds": [ids[1]]})
        self.assertEqual([d["phase"] for d in json.loads(result.stdout)], ["completed", "partial", "failed"])
        self.assertFails(self.cli("contacts-import", "wait", str(ids[1])), "IMPORT_PARTIAL", 2)
        self.assertEqual(self.assertOk(self.cli("contacts-import", "wait", str(ids[0])))["phase"], "completed")

    def test_start_watch(self):
        self.log_in()
        result = self.cli("contacts-import", "start", "--json", "-", "--watch", "--account=acc_demo", fast=True,
                          stdin='{"datasetId": "ds_demo", "tagName": "watch"}', env={"FASTCLOCK_ADVANCE": self.sandbox.url})
        doc = self.assertOk(result)
        self.assertEqual(doc["phase"], "completed")
        lines = result.lines
        self.assertTrue(lines[0].startswith("Started import %d " % doc["importId"]), lines)
        self.assertIn("%s contacts-import wait %d --account=acc_demo" % (TOOL, doc["importId"]), lines[0])
        self.assertRegex(lines[1], r"^import %d: (draft|preparing|in_progress) .*next poll in 5s$" % doc["importId"])

    def test_conflict_validation_error_and_not_found(self):
        self.log_in()
        body = '{"datasetId": "ds_demo", "tagName": "again", "importId": 1}'
        self.assertOk(self.cli("contacts-import", "start", "--json", "-", "--account=acc_demo", stdin=body))
        envelope = self.assertFails(self.cli("contacts-import", "start", "--json", "-", "--account=acc_demo", stdin=body),
                              "CONFLICT", 2)
        self.assertEqual(envelope["error"]["meta"]["importId"], 1)
        self.assertEqual(self.platform.count("POST", "/contacts-imports"), 2)     # a CONFLICT is not retried
        self.assertFails(self.cli("contacts-import", "start", "--json", "-", "--account=acc_demo",
                            stdin='{"datasetId": "ds_other", "tagName": "x"}'), "VALIDATION_ERROR", 1)
        self.assertFails(self.cli("contacts-import", "start", "--json", "-", "--account=acc_demo",
                            stdin='{"datasetId": "ds_demo", "tagName": "x", "importId": 424242}'), "NOT_FOUND", 2)
        self.assertFails(self.cli("contacts-import", "status", "1", "--account=acc_team"), "NOT_FOUND", 2)
        self.assertFails(self.cli("contacts-import", "status", "1"), "INVALID_INPUT", 1)    # no active account

    def test_a_closed_stdout_exits_quietly(self):
        self.log_in()
        process = subprocess.Popen(tool_command(as_user=True) + ["contacts-import", "status", "1", "--account=acc_demo"],
                                   env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        process.stdout.close()                  # like `| head -c0`
        process.stdout = None
        _, err = process.communicate(timeout=30)
        err = err.decode()
        self.assertEqual(process.returncode, 0, err)
        self.assertEqual(err, "")

    def test_help_version_and_bad_usage(self):
        self.as_user = True
        result = self.cli("--help")
        self.assertEqual(result.code, 0)
        self.assertIn("contacts-import", result.stdout)
        with open(TOOL, "rb") as handle:
            digest = hashlib.sha256(handle.read()).hexdigest()
        version = "landbase-import %s\nsha256 %s %s\n" % (tool.__version__, digest, TOOL)
        self.assertEqual(self.cli("--version").stdout, version)
        # by its #! line, which finds python3 on PATH: this interpreter's, first on PATH here
        bin_dir = os.path.join(self.config, "bin")
        os.mkdir(bin_dir)
        os.symlink(sys.executable, os.path.join(bin_dir, "python3"))
        env = dict(self.env, PATH=bin_dir + os.pathsep + self.env.get("PATH", os.defpath))
        process = subprocess.run([TOOL, "--version"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 timeout=60)
        self.assertEqual((process.returncode, process.stdout.decode(), process.stderr),
                         (0, version, b""))
        self.assertFails(self.cli("contacts-import", "frobnicate"), "INVALID_INPUT", 1)
        self.assertFails(self.cli("contacts-import", "status", "7", "--account=acc_1",
                            env={"LANDBASE_CONFIG_DIR": os.path.join(self.config, "none")}), "AUTH_REQUIRED", 3)


PROBE = r'''"""A program that prints what a run of it can see of how it was started."""
import os, signal, sys, time
names = sorted((k, type(v).__name__) for k, v in globals().items() if k not in ("os", "signal", "sys", "time"))
print(names, __name__, __file__, __doc__, sys.argv, sys.path[0], sys.modules["__main__"].__dict__ is globals())
print([signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGPIPE, signal.SIGHUP)])
site = ("no_site", "site-packages", "exit", "quit", "help", "copyright", "credits", "license")   # what -S leaves out
path = [p for i, p in enumerate(sys.path) if i and "site-packages" not in p and p not in sys.path[:i]]
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


class LauncherTests(unittest.TestCase):
    def test_the_launcher_runs_a_file_as_python_runs_it(self):
        """Most process runs start the tool from its compiled code (support.tool_command): the program
        sees the same names, arguments, path, signal handlers and streams, and ends with the same exit;
        only what `site` does is not done (-S: its flag, site-packages, exit() and the like, sys.path
        without duplicates)."""
        directory = tempfile.mkdtemp(prefix="lbi-launch-")
        self.addCleanup(shutil.rmtree, directory, True)
        probe = os.path.join(directory, "probe.py")
        with open(probe, "w") as handle:
            handle.write(PROBE)
        for ending in (["exit", "3"], ["raise"], ["SIGINT"]):
            with self.subTest(ending=ending):
                runs = [subprocess.run(command + ending, input=b"in", stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                       env=subprocess_env(), timeout=60)
                        for command in ([sys.executable, probe], tool_command()[:-1] + [probe])]
                self.assertEqual(runs[0].stdout.decode().count("\n"), 3, runs[0])
                self.assertEqual(runs[1].returncode, runs[0].returncode)
                self.assertEqual(runs[1].stdout, runs[0].stdout)
                self.assertEqual(runs[1].stderr.splitlines()[-1:], runs[0].stderr.splitlines()[-1:])


if __name__ == "__main__":
    unittest.main()

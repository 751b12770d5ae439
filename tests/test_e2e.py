"""End to end: the real file as a subprocess, exactly as a user types it, against the sandbox.

One wait runs on the real schedule (test_start_status_and_wait_for_completed_partial_and_failed: it
sleeps a real 5 s, on purpose, to prove the schedule is kept outside any fake clock); the others run
through fastclock.py, whose virtual sleeps move the sandbox's clock too. The poll schedule itself, a
429, an expired token mid-wait are test_poll's, on the fake clock.
"""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest
from urllib.parse import urlencode

from support import STAMP, TOOL, direct_opener, envelope_of, run_cli, sandbox, subprocess_env, tool

DIRECT = direct_opener()
BROWSER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fake_browser.py")


class EndToEndTests(unittest.TestCase):
    def setUp(self):
        self.sandbox = sandbox.Sandbox(speed=10, device_interval=1, min_poll_interval=0).start()
        self.addCleanup(self.sandbox.stop)
        self.platform = self.sandbox.platform
        self.config = tempfile.mkdtemp(prefix="lbi-e2e-")
        self.addCleanup(shutil.rmtree, self.config, True)
        self.env = subprocess_env(self.sandbox.url, os.path.join(self.config, "landbase"), BROWSER=BROWSER)

    def cli(self, *argv, **kwargs):
        env = dict(self.env)
        env.update(kwargs.pop("env", {}))
        return run_cli(argv, env, **kwargs)

    def ok(self, result):
        self.assertEqual(result.code, 0, result)
        self.assertNotIn("Traceback", result.stderr)
        return json.loads(result.stdout)

    def fails(self, result, code, exit_code):
        self.assertEqual(result.code, exit_code, result)
        self.assertNotIn("Traceback", result.stderr)
        envelope = result.envelope
        self.assertEqual(envelope["error"]["code"], code, result)
        return envelope

    def log_in(self, user="usr_demo"):
        token = self.platform.mint_token(user)
        self.ok(self.cli("auth", "login", "--with-token", stdin=token + "\n"))
        return token

    def test_browser_login_approve_then_status_accounts_and_logout(self):
        doc = self.ok(self.cli("auth", "login"))
        self.assertEqual(doc["userId"], "usr_demo")
        status = self.ok(self.cli("auth", "status"))
        self.assertEqual((status["authenticated"], status["tokenSource"]), (True, "file"))
        accounts = self.ok(self.cli("account", "list"))
        self.assertEqual([a["id"] for a in accounts], ["acc_demo", "acc_team"])
        self.assertEqual(self.ok(self.cli("account", "set", "acc_team")),
                         {"accountId": "acc_team", "name": "Demo Team"})
        self.assertEqual(self.ok(self.cli("auth", "status"))["accountId"], "acc_team")
        self.fails(self.cli("account", "set", "acc_other"), "NOT_FOUND", 2)
        self.assertEqual(self.ok(self.cli("auth", "logout")), {"loggedOut": True, "revoked": True})
        self.fails(self.cli("auth", "status"), "AUTH_REQUIRED", 3)

    def test_browser_login_deny(self):
        result = self.cli("auth", "login", env={"FAKE_BROWSER_DECISION": "deny"})
        self.fails(result, "AUTH_FAILED", 3)
        self.assertFalse(os.path.exists(os.path.join(self.config, "landbase", "platform.json")))

    def test_device_login(self):
        process = subprocess.Popen([sys.executable, TOOL, "auth", "login", "--device"], env=self.env,
                                   stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   universal_newlines=True)
        try:
            line = process.stderr.readline()
            match = re.search(r"open (\S+) and enter the code (\S+)", line)
            self.assertIsNotNone(match, line)
            form = urlencode({"user_code": match.group(2), "decision": "approve"}).encode()
            with DIRECT.open(match.group(1), data=form, timeout=5) as response:
                self.assertIn(b"approved", response.read())
            out, err = process.communicate(timeout=30)
        finally:
            if process.poll() is None:
                process.kill()
                process.communicate()
        self.assertEqual(process.returncode, 0, err)
        self.assertEqual(json.loads(out)["userId"], "usr_demo")

    def test_with_token_and_environment_token(self):
        token = self.platform.mint_token("usr_solo")
        doc = self.ok(self.cli("auth", "login", "--with-token", stdin=token + "\n"))
        self.assertEqual(doc["accountId"], "acc_solo")
        self.fails(self.cli("auth", "login", "--with-token", stdin="not-a-token\n"), "INVALID_INPUT", 1)
        other = self.platform.mint_token("usr_demo")
        status = self.ok(self.cli("auth", "status", env={"LANDBASE_ACCESS_TOKEN": other}))
        self.assertEqual((status["userId"], status["tokenSource"]), ("usr_demo", "env"))

    def test_start_status_and_wait_for_completed_partial_and_failed(self):
        self.log_in()
        self.ok(self.cli("account", "set", "acc_demo"))
        ids = []
        for dataset in ("ds_demo", "ds_partial", "ds_failed"):
            doc = self.ok(self.cli("contacts-import", "start", "--json", "-",
                                   stdin=json.dumps({"datasetId": dataset, "tagName": "e2e"})))
            self.assertTrue(doc["runRef"].startswith("run_"))
            ids.append(doc["importId"])
        snapshot = self.ok(self.cli("contacts-import", "status", str(ids[0])))
        self.assertEqual(sorted(snapshot), ["counts", "error", "importId", "percent", "phase"])
        self.assertIn(snapshot["phase"], ("draft", "preparing", "in_progress", "completed"))
        # each first poll fails, whatever the imports' state by then: so the second poll, 5 real seconds
        # later, is the one that sees them end, and the wait cannot end before the schedule allows
        self.platform.inject("status", {"status": 503}, times=3)
        started = time.monotonic()
        result = self.cli("contacts-import", "wait", *[str(i) for i in ids])
        self.assertGreaterEqual(time.monotonic() - started, 5)         # the real schedule: 0 s, then 5 s
        self.assertEqual(result.log.count("poll failed (API_ERROR"), 3)
        envelope = self.fails(result, "IMPORT_PARTIAL", 2)           # the first id that did not complete
        self.assertEqual(envelope["error"]["meta"], {"importIds": [ids[1]]})
        self.assertEqual([d["phase"] for d in json.loads(result.stdout)], ["completed", "partial", "failed"])
        self.fails(self.cli("contacts-import", "wait", str(ids[1])), "IMPORT_PARTIAL", 2)
        self.assertEqual(self.ok(self.cli("contacts-import", "wait", str(ids[0])))["phase"], "completed")

    def test_start_watch(self):
        self.log_in()
        result = self.cli("contacts-import", "start", "--json", "-", "--watch", "--account=acc_demo", fast=True,
                          stdin='{"datasetId": "ds_demo", "tagName": "watch"}', env={"FASTCLOCK_ADVANCE": self.sandbox.url})
        doc = self.ok(result)
        self.assertEqual(doc["phase"], "completed")
        lines = result.lines
        self.assertTrue(lines[0].startswith("Started import %d " % doc["importId"]), lines)
        self.assertIn("%s contacts-import wait %d --account=acc_demo" % (TOOL, doc["importId"]), lines[0])
        self.assertRegex(lines[1], r"^import %d: (draft|preparing|in_progress) .*next poll in 5s$" % doc["importId"])

    def test_conflict_validation_error_and_not_found(self):
        self.log_in()
        body = '{"datasetId": "ds_demo", "tagName": "again", "importId": 1}'
        self.ok(self.cli("contacts-import", "start", "--json", "-", "--account=acc_demo", stdin=body))
        envelope = self.fails(self.cli("contacts-import", "start", "--json", "-", "--account=acc_demo", stdin=body),
                              "CONFLICT", 2)
        self.assertEqual(envelope["error"]["meta"]["importId"], 1)
        self.assertEqual(self.platform.count("POST", "/contacts-imports"), 2)     # a CONFLICT is not retried
        self.fails(self.cli("contacts-import", "start", "--json", "-", "--account=acc_demo",
                            stdin='{"datasetId": "ds_other", "tagName": "x"}'), "VALIDATION_ERROR", 1)
        self.fails(self.cli("contacts-import", "start", "--json", "-", "--account=acc_demo",
                            stdin='{"datasetId": "ds_demo", "tagName": "x", "importId": 424242}'), "NOT_FOUND", 2)
        self.fails(self.cli("contacts-import", "status", "1", "--account=acc_team"), "NOT_FOUND", 2)
        self.fails(self.cli("contacts-import", "status", "1"), "INVALID_INPUT", 1)    # no active account

    def test_signals_end_a_wait_with_the_resume_command(self):
        self.log_in()
        doc = self.ok(self.cli("contacts-import", "start", "--json", "-", "--account=acc_demo",
                               stdin='{"datasetId": "ds_long", "tagName": "x"}'))
        for signum, exit_code, code in ((signal.SIGINT, 130, "INTERRUPTED"), (signal.SIGTERM, 143, "TERMINATED")):
            with self.subTest(signal=signum):
                process = subprocess.Popen(
                    [sys.executable, TOOL, "contacts-import", "wait", str(doc["importId"]), "--account=acc_demo"],
                    env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True,
                    preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
                try:
                    self.assertIn("next poll", process.stderr.readline())
                    process.send_signal(signum)
                    out, err = process.communicate(timeout=10)
                finally:
                    if process.poll() is None:
                        process.kill()
                self.assertEqual(process.returncode, exit_code, err)
                self.assertNotIn("Traceback", err)
                self.assertIn("keeps running", err)
                self.assertIn("\n  %s contacts-import wait %d --account=acc_demo\n" % (TOOL, doc["importId"]),
                              STAMP.sub("", err))
                self.assertEqual(envelope_of(err)["error"]["code"], code)
                self.assertEqual(out, "")

    def test_a_second_signal_does_not_cut_the_first_short(self):
        self.log_in()
        doc = self.ok(self.cli("contacts-import", "start", "--json", "-", "--account=acc_demo",
                               stdin='{"datasetId": "ds_long", "tagName": "x"}'))
        for attempt in range(5):
            with self.subTest(attempt=attempt):
                process = subprocess.Popen(
                    [sys.executable, TOOL, "contacts-import", "wait", str(doc["importId"]), "--account=acc_demo"],
                    env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True,
                    preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
                try:
                    self.assertIn("next poll", process.stderr.readline())
                    for signum in (signal.SIGINT, signal.SIGINT, signal.SIGTERM, signal.SIGINT):
                        process.send_signal(signum)         # the next ones while the first is being reported
                        time.sleep(0.002 * attempt)
                    out, err = process.communicate(timeout=20)
                finally:
                    if process.poll() is None:
                        process.kill()
                self.assertEqual(process.returncode, 130, err)
                self.assertNotIn("Traceback", err)
                self.assertEqual(envelope_of(err)["error"]["code"], "INTERRUPTED")

    def test_ctrl_c_does_not_wait_for_requests_in_flight(self):
        self.log_in()
        ids = [str(self.ok(self.cli("contacts-import", "start", "--json", "-", "--account=acc_demo",
                                    stdin='{"datasetId": "ds_long", "tagName": "x"}'))["importId"])
               for _ in range(3)]
        self.platform.inject("status", {"delay": 60}, times=3)    # every first poll hangs for a minute
        process = subprocess.Popen([sys.executable, TOOL, "contacts-import", "wait"] + ids + ["--account=acc_demo"],
                                   env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   universal_newlines=True,
                                   preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        try:
            deadline = time.monotonic() + 10
            while self.platform.in_flight < 3 and time.monotonic() < deadline:
                time.sleep(0.05)
            self.assertEqual(self.platform.in_flight, 3)
            process.send_signal(signal.SIGINT)
            out, err = process.communicate(timeout=50)
        finally:
            if process.poll() is None:
                process.kill()
        self.assertEqual(process.returncode, 130, err)
        self.assertEqual(self.platform.in_flight, 3)        # it ended while its three requests were still out
        self.assertIn("contacts-import wait %s --account=acc_demo" % " ".join(ids), err)

    def test_a_closed_stdout_exits_quietly(self):
        self.log_in()
        process = subprocess.Popen([sys.executable, TOOL, "contacts-import", "status", "1", "--account=acc_demo"],
                                   env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        process.stdout.close()                  # like `| head -c0`
        process.stdout = None
        _, err = process.communicate(timeout=30)
        err = err.decode()
        self.assertEqual(process.returncode, 0, err)
        self.assertEqual(err, "")

    def test_help_version_and_bad_usage(self):
        result = self.cli("--help")
        self.assertEqual(result.code, 0)
        self.assertIn("contacts-import", result.stdout)
        self.assertEqual(self.cli("--version").stdout.strip(), "landbase-import " + tool.__version__)
        self.fails(self.cli("contacts-import", "frobnicate"), "INVALID_INPUT", 1)
        self.fails(self.cli("contacts-import", "status", "7", "--account=acc_1",
                            env={"LANDBASE_CONFIG_DIR": os.path.join(self.config, "none")}), "AUTH_REQUIRED", 3)


if __name__ == "__main__":
    unittest.main()

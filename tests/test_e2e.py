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
import sys
import time
import unittest

from support import TOOL, ResultTestCase, World, direct_opener, run_cli, tool

DIRECT = direct_opener()
BROWSER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fake_browser.py")


class EndToEndTestCase(ResultTestCase):
    """A sandbox at --speed 10 and a config directory per test; the tool as a subprocess (the file itself
    in the tests that set as_user: see support.tool_command)."""

    as_user = False

    def setUp(self):
        world = World(self, speed=10, device_interval=1, min_poll_interval=0, env_extra={"BROWSER": BROWSER})
        self.world = world
        self.sandbox, self.platform, self.config, self.env = world.sandbox, world.platform, world.dir, world.env

    def cli(self, *argv, **kwargs):
        """support.run_cli in this test's world; env: changes to its environment."""
        kwargs.setdefault("as_user", self.as_user)
        return run_cli(argv, self.env, extra_env=kwargs.pop("env", None), **kwargs)

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
        running = self.cli("contacts-import", "status", "1", "--account=acc_demo", as_user=True,
                           background=True)
        running.process.stdout.close()                  # like `| head -c0`
        running.process.stdout = None
        result = running.finish(timeout=30)
        self.assertClean(result)
        self.assertEqual(result.code, 0, result)
        self.assertEqual(result.stderr, "")

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
        path = bin_dir + os.pathsep + self.env.get("PATH", os.defpath)
        result = self.cli("--version", shebang=True, env={"PATH": path})
        self.assertEqual((result.code, result.stdout, result.raw_stderr), (0, version, b""))
        self.assertFails(self.cli("contacts-import", "frobnicate"), "INVALID_INPUT", 1)
        self.assertFails(self.cli("contacts-import", "status", "7", "--account=acc_1",
                            env={"LANDBASE_CONFIG_DIR": os.path.join(self.config, "none")}), "AUTH_REQUIRED", 3)


if __name__ == "__main__":
    unittest.main()

"""End to end, the second half (see test_e2e.py): the three logins and the signals, as a user meets them.

A module of its own so that it runs beside test_e2e.py rather than after it.
"""

import json
import os
import re
import signal
import time
import unittest
from urllib.parse import urlencode

from support import STAMP, TOOL, envelope_of
from test_e2e import DIRECT, EndToEndTestCase


class LoginAndSignalTests(EndToEndTestCase):
    def test_browser_login_approve_then_status_accounts_and_logout(self):
        doc = self.assertOk(self.cli("auth", "login"))
        self.assertEqual(doc["userId"], "usr_demo")
        status = self.assertOk(self.cli("auth", "status"))
        self.assertEqual((status["authenticated"], status["tokenSource"]), (True, "file"))
        accounts = self.assertOk(self.cli("account", "list"))
        self.assertEqual([a["id"] for a in accounts], ["acc_demo", "acc_team"])
        self.assertEqual(self.assertOk(self.cli("account", "set", "acc_team")),
                         {"accountId": "acc_team", "name": "Demo Team"})
        self.assertEqual(self.assertOk(self.cli("auth", "status"))["accountId"], "acc_team")
        self.assertFails(self.cli("account", "set", "acc_other"), "NOT_FOUND", 2)
        self.assertEqual(self.assertOk(self.cli("auth", "logout")), {"loggedOut": True, "revoked": True})
        self.assertFails(self.cli("auth", "status"), "AUTH_REQUIRED", 3)

    def test_browser_login_deny(self):
        result = self.cli("auth", "login", env={"FAKE_BROWSER_DECISION": "deny"})
        self.assertFails(result, "AUTH_FAILED", 3)
        self.assertIsNone(self.world.stored())

    def test_device_login(self):
        running = self.cli("auth", "login", "--device", background=True)
        try:
            line = running.process.stderr.readline().decode()
            match = re.search(r"open (\S+) and enter the code (\S+)", line)
            self.assertIsNotNone(match, line)
            form = urlencode({"user_code": match.group(2), "decision": "approve"}).encode()
            with DIRECT.open(match.group(1), data=form, timeout=5) as response:
                self.assertIn(b"approved", response.read())
        finally:
            result = running.finish(timeout=30)
        self.assertEqual(result.code, 0, result)
        self.assertEqual(json.loads(result.stdout)["userId"], "usr_demo")

    def test_with_token_and_environment_token(self):
        token = self.platform.mint_token("usr_solo")
        doc = self.assertOk(self.cli("auth", "login", "--with-token", stdin=token + "\n"))
        self.assertEqual(doc["accountId"], "acc_solo")
        self.assertFails(self.cli("auth", "login", "--with-token", stdin="not-a-token\n"), "INVALID_INPUT", 1)
        other = self.platform.mint_token("usr_demo")
        status = self.assertOk(self.cli("auth", "status", env={"LANDBASE_ACCESS_TOKEN": other}))
        self.assertEqual((status["userId"], status["tokenSource"]), ("usr_demo", "env"))

    def signal_a_wait(self, import_id, signals, gap=0.0, as_user=False):
        """(exit, stdout, stderr) of a wait sent `signals`, `gap` seconds apart, once it is waiting."""
        running = self.cli("contacts-import", "wait", str(import_id), "--account=acc_demo",
                           as_user=as_user, background=True)
        try:
            self.assertIn("next poll", running.process.stderr.readline().decode())
            for signum in signals:
                running.process.send_signal(signum)
                time.sleep(gap)
        finally:
            result = running.finish(timeout=20)
        return result.code, result.stdout, result.stderr

    def test_signals_end_a_wait_with_the_resume_command(self):
        self.log_in()
        doc = self.assertOk(self.cli("contacts-import", "start", "--json", "-", "--account=acc_demo",
                               stdin='{"datasetId": "ds_long", "tagName": "x"}'))
        for signum, exit_code, code in ((signal.SIGINT, 130, "INTERRUPTED"), (signal.SIGTERM, 143, "TERMINATED")):
            with self.subTest(signal=signum):
                returncode, out, err = self.signal_a_wait(doc["importId"], [signum], as_user=True)
                self.assertEqual(returncode, exit_code, err)
                self.assertNotIn("Traceback", err)
                self.assertIn("keeps running", err)
                self.assertIn("Resume with: %s contacts-import wait %d --account=acc_demo\n" % (TOOL, doc["importId"]),
                              STAMP.sub("", err))
                self.assertEqual(envelope_of(err)["error"]["code"], code)
                self.assertEqual(json.loads(out)["importId"], doc["importId"])     # the last-known status

    def test_a_second_signal_does_not_cut_the_first_short(self):
        self.log_in()
        doc = self.assertOk(self.cli("contacts-import", "start", "--json", "-", "--account=acc_demo",
                               stdin='{"datasetId": "ds_long", "tagName": "x"}'))
        for attempt in range(5):
            with self.subTest(attempt=attempt):
                # the next ones arrive while the first is being reported
                returncode, out, err = self.signal_a_wait(
                    doc["importId"], [signal.SIGINT, signal.SIGINT, signal.SIGTERM, signal.SIGINT], 0.002 * attempt)
                self.assertEqual(returncode, 130, err)
                self.assertNotIn("Traceback", err)
                self.assertEqual(envelope_of(err)["error"]["code"], "INTERRUPTED")

    def threads_that_take_stop_signals(self, pid):
        """The threads of `pid` but its first that do not block SIGINT, SIGTERM and SIGHUP: only the main
        thread may take them, or two sent together are handled in the order threads race, not as sent."""
        tasks = "/proc/%d/task" % pid
        if not os.path.isdir(tasks):
            self.skipTest("no /proc to read the threads' signal masks from")
        taking = []
        for task in sorted(os.listdir(tasks), key=int)[1:]:
            with open(os.path.join(tasks, task, "status")) as status:
                blocked = int(re.search(r"^SigBlk:\s*([0-9a-f]+)$", status.read(), re.M).group(1), 16)
            if any(not blocked >> (signum - 1) & 1 for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)):
                taking.append(task)
        self.assertGreaterEqual(len(os.listdir(tasks)), 4, "three polls in flight are not in threads")
        return taking

    def test_ctrl_c_does_not_wait_for_requests_in_flight(self):
        self.log_in()
        ids = [str(self.assertOk(self.cli("contacts-import", "start", "--json", "-", "--account=acc_demo",
                                    stdin='{"datasetId": "ds_long", "tagName": "x"}'))["importId"])
               for _ in range(3)]
        self.platform.inject("status", {"delay": 60}, times=3)    # every first poll hangs for a minute
        argv = ["contacts-import", "wait"] + ids + ["--account=acc_demo"]
        running = self.cli(*argv, background=True)
        try:
            deadline = time.monotonic() + 10
            while self.platform.in_flight < 3 and time.monotonic() < deadline:
                time.sleep(0.05)
            self.assertEqual(self.platform.in_flight, 3)
            self.assertEqual(self.threads_that_take_stop_signals(running.process.pid), [])
            running.process.send_signal(signal.SIGINT)
        finally:
            result = running.finish(timeout=50)
        self.assertEqual(result.code, 130, result)
        self.assertEqual(self.platform.in_flight, 3)        # it ended while its three requests were still out
        self.assertIn("contacts-import wait %s --account=acc_demo" % " ".join(ids), result.stderr)


if __name__ == "__main__":
    unittest.main()

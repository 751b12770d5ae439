"""The fault matrix: every command against every fault, as a subprocess; see faults.py.

Each aspect of a row is its own test, and each row its own subTest, so that one failure hides no other.
"""

import collections
import json
import os
import unittest
from unittest import mock

import faults
from support import World, run_cli, tool


class FaultMatrixTests(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.rows = faults.run_matrix()

    def each_row(self):
        """(row, subTest context) for every row that ran; a row the harness could not run fails here."""
        for row in self.rows:
            context = self.subTest(command=row["command"], fault=row["fault"])
            with context:
                self.assertIsNone(row["error"], "the harness failed on this row")
            if row["error"] is None:
                yield row, self.subTest(command=row["command"], fault=row["fault"])

    def test_the_matrix_is_complete(self):
        seen = collections.Counter((row["command"], row["fault"]) for row in self.rows)
        wanted = [(command, fault.name) for command, fault in faults.cases_to_run()]
        self.assertEqual(len(set(fault.name for fault in faults.FAULTS)), len(faults.FAULTS),
                         "two faults share a name")
        self.assertEqual(set(seen) - set(wanted), set(), "rows that are not in the matrix")
        for pair in wanted:
            with self.subTest(command=pair[0], fault=pair[1]):
                self.assertEqual(seen[pair], 1, "each (command, fault) is one row")
        for row, context in self.each_row():
            with context:
                self.assertIsInstance(row["exit"], int, "the tool did not run")
                self.assertGreaterEqual(row["connections"], 1, "nothing reached the sandbox or the proxy")
                self.assertGreaterEqual(row["connections"], row["attempts"], "an attempt without a connection")

    def test_exit_and_code(self):
        for row, context in self.each_row():
            with context:
                expect = row["expected"]
                self.assertEqual((row["exit"], row["code"]), (expect.exit, expect.code), row["stderr"][-1500:])
                if expect.exit == 0:
                    json.loads(row["stdout"])
                    self.assertEqual(row["stdout"].count("\n"), 1)
                    if row["command"] == "wait":
                        self.assertEqual(json.loads(row["stdout"])["phase"], "completed")
                elif row["command"] == "wait" and expect.code == "TIMEOUT":    # the last-known status all the same
                    self.assertEqual(json.loads(row["stdout"])["importId"], 1)
                else:
                    self.assertEqual(row["stdout"], "")
                if expect.exit != 0:
                    self.assertEqual(json.loads(row["stderr"].strip().splitlines()[-1])["error"]["code"], expect.code)

    def test_attempts_are_counted_where_they_arrive(self):
        for row, context in self.each_row():
            with context:
                self.assertEqual(row["attempts"], faults.expected_attempts(row), row["stderr"][-1500:])
                if row["expected"].limit is not None:     # its attempts follow from its waits: pin them too
                    self.assertGreaterEqual(row["attempts"], row["expected"].attempts - 1)

    def test_retries_follow_the_schedule(self):
        for row, context in self.each_row():
            with context:
                self.assertIsNone(faults.schedule_problem(row))

    def test_transient_failures_are_reported(self):
        for row, context in self.each_row():
            if not row["transient"]:
                continue
            with context:
                self.assertEqual(len(faults.reports(row)), faults.expected_reports(row), row["stderr"][-1500:])

    def test_no_traceback_no_token_nothing_elsewhere(self):
        for row, context in self.each_row():
            with context:
                self.assertNotIn("Traceback", row["stderr"])
                self.assertNotIn("internal error", row["stderr"])
                self.assertNotIn(row["token"], row["stdout"] + row["stderr"])
                self.assertEqual(row["leaked"], [], "a request reached another origin")
                self.assertFalse(row["proxy_saw_token"], "the token reached the proxy outside the tunnel")

    def test_errors_through_the_proxy_name_it(self):
        for row, context in self.each_row():
            if row["proxy"] is None:
                continue
            with context:
                self.assertEqual(faults.unnamed_proxy(row), [], "error lines that do not name %s and HTTPS_PROXY"
                                 % row["proxy"])

    def test_memory_stays_bounded(self):
        for row, context in self.each_row():
            with context:
                self.assertGreater(row["maxrss"], 0)
                self.assertLess(row["maxrss"], faults.MAX_RSS, "max RSS %.1f MiB" % (row["maxrss"] / 2.0 ** 20))

    def test_time_is_bounded_by_the_schedule_and_the_timeout(self):
        # a generous margin: this catches a hang (a drip that stretches a request), not a slow machine;
        # the real time alone is bounded too, so that the waits' allowance cannot hide a hang
        for row, context in self.each_row():
            with context:
                self.assertLessEqual(row["seconds"], faults.real_bound(row["expected"], row["timeout"]))
                self.assertLessEqual(row["seconds"] + sum(row["sleeps"]), faults.wall_bound(row))


class ExpectationTests(unittest.TestCase):
    """faults.expected() itself, against the README.s schedule, so that the matrix cannot drift with it."""

    def by_name(self, name):
        return next(fault for fault in faults.FAULTS if fault.name == name)

    def test_one_shot_commands_retry_three_times_and_wait_rides_it_out(self):
        fault = self.by_name("500")
        self.assertEqual(faults.expected("status", fault), (2, "API_ERROR", 4, [5, 10, 20], None))
        self.assertEqual(faults.expected("wait", fault), (0, None, 4, [5, 10, 20], None))

    def test_a_failure_once_costs_one_retry(self):
        fault = self.by_name("TLS handshake dropped once")
        self.assertEqual(faults.expected("start", fault), (0, None, 2, [5], None))
        self.assertEqual(faults.expected("wait", fault), (0, None, 2, [5], None))

    def test_a_longer_retry_after_is_honoured(self):
        fault = self.by_name("503 with Retry-After: 30")
        self.assertEqual(faults.expected("account set", fault).schedule, [30, 30, 30])
        fault = self.by_name("429 with Retry-After as an HTTP date")
        self.assertEqual(faults.expected("wait", fault).schedule, [(25, 41), 10, 20])

    def test_a_proxy_that_refuses_the_tunnel_is_not_retried_and_one_that_breaks_is(self):
        for name in ("proxy refuses CONNECT (403)", "proxy requires authentication (407)"):
            for command in faults.COMMANDS:
                self.assertEqual(faults.expected(command, self.by_name(name)), (4, "NETWORK_ERROR", 1, [], None))
        for name, code in (("proxy drops the connection", "NETWORK_ERROR"),
                           ("proxy never answers CONNECT (within --timeout)", "TIMEOUT")):
            self.assertEqual(faults.expected("status", self.by_name(name)), (4, code, 4, [5, 10, 20], None))
            self.assertEqual(faults.expected("wait", self.by_name(name)), (0, None, 4, [5, 10, 20], None))
        down = self.by_name("proxy down")
        self.assertEqual(faults.expected("account set", down), (4, "NETWORK_ERROR", 4, [5, 10, 20], None))
        self.assertEqual(faults.expected("wait", down).limit, 1800)

    def test_make_test_runs_the_proxy_rows_for_start_only(self):
        with mock.patch.dict(os.environ, {"LANDBASE_TEST_FULL": ""}):
            cases = faults.cases_to_run()
        proxied = [(command, fault.name) for command, fault in cases if str(fault.setup).startswith("proxy-")]
        self.assertEqual(len(proxied), 5)
        self.assertEqual(set(command for command, _ in proxied), {"start"})
        self.assertEqual(len(faults.cases_to_run(list(faults.COMMANDS))), len(faults.COMMANDS) * len(faults.FAULTS))

    def test_a_dead_platform_ends_a_wait_after_30_minutes(self):
        expect = faults.expected("wait", self.by_name("connection closed as soon as accepted"))
        self.assertEqual((expect.exit, expect.code, expect.limit), (4, "TIMEOUT", 1800))
        self.assertEqual(expect.schedule[:4], [5, 10, 20, 20])
        self.assertEqual(sum(expect.schedule), 1800)
        self.assertEqual(expect.attempts, 92)

    def test_the_schedule_check_is_not_vacuous(self):
        fault = self.by_name("500")
        row = {"expected": faults.expected("status", fault), "sleeps": [], "seconds": 1.0}
        self.assertIsNotNone(faults.schedule_problem(row))           # a tool that stopped retrying
        row["sleeps"] = [5.0, 10.0, 20.0, 20.0]
        self.assertIsNotNone(faults.schedule_problem(row))           # one that retries once too often
        row["sleeps"] = [5.0, 10.0, 20.0]
        self.assertIsNone(faults.schedule_problem(row))
        dead = faults.expected("wait", self.by_name("connection closed as soon as accepted"))
        row = {"expected": dead, "sleeps": [5.0, 10.0], "seconds": 1.0}
        self.assertIsNotNone(faults.schedule_problem(row))           # gave up long before 30 minutes
        row["sleeps"] = [float(w) for w in dead.schedule[:-1]] + [4.0]
        self.assertIsNone(faults.schedule_problem(row))


class TrustedCertificateTests(unittest.TestCase):
    def test_ssl_cert_file_makes_the_test_ca_trusted(self):
        world = World(self, certfile=faults.CERTFILE, host="localhost", env_extra={"SSL_CERT_FILE": faults.TEST_CA})
        box = world.sandbox
        self.assertTrue(world.url.startswith("https://localhost:"))
        token = box.platform.mint_token()
        result = run_cli(["auth", "login", "--with-token"], world.env, stdin=token + "\n")
        self.assertEqual(result.code, 0, result)
        self.assertEqual(json.loads(result.stdout)["userId"], "usr_demo")
        self.assertIn(tool.__version__, box.platform.requests[0][2]["User-Agent"])
        self.assertIsNotNone(world.stored())


if __name__ == "__main__":
    unittest.main()

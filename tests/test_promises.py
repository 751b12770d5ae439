"""README promises for `make mutants` (tests/mutants.py): each test was written for a mutation of the tool that
the rest of the suite let through, or killed only by reading its own constants or only slowly, and was seen
failing against it (the mutation's name is in the class's docstring). Expected values are the README's,
written out, never read from the tool."""

import errno
import io
import json
import os
import signal
import socket
import sys
import unittest
from unittest import mock

from support import EXITS, ToolTestCase, on_sleep, tool, write_session

STATUS = ("contacts-import", "status", "1")
MIB = 1024 * 1024


class ExitCodeTests(ToolTestCase):
    """README: Exit codes, the table as it is written there (support.EXITS, the tests' one copy,
    stated apart from the tool's). Mutations exit-4-network, exit-3-auth-required."""

    def test_every_code_exits_as_the_table_says(self):
        for code, exit_code in EXITS.items():
            with self.subTest(code=code):
                self.assertEqual(tool.LandbaseError(code, "x").exit_code, exit_code)

    def test_no_session_exits_3_and_an_unreachable_platform_exits_4(self):
        self.assertEqual(self.run_tool(*STATUS).code, 3)
        self.login()
        with socket.socket() as unused:
            unused.bind(("127.0.0.1", 0))
            port = unused.getsockname()[1]
        os.environ["LANDBASE_PLATFORM_API_URL"] = "http://127.0.0.1:%d" % port     # nothing listens there
        result = self.run_tool(*STATUS)
        self.assertEqual((result.code, result.envelope["error"]["code"]), (4, "NETWORK_ERROR"), result)


class FullStderrTests(ToolTestCase):
    """README (Reliability): no exit is changed by stderr, closed or full. Mutation closed-stderr."""

    def run_with_stderr(self, stream, *argv):
        out = io.StringIO()
        with mock.patch.object(sys, "stderr", stream), mock.patch.object(sys, "stdout", out), \
                mock.patch.object(sys, "argv", ["landbase_import.py"]):
            return tool.main(list(argv)), out.getvalue()

    def test_a_full_or_closed_stderr_changes_no_exit_code(self):
        closed = io.StringIO()
        closed.close()
        for stream in (FullStream(), closed):
            with self.subTest(stream=type(stream).__name__):
                self.assertEqual(self.run_with_stderr(stream, *STATUS)[0], 3)          # AUTH_REQUIRED
                self.login()
                code, out = self.run_with_stderr(stream, *STATUS)
                self.assertEqual(code, 0)
                self.assertEqual(json.loads(out)["importId"], 1)
                self.assertEqual(self.run_with_stderr(stream, "contacts-import", "status", "424242")[0], 2)
                os.remove(self.session_path)


class FullStream(io.StringIO):
    def write(self, text):
        raise OSError(errno.ENOSPC, "No space left on device")


class RetryAfterTests(ToolTestCase):
    """The HTTP protocol: Retry-After and error.meta.retry_after_seconds, the larger is honoured. Mutation
    retry-after-larger."""

    def test_the_larger_of_the_header_and_the_meta_is_honoured(self):
        self.login()
        for header, meta in (("7", 40), ("40", 7)):
            with self.subTest(header=header, meta=meta):
                self.clock.sleeps = []
                self.platform.inject("status", {"status": 503, "headers": {"Retry-After": header}, "body": {
                    "error": {"code": "API_ERROR", "message": "busy", "meta": {"retry_after_seconds": meta}}}})
                self.assertOk(self.run_tool(*STATUS))
                self.assertEqual(self.clock.sleeps, [40])


class RedactionTests(ToolTestCase):
    """Streams: no token is printed, not even one a server sends back that this run never held. Mutation
    redact-pattern."""

    STRANGER = "lbs_Zq9xStrangerToken42"

    def test_a_token_shaped_string_from_a_server_is_redacted_everywhere(self):
        self.login()
        self.platform.inject("status", {"status": 500, "body": {"error": {
            "code": "API_ERROR", "message": "upstream refused " + self.STRANGER}}}, times=4)
        result = self.run_tool(*(STATUS + ("--verbose",)))
        self.assertFails(result, "API_ERROR")
        self.assertIn("upstream refused", result.stderr)
        self.assertNotIn("Zq9xStranger", result.stderr)
        self.platform.inject("status", {"json": {"importId": 1, "phase": "done by " + self.STRANGER,
                                                 "percent": 100, "counts": None, "error": None}})
        result = self.run_tool(*STATUS)
        self.assertEqual(result.code, 0, result)
        self.assertIn("done by", result.stdout)
        self.assertNotIn("Zq9xStranger", result.stdout + result.stderr)


class SessionFileTests(ToolTestCase):
    """The session file: read only if it is a regular file, and --min-valid's boundary. Mutations
    fifo-refused, min-valid."""

    @unittest.skipUnless(hasattr(os, "mkfifo"), "no FIFOs here")
    def test_a_fifo_holding_a_valid_session_is_still_refused(self):
        token = self.platform.mint_token("usr_demo")
        os.makedirs(os.path.dirname(self.session_path), 0o700)
        os.mkfifo(self.session_path, 0o600)
        fifo = os.open(self.session_path, os.O_RDWR | os.O_NONBLOCK)   # a writer that stays, its session queued
        self.addCleanup(os.close, fifo)
        os.write(fifo, json.dumps({"accessToken": token, "accountId": "acc_demo"}).encode())
        envelope = self.assertFails(self.run_tool(*STATUS), "SETUP_FAILED")
        self.assertIn(self.session_path, envelope["error"]["message"])
        self.assertEqual(self.platform.requests, [])

    def test_min_valid_fails_an_hour_short(self):
        write_session(os.path.dirname(self.session_path), self.platform.mint_token("usr_demo"),
                      days=2 - 1 / 24.0)
        envelope = self.assertFails(self.run_tool("auth", "status", "--min-valid", "2d"), "AUTH_FAILED")
        self.assertIn("--min-valid", envelope["error"]["message"])
        self.assertEqual(self.run_tool("auth", "status", "--min-valid", "46h").code, 0)


class StrictJSONTests(ToolTestCase):
    """The HTTP protocol: a number of more than 40 digits, a document nested deeper than 64 levels, an answer
    over 4 MiB: a broken answer; right at each limit, an answer. Mutations json-40-digits, json-64-levels,
    answer-4-mib."""

    def setUp(self):
        ToolTestCase.setUp(self)
        self.login()

    def answer(self, raw, times=1):
        self.clock.sleeps = []
        self.platform.inject("status", {"raw": raw}, times=times)
        return self.run_tool(*STATUS)

    def status_with(self, counts="null", error="null"):
        return '{"importId": 1, "phase": "failed", "percent": 5, "counts": %s, "error": %s}' % (counts, error)

    def test_40_digits_are_a_number_and_41_are_refused(self):
        doc = self.assertOk(self.answer(self.status_with(counts='{"total": %s}' % ("9" * 40))))
        self.assertEqual(doc["counts"]["total"], int("9" * 40))
        envelope = self.assertFails(self.answer(self.status_with(counts='{"total": %s}' % ("9" * 41)), 4),
                                    "API_ERROR")
        self.assertIn("not strict JSON", envelope["error"]["message"])
        self.assertEqual(self.clock.sleeps, [5, 10, 20])

    def test_64_levels_are_a_document_and_65_are_refused(self):
        def nested(levels):            # the answer's own object is the first level, error the second
            return self.status_with(error='{"code": "X", "message": "m", "deep": %s%s}'
                                    % ("[" * (levels - 2), "]" * (levels - 2)))
        self.assertOk(self.answer(nested(64)))
        envelope = self.assertFails(self.answer(nested(65), 4), "API_ERROR")
        self.assertIn("not strict JSON", envelope["error"]["message"])

    def test_an_answer_of_4_mib_is_read_and_one_byte_more_is_not(self):
        self.platform.inject("status", {"size": 4 * MIB})
        self.assertOk(self.run_tool(*STATUS))
        self.assertEqual(self.clock.sleeps, [])
        self.clock.sleep(2)                                     # the sandbox refuses reads closer than 1 s
        self.clock.sleeps = []
        self.platform.inject("status", {"size": 4 * MIB + 1})
        result = self.run_tool(*STATUS)
        self.assertOk(result)                                   # the retry got the real answer
        self.assertIn("larger than 4 MiB", result.stderr)
        self.assertEqual(self.clock.sleeps, [5])


class LimitTests(ToolTestCase):
    """--max-wait is at most 7 days; the device login ends after 15 minutes at most (test_login's bound is
    tool.DEVICE_LIMIT). Mutations max-wait-7-days (test_poll kills it only after an 8-day wait),
    device-15-minutes."""

    def test_max_wait_takes_7_days_and_not_a_second_more(self):
        self.login()
        started = self.assertOk(self.run_tool("contacts-import", "start", "--json", "-",
                                              stdin='{"datasetId": "ds_complete", "tagName": "limits"}'))
        self.platform.advance(3600)                     # completed by now: a wait that is let through ends
        wait = ("contacts-import", "wait", str(started["importId"]), "--max-wait")
        self.assertEqual(self.assertOk(self.run_tool(*(wait + ("7d",))))["phase"], "completed")
        before = len(self.platform.requests)
        envelope = self.assertFails(self.run_tool(*(wait + (str(7 * 86400 + 1),))), "INVALID_INPUT")
        self.assertIn("--max-wait", envelope["error"]["message"])
        self.assertEqual(len(self.platform.requests), before)

    def test_a_device_code_that_never_expires_is_given_up_within_15_minutes(self):
        self.platform.inject("device", {"json": {"deviceCode": "d", "userCode": "ABCD-EFGH", "interval": 60,
                                                 "verificationUri": self.sandbox.url + "/cli/device",
                                                 "expiresIn": 10 ** 9}})
        self.platform.inject("token", {"status": 400, "body": {"error": {"code": "AUTHORIZATION_PENDING",
                                                                         "message": "pending"}}}, times=10 ** 6)
        envelope = self.assertFails(self.run_tool("auth", "login", "--device"), "TIMEOUT")
        self.assertIn("expired", envelope["error"]["message"])
        self.assertLessEqual(sum(self.clock.sleeps), 15 * 60)
        self.assertGreaterEqual(sum(self.clock.sleeps), 14 * 60)


class SignalTests(ToolTestCase):
    """README: only the first signal acts; a SIGTERM right behind a Ctrl-C is ignored while it is reported.
    Mutation first-signal-only."""

    def test_a_sigterm_while_a_ctrl_c_is_reported_changes_nothing(self):
        self.login()
        started = self.assertOk(self.run_tool("contacts-import", "start", "--json", "-",
                                              stdin='{"datasetId": "ds_long", "tagName": "signals"}'))
        on_sleep(self.clock, 2, lambda: tool._on_signal(signal.SIGINT, None))
        real = tool.resume_command

        def resume_command(*args):     # the wait builds its resume command: the SIGTERM lands then
            tool._on_signal(signal.SIGTERM, None)
            return real(*args)
        with mock.patch.object(tool, "resume_command", resume_command):
            result = self.run_tool("contacts-import", "wait", str(started["importId"]))
        envelope = self.assertFails(result, "INTERRUPTED", 130)
        self.assertIn("contacts-import wait %d" % started["importId"], envelope["error"]["meta"]["resume"])

    def test_a_sigterm_as_the_ctrl_c_handler_starts_changes_nothing(self):
        """Python runs a handler for a signal that arrives as another's begins at its first instruction:
        the signal whose handler was interrupted came first (seen at 1 in 200 runs of test_e2e_sessions)."""
        self.login()
        started = self.assertOk(self.run_tool("contacts-import", "start", "--json", "-",
                                              stdin='{"datasetId": "ds_long", "tagName": "signals"}'))
        self.addCleanup(sys.setprofile, None)

        def sigterm_as_it_starts(frame, event, arg):
            if event == "call" and frame.f_code is tool._on_signal.__code__:
                sys.setprofile(None)
                tool._on_signal(signal.SIGTERM, frame)      # as the interpreter calls it: in that frame

        def ctrl_c():
            sys.setprofile(sigterm_as_it_starts)
            tool._on_signal(signal.SIGINT, None)
        on_sleep(self.clock, 2, ctrl_c)
        self.assertFails(self.run_tool("contacts-import", "wait", str(started["importId"])), "INTERRUPTED", 130)


if __name__ == "__main__":
    unittest.main()

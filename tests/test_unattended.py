"""Unattended runs (README: Cron): a lost answer never imports twice, a replay is not a start, the log says when
and what failed, a wait's limit holds over many ids, --query is UTF-8 in any locale, the expiry pre-flight can
fail with an environment token, and two processes changing platform.json lose neither change."""

import json
import os
import signal
import time
import unittest

from support import ToolTestCase, World, run_cli, tool

BODY = '{"datasetId": "ds_demo", "tagName": "nightly"}'
START = ("contacts-import", "start", "--json", "-")


class LostAnswerTests(ToolTestCase):
    """Any start that gives up after a POST that may have reached the platform names its key, and the command
    that gets the import back (the = form, so that a key beginning with - works)."""

    def setUp(self):
        ToolTestCase.setUp(self)
        self.login()

    def posts(self):
        return [h["Idempotency-Key"] for m, p, h in self.platform.requests if m == "POST"]

    def test_four_lost_answers_name_the_key_and_the_command(self):
        self.platform.inject("start", {"drop": True}, times=4)     # the platform acts; each answer is lost
        result = self.run_tool(*(START + ("--idempotency-key=-nightly-1",)), stdin=BODY)
        envelope = self.assertFails(result, "NETWORK_ERROR")
        self.assertEqual(envelope["error"]["meta"]["idempotencyKey"], "-nightly-1")
        self.assertIn("--idempotency-key=-nightly-1", envelope["error"]["message"])
        self.assertEqual(self.posts(), ["-nightly-1"] * 4)
        created = len(self.platform.imports)
        again = self.run_tool(*(envelope["error"]["message"].rsplit(" with: ", 1)[1].split()[1:]), stdin=BODY)
        self.assertEqual(self.assertOk(again)["importId"], max(self.platform.imports))
        self.assertEqual(len(self.platform.imports), created)          # the same import, not a second one
        self.assertIn("already started with key -nightly-1", again.stderr)

    def test_every_code_after_an_unsure_attempt_names_the_key(self):
        for fault, code in (({"status": 401}, "AUTH_FAILED"), ({"status": 404}, "NOT_FOUND"),
                            ({"status": 500}, "API_ERROR"), ({"delay": 3}, "TIMEOUT")):
            with self.subTest(code=code):
                del self.platform.faults[:]                     # what a refusal left unserved goes too
                self.platform.inject("start", {"drop": True})
                self.platform.inject("start", fault, times=3)
                result = self.run_tool(*(START + ("--timeout", "1")), stdin=BODY)
                envelope = self.assertFails(result, code)
                self.assertEqual(self.platform.faults[0][2], 0, "the lost answer was not served")
                key = envelope["error"]["meta"]["idempotencyKey"]
                self.assertIn("--idempotency-key=%s" % key, envelope["error"]["message"])

    def test_a_generated_key_is_named_too(self):
        self.platform.inject("start", {"status": 503}, times=4)
        envelope = self.assertFails(self.run_tool(*START, stdin=BODY), "API_ERROR")
        key = envelope["error"]["meta"]["idempotencyKey"]
        self.assertRegex(key, r"^[0-9a-f-]{36}$")
        self.assertEqual(set(self.posts()), {key})

    def test_a_definite_refusal_is_not_said_to_have_created_anything(self):
        result = self.run_tool(*START, stdin=BODY.replace("ds_demo", "ds_other"))
        envelope = self.assertFails(result, "VALIDATION_ERROR")
        self.assertNotIn("may have created", envelope["error"]["message"])


class ReplayTests(ToolTestCase):
    def test_a_replay_is_logged_as_already_started(self):
        self.login()
        first = self.run_tool(*(START + ("--idempotency-key=nightly-2026-11-30",)), stdin=BODY)
        again = self.run_tool(*(START + ("--idempotency-key=nightly-2026-11-30",)), stdin=BODY)
        self.assertEqual(self.assertOk(first), self.assertOk(again))
        self.assertIn("Started import", first.stderr)
        self.assertNotIn("Started", again.stderr)
        self.assertRegex(again.lines[0], r"^Import %d was already started with key nightly-2026-11-30 "
                         % self.assertOk(again)["importId"])


class FailureLineTests(ToolTestCase):
    def test_a_log_gets_a_dated_line_naming_the_code_the_exit_and_the_message_before_the_envelope(self):
        result = self.run_tool("contacts-import", "status", "1")
        envelope = self.assertFails(result, "AUTH_REQUIRED")
        line = result.stderr.splitlines()[-2]
        self.assertRegex(line, r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ error AUTH_REQUIRED \(exit 3\): ")
        self.assertTrue(line.endswith(envelope["error"]["message"]))

    def test_a_terminal_gets_the_same_line_without_the_time(self):
        stream = FakeTerminal()
        tool.Console(stream=stream).failure(tool.LandbaseError("TIMEOUT", "gave up", {"resume": "x wait 7"}))
        lines = stream.getvalue().splitlines()
        self.assertEqual(lines[0], "error TIMEOUT (exit 4): gave up. Resume with: x wait 7")
        self.assertEqual(json.loads(lines[1])["error"]["code"], "TIMEOUT")


class FakeTerminal:
    def __init__(self):
        self.written = []

    def write(self, text):
        self.written.append(text)

    def flush(self):
        pass

    def isatty(self):
        return True

    def getvalue(self):
        return "".join(self.written)


class TimeoutRowTests(ToolTestCase):
    def test_a_wait_that_times_out_still_writes_its_query_row(self):
        self.login()
        import_id = self.assertOk(self.run_tool(*START, stdin=BODY.replace("ds_demo", "ds_long")))["importId"]
        result = self.run_tool("contacts-import", "wait", str(import_id), "--max-wait", "1m",
                               "--query", "importId,phase,counts.imported")
        self.assertFails(result, "TIMEOUT")
        self.assertRegex(result.stdout, r"^%d\tin_progress\t\d+\n$" % import_id)


class EnvironmentTokenExpiryTests(ToolTestCase):
    def test_min_valid_uses_the_platforms_word_for_an_environment_token(self):
        os.environ["LANDBASE_ACCESS_TOKEN"] = self.platform.mint_token(ttl=3600)
        self.platform.inject("me", {"json": {"userId": "usr_demo", "email": "sam@acme.example",
                                             "expiresAt": tool.format_time(self.clock.wall() + 3600)}}, times=2)
        result = self.run_tool("auth", "status", "--min-valid", "2d")
        envelope = self.assertFails(result, "AUTH_FAILED")
        self.assertIn("--min-valid", envelope["error"]["message"])
        self.assertIn("warning: the session expires in 59m", result.stderr)    # the 24-hour warning too

    def test_min_valid_fails_where_nobody_says_when_the_session_ends(self):
        os.environ["LANDBASE_ACCESS_TOKEN"] = self.platform.mint_token()
        self.platform.inject("me", {"json": {"userId": "usr_demo", "email": "sam@acme.example"}})
        envelope = self.assertFails(self.run_tool("auth", "status", "--min-valid", "2d"), "AUTH_FAILED")
        self.assertIn("nobody says when this session ends", envelope["error"]["message"])
        self.assertTrue(envelope["error"]["message"].endswith(
            "so --min-valid cannot pass; drop --min-valid, or unset LANDBASE_ACCESS_TOKEN to check "
            "the stored session, whose end is saved"), envelope)

    def test_a_long_enough_environment_token_passes(self):
        os.environ["LANDBASE_ACCESS_TOKEN"] = self.platform.mint_token()
        self.platform.inject("me", {"json": {"userId": "usr_demo", "email": "sam@acme.example",
                                             "expiresAt": tool.format_time(self.clock.wall() + 6 * 86400)}})
        doc = self.assertOk(self.run_tool("auth", "status", "--min-valid", "2d"))
        self.assertEqual((doc["tokenSource"], doc["expiresInSeconds"] // 3600), ("env", 143))


class AccountSettlingTests(ToolTestCase):
    def test_a_login_whose_accounts_cannot_be_read_keeps_no_account_of_another_identity(self):
        self.login(account="acc_team")                        # usr_demo's; usr_solo cannot use it
        self.platform.inject("accounts", {"status": 500}, times=4)
        token = self.platform.mint_token("usr_solo")
        result = self.run_tool("auth", "login", "--with-token", stdin=token + "\n")
        envelope = self.assertFails(result, "API_ERROR")
        self.assertIn("account set", envelope["error"]["message"])
        stored = self.stored()
        self.assertEqual((stored["accessToken"], stored["accountId"]), (token, None))


class ProcessTests(unittest.TestCase):
    """The tool as processes, on the real clock."""

    def setUp(self):
        self.world = World(self, session=True, min_poll_interval=0)
        self.box, self.config, self.env = self.world.sandbox, self.world.dir, self.world.env

    def slow_writer(self, argv):
        """The tool running argv with every fsync 2 s long: the window in which another writer
        must wait (fastclock.py's FASTCLOCK_SLOW_FSYNC; the tool makes no sleep of its own on this
        path)."""
        self.marker = os.path.join(self.config, "writing")
        return run_cli(argv, self.env, fast=True, extra_env={"FASTCLOCK_SLOW_FSYNC": self.marker},
                       background=True)

    def cli(self, *argv, **kwargs):
        """support.run_cli: the file itself, as users run it."""
        return run_cli(argv, self.env, as_user=True, timeout=30, **kwargs)

    def in_the_window(self, process):
        """Until the slow writer is inside its write (it has read the file, and holds the lock if there is one)."""
        deadline = time.monotonic() + 10
        while not os.path.exists(self.marker) and time.monotonic() < deadline:
            time.sleep(0.01)
        self.assertTrue(os.path.exists(self.marker), "the slow writer never wrote")

    def test_a_login_during_a_slow_write_is_kept(self):
        """(Really waits: the 2-second write is the race.)"""
        writer = self.slow_writer(["account", "set", "acc_team"])
        self.in_the_window(writer)
        new = self.box.platform.mint_token()
        login = self.cli("auth", "login", "--with-token", stdin=new + "\n")
        written = writer.finish(timeout=20)
        self.assertEqual(written.code, 0, written)
        self.assertEqual(login.code, 0, login)
        stored = self.world.stored()
        self.assertEqual((stored["accessToken"], stored["accountId"]), (new, "acc_team"))

    def test_a_logout_during_a_slow_write_is_not_undone(self):
        """(Really waits: the 2-second write is the race.)"""
        writer = self.slow_writer(["account", "set", "acc_team"])
        self.in_the_window(writer)
        logout = self.cli("auth", "logout")
        written = writer.finish(timeout=20)
        self.assertEqual(written.code, 0, written)
        self.assertEqual(logout.code, 0, logout)
        self.assertIsNone(self.world.stored())

    def test_max_wait_bounds_a_wait_on_many_ids(self):
        """(Really waits: a silent server and 2 s of --max-wait.)"""
        self.box.platform.inject("status", {"delay": 20}, times=12)
        started = time.monotonic()
        result = self.cli(*(["contacts-import", "wait"] + [str(i) for i in range(1, 13)]
                            + ["--timeout", "2", "--max-wait", "2", "--account=acc_demo"]))
        took = time.monotonic() - started
        self.assertEqual(result.code, 4, result)
        self.assertEqual(result.code_name, "TIMEOUT", result)
        # real time, on purpose: the promise is that --max-wait bounds the wait, whatever happens
        self.assertLess(took, 5.0, "12 silent ids outlived --max-wait 2 by %.1f s" % (took - 2))

    def test_query_is_utf8_whatever_the_locale(self):
        self.box.platform.inject("status", {"json": {"importId": 1, "phase": "M\u00fcller GmbH", "percent": None,
                                                     "counts": None, "error": None}})
        self.env.update(PYTHONIOENCODING="ascii", LANG="C", LC_ALL="C")
        result = self.cli("contacts-import", "status", "1", "--query", "phase", "--account=acc_demo")
        self.assertEqual(result.code, 0, result)
        self.assertEqual(result.raw_stdout, "M\u00fcller GmbH\n".encode("utf-8"))

    def test_sighup_during_a_start_names_the_key(self):
        self.box.platform.inject("start", {"delay": 20})
        running = self.cli(*(START + ("--account=acc_demo",)), stdin=BODY, background=True)
        deadline = time.monotonic() + 10
        while self.box.platform.count("POST", "/contacts-imports") == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        running.process.send_signal(signal.SIGHUP)
        result = running.finish(timeout=20)
        self.assertEqual(result.code, 129, result)
        envelope = result.envelope
        self.assertEqual((envelope["error"]["code"], envelope["error"]["meta"]["signal"]), ("TERMINATED", "SIGHUP"))
        self.assertIn("--idempotency-key=%s" % envelope["error"]["meta"]["idempotencyKey"],
                      envelope["error"]["message"])
        self.assertNotIn("Traceback", result.stderr)


if __name__ == "__main__":
    unittest.main()

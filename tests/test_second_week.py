"""The operator's second week (issue 22): a lost night recovers the same day, a short outage costs
nothing, and every message leads to a working command. One test class per point of the issue;
the README's lines under cron are test_cron's, the redraw in a real tmux is tmux_check.py's.
"""

import json
import os
import shlex
import shutil
import socket
import sys
import tempfile
import threading
import unittest
from unittest import mock

import proxy
import sandbox
from support import TOOL, ToolTestCase, tool
from test_poll import FakeTty, terminal_size

BODY = '{"datasetId": "%s", "tagName": "Nightly"}'
START = ("contacts-import", "start", "--json", "-")
TLS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "tls")


def command_in(message, after):
    """The words of the command a message gives after `after` (it ends the message)."""
    return shlex.split(message.rsplit(after, 1)[1])


class KeyKeptOnlyForA202Tests(ToolTestCase):
    """Point 1 (API.md, Start): a refused start keeps no key, so the fixed body runs again with the
    same key the same day; a key kept for another body says what to run."""

    def test_a_fixed_body_runs_again_with_the_same_key(self):
        self.login()
        key = "--idempotency-key=nightly-2026-12-07"
        refused = self.run_tool(*START, key, stdin=BODY % "ds_other")      # this account cannot read it
        message = self.assertFails(refused, "VALIDATION_ERROR")["error"]["message"]
        self.assertTrue(message.endswith("is not accessible to this account; nothing was started and the key "
                                         "was not kept: fix the body and run the same line again, with the "
                                         "fixed body on stdin"), message)
        fixed = self.run_tool(*START, key, stdin=BODY % "ds_demo")
        self.assertOk(fixed)
        self.assertIn("Started import", fixed.log)
        keys = [headers["Idempotency-Key"] for method, _, headers in self.platform.requests if method == "POST"]
        self.assertEqual(keys, ["nightly-2026-12-07"] * 2)

    def test_a_conflict_that_names_no_import_says_when_to_run_again(self):
        self.login()
        self.platform.inject("start", {"status": 409, "body": {"error": {"code": "CONFLICT", "message": "busy"}}})
        message = self.assertFails(self.run_tool(*START, stdin=BODY % "ds_demo"), "CONFLICT")["error"]["message"]
        self.assertTrue(message.endswith(": busy; an import is already running and the platform did not say "
                                         "which: run the same line again once it has ended (the key was not "
                                         "kept)"), message)

    def test_a_key_kept_for_another_body_gives_the_line_with_a_new_key(self):
        self.login()
        key = "--idempotency-key=nightly-2026-12-07"
        self.assertOk(self.run_tool(*START, key, stdin=BODY % "ds_demo"))
        other = self.run_tool(*START, key, stdin=BODY % "ds_complete")
        message = self.assertFails(other, "VALIDATION_ERROR")["error"]["message"]
        self.assertIn("; with the same body on stdin again, run the same line with a new key: ",
                      message)
        self.assertEqual(message.count("24 hours"), 1)          # the server's words say why
        command = command_in(message, "run the same line with a new key: ")
        self.assertEqual(command[0], TOOL)
        self.assertRegex(command[-1], r"\A--idempotency-key=nightly-2026-12-07-[0-9a-f]{8}\Z")
        again = self.run_tool(*command[1:], stdin=BODY % "ds_complete")       # pasted as printed
        self.assertOk(again)
        self.assertIn("Started import", again.log)


class RerunDeadlineTests(ToolTestCase):
    """Point 2: the command that gets an import back names the time until which it is safe."""

    def test_an_ambiguous_start_names_when_its_rerun_stops_being_safe(self):
        self.login()
        self.platform.inject("start", {"status": 503}, times=4)
        first_attempt = self.clock.wall()
        result = self.run_tool(*START, stdin=BODY % "ds_demo")
        envelope = self.assertFails(result, "API_ERROR")
        until = tool.format_time(first_attempt + 24 * 3600)
        self.assertEqual(envelope["error"]["meta"]["safeUntil"], until)
        message = envelope["error"]["message"]
        self.assertIn("until %s (24 hours from the first attempt; later, the same key starts a new "
                      "import)" % until, message)
        self.assertEqual(command_in(message, " with: ")[-1],
                         "--idempotency-key=" + envelope["error"]["meta"]["idempotencyKey"])
        self.assertNotIn("earlier run", message)        # a generated key: this run was its first

    def test_a_given_key_may_have_been_used_by_an_earlier_run(self):
        """A second attack: a rerun that failed again named 24 hours from its own first attempt,
        and the key was the night's (its first use hours earlier)."""
        self.login()
        self.platform.inject("start", {"status": 503}, times=4)
        first_attempt = self.clock.wall()
        result = self.run_tool(*START, "--idempotency-key=nightly-2026-12-07", stdin=BODY % "ds_demo")
        message = self.assertFails(result, "API_ERROR")["error"]["message"]
        until = tool.format_time(first_attempt + 24 * 3600)
        self.assertIn("until %s at the latest (24 hours from this run's first attempt; if an earlier "
                      "run used this key, 24 hours from that run's; later, the same key starts a new "
                      "import)" % until, message)

    def test_the_rerun_starts_in_the_account_the_start_was_made_in(self):
        """A second attack: a start in LANDBASE_ACCOUNT_ID's account gave a rerun without it, and
        pasted where that variable was not set, it started a second import in the stored account."""
        self.login()                                    # the stored account: acc_demo
        os.environ["LANDBASE_ACCOUNT_ID"] = "acc_team"
        self.platform.inject("start", {"status": 503}, times=4)
        envelope = self.assertFails(self.run_tool(*START, stdin=BODY % "ds_demo"), "API_ERROR")
        command = command_in(envelope["error"]["message"], " with: ")
        self.assertIn("--account=acc_team", command)
        del os.environ["LANDBASE_ACCOUNT_ID"]
        again = self.run_tool(*command[1:], stdin=BODY % "ds_demo")        # pasted as printed
        self.assertOk(again)
        posts = [path for method, path, _ in self.platform.requests if method == "POST"]
        self.assertEqual(posts[-1], "/v1/accounts/acc_team/contacts-imports")

    def test_the_line_with_a_new_key_keeps_the_account(self):
        self.login()
        key = "--idempotency-key=nightly-2026-12-07"
        self.assertOk(self.run_tool(*START, key, "--account=acc_team", stdin=BODY % "ds_demo"))
        other = self.run_tool(*START, key, "--account", "acc_team", stdin=BODY % "ds_complete")
        message = self.assertFails(other, "VALIDATION_ERROR")["error"]["message"]
        command = command_in(message, "run the same line with a new key: ")
        self.assertEqual(command.count("--account=acc_team"), 1)
        self.assertNotIn("--account", command)


class NothingSentTests(ToolTestCase):
    """A second attack: a start whose every attempt was refused a connection said "the platform
    may have created the import", which it cannot have."""

    def test_a_start_that_never_reached_the_platform_says_nothing_of_an_import(self):
        self.login()
        os.environ["LANDBASE_PLATFORM_API_URL"] = "http://127.0.0.1:%d" % proxy.free_port()
        result = self.run_tool(*START, "--idempotency-key=nightly-1", stdin=BODY % "ds_demo")
        envelope = self.assertFails(result, "NETWORK_ERROR")
        self.assertNotIn("may have created", envelope["error"]["message"])
        self.assertNotIn("safeUntil", envelope["error"]["meta"])
        self.assertEqual(self.clock.sleeps, [5, 10, 20])        # retried all the same

    def test_an_answer_that_never_came_may_have_started_one(self):
        self.login()
        self.platform.inject("start", {"status": 503}, times=4)
        result = self.run_tool(*START, "--idempotency-key=nightly-1", stdin=BODY % "ds_demo")
        envelope = self.assertFails(result, "API_ERROR")
        self.assertIn("may have created", envelope["error"]["message"])


class DryRunTests(ToolTestCase):
    """Point 3: --dry-run says exactly what it checked, and what it cannot."""

    def test_the_dry_run_line(self):
        self.login()
        result = self.run_tool(*START, "--dry-run", stdin=BODY % "ds_other")
        self.assertTrue(self.assertOk(result)["dryRun"])
        self.assertIn("checked the body, the session (present, not expired) and the account acc_demo "
                      "(from the stored account) as stored; nothing was sent", result.log)
        self.assertIn("checks the dataset and the account's access to it only at start", result.log)
        self.assertIn("doctor checks the platform side", result.log)
        self.assertEqual(self.platform.requests, [])

    def test_a_token_from_the_environment_is_not_said_to_be_unexpired(self):
        """A second attack: a token from LANDBASE_ACCESS_TOKEN, whose end only the platform knows,
        was said to be "not expired"."""
        os.environ.update(LANDBASE_ACCESS_TOKEN="not a token", LANDBASE_ACCOUNT_ID="acc_x")
        result = self.run_tool(*START, "--dry-run", stdin=BODY % "ds_demo")
        self.assertOk(result)
        self.assertNotIn("not expired", result.log)
        self.assertIn("checked the body, the token in LANDBASE_ACCESS_TOKEN (present; when it ends, "
                      "the platform knows) and the account acc_x (from LANDBASE_ACCOUNT_ID) as "
                      "given; nothing was sent", result.log)
        self.assertEqual(self.platform.requests, [])


class WrongAccountTests(ToolTestCase):
    """Point 5: a NOT_FOUND on an account's path says where the account id came from."""

    def test_each_source_is_named_with_the_next_step(self):
        sources = [("--account", {}, ["--account=acc_other"]),
                   ("LANDBASE_ACCOUNT_ID", {"LANDBASE_ACCOUNT_ID": "acc_other"}, []),
                   ("the stored account (%s)", {}, [])]
        for source, env, extra in sources:
            with self.subTest(source=source):
                os.environ.pop("LANDBASE_ACCOUNT_ID", None)
                stored = "acc_demo"
                if not env and not extra:
                    stored = "acc_other"
                self.login(account=stored)
                os.environ.update(env)
                result = self.run_tool("contacts-import", "status", "1", *extra)
                message = self.assertFails(result, "NOT_FOUND")["error"]["message"]
                if "%s" in source:
                    source = source % self.session_path
                self.assertIn("account acc_other comes from %s" % source, message)
                self.assertIn("account list", message)
                if source == "LANDBASE_ACCOUNT_ID":
                    self.assertIn("unset LANDBASE_ACCOUNT_ID", message)

    def test_an_import_id_in_the_body_is_what_was_not_found(self):
        self.login()
        result = self.run_tool(*START, stdin='{"datasetId": "ds_demo", "tagName": "t", "importId": 99}')
        message = self.assertFails(result, "NOT_FOUND")["error"]["message"]
        self.assertIn("(the body's importId 99 is not an import of account acc_demo, which comes from the "
                      "stored account (%s): fix the importId, or the account: " % self.session_path, message)
        self.assertTrue(message.endswith(" account list)"), message)

    def test_doctor_says_the_account_comes_from_the_environment(self):
        self.login()
        os.environ["LANDBASE_ACCOUNT_ID"] = "acc_other"
        result = self.run_tool("doctor")
        checks = {check["name"]: check for check in json.loads(result.stdout)["checks"]}
        self.assertEqual(checks["account"]["status"], "fail")
        self.assertIn("acc_other (from LANDBASE_ACCOUNT_ID)", checks["account"]["detail"])
        self.assertIn("LANDBASE_ACCOUNT_ID (account set cannot override it)", checks["account"]["fix"])


class UnresolvedNameTests(ToolTestCase):
    """Point 6: a name that does not resolve, with no proxy set, suggests HTTPS_PROXY."""

    def test_the_message_suggests_a_proxy(self):
        self.login()
        os.environ["LANDBASE_PLATFORM_API_URL"] = "https://api.landbase.com"
        lookups = proxy.refusing_lookups("landbase.com", socket.getaddrinfo)
        with mock.patch.object(socket, "getaddrinfo", lookups):
            result = self.run_tool("contacts-import", "status", "1")
        message = self.assertFails(result, "NETWORK_ERROR")["error"]["message"]
        self.assertIn("the name api.landbase.com cannot be resolved", message)
        self.assertIn("if this host reaches the internet through a proxy, set HTTPS_PROXY", message)


class LoginSaysWhereTests(ToolTestCase):
    """Point 8: a login's stderr says where it saved the session."""

    def test_the_path_of_the_session(self):
        token = self.platform.mint_token("usr_demo")
        result = self.run_tool("auth", "login", "--with-token", stdin=token + "\n")
        self.assertOk(result)
        self.assertIn("Saved the session in %s" % self.session_path, result.log)

    def test_a_config_dir_given_with_a_tilde_or_relative_is_made_absolute(self):
        """A second attack: LANDBASE_CONFIG_DIR=~/x (a crontab does not expand ~) made a directory
        named ~ where the command ran, and a relative one was named relative to it."""
        home = tempfile.mkdtemp(prefix="lbi-home-")
        self.addCleanup(shutil.rmtree, home, True)
        here = os.getcwd()
        self.addCleanup(os.chdir, here)
        os.chdir(home)
        os.environ["HOME"] = home
        for given, where in (("~/tilde-config", os.path.join(home, "tilde-config")),
                             ("relative-config", os.path.join(home, "relative-config"))):
            with self.subTest(given=given):
                os.environ["LANDBASE_CONFIG_DIR"] = given
                token = self.platform.mint_token("usr_demo")
                result = self.run_tool("auth", "login", "--with-token", stdin=token + "\n")
                self.assertOk(result)
                saved = os.path.join(where, "platform.json")
                self.assertIn("Saved the session in %s" % saved, result.log)
                self.assertTrue(os.path.isfile(saved))
        self.assertFalse(os.path.exists(os.path.join(home, "~")))


class WhereTheSessionIsTests(ToolTestCase):
    """Point 8's other side, from a second attack: a cron job that reads another HOME or config
    directory is told where it looked, and a login that the environment's token overrides says so."""

    def test_not_logged_in_names_the_file_it_looked_for(self):
        result = self.run_tool("contacts-import", "status", "1")
        message = self.assertFails(result, "AUTH_REQUIRED")["error"]["message"]
        self.assertIn("no session in %s" % self.session_path, message)

    def test_a_login_under_an_environment_token_warns_that_it_is_overridden(self):
        os.environ["LANDBASE_ACCESS_TOKEN"] = self.platform.mint_token("usr_solo")
        token = self.platform.mint_token("usr_demo")
        result = self.run_tool("auth", "login", "--with-token", stdin=token + "\n")
        self.assertOk(result)
        self.assertIn("warning: LANDBASE_ACCESS_TOKEN is set, and commands use it, not this "
                      "session: unset it to use this one", result.log)


    def test_logout_warns_of_an_environment_token_only_where_commands_use_one(self):
        """environment_token(), the one reading of LANDBASE_ACCESS_TOKEN: blank is no token."""
        for value, warned in (("  ", False), (self.platform.mint_token("usr_demo"), True)):
            with self.subTest(value=value[:4]):
                self.login()
                os.environ["LANDBASE_ACCESS_TOKEN"] = value
                result = self.run_tool("auth", "logout")
                self.assertOk(result)
                self.assertEqual("LANDBASE_ACCESS_TOKEN is set and still used" in result.log, warned, result.log)


class LoginAccountLinesTests(ToolTestCase):
    """A second attack: a login of an identity with one account said that account was active, then
    that the active one was cleared and to choose one."""

    def test_a_login_that_replaces_an_account_it_cannot_use_says_which_one_is_active(self):
        self.login(account="acc_demo")
        token = self.platform.mint_token("usr_solo")
        result = self.run_tool("auth", "login", "--with-token", stdin=token + "\n")
        self.assertEqual(self.assertOk(result)["accountId"], "acc_solo")
        self.assertIn("The active account acc_demo is not one this identity can use; the active "
                      "account is now acc_solo (the only one this identity has)", result.log)
        self.assertNotIn("cleared", result.log)
        self.assertNotIn("Choose one", result.log)
        self.assertEqual(self.world.stored()["accountId"], "acc_solo")

    def test_no_active_account_names_commands_that_run(self):
        """A second attack: "(see: account list)" is no command."""
        token = self.platform.mint_token("usr_demo")              # two accounts: none is chosen
        result = self.run_tool("auth", "login", "--with-token", stdin=token + "\n")
        self.assertOk(result)
        self.assertIn("active account: none; choose one with: %s account set <accountId> (the ids: "
                      "%s account list)" % (TOOL, TOOL), result.log)


class ShortOutageTests(ToolTestCase):
    """Point 9: start --watch keeps retrying a transient failure with the same key until --max-wait
    runs out; without --watch, three retries."""

    def posts(self):
        return [headers.get("Idempotency-Key") for method, _, headers in self.platform.requests
                if method == "POST"]

    def test_a_minute_of_outage_costs_nothing_with_watch(self):
        self.login()
        self.platform.inject("start", {"status": 503}, times=6)
        result = self.run_tool(*START, "--watch", "--max-wait", "4h", stdin=BODY % "ds_demo")
        self.assertEqual(self.assertOk(result)["phase"], "completed")
        self.assertEqual(self.clock.sleeps[:6], [5, 10, 20, 20, 20, 20])
        keys = self.posts()
        self.assertEqual(len(keys), 7)
        self.assertEqual(len(set(keys)), 1)                 # the same key on every attempt
        self.assertEqual(result.log.count("failed (API_ERROR"), 6)
        self.assertIn("retry 6 (until", result.log)

    def test_the_retries_end_with_max_wait(self):
        self.login()
        self.platform.inject("start", {"status": 503}, times=1000)
        result = self.run_tool(*START, "--watch", "--max-wait", "2m", stdin=BODY % "ds_demo")
        envelope = self.assertFails(result, "API_ERROR")
        self.assertLessEqual(sum(self.clock.sleeps), 120)
        self.assertEqual(len(self.posts()), 1 + len(self.clock.sleeps))
        self.assertIn("idempotencyKey", envelope["error"]["meta"])

    def test_without_watch_three_retries(self):
        self.login()
        self.platform.inject("start", {"status": 503}, times=6)
        self.assertFails(self.run_tool(*START, stdin=BODY % "ds_demo"), "API_ERROR")
        self.assertEqual(self.clock.sleeps, [5, 10, 20])
        self.assertEqual(len(self.posts()), 4)


class DoctorFixTests(ToolTestCase):
    """Point 10: doctor gives each failure its own fix."""

    sandbox_options = {"min_poll_interval": 1.0, "certfile": os.path.join(TLS, "localhost.pem")}

    def setUp(self):
        ToolTestCase.setUp(self)
        self.login()
        port = self.sandbox.server.server_address[1]
        os.environ["LANDBASE_PLATFORM_API_URL"] = "https://localhost:%d" % port

    def failed(self):
        result = self.run_tool("doctor")
        self.assertClean(result)
        checks = [check for check in json.loads(result.stdout)["checks"] if check["status"] == "fail"]
        self.assertTrue(checks, result)
        for check in checks:
            self.assertNotRegex(check["detail"] + "; " + check["fix"], r"run \S+ doctor",
                                "a row of doctor's says to run doctor")
        return checks[0]

    def test_an_untrusted_ca(self):
        check = self.failed()
        self.assertEqual(check["name"], "tls")
        self.assertIn("SSL_CERT_FILE=<your CA bundle>", check["fix"])

    def test_a_missing_ssl_cert_file(self):
        missing = os.path.join(self.config, "corporate-ca.pem")
        os.environ["SSL_CERT_FILE"] = missing
        check = self.failed()
        self.assertEqual(check["name"], "tls store")
        self.assertIn(missing, check["fix"])

    def serve(self, certfile):
        """A sandbox serving `certfile` as the platform, at https://localhost, its CA trusted."""
        box = sandbox.Sandbox(certfile=os.path.join(TLS, certfile)).start()
        self.addCleanup(box.stop)
        os.environ.update(LANDBASE_PLATFORM_API_URL="https://localhost:%d" % box.server.server_address[1],
                          SSL_CERT_FILE=os.path.join(TLS, "ca.pem"))

    def test_a_certificate_for_another_name(self):
        self.serve("wrongname.pem")
        check = self.failed()
        self.assertEqual(check["name"], "tls")
        self.assertIn("it holds wrong.example", check["detail"])
        self.assertNotIn("SSL_CERT_FILE=<your CA bundle>", check["fix"])

    def test_a_platform_that_refuses_the_connection(self):
        port = proxy.free_port()
        os.environ["LANDBASE_PLATFORM_API_URL"] = "https://localhost:%d" % port
        check = self.failed()
        self.assertEqual(check["name"], "connection")
        self.assertEqual(check["fix"], "nothing accepts connections at localhost:%d: check the address and "
                                       "the firewall" % port)

    @unittest.skipIf(sys.version_info < (3, 7), "3.6's ssl module does not say which check failed")
    def test_an_expired_certificate(self):
        self.serve("expired.pem")
        check = self.failed()
        self.assertEqual(check["name"], "tls")
        self.assertIn("not valid now", check["detail"])
        self.assertIn("date -u", check["fix"])
        self.assertIn("if it is right, the certificate has expired", check["fix"])

    def test_a_handshake_cut_short_is_not_blamed_on_the_timeout(self):
        """h12 F4: a TLS handshake the far end closed at once got the fix of a handshake that did
        not end within --timeout."""
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        self.addCleanup(listener.close)

        def close_each():
            while True:
                try:
                    connection, _ = listener.accept()
                except OSError:
                    return
                connection.recv(65536)          # the ClientHello read: the close is an end of file
                connection.close()
        threading.Thread(target=close_each, daemon=True).start()
        os.environ["LANDBASE_PLATFORM_API_URL"] = "https://localhost:%d" % listener.getsockname()[1]
        check = self.failed()
        self.assertEqual(check["name"], "tls")
        self.assertNotIn("--timeout", check["fix"])
        self.assertIn("check the network", check["fix"])

    def test_a_proxy_that_is_down(self):
        port = proxy.free_port()
        os.environ["LANDBASE_PLATFORM_API_URL"] = "https://api.landbase.com"
        os.environ["HTTPS_PROXY"] = "http://127.0.0.1:%d" % port
        check = self.failed()
        self.assertEqual(check["name"], "connection")
        self.assertIn("check that 127.0.0.1:%d is up" % port, check["fix"])

    def test_no_failure_shares_one_generic_fix(self):
        fixes = set()
        for name in ("test_an_untrusted_ca", "test_a_missing_ssl_cert_file"):
            os.environ.pop("SSL_CERT_FILE", None)
            if name == "test_a_missing_ssl_cert_file":
                os.environ["SSL_CERT_FILE"] = os.path.join(self.config, "none.pem")
            fixes.add(self.failed()["fix"])
        self.assertEqual(len(fixes), 2)
        for fix in fixes:
            self.assertNotIn("see the detail", fix)


class SeveralIdsTests(ToolTestCase):
    """Point 12: the summary of several ids names the failed and partial ones first."""

    start_sandbox = False

    def test_a_narrow_terminal_still_shows_which_failed(self):
        trackers = []
        for import_id, phase in ((5, "in_progress"), (6, "in_progress"), (7, "in_progress"),
                                 (8, "failed"), (9, "completed")):
            tracker = tool.Tracker(import_id, 0)
            tracker.observe({"importId": import_id, "phase": phase, "percent": 50, "counts": None,
                             "error": None}, 0)
            trackers.append(tracker)
        stream = FakeTty(40)
        with mock.patch("os.get_terminal_size", terminal_size):
            tool.show_progress(tool.Console(stream=stream), trackers, 0)
        shown = stream.getvalue().replace("\r\x1b[K", "")
        self.assertEqual(shown, "failed 8 | 5 imports: 3 in_progress, 1 ")


if __name__ == "__main__":
    unittest.main()

"""Hostile inputs, round two: crafted documents, odd environments, signals and a terminal with several imports
(README: Streams, Exit codes, The HTTP protocol). In-process against the sandbox, unless a case needs a process."""

import html
import io
import json
import os
import re
import signal
import stat
import sys
import time
import urllib.parse
from unittest import mock

from support import HERE, TOOL, ToolTestCase, on_sleep, run_cli, subprocess_env, tool

CRAFTED = b"[" * 65 + b'"' + b'\\"' * 40000         # 65 brackets, then an unterminated string of escaped quotes


class CraftedDocuments(ToolTestCase):
    """Every check of an answer, body or file is linear in its size."""

    def setUp(self):
        ToolTestCase.setUp(self)
        self.login()

    def timed(self, *argv, **kwargs):
        started = time.process_time()
        result = self.run_tool(*argv, **kwargs)
        return result, time.process_time() - started

    # CPU seconds, on purpose: the promise is about time (linear, not quadratic), and the bounds
    # are many times what a linear check takes, so a loaded machine does not reach them

    def test_a_crafted_body_of_a_megabyte_is_refused_at_once(self):
        body = b"[" * 65 + b'"' + b'\\"' * (tool.MAX_BODY_BYTES // 2 - 40)
        result, seconds = self.timed("contacts-import", "start", "--json", "-", stdin=body)
        self.assertFails(result, "INVALID_INPUT")
        self.assertLess(seconds, 2.0, "a 1 MiB body took %.1f s of CPU to refuse (quadratic?)" % seconds)

    def test_a_crafted_status_answer_is_judged_at_once(self):
        raw = (b"[" * 65 + b'"' + b'\\"' * (2 * 1024 * 1024 - 40)).decode()
        self.platform.inject("status", {"raw": raw}, times=4)
        result, seconds = self.timed("contacts-import", "status", "1")
        self.assertFails(result, "API_ERROR")
        self.assertEqual(self.platform.count("GET", "/contacts-imports/1"), 4)
        self.assertLess(seconds, 8.0, "four 4 MiB answers took %.1f s of CPU to judge (quadratic?)" % seconds)
        self.assertIn("nested deeper than 64", result.envelope["error"]["message"])


class AccountIdTests(ToolTestCase):
    """An account id is checked where it enters, from a server as from a user; a bad one stored does not stop
    an override or account set from repairing it."""

    def test_a_malformed_account_id_from_a_server_is_never_stored(self):
        token = self.platform.mint_token("usr_demo")
        self.platform.inject("accounts", {"json": {"accounts": [{"id": "acc demo/../x", "name": "x"}]}}, times=4)
        result = self.run_tool("auth", "login", "--with-token", stdin=token + "\n")
        envelope = self.assertFails(result, "API_ERROR")
        self.assertIn("an account id", envelope["error"]["message"])
        self.assertIsNone(self.stored()["accountId"])

    def test_a_bad_stored_id_is_repaired_by_an_override_or_account_set(self):
        self.login(account="acc demo/../x")
        self.assertFails(self.run_tool("contacts-import", "status", "1"), "SETUP_FAILED")
        self.assertOk(self.run_tool("contacts-import", "status", "1", "--account=acc_demo"))
        os.environ["LANDBASE_ACCOUNT_ID"] = "acc_demo"
        self.assertOk(self.run_tool("contacts-import", "status", "1"))
        del os.environ["LANDBASE_ACCOUNT_ID"]
        self.assertOk(self.run_tool("account", "set", "acc_demo"))
        self.assertOk(self.run_tool("contacts-import", "status", "1"))


class BrowserTests(ToolTestCase):
    """The browser runs on its own: it neither holds the login back nor writes on the tool's streams."""

    def setUp(self):
        ToolTestCase.setUp(self)
        os.environ["DISPLAY"] = ":0"

    def test_the_five_minutes_start_with_the_login(self):
        started = self.clock.now()

        def slow_browser(url):
            self.clock.sleep(420)          # the browser takes 7 minutes to come back, and nobody approves
            return True
        with mock.patch.object(tool, "open_browser", slow_browser):
            result = self.run_tool("auth", "login")
        self.assertFails(result, "TIMEOUT")
        self.assertLess(self.clock.now() - started, 421)

    def test_a_blank_browser_is_no_crash(self):
        import webbrowser               # before BROWSER is blank: on 3.6 the module reads it as it loads
        os.environ["BROWSER"] = " "
        with mock.patch.object(webbrowser, "get", side_effect=webbrowser.Error("none")):
            result = self.run_tool("auth", "login")
        self.assertFails(result, "TIMEOUT")
        self.assertIn("No browser could be opened", result.stderr)

    def test_a_browser_that_stays_open_and_talks(self):
        """(A real process: the browser command prints, approves, then stays open for 30 s, and
        says when it closes.)"""
        script = os.path.join(self.config, "browser.sh")
        closed = os.path.join(self.config, "browser-closed")
        with open(script, "w") as handle:
            handle.write("#!/bin/sh\necho 'Opening in existing browser session.'\necho oops >&2\n"
                         "%s %s \"$1\"\nsleep 30\n: > %s\n"
                         % (sys.executable, os.path.join(HERE, "fake_browser.py"), closed))
        os.chmod(script, 0o755)
        env = subprocess_env(self.sandbox.url, os.path.join(self.config, "landbase"), BROWSER=script, DISPLAY=":0")
        result = run_cli(["auth", "login"], env, timeout=60)
        self.assertFalse(os.path.exists(closed), "the login waited for the browser: %r" % result)
        self.assertEqual(result.code, 0, result)
        self.assertEqual(json.loads(result.stdout)["userId"], "usr_demo")       # stdout: one JSON document
        self.assertNotIn("oops", result.stderr)


class OddEnvironmentTests(ToolTestCase):
    def test_a_config_directory_that_is_a_file_keeps_its_mode(self):
        path = os.path.join(self.config, "not-a-directory")
        with open(path, "w") as handle:
            handle.write("mine")
        os.chmod(path, 0o644)
        os.environ["LANDBASE_CONFIG_DIR"] = path
        token = self.platform.mint_token()
        envelope = self.assertFails(self.run_tool("auth", "login", "--with-token", stdin=token + "\n"),
                                    "SETUP_FAILED")
        self.assertIn("not a directory", envelope["error"]["message"])
        self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o644)

    def test_a_directory_the_tool_did_not_make_keeps_its_mode(self):
        directory = os.path.join(self.config, "landbase")
        os.makedirs(directory)
        os.chmod(directory, 0o755)
        self.assertOk(self.run_tool("auth", "login", "--with-token", stdin=self.platform.mint_token() + "\n"))
        self.assertEqual(stat.S_IMODE(os.stat(directory).st_mode), 0o755)

    def test_ssl_cert_file_naming_a_fifo_is_refused_at_once(self):
        """(A real process: a FIFO would hang the CA store's load.)"""
        fifo = os.path.join(self.config, "ca.fifo")
        os.mkfifo(fifo)
        env = subprocess_env(None, os.path.join(self.config, "landbase"), SSL_CERT_FILE=fifo,
                             LANDBASE_ACCESS_TOKEN="lbs_x", LANDBASE_PLATFORM_API_URL="https://127.0.0.1:9")
        result = run_cli(["contacts-import", "status", "1", "--account=acc_demo", "--timeout", "2"], env, timeout=30)
        self.assertEqual((result.code, result.envelope["error"]["code"]), (1, "SETUP_FAILED"), result)
        self.assertIn("SSL_CERT_FILE", result.envelope["error"]["message"])

    def test_a_token_on_stdin_that_cannot_travel_in_a_header(self):
        result = self.run_tool("auth", "login", "--with-token", stdin="lbs_\u20acabc\n")
        self.assertFails(result, "INVALID_INPUT")
        self.assertEqual(self.platform.requests, [])


class SignalWindowTests(ToolTestCase):
    def test_a_signal_right_after_the_handlers_are_installed_is_reported(self):
        real = signal.signal

        def install(signum, handler):
            previous = real(signum, handler)
            if handler is tool._on_signal and signum == signal.SIGINT:
                handler(signum, None)          # the signal arrives the moment its handler is in place
            return previous
        with mock.patch.object(tool.signal, "signal", install):
            result = self.run_tool("contacts-import", "status", "1")
        self.assertFails(result, "INTERRUPTED", 130)

    def test_as_the_program_it_leaves_the_signals_ignored(self):
        self.login()
        before = signal.getsignal(signal.SIGINT)
        self.addCleanup(signal.signal, signal.SIGINT, before)
        self.addCleanup(signal.signal, signal.SIGTERM, signal.getsignal(signal.SIGTERM))
        out = io.StringIO()
        with mock.patch.object(sys, "argv", [TOOL, "contacts-import", "status", "1"]), \
                mock.patch.object(sys, "stdout", out), mock.patch.object(sys, "stderr", io.StringIO()):
            self.assertEqual(tool.main(), 0)
        self.assertEqual(signal.getsignal(signal.SIGINT), signal.SIG_IGN)   # no window before the exit
        self.assertEqual(json.loads(out.getvalue())["importId"], 1)


class SmallerDefectTests(ToolTestCase):
    def setUp(self):
        ToolTestCase.setUp(self)
        self.login()

    def test_account_set_under_the_environments_account_says_it_stays_active(self):
        os.environ["LANDBASE_ACCOUNT_ID"] = "acc_demo"
        result = self.run_tool("account", "set", "acc_team")
        self.assertOk(result)
        self.assertIn("LANDBASE_ACCOUNT_ID=acc_demo is set", result.stderr)

    def test_a_login_under_the_environments_account_names_it(self):
        """h11 F6: a login said "active account: none; choose one with: account set", while every
        command run with LANDBASE_ACCOUNT_ID used its account, and account set cannot change that."""
        os.environ["LANDBASE_ACCOUNT_ID"] = "acc_team"
        token = self.platform.mint_token("usr_demo")
        result = self.run_tool("auth", "login", "--with-token", stdin=token + "\n")
        self.assertOk(result)
        self.assertIn("warning: LANDBASE_ACCOUNT_ID=acc_team is set: it stays the active account "
                      "wherever it is set; acc_demo is the stored one", result.stderr)
        self.assertIn("; active account: acc_team (from LANDBASE_ACCOUNT_ID)\n", result.stderr)

    def test_a_login_whose_identity_cannot_use_the_environments_account_says_so(self):
        """h11 F6: the login said "Active account: acc_solo", and the next command went to acc_team
        (LANDBASE_ACCOUNT_ID), which usr_solo cannot use: NOT_FOUND."""
        os.environ["LANDBASE_ACCOUNT_ID"] = "acc_team"
        token = self.platform.mint_token("usr_solo")
        result = self.run_tool("auth", "login", "--with-token", stdin=token + "\n")
        self.assertOk(result)
        self.assertIn("warning: LANDBASE_ACCOUNT_ID=acc_team is set, and commands use it, but this "
                      "identity cannot use it (it can use: acc_solo): change or unset it",
                      result.stderr)

    def test_account_ids_in_a_message_are_the_first_ten_and_how_many_more(self):
        self.assertEqual(tool.listed_ids([]), "none")
        self.assertEqual(tool.listed_ids(["acc_1", "acc_2"]), "acc_1, acc_2")
        ids = ["acc_%d" % n for n in range(150000)]
        self.assertEqual(tool.listed_ids(ids), ", ".join(ids[:10]) + " and 149990 more")

    def test_a_login_under_the_environments_own_account_says_nothing_of_it(self):
        os.environ["LANDBASE_ACCOUNT_ID"] = "acc_demo"
        token = self.platform.mint_token("usr_demo")
        result = self.run_tool("auth", "login", "--with-token", stdin=token + "\n")
        self.assertOk(result)
        self.assertNotIn("LANDBASE_ACCOUNT_ID", result.stderr)

    def test_the_group_readable_warning_is_printed_once(self):
        os.chmod(self.session_path, 0o640)
        result = self.run_tool("account", "set", "acc_team")
        self.assertOk(result)
        self.assertEqual(result.stderr.count("open to group or others"), 1, result.stderr)

    def test_logout_with_a_directory_in_place_of_the_file_says_one_thing(self):
        os.remove(self.session_path)
        os.mkdir(self.session_path)
        os.mkdir(os.path.join(self.session_path, "inside"))
        result = self.run_tool("auth", "logout")
        envelope = self.assertFails(result, "SETUP_FAILED")
        self.assertIn("remove it by hand", envelope["error"]["message"])
        self.assertNotIn("logout removes it", result.stderr)

    def test_a_device_code_is_sanitised_in_the_envelope(self):
        self.platform.inject("device", {"json": {"deviceCode": "d", "userCode": "AB\x1b[2JCD", "interval": 1,
                                                 "verificationUri": "http://x/", "expiresIn": 3}})
        self.platform.inject("token", {"status": 400, "body": {"error": {"code": "AUTHORIZATION_PENDING"}}}, times=9)
        result = self.run_tool("auth", "login", "--device")
        self.assertFails(result, "TIMEOUT")
        self.assertIn("AB\ufffd[2JCD", result.envelope["error"]["message"])
        self.assertNotIn("\\u001b", result.stderr)
        self.assertNotIn("\x1b", result.stderr)

    def test_tokens_a_server_sends_in_every_answer_do_not_pile_up(self):
        before = len(tool.SECRETS)
        for n in range(20):
            self.platform.inject("me", {"json": {"userId": "usr_demo", "email": "e", "accessToken": "lbs_new%d" % n}})
            self.assertOk(self.run_tool("auth", "status"))
        self.assertLessEqual(len(tool.SECRETS), before + 2)

    def test_max_wait_without_watch_is_invalid(self):
        envelope = self.assertFails(self.run_tool("contacts-import", "start", "--json", "-", "--max-wait", "4h",
                                                  stdin='{"datasetId": "ds_demo", "tagName": "x"}'), "INVALID_INPUT")
        self.assertIn("--watch", envelope["error"]["message"])
        self.assertEqual(self.platform.requests, [])

    def test_a_network_error_ends_with_a_next_step(self):
        os.environ["LANDBASE_PLATFORM_API_URL"] = "http://127.0.0.1:9"
        envelope = self.assertFails(self.run_tool("auth", "status"), "NETWORK_ERROR")
        self.assertIn("doctor", envelope["error"]["message"])


class UsageTests(ToolTestCase):
    def refused(self, *argv):
        envelope = self.assertFails(self.run_tool(*argv), "INVALID_INPUT")
        return envelope["error"]["message"]

    def test_every_unknown_option_gets_the_nearest_one_and_the_commands_help(self):
        message = self.refused("contacts-import", "start", "--jsn", "b.json")
        self.assertIn("--jsn", message)
        self.assertIn("did you mean '--json'?", message)
        message = self.refused("contacts-import", "start", "--json", "b.json", "--wach")
        self.assertIn("did you mean '--watch'?", message)
        self.assertIn("contacts-import start --help", message)
        message = self.refused("--acount", "acc_1", "contacts-import", "status", "1")
        self.assertIn("did you mean '--account'?", message)

    def test_a_login_says_who_is_logged_in(self):
        result = self.run_tool("auth", "login", "--with-token", stdin=self.platform.mint_token("usr_solo") + "\n")
        self.assertOk(result)
        self.assertIn("Logged in as solo@acme.example (usr_solo)", result.stderr)

    def test_the_device_flow_says_when_its_code_expires(self):
        on_sleep(self.clock, 1, lambda: self.platform.decide_device(
            re.search(r"enter the code (\S+)", sys.stderr.getvalue()).group(1), "approve", "usr_demo"))
        result = self.run_tool("auth", "login", "--device")
        self.assertOk(result)
        self.assertRegex(result.stderr, r"enter the code \S+ \(it expires in 10m, at \d{4}-\d\d-\d\dT")


class AttackFindingsTests(ToolTestCase):
    """What an attack on the finished tool found (each seen failing before its fix)."""

    def setUp(self):
        ToolTestCase.setUp(self)
        self.token = self.login()

    def phase(self, phase):
        self.platform.inject("status", {"json": {"importId": 1, "phase": phase, "percent": 1, "counts": None,
                                                 "error": {"code": phase, "message": phase}}})

    def test_a_token_echoed_fully_percent_encoded_or_as_character_references_is_printed_nowhere(self):
        for encoded in ("".join("%%%02X" % ord(ch) for ch in self.token),
                        "".join("&#%d;" % ord(ch) for ch in self.token),
                        "".join("&#x%x;" % ord(ch) for ch in self.token)):
            with self.subTest(encoded=encoded[:12]):
                self.phase(encoded)
                result = self.run_tool("contacts-import", "status", "1")
                self.assertOk(result)
                self.assertNotIn(encoded, result.stdout + result.stderr)
                self.assertNotIn(self.token[4:], result.stdout + result.stderr)
                self.assertIn("(redacted)", json.loads(result.stdout)["phase"])

    def test_a_secret_ending_in_a_character_whose_escape_begins_with_it_is_redacted_whole(self):
        # &#38; begins with &, %25 with %, \u005c with \: the escape is redacted with the rest of
        # the secret, or its tail (#38;) is printed after the redaction
        for token, echoed in (("tok_Echo&", "tok_Echo&#38;"), ("tok_Echo&", "tok_Echo&amp;"),
                              ("tok_Echo%", "tok_Echo%25"), ("tok_Echo\\", "tok_Echo\\u005c")):
            with self.subTest(echoed=echoed):
                os.environ["LANDBASE_ACCESS_TOKEN"] = token
                self.phase("<" + echoed + ">")
                result = self.run_tool("contacts-import", "status", "1")
                self.assertOk(result)
                self.assertEqual(json.loads(result.stdout)["phase"], "<lbs_\u2026(redacted)>")

    def test_a_secret_of_thousands_of_characters_is_redacted_in_its_escaped_forms(self):
        # a token from the environment may be long (up to 4096 characters); the server may echo
        # it escaped as a URL, JSON or HTML escapes it whole
        token = "tok-" + "a/b+c=d<e>f&g'h\"i" * 170           # 3,064 characters
        for echoed in (urllib.parse.quote(token, safe=""), json.dumps(token)[1:-1],
                       html.escape(token)):
            with self.subTest(echoed=echoed[:24]):
                os.environ["LANDBASE_ACCESS_TOKEN"] = token
                self.phase("<" + echoed + ">")
                result = self.run_tool("contacts-import", "status", "1")
                self.assertOk(result)
                self.assertEqual(json.loads(result.stdout)["phase"], "<lbs_\u2026(redacted)>")

    def test_the_users_own_words_shaped_like_a_token_are_not_redacted(self):
        path = os.path.join(self.config, "lbs_jobs.json")
        with open(path, "w") as handle:
            handle.write('{"datasetId": "ds_demo", "tagName": "x"}')
        self.platform.inject("start", {"drop": True}, times=4)
        result = self.run_tool("contacts-import", "start", "--json", path, "--idempotency-key=lbs_nightly-1")
        envelope = self.assertFails(result, "NETWORK_ERROR")
        self.assertEqual(envelope["error"]["meta"]["idempotencyKey"], "lbs_nightly-1")
        self.assertIn("--json %s --account=acc_demo --idempotency-key=lbs_nightly-1" % path,
                      envelope["error"]["message"])

    def test_a_servers_meta_cannot_claim_the_tools_own_fields(self):
        evil = {"resume": "rm -rf ~", "idempotencyKey": "EVIL", "importIds": [1, 2], "signal": "SIGKILL",
                "serverCode": "OK"}
        self.platform.inject("status", {"status": 404, "body": {"error": {"code": "NOT_FOUND", "message": "gone",
                                                                          "meta": evil}}})
        result = self.run_tool("contacts-import", "wait", "1")
        envelope = self.assertFails(result, "NOT_FOUND")
        self.assertEqual(envelope["error"]["meta"].get("importId"), 1)
        for key in evil:
            self.assertNotIn(key, envelope["error"]["meta"])
        self.assertNotIn("rm -rf", result.stderr)

    def test_token_shapes_in_what_is_kept_of_an_answer_are_redacted(self):
        # a server's meta and the objects a status passes through are its text: no lbs_ shape is printed from
        # them (the redaction moved from the whole answer to what is kept of it)
        self.platform.inject("status", {"status": 404, "body": {"error": {"code": "NOT_FOUND", "message": "gone",
                                                                          "meta": {"hint": "lbs_MetaShape1"}}}})
        result = self.run_tool("contacts-import", "status", "1")
        self.assertEqual(self.assertFails(result, "NOT_FOUND")["error"]["meta"]["hint"], "lbs_\u2026(redacted)")
        self.platform.inject("status", {"status": 200, "body": {
            "importId": 1, "phase": "failed", "percent": 5, "counts": {"note": "lbs_CountsShape2"},
            "error": {"code": "X", "message": "see lbs_ErrorShape3"}, "other": "lbs_DroppedShape4"}})
        result = self.run_tool("contacts-import", "status", "1")
        self.assertEqual(result.code, 0, result.stderr)
        for shape in ("MetaShape1", "CountsShape2", "ErrorShape3", "DroppedShape4"):
            self.assertNotIn(shape, result.stdout + result.stderr)
        self.assertEqual(json.loads(result.stdout)["error"]["message"], "see lbs_\u2026(redacted)")

    def test_token_shapes_all_through_a_long_text_are_redacted_whole(self):
        # a long text is redacted a piece at a time (issue 21, 3: memory stays bounded); wherever
        # it is cut, no token shape is cut in two, which would leave its end printed. Shapes of
        # three lengths, so that a cut falls inside one whatever the size of the pieces
        for length in (45, 46, 47):
            shape = "lbs_" + "Q" * (length - 5)
            message = " ".join([shape] * (300000 // length))          # 300 kB
            with self.subTest(length=length):
                self.platform.inject("status", {"json": {
                    "importId": 1, "phase": "failed", "percent": 5, "counts": None,
                    "error": {"code": "X", "message": message}}})
                result = self.run_tool("contacts-import", "status", "1")
                printed = json.loads(result.stdout)["error"]["message"]
                self.assertIn("(redacted)", printed)
                self.assertNotIn("Q", printed)
                self.assertNotIn("Q", result.stderr)

    def test_a_result_written_in_several_pieces_is_written_whole(self):
        pieces = []

        class Interrupted(io.RawIOBase):        # a pipe whose writes a signal cuts short
            def writable(self):
                return True

            def write(self, data):
                pieces.append(bytes(data[:7]))
                return len(pieces[-1])
        stdout = io.TextIOWrapper(io.BufferedWriter(Interrupted()), encoding="ascii")
        stdout.buffer.write = stdout.buffer.raw.write
        with mock.patch.object(sys, "stdout", stdout):
            tool.write_stdout('{"importId": 7, "runRef": "run_x"}\n')
        self.assertEqual(b"".join(pieces), b'{"importId": 7, "runRef": "run_x"}\n')

    def test_a_wait_stopped_by_a_signal_still_writes_the_last_known_status(self):
        on_sleep(self.clock, 1, lambda: (_ for _ in ()).throw(tool.Stopped(signal.SIGHUP)))
        result = self.run_tool("contacts-import", "wait", "1", "--query", "importId,phase")
        self.assertFails(result, "TERMINATED", 129)
        self.assertRegex(result.stdout, r"^1\t\w+\n$")

    def test_doctor_exits_in_its_classes_when_the_platform_fails(self):
        self.platform.inject("accounts", {"status": 500})
        result = self.run_tool("doctor")
        self.assertEqual(result.code, 4, result)

    def test_an_ssl_cert_file_that_holds_no_certificate_is_setup_failed(self):
        garbage = os.path.join(self.config, "garbage.pem")
        with open(garbage, "w") as handle:
            handle.write("not a certificate\n")
        os.environ.update(SSL_CERT_FILE=garbage, LANDBASE_PLATFORM_API_URL="https://127.0.0.1:9")
        envelope = self.assertFails(self.run_tool("contacts-import", "status", "1"), "SETUP_FAILED")
        self.assertIn("SSL_CERT_FILE", envelope["error"]["message"])

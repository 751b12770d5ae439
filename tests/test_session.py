"""The session file (README: The session file): location, modes, atomic writes, kept keys, damage, expiry; auth and account commands."""

import json
import os
import stat
import sys
import time
from unittest import mock

from support import ToolTestCase, on_sleep, sandbox, tool


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


class SessionFileTests(ToolTestCase):
    def test_created_0600_in_a_0700_directory_whatever_the_umask(self):
        for umask in (0o000, 0o277, 0o022):
            with self.subTest(umask=umask):
                directory = os.path.join(self.config, "umask-%o" % umask, "landbase")
                old = os.umask(umask)
                try:
                    tool.SessionStore(directory).update({"accessToken": "lbs_x"})
                finally:
                    os.umask(old)
                self.assertEqual(mode(directory), 0o700)
                self.assertEqual(mode(os.path.join(directory, "platform.json")), 0o600)

    def test_the_default_location_is_home_dot_landbase(self):
        os.environ.pop("LANDBASE_CONFIG_DIR")
        os.environ["HOME"] = self.config
        self.assertEqual(tool.SessionStore().path, os.path.join(self.config, ".landbase", "platform.json"))

    def test_unknown_keys_are_kept(self):
        self.login(extra={"nested": [1, 2]}, futureKey="kept")
        self.assertOk(self.run_tool("account", "set", "acc_team"))
        data = self.stored()
        self.assertEqual(data["futureKey"], "kept")
        self.assertEqual(data["extra"], {"nested": [1, 2]})
        self.assertEqual(data["accountId"], "acc_team")
        self.assertEqual(data["deviceName"], "test-host")

    def test_no_temporary_file_is_left(self):
        self.login()
        self.assertOk(self.run_tool("account", "set", "acc_team"))
        self.assertEqual(sorted(os.listdir(os.path.dirname(self.session_path))), ["platform.json", "platform.json.lock"])

    def test_a_failed_write_leaves_the_old_file_and_no_temporary(self):
        self.login()
        before = self.stored(raw=True)
        real_write = os.write

        def failing_write(fd, data):
            raise OSError(28, "No space left on device")
        os.write = failing_write
        try:
            result = self.run_tool("account", "set", "acc_team")
        finally:
            os.write = real_write
        envelope = self.assertFails(result, "SETUP_FAILED")
        self.assertIn(self.session_path, envelope["error"]["message"])
        self.assertEqual(self.stored(raw=True), before)
        self.assertEqual(sorted(os.listdir(os.path.dirname(self.session_path))), ["platform.json", "platform.json.lock"])

    def test_the_temporary_of_a_killed_writer_is_replaced_by_the_next_write(self):
        self.login()
        left = self.session_path + ".tmp"          # writers hold the lock: one temporary name serves them all
        with open(left, "w") as handle:
            handle.write("{")
        tool.SessionStore().update({"accountId": "acc_team"})
        self.assertFalse(os.path.exists(left))
        self.assertEqual(self.stored()["accountId"], "acc_team")

    def test_a_symlinked_session_file_is_replaced_not_followed(self):
        self.login()
        target = os.path.join(self.config, "elsewhere.json")
        with open(target, "w") as handle:
            handle.write("{}")
        os.remove(self.session_path)
        os.symlink(target, self.session_path)
        tool.SessionStore().update({"accessToken": "lbs_new"})
        self.assertFalse(os.path.islink(self.session_path))
        with open(target) as handle:
            self.assertEqual(handle.read(), "{}")

    def test_damaged_files_are_named(self):
        cases = [(b"", "empty"), (b"  \n", "empty"), (b"[1, 2]", "JSON object"), (b'{"accessToken": 7}', "accessToken"),
                 (b'{"accessToken": "lbs_x", "expiresAt": "tomorrow"}', "expiresAt"),
                 (b"\xff\xfe", "not UTF-8"), (b"{" * 100000, "nested deeper than 64 levels"), (b"{" * 10, "not valid JSON"), (b"null", "not null"),
                 (b'{"accessToken": "lbs_x", "n": NaN}', "NaN"), (b'{"a": 1, "a": 2}', "duplicate key"),
                 (b" " * (1024 * 1024 + 1), "larger than 1 MiB")]
        for raw, words in cases:
            with self.subTest(raw=raw[:40]):
                os.makedirs(os.path.dirname(self.session_path), exist_ok=True)
                with open(self.session_path, "wb") as handle:
                    handle.write(raw)
                result = self.run_tool("contacts-import", "status", "1")
                envelope = self.assertFails(result, "SETUP_FAILED")
                self.assertIn(self.session_path, envelope["error"]["message"])
                self.assertIn(words, envelope["error"]["message"])
                self.assertTrue(envelope["error"]["message"].endswith(
                    "remove it and run: %s auth login" % tool.program_command()), envelope)
                self.assertEqual(self.platform.requests, [])

    def test_a_fifo_or_a_directory_in_its_place_is_named_and_never_waited_on(self):
        os.makedirs(os.path.dirname(self.session_path))
        for make in (os.mkfifo, os.mkdir):
            with self.subTest(make=make.__name__):
                make(self.session_path)
                try:
                    # a blocking open() of a FIFO would wait here for a writer that never comes
                    envelope = self.assertFails(self.run_tool("contacts-import", "status", "1"), "SETUP_FAILED")
                    self.assertIn(self.session_path, envelope["error"]["message"])
                    self.assertEqual(self.platform.requests, [])
                finally:
                    (os.rmdir if make is os.mkdir else os.remove)(self.session_path)

    def test_auth_login_replaces_a_fifo_or_a_non_strict_file(self):
        os.makedirs(os.path.dirname(self.session_path))
        for setup in ("fifo", b'{"accessToken": "lbs_old", "expiresAt": "2026-12-05T10:00:00Z", "n": NaN}'):
            with self.subTest(setup=setup):
                if setup == "fifo":
                    os.mkfifo(self.session_path)
                else:
                    with open(self.session_path, "wb") as handle:
                        handle.write(setup)
                token = self.platform.mint_token("usr_solo")
                result = self.run_tool("auth", "login", "--with-token", stdin=token + "\n")
                self.assertOk(result)
                self.assertIn("replacing the damaged", result.stderr)
                self.assertEqual(self.stored()["accessToken"], token)
                os.remove(self.session_path)

    def test_a_truncated_file_is_named(self):
        os.makedirs(os.path.dirname(self.session_path))
        with open(self.session_path, "w") as handle:
            handle.write('{"accessToken": "lbs_')
        envelope = self.assertFails(self.run_tool("account", "list"), "SETUP_FAILED")
        self.assertIn("not valid JSON", envelope["error"]["message"])

    def test_a_file_readable_by_others_gets_a_warning_with_the_fix(self):
        self.login()
        os.chmod(self.session_path, 0o644)
        result = self.run_tool("contacts-import", "status", "1")
        self.assertOk(result)
        self.assertIn("chmod 600 %s" % self.session_path, result.stderr)

    def test_no_session_is_auth_required_before_any_request(self):
        result = self.run_tool("contacts-import", "status", "1", "--account=acc_demo")
        envelope = self.assertFails(result, "AUTH_REQUIRED")
        self.assertIn("auth login", envelope["error"]["message"])
        self.assertEqual(self.platform.requests, [])

    def test_an_expired_session_is_auth_failed_before_any_request(self):
        self.login(expiresAt=tool.format_time(time.time() - 60))
        result = self.run_tool("contacts-import", "status", "1")
        envelope = self.assertFails(result, "AUTH_FAILED")
        self.assertIn("expired", envelope["error"]["message"])
        self.assertEqual(self.platform.requests, [])

    def test_a_session_with_less_than_a_day_left_warns_once(self):
        self.login(expiresAt=tool.format_time(time.time() + 3600 * 5))
        result = self.run_tool("contacts-import", "status", "1")
        self.assertOk(result)
        self.assertEqual(result.stderr.count("warning: the session expires in"), 1, result)

    def test_the_warning_comes_under_24_hours_and_not_before(self):
        # README: under 24 hours left warns. 5 hours (above) warns under a 12-hour rule too, and a
        # 48-hour rule would warn at 25 hours: 20 and 25 hours pin the boundary between them
        for hours, warnings in ((20, 1), (25, 0)):
            with self.subTest(hours=hours):
                self.login(expiresAt=tool.format_time(self.clock.wall() + hours * 3600))
                result = self.run_tool("contacts-import", "status", "1")
                self.assertOk(result)
                warned = result.stderr.count("warning: the session expires in")
                self.assertEqual(warned, warnings, result)

    def test_every_line_is_written_when_its_event_happens(self):
        self.login(expiresAt=tool.format_time(time.time() + 3600 * 5))
        os.chmod(self.session_path, 0o640)
        self.platform.inject("start", {"status": 502})
        written = []
        on_sleep(self.clock, 1, lambda: written.append(sys.stderr.getvalue()))     # during the retry's wait
        result = self.run_tool("contacts-import", "start", "--json", "-",
                               stdin='{"datasetId": "ds_demo", "tagName": "x"}')
        doc = self.assertOk(result)
        self.assertIn("retry 1 of 3 in 5s", written[0])
        lines = result.lines
        self.assertEqual(len(lines), 4, lines)      # two warnings, the retry, then the import
        self.assertTrue(lines[3].startswith("Started import %d " % doc["importId"]), lines)

    def test_warnings_come_before_the_envelope(self):
        self.login(expiresAt=tool.format_time(time.time() + 3600 * 5))
        result = self.run_tool("contacts-import", "start", "--json", "-",
                               stdin='{"datasetId": "ds_other", "tagName": "x"}')
        self.assertFails(result, "VALIDATION_ERROR")
        self.assertIn("warning: the session expires in", result.lines[0])

    def test_the_environment_token_wins(self):
        self.login()
        token = os.environ["LANDBASE_ACCESS_TOKEN"] = self.platform.mint_token("usr_solo", ttl=3 * 86400)
        doc = self.assertOk(self.run_tool("auth", "status"))
        self.assertEqual(doc["userId"], "usr_solo")
        self.assertEqual(doc["tokenSource"], "env")
        # no file records when an environment token ends: the platform's /v1/me says, or nobody does
        self.assertEqual(doc["expiresAt"], sandbox.format_time(self.platform.tokens[token]["expires"]))
        self.platform.inject("me", {"json": {"userId": "usr_solo", "email": "solo@acme.example"}})
        self.assertIsNone(self.assertOk(self.run_tool("auth", "status"))["expiresAt"])

    def test_expiry_times_round_trip(self):
        self.assertEqual(tool.parse_time("2026-12-05T10:00:00Z"), 1796464800)
        self.assertEqual(tool.parse_time("2026-12-05T10:00:00.123+00:00"), 1796464800)
        self.assertEqual(tool.format_time(1796464800), "2026-12-05T10:00:00Z")
        with self.assertRaises(ValueError):
            tool.parse_time("2026-12-05 10:00")


class AuthCommandTests(ToolTestCase):
    def test_status(self):
        token = self.login()
        doc = self.assertOk(self.run_tool("auth", "status"))
        self.assertEqual(sorted(doc), sorted(["authenticated", "userId", "email", "accountId", "expiresAt",
                                              "expiresInSeconds", "tokenSource"]))
        self.assertEqual((doc["authenticated"], doc["userId"], doc["accountId"], doc["tokenSource"]),
                         (True, "usr_demo", "acc_demo", "file"))
        self.assertTrue(7 * 86400 - 120 < doc["expiresInSeconds"] <= 7 * 86400)
        self.assertNotIn(token, json.dumps(doc))

    def test_status_without_a_session_exits_3(self):
        self.assertFails(self.run_tool("auth", "status"), "AUTH_REQUIRED")

    def test_status_with_a_revoked_token_exits_3(self):
        self.login()
        self.platform.expire_tokens()
        self.assertFails(self.run_tool("auth", "status"), "AUTH_FAILED")

    def test_min_valid(self):
        self.login()
        self.assertOk(self.run_tool("auth", "status", "--min-valid", "6d"))
        envelope = self.assertFails(self.run_tool("auth", "status", "--min-valid", "8d"), "AUTH_FAILED")
        self.assertIn("--min-valid", envelope["error"]["message"])
        self.assertFails(self.run_tool("auth", "status", "--min-valid", "soon"), "INVALID_INPUT")

    def test_a_token_that_is_no_lbs_token_is_refused_with_the_line_that_works(self):
        for stdin in ("not-a-token\n", "\n"):
            with self.subTest(stdin=stdin):
                result = self.run_tool("auth", "login", "--with-token", stdin=stdin)
                message = self.assertFails(result, "INVALID_INPUT")["error"]["message"]
                self.assertTrue(message.endswith(
                    'pipe the lbs_ token in, alone on its line: echo "$TOKEN" | %s auth login '
                    '--with-token' % tool.program_command()), message)
        self.assertEqual(self.platform.requests, [])

    def test_logout_revokes_and_removes(self):
        token = self.login()
        doc = self.assertOk(self.run_tool("auth", "logout"))
        self.assertEqual(doc, {"loggedOut": True, "revoked": True})
        self.assertFalse(os.path.exists(self.session_path))
        self.assertTrue(self.platform.tokens[token]["revoked"])
        self.assertFails(self.run_tool("auth", "status"), "AUTH_REQUIRED")

    def test_logout_removes_the_session_even_when_revoking_fails(self):
        token = self.login()
        expires = self.stored()["expiresAt"]
        self.platform.inject("revoke", {"status": 503}, times=4)
        result = self.run_tool("auth", "logout")
        self.assertEqual(self.assertOk(result), {"loggedOut": True, "revoked": False})
        self.assertEqual(self.clock.sleeps, [5, 10, 20])
        self.assertIn("removing the local session anyway. The token stays valid until %s" % expires,
                      result.stderr)
        self.assertFalse(os.path.exists(self.session_path))
        self.assertFalse(self.platform.tokens[token]["revoked"])

    def test_logout_retries_a_revoke_that_failed_for_a_while(self):
        """h11 F3: one 503 made logout give up, and remove the only copy of a token that stayed
        valid for days."""
        token = self.login()
        self.platform.inject("revoke", {"status": 503})
        result = self.run_tool("auth", "logout")
        self.assertEqual(self.assertOk(result), {"loggedOut": True, "revoked": True})
        self.assertEqual(self.clock.sleeps, [5])
        self.assertTrue(self.platform.tokens[token]["revoked"])
        self.assertFalse(os.path.exists(self.session_path))

    def test_logout_of_a_token_the_platform_no_longer_accepts(self):
        self.login()
        self.platform.expire_tokens()
        result = self.run_tool("auth", "logout")
        self.assertEqual(self.assertOk(result), {"loggedOut": True, "revoked": False})
        self.assertIn("no longer accepts this token", result.stderr)
        self.assertNotIn("stays valid", result.stderr)
        self.assertFalse(os.path.exists(self.session_path))

    def test_logout_without_a_session(self):
        self.assertEqual(self.assertOk(self.run_tool("auth", "logout")), {"loggedOut": True, "revoked": False})
        self.assertEqual(self.platform.requests, [])


class AccountCommandTests(ToolTestCase):
    def test_list_marks_the_active_account(self):
        self.login()
        doc = self.assertOk(self.run_tool("account", "list"))
        self.assertEqual(doc, [{"id": "acc_demo", "name": "Demo Co", "active": True},
                               {"id": "acc_team", "name": "Demo Team", "active": False}])

    def test_set_persists_a_usable_account(self):
        self.login()
        self.assertEqual(self.assertOk(self.run_tool("account", "set", "acc_team")),
                         {"accountId": "acc_team", "name": "Demo Team"})
        self.assertEqual(self.stored()["accountId"], "acc_team")

    def test_set_refuses_an_account_the_identity_cannot_use_and_changes_nothing(self):
        self.login()
        before = self.stored(raw=True)
        envelope = self.assertFails(self.run_tool("account", "set", "acc_other"), "NOT_FOUND")
        self.assertEqual(envelope["error"]["meta"]["accountId"], "acc_other")
        self.assertEqual(self.stored(raw=True), before)

    def test_set_with_an_environment_token_and_no_file(self):
        os.environ["LANDBASE_ACCESS_TOKEN"] = self.platform.mint_token()
        self.assertOk(self.run_tool("account", "set", "acc_team"))
        self.assertEqual(self.stored(), {"accountId": "acc_team"})
        self.assertEqual(mode(self.session_path), 0o600)

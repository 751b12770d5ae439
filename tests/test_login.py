"""auth login: the browser flow (PKCE, loopback, state), the device flow, --with-token."""

import io
import os
import stat
import urllib.error
import urllib.request
from unittest import mock
from urllib.parse import parse_qs, urlsplit

from support import ToolTestCase, direct_opener, on_sleep, tool
import fake_browser

DIRECT = direct_opener()


def get(url):
    """GET a URL; the status code, whatever it is."""
    try:
        with DIRECT.open(url, timeout=5) as response:
            return response.getcode()
    except urllib.error.HTTPError as exc:
        return exc.code


class BrowserLoginTests(ToolTestCase):
    def setUp(self):
        ToolTestCase.setUp(self)
        os.environ["DISPLAY"] = ":0"            # a desktop: the browser flow is the default
    def login_with(self, browser, *extra):
        with mock.patch.object(tool, "open_browser", browser):
            return self.run_tool("auth", "login", *extra)

    def person(self, decision="approve", user=None, before=None):
        """A stand-in for open_browser: the person presses a button on the sandbox's page."""
        self.opened = []

        def open_url(url, *args, **kwargs):
            self.opened.append(url)
            if before:
                before(url)
            env = {"FAKE_BROWSER_DECISION": decision}
            if user:
                env["FAKE_BROWSER_USER"] = user
            with mock.patch.dict(os.environ, env):
                self.assertEqual(fake_browser.main(["fake_browser.py", url]), 0)
            return True
        return open_url

    def test_approve(self):
        result = self.login_with(self.person())
        doc = self.assertOk(result)
        self.assertEqual(sorted(doc), ["accountId", "email", "expiresAt", "userId"])
        self.assertEqual((doc["userId"], doc["accountId"]), ("usr_demo", None))   # two accounts: none chosen
        stored = self.stored()
        self.assertTrue(stored["accessToken"].startswith("lbs_"))
        self.assertEqual(stored["expiresAt"], doc["expiresAt"])
        self.assertTrue(stored["deviceName"])
        self.assertEqual(stat.S_IMODE(os.stat(self.session_path).st_mode), 0o600)
        self.assertNotIn(stored["accessToken"], result.stdout + result.stderr)
        self.assertIn(self.opened[0], result.stderr)             # the URL is always printed

    def test_the_authorize_url_carries_pkce_s256_and_a_loopback_redirect(self):
        self.assertOk(self.login_with(self.person()))
        parts = urlsplit(self.opened[0])
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        self.assertEqual(parts.path, "/cli/authorize")
        self.assertEqual(query["client_id"], "landbase-cli")
        self.assertEqual(query["response_type"], "code")
        self.assertEqual(query["code_challenge_method"], "S256")
        self.assertRegex(query["code_challenge"], r"^[A-Za-z0-9_-]{43}$")
        self.assertRegex(query["redirect_uri"], r"^http://127\.0\.0\.1:\d+/callback$")
        self.assertGreaterEqual(len(query["state"]), 32)
        self.assertTrue(query["device_name"])
        exchange = [h for m, p, h in self.platform.requests if p == "/v1/oauth/token"]
        self.assertEqual(len(exchange), 1)

    def test_a_second_login_gets_a_new_state_and_verifier(self):
        self.assertOk(self.login_with(self.person()))
        first = self.opened[0]
        self.assertOk(self.login_with(self.person()))
        states = [parse_qs(urlsplit(u).query)["state"][0] for u in (first, self.opened[0])]
        self.assertNotEqual(states[0], states[1])

    def test_a_single_account_identity_gets_it_as_the_active_account(self):
        doc = self.assertOk(self.login_with(self.person(user="usr_solo")))
        self.assertEqual(doc["accountId"], "acc_solo")

    def test_deny(self):
        result = self.login_with(self.person(decision="deny"))
        envelope = self.assertFails(result, "AUTH_FAILED")
        self.assertIn("refused in the browser", envelope["error"]["message"])
        self.assertTrue(envelope["error"]["message"].endswith(
            "to log in, run it again and approve: %s auth login" % tool.program_command()), envelope)
        self.assertFalse(os.path.exists(self.session_path))

    def test_wrong_or_missing_state_is_rejected_and_the_login_goes_on(self):
        answers = []

        def forge(url):
            redirect = parse_qs(urlsplit(url).query)["redirect_uri"][0]
            answers.append(get(redirect + "?code=forged&state=wrong"))
            answers.append(get(redirect + "?code=forged"))
            answers.append(get(redirect.replace("/callback", "/other")))
        doc = self.assertOk(self.login_with(self.person(before=forge)))
        self.assertEqual(answers, [400, 400, 404])
        self.assertEqual(doc["userId"], "usr_demo")

    def test_one_callback_is_accepted_then_the_listener_stops(self):
        seen = {}

        def note(url):
            seen["redirect"] = parse_qs(urlsplit(url).query)["redirect_uri"][0]
        self.assertOk(self.login_with(self.person(before=note)))
        with self.assertRaises(urllib.error.URLError):
            DIRECT.open(seen["redirect"] + "?code=x", timeout=2)

    def test_the_listener_binds_loopback_only(self):
        listener = tool.CallbackListener("state")
        try:
            self.assertEqual(listener.server.server_address[0], "127.0.0.1")
        finally:
            listener.stop()

    def test_an_idle_or_broken_client_cannot_hold_the_callback_back(self):
        import socket
        # a listener that served one connection at a time would hold the browser's answer back until the
        # idle connection timed out: make that an hour, so that get()'s own 5-second timeout shows it
        patch = mock.patch.object(tool, "CALLBACK_CONNECTION_TIMEOUT", 3600)
        patch.start()
        self.addCleanup(patch.stop)
        listener = tool.CallbackListener("s" * 43)
        self.addCleanup(listener.stop)
        port = listener.server.server_address[1]
        idle = socket.create_connection(("127.0.0.1", port))             # connects, never speaks
        self.addCleanup(idle.close)
        reset = socket.create_connection(("127.0.0.1", port))            # connects, then resets
        reset.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        reset.close()
        with mock.patch("sys.stderr", io.StringIO()) as err:
            self.assertEqual(get("http://127.0.0.1:%d//[oops/callback" % port), 404)
            self.assertEqual(get("http://127.0.0.1:%d/callback?state=%%ff%%fe&code=x" % port), 400)
            self.assertEqual(get(listener.redirect_uri + "?code=c&state=" + "s" * 43), 200)
            self.assertTrue(listener.done.wait(1))
            self.assertEqual(listener.result, {"code": "c"})
        self.assertEqual(err.getvalue(), "")

    def test_no_answer_within_5_minutes(self):
        result = self.login_with(lambda url, *a, **k: True)
        envelope = self.assertFails(result, "TIMEOUT")
        self.assertIn("5 minutes", envelope["error"]["message"])
        command = tool.program_command()
        self.assertTrue(envelope["error"]["message"].endswith(
            "run %s auth login again (or %s auth login --device)" % (command, command)), envelope)
        self.assertFalse(os.path.exists(self.session_path))

    def test_no_browser_prints_the_url_and_opens_nothing(self):
        opened = []

        def open_url(url, *a, **k):
            opened.append(url)
            return True
        with mock.patch.object(tool, "open_browser", open_url):
            result = self.run_tool("auth", "login", "--no-browser")
        self.assertFails(result, "TIMEOUT")
        self.assertEqual(opened, [])
        self.assertIn("/cli/authorize?client_id=landbase-cli", result.stderr)

    def test_a_browser_that_cannot_open_says_so(self):
        result = self.login_with(lambda url, *a, **k: False)
        self.assertFails(result, "TIMEOUT")
        self.assertIn("No browser could be opened", result.stderr)

    def test_the_session_is_saved_even_when_reading_the_identity_fails(self):
        self.platform.inject("me", {"status": 503}, times=4)
        result = self.login_with(self.person())
        self.assertFails(result, "API_ERROR")
        self.assertTrue(self.stored()["accessToken"].startswith("lbs_"))
        self.assertEqual(self.assertOk(self.run_tool("auth", "status"))["userId"], "usr_demo")

    def test_a_refused_code_exchange_is_auth_failed(self):
        self.platform.inject("token", {"status": 400, "body": {"error": {"code": "INVALID_GRANT", "message": "no"}}})
        self.assertFails(self.login_with(self.person()), "AUTH_FAILED")

    def test_login_keeps_unknown_keys_and_replaces_a_damaged_file(self):
        tool.SessionStore().update({"accessToken": "lbs_old", "theirKey": 1, "accountId": "acc_team"})
        doc = self.assertOk(self.login_with(self.person()))
        self.assertEqual(doc["accountId"], "acc_team")              # the active account survives a re-login
        self.assertEqual(self.stored()["theirKey"], 1)
        with open(self.session_path, "w") as handle:
            handle.write("{broken")
        result = self.login_with(self.person())
        self.assertOk(result)
        self.assertIn("replacing the damaged", result.stderr)

    def test_no_display_chooses_the_device_flow(self):
        # (platform, environment, device flow?): no SSH_* anywhere but in the last rows, so that each row
        # turns on the display alone, or on SSH alone
        cases = [("linux", {}, True), ("linux", {"DISPLAY": ":0"}, False),
                 ("linux", {"WAYLAND_DISPLAY": "wayland-0"}, False), ("freebsd13", {}, True),
                 ("darwin", {}, False), ("win32", {}, False),
                 ("darwin", {"SSH_CONNECTION": "10.0.0.1 5000 10.0.0.2 22"}, True),
                 ("linux", {"DISPLAY": ":0", "SSH_TTY": "/dev/pts/0"}, True),
                 ("linux", {"BROWSER": "/usr/bin/true"}, False),
                 ("linux", {"BROWSER": "/usr/bin/true", "SSH_TTY": "/dev/pts/0"}, False)]
        for platform, env, device in cases:
            with self.subTest(platform=platform, env=env):
                for name in ("DISPLAY", "WAYLAND_DISPLAY", "SSH_CONNECTION", "SSH_TTY", "BROWSER"):
                    os.environ.pop(name, None)
                os.environ.update(env)
                with mock.patch.object(tool.sys, "platform", platform):
                    self.assertIs(tool.should_use_device_flow(), device)


class DeviceLoginTests(ToolTestCase):
    sandbox_options = {"device_interval": 5}

    def approve_on_sleep(self, count, decision="approve"):
        """The person approves on the device page while the tool sleeps for the count-th time."""
        def decide():
            code = [d["user_code"] for d in self.platform.devices.values() if d["state"] == "pending"][0]
            self.platform.decide_device(code, decision, "usr_demo")
        on_sleep(self.clock, count, decide)

    def test_approve(self):
        self.approve_on_sleep(3)
        result = self.run_tool("auth", "login", "--device")
        doc = self.assertOk(result)
        self.assertEqual(doc["userId"], "usr_demo")
        self.assertEqual(self.clock.sleeps, [5, 5, 5])
        self.assertRegex(result.stderr, r"open http://127\.0\.0\.1:\d+/cli/device and enter the code [A-Z]{4}-[A-Z]{4}")
        self.assertTrue(os.path.exists(self.session_path))

    def test_slow_down_adds_5_seconds(self):
        self.platform.inject("token", {"status": 400, "body": {"error": {"code": "SLOW_DOWN", "message": "slow"}}})
        self.approve_on_sleep(2)
        self.assertOk(self.run_tool("auth", "login", "--device"))
        self.assertEqual(self.clock.sleeps, [5, 10])

    def assertEndsWithTheDeviceLogin(self, envelope):
        """h12 F1: a device login's failure ends with the command that logs in again, runnable."""
        self.assertTrue(envelope["error"]["message"].endswith(
            "%s auth login --device" % tool.program_command()), envelope)

    def test_deny(self):
        self.approve_on_sleep(1, decision="deny")
        envelope = self.assertFails(self.run_tool("auth", "login", "--device"), "AUTH_FAILED")
        self.assertEndsWithTheDeviceLogin(envelope)
        self.assertFalse(os.path.exists(self.session_path))

    def test_expired_code(self):
        self.platform.inject("token", {"status": 400, "body": {"error": {"code": "EXPIRED_TOKEN", "message": "x"}}})
        envelope = self.assertFails(self.run_tool("auth", "login", "--device"), "TIMEOUT")
        self.assertIn("expired", envelope["error"]["message"])
        self.assertEndsWithTheDeviceLogin(envelope)

    def test_a_device_code_the_platform_refuses(self):
        self.platform.inject("token", {"status": 400, "body": {"error": {"code": "INVALID_GRANT",
                                                                         "message": "unknown device code"}}})
        envelope = self.assertFails(self.run_tool("auth", "login", "--device"), "AUTH_FAILED")
        self.assertIn("unknown device code", envelope["error"]["message"])
        self.assertEndsWithTheDeviceLogin(envelope)

    def test_nobody_approves_within_expires_in(self):
        envelope = self.assertFails(self.run_tool("auth", "login", "--device"), "TIMEOUT")
        self.assertIn("expired", envelope["error"]["message"])
        self.assertLessEqual(sum(self.clock.sleeps), 600 + 5)

    def test_slow_down_for_ever_ends_within_15_minutes(self):
        self.platform.inject("device", {"json": {"deviceCode": "d", "userCode": "ABCD-EFGH", "interval": 5,
                                                 "verificationUri": self.sandbox.url + "/cli/device",
                                                 "expiresIn": 1e12}})
        self.platform.inject("token", {"status": 400, "body": {"error": {"code": "SLOW_DOWN", "message": "slow"}}},
                             times=10 ** 6)
        envelope = self.assertFails(self.run_tool("auth", "login", "--device"), "TIMEOUT")
        self.assertIn("expired", envelope["error"]["message"])
        self.assertLessEqual(sum(self.clock.sleeps), tool.DEVICE_LIMIT)
        self.assertEqual(self.clock.sleeps[:3], [5, 10, 15])

    def test_an_absurd_interval_is_kept_in_bounds(self):
        for interval, first in ((1e300, 60), (-5, 5), (0.001, 1), ("5", 5)):
            with self.subTest(interval=interval):
                self.clock.sleeps = []
                self.platform.inject("device", {"json": {"deviceCode": "d", "userCode": "ABCD-EFGH",
                                                         "verificationUri": self.sandbox.url + "/cli/device",
                                                         "interval": interval, "expiresIn": 600}})
                self.platform.inject("token", {"status": 400, "body": {"error": {"code": "ACCESS_DENIED",
                                                                                 "message": "no"}}})
                self.assertFails(self.run_tool("auth", "login", "--device"), "AUTH_FAILED")
                self.assertEqual(self.clock.sleeps, [first])

    def test_retry_after_is_honoured(self):
        self.platform.inject("token", {"status": 429, "headers": {"Retry-After": "60"}})
        self.approve_on_sleep(2)
        self.assertOk(self.run_tool("auth", "login", "--device"))
        self.assertEqual(self.clock.sleeps, [5, 60])

    def test_a_transient_failure_while_waiting_is_survived(self):
        self.platform.inject("token", {"status": 502})
        self.approve_on_sleep(2)
        result = self.run_tool("auth", "login", "--device")
        self.assertOk(result)
        self.assertIn("waiting for approval", result.stderr)

    def test_chosen_automatically_without_a_display(self):
        # a Linux console: no display and no SSH_* (the environment has none of them), no browser opened
        for name in ("DISPLAY", "WAYLAND_DISPLAY"):
            os.environ.pop(name, None)
        self.approve_on_sleep(1)
        browser = mock.Mock(return_value=False)
        with mock.patch.object(tool.sys, "platform", "linux"), mock.patch("webbrowser.open", browser):
            result = self.run_tool("auth", "login")
        self.assertOk(result)
        self.assertIn("using the device code flow", result.stderr)
        self.assertEqual(browser.call_count, 0)
        self.assertEqual(self.platform.count("POST", "/v1/oauth/device"), 1)


class TokenLoginTests(ToolTestCase):
    def test_a_valid_token_is_checked_and_saved(self):
        token = self.platform.mint_token("usr_solo")
        result = self.run_tool("auth", "login", "--with-token", stdin=token + "\n")
        doc = self.assertOk(result)
        self.assertEqual((doc["userId"], doc["accountId"]), ("usr_solo", "acc_solo"))
        self.assertEqual([p for m, p, h in self.platform.requests], ["/v1/me", "/v1/accounts"])
        self.assertEqual(self.stored()["accessToken"], token)
        self.assertNotIn(token, result.stdout + result.stderr)

    def test_the_platform_says_when_a_pasted_token_ends(self):
        token = self.platform.mint_token("usr_solo")
        ends = tool.format_time(self.clock.wall() + 3 * 86400 + 1234)
        self.platform.inject("me", {"json": {"userId": "usr_solo", "email": "solo@acme.example",
                                             "expiresAt": ends}})
        result = self.run_tool("auth", "login", "--with-token", stdin=token + "\n")
        self.assertEqual(self.assertOk(result)["expiresAt"], ends)
        self.assertNotIn("assumed", result.stderr)
        self.assertEqual(self.stored()["expiresAt"], ends)

    def test_a_session_that_has_already_ended_is_no_login(self):
        token = self.platform.mint_token("usr_solo")
        self.platform.inject("me", {"json": {"userId": "usr_solo", "email": "solo@acme.example",
                                             "expiresAt": "2020-01-01T00:00:00Z"}})
        result = self.run_tool("auth", "login", "--with-token", stdin=token + "\n")
        message = self.assertFails(result, "AUTH_FAILED")["error"]["message"]
        self.assertIn("ended at 2020-01-01T00:00:00Z, before it began: check this host's clock", message)
        self.assertFalse(os.path.exists(self.session_path))

    def test_a_stored_account_the_new_identity_cannot_use_is_cleared(self):
        tool.SessionStore().update({"accessToken": "lbs_old", "accountId": "acc_team"})
        result = self.run_tool("auth", "login", "--with-token", stdin=self.platform.mint_token("usr_solo") + "\n")
        doc = self.assertOk(result)
        self.assertEqual(doc["accountId"], "acc_solo")          # replaced by the only account
        self.assertIn("acc_team is not one this identity can use; the active account is now acc_solo",
                      result.stderr)
        self.assertNotIn("account set", result.stderr)
        tool.SessionStore().update({"accessToken": "lbs_old", "accountId": "acc_other"})
        result = self.run_tool("auth", "login", "--with-token", stdin=self.platform.mint_token("usr_demo") + "\n")
        self.assertIsNone(self.assertOk(result)["accountId"])  # two accounts: none is chosen for the user
        self.assertIn("acc_other is not one this identity can use; it was cleared", result.stderr)
        self.assertIn("account set", result.stderr)
        self.assertIsNone(self.stored()["accountId"])
        self.assertEqual(self.assertOk(self.run_tool("auth", "status"))["accountId"], None)

    def test_stdin_closed_is_invalid_input(self):
        result = self.run_tool("auth", "login", "--with-token", stdin=None)     # sys.stdin is None, as with <&-
        envelope = self.assertFails(result, "INVALID_INPUT")
        self.assertIn("closed", envelope["error"]["message"])
        self.assertEqual(self.platform.requests, [])
        self.assertFalse(os.path.exists(self.session_path))

    def test_a_rejected_token_is_not_saved(self):
        token = self.platform.mint_token()
        self.platform.expire_tokens()
        self.assertFails(self.run_tool("auth", "login", "--with-token", stdin=token), "AUTH_FAILED")
        self.assertFalse(os.path.exists(self.session_path))

    def test_not_a_token(self):
        for stdin in ("", "\n", "hello", "lbs_ with space", "Bearer lbs_abc"):
            with self.subTest(stdin=stdin):
                self.assertFails(self.run_tool("auth", "login", "--with-token", stdin=stdin), "INVALID_INPUT")
        self.assertEqual(self.platform.requests, [])

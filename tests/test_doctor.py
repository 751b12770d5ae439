"""doctor (README: Cron, step 6): each check ok, warn or fail with a detail and the fix; a JSON report on stdout
and a table on stderr; exit 0, or the exit of the first failure's class (1 setup, 3 session, 4 network); each
check bounded by --timeout; no token printed. In-process against the sandbox (and behind the test proxy)."""

import hashlib
import json
import os
import time

from support import ToolTestCase, tool
from test_proxy import ProxyTestCase

CONNECTED = ["python", "config", "config", "proxy", "tls store", "dns", "connection", "platform", "clock",
             "session", "account", "tool"]


class DoctorTests(ToolTestCase):
    def doctor(self, *extra):
        result = self.run_tool("doctor", *extra)
        self.assertNotIn("Traceback", result.stderr)
        report = json.loads(result.stdout)
        self.assertEqual(sorted(report), ["checks", "ok"])
        for check in report["checks"]:
            self.assertEqual(sorted(check), ["detail", "fix", "name", "status"])
            self.assertIn(check["status"], ("ok", "warn", "fail"))
        table = [line for line in result.lines if not line.startswith(("error ", "{"))]
        self.assertEqual([line.split()[:2] for line in table],
                         [[check["status"], check["name"].split()[0]] for check in report["checks"]])
        return result, report, {check["name"]: check for check in report["checks"]}

    def test_a_host_where_everything_works(self):
        token = self.login()
        result, report, checks = self.doctor()
        self.assertEqual(result.code, 0, result)
        self.assertTrue(report["ok"])
        self.assertEqual([check["name"] for check in report["checks"]], CONNECTED)
        self.assertEqual({check["status"] for check in report["checks"]}, {"ok"}, result.stderr)
        self.assertIn("no proxy", checks["proxy"]["detail"])
        self.assertIn("acc_demo", checks["account"]["detail"])
        self.assertRegex(checks["platform"]["detail"], r"HTTP 200 in \d+ ms")
        self.assertNotIn(token, result.stdout + result.stderr)

    def test_no_session_is_the_session_class(self):
        result, report, checks = self.doctor()
        self.assertFails(result, "AUTH_REQUIRED")
        self.assertFalse(report["ok"])
        self.assertEqual(checks["session"]["status"], "fail")
        self.assertIn("auth login", checks["session"]["fix"])
        self.assertEqual(checks["connection"]["status"], "ok")         # the network is checked all the same

    def test_an_unreachable_platform_is_the_network_class(self):
        self.login()
        os.environ["LANDBASE_PLATFORM_API_URL"] = "http://127.0.0.1:9"
        result, _, checks = self.doctor()
        envelope = self.assertFails(result, "NETWORK_ERROR")
        self.assertEqual(checks["connection"]["status"], "fail")
        self.assertIn("Connection refused", checks["connection"]["detail"])
        self.assertEqual(envelope["error"]["meta"]["failed"], ["connection"])
        # what cron mails ends with the next step
        self.assertTrue(envelope["error"]["message"].endswith("; fix: " + checks["connection"]["fix"]))
        # what the platform was to say is not known, and no row says otherwise
        self.assertEqual(checks["session"]["status"], "ok")     # a stored session says when it ends
        self.assertEqual(checks["account"]["status"], "warn")
        self.assertIn("acc_demo (from ", checks["account"]["detail"])
        self.assertIn("is not known: the platform could not be asked", checks["account"]["detail"])

    def test_an_environment_token_while_the_platform_does_not_answer(self):
        os.environ.update(LANDBASE_ACCESS_TOKEN=self.login(), LANDBASE_PLATFORM_API_URL="http://127.0.0.1:9")
        os.remove(self.session_path)
        result, _, checks = self.doctor()
        self.assertFails(result, "NETWORK_ERROR")
        self.assertEqual(checks["config"]["status"], "ok")      # no platform.json, and none is needed
        self.assertIn("not needed: LANDBASE_ACCESS_TOKEN is set", checks["config"]["detail"])
        self.assertEqual(checks["session"]["status"], "warn")
        self.assertIn("the platform, which says so, could not be asked", checks["session"]["detail"])
        self.assertNotIn("renew", checks["session"]["fix"])
        self.assertEqual(checks["account"]["status"], "fail")   # no account is set: known without it
        self.assertIn("No account id", checks["account"]["detail"])

    def test_a_base_url_that_is_not_allowed_is_the_setup_class(self):
        self.login()
        os.environ["LANDBASE_PLATFORM_API_URL"] = "https://api.example.com"
        result, _, checks = self.doctor()
        self.assertFails(result, "INVALID_INPUT")
        self.assertEqual(checks["environment"]["status"], "fail")

    def test_an_ssl_cert_file_that_is_no_file(self):
        self.login()
        os.environ.update(LANDBASE_PLATFORM_API_URL="https://api.landbase.com", SSL_CERT_FILE=self.config)
        result, _, checks = self.doctor()
        self.assertFails(result, "SETUP_FAILED")
        self.assertIn("SSL_CERT_FILE", checks["tls store"]["detail"])

    def test_an_account_this_identity_cannot_use(self):
        self.login(account="acc_other")
        result, _, checks = self.doctor()
        self.assertFails(result, "SETUP_FAILED")
        self.assertEqual(checks["account"]["status"], "fail")
        self.assertIn("account list", checks["account"]["fix"])

    def test_loose_modes_and_a_small_skew_are_warnings_and_ok(self):
        self.login()
        os.chmod(self.session_path, 0o644)
        self.clock.wall0 += 240                 # this host's clock is 4 minutes ahead of the platform's
        result, report, checks = self.doctor()
        self.assertEqual(result.code, 0, result)
        self.assertTrue(report["ok"])
        self.assertEqual(checks["clock"]["status"], "ok")
        self.assertRegex(checks["clock"]["detail"], r"^(3m59s|4m|4m01s) ahead")     # Date has whole seconds
        self.assertTrue(any(c["status"] == "warn" and "chmod 600" in c["fix"] for c in report["checks"]))

    def test_a_skew_over_five_minutes_fails_with_the_fix(self):
        self.login()
        self.clock.wall0 -= 3 * 86400           # this host's clock is 3 days behind the platform's
        result, report, checks = self.doctor()
        envelope = self.assertFails(result, "SETUP_FAILED")
        self.assertEqual(envelope["error"]["meta"]["failed"], ["clock"])
        self.assertEqual(checks["clock"]["status"], "fail")
        self.assertRegex(checks["clock"]["detail"], r"^(2d23h|3d) behind")
        self.assertIn("timedatectl set-ntp true", checks["clock"]["fix"])

    def test_the_tool_row_names_its_version_and_sha256(self):
        self.login()
        with open(tool.__file__, "rb") as handle:
            digest = hashlib.sha256(handle.read()).hexdigest()
        result, report, checks = self.doctor()
        self.assertIn("landbase-import %s, sha256 %s" % (tool.__version__, digest), checks["tool"]["detail"])

    def test_each_check_is_bounded_by_the_timeout(self):
        """(Really waits: a platform that answers after 5 s, and --timeout 1.)"""
        self.login()
        self.platform.inject("me", {"delay": 5})
        started = time.monotonic()
        result, _, checks = self.doctor("--timeout", "1")
        # real time on purpose: the promise is about time, --timeout bounding each check
        self.assertLess(time.monotonic() - started, 4)
        self.assertFails(result, "TIMEOUT")
        self.assertEqual(checks["platform"]["status"], "fail")


class DoctorBehindAProxyTests(ProxyTestCase):
    def test_the_proxy_that_applies_and_whether_its_tunnel_works(self):
        tunnel = self.start_proxy()
        result = self.run_tool("doctor")
        self.assertEqual(result.code, 0, result)
        checks = {check["name"]: check for check in json.loads(result.stdout)["checks"]}
        self.assertNamesProxy(checks["proxy"]["detail"], tunnel.address, "HTTPS_PROXY")
        self.assertIn("tunnel through to api.landbase.com", checks["tunnel"]["detail"])
        self.assertIn("the certificate of api.landbase.com ends in", checks["tls"]["detail"])
        self.assertEqual(tunnel.connects, 2)        # the platform's check, then the account's
        self.assertNotIn(self.token.encode(), bytes(tunnel.received))

    def test_a_proxy_that_refuses_the_tunnel(self):
        tunnel = self.start_proxy("refuse")
        result = self.run_tool("doctor")
        self.assertFails(result, "NETWORK_ERROR")
        checks = {check["name"]: check for check in json.loads(result.stdout)["checks"]}
        self.assertEqual(checks["connection"]["status"], "ok")
        self.assertEqual(checks["tunnel"]["status"], "fail")
        self.assertIn("403", checks["tunnel"]["detail"])
        self.assertNamesProxy(checks["tunnel"]["detail"], tunnel.address, "HTTPS_PROXY")
        self.assertIn("the proxy must allow CONNECT to api.landbase.com", checks["tunnel"]["fix"])

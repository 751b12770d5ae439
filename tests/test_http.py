"""The one request function: headers, status → code mapping, retries, Retry-After, redirects, base URLs."""

import email.utils
import json
import os
import re

from support import ToolTestCase, tool, sandbox

STATUS = ("contacts-import", "status", "1")


class MappingTests(ToolTestCase):
    def setUp(self):
        ToolTestCase.setUp(self)
        self.token = self.login()

    def test_every_status_maps_to_its_code(self):
        cases = [(400, "VALIDATION_ERROR"), (422, "VALIDATION_ERROR"), (401, "AUTH_FAILED"), (403, "NOT_FOUND"),
                 (404, "NOT_FOUND"), (409, "CONFLICT"), (426, "UPGRADE_REQUIRED"), (418, "API_ERROR")]
        for status, code in cases:
            with self.subTest(status=status):
                self.platform.inject("status", {"status": status})
                envelope = self.assertFails(self.run_tool(*STATUS), code)
                self.assertEqual(envelope["error"]["meta"]["status"], status)
                self.assertEqual(self.clock.sleeps, [], "a %d must not be retried" % status)

    def test_server_errors_map_to_api_error_after_three_retries(self):
        for status in (500, 502, 503, 504, 524):
            with self.subTest(status=status):
                self.clock.sleeps = []
                self.platform.inject("status", {"status": status}, times=4)
                envelope = self.assertFails(self.run_tool(*STATUS), "API_ERROR")
                self.assertEqual(self.clock.sleeps, [5, 10, 20])
                self.assertEqual(envelope["error"]["meta"]["status"], status)
                # h12 F2: the server's words were the end of the message
                self.assertTrue(envelope["error"]["message"].endswith(
                    "; it failed 4 times in a row: run it again later"), envelope)

    def test_rate_limited_after_retries(self):
        self.platform.inject("status", {"status": 429, "headers": {"Retry-After": "1"}}, times=4)
        envelope = self.assertFails(self.run_tool(*STATUS), "RATE_LIMITED")
        self.assertEqual(self.clock.sleeps, [5, 10, 20])
        self.assertTrue(envelope["error"]["message"].endswith("run it again later"), envelope)

    def test_a_failure_that_is_not_retried_says_nothing_of_tries(self):
        self.platform.inject("status", {"status": 400})
        envelope = self.assertFails(self.run_tool(*STATUS), "VALIDATION_ERROR")
        self.assertNotIn("times in a row", envelope["error"]["message"])

    def test_a_known_code_in_the_body_wins_over_the_status(self):
        self.platform.inject("status", {"status": 400, "body": {"error": {"code": "UPGRADE_REQUIRED",
                                                                          "message": "use 2.0", "meta": {}}}})
        envelope = self.assertFails(self.run_tool(*STATUS), "UPGRADE_REQUIRED")
        self.assertIn("use 2.0", envelope["error"]["message"])

    def test_an_unknown_code_in_the_body_falls_back_to_the_status(self):
        self.platform.inject("status", {"status": 409, "body": {"error": {"code": "WEIRD", "message": "odd"}}})
        self.assertFails(self.run_tool(*STATUS), "CONFLICT")

    def test_an_html_error_page_is_quoted_to_200_characters(self):
        page = "<html><body>" + "Bad gateway " * 100 + "</body></html>"
        self.platform.inject("status", {"status": 502, "body": page}, times=4)
        envelope = self.assertFails(self.run_tool(*STATUS), "API_ERROR")
        message = envelope["error"]["message"]
        self.assertIn(page[:200], message)            # one line of single spaces: quoted as it is, to 200
        self.assertNotIn(page[:201], message)

    def test_a_transient_failure_then_success(self):
        self.platform.inject("status", {"status": 502}, times=2)
        doc = self.assertOk(self.run_tool(*STATUS))
        self.assertEqual(doc["importId"], 1)
        self.assertEqual(self.clock.sleeps, [5, 10])

    def test_retry_after_longer_than_the_schedule_is_honoured(self):
        self.platform.inject("status", {"status": 503, "headers": {"Retry-After": "42"}})
        self.assertOk(self.run_tool(*STATUS))
        self.assertEqual(self.clock.sleeps, [42])

    def test_retry_after_as_an_http_date(self):
        when = email.utils.formatdate(self.clock.wall() + 120, usegmt=True)
        self.platform.inject("status", {"status": 429, "headers": {"Retry-After": when}})
        self.assertOk(self.run_tool(*STATUS))
        self.assertEqual(len(self.clock.sleeps), 1)
        self.assertTrue(118 <= self.clock.sleeps[0] <= 121, self.clock.sleeps)

    def test_retry_after_in_the_envelope_meta(self):
        self.platform.inject("status", {"status": 429, "body": {"error": {"code": "RATE_LIMITED", "message": "slow",
                                                                          "meta": {"retry_after_seconds": 33}}}})
        self.assertOk(self.run_tool(*STATUS))
        self.assertEqual(self.clock.sleeps, [33])

    def test_a_retry_after_beyond_the_cap_ends_a_one_shot_command(self):
        self.platform.inject("status", {"status": 429, "headers": {"Retry-After": "3600"}})
        self.assertFails(self.run_tool(*STATUS), "RATE_LIMITED")
        self.assertEqual(self.clock.sleeps, [])

    def test_transport_failures(self):
        cases = [({"reset": True}, "NETWORK_ERROR"), ({"drop": True}, "NETWORK_ERROR")]
        for fault, code in cases:
            with self.subTest(fault=fault):
                self.clock.sleeps = []
                self.platform.inject("status", fault, times=4)
                envelope = self.assertFails(self.run_tool(*STATUS), code)
                self.assertEqual(self.clock.sleeps, [5, 10, 20])
                if "reset" in fault:
                    self.assertRegex(envelope["error"]["message"], r"; check the network, or run \S+ doctor$")

    def test_no_answer_within_the_timeout(self):
        self.platform.inject("status", {"delay": 1.5}, times=4)     # answered, but after the timeout
        envelope = self.assertFails(self.run_tool(*(STATUS + ("--timeout", "0.3"))), "TIMEOUT")
        self.assertIn("0.3", envelope["error"]["message"])
        self.assertRegex(envelope["error"]["message"],
                         r"; check the network, or give it a larger --timeout, or run \S+ doctor$")
        self.assertEqual(self.clock.sleeps, [5, 10, 20])

    def test_answers_that_break_the_contract_are_transient_api_errors(self):
        cases = [({"truncate": True}, "not strict JSON"), ({"json": "<html>"}, "object"),
                 ({"json": {"importId": 1, "phase": 3, "percent": None, "counts": None, "error": None}}, "phase"),
                 ({"json": {"importId": 1, "phase": "draft", "percent": "5", "counts": None, "error": None}},
                  "percent"),
                 ({"json": {"importId": 1, "phase": "draft", "percent": None, "counts": [], "error": None}},
                  "counts"),
                 ({"json": {"importId": 2, "phase": "draft", "percent": None, "counts": None, "error": None}},
                  "importId"),
                 ({"json": {"importId": True, "phase": "draft", "percent": None, "counts": None, "error": None}},
                  "importId"),
                 ({"json": {"importId": 1, "phase": "draft", "percent": 101, "counts": None, "error": None}},
                  "percent"),
                 ({"json": {"importId": 1, "phase": "draft", "percent": None, "counts": None, "error": "x"}},
                  "error")]
        for fault, field in cases:
            with self.subTest(fault=fault):
                self.clock.sleeps = []
                self.platform.inject("status", fault, times=4)
                envelope = self.assertFails(self.run_tool(*STATUS), "API_ERROR")
                self.assertIn(field, envelope["error"]["message"])
                self.assertEqual(self.clock.sleeps, [5, 10, 20])

    def test_server_text_cannot_reach_the_terminal_raw(self):
        self.platform.inject("status", {"status": 404, "body": {"error": {"code": "NOT_FOUND",
                                                                          "message": "gone\x1b[2J\x07 " + "Q" * 900}}})
        result = self.run_tool(*STATUS)
        envelope = self.assertFails(result, "NOT_FOUND")
        self.assertNotIn("\x1b", result.stderr)
        self.assertNotIn("\x1b", envelope["error"]["message"])
        # 300 characters of the server's message at most: "gone", two replaced escapes, a space, the Qs
        # (the run of Qs: the tool's path in the message may hold a Q, as a mktemp -d clone's may)
        longest = max(len(run) for run in re.findall("Q+", envelope["error"]["message"]))
        self.assertEqual(longest, 300 - len("gone\ufffd[2J\ufffd "))

    def test_an_unusable_location_is_a_broken_answer_and_retried(self):
        for location in ("/v1/me\x01x", "http://127.0.0.1:99999/v1/me", "http://[oops/v1/me"):
            with self.subTest(location=location):
                self.clock.sleeps = []
                self.platform.inject("me", {"redirect": location, "status": 302}, times=4)
                result = self.run_tool("auth", "status")
                envelope = self.assertFails(result, "API_ERROR")
                self.assertIn("not a usable URL", envelope["error"]["message"])
                self.assertNotIn("internal error", result.stderr)
                self.assertNotIn("\x01", result.stderr)
                self.assertEqual(self.clock.sleeps, [5, 10, 20])

    def test_a_200_that_is_not_json_is_never_a_crash(self):
        self.platform.inject("me", {"status": 200, "body": "<html>hello</html>"}, times=4)
        envelope = self.assertFails(self.run_tool("auth", "status"), "API_ERROR")
        self.assertIn("not strict JSON", envelope["error"]["message"])

    def test_extra_fields_are_dropped_from_the_status(self):
        doc = self.assertOk(self.run_tool(*STATUS))
        self.assertEqual(sorted(doc), ["counts", "error", "importId", "percent", "phase"])

    def test_missing_count_fields_are_tolerated(self):
        self.platform.inject("status", {"json": {"importId": 1, "phase": "in_progress", "percent": 5,
                                                 "counts": {"total": 9}, "error": None, "extra": 1}})
        self.assertEqual(self.assertOk(self.run_tool(*STATUS))["counts"], {"total": 9})


class HeaderTests(ToolTestCase):
    def setUp(self):
        ToolTestCase.setUp(self)
        self.token = self.login()

    def test_requests_carry_the_contract_headers(self):
        self.assertOk(self.run_tool("contacts-import", "start", "--json", "-",
                                    stdin='{"datasetId": "ds_demo", "tagName": "x"}'))
        method, path, headers = self.platform.requests[-1]
        self.assertEqual((method, path), ("POST", "/v1/accounts/acc_demo/contacts-imports"))
        self.assertEqual(headers["Authorization"], "Bearer " + self.token)
        self.assertEqual(headers["Accept"], "application/json")
        self.assertEqual(headers["Content-Type"], "application/json")
        self.assertRegex(headers["User-Agent"], r"^landbase-import/%s python/3\.\d+$" % tool.__version__)
        self.assertRegex(headers["Idempotency-Key"], r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}$")

    def test_start_retries_with_the_same_idempotency_key_and_imports_once(self):
        self.platform.inject("start", {"drop": True}, times=2)      # the platform acts, the answer is lost
        before = len(self.platform.imports)
        doc = self.assertOk(self.run_tool("contacts-import", "start", "--json", "-",
                                          stdin='{"datasetId": "ds_demo", "tagName": "x"}'))
        keys = [h["Idempotency-Key"] for m, p, h in self.platform.requests if m == "POST"]
        self.assertEqual(len(keys), 3)
        self.assertEqual(len(set(keys)), 1)
        self.assertEqual(len(self.platform.imports), before + 1)
        self.assertIn(doc["importId"], self.platform.imports)

    def test_each_start_has_its_own_key(self):
        for _ in range(2):
            self.assertOk(self.run_tool("contacts-import", "start", "--json", "-",
                                        stdin='{"datasetId": "ds_demo", "tagName": "x"}'))
        keys = {h["Idempotency-Key"] for m, p, h in self.platform.requests if m == "POST"}
        self.assertEqual(len(keys), 2)

    def test_verbose_shows_requests_and_never_the_token(self):
        result = self.run_tool("contacts-import", "status", "1", "--verbose")
        self.assertOk(result)
        self.assertIn("> GET %s/v1/accounts/acc_demo/contacts-imports/1" % self.sandbox.url, result.stderr)
        self.assertIn("< HTTP 200", result.stderr)
        self.assertIn("Bearer lbs_\u2026(redacted)", result.stderr)
        self.assertNotIn(self.token, result.stderr + result.stdout)
        self.assertNotIn(self.token[4:], result.stderr + result.stdout)


class ProxyTests(ToolTestCase):
    """A loopback base never goes through a proxy; https goes through HTTPS_PROXY with CONNECT."""

    def setUp(self):
        ToolTestCase.setUp(self)
        self.token = self.login()
        import http.server
        import threading
        seen = self.seen = []

        class Proxy(http.server.BaseHTTPRequestHandler):
            def answer(self):
                seen.append((self.command, self.path, dict(self.headers)))
                self.send_response(502)
                self.send_header("Content-Length", "0")
                self.end_headers()
            do_GET = do_POST = do_CONNECT = answer

            def log_message(self, *args):
                pass
        self.proxy = http.server.HTTPServer(("127.0.0.1", 0), Proxy)
        thread = threading.Thread(target=self.proxy.serve_forever, kwargs={"poll_interval": 0.05})
        thread.daemon = True
        thread.start()
        self.addCleanup(self.proxy.server_close)
        self.addCleanup(self.proxy.shutdown)
        for name in ("NO_PROXY", "no_proxy"):
            os.environ.pop(name, None)
        self.proxy_url = "http://127.0.0.1:%d" % self.proxy.server_address[1]

    def test_a_loopback_base_never_goes_through_a_proxy(self):
        for name in ("http_proxy", "HTTP_PROXY", "all_proxy"):
            os.environ[name] = self.proxy_url
        for base in (self.sandbox.url, self.sandbox.url.replace("127.0.0.1", "localhost")):
            with self.subTest(base=base):
                os.environ["LANDBASE_PLATFORM_API_URL"] = base
                self.assertEqual(self.assertOk(self.run_tool("auth", "status"))["userId"], "usr_demo")
        self.assertEqual(self.seen, [], "a request with the token went to the proxy in clear text")

    def test_https_goes_through_the_proxy_with_connect_and_the_token_stays_inside(self):
        os.environ.update(HTTPS_PROXY=self.proxy_url, https_proxy=self.proxy_url, LANDBASE_ALLOW_CUSTOM_API_URL="1",
                          LANDBASE_PLATFORM_API_URL="https://gateway.example.invalid")
        result = self.run_tool("auth", "status")
        self.assertFails(result, "NETWORK_ERROR")
        self.assertEqual([(method, path) for method, path, _ in self.seen][:1],
                         [("CONNECT", "gateway.example.invalid:443")])
        self.assertNotIn(self.token, repr(self.seen))


class RedirectTests(ToolTestCase):
    def setUp(self):
        ToolTestCase.setUp(self)
        self.token = self.login()
        self.other = sandbox.Sandbox().start()
        self.addCleanup(self.other.stop)

    def test_a_cross_origin_redirect_is_refused_and_the_token_stays_home(self):
        self.platform.inject("status", {"redirect": self.other.url + "/v1/accounts/acc_demo/contacts-imports/1"})
        envelope = self.assertFails(self.run_tool(*STATUS), "API_ERROR")
        self.assertIn("another origin", envelope["error"]["message"])
        self.assertRedirectStep(envelope)
        self.assertEqual(self.other.platform.requests, [])
        self.assertEqual(self.clock.sleeps, [])

    def test_a_redirect_to_another_port_or_scheme_is_refused(self):
        for target in ("http://localhost:%d/x" % self.sandbox.server.server_address[1],
                       "https://127.0.0.1:%d/x" % self.sandbox.server.server_address[1]):
            with self.subTest(target=target):
                self.platform.inject("status", {"redirect": target, "status": 307})
                self.assertFails(self.run_tool(*STATUS), "API_ERROR")

    def test_a_same_origin_redirect_is_followed_with_the_token(self):
        self.platform.inject("me", {"redirect": "/v1/me", "status": 301})
        doc = self.assertOk(self.run_tool("auth", "status"))
        self.assertEqual(doc["userId"], "usr_demo")
        me = [h for m, p, h in self.platform.requests if p == "/v1/me"]
        self.assertEqual(len(me), 2)
        self.assertEqual(me[1]["Authorization"], "Bearer " + self.token)

    def test_a_post_redirected_with_302_is_refused(self):
        self.platform.inject("start", {"redirect": "/v1/accounts/acc_demo/contacts-imports", "status": 302})
        self.assertFails(self.run_tool("contacts-import", "start", "--json", "-",
                                       stdin='{"datasetId": "ds_demo", "tagName": "x"}'), "API_ERROR")

    def test_a_token_shape_in_a_redirect_is_never_shown(self):
        # the URL of a redirect is the server's text: --verbose and the error name it without the token
        # (the fuzzer's case: a token endpoint that redirects to ...?t=lbs_...)
        shape = "lbs_Redirected0Token0Shape"
        self.platform.inject("me", {"redirect": "/v1/me?t=" + shape, "status": 307}, times=50)
        result = self.run_tool("auth", "status", "--verbose")
        self.assertFails(result, "API_ERROR")
        self.assertIn("/v1/me?t=lbs_", result.stderr)
        self.assertNotIn(shape, result.stderr + result.stdout)

    def test_a_redirect_loop_ends(self):
        self.platform.inject("me", {"redirect": "/v1/me"}, times=50)
        envelope = self.assertFails(self.run_tool("auth", "status"), "API_ERROR")
        self.assertIn("redirects", envelope["error"]["message"])
        self.assertRedirectStep(envelope)

    def assertRedirectStep(self, envelope):
        """h12 F2: a refused redirect or a loop ends with where to look, and doctor."""
        self.assertTrue(envelope["error"]["message"].endswith(
            "; check LANDBASE_PLATFORM_API_URL, and what may redirect it (a proxy, a captive "
            "portal): %s doctor" % tool.program_command()), envelope)


class BaseUrlTests(ToolTestCase):
    def setUp(self):
        ToolTestCase.setUp(self)
        self.login()

    def test_each_refusal_ends_with_the_next_step(self):
        os.environ["LANDBASE_PLATFORM_API_URL"] = "http://api.landbase.com"
        message = self.assertFails(self.run_tool(*STATUS), "INVALID_INPUT")["error"]["message"]
        self.assertTrue(message.endswith(": use https://, or one of those names"), message)
        missing = os.path.join(self.config, "corporate-ca.pem")
        os.environ.update(LANDBASE_PLATFORM_API_URL="https://api.landbase.com", SSL_CERT_FILE=missing)
        message = self.assertFails(self.run_tool(*STATUS), "SETUP_FAILED")["error"]["message"]
        self.assertTrue(message.endswith("(it names %s), or unset it" % missing), message)

    def check(self, url, allowed, custom=False):
        os.environ["LANDBASE_PLATFORM_API_URL"] = url
        if custom:
            os.environ["LANDBASE_ALLOW_CUSTOM_API_URL"] = "1"
        else:
            os.environ.pop("LANDBASE_ALLOW_CUSTOM_API_URL", None)
        if allowed:
            self.assertEqual(tool.base_url("LANDBASE_PLATFORM_API_URL", "x"), url.rstrip("/"))
        else:
            with self.assertRaises(tool.LandbaseError) as caught:
                tool.base_url("LANDBASE_PLATFORM_API_URL", "x")
            self.assertEqual(caught.exception.code, "INVALID_INPUT")

    def test_the_host_allowlist(self):
        self.check("https://api.landbase.com", True)
        self.check("https://landbase.com/", True)
        self.check("https://eu.api.landbase.com", True)
        self.check("http://127.0.0.1:8080", True)
        self.check("http://localhost:8080", True)
        self.check("http://[::1]:8080", True)
        self.check("https://evil.com", False)
        self.check("https://landbase.com.evil.com", False)
        self.check("https://evillandbase.com", False)
        self.check("http://api.landbase.com", False)             # https only, except loopback
        self.check("ftp://api.landbase.com", False)
        self.check("file:///etc/passwd", False)
        self.check("https://user:pw@api.landbase.com", False)
        self.check("https://api.landbase.com:99999", False)
        self.check("https://gateway.example.com", True, custom=True)
        self.check("http://gateway.example.com", False, custom=True)

    def test_a_refused_url_sends_nothing(self):
        os.environ["LANDBASE_PLATFORM_API_URL"] = "https://evil.example"
        envelope = self.assertFails(self.run_tool(*STATUS), "INVALID_INPUT")
        self.assertIn("LANDBASE_ALLOW_CUSTOM_API_URL", envelope["error"]["message"])

    def test_connection_refused_is_a_network_error_after_retries(self):
        import socket
        closed = socket.socket()            # bound, never listening: a connection to it is refused
        closed.bind(("127.0.0.1", 0))
        self.addCleanup(closed.close)
        os.environ["LANDBASE_PLATFORM_API_URL"] = "http://127.0.0.1:%d" % closed.getsockname()[1]
        envelope = self.assertFails(self.run_tool(*STATUS), "NETWORK_ERROR")
        self.assertIn("refused", envelope["error"]["message"])
        self.assertEqual(self.clock.sleeps, [5, 10, 20])


class HostileAnswerTests(ToolTestCase):
    """Answers that are endless, dripping, huge, non-strict or odd in their headers are broken
    answers or timeouts, retried like any other, and never a crash."""

    def setUp(self):
        ToolTestCase.setUp(self)
        self.token = self.login()

    def test_an_endless_body_is_cut_at_4_mib_and_retried(self):
        self.platform.inject("status", {"endless": True}, times=4)
        envelope = self.assertFails(self.run_tool(*STATUS), "API_ERROR")
        self.assertIn("larger than 4 MiB", envelope["error"]["message"])
        self.assertEqual(self.clock.sleeps, [5, 10, 20])

    def test_a_100_mb_body_is_not_read_past_4_mib(self):
        self.platform.inject("status", {"size": 100 * 1024 * 1024})
        result = self.run_tool(*STATUS)
        self.assertOk(result)                                   # the retry got the real answer
        self.assertIn("larger than 4 MiB", result.stderr)
        self.assertEqual(self.clock.sleeps, [5])

    def test_a_body_just_under_the_cap_is_read(self):
        self.platform.inject("status", {"size": tool.MAX_ANSWER_BYTES - 10})
        self.assertEqual(self.assertOk(self.run_tool(*STATUS))["importId"], 1)
        self.assertEqual(self.clock.sleeps, [])

    def test_a_4_mib_answer_is_held_once_while_it_is_read(self):
        """read_answer(): the chunks go into one buffer, returned without a copy (joining a list of
        chunks held the answer twice at its end)."""
        import tracemalloc

        class Answer:
            chunks = 64
            length = 0

            def read(self, size):
                if not self.chunks:
                    return b""
                self.chunks -= 1
                return b"x" * size          # a new object each time, as a socket's read is

        tracemalloc.start()
        try:
            body = tool.read_answer(Answer(), "GET /status")
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        self.assertEqual(len(body), tool.MAX_ANSWER_BYTES)
        self.assertLess(peak, 1.25 * len(body))

    def test_a_dripping_answer_ends_at_the_timeout(self):
        # one byte every 0.05 s: each read is quick, so only a whole-request deadline stops it; without
        # one, the answer completes after about 10 s and the command succeeds
        self.platform.inject("status", {"drip": 0.05}, times=4)
        envelope = self.assertFails(self.run_tool(*(STATUS + ("--timeout", "0.3"))), "TIMEOUT")
        self.assertIn("0.3", envelope["error"]["message"])
        self.assertEqual(self.clock.sleeps, [5, 10, 20])

    def test_non_strict_json_is_a_broken_answer(self):
        bodies = ['{"importId": 1, "phase": "completed", "percent": NaN, "counts": null, "error": null}',
                  '{"importId": 1, "phase": "completed", "percent": 1e999, "counts": null, "error": null}',
                  '{"importId": 1, "phase": "completed", "phase": "failed", "percent": 1, "counts": null, '
                  '"error": null}',
                  '{"importId": 1, "phase": "completed", "percent": 1, "counts": {"total": %s}, "error": null}'
                  % ("9" * 5000),
                  # deep enough for Python's recursion limit, not for the parser of 3.12+: printing it back failed
                  '{"importId": 1, "phase": "failed", "percent": 1, "counts": null, "error": {"deep": %s}}'
                  % ("[" * 1050 + "]" * 1050)]
        for body in bodies:
            with self.subTest(body=body[:90]):
                self.clock.sleeps = []
                self.platform.inject("status", {"raw": body}, times=4)
                result = self.run_tool(*STATUS)
                envelope = self.assertFails(result, "API_ERROR")
                self.assertIn("not strict JSON", envelope["error"]["message"])
                self.assertEqual(self.clock.sleeps, [5, 10, 20])
                self.assertNotIn("internal error", result.stderr)

    def test_odd_retry_after_values_fall_back_to_the_schedule(self):
        for value in ("\u00b2", "\u0663", "-1", "1e9", "soon", "Wed, 99 Foo 2026 99:99:99 GMT"):
            with self.subTest(value=value):
                self.clock.sleeps = []
                self.platform.inject("status", {"status": 503, "headers": {"Retry-After": value}})
                result = self.run_tool(*STATUS)
                self.assertOk(result)
                self.assertEqual(self.clock.sleeps, [5])

    def test_a_retry_after_far_away_ends_a_one_shot_command(self):
        for fault in ({"headers": {"Retry-After": "301"}}, {"headers": {"Retry-After": "9" * 30}},
                      {"body": {"error": {"code": "API_ERROR", "message": "x", "meta": {"retry_after_seconds": 1e30}}}}):
            with self.subTest(fault=fault):
                self.clock.sleeps = []
                fault.update(status=503)
                self.platform.inject("status", fault)
                envelope = self.assertFails(self.run_tool(*STATUS), "API_ERROR")
                self.assertIn("run it again later", envelope["error"]["message"])
                self.assertEqual(self.clock.sleeps, [])

    def test_a_token_the_server_echoes_is_never_printed(self):
        odd = "tok,en;with \"odd\" chars"
        os.environ["LANDBASE_ACCESS_TOKEN"] = odd
        # (fault, requests it answers: a 500 is retried three times, the others are final, exit code)
        for fault, times, exit_code in (
                ({"status": 404, "body": {"error": {"code": "NOT_FOUND", "message": "no such " + odd}}}, 1, 2),
                ({"status": 500, "body": "<html>token=" + odd + " and " + self.token + "</html>"}, 4, 2),
                ({"json": {"importId": 1, "phase": odd, "percent": None, "counts": None, "error": None}}, 1, 0),
                ({"status": 403, "body": {"error": {"code": "NOT_FOUND", "message": "x", "meta": {odd: odd}}}}, 1, 2)):
            with self.subTest(fault=fault):
                self.platform.inject("status", fault, times=times)
                result = self.run_tool(*(STATUS + ("--verbose",)))
                # each request met its fault, and no fault is left over for the next case
                self.assertEqual([left for _, _, left in self.platform.faults], [0], "a fault was not served")
                self.platform.faults = []
                self.assertEqual(result.code, exit_code, result)
                printed = result.stdout + result.stderr
                echoed = printed.replace("(Authorization: Bearer %s)" % tool.REDACTED, "")
                self.assertTrue(tool.REDACTED in echoed or json.dumps(tool.REDACTED)[1:-1] in echoed,
                                "the echo was not printed, redacted: %r" % result)
                self.assertNotIn(odd, printed)
                self.assertNotIn("tok,en", printed)
                self.assertNotIn(self.token, printed)
                self.assertNotIn(self.token[4:], printed)

    def test_verbose_keeps_the_auth_note_whole(self):
        result = self.run_tool(*(STATUS + ("--verbose",)))
        self.assertIn("(Authorization: Bearer lbs_\u2026(redacted))\n", result.log)

    def test_a_401_says_to_log_in_again(self):
        self.platform.expire_tokens()
        envelope = self.assertFails(self.run_tool(*STATUS), "AUTH_FAILED")
        self.assertIn("auth login", envelope["error"]["message"])

    def test_an_import_under_the_wrong_account_points_at_account_list(self):
        envelope = self.assertFails(self.run_tool(*(STATUS + ("--account=acc_team",))), "NOT_FOUND")
        self.assertIn("account list", envelope["error"]["message"])


class TlsContextTests(ToolTestCase):
    def setUp(self):
        ToolTestCase.setUp(self)
        self.login()

    def test_an_http_base_loads_no_ca_store(self):
        """A verifying TLS context for an https base only: given none, urllib's HTTPSHandler loads
        the CA store itself on 3.12+ (4 MiB and tens of ms that an http base never uses)."""
        import ssl
        from unittest import mock
        with mock.patch.object(ssl.SSLContext, "load_default_certs", autospec=True) as load:
            self.assertOk(self.run_tool("auth", "status"))
            self.assertEqual(load.call_count, 0, "an http base loaded the CA store")
            tool.build_opener("https://api.landbase.com")
            self.assertEqual(load.call_count, 1, "an https base's context is the system store")


class TlsTests(ToolTestCase):
    """A TLS handshake cut short is transient; a certificate that fails verification is not."""
    sandbox_options = {"certfile": os.path.join(os.path.dirname(os.path.abspath(__file__)), "tls", "localhost.pem")}

    def setUp(self):
        ToolTestCase.setUp(self)
        self.login()
        os.environ["LANDBASE_PLATFORM_API_URL"] = self.sandbox.url.replace("127.0.0.1", "localhost")
        os.environ["SSL_CERT_FILE"] = os.path.join(os.path.dirname(self.sandbox_options["certfile"]), "ca.pem")

    def test_a_handshake_dropped_once_is_retried(self):
        self.platform.drop_handshakes = 1
        result = self.run_tool(*STATUS)
        self.assertOk(result)
        self.assertIn("NETWORK_ERROR", result.stderr)
        self.assertEqual(self.clock.sleeps, [5])
        self.assertEqual(self.platform.connections, 2)

    def test_an_untrusted_certificate_is_not_retried(self):
        del os.environ["SSL_CERT_FILE"]
        envelope = self.assertFails(self.run_tool(*STATUS), "NETWORK_ERROR")
        self.assertIn("certificate", envelope["error"]["message"])
        self.assertEqual(self.clock.sleeps, [])


class RedactionTests(ToolTestCase):
    """A token hides in escapes a server may use: each form is redacted where the tool quotes the answer."""

    def test_escaped_forms_of_the_token(self):
        self.login()
        odd = "tok,en;with \"odd\" space"
        os.environ["LANDBASE_ACCESS_TOKEN"] = odd
        for body in ("<p>%s</p>" % odd.replace('"', "&quot;"), "not json: %s" % odd.replace('"', "\\u0022"),
                     "q=" + odd.replace(" ", "+").replace('"', "%22").replace(",", "%2C").replace(";", "%3B"),
                     "q=" + "".join("%%%02X" % ord(ch) for ch in odd)):
            with self.subTest(body=body):
                self.platform.inject("status", {"status": 400, "body": body})
                result = self.run_tool("contacts-import", "status", "1", "--verbose")
                self.assertFails(result, "VALIDATION_ERROR")
                self.assertNotIn("odd", result.stderr.replace("(redacted)", ""))
                self.assertIn("(redacted)", result.envelope["error"]["message"])

"""Behind a corporate proxy: the tool through HTTPS_PROXY (CONNECT) to a TLS sandbox, and each way a proxy fails.

The base is https://api.landbase.com:PORT (a landbase.com name needs no custom-URL flag). The test proxy
(tests/proxy.py) tunnels any host to 127.0.0.1 on the port asked for, where the sandbox serves https with
tests/tls/localhost.pem, and SSL_CERT_FILE trusts tests/tls/ca.pem. Looking up a landbase.com name fails
in these tests, so a request that skipped the proxy cannot leave the host. The tool runs in-process
(support.ToolTestCase): its retries and polls take no time.
"""

import json
import os
import re
import socket
import ssl
import sys
import threading
import unittest
from unittest import mock

import proxy
from support import HERE, ToolTestCase, sandbox

TLS = os.path.join(HERE, "tls")
CA = os.path.join(TLS, "ca.pem")
OTHER_CA = os.path.join(TLS, "noaki-ca.pem")         # a CA that did not sign localhost.pem
BODY = '{"datasetId": "ds_demo", "tagName": "behind a proxy"}'
STATUS = ("contacts-import", "status", "1")
WAIT = ("contacts-import", "wait", "1")
VARIABLES = ("HTTPS_PROXY", "https_proxy")
NO_PROXY_LINE = re.compile(r"(?i)^(?=.*\bprox(y|ies)\b).*\b(none|no|direct|without)\b")   # "no proxy", "proxy: none"


class ProxyTestCase(ToolTestCase):
    """The TLS sandbox at https://api.landbase.com:PORT, reached through a proxy each test sets up."""

    sandbox_options = {"min_poll_interval": 1.0, "certfile": os.path.join(TLS, "localhost.pem")}

    def setUp(self):
        ToolTestCase.setUp(self)
        lookups = mock.patch.object(socket, "getaddrinfo", proxy.refusing_lookups("landbase.com", socket.getaddrinfo))
        lookups.start()
        self.addCleanup(lookups.stop)
        self.port = self.sandbox.server.server_address[1]
        os.environ.update(LANDBASE_PLATFORM_API_URL="https://api.landbase.com:%d" % self.port, SSL_CERT_FILE=CA)
        self.token = self.login()

    def start_proxy(self, mode="tunnel", variable="HTTPS_PROXY", userinfo="", **options):
        """A proxy for this test, its URL (with `userinfo` before the host) in `variable` and no other."""
        started = proxy.Proxy(mode, **options).start()
        self.addCleanup(started.stop)
        self.set_proxy(variable, "http://%s%s" % (userinfo, started.address))
        return started

    def set_proxy(self, variable, url):
        for name in VARIABLES:
            os.environ.pop(name, None)
        os.environ[variable] = url

    def assertNamesProxy(self, text, address, variable):
        self.assertIn(address, text)
        self.assertRegex(text, r"(?<![A-Za-z_])%s(?![A-Za-z_])" % variable, "the variable the proxy came from")

    def assertPrintsNone(self, result, *secrets):
        for secret in secrets:
            self.assertNotIn(secret, result.stdout + result.stderr, "printed a piece of the proxy's URL")


class TunnelTests(ProxyTestCase):
    def test_the_whole_job_goes_through_the_tunnel_and_the_token_stays_inside(self):
        tunnel = self.start_proxy()
        self.assertEqual(self.assertOk(self.run_tool("auth", "status"))["userId"], "usr_demo")
        self.assertIn("acc_demo", [entry["id"] for entry in self.assertOk(self.run_tool("account", "list"))])
        started = self.assertOk(self.run_tool("contacts-import", "start", "--json", "-", stdin=BODY))
        import_id = str(started["importId"])
        self.assertEqual(self.assertOk(self.run_tool("contacts-import", "status", import_id))["importId"],
                         started["importId"])
        self.assertEqual(self.assertOk(self.run_tool("contacts-import", "wait", import_id))["phase"], "completed")
        lines = [line for line, _ in tunnel.requests]
        self.assertGreaterEqual(len(lines), 5)
        for line in lines:
            self.assertRegex(line, r"\ACONNECT api\.landbase\.com:%d HTTP/1\.[01]\Z" % self.port)
        self.assertEqual(self.platform.connections, tunnel.connects, "a connection reached the sandbox directly")
        # the token did travel, inside the tunnels, and the proxy saw none of it
        sent = [headers.get("Authorization") for _, _, headers in self.platform.requests]
        self.assertIn("Bearer " + self.token, sent)
        for piece in (self.token, self.token[4:]):
            self.assertNotIn(piece.encode(), bytes(tunnel.received))
        self.assertEqual(tunnel.errors, [])

    def test_a_proxy_that_requires_authentication_gets_the_percent_encoded_credentials(self):
        tunnel = self.start_proxy("auth", userinfo="corp.user:S3cr%40t%3A%2Fx@", user="corp.user",
                                  password="S3cr@t:/x")
        result = self.run_tool("auth", "status", "--verbose")
        self.assertEqual(self.assertOk(result)["userId"], "usr_demo")
        self.assertGreaterEqual(tunnel.connects, 1)
        self.assertPrintsNone(result, "corp.user", "S3cr", "%40t")
        for _, _, headers in self.platform.requests:      # the credentials are the proxy's, never the origin's
            self.assertNotIn("proxy-authorization", [name.lower() for name in headers])


class RefusedTunnelTests(ProxyTestCase):
    def test_403_or_407_to_connect_is_a_network_error_not_retried_that_names_the_proxy(self):
        refusals = [("403", "refuse", {}), ("407", "auth", {"user": "corp.user", "password": "right"}),
                    ("401", "unauthorized", {})]         # tinyproxy's answer to credentials it refuses
        for status, mode, options in refusals:
            for variable in VARIABLES:
                for argv in (STATUS, WAIT):
                    with self.subTest(status=status, variable=variable, command=" ".join(argv)):
                        refusing = proxy.Proxy(mode, **options).start()
                        self.addCleanup(refusing.stop)
                        self.set_proxy(variable, refusing.url)
                        self.clock.sleeps = []
                        envelope = self.assertFails(self.run_tool(*argv), "NETWORK_ERROR")
                        self.assertEqual(refusing.connects, 1, "a refused tunnel is not asked for again")
                        self.assertEqual(self.clock.sleeps, [], "no retry, no further poll")
                        self.assertNamesProxy(envelope["error"]["message"], refusing.address, variable)

    def test_a_407_to_a_proxy_url_without_credentials_says_to_put_them_in(self):
        """h12 F5: it said to check the user and password in HTTPS_PROXY, which had none; doctor's
        tunnel row said its fix twice."""
        refusing = proxy.Proxy("auth", user="corp.user", password="right").start()
        self.addCleanup(refusing.stop)
        self.set_proxy("HTTPS_PROXY", refusing.url)
        message = self.assertFails(self.run_tool(*STATUS), "NETWORK_ERROR")["error"]["message"]
        self.assertIn("the proxy asks for a user and password, and HTTPS_PROXY has none: put them in "
                      "it (http://user:password@host:port, percent-encoded)", message)
        self.assertNotIn("check the user and password", message)
        result = self.run_tool("doctor")
        tunnel = [c for c in json.loads(result.stdout)["checks"] if c["name"] == "tunnel"][0]
        self.assertEqual(tunnel["status"], "fail")
        self.assertIn("put them in it", tunnel["fix"])
        self.assertNotIn("put them in it", tunnel["detail"])

    def test_the_proxy_credentials_are_never_printed(self):
        for mode, options in (("refuse", {}), ("auth", {"user": "corp.user", "password": "another"})):
            for verbose in ((), ("--verbose",)):
                with self.subTest(mode=mode, verbose=bool(verbose)):
                    refusing = proxy.Proxy(mode, **options).start()
                    self.addCleanup(refusing.stop)
                    self.set_proxy("HTTPS_PROXY", "http://corp.user:S3cr%%40t@%s" % refusing.address)
                    result = self.run_tool(*(STATUS + verbose))
                    envelope = self.assertFails(result, "NETWORK_ERROR")
                    self.assertPrintsNone(result, "corp.user", "S3cr", "%40t")
                    self.assertEqual(refusing.connects, 1)
                    self.assertNamesProxy(envelope["error"]["message"], refusing.address, "HTTPS_PROXY")


class BrokenProxyTests(ProxyTestCase):
    def test_a_proxy_that_is_down_is_retried_and_named(self):
        for variable in VARIABLES:
            with self.subTest(variable=variable):
                address = "127.0.0.1:%d" % proxy.free_port()
                self.set_proxy(variable, "http://" + address)
                self.clock.sleeps = []
                result = self.run_tool(*STATUS)
                envelope = self.assertFails(result, "NETWORK_ERROR")
                self.assertEqual(self.clock.sleeps, [5, 10, 20], "4 attempts, as for any transient error")
                self.assertNamesProxy(envelope["error"]["message"], address, variable)
                self.assertEqual(self.platform.requests, [])

    def test_a_proxy_that_stalls_is_a_timeout_retried_and_named(self):
        stalling = self.start_proxy("stall")
        result = self.run_tool(*(STATUS + ("--timeout", "0.2")))      # 4 real timeouts of 0.2 s
        envelope = self.assertFails(result, "TIMEOUT")
        self.assertEqual((stalling.connections, stalling.connects), (4, 4))
        self.assertEqual(self.clock.sleeps, [5, 10, 20])
        self.assertNamesProxy(envelope["error"]["message"], stalling.address, "HTTPS_PROXY")


class RefusedProxyUrlTests(ProxyTestCase):
    def test_an_https_or_socks_proxy_is_refused_before_anything_is_sent(self):
        listening = self.start_proxy()
        for url in ("https://user:secret@%s" % listening.address, "socks5://%s" % listening.address,
                    "socks5h://user:secret@%s" % listening.address):
            for variable in VARIABLES:
                with self.subTest(url=url.split(":")[0], variable=variable):
                    self.set_proxy(variable, url)
                    result = self.run_tool(*STATUS)
                    message = self.assertFails(result, "INVALID_INPUT")["error"]["message"]
                    self.assertRegex(message, r"(?<![A-Za-z_])%s(?![A-Za-z_])" % variable)
                    self.assertIn("http://", message, "says that only http:// proxies are supported")
                    self.assertPrintsNone(result, "secret")
        self.assertEqual(listening.connections, 0)
        self.assertEqual(self.platform.connections, 0)
        self.assertEqual(self.clock.sleeps, [])

    def test_a_proxy_url_that_does_not_parse_is_refused_once_naming_no_piece_of_it(self):
        listening = self.start_proxy()
        self.set_proxy("HTTPS_PROXY", "http://corp.user:Tr0ub@dor:horse/9@%s" % listening.address)
        for verbose in ((), ("--verbose",)):
            with self.subTest(verbose=bool(verbose)):
                result = self.run_tool(*(STATUS + verbose))
                self.assertFails(result, "INVALID_INPUT")
                self.assertNotIn("retry", result.stderr)
                self.assertPrintsNone(result, "Tr0ub", "horse", "corp.user")
                self.assertNotRegex(result.stdout + result.stderr, r"(?<![A-Za-z])dor(?![A-Za-z])")
        self.assertEqual(self.clock.sleeps, [])
        self.assertEqual(listening.connections, 0)
        self.assertEqual(self.platform.connections, 0)


class VerboseTests(ProxyTestCase):
    def test_verbose_names_the_proxy_a_request_goes_through(self):
        tunnel = self.start_proxy()
        result = self.run_tool("auth", "status", "--verbose")
        self.assertOk(result)
        self.assertTrue([line for line in result.lines if tunnel.address in line and "proxy" in line.lower()],
                        result)

    def test_verbose_says_when_there_is_no_proxy(self):
        unused = self.start_proxy()
        os.environ["HTTP_PROXY"] = unused.url
        for name in ("NO_PROXY", "no_proxy"):
            os.environ.pop(name)
        os.environ["LANDBASE_PLATFORM_API_URL"] = self.sandbox.url      # https://127.0.0.1: never proxied
        loopback = self.run_tool("auth", "status", "--verbose")
        self.assertOk(loopback)
        for name in VARIABLES + ("HTTP_PROXY",):
            os.environ.pop(name, None)
        os.environ["LANDBASE_PLATFORM_API_URL"] = "https://api.landbase.com:%d" % self.port
        direct = self.run_tool("auth", "status", "--verbose")           # then fails: no lookup in the tests
        for name, result in (("loopback base", loopback), ("no proxy variable", direct)):
            with self.subTest(name):
                said = [line for line in result.lines if NO_PROXY_LINE.search(line) and unused.address not in line]
                self.assertTrue(said, result)
        self.assertEqual(unused.connections, 0)


class CertificateThroughProxyTests(ProxyTestCase):
    """A certificate that fails verification: NETWORK_ERROR, one attempt, and the message says why."""

    def fail_tls(self, certfile, cafile=CA):
        """The message of `status 1` against a sandbox serving `certfile`, through the proxy, trusting `cafile`."""
        box = sandbox.Sandbox(certfile=os.path.join(TLS, certfile)).start()
        self.addCleanup(box.stop)
        os.environ.update(LANDBASE_PLATFORM_API_URL="https://api.landbase.com:%d" % box.server.server_address[1],
                          SSL_CERT_FILE=cafile)
        tunnel = self.start_proxy()
        envelope = self.assertFails(self.run_tool(*STATUS), "NETWORK_ERROR")
        self.assertEqual(tunnel.connects, 1, "a certificate that fails verification is not retried")
        self.assertEqual(self.clock.sleeps, [])
        self.assertEqual(box.platform.requests, [])
        return envelope["error"]["message"]

    def test_an_expired_certificate_says_it_expired(self):
        message = self.fail_tls("expired.pem")
        if sys.version_info < (3, 7):
            self.skipTest("3.6's ssl module says only 'certificate verify failed', for an expired certificate "
                          "as for an untrusted one")
        self.assertIn("expired", message)
        self.assertNotIn("SSL_CERT_FILE", message, "a trust store would not help")

    def assertSaysAnotherName(self, message, host):
        """The part after "TLS failed" says the certificate is for another name, and names `host`:
        the URL before it holds the host in every message, so only that part can tell."""
        _, found, hint = message.partition("TLS failed")
        self.assertTrue(found, message)
        self.assertIn("for another name", hint, message)
        self.assertIn(host, hint, message)

    def test_a_certificate_for_another_name_says_the_name_does_not_match(self):
        message = self.fail_tls("wrongname.pem")
        self.assertSaysAnotherName(message, "api.landbase.com")
        self.assertNotIn("SSL_CERT_FILE", message, "a trust store would not help")

    def test_a_certificate_for_another_address_says_the_name_does_not_match(self):
        box = sandbox.Sandbox(certfile=os.path.join(TLS, "wrongname.pem")).start()      # direct, by address
        self.addCleanup(box.stop)
        os.environ.update(LANDBASE_PLATFORM_API_URL="https://127.0.0.1:%d" % box.server.server_address[1])
        message = self.assertFails(self.run_tool(*STATUS), "NETWORK_ERROR")["error"]["message"]
        self.assertSaysAnotherName(message, "127.0.0.1")
        self.assertNotIn("3.13", message)

    def test_a_ca_that_is_not_trusted_names_ssl_cert_file(self):
        message = self.fail_tls("localhost.pem", cafile=OTHER_CA)
        self.assertIn("SSL_CERT_FILE", message)
        self.assertRegex(message, r", or run \S+ doctor$")       # each network failure points at doctor

    @unittest.skipIf(sys.version_info < (3, 13), "before 3.13 the default context does not verify strictly")
    def test_a_ca_without_key_identifiers_is_refused_on_3_13(self):
        self.fail_tls("noaki.pem", cafile=OTHER_CA)     # refused, not retried: verification is never relaxed


class BrowserLoginBehindProxyTests(ToolTestCase):
    """A browser that honours HTTP_PROXY would send the login callback to the proxy: the tool warns first."""

    def stderr_when_waiting_for_the_browser(self):
        """stderr as it is when `auth login --no-browser` starts waiting for the browser (which never comes)."""
        seen = []

        def wait_event(event, seconds):
            seen.append(sys.stderr.getvalue())
            return False
        with mock.patch.object(self.clock, "wait_event", wait_event):
            result = self.run_tool("auth", "login", "--no-browser")
        self.assertTrue(seen, result)
        return seen[0]

    def test_http_proxy_without_no_proxy_for_127_0_0_1_warns_at_once(self):
        listening = proxy.Proxy().start()
        self.addCleanup(listening.stop)
        cases = [("no NO_PROXY", {}, True), ("NO_PROXY=localhost", {"NO_PROXY": "localhost"}, True),
                 ("NO_PROXY=127.0.0.1,localhost", {"NO_PROXY": "127.0.0.1,localhost"}, False)]
        for name, variables, warns in cases:
            with self.subTest(name):
                for variable in ("NO_PROXY", "no_proxy"):
                    os.environ.pop(variable, None)
                os.environ.update(variables, HTTP_PROXY=listening.url)
                stderr = self.stderr_when_waiting_for_the_browser()
                if warns:
                    self.assertIn("NO_PROXY=127.0.0.1,localhost", stderr)
                    self.assertIn("auth login --device", stderr)
                else:
                    self.assertNotIn("NO_PROXY=127.0.0.1,localhost", stderr)
        self.assertEqual(listening.connections, 0)


class CertificateTests(unittest.TestCase):
    """The files in tests/tls are what tests/tls/README.md says, checked with the ssl module alone."""

    def handshake(self, certfile, cafile, name, strict=None):
        """None when a client trusting `cafile` accepts `certfile` for `name`, else the error's text."""
        server = ssl.SSLContext(getattr(ssl, "PROTOCOL_TLS_SERVER", ssl.PROTOCOL_TLS))
        server.load_cert_chain(os.path.join(TLS, certfile))
        listener = socket.socket()
        self.addCleanup(listener.close)
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)

        def serve():
            connection, _ = listener.accept()
            try:
                server.wrap_socket(connection, server_side=True).close()
            except (OSError, ValueError):
                connection.close()
        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        client = ssl.create_default_context(cafile=os.path.join(TLS, cafile))
        if strict is not None:
            client.verify_flags = client.verify_flags | ssl.VERIFY_X509_STRICT if strict \
                else client.verify_flags & ~ssl.VERIFY_X509_STRICT
        try:
            with socket.create_connection(listener.getsockname(), timeout=10) as raw:
                client.wrap_socket(raw, server_hostname=name).close()
            return None
        except (ssl.SSLError, ssl.CertificateError) as exc:
            return str(exc)
        finally:
            thread.join(10)

    def test_localhost_pem_serves_every_name(self):
        for name in ("localhost", "127.0.0.1", "api.landbase.com", "platform.landbase.com"):
            with self.subTest(name):
                self.assertIsNone(self.handshake("localhost.pem", "ca.pem", name))
                self.assertIsNone(self.handshake("localhost.pem", "ca.pem", name, strict=True))
        self.assertIsNotNone(self.handshake("localhost.pem", "noaki-ca.pem", "api.landbase.com"))

    def test_expired_pem_has_expired(self):
        error = self.handshake("expired.pem", "ca.pem", "api.landbase.com")
        self.assertIsNotNone(error)
        if sys.version_info >= (3, 7):
            self.assertIn("expired", error)

    def test_wrongname_pem_is_for_wrong_example_only(self):
        self.assertIsNone(self.handshake("wrongname.pem", "ca.pem", "wrong.example"))
        self.assertIsNotNone(self.handshake("wrongname.pem", "ca.pem", "api.landbase.com"))

    def test_noaki_pem_fails_strict_verification_only(self):
        self.assertIsNone(self.handshake("noaki.pem", "noaki-ca.pem", "api.landbase.com", strict=False))
        self.assertIsNotNone(self.handshake("noaki.pem", "noaki-ca.pem", "api.landbase.com", strict=True))
        default = self.handshake("noaki.pem", "noaki-ca.pem", "api.landbase.com")
        self.assertEqual(default is None, sys.version_info < (3, 13), default)


if __name__ == "__main__":
    unittest.main()

"""Hostile inputs, round three (issue 21): server text, doctor, time bounds, secrets, signals.

One test (or more) for each of the 24 defects, numbered as the issue numbers them; 9 to 13, the
signal and the session races, are test_races'. Each failed on the tool before its fix
(3d532e5), and each names the mechanism the fix went into.
"""

import base64
import io
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import unittest
from unittest import mock

from support import ROOT, TOOL, ToolTestCase, on_sleep, run_cli, subprocess_env, tool
from test_poll import FakeTty, terminal_size
from test_proxy import ProxyTestCase

BODY = '{"datasetId": "ds_demo", "tagName": "round three"}'
START = ("contacts-import", "start", "--json", "-")
STATUS = {"importId": 1, "phase": "in_progress", "percent": 40, "error": None,
          "counts": {"total": 10, "imported": 4, "skipped": 0, "failed": 0}}


class RawPeer:
    """127.0.0.1:PORT answering each connection with answer(head) as it is: a proxy or a platform
    that breaks HTTP. With `drip`, a byte every `drip` seconds after the first `at_once` bytes.
    `heads` holds what it was sent."""

    def __init__(self, answer, drip=None, at_once=0):
        self.answer = answer
        self.drip = drip
        self.at_once = at_once
        self.heads = []
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.address = "127.0.0.1:%d" % self.sock.getsockname()[1]
        self.url = "http://" + self.address
        self.stopping = threading.Event()
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while not self.stopping.is_set():
            try:
                connection, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self.one, args=(connection,), daemon=True).start()

    def one(self, connection):
        with connection:
            connection.settimeout(10)
            head = b""
            try:
                while b"\r\n\r\n" not in head and len(head) < 65536:
                    chunk = connection.recv(4096)
                    if not chunk:
                        return
                    head += chunk
                self.heads.append(head.decode("latin-1"))
                data = self.answer(head.decode("latin-1"))
                if self.drip is None:
                    connection.sendall(data)
                    return
                connection.sendall(data[:self.at_once])
                for byte in data[self.at_once:]:
                    if self.stopping.is_set():
                        return
                    connection.sendall(bytes([byte]))
                    time.sleep(self.drip)
            except OSError:
                return

    def stop(self):
        self.stopping.set()
        self.sock.close()


def fixed(data):
    def answer(head):
        return data
    return answer


def echo_proxy_authorization(head):
    """A 407 whose reason phrase repeats the Proxy-Authorization the client sent."""
    found = re.search(r"(?im)^proxy-authorization: *(.*?)\r?$", head)
    echoed = found.group(1) if found else "none"
    return ("HTTP/1.1 407 you sent %s\r\nContent-Length: 0\r\n\r\n" % echoed).encode("latin-1")


class ServerTextTests(ToolTestCase):
    """Items 1 to 3: user text and server text are never format strings, and redaction is linear
    (the mechanism: redact(), one pattern of each secret's forms, with no html.unescape or
    unquote_plus over whole texts; the redrawn line keeps what was redacted for its answer)."""

    def test_1_a_key_with_percent_signs_is_text(self):
        self.login()
        for key in ("weekly-50%-batch", "a%%b", "%s%d"):
            with self.subTest(key=key):
                first = self.run_tool(*START, "--idempotency-key=" + key, stdin=BODY)
                import_id = self.assertOk(first)["importId"]
                again = self.run_tool(*START, "--idempotency-key=" + key, stdin=BODY)
                self.assertEqual(self.assertOk(again)["importId"], import_id)
                self.assertIn("already started with key %s (run" % key, again.log)

    def test_2_numeric_references_of_thousands_of_digits_are_ridden_out(self):
        self.login()
        import_id = self.assertOk(self.run_tool(*START, stdin=BODY))["importId"]
        page = "<html><body>bad gateway &#%s; &#x%s;</body></html>" % ("9" * 5000, "f" * 5000)
        self.platform.inject("status", {"status": 500, "raw": page}, times=2)
        result = self.run_tool("contacts-import", "wait", str(import_id))
        self.assertEqual(self.assertOk(result)["phase"], "completed")
        self.assertEqual(result.log.count("poll failed (API_ERROR"), 2, result)

    def test_2_a_reference_in_a_status_is_printed_as_sent(self):
        os.environ["LANDBASE_ACCESS_TOKEN"] = "lbs_round3secret"
        os.environ["LANDBASE_ACCOUNT_ID"] = "acc_demo"
        phase = "&#" + "1" * 10000 + "; %41%4" * 10
        # a token shape: the answer must go through redaction, which leaves the reference as sent
        self.platform.inject("status", {"json": dict(STATUS, phase=phase + " lbs_shape")})
        result = self.run_tool("contacts-import", "status", "1")
        self.assertEqual(self.assertOk(result)["phase"], phase + " lbs_\u2026(redacted)")

    def test_3_a_redraw_reuses_what_was_redacted_for_its_answer(self):
        self.login()
        phase = "%" * (1024 * 1024)
        self.platform.inject("status", {"json": dict(STATUS, phase=phase)}, times=3)
        redacted = []
        real = tool.redact

        def counted(text, pattern=False):
            if len(text) >= len(phase):
                redacted.append(len(text))
            return real(text, pattern)
        stream = FakeTty(80)
        with mock.patch.object(tool, "redact", counted), mock.patch.object(sys, "stderr", stream), \
                mock.patch.object(sys, "stdout", io.StringIO()), \
                mock.patch("os.get_terminal_size", terminal_size):
            code = tool.main(["contacts-import", "wait", "1", "--max-wait", "30s"])
        self.assertEqual(code, 4)                       # the phase never ends: TIMEOUT
        frames = stream.getvalue().count("\r\x1b[K")
        self.assertGreater(frames, 25)                  # redrawn once a second for 30 s
        # each whole answer is redacted where it arrives, and again on stdout: never per redraw
        self.assertLessEqual(len(redacted), 3 + 2, redacted)


class DoctorThroughTheRequestPathTests(ProxyTestCase):
    """Items 4, 5 and 8: doctor goes through Api, with its deadline and its mapping of answers (the
    mechanism: Api.send and its Trace; doctor has no HTTP code of its own)."""

    def doctor_through(self, peer, *extra):
        self.set_proxy("HTTPS_PROXY", "http://corp.user:S3cret%3Ax@" + peer.address)
        self.addCleanup(peer.stop)
        started = time.monotonic()
        result = self.run_tool("doctor", *extra)
        return result, time.monotonic() - started

    def test_4_a_connect_answered_with_garbage(self):
        for name, answer in (("no HTTP", b"garbage\r\n\r\n"),
                             ("a header over 64 KiB", b"HTTP/1.1 200 OK\r\nX: " + b"a" * 70000 + b"\r\n\r\n")):
            with self.subTest(answer=name):
                result, _ = self.doctor_through(RawPeer(fixed(answer)))
                self.assertFails(result, "NETWORK_ERROR")
                checks = {check["name"]: check for check in json.loads(result.stdout)["checks"]}
                self.assertEqual(checks["connection"]["status"], "ok")
                self.assertEqual(checks["tunnel"]["status"], "fail")

    def test_5_a_dripping_proxy_is_bounded_by_the_timeout(self):
        """(Real time: --timeout's promise is about time. A drip of 1 byte a second.)"""
        answer = fixed(b"HTTP/1.1 200 Connection established\r\n\r\n")
        # from its first byte, or from its reason phrase on (a second attack: the status line the
        # deadline cut short passed for a whole one, and doctor blamed TLS)
        for at_once in (0, len("HTTP/1.1 200 ")):
            with self.subTest(at_once=at_once):
                result, seconds = self.doctor_through(RawPeer(answer, 1.0, at_once), "--timeout", "2")
                self.assertFails(result, "TIMEOUT")
                self.assertLess(seconds, 6)             # two requests at most, each 2 s
                self.assertIn("within 2s", result.stderr)
                checks = {check["name"]: check for check in json.loads(result.stdout)["checks"]}
                self.assertEqual(checks["tunnel"]["status"], "fail")
                self.assertNotIn("tls", checks)

    def test_8_a_proxy_that_echoes_the_credentials_the_tool_sent(self):
        sent = base64.b64encode(b"corp.user:S3cret:x").decode("ascii")
        for argv in (("doctor",), ("contacts-import", "status", "1")):
            with self.subTest(command=argv[0]):
                peer = RawPeer(echo_proxy_authorization)
                self.set_proxy("HTTPS_PROXY", "http://corp.user:S3cret%3Ax@" + peer.address)
                self.addCleanup(peer.stop)
                result = self.run_tool(*argv)
                self.assertFails(result, "NETWORK_ERROR")
                self.assertTrue(any(sent in head for head in peer.heads), "the credentials were sent")
                self.assertIn("407", result.stderr)
                for secret in (sent, "S3cret", "corp.user:"):
                    self.assertNotIn(secret, result.stdout + result.stderr)

    def test_24_an_ipv6_proxy_is_named_with_brackets(self):
        self.set_proxy("HTTPS_PROXY", "http://[::1]:1")
        result = self.run_tool("contacts-import", "status", "1", "--timeout", "2")
        envelope = self.assertFails(result, "NETWORK_ERROR")
        self.assertIn("the proxy [::1]:1 (HTTPS_PROXY)", envelope["error"]["message"])

    def test_19_no_proxy_with_a_port_is_what_the_tool_does_and_says(self):
        tunnel = self.start_proxy()
        os.environ["NO_PROXY"] = "api.landbase.com:%d" % self.port
        os.environ["no_proxy"] = os.environ["NO_PROXY"]
        result = self.run_tool("contacts-import", "status", "1", "--verbose")
        # direct, as NO_PROXY says: the name is never looked up in the tests, so it fails there
        envelope = self.assertFails(result, "NETWORK_ERROR")
        self.assertEqual(tunnel.connects, 0)
        self.assertIn("> no proxy", result.stderr)
        self.assertNotIn("through the proxy", envelope["error"]["message"])
        self.assertIn("NO_PROXY covers", envelope["error"]["message"])
        doctor = self.run_tool("doctor")
        checks = {check["name"]: check for check in json.loads(doctor.stdout)["checks"]}
        self.assertIn("NO_PROXY covers", checks["proxy"]["detail"])
        self.assertEqual(tunnel.connects, 0)


class DoctorTests(ToolTestCase):
    """Items 6, 14 to 17: doctor's rows come from the one request and say what they saw (the
    mechanism: parse_http_date, check_platform, check_config, check_session)."""

    def doctor(self, *argv):
        result = self.run_tool("doctor", *argv)
        self.assertClean(result)
        checks = json.loads(result.stdout)["checks"]
        return result, checks, {check["name"]: check for check in checks}

    def me_with_date(self, date):
        me = {"userId": "usr_demo", "email": "sam@acme.example", "expiresAt": None}
        self.platform.inject("me", {"json": me, "headers": {"Date": date}})

    def test_6_and_17_a_date_that_is_no_date_is_a_warning(self):
        for date in ("Sat, 01 Jan 10000 00:00:00 GMT", "Mon, 01 Jan 2100 00:00:00 GMT",
                     "Thu, 01 Jan 99999999999 00:00:00 GMT", "Mon, 32 Feb 2026 10:00:00 GMT",
                     "yesterday", "Mon, 30 Feb 2026 10:00:00 GMT"):
            with self.subTest(date=date):
                self.login()
                self.me_with_date(date)
                result, _, checks = self.doctor()
                clock = checks["clock"]
                if date.startswith("Mon, 01 Jan 2100"):       # valid, and far ahead: a skew
                    self.assertEqual(clock["status"], "fail")
                    continue
                self.assertEqual(clock["status"], "warn", clock)
                self.assertIn("not a valid date", clock["detail"])
                self.assertIn("date -u", clock["fix"])          # a warning too says what to do
                self.assertEqual(result.code, 0, result)

    def test_17_no_date_is_a_warning(self):
        me = b'{"userId": "usr_demo", "email": "sam@acme.example", "expiresAt": null}'
        peer = RawPeer(fixed(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
                             b"Connection: close\r\n\r\n%s" % (len(me), me)))
        self.addCleanup(peer.stop)
        self.login()
        os.environ["LANDBASE_PLATFORM_API_URL"] = peer.url
        _, _, checks = self.doctor()
        self.assertEqual(checks["clock"]["status"], "warn")
        self.assertIn("no Date header", checks["clock"]["detail"])
        self.assertIn("date -u", checks["clock"]["fix"])

    def test_14_the_platform_is_reported_once(self):
        result, checks, by_name = self.doctor()          # no session
        names = [check["name"] for check in checks if check["name"] != "config"]
        self.assertEqual(len(names), len(set(names)), names)
        self.assertEqual(by_name["platform"]["status"], "ok")
        envelope = self.assertFails(result, "AUTH_REQUIRED")
        self.assertEqual(envelope["error"]["meta"]["failed"], ["session"])
        self.assertTrue(envelope["error"]["message"].startswith("1 check failed"))

    def test_15_a_directory_in_place_of_platform_json(self):
        os.makedirs(self.session_path)
        result, checks, _ = self.doctor()
        failed = [check for check in checks if check["status"] == "fail"]
        self.assertEqual([check["name"] for check in failed][:1], ["config"])
        self.assertIn("not a regular file", failed[0]["detail"])
        self.assertIn("rm -r", failed[0]["fix"])
        self.assertNotEqual(result.code, 0)

    def test_15_a_file_in_place_of_the_config_directory(self):
        with open(self.world.config, "w") as handle:
            handle.write("x")
        result, _, by_name = self.doctor()
        self.assertEqual(by_name["config"]["status"], "fail")
        self.assertIn("not a directory", by_name["config"]["detail"])
        self.assertIn("LANDBASE_CONFIG_DIR", by_name["config"]["fix"])
        self.assertFails(result, "SETUP_FAILED")

    def test_16_an_environment_token_ends_as_the_platform_says(self):
        os.environ["LANDBASE_ACCESS_TOKEN"] = self.platform.mint_token("usr_demo", ttl=3600)
        os.environ["LANDBASE_ACCOUNT_ID"] = "acc_demo"
        _, _, checks = self.doctor()
        self.assertEqual(checks["session"]["status"], "warn")
        self.assertRegex(checks["session"]["detail"], r"from LANDBASE_ACCESS_TOKEN; ends \S+ \(in (59m\d\ds|1h)\)")


def python_for_nobody():
    """An interpreter the user nobody can start: this one, else the system's (a pyenv build under
    /root may not load its shared library for another user)."""
    for python in (sys.executable, "/usr/bin/python3"):
        probe = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--", python, "-c", "pass"]
        try:
            if subprocess.call(probe, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) == 0:
                return python
        except OSError:
            pass
    raise unittest.SkipTest("no interpreter the user nobody can start")


@unittest.skipUnless(hasattr(os, "geteuid"), "POSIX owners and modes")
class UnwritableConfigTests(ToolTestCase):
    """Item 15: a config directory or a lock file this user cannot write fails doctor, and the error
    of a change names the lock file and what to do (the mechanism: check_config and
    SessionStore.locked). As root (CI), the tool runs as nobody, since root may write anything."""

    def setUp(self):
        ToolTestCase.setUp(self)
        self.login()
        self.root = os.geteuid() == 0
        os.chmod(self.config, 0o755)            # the test's directory: nobody may look inside
        os.chmod(self.session_path, 0o644)

    def run_as_ordinary_user(self, *argv):
        env = subprocess_env(self.world.url, self.world.config)
        if not self.root:
            return run_cli(argv, env)
        return run_cli(argv, env, nobody=True, python=python_for_nobody())

    def check(self, unwritable, fix, run=None):
        """Doctor's config row fails, naming what cannot be written and `fix`, and a change's
        error names the lock file and the same fix."""
        run = run or self.run_as_ordinary_user
        result = run("doctor")
        config = [check for check in json.loads(result.stdout)["checks"] if check["name"] == "config"]
        self.assertEqual(config[0]["status"], "fail", config)
        self.assertIn(unwritable, config[0]["detail"])
        self.assertIn("no login, logout or account set can change", config[0]["detail"])
        self.assertIn(fix, config[0]["fix"])
        self.assertFails(result, "SETUP_FAILED")
        message = self.assertFails(run("account", "set", "acc_team"), "SETUP_FAILED")["error"]["message"]
        self.assertIn(fix, message)
        message = self.assertFails(run("auth", "logout"), "SETUP_FAILED")["error"]["message"]
        self.assertIn(fix, message)
        self.assertIn("nothing was revoked or removed", message)

    def test_15_a_config_directory_this_user_cannot_write(self):
        mode = 0o755                            # root's directory, as nobody sees it
        if not self.root:
            mode = 0o555
        lock = os.open(self.session_path + ".lock", os.O_WRONLY | os.O_CREAT, 0o600)
        os.fchmod(lock, 0o666)                  # only the directory is in the way
        os.close(lock)
        os.chmod(self.world.config, mode)
        self.addCleanup(os.chmod, self.world.config, 0o700)
        self.check(self.world.config, "chown or chmod it (ls -ld %s)" % self.world.config)

    def test_a_directory_where_the_lock_file_goes(self):
        """h11 F2: a directory named platform.json.lock (a mkdir-style locker's) passed doctor,
        and every change blamed the config directory, which could be written. The fix given
        works: after it, account set runs."""
        lock = self.session_path + ".lock"
        os.mkdir(lock)
        fix = "remove it (rm -r %s)" % lock
        self.check(lock, fix, run=self.run_tool)
        self.assertIn("%s is a directory, not a lock file" % lock, self.run_tool("doctor").stdout)
        shutil.rmtree(lock)
        self.assertOk(self.run_tool("account", "set", "acc_team"))

    def test_15_a_lock_file_this_user_cannot_write(self):
        if not self.root:
            self.skipTest("a lock file of another owner needs root to make (CI runs as root)")
        os.chmod(self.world.config, 0o777)
        lock = self.session_path + ".lock"
        with open(os.open(lock, os.O_WRONLY | os.O_CREAT, 0o600), "w"):
            pass
        self.check(lock, "remove it, or run as its owner (ls -l %s)" % lock)


class OneShotSignalTests(ToolTestCase):
    """h12 F3: a signal that stops a one-shot command said only "stopped by SIGHUP". It ends with
    the command to run again, as given and runnable from any directory (the mechanism: main()'s
    boundary, command_again())."""

    def stop_at_the_first_retry(self, signum):
        def stop():
            raise tool.Stopped(signum)
        on_sleep(self.clock, 1, stop)

    def test_a_stopped_command_gives_itself_to_run_again(self):
        self.login()
        self.platform.inject("status", {"status": 503})
        self.stop_at_the_first_retry(signal.SIGHUP)
        result = self.run_tool("contacts-import", "status", "1", "--timeout", "5")
        message = self.assertFails(result, "TERMINATED", 129)["error"]["message"]
        self.assertTrue(message.startswith("stopped by SIGHUP: run it again: "), message)
        self.assertEqual(shlex.split(message.split("run it again: ", 1)[1]),
                         [os.path.abspath(TOOL), "contacts-import", "status", "1", "--timeout", "5"])

    def test_a_body_path_is_made_absolute(self):
        self.login()
        self.addCleanup(os.chdir, os.getcwd())
        os.chdir(os.path.dirname(self.world.config))
        self.platform.inject("accounts", {"status": 503})
        self.stop_at_the_first_retry(signal.SIGTERM)
        result = self.run_tool("account", "list")
        message = self.assertFails(result, "TERMINATED", 143)["error"]["message"]
        self.assertTrue(message.endswith("run it again: %s account list" % os.path.abspath(TOOL)),
                        message)
        self.assertEqual(tool.command_again(["contacts-import", "start", "--json", "night.json"]),
                         "%s contacts-import start --json %s" % (os.path.abspath(TOOL),
                                                                 os.path.abspath("night.json")))

    def test_a_stopped_logout_run_again_logs_out(self):
        token = self.login()
        self.platform.inject("revoke", {"status": 503})
        self.stop_at_the_first_retry(signal.SIGTERM)
        message = self.assertFails(self.run_tool("auth", "logout"), "TERMINATED", 143)["error"]["message"]
        self.assertTrue(message.endswith("run it again: %s auth logout" % os.path.abspath(TOOL)), message)
        self.assertTrue(os.path.exists(self.session_path))
        self.assertEqual(self.assertOk(self.run_tool("auth", "logout")), {"loggedOut": True, "revoked": True})
        self.assertTrue(self.platform.tokens[token]["revoked"])
        self.assertFalse(os.path.exists(self.session_path))


class TimeBoundTests(ToolTestCase):
    """Item 7: a name server that never answers: the lookup is inside the request's deadline (the
    mechanism: resolve(), in open_socket())."""

    def test_7_a_lookup_that_never_ends_is_bounded_by_the_timeout(self):
        """(Real time: the promise is --timeout's. Each request waits 1 s for the name.)"""
        self.login()
        never = threading.Event()
        self.addCleanup(never.set)
        real = socket.getaddrinfo

        def hanging(host, *args, **kwargs):
            if host == "127.0.0.1":
                never.wait(60)
            return real(host, *args, **kwargs)
        started = time.monotonic()
        with mock.patch.object(socket, "getaddrinfo", hanging):
            result = self.run_tool("contacts-import", "wait", "1", "--max-wait", "3", "--timeout", "1")
        self.assertLess(time.monotonic() - started, 5)
        envelope = self.assertFails(result, "TIMEOUT")
        self.assertIn("no complete answer within 1s", result.stderr)
        self.assertIn("after 3s", envelope["error"]["message"])


class LimitTests(ToolTestCase):
    """Item 18: a large but valid accounts list is read (the mechanism: parse_json counts objects
    and arrays, MAX_JSON_CONTAINERS, which no valid answer of 4 MiB reaches, and the keys of each
    object, MAX_OBJECT_KEYS, which no answer API.md describes reaches). Any other document holds
    at most MAX_JSON_VALUES values: a few MiB of memory, whatever they are."""

    def test_18_a_large_valid_accounts_list(self):
        self.login()
        shapes = {"33,334 accounts": [{"id": "acc_%05d" % n, "name": "Account %d" % n} for n in range(33334)],
                  "15,000 with five more fields": [
                      {"id": "acc_%05d" % n, "name": "N", "a": 1, "b": "x", "c": None, "d": True, "e": 2.5}
                      for n in range(15000)]}
        for name, accounts in shapes.items():
            with self.subTest(shape=name):
                accounts[0]["id"] = "acc_demo"
                self.platform.inject("accounts", {"json": {"accounts": accounts}})
                listed = self.assertOk(self.run_tool("account", "list"))
                self.assertEqual(len(listed), len(accounts))

    def test_18_the_limit_is_past_any_valid_answer_and_no_further(self):
        shortest = b'{"accounts":[' + b",".join([b'{"id":"a"}'] * 381000) + b"]}"
        self.assertLessEqual(len(shortest), tool.MAX_ANSWER_BYTES)
        self.assertEqual(len(tool.parse_json(shortest, many=True)["accounts"]), 381000)
        empty = b"[" + b",".join([b"{}"] * 400000) + b"]"          # 400,001 containers
        with self.assertRaisesRegex(tool.StrictJSONError, "more than 400000 objects and arrays"):
            tool.parse_json(empty, many=True)
        nested = b"[" * 65 + b"]" * 65
        with self.assertRaisesRegex(tool.StrictJSONError, "nested deeper than 64 levels"):
            tool.parse_json(nested)

    def test_18_a_document_of_more_values_than_any_but_the_accounts_list_is_refused(self):
        """840,000 two-letter strings in a 4 MiB status answer took 98 MiB on 3.11: every document
        but the accounts list holds at most MAX_JSON_VALUES values (each comma and each object or
        array counts one), counted outside strings, before it is parsed."""
        def values(count, item=b'"ab"'):
            return b"[" + b",".join([item] * count) + b"]"   # count - 1 commas and one array
        self.assertEqual(len(tool.parse_json(values(20000))), 20000)
        refused = {"strings": values(20001), "objects": values(10001, b"{}"),
                   "in an answer": b'{"importId": 7, "x": ' + values(20001) + b"}",
                   "past the first chunk": b'{"pad": "' + b"p" * 70000 + b'", "x": ' + values(20001) + b"}"}
        for name, document in refused.items():
            with self.subTest(shape=name):
                with self.assertRaisesRegex(tool.StrictJSONError, "^more than 20000 values"):
                    tool.parse_json(document)
                self.assertTrue(tool.parse_json(document, many=True))
        commas_in_strings = b'{"a": "' + b"," * 100000 + b'"}'
        self.assertEqual(len(tool.parse_json(commas_in_strings)["a"]), 100000)

    def test_18_a_refused_document_is_refused_before_it_is_decoded(self):
        """One character outside Latin-1 makes the whole decoded text take 4 bytes a character:
        16 MiB for this 4 MB answer, which the scan refuses from its bytes."""
        import tracemalloc
        raw = b"[" + b'"a",' * 1000000 + '"\U0001F600"]'.encode("utf-8")
        tracemalloc.start()
        try:
            with self.assertRaisesRegex(tool.StrictJSONError, "^more than 20000 values"):
                tool.parse_json(raw)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        self.assertLess(peak, len(raw))

    def test_18_a_status_of_too_many_values_is_a_broken_answer_and_the_accounts_list_is_not(self):
        self.login()
        crowded = {"importId": 1, "phase": "in_progress", "percent": 1, "counts": None, "error": None,
                   "x": ["ab"] * 30000}
        self.platform.inject("status", {"json": crowded}, times=4)
        envelope = self.assertFails(self.run_tool("contacts-import", "status", "1"), "API_ERROR")
        self.assertIn("more than 20000 values", envelope["error"]["message"])
        self.assertEqual(self.clock.sleeps, [5, 10, 20])
        accounts = [{"id": "acc_demo", "name": "D"}] + [{"id": "acc_%05d" % n, "name": "ab"} for n in range(30000)]
        self.platform.inject("accounts", {"json": {"accounts": accounts}})
        self.assertEqual(len(self.assertOk(self.run_tool("account", "list"))), 30001)

    @unittest.skipIf(sys.version_info < (3, 8), "3.6 and 3.7 give every dict a table of its own")
    def test_18_an_empty_object_takes_no_table(self):
        """The strict reader builds each object from its pairs; dict([]) takes 241 bytes on 3.8 and
        3.9, where {} takes 73. Under the container limit, 200,000 empty objects would take 34 MiB
        more."""
        import tracemalloc
        empties = b"[" + b",".join([b"{}"] * 20000) + b"]"
        tracemalloc.start()
        try:
            parsed = tool.parse_json(empties, many=True)
            held = tracemalloc.get_traced_memory()[0]
        finally:
            tracemalloc.stop()
        self.assertEqual(len(parsed), 20000)
        self.assertLess(held / 20000, 100, "bytes an empty object takes")

    def test_18_an_object_of_more_keys_than_any_answer_has_is_refused_before_it_is_parsed(self):
        """280,000 keys in one object (4 MiB) would take 50 MiB to parse (the pairs the duplicate
        check reads): an object of more than MAX_OBJECT_KEYS is refused by the scan before it, in
        a nested object, after nested ones, across the scan's chunks, and a key's colon in a string
        is not a key."""
        def keys(count, value=b"0"):
            return b",".join(b'"k%06d":%s' % (n, value) for n in range(count))
        widest = b'{"importId": 7, "x": {' + keys(10000) + b"}}"
        self.assertEqual(len(tool.parse_json(widest)["x"]), 10000)
        many_objects = b"[" + b",".join([b"{" + keys(9000) + b"}"] * 3) + b"]"
        self.assertEqual(len(tool.parse_json(many_objects, many=True)), 3)
        in_strings = b'{"a": "' + b":" * 20000 + b'", "b": {' + keys(10) + b"}}"
        self.assertEqual(len(tool.parse_json(in_strings)["b"]), 10)
        shapes = {"flat": b"{" + keys(10001) + b"}",
                  "nested": b'{"a": [1, {"b": {' + keys(10001) + b"}}]}",
                  "after nested values": b'{"a": {' + keys(10001, b'{"x": [1]}') + b"}}",
                  "unterminated": b'{"a": {' + keys(10001),
                  "past the first chunk": b'{"pad": "' + b"p" * 70000 + b'", "x": {' + keys(10001) + b"}}"}
        for name, document in shapes.items():
            with self.subTest(shape=name):
                with self.assertRaisesRegex(tool.StrictJSONError, "^an object of more than 10000 keys$"):
                    tool.parse_json(document)


class StartTests(ToolTestCase):
    """Items 20 to 22: what a start says of itself (the mechanism: report_started, stopped(),
    rerun_text(), program_command())."""

    def test_20_a_runs_own_retry_is_not_a_replay(self):
        self.login()
        self.platform.inject("start", {"drop": True})       # created; its answer cut short
        result = self.run_tool(*START, stdin=BODY)
        self.assertOk(result)
        self.assertEqual(len([i for i in self.platform.imports if i != 1]), 1)
        self.assertIn("by an earlier attempt of this run, whose answer was lost", result.log)
        self.assertNotIn("already started", result.log)

    def test_21_the_rerun_command_after_a_signal_can_be_pasted(self):
        self.login()
        self.platform.inject("start", {"status": 503}, times=4)

        def terminate():
            raise tool.Stopped(signal.SIGTERM)
        on_sleep(self.clock, 1, terminate)
        result = self.run_tool(*START, stdin=BODY)
        envelope = self.assertFails(result, "TERMINATED")
        message = envelope["error"]["message"]
        self.assertTrue(message.startswith("stopped by SIGTERM: "), message)
        self.assertIn("with the same body on stdin again", message)
        command = shlex.split(message.rsplit(" with: ", 1)[1])      # ends with the command, whole
        self.assertEqual(command[0], os.path.abspath(TOOL))
        self.assertEqual(command[-1], "--idempotency-key=" + envelope["error"]["meta"]["idempotencyKey"])

    def test_22_the_printed_commands_run_from_any_directory(self):
        self.login()
        self.addCleanup(os.chdir, os.getcwd())
        os.chdir(ROOT)                          # as a user runs `python3 landbase_import.py` there
        result = run_cli(["contacts-import", "wait", "1", "--max-wait", "1"], self.world.env,
                         as_user=True, program="landbase_import.py")
        resume = self.assertFails(result, "TIMEOUT")["error"]["meta"]["resume"]
        self.assertTrue(resume.startswith(TOOL + " contacts-import wait 1"), resume)


class CommandLineTests(ToolTestCase):
    start_sandbox = False

    def test_23_an_empty_timeout_is_refused(self):
        for argv in (["--timeout=", "doctor"], ["doctor", "--timeout", ""]):
            with self.subTest(argv=argv):
                envelope = self.assertFails(self.run_tool(*argv), "INVALID_INPUT")
                self.assertIn("--timeout", envelope["error"]["message"])


if __name__ == "__main__":
    unittest.main()

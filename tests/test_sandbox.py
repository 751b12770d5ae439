"""The sandbox itself: its command line, its rules, its faults, its lifecycle of an import."""

import calendar
import contextlib
import email.utils
import io
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
import unittest
import urllib.error
import urllib.request
from urllib.parse import urlsplit

import sandbox
from support import direct_opener

HERE = os.path.dirname(os.path.abspath(__file__))
DIRECT = direct_opener()


def raw_answer(base, path, token):
    """The bytes of a GET's whole answer, head included, as they arrive (the connection is closed after it)."""
    host, port = urlsplit(base).netloc.split(":")
    with socket.create_connection((host, int(port)), timeout=10) as connection:
        connection.sendall(("GET %s HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nConnection: close\r\n\r\n"
                            % (path, host, token)).encode())
        chunks = []
        while True:
            chunk = connection.recv(65536)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)


def call(url, method="GET", token=None, body=None, headers=None):
    request = urllib.request.Request(url, method=method, data=None if body is None else json.dumps(body).encode())
    if token:
        request.add_header("Authorization", "Bearer " + token)
    for name, value in (headers or {}).items():
        request.add_header(name, value)
    try:
        with DIRECT.open(request, timeout=10) as response:
            return response.getcode(), response.read(), response.headers
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), exc.headers


class SandboxProcessTests(unittest.TestCase):
    def test_command_line_faults_and_a_clean_stop(self):
        for signum in (signal.SIGTERM, signal.SIGINT):
            with self.subTest(signal=signum):
                process = subprocess.Popen([sys.executable, os.path.join(HERE, "sandbox.py"), "--port", "0",
                                            "--fault", 'me*2={"status": 502}'], stdout=subprocess.PIPE,
                                           stderr=subprocess.PIPE, universal_newlines=True,
                                           preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
                try:
                    url = process.stdout.readline().strip()
                    self.assertRegex(url, r"^http://127\.0\.0\.1:\d+$")
                    self.assertEqual([call(url + "/v1/me")[0] for _ in range(3)], [502, 502, 401])
                    process.send_signal(signum)
                    _, err = process.communicate(timeout=10)
                finally:
                    if process.poll() is None:
                        process.kill()
                self.assertEqual(process.returncode, 0, err)
                self.assertIn("GET /v1/me", err)            # requests are logged on stderr
                self.assertIn("sandbox: stopped", err)


class IdempotencyKeyTests(unittest.TestCase):
    """API.md, Start: a key is kept only for a 202, for 24 hours of the platform's clock from the
    request that created the import; a refusal keeps nothing; another body under a kept key is
    refused."""

    def setUp(self):
        self.box = sandbox.Sandbox().start()
        self.addCleanup(self.box.stop)
        self.platform = self.box.platform
        self.token = self.platform.mint_token()
        self.imports = self.box.url + "/v1/accounts/acc_demo/contacts-imports"

    def post(self, body, key):
        """(status, decoded answer, Idempotent-Replayed) of a start with this key."""
        headers = {"Idempotency-Key": key}
        status, raw, headers = call(self.imports, "POST", self.token, body, headers)
        return status, json.loads(raw.decode("utf-8")), headers.get("Idempotent-Replayed")

    def created(self):
        """The ids of the imports started so far (import 1 is the seeded draft)."""
        return sorted(number for number in self.platform.imports if number != 1)

    def test_a_202_keeps_the_key_and_the_same_body_gets_the_original_answer(self):
        body = {"datasetId": "ds_demo", "tagName": "nightly"}
        status, first, replayed = self.post(body, "nightly-1")
        self.assertEqual((status, replayed), (202, None))
        self.assertEqual(self.post(body, "nightly-1"), (202, first, "true"))
        self.assertEqual(self.created(), [first["importId"]])

    def test_a_refused_body_keeps_nothing_and_the_fixed_body_starts_with_the_same_key(self):
        fixed = {"datasetId": "ds_demo", "tagName": "nightly"}
        refusals = ((422, {"datasetId": "ds_other", "tagName": "nightly"}),   # another account's
                    (422, {"datasetId": "ds_nowhere", "tagName": "nightly"}), # unknown
                    (400, {"datasetId": "ds_demo", "tagName": "  "}),         # blank tag
                    (400, {"datasetId": "ds_demo", "tagName": "nightly", "extra": 1}))
        for number, (expected, wrong) in enumerate(refusals):
            key = "nightly-%d" % number
            with self.subTest(body=wrong):
                first = self.post(wrong, key)
                again = self.post(wrong, key)
                refused = (first[0], first[1]["error"]["code"])
                self.assertEqual(refused, (expected, "VALIDATION_ERROR"))
                self.assertEqual(again, first, "the same refusal again, not a replay of it")
                status, answer, replayed = self.post(fixed, key)
                self.assertEqual((status, replayed), (202, None), answer)
                self.assertIn(answer["importId"], self.created())
        self.assertEqual(len(self.created()), len(refusals))

    def test_a_404_and_a_409_keep_nothing(self):
        unknown = {"datasetId": "ds_demo", "tagName": "resume", "importId": 999}
        self.assertEqual(self.post(unknown, "resume-a")[0], 404)
        status, answer, _ = self.post({"datasetId": "ds_demo", "tagName": "resume"}, "resume-a")
        self.assertEqual(status, 202, answer)
        draft = {"datasetId": "ds_demo", "tagName": "resume", "importId": 1}
        status, answer, _ = self.post(draft, "resume-b")
        self.assertEqual((status, answer["importId"]), (202, 1))
        status, answer, _ = self.post(draft, "resume-c")
        self.assertEqual((status, answer["error"]["meta"]), (409, {"importId": 1}))
        fresh = {"datasetId": "ds_demo", "tagName": "resume"}
        status, answer, replayed = self.post(fresh, "resume-c")
        self.assertEqual((status, replayed), (202, None), answer)
        self.assertEqual(len(self.created()), 2)

    def test_another_body_under_a_kept_key_is_refused_and_starts_nothing(self):
        kept = {"datasetId": "ds_demo", "tagName": "nightly"}
        status, first, _ = self.post(kept, "nightly")
        self.assertEqual(status, 202)
        for other in ({"datasetId": "ds_complete", "tagName": "nightly"},
                      {"datasetId": "ds_demo", "tagName": "nightly 2"},
                      {"datasetId": "ds_other", "tagName": "nightly"}):
            with self.subTest(body=other):
                status, answer, replayed = self.post(other, "nightly")
                self.assertEqual((status, replayed), (422, None))
                self.assertEqual(answer["error"]["code"], "VALIDATION_ERROR")
                self.assertEqual(answer["error"]["meta"], {"reason": "idempotency_key_reused"})
                self.assertIn("Idempotency-Key", answer["error"]["message"])
        self.assertEqual(self.created(), [first["importId"]])
        self.assertEqual(self.post(kept, "nightly")[1], first)

    def test_a_kept_key_lasts_24_hours_of_the_platform_clock_from_the_import_it_created(self):
        body = {"datasetId": "ds_demo", "tagName": "daily"}
        first = self.post(body, "daily")[1]
        self.platform.advance(sandbox.DAY - 120)
        # a replay extends nothing: 24 hours and 2 minutes after the import was created, it is gone
        self.assertEqual(self.post(body, "daily"), (202, first, "true"))
        self.platform.advance(240)
        status, second, replayed = self.post(body, "daily")
        self.assertEqual((status, replayed), (202, None))
        self.assertNotEqual(second["importId"], first["importId"])
        self.assertEqual(self.post(body, "daily"), (202, second, "true"))   # the new one is kept
        self.platform.advance(sandbox.DAY + 60)
        other = {"datasetId": "ds_complete", "tagName": "daily"}   # the key is gone: no refusal
        status, third, replayed = self.post(other, "daily")
        self.assertEqual((status, replayed), (202, None), third)
        self.assertEqual(len(self.created()), 3)


class SandboxRuleTests(unittest.TestCase):
    def setUp(self):
        self.box = sandbox.Sandbox().start()
        self.addCleanup(self.box.stop)
        self.platform = self.box.platform
        self.token = self.platform.mint_token()
        self.imports = self.box.url + "/v1/accounts/acc_demo/contacts-imports"

    def test_a_client_that_goes_away_is_no_error_of_the_sandbox(self):
        """A client may drop its connection at any moment (the tool after a failed certificate check, on 3.6 while
        the sandbox still reads: CI printed its traceback into a run's stderr); an error of its own is printed."""
        for error, printed in ((ConnectionResetError(104, "Connection reset by peer"), False),
                               (ssl.SSLError(1, "unexpected eof while reading"), False),
                               (socket.timeout("timed out"), False), (KeyError("a sandbox bug"), True)):
            with self.subTest(error=error):
                said = io.StringIO()
                try:
                    raise error
                except type(error):
                    with contextlib.redirect_stderr(said):
                        self.box.server.handle_error(None, ("127.0.0.1", 1))
                self.assertEqual("Traceback" in said.getvalue(), printed, said.getvalue())

    def test_tokens(self):
        self.assertEqual(call(self.box.url + "/v1/me")[0], 401)
        self.assertEqual(call(self.box.url + "/v1/me", token="lbs_unknown")[0], 401)
        self.assertEqual(call(self.box.url + "/v1/me", token=self.token)[0], 200)
        expired = self.platform.mint_token(ttl=-1)
        self.assertEqual(call(self.box.url + "/v1/me", token=expired)[0], 401)
        self.assertEqual(call(self.box.url + "/v1/oauth/revoke", "POST", self.token)[0], 204)
        self.assertEqual(call(self.box.url + "/v1/me", token=self.token)[0], 401)

    def test_an_import_moves_through_its_phases_and_its_counts_add_up(self):
        status, raw, _ = call(self.imports, "POST", self.token, {"datasetId": "ds_partial", "tagName": "x"})
        self.assertEqual(status, 202)
        import_id = json.loads(raw)["importId"]
        phases = []
        for _ in range(30):
            snapshot = json.loads(call("%s/%d" % (self.imports, import_id), token=self.token)[1])
            phases.append(snapshot["phase"])
            if snapshot["phase"] in ("draft", "preparing"):
                self.assertIsNone(snapshot["percent"])
            counts = snapshot["counts"]
            if counts:
                self.assertLessEqual(counts["imported"] + counts["skipped"] + counts["failed"], counts["total"])
            self.platform.advance(1.5)
        seen = [p for i, p in enumerate(phases) if i == 0 or phases[i - 1] != p]
        self.assertEqual(seen, ["draft", "preparing", "in_progress", "partial"])
        self.assertEqual(snapshot["percent"], 100)
        self.assertIsInstance(snapshot["error"], dict)

    def test_other_accounts_conflicts_and_replays(self):
        self.assertEqual(call(self.box.url + "/v1/accounts/acc_other/contacts-imports/1", token=self.token)[0], 404)
        self.assertEqual(call(self.box.url + "/v1/accounts/acc_team/contacts-imports/1", token=self.token)[0], 404)
        body = {"datasetId": "ds_demo", "tagName": "x", "importId": 1}
        first = call(self.imports, "POST", self.token, body, {"Idempotency-Key": "k1"})
        replay = call(self.imports, "POST", self.token, body, {"Idempotency-Key": "k1"})
        again = call(self.imports, "POST", self.token, body, {"Idempotency-Key": "k2"})
        self.assertEqual((first[0], replay[0], again[0]), (202, 202, 409))
        self.assertEqual(first[1], replay[1])
        self.assertEqual(json.loads(again[1])["error"]["meta"]["importId"], 1)
        status, raw, _ = call(self.imports, "POST", self.token, {"datasetId": "ds_other", "tagName": "x"})
        self.assertEqual((status, json.loads(raw)["error"]["code"]), (422, "VALIDATION_ERROR"))

    def test_me_says_when_the_presented_token_ends(self):
        short = self.platform.mint_token(ttl=3600)
        for token, ttl in ((self.token, 7 * sandbox.DAY), (short, 3600)):
            status, raw, _ = call(self.box.url + "/v1/me", token=token)
            self.assertEqual(status, 200)
            ends = calendar.timegm(time.strptime(json.loads(raw)["expiresAt"], "%Y-%m-%dT%H:%M:%SZ"))
            self.assertAlmostEqual(ends, time.time() + ttl, delta=5)

    def test_the_control_endpoint_mints_a_token_of_any_lifetime(self):
        for body, ttl in (({"mintToken": "usr_solo"}, 7 * sandbox.DAY),
                          ({"mintToken": "usr_solo", "ttl": 5400}, 5400)):
            token = json.loads(call(self.box.url + "/_sandbox/control", "POST", body=body)[1])["accessToken"]
            status, raw, _ = call(self.box.url + "/v1/me", token=token)
            self.assertEqual((status, json.loads(raw)["userId"]), (200, "usr_solo"))
            ends = calendar.timegm(time.strptime(json.loads(raw)["expiresAt"], "%Y-%m-%dT%H:%M:%SZ"))
            self.assertAlmostEqual(ends, time.time() + ttl, delta=5)

    def test_a_replayed_answer_says_so_and_a_first_one_does_not(self):
        body = {"datasetId": "ds_demo", "tagName": "x"}
        first = call(self.imports, "POST", self.token, body, {"Idempotency-Key": "k1"})
        replay = call(self.imports, "POST", self.token, body, {"Idempotency-Key": "k1"})
        other = call(self.imports, "POST", self.token, body, {"Idempotency-Key": "k2"})
        unkeyed = call(self.imports, "POST", self.token, body)
        self.assertEqual((first[0], replay[0], other[0], unkeyed[0]), (202, 202, 202, 202))
        self.assertEqual(first[1], replay[1])
        self.assertEqual([answer[2].get("Idempotent-Replayed") for answer in (first, replay, other, unkeyed)],
                         [None, "true", None, None])

    def test_every_answer_carries_one_date_even_the_faults_that_build_their_own_head(self):
        self.platform.min_poll_interval = 0          # each read a real answer, not a 429
        faults = [None, {"status": 502}, {"json": {"phase": 7}}, {"raw": "{"}, {"redirect": "/v1/me"},
                  {"truncate": True}, {"drip": 0.001}, {"size": 4096}, {}]
        for fault in faults:
            with self.subTest(fault=fault):
                if fault is not None:
                    self.platform.inject("status", fault)
                answer = raw_answer(self.box.url, "/v1/accounts/acc_demo/contacts-imports/1", self.token)
                dates = [line for line in answer.split(b"\r\n\r\n")[0].split(b"\r\n")
                         if line.lower().startswith(b"date:")]
                self.assertEqual(len(dates), 1, answer[:300])
                sent = email.utils.parsedate_to_datetime(dates[0][5:].strip().decode())
                self.assertAlmostEqual(sent.timestamp(), time.time(), delta=5)
        # a fault that brings a Date of its own (a skewed platform clock) sends it in place of the real one
        self.platform.inject("me", {"json": {}, "headers": {"Date": "Mon, 01 Jan 2001 00:00:00 GMT"}})
        self.platform.inject("me", {"raw": "{}", "headers": {"date": "Mon, 01 Jan 2001 00:00:00 GMT"}})
        for _ in range(2):
            headers = call(self.box.url + "/v1/me", token=self.token)[2]
            self.assertEqual(headers.get_all("Date"), ["Mon, 01 Jan 2001 00:00:00 GMT"])
        self.assertEqual(len(call(self.box.url + "/v1/me", token=self.token)[2].get_all("Date")), 1)

    def test_polling_faster_than_once_a_second_is_rate_limited(self):
        url = self.imports + "/1"
        self.assertEqual(call(url, token=self.token)[0], 200)
        status, _, headers = call(url, token=self.token)
        self.assertEqual((status, headers["Retry-After"]), (429, "1"))

#!/usr/bin/env python3
"""A fake Landbase platform: the HTTP protocol of tests/PROTOCOL.md, for the demo and the tests.

    python3 tests/sandbox.py [--port 0] [--speed X] [--token-ttl SECONDS] [--fault ROUTE[*N]=JSON ...]

Binds 127.0.0.1 only, prints its base URL as the first stdout line, serves the
API and the login pages from that one URL, logs requests to stderr, stops on
SIGINT/SIGTERM. In-process: Sandbox(...).start(), .url, .platform.inject(...).

Fault routes: me, accounts, start, status, token, device, revoke, authorize,
device-page (or * for any). A fault is a JSON object:
  {"status": 502, "body": "<html>…", "headers": {"Retry-After": "3"}}
  {"delay": 5}            answer late (after a client timeout)
  {"drop": true}          headers, half the body, then the connection closes
  {"reset": true}         close the connection before answering
  {"truncate": true}      200 with the real JSON cut in half
  {"json": {...}}         200 (or "status") with this body: wrong types and the like
  {"redirect": "URL"}     302 (or "status") to URL
  {"endless": true}       200, a chunked body that never ends (until the client leaves)
  {"drip": 1.0}           the real answer, one byte every 1.0 s (headers included)
  {"size": 104857600}     200, the real JSON padded to this many bytes (streamed, Content-Length set)
  {"raw": "...", "status": 200, "headers": {...}}   exactly this body text, any bytes a str can hold
  {}                      the real answer (to let earlier requests through)

Connections, not routes: platform.drop_handshakes = N (or {"dropHandshakes": N} on the control
endpoint) closes the next N TLS connections during the handshake.

A sandbox run as a process takes the same controls over HTTP:
POST /_sandbox/control {"route": "status", "fault": {...}, "times": 2} | {"advance": SECONDS} |
{"expireTokens": true} | {"mintToken": "usr_demo", "ttl": SECONDS} (answers {"accessToken": ...}; ttl is
optional, --token-ttl by default).
"""

import argparse
import base64
import hashlib
import html
import json
import secrets
import signal
import socket
import socketserver
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from urllib.parse import parse_qs, urlencode, urlsplit

DAY = 24 * 3600
USERS = {
    "usr_demo": {"email": "sam@acme.example", "accounts": ["acc_demo", "acc_team"]},
    "usr_solo": {"email": "solo@acme.example", "accounts": ["acc_solo"]},
}
ACCOUNTS = {"acc_demo": "Demo Co", "acc_team": "Demo Team", "acc_solo": "Solo Ltd", "acc_other": "Other Corp"}
# dataset id: (contacts, seconds preparing, seconds in progress, outcome, accounts that can read it)
DATASETS = {
    "ds_demo": (240, 3, 9, "completed", ("acc_demo", "acc_team", "acc_solo")),
    "ds_complete": (300, 5, 40, "completed", ("acc_demo", "acc_team", "acc_solo")),
    "ds_partial": (200, 3, 20, "partial", ("acc_demo", "acc_team", "acc_solo")),
    "ds_failed": (150, 3, 10, "failed", ("acc_demo", "acc_team", "acc_solo")),
    "ds_long": (50000, 10, 3 * 3600, "completed", ("acc_demo", "acc_team", "acc_solo")),
    "ds_other": (100, 3, 10, "completed", ("acc_other",)),
}
FAILED_AT = 0.4                          # ds_failed stops at 40 %
DRAFT_SECONDS = 1                        # a started import is a draft this long, then preparing
CLIENT_ID = "landbase-cli"


def format_time(seconds):
    """An expiresAt: 2026-12-05T10:00:00Z."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def envelope(code, message, **meta):
    return {"error": {"code": code, "message": message, "meta": meta}}


class Reply(Exception):
    """An answer decided deep in a route: status, JSON body, extra headers."""

    def __init__(self, status, body=None, headers=None):
        Exception.__init__(self, status)
        self.status, self.body, self.headers = status, body, headers or {}


class Platform:
    """The platform's state, shared by the request threads; time is elapsed time scaled by speed."""

    def __init__(self, speed=1.0, token_ttl=7 * DAY, min_poll_interval=1.0, device_interval=5):
        self.lock = threading.RLock()
        self.speed = speed
        self.token_ttl = token_ttl
        self.min_poll_interval = min_poll_interval
        self.device_interval = device_interval
        self.started = time.monotonic()
        self.skipped = 0.0               # seconds added by advance()
        self.tokens = {}                 # token -> {"user", "expires", "revoked"}
        self.codes = {}                  # authorization code -> grant
        self.devices = {}                # device code -> request
        self.imports = {}                # import id -> import
        self.idempotency = {}            # (user, account, key) -> a 202's {"at", "answer", "body"}
        self.last_poll = {}              # (account, import id) -> time
        self.faults = []                 # [route, fault, times left]
        self.requests = []               # (method, path, headers) of every request, for the tests
        self.connections = 0             # TCP connections accepted
        self.drop_handshakes = 0         # close this many TLS connections before the handshake
        self.in_flight = 0               # requests being answered now, and the most at once
        self.most_in_flight = 0
        self.next_id = 100
        self.imports[1] = {"id": 1, "account": "acc_demo", "dataset": "ds_demo", "tag": "seeded draft",
                           "enqueued": None, "runRef": None}

    # -- time
    def elapsed(self):
        """Platform time: real seconds times speed, plus what advance() added."""
        return (time.monotonic() - self.started) * self.speed + self.skipped

    def wall(self):
        return time.time() + self.skipped

    def advance(self, seconds):
        with self.lock:
            self.skipped += seconds

    # -- test controls
    def inject(self, route, fault, times=1):
        with self.lock:
            self.faults.append([route, dict(fault), times])

    def take_fault(self, route):
        with self.lock:
            for entry in self.faults:
                if entry[0] in (route, "*") and entry[2] > 0:
                    entry[2] -= 1
                    return entry[1]
        return None

    def mint_token(self, user="usr_demo", ttl=None):
        with self.lock:
            token = "lbs_" + secrets.token_urlsafe(24)
            self.tokens[token] = {"user": user, "expires": self.wall() + (self.token_ttl if ttl is None else ttl),
                                  "revoked": False}
            return token

    def expire_tokens(self):
        with self.lock:
            for grant in self.tokens.values():
                grant["expires"] = 0

    def count(self, method, path_part):
        with self.lock:
            return sum(1 for m, p, _ in self.requests if m == method and path_part in p)

    # -- identity
    def user_of(self, headers):
        value = headers.get("Authorization") or ""
        token = value[len("Bearer "):] if value.startswith("Bearer ") else ""
        with self.lock:
            grant = self.tokens.get(token)
            if not token:
                raise Reply(401, envelope("AUTH_FAILED", "no bearer token"))
            if grant is None or grant["revoked"]:
                raise Reply(401, envelope("AUTH_FAILED", "the token is unknown or revoked"))
            if grant["expires"] <= self.wall():
                raise Reply(401, envelope("AUTH_FAILED", "the session has expired"))
            return grant["user"], token

    def account_of(self, user, account):
        if account not in USERS[user]["accounts"]:
            raise Reply(404, envelope("NOT_FOUND", "account %s is not accessible" % account))
        return account

    def token_response(self, user):
        token = self.mint_token(user)
        accounts = USERS[user]["accounts"]
        return {"accessToken": token, "expiresAt": format_time(self.tokens[token]["expires"]),
                "accountId": accounts[0] if len(accounts) == 1 else None}

    # -- imports
    def start(self, user, account, body, key):
        """API.md, Start. A key is the identity's, in one account. It is kept only when the
        request created or resumed an import (202): a refusal (400/422, 404, 409) keeps nothing,
        so the same key works once the body is fixed. A kept key lasts 24 hours of the platform's
        clock from the request that created the import: until then the same body gets the
        original answer, marked replayed, and another body is refused; after it, the key starts
        a new import."""
        with self.lock:
            kept = self.kept_key(user, account, key)
            if kept is not None and kept["body"] != body:
                said = ("this Idempotency-Key was used in the last 24 hours for another body; "
                        "use a key per import")
                refusal = envelope("VALIDATION_ERROR", said, reason="idempotency_key_reused")
                raise Reply(422, refusal)
            if kept is not None:
                raise Reply(202, kept["answer"], {"Idempotent-Replayed": "true"})
            answer = self._start(account, body)      # a refusal is raised here: nothing is kept
            if key:
                self.idempotency[(user, account, key)] = {"at": self.wall(), "answer": answer,
                                                          "body": body}
            raise Reply(202, answer)

    def kept_key(self, user, account, key):
        """What a key is kept with, or None: no key, never kept, or kept more than 24 hours ago."""
        if not key:
            return None
        kept = self.idempotency.get((user, account, key))
        if kept is None:
            return None
        if kept["at"] <= self.wall() - DAY:
            return None
        return kept

    def _start(self, account, body):
        """The 202's answer for the import this body creates or resumes; a refusal is a Reply."""
        if not isinstance(body, dict):
            raise Reply(400, envelope("VALIDATION_ERROR", "the body must be an object"))
        unknown = sorted(set(body) - {"datasetId", "tagName", "importId"})
        if unknown:
            raise Reply(400, envelope("VALIDATION_ERROR", "unknown key %s" % unknown[0]))
        dataset, tag, import_id = body.get("datasetId"), body.get("tagName"), body.get("importId")
        if not isinstance(dataset, str) or not dataset:
            raise Reply(400, envelope("VALIDATION_ERROR", "datasetId must be a non-empty string"))
        if not isinstance(tag, str) or not tag.strip() or len(tag) > 100:
            raise Reply(400, envelope("VALIDATION_ERROR", "tagName must be 1 to 100 characters, not blank"))
        if import_id is not None and (not isinstance(import_id, int) or isinstance(import_id, bool) or import_id < 1):
            raise Reply(400, envelope("VALIDATION_ERROR", "importId must be a positive integer"))
        if dataset not in DATASETS or account not in DATASETS[dataset][4]:
            raise Reply(422, envelope("VALIDATION_ERROR", "dataset %s is not accessible to this account" % dataset))
        if import_id is not None:
            record = self.imports.get(import_id)
            if record is None or record["account"] != account:
                raise Reply(404, envelope("NOT_FOUND", "import %d is unknown to this account" % import_id))
            if record["enqueued"] is not None:
                raise Reply(409, envelope("CONFLICT", "import %d is already enqueued" % import_id, importId=import_id))
        else:
            import_id = self.next_id
            self.next_id += 1
            record = {"id": import_id, "account": account}
            self.imports[import_id] = record
        record.update(dataset=dataset, tag=tag, enqueued=self.elapsed(), runRef="run_" + secrets.token_hex(8).upper())
        return {"importId": import_id, "runRef": record["runRef"]}

    def status(self, account, import_id):
        with self.lock:
            record = self.imports.get(import_id)
            if record is None or record["account"] != account:
                raise Reply(404, envelope("NOT_FOUND", "import %s is unknown to this account" % import_id))
            now = time.monotonic() + self.skipped
            last = self.last_poll.get((account, import_id))
            if last is not None and now - last < self.min_poll_interval:
                wait = max(1, int(self.min_poll_interval - (now - last) + 0.999))
                raise Reply(429, envelope("RATE_LIMITED", "poll at most once a second", retry_after_seconds=wait),
                            {"Retry-After": str(wait)})
            self.last_poll[(account, import_id)] = now
            return self.snapshot(record)

    def snapshot(self, record):
        status = {"importId": record["id"], "phase": "draft", "percent": None, "counts": None, "error": None,
                  "tagName": record["tag"], "datasetId": record["dataset"]}
        if record["enqueued"] is None:
            return status
        total, prepare, run, outcome, _ = DATASETS[record["dataset"]]
        age = self.elapsed() - record["enqueued"]
        if age < DRAFT_SECONDS:
            return status                # enqueued, not picked up yet: still a draft
        if age < prepare:
            status["phase"] = "preparing"
            return status
        done = min(1.0, (age - prepare) / run)
        if outcome == "failed" and done >= FAILED_AT:
            status.update(phase="failed", error={"code": "DATASET_UNREADABLE",
                                                 "message": "the dataset could not be read past row %d"
                                                            % int(total * FAILED_AT)})
            done = FAILED_AT
        elif done >= 1.0:
            status["phase"] = outcome
            if outcome == "partial":
                status["error"] = {"code": "SOME_CONTACTS_FAILED",
                                   "message": "%d contacts could not be imported" % (total // 10)}
        else:
            status["phase"] = "in_progress"
        processed = int(total * done)
        skipped = processed // 30
        failed = processed // 10 if outcome == "partial" else 0
        status["percent"] = int(done * 100)
        status["counts"] = {"total": total, "imported": processed - skipped - failed, "skipped": skipped,
                            "failed": failed}
        return status

    # -- login
    def authorize(self, params, decision, user):
        redirect_uri = params.get("redirect_uri", "")
        target = urlsplit(redirect_uri)
        if params.get("client_id") != CLIENT_ID or params.get("response_type") != "code":
            raise Reply(400, "client_id must be landbase-cli and response_type code")
        if target.scheme != "http" or target.hostname not in ("127.0.0.1", "localhost", "::1") \
                or target.path != "/callback":
            raise Reply(400, "redirect_uri must be http://127.0.0.1:{port}/callback")
        if params.get("code_challenge_method") != "S256" or len(params.get("code_challenge", "")) != 43:
            raise Reply(400, "PKCE with S256 is required")
        if not params.get("state"):
            raise Reply(400, "state is required")
        if decision is None:
            return None
        if decision != "approve":
            answer = {"error": "access_denied", "state": params["state"]}
        else:
            code = secrets.token_urlsafe(24)
            with self.lock:
                self.codes[code] = {"user": user if user in USERS else "usr_demo", "redirect_uri": redirect_uri,
                                    "challenge": params["code_challenge"], "expires": self.wall() + 600}
            answer = {"code": code, "state": params["state"]}
        return redirect_uri + "?" + urlencode(answer)

    def exchange(self, body):
        if not isinstance(body, dict) or body.get("client_id") != CLIENT_ID:
            raise Reply(400, envelope("INVALID_CLIENT", "client_id must be landbase-cli"))
        grant = body.get("grant_type")
        with self.lock:
            if grant == "authorization_code":
                entry = self.codes.pop(body.get("code"), None)
                if entry is None or entry["expires"] < self.wall():
                    raise Reply(400, envelope("INVALID_GRANT", "the code is unknown, used or expired"))
                verifier = body.get("code_verifier") or ""
                digest = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
                if digest != entry["challenge"] or body.get("redirect_uri") != entry["redirect_uri"]:
                    raise Reply(400, envelope("INVALID_GRANT", "code_verifier or redirect_uri does not match"))
                return self.token_response(entry["user"])
            if grant == "urn:ietf:params:oauth:grant-type:device_code":
                entry = self.devices.get(body.get("device_code"))
                if entry is None:
                    raise Reply(400, envelope("INVALID_GRANT", "unknown device code"))
                now = time.monotonic() + self.skipped
                if entry["expires"] < self.wall():
                    raise Reply(400, envelope("EXPIRED_TOKEN", "the device code expired"))
                if entry["state"] == "denied":
                    raise Reply(400, envelope("ACCESS_DENIED", "the login was denied"))
                if entry["state"] == "approved":
                    del self.devices[body["device_code"]]
                    return self.token_response(entry["user"])
                too_soon = entry["polled"] is not None and now - entry["polled"] < entry["interval"] - 0.5
                entry["polled"] = now
                if too_soon:
                    entry["interval"] += 5
                    raise Reply(400, envelope("SLOW_DOWN", "poll less often"))
                raise Reply(400, envelope("AUTHORIZATION_PENDING", "waiting for the user"))
        raise Reply(400, envelope("UNSUPPORTED_GRANT_TYPE", "unknown grant_type"))

    def device(self, body, web):
        if not isinstance(body, dict) or body.get("client_id") != CLIENT_ID:
            raise Reply(400, envelope("INVALID_CLIENT", "client_id must be landbase-cli"))
        alphabet = "BCDFGHJKLMNPQRSTVWXZ"
        user_code = "".join(secrets.choice(alphabet) for _ in range(8))
        user_code = user_code[:4] + "-" + user_code[4:]
        device_code = secrets.token_urlsafe(24)
        with self.lock:
            self.devices[device_code] = {"user_code": user_code, "state": "pending", "user": "usr_demo",
                                         "expires": self.wall() + 600, "interval": self.device_interval,
                                         "polled": None}
        uri = web + "/cli/device"
        return {"deviceCode": device_code, "userCode": user_code, "verificationUri": uri,
                "verificationUriComplete": uri + "?" + urlencode({"user_code": user_code}),
                "interval": self.device_interval, "expiresIn": 600}

    def decide_device(self, user_code, decision, user):
        with self.lock:
            for entry in self.devices.values():
                if entry["user_code"] == (user_code or "").strip().upper() and entry["state"] == "pending":
                    entry["state"] = "approved" if decision == "approve" else "denied"
                    entry["user"] = user if user in USERS else "usr_demo"
                    return entry["state"]
        return None


PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>{title}</title>
<style>body{{font-family:sans-serif;max-width:32em;margin:4em auto}}button{{font-size:1.1em;margin-right:1em}}</style>
</head><body><h1>{title}</h1>{content}</body></html>"""


class Handler(BaseHTTPRequestHandler):
    server_version = "LandbaseSandbox/1.0"
    own_date = None                      # a Date the answer being sent brings itself (keep_date())

    def send_header(self, keyword, value):
        """Any header a test asks for, in UTF-8 where latin-1 cannot hold it (a hostile Retry-After: \u0663)."""
        try:
            BaseHTTPRequestHandler.send_header(self, keyword, value)
        except UnicodeEncodeError:
            if not hasattr(self, "_headers_buffer"):
                self._headers_buffer = []
            self._headers_buffer.append(("%s: %s\r\n" % (keyword, value)).encode("utf-8", "surrogatepass"))

    def log_message(self, fmt, *args):
        if not self.server.quiet:
            sys.stderr.write("sandbox: %s\n" % (fmt % args))

    def do_GET(self):
        self.dispatch("GET")

    def do_POST(self):
        self.dispatch("POST")

    def dispatch(self, method):
        platform = self.server.platform
        self.own_date = None
        parts = urlsplit(self.path)
        path = parts.path.rstrip("/") or "/"
        with platform.lock:
            platform.requests.append((method, path, dict(self.headers)))
        route, handler = self.route(method, path)
        fault = platform.take_fault(route) if route else None
        with platform.lock:
            platform.in_flight += 1
            platform.most_in_flight = max(platform.most_in_flight, platform.in_flight)
        try:
            if fault is not None and self.fault(fault, route, handler, parts):
                return
            if handler is None:
                raise Reply(404, envelope("NOT_FOUND", "no route %s %s" % (method, path)))
            status, body, headers = handler(parts)
        except Reply as reply:
            status, body, headers = reply.status, reply.body, reply.headers
        finally:
            with platform.lock:
                platform.in_flight -= 1
        self.answer(status, body, headers)

    def route(self, method, path):
        pieces = path.strip("/").split("/")
        table = {
            ("GET", "/v1/me"): ("me", self.me),
            ("GET", "/v1/accounts"): ("accounts", self.accounts),
            ("POST", "/v1/oauth/token"): ("token", self.token),
            ("POST", "/v1/oauth/device"): ("device", self.device),
            ("POST", "/v1/oauth/revoke"): ("revoke", self.revoke),
            ("GET", "/cli/authorize"): ("authorize", self.authorize_page),
            ("POST", "/cli/authorize"): ("authorize", self.authorize_decision),
            ("GET", "/cli/device"): ("device-page", self.device_page),
            ("POST", "/cli/device"): ("device-page", self.device_decision),
            ("POST", "/_sandbox/control"): (None, self.control),
        }
        if (method, path) in table:
            return table[(method, path)]
        if len(pieces) >= 4 and pieces[:2] == ["v1", "accounts"] and pieces[3] == "contacts-imports":
            if method == "POST" and len(pieces) == 4:
                return "start", self.start
            if method == "GET" and len(pieces) == 5:
                return "status", self.status
        return None, None

    # -- faults
    def fault(self, fault, route, handler, parts):
        """Answer with the fault; False when the fault only delays the real answer."""
        if fault.get("delay"):
            time.sleep(float(fault["delay"]))
            if set(fault) == {"delay"}:
                return False
        if fault.get("reset"):
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            self.close_connection = True
            self.connection.close()
            return True
        if fault.get("redirect"):
            self.answer(fault.get("status", 302), None, {"Location": fault["redirect"]})
            return True
        if fault.get("endless"):
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            chunk = b"%x\r\n%s\r\n" % (65536, b" " * 65536)
            self.close_connection = True
            try:
                self.wfile.write(b"1\r\n{\r\n")
                while True:
                    self.wfile.write(chunk)
            except OSError:
                return True
        if fault.get("drip") or fault.get("size"):
            status, body, headers = self.real_answer(handler, parts)
            if fault.get("size"):
                status, body = 200, body if isinstance(body, dict) else {"body": body}
            raw = json.dumps(body).encode()
            size = max(int(fault.get("size") or 0), len(raw))
            headers = self.keep_date(headers)
            headers["Date"] = self.date_time_string()        # a head of its own, with the standard Date
            head = ("HTTP/1.1 %d X\r\nContent-Type: application/json\r\nContent-Length: %d\r\n%s"
                    "Connection: close\r\n\r\n" % (status, size, "".join("%s: %s\r\n" % item for item in
                                                                        headers.items()))).encode()
            self.close_connection = True
            try:
                if fault.get("drip"):
                    for byte in head + raw:
                        self.wfile.write(bytes([byte]))
                        self.wfile.flush()
                        time.sleep(float(fault["drip"]))
                    return True
                self.wfile.write(head + raw[:-1])           # the padding goes before the closing brace
                pad, left = b" " * 65536, size - len(raw)
                while left > 0:
                    self.wfile.write(pad[:left])
                    left -= len(pad)
                self.wfile.write(raw[-1:])
            except OSError:
                pass
            return True
        if "raw" in fault:
            self.send_bytes(fault.get("status", 200), fault["raw"].encode("utf-8", "surrogatepass"),
                            "application/json", fault.get("headers"))
            return True
        if "json" in fault:
            self.answer(fault.get("status", 200), fault["json"], fault.get("headers"), as_json=True)
            return True
        if fault.get("truncate") or fault.get("drop"):
            status, body, _ = self.real_answer(handler, parts)
            raw = json.dumps(body).encode()
            cut = raw[:max(1, len(raw) // 2)]
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw) if fault.get("drop") else len(cut)))
            self.end_headers()
            self.wfile.write(cut)
            self.wfile.flush()
            self.close_connection = True
            return True
        if "status" in fault:
            body = fault.get("body", "<html><body><h1>%d</h1>proxy error</body></html>" % fault["status"])
            raw = body.encode() if isinstance(body, str) else json.dumps(body).encode()
            self.send_bytes(fault["status"], raw, fault.get("content_type", "text/html" if isinstance(body, str)
                                                            else "application/json"), fault.get("headers"))
            return True
        return False

    def date_time_string(self, timestamp=None):
        """The standard Date header's value, or the one the answer's own headers bring (a test that skews the
        platform's clock): an answer has one Date, never two."""
        return self.own_date or BaseHTTPRequestHandler.date_time_string(self, timestamp)

    def keep_date(self, headers):
        """The answer's headers without Date, which date_time_string() sends in the standard one's place."""
        dates = [value for name, value in (headers or {}).items() if name.lower() == "date"]
        self.own_date = dates[-1] if dates else None
        return {name: value for name, value in (headers or {}).items() if name.lower() != "date"}

    def send_bytes(self, status, raw, content_type, headers=None):
        headers = self.keep_date(headers)
        self.send_response(status)      # Server and Date
        if content_type:
            self.send_header("Content-Type", content_type)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def real_answer(self, handler, parts):
        try:
            return handler(parts) if handler else (200, {"truncated": "yes"}, {})
        except Reply as reply:
            return reply.status, reply.body, reply.headers

    # -- plumbing
    def answer(self, status, body, headers=None, as_json=False):
        if isinstance(body, str) and not as_json:
            raw, kind = body.encode("utf-8"), "text/html; charset=utf-8"
        elif body is None:
            raw, kind = b"", None
        else:
            raw, kind = json.dumps(body).encode(), "application/json"
        try:
            self.send_bytes(status, raw, kind, headers)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def json_body(self):
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            return json.loads(raw.decode("utf-8")) if raw else None
        except ValueError:
            raise Reply(400, envelope("VALIDATION_ERROR", "the body is not JSON"))

    def form_body(self):
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length).decode("utf-8", "replace") if length else ""
        return {key: values[0] for key, values in parse_qs(raw).items()}

    def web(self):
        host, port = self.server.server_address[:2]
        return "%s://%s:%d" % (self.server.scheme, "127.0.0.1" if host == "0.0.0.0" else host, port)

    def page(self, status, title, content):
        return status, PAGE.format(title=html.escape(title), content=content), {}

    # -- API routes
    def me(self, parts):
        platform = self.server.platform
        user, token = platform.user_of(self.headers)
        with platform.lock:
            expires = platform.tokens[token]["expires"]
        return 200, {"userId": user, "email": USERS[user]["email"], "expiresAt": format_time(expires)}, {}

    def accounts(self, parts):
        user, _ = self.server.platform.user_of(self.headers)
        return 200, {"accounts": [{"id": a, "name": ACCOUNTS[a]} for a in USERS[user]["accounts"]]}, {}

    def start(self, parts):
        platform = self.server.platform
        user, _ = platform.user_of(self.headers)
        account = platform.account_of(user, parts.path.strip("/").split("/")[2])
        platform.start(user, account, self.json_body(), self.headers.get("Idempotency-Key"))

    def status(self, parts):
        platform = self.server.platform
        user, _ = platform.user_of(self.headers)
        pieces = parts.path.strip("/").split("/")
        account = platform.account_of(user, pieces[2])
        if not pieces[4].isdigit():
            raise Reply(404, envelope("NOT_FOUND", "import %s is unknown" % pieces[4]))
        return 200, platform.status(account, int(pieces[4])), {}

    def token(self, parts):
        return 200, self.server.platform.exchange(self.json_body()), {}

    def device(self, parts):
        return 200, self.server.platform.device(self.json_body(), self.web()), {}

    def revoke(self, parts):
        platform = self.server.platform
        _, token = platform.user_of(self.headers)
        with platform.lock:
            platform.tokens[token]["revoked"] = True
        return 204, None, {}

    def control(self, parts):
        """Test controls for a sandbox run as a separate process."""
        body = self.json_body() or {}
        platform = self.server.platform
        if "advance" in body:
            platform.advance(float(body["advance"]))
        if body.get("fault"):
            platform.inject(body["route"], body["fault"], int(body.get("times", 1)))
        if body.get("dropHandshakes"):
            platform.drop_handshakes = int(body["dropHandshakes"])
        if body.get("expireTokens"):
            platform.expire_tokens()
        if body.get("mintToken"):
            ttl = None if body.get("ttl") is None else float(body["ttl"])
            return 200, {"accessToken": platform.mint_token(body["mintToken"], ttl)}, {}
        return 200, {"ok": True}, {}

    # -- web pages
    def authorize_page(self, parts):
        params = {key: values[0] for key, values in parse_qs(parts.query).items()}
        try:
            self.server.platform.authorize(params, None, None)
        except Reply as reply:
            return self.page(400, "Sign-in request refused", "<p>%s</p>" % html.escape(str(reply.body)))
        hidden = "".join('<input type="hidden" name="%s" value="%s">' % (html.escape(k), html.escape(v))
                         for k, v in sorted(params.items()))
        users = "".join('<option value="%s">%s</option>' % (u, USERS[u]["email"]) for u in USERS)
        content = ('<p>The command-line tool on <b>%s</b> asks to sign in to Landbase.</p>'
                   '<form method="post" action="/cli/authorize">%s<p>Signed in as <select name="user">%s</select></p>'
                   '<button type="submit" name="decision" value="approve" id="approve">Approve</button>'
                   '<button type="submit" name="decision" value="deny" id="deny">Deny</button></form>'
                   % (html.escape(params.get("device_name", "an unnamed device")), hidden, users))
        return self.page(200, "Sign in to Landbase", content)

    def authorize_decision(self, parts):
        form = self.form_body()
        try:
            target = self.server.platform.authorize(form, form.get("decision"), form.get("user"))
        except Reply as reply:
            return self.page(400, "Sign-in request refused", "<p>%s</p>" % html.escape(str(reply.body)))
        return 302, None, {"Location": target}

    def device_page(self, parts):
        params = {key: values[0] for key, values in parse_qs(parts.query).items()}
        content = ('<form method="post" action="/cli/device"><p>Enter the code shown in your terminal:</p>'
                   '<input name="user_code" value="%s" autocomplete="off"> '
                   '<button type="submit" name="decision" value="approve" id="approve">Approve</button>'
                   '<button type="submit" name="decision" value="deny" id="deny">Deny</button></form>'
                   % html.escape(params.get("user_code", "")))
        return self.page(200, "Connect a device", content)

    def device_decision(self, parts):
        form = self.form_body()
        state = self.server.platform.decide_device(form.get("user_code"), form.get("decision"), form.get("user"))
        if state is None:
            return self.page(400, "Unknown code", "<p>That code is unknown or already used.</p>")
        return self.page(200, "Device %s" % state, "<p>You can return to the terminal.</p>")


class Server(socketserver.ThreadingMixIn, HTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    tls = None                           # an ssl.SSLContext to serve https

    def get_request(self):
        connection, address = self.socket.accept()
        with self.platform.lock:
            self.platform.connections += 1
            drop = self.tls is not None and self.platform.drop_handshakes > 0
            self.platform.drop_handshakes -= drop
        if drop:                         # the handshake is cut short: the client sees EOF
            connection.close()
            raise OSError("handshake dropped on purpose")
        if self.tls is not None:         # a failed handshake raises OSError, which drops the connection
            connection = self.tls.wrap_socket(connection, server_side=True)
        return connection, address

    def handle_error(self, request, client_address):
        """A client that went away (reset, timed out, its TLS cut short) is no error of the sandbox's: it says
        nothing, as answer() does when a write fails; anything else is printed, and a test that sees it fails."""
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)


class Sandbox:
    """The platform on 127.0.0.1 in a background thread: Sandbox(...).start(); .url; .stop()."""

    def __init__(self, port=0, quiet=True, certfile=None, **options):
        self.platform = Platform(**options)
        self.server = Server(("127.0.0.1", port), Handler)
        self.server.platform = self.platform
        self.server.quiet = quiet
        self.server.scheme = "http"
        if certfile:
            import ssl
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER) if hasattr(ssl, "PROTOCOL_TLS_SERVER") \
                else ssl.SSLContext(ssl.PROTOCOL_TLS)
            context.load_cert_chain(certfile)
            self.server.tls = context
            self.server.scheme = "https"
        self.url = "%s://127.0.0.1:%d" % (self.server.scheme, self.server.server_address[1])
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05})
        self.thread.daemon = True

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def parse_fault(text):
    route, _, spec = text.partition("=")
    route, _, times = route.partition("*")
    try:
        return route, json.loads(spec), int(times or 1)
    except ValueError as exc:
        raise argparse.ArgumentTypeError("--fault takes ROUTE[*N]=JSON, e.g. status*2={\"status\": 502}: %s" % exc)


BY_HAND = """\
By hand (make sandbox runs it on port 8765; URL below is the first line it prints):

  It prints the environment that points the tool at it, to paste into another shell:
%(environment)s

  Seeded: the users usr_demo (sam@acme.example; accounts acc_demo "Demo Co", acc_team "Demo Team") and
  usr_solo (solo@acme.example; acc_solo "Solo Ltd"); acc_other "Other Corp" belongs to nobody here.
  Import 1 is a draft in acc_demo ({"importId": 1} in a body resumes it). New sessions last --token-ttl
  (7 days). The datasets, how an import of each ends and when, at --speed 1 (--speed 10: a tenth of it;
  an import is a draft for its first second, then preparing, then in_progress), and who can read them:
%(datasets)s

  Log in:
    browser  landbase_import.py auth login opens (or with --no-browser prints) $URL/cli/authorize?...:
             pick the user and press Approve; the page sends the browser back to the tool.
    device   landbase_import.py auth login --device prints a code: open $URL/cli/device, type it and
             press Approve, or: curl -d user_code=WDJB-MJHT -d decision=approve $URL/cli/device
             (add -d user=usr_solo to log in as usr_solo; decision=deny refuses).
    token    curl -s -d '{"mintToken": "usr_demo"}' $URL/_sandbox/control answers {"accessToken": "lbs_..."}:
             echo lbs_... | landbase_import.py auth login --with-token. With "ttl": 129600 in the object,
             the session ends in 36 hours (auth status --min-valid 2d exits 3; under 24 h, every command warns).

  Control it while it runs (POST /_sandbox/control, a JSON object; each answers {"ok": true}):
    curl -s -d '{"route": "status", "fault": {"status": 502}, "times": 2}' $URL/_sandbox/control
             the next 2 status reads answer 502 (any fault below, any route)
    curl -s -d '{"advance": 86400}' $URL/_sandbox/control     the platform's clock a day on
             (imports, sessions, Idempotency-Keys: a key is kept 24 hours, for a 202 only)
    curl -s -d '{"expireTokens": true}' $URL/_sandbox/control every session ends now: the tool exits 3
    curl -s -d '{"dropHandshakes": 1}' $URL/_sandbox/control  (https, with --certfile) the next TLS handshake fails

"""


def environment(url, indent=""):
    """The lines that point the tool at a sandbox, for a shell: every variable a user needs. The
    config directory is a fixed one, not a temporary one, so that a crontab can name it too
    (README: Cron)."""
    lines = ("export LANDBASE_PLATFORM_API_URL=%s LANDBASE_PLATFORM_WEB_URL=%s" % (url, url),
             "export NO_PROXY=127.0.0.1,localhost no_proxy=127.0.0.1,localhost",
             "export LANDBASE_CONFIG_DIR=$HOME/.landbase-sandbox"
             "    # its sessions, apart from ~/.landbase")
    return "".join(indent + line + "\n" for line in lines)


def dataset_lines():
    """The datasets as BY_HAND lists them, from the table the platform runs on."""
    lines = []
    for name, (contacts, preparing, running, outcome, readers) in DATASETS.items():
        ends = preparing + running * (FAILED_AT if outcome == "failed" else 1)
        took = "%d h %d s" % divmod(ends, 3600) if ends >= 3600 else "%d s" % ends
        who = ", ".join(readers) if len(readers) > 1 else "%s only: VALIDATION_ERROR elsewhere" % readers[0]
        lines.append("    %-12s %5d contacts, %-9s after %-8s (%s)" % (name, contacts, outcome, took, who))
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(
        description="A fake Landbase platform on 127.0.0.1, for the demo, the tests and trying the tool by hand: "
                    "the API and the login pages of tests/PROTOCOL.md, from one URL.",
        epilog=BY_HAND % {"environment": environment("$URL", "    "), "datasets": dataset_lines()}
        + __doc__[__doc__.index("Fault routes"):__doc__.index("A sandbox run as a process")],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--speed", type=float, default=1.0, help="platform seconds per real second")
    parser.add_argument("--token-ttl", type=float, default=7 * DAY, help="lifetime of new tokens, in seconds")
    parser.add_argument("--min-poll-interval", type=float, default=1.0,
                        help="a status poll of one import sooner than this is answered 429")
    parser.add_argument("--device-interval", type=int, default=5, help="the device flow's polling interval")
    parser.add_argument("--certfile", help="serve https with this PEM (certificate and key)")
    parser.add_argument("--fault", action="append", type=parse_fault, default=[], metavar="ROUTE[*N]=JSON")
    parser.add_argument("--quiet", action="store_true", help="do not log requests")
    args = parser.parse_args(argv)
    sandbox = Sandbox(port=args.port, quiet=args.quiet, certfile=args.certfile, speed=args.speed,
                      token_ttl=args.token_ttl, min_poll_interval=args.min_poll_interval,
                      device_interval=args.device_interval)
    for route, fault, times in args.fault:
        sandbox.platform.inject(route, fault, times)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    sandbox.start()
    sys.stdout.write(sandbox.url + "\n")
    sys.stdout.flush()
    sys.stderr.write("sandbox: serving %s (speed %g); Ctrl-C stops it. Point the tool at it with:\n%s"
                     % (sandbox.url, args.speed, environment(sandbox.url)))
    sys.stderr.flush()
    while not stop.wait(0.2):
        pass
    sandbox.stop()
    sys.stderr.write("sandbox: stopped\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

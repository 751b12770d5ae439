"""The server side of the fuzzer: seeded mutations of the platform's answers, a hostile server, an oracle.

generate(seed) returns a list of Case: one command of the tool (status, wait, start, auth status,
account list, auth login --with-token, auth login --device) and the answers one route of the
platform gives it (start, status, me, accounts, token or device), mutated; every other route
answers as the HTTP protocol.says, so that each case reaches its mutated answer.

HostileServer speaks raw bytes on 127.0.0.1:0 (and a second listener, another origin), so it can
send anything: broken framing, drips, hangs, endless bodies, odd headers, any body.

The oracle (judge, expected, check) is written from the README (its command-line sections and The HTTP protocol) only:
it imports nothing from landbase_import.py and restates the facts it needs (the exit-code table,
the status-to-code table). test_fuzz_server.py runs every case through main() and asserts check().
"""

import calendar
import email.utils
import json
import random
import re
import select
import socket
import socketserver
import threading
import time
import unicodedata
from http.client import responses as REASONS
from urllib.parse import urljoin, urlsplit

SEED = 20261129
TIMEOUT = 0.25                  # --timeout of the cases whose answers hang or drip (the "slow" family)
ROOMY_TIMEOUT = 5.0             # and of the others, which answer at once: a 3 MiB answer read on a loaded
                                # machine may take longer than 0.25 s, and must not turn into a TIMEOUT
# The bounds below catch a hang (a drip or an endless body outlives them many times over) while leaving
# room for a 2-core machine running two interpreters' suites at once (make test-all), where a request
# that takes 2 ms alone can take a second.
MARGIN = 1.0                    # what a request may take on top of --timeout, the tool's own work included
CASE_BASE = 2.0                 # and a case on top of its requests
SLOW_CAP = TIMEOUT + 1.0        # a drip or hang the client has not left by then outlived its --timeout
ACCOUNT = "acc_demo"
IMPORT_ID = 7
MIB = 1024 * 1024
MAX_DEPTH = 64                  # the HTTP protocol (README): a document nested deeper is not strict JSON
BODY_CAP = 4 * MIB              # the HTTP protocol (README): an answer body over 4 MiB is not read further
ENDLESS_BYTES = 32 * MIB        # an endless body the client has taken this far was read past the cap
WEB = "https://platform.landbase.com"
WAIT_LIMIT = 30 * 60            # the README: wait gives up 30 minutes after it began
DEVICE_LIMIT = 15 * 60          # the README: device login gives up within 15 minutes, whatever the server says
LONG_RETRY_AFTER = 60           # a Retry-After above this may make a one-shot command give up

# ---- facts restated from the README (never imported from the tool)

EXIT_CODES = {
    "INVALID_INPUT": 1, "VALIDATION_ERROR": 1, "SETUP_FAILED": 1,
    "NOT_FOUND": 2, "CONFLICT": 2, "API_ERROR": 2, "RATE_LIMITED": 2, "UPGRADE_REQUIRED": 2,
    "IMPORT_FAILED": 2, "IMPORT_PARTIAL": 2, "OUTPUT_FAILED": 2,
    "AUTH_REQUIRED": 3, "AUTH_FAILED": 3,
    "TIMEOUT": 4, "NETWORK_ERROR": 4,
    "INTERRUPTED": 130, "TERMINATED": 143,
}
SERVER_CODES = ("VALIDATION_ERROR", "NOT_FOUND", "CONFLICT", "API_ERROR", "RATE_LIMITED", "UPGRADE_REQUIRED",
                "AUTH_FAILED")     # codes a platform envelope may carry and that then win over the status
BY_STATUS = {400: "VALIDATION_ERROR", 422: "VALIDATION_ERROR", 401: "AUTH_FAILED", 403: "NOT_FOUND",
             404: "NOT_FOUND", 409: "CONFLICT", 426: "UPGRADE_REQUIRED", 429: "RATE_LIMITED"}
TERMINAL = {"completed": "OK", "partial": "IMPORT_PARTIAL", "failed": "IMPORT_FAILED"}
STATUS_KEYS = ("importId", "phase", "percent", "counts", "error")
COUNT_KEYS = ("total", "imported", "skipped", "failed")
GRANT_PENDING = ("AUTHORIZATION_PENDING", "SLOW_DOWN")
GRANT_STOP = ("ACCESS_DENIED", "EXPIRED_TOKEN")
ACCOUNT_RE = re.compile(r"[A-Za-z0-9_-]{1,64}\Z")
MARKER = "FORGED"               # hostile text puts this after a line break: no output line may begin with it

COMMANDS = {
    "status": ["contacts-import", "status", "7"],
    "wait": ["contacts-import", "wait", "7"],
    "start": ["contacts-import", "start", "--json", "-"],
    "auth-status": ["auth", "status"],
    "account-list": ["account", "list"],
    "with-token": ["auth", "login", "--with-token"],
    "device": ["auth", "login", "--device"],
}
SESSION_COMMANDS = ("status", "wait", "start", "auth-status", "account-list")
START_BODY = b'{"datasetId": "ds_demo", "tagName": "server fuzz"}'

# (route, command, cases)
PLAN = [("status", "status", 530), ("status", "wait", 220), ("start", "start", 330),
        ("me", "auth-status", 290), ("me", "with-token", 70), ("accounts", "account-list", 280),
        ("accounts", "with-token", 50), ("token", "device", 170), ("device", "device", 90)]


# ---------------------------------------------------------------- JSON text with anything in it

class Raw:
    """Literal JSON text (NaN, 1e999, a deep nest) placed where a value goes."""

    def __init__(self, text):
        self.text = text

    def __repr__(self):
        return "Raw(%r)" % self.text[:40]


class Pairs(list):
    """A JSON object as ordered pairs, so that it can repeat a key."""


def dump(value, ascii_only=True, compact=False):
    comma, colon = (",", ":") if compact else (", ", ": ")
    if isinstance(value, Raw):
        return value.text
    if isinstance(value, (Pairs, dict)):
        items = value if isinstance(value, Pairs) else list(value.items())
        return "{" + comma.join(json.dumps(k, ensure_ascii=ascii_only) + colon + dump(v, ascii_only, compact)
                                for k, v in items) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + comma.join(dump(v, ascii_only, compact) for v in value) + "]"
    return json.dumps(value, ensure_ascii=ascii_only)


def encode(text):
    return text.encode("utf-8", "surrogatepass")


# ---------------------------------------------------------------- answers on the wire

class Answer:
    """One HTTP answer as bytes, with the framing and the behaviour of the connection.

    transport is what HTTP makes of the framing, for the oracle: None (the body below is what a
    client reads), "net" (a broken answer: a transient network failure or broken answer),
    "timeout" (the answer never completes in time), "unknown" (HTTP leaves the client a choice)."""

    def __init__(self, status=200, body=b"", headers=(), framing="length", content_type="application/json",
                 action=None, transport=None, status_line=None, prefix=b"", chunks=None, note=""):
        self.status = status
        self.body = body if isinstance(body, bytes) else encode(body)
        self.headers = list(headers)
        self.framing = framing
        self.content_type = content_type
        self.action = action
        self.transport = transport
        self.status_line = status_line
        self.prefix = prefix
        self.chunks = chunks
        self.note = note
        self.raw = b""              # the whole answer, for action "raw"

    def header_values(self, name):
        return [value for key, value in self.headers if key.lower() == name.lower()]

    def seen_body(self):
        """The body a client that follows HTTP reads, when transport is None."""
        if self.framing == "cl-long":
            return self.body[:max(0, len(self.body) - 7)]
        return self.body

    def wire(self, bases=None):
        """(head, body) bytes; {SELF}, {OTHER}, {PORT} in header values become the servers' addresses."""
        line = self.status_line
        if line is None:
            line = b"HTTP/1.1 %d %s" % (self.status, REASONS.get(self.status, "Whatever").encode())
        lines = [line]
        if self.content_type is not None:
            lines.append(b"Content-Type: " + self.content_type.encode("latin-1"))
        body = self.body
        framing = self.framing
        if framing == "length":
            lines.append(b"Content-Length: %d" % len(body))
        elif framing == "cl-long":
            lines.append(b"Content-Length: %d" % max(0, len(body) - 7))
        elif framing == "cl-short":
            lines.append(b"Content-Length: %d" % (len(body) + 10))
        elif framing.startswith("cl-value:"):
            lines.append(b"Content-Length: " + framing[9:].encode("latin-1"))
        elif framing == "cl-dup":
            lines += [b"Content-Length: %d" % len(body), b"Content-Length: %d" % (len(body) + 5)]
        elif framing.startswith("chunked") or framing == "te+cl":
            lines.append(b"Transfer-Encoding: chunked")
            if framing == "te+cl":
                lines.append(b"Content-Length: %d" % (len(body) // 2))
            body = self.chunked(body, framing)
        elif framing == "te-gzip":
            lines.append(b"Transfer-Encoding: gzip, chunked")
            body = self.chunked(body, "chunked")
        for name, value in self.headers:
            if isinstance(value, str):
                if bases:
                    for key, real in bases.items():
                        value = value.replace(key, real)
                try:
                    value = value.encode("latin-1")         # what HTTP clients decode header bytes as
                except UnicodeEncodeError:
                    value = value.encode("utf-8", "surrogatepass")
            lines.append(name.encode("latin-1") + b": " + value)
        lines.append(b"Connection: close")
        return self.prefix + b"\r\n".join(lines) + b"\r\n\r\n", body

    def chunked(self, body, framing):
        sizes = list(self.chunks or [len(body)])
        out, at = [], 0
        for size in sizes:
            piece = body[at:at + size]
            at += len(piece)
            if piece:
                out.append(b"%x\r\n" % len(piece) + piece + b"\r\n")
        if at < len(body):
            out.append(b"%x;ext=1\r\n" % (len(body) - at) + body[at:] + b"\r\n")
        if framing == "chunked":
            out.append(b"0\r\n\r\n")
        elif framing == "chunked-trailer":
            out.append(b"0\r\nX-Trailer: yes\r\n\r\n")
        elif framing == "chunked-badhex":
            out.insert(0, b"zz\r\n")
        elif framing == "chunked-short":
            out = [b"%x\r\n" % (len(body) + 40) + body]
        elif framing == "chunked-huge":
            out = [b"ffffffffffffffffffff\r\n" + body]
        elif framing == "chunked-negative":
            out = [b"-5\r\n" + body + b"\r\n0\r\n\r\n"]
        # chunked-noend: no last chunk, the connection just closes
        return b"".join(out)

    def describe(self, limit=240):
        head, body = self.wire({"{SELF}": "http://127.0.0.1:PORT", "{OTHER}": "http://127.0.0.1:OTHERPORT",
                                "{PORT}": "PORT"})
        text = head + (body if len(body) <= limit else body[:limit] + b"...(%d bytes)" % len(body))
        shown = repr(text[:limit * 2])
        return ("[%s] " % self.action if self.action else "") + shown


# ---------------------------------------------------------------- the generator

ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789"


def rand_word(rng, n=12):
    return "".join(rng.choices(ALPHABET, k=n))


def iso(epoch):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


HOSTILE = [
    "in_progress\n" + MARKER + " line", "in_progress\r\n" + MARKER, "\r" + MARKER, "x\x1b]0;" + MARKER + "\x07",
    "\x1b[2J\x1b[H" + MARKER, "\x1b[1A\x1b[K" + MARKER, "\x9b31m" + MARKER, "bell\x07 bs\x08 del\x7f nul\x00",
    "line\u2028" + MARKER, "nel\u0085" + MARKER, "\u202e" + MARKER + " reversed", "tab\there", "\x1b[31mred\x1b[0m",
    "p" * 5000, "\u6570\u636e\u5bfc\u5165\u4e2d" * 40, "e\u0301" * 60, "\U0001f600" * 30, "\ud800", "x\udfffy",
    "", " ", "null", "in_progress", "COMPLETED", "completed ", "\u00e9t\u00e9", "\x1b[6n", "\x1bP+q\x1b\\",
]


def echo_texts(token):
    return [token, "token %s is not valid" % token, "Bearer " + token, "rejected: " + token + "\n" + MARKER,
            '{"accessToken": "%s"}' % token, "x" * 300 + token, token + "\x1b[2J"]


class Ctx:
    """What one case's generator knows: the route, the command, the tokens in play."""

    def __init__(self, rng, route, command, now):
        self.rng = rng
        self.route = route
        self.command = command
        self.now = now
        self.tokens = []            # [(kind, token)]: none may ever be printed
        self.stored = self.env = self.stdin = None
        self.server_token = "lbs_" + rand_word(rng) + rand_word(rng)
        if command in SESSION_COMMANDS:
            w = lambda: rand_word(rng)      # noqa: E731
            self.stored = rng.choice([
                lambda: "lbs_" + w() + w(),
                lambda: "lbs_" + w() + "," + w() + ";" + w(),
                lambda: "lbs_" + w() + "&x=" + w() + "'" + w(),
                lambda: "lbs_" + w() + '"' + w() + "\\" + w(),
                lambda: "lbs_" + w() + "%2C" + w()])()
            self.tokens.append(("stored", self.stored))
            if rng.random() < 0.25:
                self.env = rng.choice([lambda: "tok,en;with odd chars/" + w(),
                                       lambda: w() + "+" + w() + "==",
                                       lambda: "lbs_" + w() + ";" + w(),
                                       lambda: "env " + w() + " " + w()])()
                self.tokens.append(("env", self.env))
        if command == "with-token":
            self.stdin = "lbs_" + rand_word(rng) + rand_word(rng)
            self.tokens.append(("stdin", self.stdin))
        if command == "device":
            self.tokens.append(("server", self.server_token))
        self.bearer = self.env or self.stored or self.stdin or self.server_token

    def add_server_token(self, token):
        if isinstance(token, str):
            self.tokens.append(("server", token))
        return token

    # -- valid documents per the HTTP protocol (README), with some variety
    def status_doc(self, phase=None):
        rng = self.rng
        phase = phase or rng.choice(["draft", "preparing", "in_progress", "in_progress", "completed", "partial",
                                     "failed"])
        doc = {"importId": IMPORT_ID, "phase": phase, "percent": None, "counts": None, "error": None}
        if phase not in ("draft", "preparing"):
            doc["percent"] = 100 if phase == "completed" else rng.choice([0, 1, 42, 42.5, 99.9, 100])
            doc["counts"] = rng.choice([{"total": 1000, "imported": 410, "skipped": 10, "failed": 0},
                                        {"total": 1000, "imported": 410},
                                        {"total": None, "imported": None, "skipped": None, "failed": None}, {}])
        if phase in ("partial", "failed"):
            doc["error"] = {"code": "SOME_CONTACTS_FAILED", "message": "100 contacts could not be imported"}
        if rng.random() < 0.3:
            doc["tagName"] = "Q2 outreach"
            doc["datasetId"] = "ds_demo"
        return doc

    def doc(self):
        rng = self.rng
        if self.route == "status":
            return self.status_doc()
        if self.route == "start":
            return {"importId": rng.choice([7, 7, 8, 123456, 2 ** 53]), "runRef": "run_01J9" + rand_word(rng, 8)}
        if self.route == "me":
            doc = {"userId": "usr_123", "email": "sam@acme.example"}
            if rng.random() < 0.8:
                doc["expiresAt"] = iso(self.now + rng.choice([3, 5, 6.5]) * 86400)
            return doc
        if self.route == "accounts":
            names = [("acc_abc123", "Acme Corp"), (ACCOUNT, "Demo Co"), ("acc-team_2", "Team \u00e9"),
                     ("acc_x", "X")]
            picked = rng.sample(names, rng.choice([1, 1, 2, 3, 0]))
            return {"accounts": [{"id": i, "name": n} for i, n in picked]}
        if self.route == "device":
            code = rng.choice(["WDJB-MJHT", "BCDF-GHJK"])
            return {"deviceCode": "dc_" + rand_word(rng), "userCode": code, "verificationUri": WEB + "/cli/device",
                    "verificationUriComplete": WEB + "/cli/device?user_code=" + code,
                    "interval": rng.choice([5, 5, 1, 2, 10]), "expiresIn": rng.choice([600, 900, 300])}
        if self.route == "token":
            return {"accessToken": self.add_server_token("lbs_" + rand_word(rng) + rand_word(rng)),
                    "expiresAt": iso(self.now + 7 * 86400), "accountId": rng.choice([None, None, "acc_solo"])}
        raise ValueError(self.route)

    def ok_status(self):
        if self.route == "start":
            return self.rng.choice([202, 202, 202, 200, 201])
        return self.rng.choice([200] * 8 + [201, 203])

    def answer(self, doc, **kw):
        rng = self.rng
        text = dump(doc, ascii_only=rng.random() < 0.5, compact=rng.random() < 0.3)
        return Answer(kw.pop("status", self.ok_status()), encode(text), **kw)

    def path(self):
        return {"status": "/v1/accounts/%s/contacts-imports/7" % ACCOUNT,
                "start": "/v1/accounts/%s/contacts-imports" % ACCOUNT, "me": "/v1/me",
                "accounts": "/v1/accounts", "token": "/v1/oauth/token", "device": "/v1/oauth/device"}[self.route]


def set_path(doc, path, value):
    node = doc
    for key in path[:-1]:
        if isinstance(node, dict):
            if not isinstance(node.get(key), (dict, list)):
                node[key] = {}
            node = node[key]
        else:
            node = node[key]
    node[path[-1]] = value


def del_path(doc, path):
    node = doc
    for key in path[:-1]:
        node = node[key]
    if isinstance(node, dict):
        node.pop(path[-1], None)
    else:
        del node[path[-1]]


STRING_FIELDS = {
    "status": [("phase",), ("error", "message"), ("error", "code"), ("tagName",)],
    "start": [("runRef",), ("message",)],
    "me": [("userId",), ("email",)],
    "accounts": [("accounts", 0, "name"), ("accounts", 0, "id")],
    "device": [("userCode",), ("verificationUri",), ("verificationUriComplete",), ("deviceCode",)],
    "token": [("accountId",), ("expiresAt",), ("tokenType",)],
}
TYPED_FIELDS = {
    "status": [("importId",), ("phase",), ("percent",), ("counts",), ("error",), ("counts", "total")],
    "start": [("importId",), ("runRef",)],
    "me": [("userId",), ("email",), ("expiresAt",)],
    "accounts": [("accounts",), ("accounts", 0), ("accounts", 0, "id"), ("accounts", 0, "name")],
    "device": [("deviceCode",), ("userCode",), ("verificationUri",), ("interval",), ("expiresIn",)],
    "token": [("accessToken",), ("expiresAt",), ("accountId",)],
}
NUMBER_FIELDS = {
    "status": [("percent",), ("counts", "total"), ("counts", "imported"), ("importId",)],
    "start": [("importId",)],
    "device": [("interval",), ("expiresIn",)],
}
WRONG = [None, True, False, 0, -1, 7, 7.0, 1.5, "7", "", [], {}, [7], {"a": 1}, 2 ** 64, -2 ** 63]
NUMBERS = ["0", "-0", "-0.0", "1e-320", "100", "100.0", "1E2", "99.99999", "100.0000001", "-1", "101", "0.5",
           "9007199254740993", "1" + "0" * 30, "9" * 5000, "1e308", "-1e308", "1.7976931348623157e308", "5e-324",
           "7", "8", "7.0", "7e0", "70e-1"]


def with_accounts(ctx, doc):
    if ctx.route == "accounts" and not doc["accounts"]:
        doc["accounts"].append({"id": "acc_abc123", "name": "Acme Corp"})
    if ctx.route == "status" and doc.get("error") is None and ctx.rng.random() < 0.5:
        doc["phase"] = "failed"
        doc["error"] = {"code": "X", "message": "m"}
    return doc


def fam_valid(ctx):
    doc = ctx.doc()
    rng = ctx.rng
    if rng.random() < 0.4:
        doc["x-extra"] = rng.choice([{"nested": [1, 2, {"a": None}]}, "text", 12, 1.5e300, [], True, "\u00e9" * 10])
    if rng.random() < 0.3:
        items = list(doc.items())
        rng.shuffle(items)
        doc = dict(items)
    answer = ctx.answer(doc)
    if rng.random() < 0.2:
        answer.body = rng.choice([b"\n  ", b" ", b"\t"]) + answer.body + rng.choice([b"\n", b"\r\n", b"   "])
    return [answer]


def fam_types(ctx):
    doc = with_accounts(ctx, ctx.doc())
    set_path(doc, ctx.rng.choice(TYPED_FIELDS[ctx.route]), ctx.rng.choice(WRONG))
    return [ctx.answer(doc)]


def fam_missing(ctx):
    doc = with_accounts(ctx, ctx.doc())
    paths = [p for p in TYPED_FIELDS[ctx.route] if len(p) == 1 or ctx.route != "status"]
    try:
        del_path(doc, ctx.rng.choice(paths))
    except (KeyError, IndexError, TypeError):
        pass
    return [ctx.answer(doc)]


def fam_strings(ctx):
    doc = with_accounts(ctx, ctx.doc())
    set_path(doc, ctx.rng.choice(STRING_FIELDS[ctx.route]), ctx.rng.choice(HOSTILE))
    return [ctx.answer(doc)]


def escaped_forms(token):
    """The token as a server may write it: JSON with every escape it allows, URL-encoded, HTML-escaped."""
    from urllib.parse import quote
    json_u = "".join(ch if ch.isalnum() else "\\u%04x" % ord(ch) for ch in token)
    json_slash = json.dumps(token)[1:-1].replace("/", "\\/")
    return {"json-u": json_u, "json-slash": json_slash, "url": quote(token, safe=""),
            "html": token.replace("&", "&amp;").replace('"', "&quot;").replace("'", "&#39;")}


def fam_echo(ctx):
    """The token the tool sent, echoed in a field, a header, an error message or a redirect."""
    rng = ctx.rng
    token = ctx.bearer
    text = rng.choice(echo_texts(token))
    where = rng.randrange(7)
    doc = with_accounts(ctx, ctx.doc())
    forms = escaped_forms(token)
    if where == 0:
        set_path(doc, rng.choice(STRING_FIELDS[ctx.route]), text)
        return [ctx.answer(doc)]
    if where == 1:
        doc["debug"] = {"authorization": "Bearer " + token, "note": text}
        return [ctx.answer(doc)]
    if where == 2:
        answer = ctx.answer(doc)
        answer.headers += rng.sample([("X-Echo", "Bearer " + token), ("Set-Cookie", "s=" + token + "; Path=/"),
                                      ("WWW-Authenticate", 'Bearer realm="lb", token="%s"' % token),
                                      ("X-Debug", text.replace("\n", " "))], 2)
        return [answer]
    if where == 3:
        status = rng.choice([400, 401, 403, 404, 409, 429, 500, 503])
        body = rng.choice([dump({"error": {"code": BY_STATUS.get(status, "API_ERROR"), "message": text,
                                           "meta": {"token": token}}}),
                           "<html><body>token %s refused</body></html>" % rng.choice([token, forms["html"]]),
                           "upstream said: Authorization: Bearer %s" % token])
        headers = [("Retry-After", "0")] if status in (429, 503) else []
        return [Answer(status, encode(body), headers=headers,
                       content_type="application/json" if body.startswith("{") else "text/html")]
    if where == 4:              # the same string value, written with JSON's other escapes
        form = forms[rng.choice(["json-u", "json-slash"])]
        if rng.random() < 0.5:
            status = rng.choice([401, 403, 500])
            body = '{"error": {"code": "%s", "message": "token %s refused", "meta": {}}}' % (
                BY_STATUS.get(status, "API_ERROR"), form)
            return [Answer(status, encode(body))]
        set_path(doc, rng.choice(STRING_FIELDS[ctx.route]), Raw('"token %s"' % form))
        return [ctx.answer(doc)]
    if where == 5:              # a same-origin redirect that carries it
        return [Answer(rng.choice([307, 308]), b"", content_type=None, headers=[
            ("Location", "{SELF}%s?fuzz-redirected=1&t=%s" % (ctx.path(), rng.choice([forms["url"], token])))])]
    target = rng.choice(["{OTHER}/v1/me?token=" + token, "http://evil.example/?t=" + token,
                         "http://127.0.0.1:99999/?t=" + token, "{OTHER}/?t=" + forms["url"]])
    return [Answer(rng.choice([302, 307]), b"", headers=[("Location", target)], content_type=None)]


def fam_numbers(ctx):
    doc = ctx.doc()
    rng = ctx.rng
    fields = NUMBER_FIELDS.get(ctx.route)
    value = Raw(rng.choice(NUMBERS))
    if fields:
        if ctx.route == "status" and doc["counts"] is None:
            doc["counts"] = {"total": 1}
        set_path(doc, rng.choice(fields), value)
    else:
        doc["n"] = value
    return [ctx.answer(doc)]


def fam_json(ctx):
    """Answers that are not strict JSON, or not JSON at all, or not an object."""
    rng = ctx.rng
    doc = ctx.doc()
    kind = rng.randrange(12)
    if kind == 0:
        fields = NUMBER_FIELDS.get(ctx.route) or [("n",)]
        path = rng.choice(fields + [("extra",)])
        if ctx.route == "status" and path[0] == "counts" and doc["counts"] is None:
            doc["counts"] = {}
        set_path(doc, path, Raw(rng.choice(["NaN", "Infinity", "-Infinity", "1e999", "-1e999", "1E400"])))
        return [ctx.answer(doc)]
    if kind == 1:
        items = list(doc.items())
        key, value = rng.choice(items)
        twin = rng.choice([value, None, "other", 8, {"x": 1}])
        items.insert(rng.randrange(len(items) + 1), (key, twin))
        return [ctx.answer(Pairs(items))]
    if kind == 2 and ctx.route == "status":
        doc["counts"] = Pairs([("total", 5), ("total", 6)])
        return [ctx.answer(doc)]
    text = dump(doc)
    if kind == 3:
        return [Answer(ctx.ok_status(), encode(text[:rng.randrange(len(text))]))]
    if kind == 4:
        return [Answer(ctx.ok_status(), encode(text + rng.choice(["x", "}", "{}", "\x00", "]", " ,", "\n{}"])))]
    if kind == 5:
        return [Answer(ctx.ok_status(), encode(rng.choice([text.replace('"', "'"), text[:-1] + ",}",
                                                           "/* c */" + text, text.replace('"', "", 2)])))]
    if kind == 6:
        return [Answer(ctx.ok_status(), rng.choice([b"", b"null", b"[]", b"7", b'"x"', b"true", b"{}",
                                                     b"[" + encode(text) + b"]", b"<html>maintenance</html>"]),
                       content_type=rng.choice(["application/json", "text/html"]))]
    if kind == 7:
        doc["x"] = Raw('"' + "\\ud800" + '"')
        return [ctx.answer(doc)]
    if kind == 8:
        return [Answer(rng.choice([204, 205]), b"", content_type=None)]
    if kind == 9:
        doc["x"] = Raw('"a\x01b"')
        return [ctx.answer(doc)]
    if kind == 10:
        doc["extra"] = Raw(rng.choice(["tru", "nul", "01", "1.", ".5", "+1", "0x10", "1e", "-"]))
        return [ctx.answer(doc)]
    return [Answer(ctx.ok_status(), encode(text + "\n" + text))]


def fam_encoding(ctx):
    rng = ctx.rng
    doc = ctx.doc()
    text = dump(doc, ascii_only=False)
    kind = rng.randrange(9)
    if kind == 0:
        raw = b"\xef\xbb\xbf" + encode(text)
    elif kind == 1:
        raw = text.encode(rng.choice(["utf-16", "utf-16-le", "utf-16-be", "utf-32"]))
    elif kind == 2:
        raw = encode(text).replace(b'"', b'"\xff', 1)
    elif kind == 3:
        raw = encode(text).replace(b'"', b'"\xc0\xaf', 1)
    elif kind == 4:
        raw = encode(text).replace(b'"', b'"\xed\xa0\x80', 1)
    elif kind == 5:
        raw = encode(text).replace(b'"', b'"caf\xe9 ', 1)
    elif kind == 6:
        raw = encode(dump(dict(doc, note="\u00e9\u6570\U0001f600"), ascii_only=False))
    elif kind == 7:
        raw = encode(text).replace(b'"', b'"\x00', 1)
    else:
        raw = encode(text) + b"\x00"
    answer = Answer(ctx.ok_status(), raw)
    if rng.random() < 0.3:
        answer.content_type = rng.choice(["application/json; charset=utf-16", "application/json; charset=latin-1",
                                          "application/json; charset=utf-8"])
    return [answer]


def fam_nesting(ctx):
    rng = ctx.rng
    doc = ctx.doc()
    depth = rng.choice([20, 100, 150, 1000, 5000, 100000])
    nest = rng.choice([("[" * depth, "]" * depth), ('{"a":' * depth + "1", "}" * depth)])
    where = rng.choice([("deep",), ("counts", "deep"), ("error", "deep")]) if ctx.route == "status" \
        else (rng.choice(["deep", "x"]),)
    set_path(doc, where, Raw(nest[0] + nest[1]))
    if rng.random() < 0.2:
        doc["wide"] = Raw("[" + ",".join(["0"] * 100000) + "]")
    return [ctx.answer(doc)]


def error_body(rng, status, ctx):
    code = rng.choice([BY_STATUS.get(status, "API_ERROR"), BY_STATUS.get(status, "API_ERROR"), "WEIRD_CODE", "",
                       None, 7, "not_found", rng.choice(SERVER_CODES)])
    message = rng.choice(["it failed", "", None, 42, rng.choice(HOSTILE)])
    kind = rng.randrange(8)
    if kind == 0:
        return "<html><body><h1>%d</h1>proxy error</body></html>" % status, "text/html"
    if kind == 1:
        return "", None
    if kind == 2:
        return "Service Unavailable", "text/plain"
    if kind == 3:
        return dump({"error": {"code": code, "message": message, "meta": Raw("NaN")}}), "application/json"
    if kind == 4:
        return dump({"error": rng.choice(["denied", 7, None, [], {"code": {"nested": 1}}])}), "application/json"
    if kind == 5:
        return dump({"error": {"code": code, "message": message, "meta": rng.choice([[], "x", 7, None, {"a": 1}])}}), \
            "application/json"
    return dump({"error": {"code": code, "message": message, "meta": {}}}), "application/json"


def fam_status(ctx):
    rng = ctx.rng
    status = rng.choice([400, 401, 403, 404, 409, 418, 422, 426, 429, 451, 499, 500, 502, 503, 504, 520, 524,
                         599, 600, 799, 999, 199, 304, 300])
    body, content_type = error_body(rng, status, ctx)
    return [Answer(status, encode(body), content_type=content_type)]


RETRY_AFTER = ["0", "1", "5", "30", "  7  ", "\u00b2", "\u00b3", "\u00b9", "\u0663", "\u0967", "-1", "1e9", "1.5",
               "0x10", "abc", "",
               "99999999999999999999", "86400000", "5, 7", "+5", "3600", "120",
               "Fri, 31 Dec 9999 23:59:59 GMT", "Thu, 01 Jan 1970 00:00:00 GMT", "Mon, 99 Foo 2026 99:99:99 GMT",
               "Sun, 06 Nov 1994 08:49:37 GMT", "Wednesday, 32-Dec-99 25:00:00 GMT", "\x1b[2J", "7\r\n X-Y: z"]
META_RETRY = [5, 0, -3, "5", True, None, 10 ** 30, Raw("1e300"), Raw("NaN"), Raw("1e999"), 2.5, [], {"s": 1}]


def fam_retry_after(ctx):
    rng = ctx.rng
    status = rng.choice([429, 429, 503, 503, 502])
    headers = []
    for _ in range(rng.choice([1, 1, 1, 2, 0])):
        headers.append(("Retry-After", rng.choice(RETRY_AFTER)))
    if rng.random() < 0.2:
        headers.append(("Retry-After", iso(time.time() + 20)))
    if rng.random() < 0.2:
        headers.append(("Retry-After", email.utils.formatdate(time.time() + rng.choice([15, 3600 * 24]), usegmt=True)))
    meta = {}
    if rng.random() < 0.4 or not headers:
        meta["retry_after_seconds"] = rng.choice(META_RETRY)
    code = BY_STATUS.get(status, "API_ERROR")
    if ctx.route == "token" and rng.random() < 0.4:
        status, code = 400, rng.choice(GRANT_PENDING)
    body = dump({"error": {"code": code, "message": "slow down", "meta": meta}})
    return [Answer(status, encode(body), headers=headers)]


def fam_framing(ctx):
    rng = ctx.rng
    answer = ctx.answer(ctx.doc())
    framing = rng.choice(["close", "chunked", "chunked", "chunked-trailer", "cl-long", "cl-short", "cl-value:abc",
                          "cl-value:-5", "cl-value:1e3", "cl-value:99999999999999999999", "cl-value: 10",
                          "cl-dup", "te+cl", "te-gzip", "chunked-badhex", "chunked-short", "chunked-noend",
                          "chunked-huge", "chunked-negative", "http10", "no-reason", "lf-only", "continue",
                          "continue"])
    # what HTTP/1.1 (RFC 9112) makes of each: None = the body is read as sent
    answer.transport = {"close": None, "chunked": None, "chunked-trailer": None, "cl-long": None, "http10": None,
                        "no-reason": None, "continue": None, "cl-short": "net", "chunked-badhex": "net",
                        "chunked-short": "net", "chunked-noend": "net", "chunked-huge": "net",
                        "chunked-negative": "net"}.get(framing, "unknown")
    answer.framing = framing
    if framing.startswith("chunked") or framing in ("te+cl", "te-gzip"):
        size = len(answer.body)
        if size > 2:
            cuts = sorted(rng.sample(range(1, size), min(size - 1, rng.choice([1, 2, 5]))))
            answer.chunks = [b - a for a, b in zip([0] + cuts, cuts)]
    elif framing == "http10":
        answer.status_line = b"HTTP/1.0 %d OK" % answer.status
        answer.framing = "length"
    elif framing == "no-reason":
        answer.status_line = b"HTTP/1.1 %d" % answer.status
        answer.framing = "length"
    elif framing == "continue":
        answer.prefix = b"HTTP/1.1 100 Continue\r\n\r\n"
        answer.framing = "length"
    elif framing == "lf-only":
        answer.framing = "length"
        head, body = answer.wire()
        answer.action, answer.raw = "raw", head.replace(b"\r\n", b"\n") + body
    return [answer]


def fam_transport(ctx):
    rng = ctx.rng
    kind = rng.choice(["reset", "close", "garbage", "garbage", "http09", "many-headers", "long-header", "empty-line",
                       "binary", "status-1000", "http2", "bad-header"])
    if kind in ("reset", "close"):
        return [Answer(action=kind, transport="net")]
    answer = ctx.answer(ctx.doc())
    answer.transport = "net"
    if kind == "garbage":
        answer.status_line = rng.choice([b"HTTP/1.1 2OO OK", b"FOO BAR", b"HTTP/1.1 -200 X", b"HTTP/1.1", b"HTTP/9.9"])
    elif kind == "http09":
        answer.action, answer.raw = "raw", answer.body
    elif kind == "many-headers":
        answer.headers += [("X-H%d" % i, "v") for i in range(rng.choice([90, 150]))]
        answer.transport = None if len(answer.headers) < 100 else "unknown"
    elif kind == "long-header":
        answer.headers.append(("X-Long", "v" * rng.choice([8000, 70000])))
        answer.transport = None if len(answer.headers[-1][1]) < 65000 else "unknown"
    elif kind == "empty-line":
        answer.action, answer.raw = "raw", b"\r\n\r\n"
    elif kind == "binary":
        answer.action, answer.raw = "raw", bytes(rng.randrange(256) for _ in range(rng.choice([1, 64, 300])))
    elif kind == "status-1000":
        answer.status_line = b"HTTP/1.1 1000 Big"
    elif kind == "http2":
        answer.status_line = b"HTTP/2 200"
    else:
        answer.headers.append((rng.choice(["X Bad", "X-Bad\x00", " Leading"]), "v"))
        answer.transport = "unknown"
    return [answer]


def fam_redirect(ctx):
    rng = ctx.rng
    path = ctx.path()
    status = rng.choice([301, 302, 303, 307, 307, 308])
    target = rng.choice([
        "{SELF}" + path + "?fuzz-redirected=1", path + "?fuzz-redirected=1", "{OTHER}" + path,
        "http://localhost:{PORT}" + path, "https://127.0.0.1:{PORT}" + path, "http://127.0.0.1:99999/",
        "http://127.0.0.1:-1/", "http://[::1:{PORT}/", "//evil.example" + path, "http://evil.example/",
        "javascript:alert(1)", "file:///etc/passwd", "", "{SELF}" + path + "\x1b[31m", "/v1/\x00x",
        "http://user:pw@127.0.0.1:{PORT}" + path, "{SELF}" + path,
        "http://127.0.0.1:{PORT}" + path + "?fuzz-redirected=1",
        "HTTP://127.0.0.1:{PORT}" + path + "?fuzz-redirected=1"])
    headers = [] if target == "" and rng.random() < 0.5 else [("Location", target)]
    if rng.random() < 0.1:
        headers.append(("Location", "{OTHER}" + path))
    return [Answer(status, b"", headers=headers, content_type=None)]


def fam_headers(ctx):
    rng = ctx.rng
    answer = ctx.answer(ctx.doc())
    extra = rng.sample([
        ("X-Request-Id", "\x1b[31mid\x1b[0m"), ("X-Request-Id", "\xff\xfe"), ("Server", "nginx"),
        ("Content-Type", "application/json"), ("Retry-After", "\u00b2"), ("Retry-After", "-1"),
        ("X-Folded", "a\r\n continued"), ("Set-Cookie", "a=b"), ("Cache-Control", "no-store"),
        ("Content-Encoding", "identity"), ("Vary", "Accept"), ("X-Empty", ""), ("Link", "<http://evil.example/>"),
        ("Location", "http://evil.example/"), ("WWW-Authenticate", "Bearer")], rng.choice([1, 2, 3]))
    answer.headers += extra
    if rng.random() < 0.3:
        answer.content_type = rng.choice(["application/json; charset=utf-8", "application/json;charset=UTF-8",
                                          None, "text/html", "application/problem+json", "text/plain; charset=utf-16"])
    if answer.content_type not in ("application/json", "application/json; charset=utf-8",
                                   "application/json;charset=UTF-8", None) \
            or any(name in ("Content-Encoding", "X-Folded") for name, _ in extra):
        answer.transport = "unknown"
    return [answer]


# -- route semantics

def fam_phase(ctx):
    rng = ctx.rng
    phase = rng.choice(HOSTILE) if rng.random() < 0.4 else \
        rng.choice(["draft", "preparing", "in_progress", "completed", "partial", "failed", "queued", "cancelled",
                    "IN_PROGRESS", "", "done"])
    doc = ctx.status_doc(phase if phase in ("draft", "preparing", "in_progress", "completed", "partial", "failed")
                         else "in_progress")
    doc["phase"] = phase
    if rng.random() < 0.3:
        doc["error"] = rng.choice([None, {"code": "E", "message": rng.choice(HOSTILE)}, {"code": "E"}, {}])
    if rng.random() < 0.3:
        doc["counts"] = rng.choice([{"total": 10 ** 30, "imported": -5}, {"imported": 1.5}, {"total": "many"},
                                    {"extra": 1}, {"total": None}])
    return [ctx.answer(doc)]


def fam_conflict(ctx):
    rng = ctx.rng
    meta = rng.choice([{"importId": 7}, {"importId": "7"}, {}, {"importId": 2 ** 70}, {"importId": None}])
    body = dump({"error": {"code": "CONFLICT", "message": rng.choice(["import 7 is already enqueued",
                                                                      rng.choice(HOSTILE)]), "meta": meta}})
    return [Answer(409, encode(body))]


def fam_grant(ctx):
    """Device flow: the token route's pending and slow_down answers, then the platform's decision."""
    rng = ctx.rng
    answers = []
    for _ in range(rng.choice([1, 2, 3])):
        code = rng.choice(GRANT_PENDING)
        status = rng.choice([400, 400, 400, 401, 403, 428])
        message = rng.choice(["waiting for the user", rng.choice(HOSTILE)])
        answers.append(Answer(status, encode(dump({"error": {"code": code, "message": message, "meta": {}}}))))
    end = rng.randrange(6)
    if end == 0:
        code = rng.choice(GRANT_STOP + ("INVALID_GRANT", "UNSUPPORTED_GRANT_TYPE"))
        answers.append(Answer(400, encode(dump({"error": {"code": code, "message": rng.choice(HOSTILE),
                                                          "meta": {}}}))))
    elif end == 1:
        answers.append(Answer(400, encode(dump({"error": rng.choice(["authorization_pending", "slow_down",
                                                                     "access_denied"])}))))
    return answers


def fam_token_values(ctx):
    rng = ctx.rng
    doc = ctx.doc()
    R = rand_word
    choice = rng.randrange(4)
    if choice == 0:
        doc["accessToken"] = ctx.add_server_token(rng.choice([
            "lbs_" + R(rng) + "," + R(rng) + ";" + R(rng), "lbs_" + R(rng) + "&" + R(rng) + "'" + R(rng),
            "lbs_" + R(rng) + '"' + R(rng), "lbs_" + R(rng) + "\\" + R(rng), "lbs_" + R(rng) * 400,
            "lbs_" + R(rng) + " " + R(rng), "lbs_" + R(rng) + "\x1b[31m" + R(rng), "lbs_" + R(rng) + "\n" + R(rng),
            R(rng) + R(rng), "LBS_" + R(rng) + R(rng), "lbs_" + R(rng) + "\u00e9" + R(rng), "lbs_"]))
    elif choice == 1:
        doc["expiresAt"] = rng.choice(["2026-12-05T10:00:00.123Z", iso(ctx.now + 3 * 86400).replace("Z", "+00:00"),
                                       iso(ctx.now + 3 * 86400).replace("Z", "+02:00"), "tomorrow", 7, None, "",
                                       "1970-01-01T00:00:00Z", "9999-12-31T23:59:59Z", "2026-13-45T99:99:99Z",
                                       iso(ctx.now + 86400 * 2).lower()])
    elif choice == 2:
        doc["accountId"] = rng.choice(["acc_solo", "acc bad", "acc/../x", "", 7, ["acc_demo"], "a" * 65,
                                       "acc_\x1b[2J", None])
    else:
        doc["accountId"] = "acc_" + ctx.bearer[-8:].replace(",", "")
        doc["scope"] = "imports " + ctx.bearer
    return [ctx.answer(doc)]


def fam_device_values(ctx):
    rng = ctx.rng
    doc = ctx.doc()
    if rng.random() < 0.5:
        doc["interval"] = Raw(rng.choice(["0", "-5", "0.001", "5.5", "86400", "1e9", "99999999999999999999", '"5"',
                                          "null", "3", "60"]))
    else:
        doc["expiresIn"] = Raw(rng.choice(["0", "-1", "1", "30", "86400", "1e12", '"600"', "null", "1200", "899"]))
    if rng.random() < 0.2:
        del doc["verificationUriComplete"]
    return [ctx.answer(doc)]


def fam_me_values(ctx):
    rng = ctx.rng
    doc = ctx.doc()
    doc["expiresAt"] = rng.choice([iso(ctx.now + 4 * 86400), iso(ctx.now + 2 * 86400).replace("Z", ".250Z"),
                                   iso(ctx.now + 5 * 86400).replace("Z", "+00:00"),
                                   iso(ctx.now + 3 * 86400).replace("Z", "-05:00"), "1970-01-01T00:00:00Z",
                                   "9999-12-31T23:59:59Z", "soon", 1900000000, None, "2026-02-30T10:00:00Z"])
    return [ctx.answer(doc)]


def fam_accounts_values(ctx):
    rng = ctx.rng
    n = rng.choice([0, 1, 1, 2, 5, 500])
    accounts = [{"id": "acc_%d" % i, "name": "Account %d" % i} for i in range(n)]
    if accounts and rng.random() < 0.6:
        accounts[rng.randrange(n)] = rng.choice([{"id": ACCOUNT, "name": "Demo"}, {"id": "acc_x"},
                                                 {"id": "acc_x", "name": None}, {"id": "acc bad", "name": "B"},
                                                 {"id": "a" * 65, "name": "long"}, {"id": "acc_1", "name": "dup"},
                                                 {"id": ACCOUNT, "name": 7, "role": "admin"}])
    return [ctx.answer({"accounts": accounts, "next": None} if rng.random() < 0.2 else {"accounts": accounts})]


FAMILIES = {
    # name: (function, weight, routes or None for all)
    "valid": (fam_valid, 10, None),
    "types": (fam_types, 10, None),
    "missing": (fam_missing, 5, None),
    "strings": (fam_strings, 11, None),
    "echo": (fam_echo, 9, ("status", "start", "me", "accounts")),
    "numbers": (fam_numbers, 5, None),
    "json": (fam_json, 10, None),
    "encoding": (fam_encoding, 5, None),
    "nesting": (fam_nesting, 3, None),
    "status-code": (fam_status, 9, None),
    "retry-after": (fam_retry_after, 9, None),
    "framing": (fam_framing, 8, None),
    "transport": (fam_transport, 5, None),
    "redirect": (fam_redirect, 7, None),
    "headers": (fam_headers, 4, None),
    "phase": (fam_phase, 12, ("status",)),
    "conflict": (fam_conflict, 4, ("start",)),
    "grant": (fam_grant, 25, ("token",)),
    "token-values": (fam_token_values, 18, ("token",)),
    "device-values": (fam_device_values, 15, ("device",)),
    "me-values": (fam_me_values, 10, ("me",)),
    "accounts-values": (fam_accounts_values, 10, ("accounts",)),
}
SEQUENCE_FAMILIES = ("grant",)


class Case:
    """One run of the tool: the command, the session, the answers of the targeted route."""

    def __init__(self, ctx, family, answers, persistent):
        self.index = None
        self.route = ctx.route
        self.command = ctx.command
        self.family = family
        self.answers = answers
        self.persistent = persistent
        self.tokens = ctx.tokens
        self.bearer = ctx.bearer
        self.stored = ctx.stored
        self.env_token = ctx.env
        self.server_token = ctx.server_token
        self.now = ctx.now
        rng = ctx.rng
        self.tty = ctx.command == "wait" and rng.random() < 0.35
        self.verbose = rng.random() < 0.2
        argv = list(COMMANDS[ctx.command])
        self.timeout = TIMEOUT if family == "slow" else ROOMY_TIMEOUT
        extra = ["--timeout=%g" % self.timeout] + (["--verbose"] if self.verbose else [])
        self.argv = extra + argv if rng.random() < 0.3 else argv + extra
        self.stdin = START_BODY if ctx.command == "start" else \
            (ctx.stdin + "\n").encode() if ctx.command == "with-token" else b""
        self.session = None
        if ctx.stored is not None:
            self.session = {"accessToken": ctx.stored, "expiresAt": iso(ctx.now + 6 * 86400), "accountId": ACCOUNT,
                            "deviceName": "fuzz-host"}
        self.fallback_status = "in_progress" if ctx.command == "status" else "completed"
        self.me_expires = iso(ctx.now + 5 * 86400)
        self.token_expires = iso(ctx.now + 7 * 86400)

    @property
    def slow(self):
        return any(a.action in SLOW_ACTIONS for a in self.answers)

    def fallback(self, route):
        """The answer the HTTP protocol (README) describes, for every route the case does not target."""
        if route == "me":
            doc = {"userId": "usr_fuzz", "email": "fuzz@acme.example", "expiresAt": self.me_expires}
        elif route == "accounts":
            doc = {"accounts": [{"id": ACCOUNT, "name": "Demo Co"}]}
        elif route == "start":
            return Answer(202, encode(dump({"importId": IMPORT_ID, "runRef": "run_FUZZ7"})))
        elif route == "status":
            doc = {"importId": IMPORT_ID, "phase": self.fallback_status, "percent": 100 if self.fallback_status ==
                   "completed" else 42, "counts": {"total": 1000, "imported": 990, "skipped": 10, "failed": 0},
                   "error": None}
        elif route == "token":
            doc = {"accessToken": self.server_token, "expiresAt": self.token_expires, "accountId": None}
        elif route == "device":
            doc = {"deviceCode": "dc_fuzz", "userCode": "WDJB-MJHT", "verificationUri": WEB + "/cli/device",
                   "verificationUriComplete": WEB + "/cli/device?user_code=WDJB-MJHT", "interval": 5,
                   "expiresIn": 600}
        elif route == "revoke":
            return Answer(204, b"", content_type=None)
        else:
            return Answer(404, encode(dump({"error": {"code": "NOT_FOUND", "message": "no such route", "meta": {}}})))
        return Answer(200, encode(dump(doc)))

    def describe(self):
        times = "always" if self.persistent else "x%d" % len(self.answers)
        first = self.answers[0].describe() if self.answers else "-"
        more = " (+%d more answers)" % (len(self.answers) - 1) if len(self.answers) > 1 else ""
        env = " LANDBASE_ACCESS_TOKEN=%r" % self.env_token if self.env_token else ""
        return "case %d [%s/%s] %s%s%s; %s answer %s: %s%s" % (
            self.index, self.route, self.family, " ".join(self.argv), env, " (tty)" if self.tty else "",
            self.route, times, first, more)


SLOW_ACTIONS = ("drip", "drip-head", "hang", "head-hang", "hold", "endless")
ALWAYS_ONCE = ("grant",)


def draw_family(rng, route):
    names = [n for n, (_, w, routes) in sorted(FAMILIES.items()) if routes is None or route in routes]
    weights = [FAMILIES[n][1] for n in names]
    return rng.choices(names, weights)[0]


def make_case(rng, route, command, now):
    ctx = Ctx(rng, route, command, now)
    family = draw_family(rng, route)
    answers = FAMILIES[family][0](ctx)
    persistent = False
    if family not in SEQUENCE_FAMILIES:
        roll = rng.random()
        if command == "wait":
            times, persistent = (1, False) if roll < 0.83 else (2, False) if roll < 0.98 else (1, True)
        elif command == "device":
            times, persistent = (1, False) if roll < 0.8 else (2, False) if roll < 0.97 else (1, True)
        else:
            times, persistent = (1, False) if roll < 0.6 else (2, False) if roll < 0.75 else \
                (3, False) if roll < 0.82 else (1, True)
        answers = answers * times
        if persistent and command in ("wait", "device") and any(len(a.body) > 4096 for a in answers):
            persistent = False          # a hundred polls of a heavy answer cost seconds of real time, nothing more
    elif rng.random() < 0.03:
        persistent = True               # pending for ever: the device code expires
        answers = answers[:1]
    return Case(ctx, family, answers, persistent)


def fixed_cases(rng, now):
    """The slow and the big ones, a few of each (drips, hangs, an endless body, bodies of several MiB),
    and corners the draw may miss: long text on a terminal, a token echoed in each of its escaped forms."""
    cases = []

    def add(route, command, family, answer, persistent=False, stored=None, tty=None, verbose=None):
        ctx = Ctx(rng, route, command, now)
        if stored is not None:
            ctx.stored = ctx.bearer = stored
            ctx.env, ctx.tokens = None, [("stored", stored)]
        if callable(answer):
            answer = answer(ctx)
        case = Case(ctx, family, [answer], persistent)
        if tty is not None:
            case.tty = tty
        if verbose is not None:
            case.verbose = verbose
            case.argv = [word for word in case.argv if word != "--verbose"] + (["--verbose"] if verbose else [])
        cases.append(case)

    def long_phase(text):
        def build(ctx):
            doc = ctx.status_doc("in_progress")
            doc["phase"] = text
            return ctx.answer(doc)
        return build
    add("status", "wait", "strings", long_phase("p" * 5000), tty=True)
    add("status", "wait", "strings", long_phase("\u6570" * 300 + "\x1b[2J" + MARKER), tty=True)

    def echo(form, status, html=False):
        def build(ctx):
            text = escaped_forms(ctx.bearer)[form]
            if html:
                return Answer(status, encode("<html><body>token %s refused</body></html>" % text),
                              content_type="text/html")
            doc = ctx.status_doc("in_progress") if ctx.route == "status" else ctx.doc()
            doc["note"] = Raw('"token %s"' % text)
            return ctx.answer(doc) if status < 300 else Answer(status, encode(dump(
                {"error": {"code": BY_STATUS[status], "message": Raw('"token %s"' % text), "meta": {}}})))
        return build
    # the end of a token pasted with --with-token is recorded as the platform says, not assumed
    add("me", "with-token", "me-values", lambda ctx: ctx.answer({
        "userId": "usr_123", "email": "sam@acme.example", "expiresAt": iso(now + 3 * 86400 + 17)}))
    odd = "lbs_" + rand_word(rng) + "&x=" + rand_word(rng) + "'" + rand_word(rng) + '"' + rand_word(rng)
    add("status", "status", "echo", echo("html", 403, html=True), stored=odd)
    add("me", "auth-status", "echo", echo("html", 401, html=True), stored=odd)
    add("status", "status", "echo", echo("json-u", 200), stored="lbs_" + rand_word(rng) * 2, verbose=True)
    add("accounts", "account-list", "echo", echo("json-slash", 404), stored=odd, verbose=True)
    add("start", "start", "echo", lambda ctx: Answer(307, b"", content_type=None, headers=[
        ("Location", "{OTHER}/v1/me?t=" + escaped_forms(ctx.bearer)["url"])]), stored=odd)

    def valid(ctx, **kw):
        return ctx.answer(ctx.doc() if ctx.route != "status" else ctx.status_doc("in_progress"), **kw)

    add("status", "status", "slow", lambda c: valid(c, action="drip", transport="timeout"))
    add("start", "start", "slow", lambda c: valid(c, action="drip-head", transport="timeout"))
    add("me", "auth-status", "slow", lambda c: valid(c, action="hang", transport="timeout"))
    add("token", "device", "slow", lambda c: valid(c, action="head-hang", transport="timeout"))
    add("status", "wait", "slow", lambda c: valid(c, action="hold", framing="cl-short", transport="timeout"))
    add("status", "status", "slow", lambda c: Answer(200, encode('{"importId": 7, "phase": "in_progress", "pad": "'),
                                                      framing="chunked-noend", action="endless", transport="net"))

    def refusal(status, code, retry_after):
        def build(ctx):
            body = dump({"error": {"code": code, "message": "no", "meta": {}}})
            return Answer(status, encode(body), headers=[("Retry-After", retry_after)])
        return build
    # Retry-After digits that str.isdigit() takes and int() refuses, on answers whose end they must not change
    add("status", "status", "retry-after", refusal(429, "RATE_LIMITED", "\u00b2"), persistent=True)
    add("status", "status", "retry-after", refusal(400, "VALIDATION_ERROR", "\u00b2"))
    add("status", "wait", "retry-after", refusal(404, "NOT_FOUND", "\u00b3"))
    add("start", "start", "retry-after", refusal(409, "CONFLICT", "\u00b9"))
    add("token", "device", "retry-after", refusal(400, "ACCESS_DENIED", "\u00b2"))

    def padded(size):
        def build(ctx):
            doc = ctx.doc() if ctx.route != "status" else ctx.status_doc("in_progress")
            doc["pad"] = "x" * size
            return ctx.answer(doc)
        return build
    add("status", "status", "size", padded(3 * MIB))
    add("accounts", "account-list", "size", padded(3 * MIB + 12345))
    add("status", "wait", "size", padded(5 * MIB))
    add("me", "auth-status", "size", padded(5 * MIB), persistent=True)
    add("status", "status", "size", padded(5 * MIB), persistent=True)
    add("start", "start", "size", lambda c: Answer(
        202, encode(dump({"importId": 7, "runRef": "r", "pad": "y" * (5 * MIB)})), framing="chunked", chunks=[MIB] * 6))
    return cases


def generate(seed=SEED):
    rng = random.Random(seed)
    now = time.time()
    cases = []
    for route, command, count in PLAN:
        for _ in range(count):
            cases.append(make_case(rng, route, command, now))
    cases += fixed_cases(rng, now)
    for index, case in enumerate(cases):
        case.index = index
    return cases


# ---------------------------------------------------------------- the hostile server

def route_of(method, path):
    pieces = path.strip("/").split("/")
    table = {("GET", "/v1/me"): "me", ("GET", "/v1/accounts"): "accounts", ("POST", "/v1/oauth/token"): "token",
             ("POST", "/v1/oauth/device"): "device", ("POST", "/v1/oauth/revoke"): "revoke"}
    if (method, path) in table:
        return table[(method, path)]
    if len(pieces) >= 4 and pieces[:2] == ["v1", "accounts"] and pieces[3] == "contacts-imports":
        if method == "POST" and len(pieces) == 4:
            return "start"
        if method == "GET" and len(pieces) == 5:
            return "status"
    return None


def read_request(sock):
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return None
        data += chunk
        if len(data) > 1024 * 1024:
            return None
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) < 2:
        return None
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers.setdefault(name.strip().lower(), value.strip())
    try:
        length = int(headers.get("content-length") or 0)
    except ValueError:
        length = 0
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        rest += chunk
    return parts[0], parts[1], headers, rest


def client_gone(sock):
    try:
        readable, _, _ = select.select([sock], [], [], 0)
        if readable:
            return sock.recv(1, socket.MSG_PEEK) == b""
    except (OSError, ValueError):
        return True
    return False


def wait_gone(sock, deadline):
    """True when the client is still connected at the deadline."""
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return not client_gone(sock)
        try:
            readable, _, _ = select.select([sock], [], [], min(0.02, left))
            if readable and not sock.recv(65536):
                return False
        except (OSError, ValueError):
            return False


class _Handler(socketserver.BaseRequestHandler):
    def handle(self):
        try:
            self.server.hub.serve(self.request, self.server.role)
        except BaseException:       # the server never prints: the tool's stderr is captured meanwhile
            pass


class _TCPServer(socketserver.TCPServer):
    """One connection at a time, like the tool makes them: a thread per connection costs more than the answer."""

    allow_reuse_address = True
    request_queue_size = 64

    def handle_error(self, request, client_address):
        pass


class HostileServer:
    """The platform as the fuzzer plays it: the current case's answers for its route, the HTTP protocol (README) for the rest."""

    def __init__(self):
        self.lock = threading.Lock()
        self.case = None
        self.served = 0
        self.records = []
        self.main = _TCPServer(("127.0.0.1", 0), _Handler)
        self.other = _TCPServer(("127.0.0.1", 0), _Handler)
        for server, role in ((self.main, "main"), (self.other, "other")):
            server.hub, server.role = self, role
        self.port = self.main.server_address[1]
        self.url = "http://127.0.0.1:%d" % self.port
        self.other_url = "http://127.0.0.1:%d" % self.other.server_address[1]
        self.bases = {"{SELF}": self.url, "{OTHER}": self.other_url, "{PORT}": str(self.port)}
        self.threads = [threading.Thread(target=s.serve_forever, kwargs={"poll_interval": 0.05}) for s in
                        (self.main, self.other)]
        for thread in self.threads:
            thread.daemon = True

    def start(self):
        for thread in self.threads:
            thread.start()
        return self

    def stop(self):
        for server in (self.main, self.other):
            server.shutdown()
            server.server_close()

    def begin(self, case):
        with self.lock:
            self.case, self.served, self.records = case, 0, []

    def finish(self):
        with self.lock:
            records, self.case = self.records, None
        return records

    def serve(self, sock, role):
        sock.settimeout(2)
        request = read_request(sock)
        if request is None:
            return
        method, target, headers, _ = request
        path, _, query = target.partition("?")
        route = route_of(method, path)
        record = {"role": role, "method": method, "path": path, "route": route, "host": headers.get("host", ""),
                  "authorization": headers.get("authorization"), "key": headers.get("idempotency-key"),
                  "t0": time.monotonic(), "outlived": False, "overread": False,
                  "redirected": "fuzz-redirected" in query}
        with self.lock:
            case = self.case
            self.records.append(record)
            if case is None:
                answer = Answer(503, b"{}")
            elif role == "other" or record["redirected"] or route != case.route:
                answer = case.fallback(route)
            else:
                n = self.served
                self.served += 1
                answer = case.answers[n] if n < len(case.answers) else \
                    case.answers[-1] if case.persistent else case.fallback(route)
        self.perform(sock, answer, record)

    def perform(self, sock, answer, record):
        action = answer.action
        deadline = record["t0"] + SLOW_CAP
        try:
            if action == "reset":
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                sock.close()
                return
            if action == "close":
                return
            if action == "raw":
                sock.sendall(answer.raw)
                return
            head, body = answer.wire(self.bases)
            if action is None:
                sock.sendall(head + body)
            elif action in ("drip", "drip-head"):
                data = head + body if action == "drip" else head
                for i in range(len(data)):
                    if client_gone(sock):
                        return
                    sock.sendall(data[i:i + 1])
                    time.sleep(0.02)
                    if time.monotonic() >= deadline:
                        record["outlived"] = not client_gone(sock)
                        return
                if action == "drip-head":
                    sock.sendall(body)
            elif action == "hang":
                record["outlived"] = wait_gone(sock, deadline)
            elif action == "head-hang":
                sock.sendall(head)
                record["outlived"] = wait_gone(sock, deadline)
            elif action == "hold":
                sock.sendall(head + body)
                record["outlived"] = wait_gone(sock, deadline)
            elif action == "endless":
                sock.sendall(head + b"%x\r\n" % len(body) + body + b"\r\n")
                chunk = b"100000\r\n" + b"x" * 0x100000 + b"\r\n"
                sent = 0
                while sent < ENDLESS_BYTES:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        record["outlived"] = not client_gone(sock)
                        return
                    sock.settimeout(left)
                    try:
                        sock.sendall(chunk)
                    except socket.timeout:
                        record["outlived"] = True
                        return
                    sent += len(chunk)
                record["overread"] = True
        except (OSError, ValueError):
            pass                    # the client left: what the slow answers wait for


# ---------------------------------------------------------------- the oracle: the HTTP protocol.s reading of one answer

class _Refused(Exception):
    pass


class _Ambiguous(Exception):
    pass


def _pairs(pairs):
    keys = [k for k, _ in pairs]
    if len(keys) != len(set(keys)):
        raise _Refused("duplicate key")
    return dict(pairs)


def _constant(name):
    raise _Refused(name)


def _float(text):
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise _Refused(text)
    return value


def _int(text):
    if len(text) > 1000:
        raise _Ambiguous("a number of %d digits" % len(text))
    return int(text)


def strict_json(raw):
    """('ok', doc) | ('broken', why) | ('unknown', why): JSON as RFC 8259 and the HTTP protocol (README) read it."""
    if raw[:3] == b"\xef\xbb\xbf":
        return "unknown", "a UTF-8 BOM"
    if raw.count(b"[") + raw.count(b"{") > MAX_DEPTH:
        if len(raw) > MIB:
            return "unknown", "too big to measure its depth here"
        if _depth(raw) > MAX_DEPTH:
            return "broken", "nested deeper than %d levels (the README's limit)" % MAX_DEPTH
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return "broken", "not UTF-8"
    try:
        return "ok", json.loads(text, object_pairs_hook=_pairs, parse_constant=_constant, parse_float=_float,
                                parse_int=_int)
    except _Ambiguous as exc:
        return "unknown", str(exc)
    except RecursionError:
        return "unknown", "deep"
    except (ValueError, _Refused) as exc:
        return "broken", str(exc)[:60]


def _depth(raw):
    depth = best = 0
    in_string = escaped = False
    for byte in raw:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5c:
                escaped = True
            elif byte == 0x22:
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5b, 0x7b):
            depth += 1
            best = max(best, depth)
        elif byte in (0x5d, 0x7d):
            depth -= 1
    return best


def rfc3339(value):
    """Seconds since the epoch for an RFC 3339 time, else None."""
    if not isinstance(value, str):
        return None
    match = re.match(r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt]([0-9]{2}):([0-9]{2}):([0-9]{2})(\.[0-9]+)?"
                     r"([Zz]|[+-][0-9]{2}:[0-9]{2})\Z", value)
    if not match:
        return None
    y, mo, d, h, mi, s = (int(g) for g in match.groups()[:6])
    try:
        import datetime
        datetime.datetime(y, mo, d, h, mi, s)
    except ValueError:
        return None
    seconds = calendar.timegm((y, mo, d, h, mi, s, 0, 0, 0))
    zone = match.group(8)
    if zone not in ("Z", "z"):
        sign = 1 if zone[0] == "+" else -1
        seconds -= sign * (int(zone[1:3]) * 3600 + int(zone[4:6]) * 60)
    return seconds + float(match.group(7) or 0)


def documented_time(value):
    """Seconds since the epoch for a time in the form the HTTP protocol.shows (2026-12-05T10:00:00Z, UTC as Z or
    +00:00, seconds maybe with a fraction), else None. Other RFC 3339 forms (another offset, a lower-case
    t) are times too, but the contract does not say the tool takes them: the oracle leaves them open."""
    if not isinstance(value, str) or not re.match(
            r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?(Z|\+00:00)\Z", value):
        return None
    return rfc3339(value)


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def valid_doc(route, doc, now):
    """'valid', 'broken' or 'unknown': a 2xx body of this route, read against the HTTP protocol (README)."""
    if not isinstance(doc, dict):
        return "broken"
    verdict = "valid"
    if route == "status":
        iid = doc.get("importId")
        if not (_is_int(iid) and iid == IMPORT_ID):
            return "unknown" if isinstance(iid, float) and iid == IMPORT_ID else "broken"
        phase, percent, counts, error = (doc.get(k) for k in ("phase", "percent", "counts", "error"))
        if not isinstance(phase, str):
            return "broken"
        if percent is not None and not (_is_number(percent) and 0 <= percent <= 100):
            return "broken"
        if counts is not None and not isinstance(counts, dict):
            return "broken"
        if error is not None and not isinstance(error, dict):
            return "broken"
        if phase == "" or (phase == "preparing" and percent is not None):
            verdict = "unknown"
        if isinstance(counts, dict) and any(counts.get(k) is not None and not _is_int(counts.get(k))
                                            for k in COUNT_KEYS):
            verdict = "unknown"
        if isinstance(error, dict) and not all(isinstance(error.get(k), str) for k in ("code", "message")):
            verdict = "unknown"
        return verdict
    if route == "start":
        iid = doc.get("importId")
        if isinstance(iid, float):
            return "unknown"
        if not _is_int(iid) or iid <= 0:
            return "broken"
        if iid > 2 ** 63 - 1 or not isinstance(doc.get("runRef"), str) or not doc.get("runRef"):
            return "unknown"
        return verdict
    if route == "me":
        if not isinstance(doc.get("userId"), str) or not isinstance(doc.get("email"), str):
            return "unknown"
        if doc.get("expiresAt") is not None:
            when = documented_time(doc["expiresAt"])
            if when is None or when < now + 3600:
                return "unknown"
        return verdict
    if route == "accounts":
        accounts = doc.get("accounts")
        if not isinstance(accounts, list):
            return "broken"
        ids = []
        for entry in accounts:
            if not isinstance(entry, dict) or not isinstance(entry.get("id"), str):
                return "broken"
            if not ACCOUNT_RE.match(entry["id"]) or not isinstance(entry.get("name"), str):
                verdict = "unknown"
            ids.append(entry["id"])
        if len(set(ids)) != len(ids):
            verdict = "unknown"
        return verdict
    if route == "device":
        for key in ("deviceCode", "userCode", "verificationUri"):
            if not isinstance(doc.get(key), str) or not doc[key]:
                return "broken"
        if not re.match(r"https?://[!-~]+\Z", doc["verificationUri"]) or \
                ("verificationUriComplete" in doc and not isinstance(doc["verificationUriComplete"], str)):
            verdict = "unknown"
        interval = doc.get("interval", 5)
        if not (_is_int(interval) and 1 <= interval <= 60):
            return "unknown"
        expires = doc.get("expiresIn", 600)
        if not (_is_int(expires) and interval <= expires <= 3600):
            return "unknown"
        return verdict
    if route == "token":
        token = doc.get("accessToken")
        if not isinstance(token, str):
            return "broken"
        if not token.startswith("lbs_") or len(token) < 5 or any(not "!" <= ch <= "~" for ch in token):
            verdict = "unknown"
        when = documented_time(doc.get("expiresAt"))
        if when is None or when < now + 3600:
            verdict = "unknown"
        account = doc.get("accountId")
        if account is not None and not (isinstance(account, str) and ACCOUNT_RE.match(account)):
            verdict = "unknown"
        return verdict
    return "unknown"


def retry_after_seconds(answer, doc, now):
    """The longest delay the answer asks for (Retry-After header, error.meta.retry_after_seconds), or None."""
    found = []
    for value in answer.header_values("Retry-After"):
        value = value if isinstance(value, str) else value.decode("latin-1")
        if re.match(r"[ \t]*[0-9]+[ \t]*\Z", value):
            found.append(int(value))
            continue
        try:
            parsed = email.utils.parsedate_tz(value)
            if parsed:
                found.append(email.utils.mktime_tz(parsed) - now)
        except (TypeError, ValueError, OverflowError, IndexError):
            pass
    if isinstance(doc, dict) and isinstance(doc.get("error"), dict) and isinstance(doc["error"].get("meta"), dict):
        seconds = doc["error"]["meta"].get("retry_after_seconds")
        if _is_number(seconds) and seconds >= 0:
            found.append(seconds)
    return max(found) if found else None


class Verdict:
    """What the HTTP protocol (README) makes of one answer.

    kind: valid (doc), retry (transient; codes: how a last attempt ends), long (transient with a long
    Retry-After: the outcome is open), final (codes), follow (a same-origin redirect: the target's
    answer counts), pending / stop (device flow), unknown."""

    def __init__(self, kind, codes=(), doc=None, why=""):
        self.kind, self.codes, self.doc, self.why = kind, set(codes), doc, why

    def __repr__(self):
        return "Verdict(%s %s %s)" % (self.kind, sorted(self.codes), self.why)


def judge(answer, route, case, method):
    now = time.time()
    if answer.action in ("reset", "close"):
        return Verdict("retry", ("NETWORK_ERROR", "API_ERROR"), why=answer.action)
    if answer.transport == "timeout":
        return Verdict("retry", ("TIMEOUT", "NETWORK_ERROR"), why="slow")
    if answer.transport == "net":
        return Verdict("retry", ("NETWORK_ERROR", "API_ERROR", "TIMEOUT"), why="broken framing")
    if answer.transport == "unknown" or answer.action == "raw":
        return Verdict("unknown", why="framing HTTP leaves open")
    status = answer.status
    raw = answer.seen_body()
    if 300 <= status < 400:
        return judge_redirect(answer, route, method)
    if status < 200 or status > 999:
        return Verdict("unknown", why="status %d" % status)
    if 200 <= status < 300:
        if len(raw) > BODY_CAP:
            return Verdict("retry", ("API_ERROR",), why="over 4 MiB")
        state, doc = strict_json(raw)
        if state == "unknown":
            return Verdict("unknown", why=doc)
        if state == "broken":
            return Verdict("retry", ("API_ERROR",), why="2xx not JSON: " + doc)
        verdict = valid_doc(route, doc, now)
        if verdict == "valid":
            return Verdict("valid", doc=doc)
        if verdict == "broken":
            return Verdict("retry", ("API_ERROR",), why="2xx breaks the contract")
        return Verdict("unknown", why="2xx the contract leaves open")
    state, doc = strict_json(raw) if len(raw) <= BODY_CAP else ("broken", None)
    doc = doc if state == "ok" else None
    error = doc.get("error") if isinstance(doc, dict) else None
    code = error.get("code") if isinstance(error, dict) else None
    delay = retry_after_seconds(answer, doc, now)
    if route == "token" and code in GRANT_PENDING:
        if delay is not None and delay > LONG_RETRY_AFTER:
            return Verdict("long", why="pending, Retry-After %r" % delay)
        return Verdict("pending", why=code)
    if route == "token" and code in GRANT_STOP:
        return Verdict("stop", why=code)
    transient = status == 429 or 500 <= status <= 599
    if isinstance(code, str) and code in EXIT_CODES and code not in SERVER_CODES:
        return Verdict("unknown", why="the envelope names a client-side code")
    if code in SERVER_CODES:
        if transient and code != BY_STATUS.get(status, "API_ERROR"):
            return Verdict("unknown", why="a transient status with another code")
        mapped = code
    else:
        mapped = BY_STATUS.get(status, "API_ERROR")
    if status >= 600:
        return Verdict("unknown", why="status %d: transience not said" % status)
    if route == "token" and not transient:
        return Verdict("stop" if doc is not None and isinstance(code, str) else "unknown", why="token %d" % status)
    if transient:
        if delay is not None and delay > LONG_RETRY_AFTER:
            return Verdict("long", (mapped,), why="Retry-After %r" % delay)
        return Verdict("retry", (mapped,), why="HTTP %d" % status)
    return Verdict("final", (mapped,), why="HTTP %d" % status)


def judge_redirect(answer, route, method):
    locations = answer.header_values("Location")
    if len(locations) != 1:
        return Verdict("unknown", why="%d Location headers" % len(locations))
    here = "http://127.0.0.1:1111"
    location = locations[0].replace("{SELF}", here).replace("{OTHER}", "http://127.0.0.1:2222") \
        .replace("{PORT}", "1111")
    if any(ch <= " " or ch == "\x7f" for ch in location) or not location:
        return Verdict("unknown", why="Location with control characters or empty")
    try:
        parts = urlsplit(urljoin(here + "/v1/x", location))
        origin = (parts.scheme.lower(), (parts.hostname or "").lower(), parts.port or 80)
    except ValueError:          # not another origin, not a URL at all: a broken answer, transient or not
        return Verdict("either", ("API_ERROR",), why="a Location that is not a URL (bad port or host)")
    if origin != ("http", "127.0.0.1", 1111):
        return Verdict("final", ("API_ERROR",), why="redirect to another origin")
    if answer.status in (307, 308) and "fuzz-redirected" in location:
        return Verdict("follow", why="same-origin %d" % answer.status)
    return Verdict("unknown", why="same-origin %d" % answer.status)


def expected(case):
    """(allowed outcomes, the valid document the command ends on or None, the verdicts of the answers).

    An outcome is "OK" or an error code; "*" allows anything, "!OK" any failure."""
    method = "POST" if case.route in ("start", "token", "device") else "GET"
    verdicts = []
    for answer in case.answers:
        if getattr(answer, "verdict", None) is None:
            answer.verdict = judge(answer, case.route, case, method)
        verdicts.append(answer.verdict)
    allowed, doc = _expected(case, verdicts)
    return allowed, doc, verdicts


def _expected(case, verdicts):
    fallback = Verdict("valid", doc=json.loads(case.fallback(case.route).body.decode()))

    def nth(i):
        if i < len(verdicts):
            return verdicts[i]
        return verdicts[-1] if case.persistent and verdicts else fallback

    def settled(i):             # from answer i on, the same answer comes back for ever
        return case.persistent and i >= len(verdicts) - 1

    if case.command == "wait":
        for poll in range(200):
            v = nth(poll)
            if v.kind == "follow":
                v = fallback
            if v.kind == "valid":
                phase = v.doc["phase"]
                if phase in TERMINAL:
                    return {TERMINAL[phase]}, v.doc
            elif v.kind == "final" and v.codes <= {"AUTH_FAILED", "NOT_FOUND"}:
                return set(v.codes), None
            elif v.kind != "retry":
                return {"*"}, None
            if settled(poll):
                return {"TIMEOUT"}, None
        return {"*"}, None
    if case.command == "device" and case.route == "token":
        for poll in range(200):
            v = nth(poll)
            if v.kind in ("valid", "follow"):
                return {"OK"}, (fallback if v.kind == "follow" else v).doc
            if v.kind == "stop" or v.kind == "final":
                return {"!OK"}, None
            if v.kind not in ("pending", "retry"):
                return {"*"}, None
            if settled(poll):
                return {"!OK"}, None
        return {"*"}, None
    either = set()              # the ends of the paths where an "either" answer was taken as final
    for attempt in range(4):                    # one request, retried up to 3 times
        v = nth(attempt)
        if v.kind in ("valid", "follow"):
            return {"OK"} | either, (fallback if v.kind == "follow" else v).doc
        if v.kind in ("retry", "either"):
            if v.kind == "either":
                either |= {"!OK"} if case.command == "device" else v.codes
            if attempt == 3:
                return set(v.codes) | either, None
            continue
        if v.kind == "final":
            if case.command == "device":
                return {"!OK"}, None
            return set(v.codes) | either, None
        return {"*"}, None
    return {"*"}, None


# ---------------------------------------------------------------- the oracle: the README.s promises on one run

ALLOWED_SGR = re.compile(r"\r|\x1b\[J|\x1b\[[0-9]+A|\x1b\[[0-9;]*m")     # the redraw: to the line's start, clear, colour


# what no line may hold: controls (Cc: C0, DEL, C1; ESC among them), lone surrogates, line and paragraph
# separators, the bidirectional overrides and isolates
UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def width(text):
    total = 0
    for ch in text:
        if unicodedata.combining(ch):
            continue
        total += 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1
    return total


def fragments(token):
    """The pieces of a token that give it away: itself (when it is not too short to say), its long runs."""
    return ([token] if len(token) >= 10 else []) + re.findall(r"[A-Za-z0-9]{8,}", token)


def leaked(case, streams):
    found = []
    for kind, token in case.tokens:
        for piece in fragments(token):
            for name, text in streams:
                if piece and piece in text:
                    found.append("%s token %r on %s" % (kind, token[:40], name))
                    break
            else:
                continue
            break
    return found


def plain(value):
    return isinstance(value, str) and value and all(ch.isprintable() for ch in value) and MARKER not in value


def strict_loads(text):
    return json.loads(text, object_pairs_hook=_pairs, parse_constant=_constant, parse_float=_float)


def check(case, run, columns=80):
    """The problems of one run, as (label, detail); empty when the run kept every promise."""
    problems = []

    def bad(label, detail=""):
        problems.append((label, detail))

    if run["runaway"]:
        bad("runaway", run["runaway"])
    code, out, err = run["exit"], run["stdout"], run["stderr"]
    if not run["runaway"] and (not isinstance(code, int) or (code != 0 and code not in EXIT_CODES.values())):
        bad("exit-code", "exit %r is not in the README.s table" % (code,))
    for name, text in (("stdout", out), ("stderr", err)):
        if "Traceback" in text:
            bad("traceback", name)
        if "internal error" in text.lower():
            bad("internal-error", _tail(text))
    for where in leaked(case, [("stdout", out), ("stderr", err)]):
        bad("token-leak", where)
    doc = None
    if out:
        try:
            if not out.endswith("\n") or out.count("\n") != 1:
                raise ValueError("not one line")
            doc = strict_loads(out)
        except (ValueError, _Refused) as exc:
            bad("stdout-not-one-json", "%s: %r" % (exc, out[:200]))
    elif code == 0:
        bad("stdout-not-one-json", "exit 0 with nothing on stdout")
    if out and code not in (0, None) and case.command != "wait":
        bad("stdout-on-failure", "exit %r with %r on stdout (the README: a JSON document on success only)"
            % (code, out[:120]))
    envelope_code = None
    if code != 0 and isinstance(code, int):
        last = err.rstrip("\n").split("\n")[-1] if err.strip() else ""
        try:
            envelope = json.loads(last)
            error = envelope["error"]
            envelope_code = error["code"]
            if not isinstance(error["message"], str) or not isinstance(error.get("meta"), dict):
                raise ValueError("message or meta of the wrong type")
            if EXIT_CODES.get(envelope_code) != code:
                bad("exit-mismatch", "exit %d with code %r" % (code, envelope_code))
        except (ValueError, KeyError, TypeError) as exc:
            bad("no-envelope", "%s: last stderr line %r" % (exc, last[:200]))
    check_stderr_text(case, err, columns, bad)
    check_requests(case, run, bad)
    check_time(case, run, bad)
    allowed, final_doc, verdicts = expected(case)
    outcome = "OK" if code == 0 else envelope_code
    first = "the answer: %s %s" % (verdicts[0].kind, verdicts[0].why) if verdicts else ""
    if "*" not in allowed and outcome is not None and not (
            outcome in allowed or ("!OK" in allowed and outcome != "OK")):
        bad("outcome", "ended %s; the README say %s (%s)" % (outcome, " or ".join(sorted(allowed)), first))
    if isinstance(doc, (dict, list)):
        mismatches = []
        check_output(case, run, doc, outcome, allowed, final_doc, lambda label, detail: mismatches.append(
            (label, detail)))
        for label, detail in mismatches:
            if label == "output" and verdicts and verdicts[0].kind == "retry":
                bad("accepted-broken-answer", "%s (%s: it must be retried)" % (detail, first))
            else:
                bad(label, detail)
    if run.get("rss_growth_mib", 0) > 40:
        bad("memory", "max RSS grew %.0f MiB during the case" % run["rss_growth_mib"])
    return problems


def _tail(text):
    return text.strip().split("\n")[-1][:200]


def check_stderr_text(case, err, columns, bad):
    if err and not err.endswith("\n"):
        bad("stderr-unterminated", repr(err[-80:]))
    for line in err.split("\n"):
        segments = line.split("\r") if case.tty else [line]
        for index, segment in enumerate(segments):
            visible = ALLOWED_SGR.sub("", segment) if case.tty else segment
            odd = UNPRINTABLE.findall(visible)
            if odd:
                bad("unprintable-stderr", "%r in %r" % ("".join(sorted(set(odd)))[:10], visible[:120]))
            if visible.lstrip().startswith(MARKER):
                bad("forged-line", "server text began a line: %r" % visible[:80])
            if case.tty and index > 0 and width(visible) > columns:
                bad("redraw-too-wide", "%d columns on an %d-column terminal: %r" % (width(visible), columns,
                                                                                   visible[:100]))


def check_requests(case, run, bad):
    keys = set()
    for record in run["requests"]:
        if record["role"] == "other":
            bad("cross-origin-request", "%s %s reached another origin%s" % (
                record["method"], record["path"], " with the token" if record["authorization"] else ""))
        elif record["host"] and not record["host"].startswith("127.0.0.1:"):
            bad("cross-origin-request", "a request for host %r%s" % (
                record["host"], " with the token" if record["authorization"] else ""))
        if record["outlived"]:
            bad("outlived-timeout", "the client was still reading %s %s %.2fs after it began (--timeout %g)"
                % (record["method"], record["path"], SLOW_CAP, TIMEOUT))
        if record["overread"]:
            bad("read-past-cap", "the client read %d MiB of one answer (cap 4 MiB)" % (ENDLESS_BYTES // MIB))
        bearers = [t for k, t in case.tokens if k == "server"] if case.command == "device" else [case.bearer]
        if record["route"] in ("me", "accounts", "start", "status") and record["role"] == "main" \
                and (record["authorization"] or "")[7:] not in bearers:
            bad("bearer", "%s sent Authorization %r" % (record["path"], (record["authorization"] or "")[:20]))
        if record["route"] == "start":
            keys.add(record["key"])
    if len(keys) > 1:
        bad("idempotency-key", "start retried with %d different Idempotency-Keys" % len(keys))


def check_time(case, run, bad):
    attempts = max(1, len(run["requests"]))
    bound = CASE_BASE + attempts * (min(case.timeout, TIMEOUT) + MARGIN)
    if run["seconds"] > bound:
        bad("slow-case", "%.2fs for %d requests (bound %.2fs)" % (run["seconds"], attempts, bound))
    fake = run["fake_seconds"]
    if case.command == "wait" and fake > WAIT_LIMIT + 30:
        bad("overslept", "wait slept %.3g s of fake time (the README: 30 minutes)" % fake)
    if case.command == "device" and fake > DEVICE_LIMIT + 30:
        bad("overslept", "device login slept %.3g s of fake time (the README: 15 minutes at most)" % fake)


def check_output(case, run, doc, outcome, allowed, final_doc, bad):
    command = case.command
    if outcome == "OK" or outcome in ("IMPORT_FAILED", "IMPORT_PARTIAL"):
        if command in ("status", "wait"):
            if not isinstance(doc, dict) or sorted(doc) != sorted(STATUS_KEYS):
                shown = sorted(doc) if isinstance(doc, dict) else doc
                bad("output-shape", "a status must have exactly the five keys: %r" % (shown,))
                return
            if doc["importId"] != IMPORT_ID:
                bad("output", "importId %r" % (doc["importId"],))
            if final_doc is not None and plain(final_doc.get("phase")) and \
                    not _has_token(case, final_doc["phase"]) and doc["phase"] != final_doc["phase"]:
                bad("output", "phase %r, the server said %r" % (doc["phase"], final_doc["phase"]))
        elif command == "start":
            if not isinstance(doc, dict) or not _is_int(doc.get("importId")) or not isinstance(doc.get("runRef"), str):
                bad("output-shape", "start prints {importId, runRef}: %r" % (doc,))
            elif final_doc is not None and doc["importId"] != final_doc["importId"]:
                bad("output", "importId %r, the server said %r" % (doc["importId"], final_doc["importId"]))
        elif command == "account-list":
            if not isinstance(doc, list) or not all(isinstance(e, dict) and {"id", "name", "active"} <= set(e)
                                                    for e in doc):
                bad("output-shape", "account list prints [{id, name, active}]: %r" % (str(doc)[:100],))
            elif final_doc is not None:
                ids = [e["id"] for e in final_doc["accounts"]]
                if [e["id"] for e in doc] != ids:
                    bad("output", "ids %r, the server said %r" % ([e["id"] for e in doc][:5], ids[:5]))
                elif any(e["active"] != (e["id"] == ACCOUNT) for e in doc):
                    bad("output", "active flags wrong")
        elif command == "auth-status":
            if not isinstance(doc, dict) or doc.get("authenticated") is not True:
                bad("output-shape", "auth status prints authenticated: true: %r" % (doc,))
            elif doc.get("tokenSource") != ("env" if case.env_token else "file"):
                bad("output", "tokenSource %r" % (doc.get("tokenSource"),))
            elif final_doc is not None and plain(final_doc.get("userId")) and \
                    not _has_token(case, final_doc["userId"]) and doc.get("userId") != final_doc["userId"]:
                bad("output", "userId %r, the server said %r" % (doc.get("userId"), final_doc["userId"]))
        elif command in ("with-token", "device"):
            if not isinstance(doc, dict) or not {"userId", "email", "accountId", "expiresAt"} <= set(doc):
                bad("output-shape", "auth login prints {userId, email, accountId, expiresAt}: %r" % (doc,))
                return
            check_login_output(case, doc, final_doc, bad)


def _has_token(case, text):
    return any(piece in text for _, token in case.tokens for piece in fragments(token))


def check_login_output(case, doc, final_doc, bad):
    me_expires = case.me_expires
    accounts = [{"id": ACCOUNT}]
    expires = None
    account = None
    if case.route == "me" and final_doc is not None:
        me_expires = final_doc.get("expiresAt")
    if case.route == "accounts" and final_doc is not None:
        accounts = final_doc["accounts"]
    if case.command == "with-token":
        expires = me_expires
    elif case.route == "token" and final_doc is not None:
        expires = final_doc.get("expiresAt")
        account = final_doc.get("accountId")
    elif case.command == "device":
        expires = case.token_expires
    if final_doc is None and case.route in ("me", "accounts", "token"):
        return                                  # the answer the login ended on is not one the oracle knows
    if expires is not None and rfc3339(expires) is not None:
        printed = rfc3339(doc.get("expiresAt"))
        if printed is None or abs(printed - rfc3339(expires)) > 1:
            bad("login-expiry", "expiresAt %r, the platform said %r (the HTTP protocol (README): recorded, not assumed)"
                % (doc.get("expiresAt"), expires))
    if account not in [a["id"] for a in accounts]:
        account = None                          # the README: an account the identity cannot use is cleared
    if account is None and len(accounts) == 1:
        account = accounts[0]["id"]
    if doc.get("accountId") != account:
        bad("login-account", "accountId %r, expected %r" % (doc.get("accountId"), account))

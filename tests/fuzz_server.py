"""The server side of the fuzzer: seeded answers of a hostile platform, a raw server, an oracle of promises.

generate(seed) returns Cases: one command of the tool and the answers one route of the platform gives
it, mutated or built to make a check that is not linear in their size show; the other routes answer as
API.md says. A case's `expect` is what its construction settles (a valid answer succeeds, a known code
wins, a broken answer is retried), None where the contract leaves the end to the tool.
HostileServer speaks raw bytes on 127.0.0.1 (and a second origin): broken framing, drips, hangs, an
endless body, any header. check(case, run) states the promises of CLI.md and API.md that every run
keeps; it imports nothing from landbase_import.py and reads no answer the way the tool does.
"""

import base64
import json
import random
import re
import select
import socket
import socketserver
import threading
import time
from html.entities import html5
from email.utils import formatdate
from http.client import responses as REASONS
from urllib.parse import quote, quote_plus

from support import EXITS as EXIT_CODES      # the tests' one table of CLI.md's exit codes

SEED = 20261129
TIMEOUT = 0.25                  # --timeout of the cases whose answers hang or drip
ROOMY_TIMEOUT = 5.0             # and of the others, which answer at once (a 4 MiB answer on a loaded machine)
MARGIN, CASE_BASE = 1.0, 2.0    # real seconds a request may take on top of --timeout, and a case on top of those
SLOW_CAP = TIMEOUT + 1.0        # a drip or hang the client has not left by then outlived its --timeout
# The promise (issue 21): any server text of up to 4 MiB is judged, redacted and printed in
# under 1 s of CPU (the thread that runs the tool) and 64 MiB of peak memory, on a terminal too.
# A linear tool spends about 0.1 s per MiB (0.4 s for the worst case at 4 MiB, 3.11); a check
# quadratic in 4 MiB needs hundreds of seconds, a backtracking one hours. The bound is the
# promise, whatever the size.
CPU_LIMIT = 1.0
MEMORY_LIMIT_MIB = 64           # API.md: memory stays bounded: the whole process, at its peak
# What a case may add to the process (the harness measures growth over a process at rest):
# 64 MiB less the tool at rest, which test_fuzz_server measures (rest_mib(): the file run by path,
# compiled as every start is, after one small status read: 18 MiB on 3.6, 25 MiB on 3.11 and 3.13
# here, without site); this figure applies where none was measured.
CASE_MIB = 38
MIB = 1024 * 1024
ENDLESS_BYTES = 32 * MIB        # an endless body the client has taken this far was read past the 4 MiB cap
ACCOUNT, IMPORT_ID, WEB = "acc_demo", 7, "https://platform.landbase.com"
WAIT_LIMIT, DEVICE_LIMIT = 30 * 60, 15 * 60
MARKER = "FORGED"               # hostile text puts this after a line break: no output line may begin with it
# the codes API.md lets a server's envelope carry
SERVER_CODES = ("VALIDATION_ERROR", "NOT_FOUND", "CONFLICT", "API_ERROR", "RATE_LIMITED", "UPGRADE_REQUIRED",
                "AUTH_FAILED")
FINAL_STATUSES = (400, 401, 403, 404, 409, 422, 426)     # API.md's statuses that are not transient
COMMANDS = {"status": "contacts-import status 7", "wait": "contacts-import wait 7", "start":
            "contacts-import start --json -", "auth-status": "auth status", "account-list": "account list",
            "with-token": "auth login --with-token", "device": "auth login --device",
            "doctor": "doctor"}
ONE_SHOT = ("status", "start", "auth-status", "account-list", "with-token")
PATHS = {"status": "/v1/accounts/%s/contacts-imports/7" % ACCOUNT, "start": "/v1/accounts/%s/contacts-imports"
         % ACCOUNT, "me": "/v1/me", "accounts": "/v1/accounts", "token": "/v1/oauth/token",
         "device": "/v1/oauth/device"}
PLAN = [("status", "status", 380), ("status", "wait", 200), ("start", "start", 220), ("me", "auth-status", 160),
        ("me", "with-token", 60), ("accounts", "account-list", 160), ("accounts", "with-token", 40),
        ("token", "device", 120), ("device", "device", 60)]     # (route, command, cases)


class Raw:
    """Literal JSON text (NaN, a deep nest, a long number) placed where a value goes."""

    def __init__(self, text):
        self.text = text


def dump(value, ascii_only=True):
    if isinstance(value, Raw):
        return value.text
    if isinstance(value, dict):
        return "{" + ", ".join(json.dumps(k, ensure_ascii=ascii_only) + ": " + dump(v, ascii_only)
                               for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(dump(v, ascii_only) for v in value) + "]"
    return json.dumps(value, ensure_ascii=ascii_only)


def encode(text):
    return text.encode("utf-8", "surrogatepass")


# ---------------------------------------------------------------- answers on the wire

# framing: what HTTP/1.1 makes of it for the case ("ok": the body is read as sent; "net": the answer is
# broken, a transient failure; None: HTTP leaves the client a choice)
FRAMINGS = {"length": "ok", "close": "ok", "chunked": "ok", "chunked-trailer": "ok", "http10": "ok", "continue": "ok",
            "cl-short": "net", "chunked-badhex": "net", "chunked-short": "net", "chunked-noend": "net",
            "chunked-huge": "net", "garbage": "net", "cl-long": None, "cl-bad": None, "cl-dup": None, "lf-only": None,
            "status-1000": None, "many-headers": None, "bad-header": None}
ACTIONS = {"reset": "net", "close": "net", "http09": "net", "binary": "net"}     # and the slow ones, drip to endless


class Answer:
    """One HTTP answer: status, headers, body, framing, and what the connection does (action)."""

    def __init__(self, status=200, body=b"", headers=(), framing="length", content_type="application/json",
                 action=None, chunks=None):
        self.status, self.headers, self.framing, self.action = status, list(headers), framing, action
        self.body = body if isinstance(body, bytes) else encode(body)
        self.content_type, self.chunks = content_type, chunks

    def wire(self, bases=None):
        """(head, body) as bytes; {SELF}, {OTHER} and {PORT} in header values become the servers' addresses."""
        framing, body, n = self.framing, self.body, len(self.body)
        status = {"http10": b"HTTP/1.0 %d OK" % self.status, "garbage": b"HTTP/1.1 2OO OK",
                  "status-1000": b"HTTP/1.1 1000 Big"}.get(framing, b"HTTP/1.1 %d %s" % (
                      self.status, REASONS.get(self.status, "Whatever").encode()))
        headers = [("Content-Type", self.content_type)] if self.content_type else []
        lengths = {"length": [n], "http10": [n], "continue": [n], "lf-only": [n], "garbage": [n], "status-1000": [n],
                   "many-headers": [n], "bad-header": [n], "cl-long": [max(0, n - 7)], "cl-short": [n + 10],
                   "cl-bad": ["-5" if n % 2 else "abc"], "cl-dup": [n, n + 5]}
        headers += [("Content-Length", str(value)) for value in lengths.get(framing, [])]
        if framing.startswith("chunked"):
            headers.append(("Transfer-Encoding", "chunked"))
            body = self.chunked(body, framing)
        headers += self.headers + [("X-H%d" % i, "v") for i in range(120 * (framing == "many-headers"))]
        headers += [("X Bad", "v")] * (framing == "bad-header") + [("Connection", "close")]
        lines = [status]
        for name, value in headers:
            for key, real in (bases or {}).items():
                value = value.replace(key, real)
            latin = all(ord(ch) < 256 for ch in value)      # what clients decode header bytes as, where it can
            lines.append(name.encode("latin-1") + b": " + (value.encode("latin-1") if latin else encode(value)))
        head = b"\r\n".join(lines) + b"\r\n\r\n"
        if framing == "continue":
            head = b"HTTP/1.1 100 Continue\r\n\r\n" + head
        return (head.replace(b"\r\n", b"\n") if framing == "lf-only" else head), body

    def chunked(self, body, framing):
        if framing in ("chunked-short", "chunked-huge"):
            return (b"%x\r\n" % (len(body) + 40) if framing == "chunked-short" else b"f" * 20 + b"\r\n") + body
        cuts = [0] + list(self.chunks or []) + [len(body)]
        out = [b"%x\r\n" % (b - a) + body[a:b] + b"\r\n" for a, b in zip(cuts, cuts[1:]) if b > a]
        end = {"chunked": b"0\r\n\r\n", "chunked-trailer": b"0\r\nX-Trailer: yes\r\n\r\n"}.get(framing, b"")
        return (b"zz\r\n" if framing == "chunked-badhex" else b"") + b"".join(out) + end    # noend: just closes

    def describe(self, limit=200):
        head, body = self.wire()
        text = head + (body if len(body) <= limit else body[:limit] + b"...(%d bytes)" % len(body))
        return ("[%s] " % self.action if self.action else "") + repr(text[:limit * 2])


# ---------------------------------------------------------------- the generator

def word(rng, n=12):
    return "".join(rng.choices("ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789", k=n))


def iso(epoch):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


HOSTILE = ["in_progress\n" + MARKER + " line", "in_progress\r\n" + MARKER, "\r" + MARKER, "x\x1b]0;%s\x07" % MARKER,
           "\x1b[2J\x1b[H" + MARKER, "\x1b[1A\x1b[K" + MARKER, "\x9b31m" + MARKER, "bell\x07 bs\x08 del\x7f nul\x00",
           "line\u2028" + MARKER, "nel\u0085" + MARKER, "\u202e%s reversed" % MARKER, "tab\there", "\x1b[6n",
           "p" * 5000, "\u6570\u636e\u5bfc\u5165\u4e2d" * 40, "e\u0301" * 60, "\U0001f600" * 30, "\ud800", "x\udfffy",
           "", " ", "null", "COMPLETED", "\u00e9t\u00e9"]
DELETE = object()
WRONG = [None, True, 0, -1, 7.0, 1.5, "7", "", [], {}, [7], 2 ** 64, Raw("1e400"), Raw("-0"), Raw("9" * 5000),
         "2026-13-45T99:99:99Z", "2026-12-05t10:00:00+02:00", "acc bad", "a" * 65, "lbs_a,b;c", "lbs_a b", 86400]
FIELDS = {"status": ["importId", "phase", "percent", "counts", "error", "counts.total", "error.message", "error.code"],
          "start": ["importId", "runRef"], "me": ["userId", "email", "expiresAt"],
          "accounts": ["accounts", "accounts.0", "accounts.0.id", "accounts.0.name"],
          "device": ["deviceCode", "userCode", "verificationUri", "interval", "expiresIn"],
          "token": ["accessToken", "expiresAt", "accountId"]}
SHOWN = ("phase", "userCode", "verificationUri")       # server text the tool prints on stderr


class Ctx:
    """What one case's generator knows: the route, the command, the tokens in play (none may be printed)."""

    def __init__(self, rng, route, command, now):
        self.rng, self.route, self.command, self.now = rng, route, command, now
        self.tokens, self.stored, self.env, self.stdin = [], None, None, None
        self.server_token = "lbs_" + word(rng, 24)
        if command in ("status", "wait", "start", "auth-status", "account-list", "doctor"):
            self.stored = rng.choice(["lbs_%s%s", "lbs_%s,%s;", "lbs_%s&x=%s'", 'lbs_%s"%s\\', "lbs_%s%%2C%s"]) \
                % (word(rng), word(rng))
            self.tokens.append(("stored", self.stored))
            if rng.random() < 0.25:
                self.env = rng.choice(["tok,en;odd/%s%s", "%s+%s==", "lbs_%s;%s", "env %s %s"]) % (word(rng), word(rng))
                self.tokens.append(("env", self.env))
        if command == "with-token":
            self.stdin = "lbs_" + word(rng, 24)
            self.tokens.append(("stdin", self.stdin))
        if command == "device":
            self.tokens.append(("server", self.server_token))
        self.bearer = self.env or self.stored or self.stdin or self.server_token

    def doc(self, phase=None):
        """A valid answer of the route, as API.md describes it."""
        rng, route = self.rng, self.route
        if route == "status":
            phase = phase or rng.choice(["draft", "preparing", "in_progress", "in_progress", "completed", "partial",
                                         "failed"])
            doc = {"importId": IMPORT_ID, "phase": phase, "percent": None, "counts": None, "error": None}
            if phase not in ("draft", "preparing"):
                doc["percent"] = 100 if phase == "completed" else rng.choice([0, 42, 42.5, 99.9])
                doc["counts"] = rng.choice([{"total": 1000, "imported": 410, "skipped": 10, "failed": 0},
                                            {"total": 1000, "imported": 410}, {"total": None}, {}])
            if phase in ("partial", "failed"):
                doc["error"] = {"code": "SOME_CONTACTS_FAILED", "message": "100 contacts could not be imported"}
            return doc
        if route == "start":
            return {"importId": rng.choice([7, 8, 123456]), "runRef": "run_01J9" + word(rng, 8)}
        if route == "me":
            return {"userId": "usr_123", "email": "sam@acme.example", "expiresAt": iso(self.now + 4 * 86400)}
        if route == "accounts":
            picked = rng.sample([("acc_abc123", "Acme Corp"), (ACCOUNT, "Demo Co"), ("acc-team_2", "Team \u00e9")],
                                rng.choice([0, 1, 2, 3]))
            return {"accounts": [{"id": i, "name": n} for i, n in picked]}
        if route == "device":
            return {"deviceCode": "dc_" + word(rng), "userCode": "WDJB-MJHT", "verificationUri": WEB + "/cli/device",
                    "interval": rng.choice([1, 5, 10]), "expiresIn": rng.choice([300, 900])}
        self.tokens.append(("server", "lbs_" + word(rng, 24)))
        return {"accessToken": self.tokens[-1][1], "expiresAt": iso(self.now + 7 * 86400),
                "accountId": rng.choice([None, "acc_x"])}

    def answer(self, doc, **kw):
        status = self.rng.choice([200, 201, 202] if self.route == "start" else [200, 200, 201, 203])
        return Answer(status, encode(dump(doc, ascii_only=self.rng.random() < 0.5)), **kw)


def escaped_forms(token):
    """The token as a server may write it: JSON with every escape it allows, URL-encoded, HTML-escaped."""
    return {"json-u": "".join(ch if ch.isalnum() else "\\u%04x" % ord(ch) for ch in token),
            "json-slash": json.dumps(token)[1:-1].replace("/", "\\/"), "url": quote(token, safe=""),
            "html": token.replace("&", "&amp;").replace('"', "&quot;").replace("'", "&#39;")}


def envelope(code, message="it failed", meta=None):
    return dump({"error": {"code": code, "message": message, "meta": {} if meta is None else meta}})


# Each family returns (answers, end), end being what the construction implies for the first answer:
# ("ok", doc) a valid answer; "broken" a 2xx API.md calls broken (a transient API_ERROR); "net" a broken
# exchange; "follow" a same-origin redirect to the usual answer; ("code", C) a final status whose known code
# wins; ("transient", C) a 429 or 5xx that ends in C if it never stops; None: the contract leaves it open.

def fam_valid(ctx):
    doc = ctx.doc()
    if ctx.rng.random() < 0.4:
        doc["x-extra"] = ctx.rng.choice([{"nested": [1, {"a": None}]}, "text", 1.5e300, [], "\u00e9" * 10])
    return [ctx.answer(doc)], ("ok", doc)


def fam_fields(ctx):
    """A field of a valid answer gone, of another type, hostile text, or a value the contract does not settle."""
    doc = ctx.doc()
    if ctx.route == "accounts":
        doc["accounts"].append({"id": "acc_abc123", "name": "Acme Corp"})
    path = [int(key) if key.isdigit() else key for key in ctx.rng.choice(FIELDS[ctx.route]).split(".")]
    node = doc
    for key in path[:-1]:
        node[key] = node[key] if isinstance(node[key], (dict, list)) else {}
        node = node[key]
    value = ctx.rng.choice([ctx.rng.choice(WRONG), ctx.rng.choice(HOSTILE), ctx.rng.choice(HOSTILE), DELETE])
    if value is DELETE:
        node.pop(*path[-1:] if isinstance(node, list) else (path[-1], None))
    else:
        node[path[-1]] = value
    answer = ctx.answer(doc)
    answer.shown = value if path[-1] in SHOWN else None
    return [answer], None


def fam_echo(ctx):
    """The token the tool sent, echoed in a field, a header, an error, an escape, a redirect."""
    rng, token, doc = ctx.rng, ctx.bearer, ctx.doc()
    forms = escaped_forms(token)
    text = rng.choice([token, "token %s is not valid" % token, "Bearer " + token, "x" * 300 + token,
                       "rejected: %s\n%s" % (token, MARKER), '{"accessToken": "%s"}' % token])
    where = rng.randrange(6)
    if where < 2:
        doc["note"] = text if where == 0 else Raw('"token %s"' % forms[rng.choice(["json-u", "json-slash"])])
        return [ctx.answer(doc, headers=[("X-Echo", "Bearer " + token), ("Set-Cookie", "s=%s; Path=/" % token)])], None
    if where < 4:
        body = rng.choice([envelope("API_ERROR", text, {"token": token}), "<html>%s refused</html>" % forms["html"],
                           "upstream said: Authorization: Bearer " + token,
                           '{"error": {"code": "X", "message": "token %s", "meta": {}}}' % forms["json-u"]])
        return [Answer(rng.choice([400, 401, 403, 404, 429, 500, 503]), body, content_type="text/html")], None
    target = rng.choice(["{SELF}%s?fuzz-redirected=1&t=%s" % (PATHS[ctx.route], rng.choice([forms["url"], token])),
                         "{OTHER}/v1/me?token=" + token, "http://evil.example/?t=" + forms["url"]])
    return [Answer(rng.choice([302, 307, 308]), b"", headers=[("Location", target)], content_type=None)], None


BROKEN_TEXT = [lambda t: t[:-1] + ", " + t[1:], lambda t: t[:len(t) // 2], lambda t: t + "x", lambda t: t + "{}",
               lambda t: t + "\n" + t, lambda t: t.replace('"', "'"), lambda t: t[:-1] + ",}", lambda t: "/* c */" + t,
               lambda t: t.replace("}", ', "x": tru}', 1), lambda t: t.replace("}", ', "x": 01}', 1),
               lambda t: t.replace("}", ', "x": NaN}', 1), lambda t: t.replace("}", ', "x": "a\x01b"}', 1),
               lambda t: t.replace("}", ', "x": %s}' % ("[" * 66 + "]" * 66), 1),
               lambda t: t.replace("}", ', "x": %s1}' % ('{"a":' * 5000) + "}" * 5000, 1)]


def fam_json(ctx):
    """Bodies that are not strict JSON, not UTF-8, not an object: each broken by construction (API.md)."""
    rng, doc = ctx.rng, ctx.doc()
    kind = rng.randrange(5)
    if kind < 2:                        # every key twice, a cut, trailing text, NaN, a control character ...
        body = encode(rng.choice(BROKEN_TEXT)(dump(doc, ascii_only=False)))
    elif kind == 2:
        body = rng.choice([b"", b"null", b"[]", b"7", b'"x"', b"true", b"<html>maintenance</html>"])
    elif kind == 3:
        body = dump(doc, ascii_only=False).encode(rng.choice(["utf-16", "utf-32"]))
    else:
        body = encode(dump(doc)).replace(b'"', b'"' + rng.choice([b"\xff", b"\xc0\xaf", b"\xed\xa0\x80", b"\xe9"]), 1)
    return [Answer(rng.choice([200, 201]), body)], "broken"


RETRY_AFTER = ["0", "1", "30", "  7  ", "\u00b2", "\u0663", "-1", "1e9", "1.5", "abc", "", "99999999999999999999",
               "5, 7", "3600", "Fri, 31 Dec 9999 23:59:59 GMT", "Thu, 01 Jan 1970 00:00:00 GMT",
               "Mon, 99 Foo 2026 99:99:99 GMT", "\x1b[2J", "7" * 5000]


def fam_status(ctx):
    """Statuses other than 2xx: an envelope with a known code, a damaged one, HTML, nothing; Retry-After."""
    rng = ctx.rng
    status = rng.choice(FINAL_STATUSES + (418, 429, 429, 451, 500, 502, 503, 503, 524, 599, 600, 999, 199, 304))
    code = "RATE_LIMITED" if status == 429 else "API_ERROR" if status >= 500 else rng.choice(SERVER_CODES)
    headers = [("Retry-After", rng.choice(RETRY_AFTER))] * (status in (429, 503) and rng.random() < 0.7)
    meta = {"retry_after_seconds": rng.choice([5, -3, "5", True, 10 ** 30, 2.5, []])} if rng.random() < 0.3 else {}
    if ctx.route == "token" and rng.random() < 0.5:
        code = rng.choice(["AUTHORIZATION_PENDING", "SLOW_DOWN", "ACCESS_DENIED", "EXPIRED_TOKEN"])
    if rng.random() < 0.6:
        end = ("code", code) if status in FINAL_STATUSES else \
            ("transient", code) if status == 429 or 500 <= status <= 599 else None
        return [Answer(status, envelope(code, rng.choice(["it failed", rng.choice(HOSTILE)]), meta), headers)], end
    body = rng.choice([envelope(rng.choice(["WEIRD", "", None, 7, "INVALID_INPUT"]), rng.choice([None, 42])),
                       dump({"error": rng.choice(["denied", 7, None, [], {"code": {"nested": 1}}])}),
                       envelope(code, "m", Raw("NaN")), "<html><h1>%d</h1>proxy error</html>" % status, "", "oops"])
    return [Answer(status, body, headers, content_type="text/html" if body else None)], None


def fam_wire(ctx):
    """What HTTP/1.1 framing can do to an answer: chunks, lengths that lie, a cut, garbage, a reset."""
    doc = ctx.doc()
    answer = ctx.answer(doc)
    if ctx.rng.random() < 0.2:
        answer.action = ctx.rng.choice(sorted(ACTIONS))
        return [answer], ACTIONS[answer.action]
    answer.framing = ctx.rng.choice(sorted(FRAMINGS))
    if answer.framing.startswith("chunked") and len(answer.body) > 2:
        answer.chunks = sorted(ctx.rng.sample(range(1, len(answer.body)), min(len(answer.body) - 1, 3)))
    return [answer], ("ok", doc) if FRAMINGS[answer.framing] == "ok" else FRAMINGS[answer.framing]


def fam_redirect(ctx):
    rng, path = ctx.rng, PATHS[ctx.route]
    kind = rng.randrange(3)
    target = [rng.choice(["{SELF}", "", "http://127.0.0.1:{PORT}"]) + path + "?fuzz-redirected=1",
              rng.choice(["{OTHER}" + path, "http://evil.example/", "https://127.0.0.1:{PORT}" + path, "//evil.x"]),
              rng.choice(["http://127.0.0.1:99999/", "http://[::1:{PORT}/", "javascript:alert(1)", "file:///etc/passwd",
                          "{SELF}%s\x1b[31m" % path, "/v1/\x00x", "http://user:pw@127.0.0.1:{PORT}" + path, ""])][kind]
    status = rng.choice([307, 308] if kind == 0 else [301, 302, 303, 307, 308])
    headers = [("Location", target)] if target else []
    # the same origin, a method-keeping status: the target's answer counts; another origin: API_ERROR (API.md)
    return [Answer(status, b"", headers, content_type=None)], ["follow", ("code", "API_ERROR"), None][kind]


def fam_grant(ctx):
    """Device flow: pending and slow_down answers from the token route, then maybe the platform's refusal."""
    rng = ctx.rng
    codes = [rng.choice(["AUTHORIZATION_PENDING", "SLOW_DOWN"]) for _ in range(rng.randrange(1, 4))]
    codes += [rng.choice(["ACCESS_DENIED", "EXPIRED_TOKEN", "INVALID_GRANT"])] * (rng.random() < 0.3)
    return [Answer(rng.choice([400, 401, 428]), envelope(code, rng.choice(["waiting", rng.choice(HOSTILE)])))
            for code in codes], None


FAMILIES = {"valid": (fam_valid, 10, None), "fields": (fam_fields, 24, None), "echo": (fam_echo, 9, None),
            "json": (fam_json, 12, None), "status-code": (fam_status, 18, None), "wire": (fam_wire, 12, None),
            "redirect": (fam_redirect, 6, None), "grant": (fam_grant, 25, ("token",))}


class Case:
    """One run of the tool: the command, the session, the answers of the targeted route, what to expect."""

    def __init__(self, ctx, family, answers, persistent=False, end=None, kind=None):
        rng, command = ctx.rng, ctx.command
        self.index, self.route, self.command, self.family, self.kind = None, ctx.route, command, family, kind
        self.answers, self.persistent = answers, persistent
        self.tokens, self.bearer, self.env_token, self.server_token = ctx.tokens, ctx.bearer, ctx.env, ctx.server_token
        self.tty = command == "wait" and rng.random() < 0.35
        self.timeout = TIMEOUT if family == "slow" else ROOMY_TIMEOUT
        extra = ["--timeout=%g" % self.timeout] + ["--verbose"] * (rng.random() < 0.2)
        self.argv = extra + COMMANDS[command].split() if rng.random() < 0.3 else COMMANDS[command].split() + extra
        self.stdin = b'{"datasetId": "ds_demo", "tagName": "server fuzz"}' if command == "start" else \
            (ctx.stdin + "\n").encode() if command == "with-token" else b""
        self.session = json.dumps({"accessToken": ctx.stored, "expiresAt": iso(ctx.now + 6 * 86400), "deviceName":
                                   "fuzz-host", "accountId": ACCOUNT}).encode() if ctx.stored else None
        self.expect = expectation(self, end)
        self.size = 0               # the bytes a complexity case is judged on (its CPU time is bounded by them)
        self.silent = False         # the input is refused before anything is sent
        self.redraws = 0            # on a terminal: the redraws it is built to cause, at least
        self.proxy = None           # the test proxy the case runs behind: tests/proxy.py options
        self.clock = None           # doctor: the Date is "invalid" (or missing), a "skew" or "now"
        self.real_seconds = None    # when the harness stops it (None: by its size)
        self.full_only = False      # run by make reliability only (a slow case)
        self.columns = 80           # of the terminal, for a case on one (tty)

    def fallback(self, route):
        """The answer API.md describes, for every route and request the case does not target."""
        later = time.time()
        doc = {"me": {"userId": "usr_fuzz", "email": "fuzz@acme.example", "expiresAt": iso(later + 5 * 86400)},
               "accounts": {"accounts": [{"id": ACCOUNT, "name": "Demo Co"}]},
               "start": {"importId": IMPORT_ID, "runRef": "run_FUZZ7"},
               "status": {"importId": IMPORT_ID, "phase": "in_progress" if self.command == "status" else "completed",
                          "percent": 42, "error": None, "counts": {"total": 10, "imported": 9, "skipped": 1}},
               "token": {"accessToken": self.server_token, "expiresAt": iso(later + 7 * 86400), "accountId": None},
               "device": {"deviceCode": "dc_fuzz", "userCode": "WDJB-MJHT", "verificationUri": WEB + "/cli/device",
                          "interval": 5, "expiresIn": 600}}.get(route)
        if doc is None:
            return Answer(204, b"", content_type=None) if route == "revoke" else Answer(404, envelope("NOT_FOUND"))
        return Answer(202 if route == "start" else 200, dump(doc))

    def describe(self):
        return "case %d [%s/%s%s] %s%s%s; %s answer %s: %s%s" % (
            self.index, self.route, self.family, "/" + self.kind if self.kind else "", " ".join(self.argv),
            " LANDBASE_ACCESS_TOKEN=%r" % self.env_token if self.env_token else "", " (tty)" if self.tty else "",
            self.route, "always" if self.persistent else "x%d" % len(self.answers),
            self.answers[0].describe() if self.answers else "-",
            " (+%d more)" % (len(self.answers) - 1) if len(self.answers) > 1 else "")


def expectation(case, end):
    """The ends CLI.md allows a case whose first answer's construction implies `end` ("!OK": any failure),
    or None: one-shot commands retry a transient failure 3 times, a wait rides it out, and ends on a
    terminal phase, NOT_FOUND or AUTH_FAILED; a device login polls until its code expires."""
    command, persistent = case.command, case.persistent
    never_heals = persistent or len(case.answers) >= 4
    if end is None or (command == "device" and end not in ("broken", "net", "follow")):
        return None
    if command == "with-token" and case.route == "accounts" and end != "follow" and end[0] != "ok":
        return None                 # CLI.md does not say whether a login whose accounts cannot be read fails
    if end == "follow" or (end[0] == "ok" and command != "wait"):
        return {"OK"}
    if end[0] == "ok":
        ended = {"completed": "OK", "partial": "IMPORT_PARTIAL", "failed": "IMPORT_FAILED"}.get(end[1].get("phase"))
        return {ended} if ended else {"TIMEOUT"} if persistent else {"OK"}
    if end in ("broken", "net"):
        failure = {"TIMEOUT"} if command == "wait" else {"API_ERROR"} if end == "broken" and command != "device" \
            else {"!OK"}
        return failure if never_heals else {"OK"}
    if end[0] == "code":
        return {end[1]} if command in ONE_SHOT or end[1] in ("NOT_FOUND", "AUTH_FAILED") else None
    if command == "wait":               # a Retry-After past the 30 minutes may end it
        return {"TIMEOUT"} if persistent else {"OK", "TIMEOUT"}
    return {end[1]} if never_heals else {"OK", end[1]}       # a long Retry-After may end a one-shot command early


def make_case(rng, route, command, now):
    ctx = Ctx(rng, route, command, now)
    names = [n for n, (_, _, routes) in sorted(FAMILIES.items()) if routes is None or route in routes]
    family = rng.choices(names, [FAMILIES[n][1] for n in names])[0]
    answers, end = FAMILIES[family][0](ctx)
    roll, persistent = rng.random(), False
    if family != "grant":           # the same answer for ever: rarely for a wait (a 30-minute one, 92 polls)
        times, persistent = (1, False) if roll < 0.7 else (2 + 2 * (command in ONE_SHOT and roll < 0.75), False) \
            if roll < (0.85 if command in ONE_SHOT else 0.97) else (1, True)
        answers = answers * times
    elif roll < 0.03:
        persistent, answers = True, answers[:1]     # pending for ever: the device code expires
    return Case(ctx, family, answers, persistent, end)


# ---------------------------------------------------------------- fixed cases: slow, big, built for complexity

def build(rng, now, route, command, family, answer, end=None, persistent=False, kind=None, **attrs):
    ctx = Ctx(rng, route, command, now)
    answers = answer(ctx) if callable(answer) else answer
    case = Case(ctx, family, answers if isinstance(answers, list) else [answers], persistent, end, kind)
    for name, value in attrs.items():
        setattr(case, name, value)
    if attrs.get("verbose"):
        case.argv = [a for a in case.argv if a != "--verbose"] + ["--verbose"]
    return case


def fixed_cases(rng, now):
    """Drips, hangs, an endless body, answers around the 4 MiB cap, Retry-After digits int() refuses, long
    text on a terminal, the depth limit."""
    cases = []

    def add(*args, **kwargs):
        cases.append(build(rng, now, *args, **kwargs))

    def status_doc(phase="in_progress", **fields):
        return lambda ctx: ctx.answer(dict(ctx.doc(phase), **fields))

    for phase in ("p" * 5000, "\u6570" * 300 + "\x1b[2J" + MARKER):
        add("status", "wait", "strings", status_doc(phase), tty=True)

    def echoed(ctx):            # a same-origin redirect that carries the token, percent-encoded, under --verbose
        ctx.env = ctx.bearer = "env %s %s" % (word(rng), word(rng))
        ctx.tokens.append(("env", ctx.env))
        target = "{SELF}%s?fuzz-redirected=1&t=%s" % (PATHS["accounts"], quote(ctx.env, safe=""))
        return Answer(308, b"", [("Location", target)], content_type=None)
    add("accounts", "account-list", "echo", echoed, "follow", verbose=True)
    add("token", "device", "fields", lambda ctx: ctx.answer(dict(ctx.doc(), accessToken="null")))
    add("token", "device", "fields", lambda ctx: ctx.answer({k: v for k, v in ctx.doc().items() if k != "accountId"}))
    for route, command, action, framing in (("status", "status", "drip", "length"), ("me", "auth-status", "hang",
                                            "length"), ("token", "device", "head-hang", "length"),
                                            ("status", "wait", "hold", "cl-short")):
        add(route, command, "slow", lambda ctx, a=action, f=framing: ctx.answer(ctx.doc("in_progress"), action=a,
                                                                               framing=f), "net")
    add("start", "start", "slow", Answer(202, '{"importId": 7, "runRef": "r", "pad": "', framing="chunked-noend",
                                         action="endless"), "net")
    # Retry-After digits that str.isdigit() takes and int() refuses, on answers whose end they must not change
    for route, command, status, code, digit, persistent in (
            ("status", "status", 429, "RATE_LIMITED", "\u00b2", True), ("status", "status", 400, "VALIDATION_ERROR",
                                                                        "\u00b2", False),
            ("status", "wait", 404, "NOT_FOUND", "\u00b3", False), ("start", "start", 409, "CONFLICT", "\u00b9", False),
            ("accounts", "account-list", 503, "API_ERROR", "\u00b2", True)):
        add(route, command, "retry-after", Answer(status, envelope(code, "no"), [("Retry-After", digit)]),
            ("transient" if status in (429, 503) else "code", code), persistent)
    for route, command, size, persistent in (("status", "status", 3 * MIB, False), ("accounts", "account-list",
                                             3 * MIB, False), ("status", "wait", 5 * MIB, False),
                                             ("me", "auth-status", 5 * MIB, True), ("status", "status", 5 * MIB, True)):
        add(route, command, "size", lambda ctx, s=size: ctx.answer(dict(ctx.doc("in_progress"), pad="x" * s)),
            ("ok", {}) if size < 4 * MIB else "broken", persistent)
    add("start", "start", "size", Answer(202, dump({"importId": 7, "runRef": "r", "pad": "y" * (5 * MIB)}),
                                         framing="chunked", chunks=[MIB * k for k in range(1, 6)]), "broken", True)
    for depth in (64, 65):      # the README: a document nested deeper than 64 levels is not strict JSON
        add("status", "status", "depth", status_doc(deep=Raw("[" * (depth - 1) + "]" * (depth - 1))),
            ("ok", {}) if depth == 64 else "broken", True, kind="depth %d" % depth)
    return cases


def padded(prefix, unit, suffix, size):
    """prefix + unit repeated + suffix, about `size` bytes."""
    return prefix + unit * max(1, (size - len(prefix) - len(suffix)) // len(unit)) + suffix


def many_keys(prefix, size):
    return prefix + ", ".join('"k%07d": 0' % i for i in range((size - len(prefix)) // 15)) + "}}"


NEAR_MISS = "a" * 4000 + "b" + "a" * 4000   # a secret the tool then redacts: a^k b a^k is str.find's worst case
HEAD = '{"importId": 7, "phase": "in_progress", "percent": 1, "counts": null, "error": null, "x": '
PHASE_HEAD = '{"importId": 7, "phase": "'
PHASE_TAIL = '", "percent": 1, "counts": null, "error": null}'
ERROR_HEAD, ERROR_TAIL = '{"error": {"code": "API_ERROR", "message": "', '", "meta": {}}}'
# name: (route, command, body of about n bytes, what the construction implies: "ok" a valid
# answer, "broken" a 2xx that is not, "error" an HTML 500 page, "json-error" a 500 with the
# envelope, "redrawn" a wait on a terminal that redraws the answer's phase for 35 s (two failed
# polls, then the wait ends), a code for input)
COMPLEXITY = {
    "unterminated escapes after 65 [": ("status", "status", lambda n: padded("[" * 65 + '"', '\\"', "", n), "broken"),
    "deep nesting": ("status", "status", lambda n: "[" * (n // 2) + "]" * (n // 2), "broken"),
    "long escape run": ("status", "status", lambda n: padded(HEAD + '"', '\\"\\u00e9', '"}', n), "ok"),
    "brackets in a string": ("status", "status", lambda n: padded(HEAD + '"', "[{", '"}', n), "ok"),
    # more keys in one object than MAX_OBJECT_KEYS from 150 KiB: refused before it is parsed, retried
    "many keys": ("status", "status", lambda n: many_keys(HEAD + "{", n), "broken"),
    "long number": ("status", "status", lambda n: padded(HEAD, "1", "}", n), None),
    "long fraction": ("status", "status", lambda n: padded(HEAD + "0.", "1", "}", n), None),
    "many small strings": ("accounts", "account-list", lambda n: padded(
        '{"accounts": [{"id": "acc_demo", "name": "D"}], "x": [', '"a", ', '"a"]}', n), "ok"),
    # more values than MAX_JSON_VALUES from 160 KiB: refused before it is parsed, retried (an accounts
    # list may hold more: "many small strings")
    "many empty containers": ("status", "status", lambda n: padded(HEAD + "[", "[], {}, ", "0]}", n), "broken"),
    "many two-letter strings": ("status", "status", lambda n: padded(HEAD + "[", '"ab", ', '"ab"]}', n), "broken"),
    "near misses of a secret the answer carries": ("status", "status", lambda n: padded(
        '{"accessToken": "%s", "x": "' % NEAR_MISS, "a", '"}', n), "error"),
    "token-like runs": ("status", "status", lambda n: padded(HEAD + '"', "lbs_lbs_ \\\"lbs_x,", '"}', n), "ok"),
    "token-like runs in what is printed": ("status", "status", lambda n: padded(
        HEAD[:HEAD.index('"counts"')] + '"counts": {"total": 1}, "error": {"x": "', "lbs_lbs_ \\\"lbs_x\\u0007,",
        '"}}', n), "ok"),
    "long phase, on a terminal": ("status", "wait", lambda n: padded(
        PHASE_HEAD, "\u00e9\u6570lbs_", PHASE_TAIL, n // 3), "ok"),
    "HTML error with unterminated quotes": ("status", "status", lambda n: padded(
        "<html><body>" + "[" * 65 + '"', '\\"&quot;\\u00', "", n), "error"),
    "JSON error with unterminated escapes": ("status", "status", lambda n: padded(
        '{"error": {"code": "API_ERROR", "message": ' + "[" * 65 + '"', '\\"', "", n), "error"),
    # issue 21: character references (html.unescape over a whole text: int() of 4,301 digits
    # raises on 3.7+, and 3.6 is quadratic), percent runs (unquote_plus: a list item per %), long
    # phases redrawn on a terminal
    "&# and digits as the phase": ("status", "status", lambda n: padded(
        PHASE_HEAD + "&#", "1", PHASE_TAIL, n), "ok"),
    "&# and digits in an HTML 500 page": ("status", "status", lambda n: padded(
        "<html><body>&#", "7", "</body></html>", n), "error"),
    "&# and digits in an error message": ("status", "status", lambda n: padded(
        ERROR_HEAD + "&#", "7", ERROR_TAIL, n), "json-error"),
    "numeric references (&#NNN; &#xHH;) as the phase": ("status", "status", lambda n: padded(
        PHASE_HEAD, "&#108;&#x62;&#115;&#95;", PHASE_TAIL, n), "ok"),
    "named references in an error message": ("status", "status", lambda n: padded(
        ERROR_HEAD, "&amp;&lt;&nbsp;&hellip;&NotNestedGreaterGreater;&amp", ERROR_TAIL, n),
        "json-error"),
    "% run in an answer": ("status", "status", lambda n: padded(HEAD + '"', "%", '"}', n), "ok"),
    "%41 run in an answer": ("status", "status", lambda n: padded(HEAD + '"', "%41", '"}', n),
                             "ok"),
    "%%% run with broken escapes in an answer": ("status", "status", lambda n: padded(
        HEAD + '"', "%%%4%g", '"}', n), "ok"),
    "+ run in an answer": ("status", "status", lambda n: padded(HEAD + '"', "+", '"}', n), "ok"),
    "% run as the phase": ("status", "status", lambda n: padded(
        PHASE_HEAD, "%", PHASE_TAIL, n), "ok"),
    "a run as the phase, redrawn on a terminal": ("status", "wait", lambda n: padded(
        PHASE_HEAD, "a", PHASE_TAIL, n), "redrawn"),
    "% run as the phase, redrawn on a terminal": ("status", "wait", lambda n: padded(
        PHASE_HEAD, "%", PHASE_TAIL, n), "redrawn"),
    # what the tool reads from its user, 1 MiB at most: start --json -, and platform.json
    "--json body: unterminated escapes after 65 [": ("start", "stdin", lambda n: padded("[" * 65 + '"', '\\"', "", n),
                                                     "INVALID_INPUT"),
    "--json body: many keys": ("start", "stdin", lambda n: many_keys('{"datasetId": "d", "tagName": "t", "x": {', n),
                               "INVALID_INPUT"),
    "platform.json: unterminated escapes after 65 [": ("status", "session", lambda n: padded(
        "[" * 65 + '"', '\\"', "", n), "SETUP_FAILED"),
}


def complexity_cases(rng, now, sizes, kinds=None):
    """Answers of up to 4 MiB and inputs of up to 1 MiB built so that a check not linear in their size shows."""
    cases = []
    for size in sizes:
        for name, (route, command, body, end) in sorted(COMPLEXITY.items()):
            if (kinds is not None and name not in kinds) or (command in ("stdin", "session") and size > MIB):
                continue
            text = encode(body(size - 200))
            if command in ("stdin", "session"):
                case = build(rng, now, route, "start" if command == "stdin" else "status", "complexity", [],
                             kind=name, verbose=True, size=len(text), silent=True, env_token=None, **{command: text})
                case.expect, case.tokens = {end}, [token for token in case.tokens if token[0] != "env"]
            else:
                answers, end = complexity_answers(text, end)
                case = build(rng, now, route, command, "complexity", answers, end, kind=name,
                             verbose=True, size=len(text), tty=command == "wait")
                case.redraws = REDRAWS if len(answers) > 1 else 0
            cases.append(case)
    return cases


# ---------------------------------------------------------------- issue 21's shapes (round three)

# A secret as a server or a proxy may write it back: each form's text, given the secret. The oracle
# reads the output in each of these ways (readings()); base64 is a secret of its own (the proxy's).
NAMED_REFERENCES = {",": "&comma;", ";": "&semi;", "/": "&sol;", "+": "&plus;", "_": "&lowbar;",
                    "&": "&amp;", "%": "&percnt;", '"': "&quot;", "'": "&apos;", "\\": "&bsol;",
                    ":": "&colon;", "@": "&commat;", "=": "&equals;", ".": "&period;",
                    "(": "&lpar;", ")": "&rpar;", " ": "&#32;"}
ECHO_FORMS = {
    "as sent": lambda text: text,
    "\\u escapes": lambda text: "".join("\\u%04x" % ord(ch) for ch in text),
    "decimal references": lambda text: "".join("&#%d;" % ord(ch) for ch in text),
    "hex references": lambda text: "".join("&#x%x;" % ord(ch) for ch in text),
    "named references": lambda text: "".join(NAMED_REFERENCES.get(ch, ch) for ch in text),
    "percent-encoding": lambda text: "".join("%%%02X" % byte for byte in text.encode("utf-8")),
    "form encoding": lambda text: quote_plus(text, safe=""),
}
DIGITS = "1234567890"


def digits(count):
    return (DIGITS * (count // 10 + 1))[:count]


# nothing resolves .invalid (RFC 2606): the test proxy "resolves" it, and connects nowhere
PROXY_BASE = "https://api.fuzz.invalid:8443"
PROXY_WEB = "https://platform.fuzz.invalid"
PROXY_USER, PROXY_PASSWORD = "corp.user", "pa:ss@w%rd/Qx7Lm2Vk9Rt4"
PROXY_COMMANDS = {"status": "status", "wait": "status", "start": "start", "auth-status": "me",
                  "account-list": "accounts", "with-token": "me", "device": "device",
                  "doctor": "me"}
DRIP, DRIP_TIMEOUT = 1.0, 1.5   # a byte a second under --timeout 1.5: no socket timeout trips
QUICK_DRIP, QUICK_TIMEOUT = 0.3, 0.5      # the same for doctor in make test, in a third the time


def proxy_url(port):
    """HTTPS_PROXY for the test proxy on 127.0.0.1:port, the user and password percent-encoded."""
    user, password = quote(PROXY_USER, safe=""), quote(PROXY_PASSWORD, safe="")
    return "http://%s:%s@127.0.0.1:%d" % (user, password, port)


def proxy_secrets():
    """Every form of the proxy's credentials the tool sends or holds: the password, user:password,
    and the base64 of the Proxy-Authorization value (RFC 7617: Basic base64(user ":" password))."""
    pair = "%s:%s" % (PROXY_USER, PROXY_PASSWORD)
    return [("proxy password", PROXY_PASSWORD), ("proxy user:password", pair),
            ("proxy Basic", base64.b64encode(pair.encode("utf-8")).decode("ascii"))]


def proxy_echo(form):
    """What the echoing proxy writes, from the Proxy-Authorization value it received: the value as
    sent, its base64 alone, or user:password decoded and written in `form`."""
    if form == "as sent":
        return lambda value: value
    if form == "base64":
        return lambda value: value.split()[-1]
    return lambda value: ECHO_FORMS[form](_basic_pair(value))


def _basic_pair(value):
    try:
        return base64.b64decode(value.split()[-1]).decode("utf-8", "replace")
    except (ValueError, IndexError):
        return value


# doctor against hostile Date headers (API.md: an HTTP-date; RFC 9110: IMF-fixdate, a 4-digit
# year). "skew": a valid date far from now; "invalid": missing or not a valid date (a warning that
# says so, never a skew); "now": the present
DATES = [("the year 10000", "Sat, 01 Jan 10000 00:00:00 GMT", "invalid"),
         ("2^31 seconds after the epoch", "Tue, 19 Jan 2038 03:14:08 GMT", "skew"),
         ("the last second of 9999", "Fri, 31 Dec 9999 23:59:59 GMT", "skew"),
         ("the epoch", "Thu, 01 Jan 1970 00:00:00 GMT", "skew"),
         ("32 February", "Mon, 32 Feb 2026 10:00:00 GMT", "invalid"),
         ("25:61:61", "Mon, 02 Feb 2026 25:61:61 GMT", "invalid"),
         ("a zone offset of 10^10 hours", "Mon, 02 Feb 2026 10:00:00 +9999999999", "invalid"),
         ("a year of 40 digits", "Mon, 02 Feb %s 10:00:00 GMT" % digits(40), "invalid"),
         ("missing", None, "invalid"),
         ("empty", "", "invalid"),
         ("unparsable", "yesterday at noon", "invalid"),
         ("escapes", "\x1b[2J" + MARKER + " \x07", "invalid"),
         ("now", "{NOW}", "now")]


def round_three_cases(rng, now):
    """Issue 21's shapes at fixed sizes: character references, percent runs, a proxy that answers
    CONNECT with garbage, drips or echoes its credentials, hostile Date headers for doctor, a token
    echoed in every escaping. The sized ones (4 MiB, on a terminal) are in COMPLEXITY."""
    cases = []

    def add(route, command, family, answer, end=None, kind=None, **attrs):
        case = build(rng, now, route, command, family, answer, end, kind=kind, **attrs)
        cases.append(case)
        return case

    def status_answer(phase):
        return lambda ctx: ctx.answer(dict(ctx.doc("in_progress"), phase=phase))

    transient = ("transient", "API_ERROR")
    for count in (4301, 1000000):
        text = "&#" + digits(count)
        case = add("status", "status", "references", status_answer(text), ("ok", {}),
                   "&# and %d digits as the phase" % count)
        case.size = len(text)           # bounded by the promise: 1 s of CPU
    page = Answer(500, "<html><body><h1>500</h1>&#%s;</body></html>" % digits(5000),
                  content_type="text/html")
    case = add("status", "wait", "references", [page, page], transient,
               "two HTML 500 pages with &# and 5000 digits, ridden out")
    case.expect = {"OK"}            # the third poll gets the fallback: completed
    add("status", "wait", "references", status_answer("&#" + digits(4301)), ("ok", {}),
        "&# and 4301 digits as the phase, on a terminal", tty=True)
    add("status", "wait", "references", status_answer("&#" + digits(4301)), ("ok", {}),
        "&# and 4301 digits as the phase, the log form", tty=False)
    add("status", "status", "references", Answer(404, envelope("NOT_FOUND", "&#" + digits(5000))),
        ("code", "NOT_FOUND"), "&# and 5000 digits in a 404's message")
    refs = "&#108;&#x62;&#115;&#95;&amp;&lt;&nbsp;&hellip;&NotNestedGreaterGreater;" * 200
    add("status", "status", "references", Answer(500, envelope("API_ERROR", refs)), transient,
        "numeric and named references in a 500's message")
    add("status", "wait", "references", status_answer(refs), ("ok", {}),
        "numeric and named references as the phase, on a terminal", tty=True)
    for unit in ("%", "%41", "+"):
        add("status", "wait", "percent", status_answer(unit * 4301), ("ok", {}),
            "4301 of %s as the phase, the log form" % unit, tty=False)
    add("status", "status", "percent", Answer(502, "%" * 5000, content_type="text/html"),
        transient, "a 502 page of 5000 %")
    cases += proxy_cases(rng, now)
    for name, value, clock in DATES:
        headers = []
        if value is not None:
            headers.append(("Date", value))
        case = add("me", "doctor", "date", lambda ctx, h=headers: ctx.answer(ctx.doc(), headers=h),
                   None, "Date: " + name)
        case.clock = clock
        case.expect = {"OK"}
        if clock == "skew":         # CLI.md: a skew over 5 minutes fails (exit 1); or a warning
            case.expect = {"OK", "SETUP_FAILED"}
    cases += echo_cases(rng, now)
    return cases


# the proxy cases make test runs, (mode, form, command), and doctor's drip in a third of the time;
# make reliability runs them all
QUICK_PROXY = {("garbage", None, "status"), ("garbage", None, "doctor"),
               ("long-header", None, "doctor"), ("echo", "as sent", "status"),
               ("echo", "as sent", "doctor"), ("echo", "base64", "doctor"),
               ("echo", "base64", "status")}


def proxy_cases(rng, now):
    """Every command behind a proxy that answers CONNECT with no HTTP, a header over 64 KiB, a
    status line that drips past --timeout, or a 407 that echoes the credentials it was sent: each
    ends NETWORK_ERROR or TIMEOUT (exit 4) within --timeout a connection."""
    shapes = [("garbage", None), ("long-header", None), ("drip", None), ("echo", "as sent")]
    shapes += [("echo", form) for form in ["base64"] + sorted(ECHO_FORMS) if form != "as sent"]
    cases = []
    for mode, form in shapes:
        commands = ["doctor", "status"]
        if form in (None, "as sent"):
            commands = sorted(PROXY_COMMANDS)
        for command in commands:
            kind = mode
            if form is not None:
                kind = "%s: %s" % (mode, form)
            case = proxy_case(rng, now, command, kind, mode, form, DRIP, DRIP_TIMEOUT)
            case.full_only = (mode, form, command) not in QUICK_PROXY
            cases.append(case)
    quick = proxy_case(rng, now, "doctor", "drip, in a third of the time", "drip", None,
                       QUICK_DRIP, QUICK_TIMEOUT)
    return cases + [quick]


def proxy_case(rng, now, command, kind, mode, form, pace, timeout):
    case = build(rng, now, PROXY_COMMANDS[command], command, "proxy", [], None, kind=kind)
    case.proxy = {"mode": mode, "echo": form, "drip": pace}
    case.expect = {"NETWORK_ERROR", "TIMEOUT"}
    case.tokens = case.tokens + proxy_secrets()
    set_timeout(case, timeout)
    if command == "wait":
        case.argv += ["--max-wait", "30s"]
    most = 4                    # connections: a try and 3 retries,
    if command == "doctor":
        most = 3                # or doctor's checks; the harness stops it a second past them
    case.real_seconds = CASE_BASE + most * (timeout + MARGIN) + 1
    return case


def set_timeout(case, seconds):
    case.timeout = seconds
    argv = [arg for arg in case.argv if not arg.startswith("--timeout=")]
    case.argv = argv + ["--timeout=%g" % seconds]


# where echo_cases() puts the echoed token: (command, the answer's construction)
ECHO_PLACES = {"status phase": ("status", ("ok", {})),
               "wait phase, the log form": ("wait", ("ok", {})),
               "wait phase, on a terminal": ("wait", ("ok", {})),
               "404 message": ("status", ("code", "NOT_FOUND")),
               "HTML 500 page": ("status", ("transient", "API_ERROR")),
               "Location under --verbose": ("status", None),
               "doctor: 401 message": ("doctor", None)}


def echo_answer(ctx, form, place):
    """The answer that writes the bearer back in `form` at `place` (see ECHO_PLACES), and in
    headers. The bearer holds every character a form changes: space, / + , ; % and long
    alphanumeric runs."""
    rng = ctx.rng
    ctx.env = ctx.bearer = "odd %s/%s+%s,%s;%%" % (word(rng), word(rng), word(rng), word(rng))
    ctx.tokens.append(("env", ctx.env))
    text = ECHO_FORMS[form](ctx.bearer)
    echoed = [("X-Echo", text), ("Set-Cookie", "s=%s; Path=/" % text)]
    if place.startswith(("status phase", "wait phase")):
        return ctx.answer(dict(ctx.doc("in_progress"), phase=text), headers=echoed)
    if place == "404 message":
        return Answer(404, envelope("NOT_FOUND", "token %s is not valid" % text), echoed)
    if place == "doctor: 401 message":
        return Answer(401, envelope("AUTH_FAILED", "token %s is not valid" % text), echoed)
    if place == "HTML 500 page":
        page = "<html><body>token %s refused</body></html>" % text
        return Answer(500, page, echoed, content_type="text/html")
    target = "{SELF}%s?fuzz-redirected=1&t=%s" % (PATHS["status"], text)
    return Answer(307, b"", [("Location", target)] + echoed, content_type=None)


def echo_cases(rng, now):
    """The bearer token the tool sent, written back by the server in each form of ECHO_FORMS, in
    each place the tool may print (ECHO_PLACES), and in headers of the answer; under --verbose,
    which prints more of what the server sent."""
    cases = []
    for form in sorted(ECHO_FORMS):
        for place, (command, end) in sorted(ECHO_PLACES.items()):
            route = "status"
            if command == "doctor":
                route = "me"
            case = build(rng, now, route, command, "secrets",
                         lambda ctx, f=form, p=place: echo_answer(ctx, f, p), end,
                         kind="%s, %s" % (place, form), verbose=True,
                         tty=place == "wait phase, on a terminal")
            case.columns = 400      # room for a token written back six characters a character
            cases.append(case)
    return cases


REDRAWS = 20        # a "redrawn" case's wait redraws its line this often at least (once a second)


def complexity_answers(text, end):
    """(answers, what the construction implies) for a complexity case's text (see COMPLEXITY)."""
    if end == "error":
        return [Answer(500, text, content_type="text/html")], ("transient", "API_ERROR")
    if end == "json-error":
        return [Answer(500, text)], ("transient", "API_ERROR")
    if end == "redrawn":        # polls at 0 s (the text), 5 and 15 s (failed: it stays), 35 s
        busy = Answer(503, envelope("API_ERROR", "busy"))
        return [Answer(200, text), busy, busy], ("ok", {})
    if end == "ok":
        return [Answer(200, text)], ("ok", {})
    return [Answer(200, text)], end


def generate(seed=SEED, sizes=(MIB, 4 * MIB)):
    rng, now = random.Random(seed), time.time()
    cases = [make_case(rng, route, command, now) for route, command, count in PLAN for _ in range(count)]
    cases += fixed_cases(rng, now) + round_three_cases(rng, now)
    cases += complexity_cases(rng, now, sizes)
    for index, case in enumerate(cases):
        case.index = index
    return cases


def drawn():
    """How many of generate()'s cases are drawn at random (the fixed and complexity ones follow)."""
    return sum(count for _, _, count in PLAN)


# ---------------------------------------------------------------- the hostile server

ROUTES = {("GET", PATHS["status"]): "status", ("POST", PATHS["start"]): "start", ("GET", "/v1/me"): "me",
          ("GET", "/v1/accounts"): "accounts", ("POST", "/v1/oauth/token"): "token",
          ("POST", "/v1/oauth/device"): "device", ("POST", "/v1/oauth/revoke"): "revoke"}


def read_request(sock):
    """(method, target, headers) of the request on sock, its body read and dropped; None if it is no request."""
    rfile, headers = sock.makefile("rb"), {}
    parts = rfile.readline(65537).decode("latin-1").split()
    for line in iter(lambda: rfile.readline(65537), b"\r\n"):
        if not line:
            return None
        name, _, value = line.decode("latin-1").partition(":")
        headers.setdefault(name.strip().lower(), value.strip())
    rfile.read(int(headers["content-length"]) if headers.get("content-length", "").isdigit() else 0)
    return (parts[0], parts[1], headers) if len(parts) >= 2 else None


def client_gone(sock):
    try:
        readable, _, _ = select.select([sock], [], [], 0)
        return bool(readable) and sock.recv(1, socket.MSG_PEEK) == b""
    except (OSError, ValueError):
        return True


def still_there(sock, deadline):
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
    """One connection at a time, as the tool makes them."""
    allow_reuse_address = True
    request_queue_size = 64

    def handle_error(self, request, client_address):
        pass


class HostileServer:
    """The platform as the fuzzer plays it: the current case's answers for its route, API.md for the rest."""

    def __init__(self):
        self.lock = threading.Lock()
        self.case, self.served, self.records = None, 0, []
        self.wired = {}                 # id(answer): (head, body) of the current case's answers
        self.main, self.other = _TCPServer(("127.0.0.1", 0), _Handler), _TCPServer(("127.0.0.1", 0), _Handler)
        for server, role in ((self.main, "main"), (self.other, "other")):
            server.hub, server.role = self, role
        self.url = "http://127.0.0.1:%d" % self.main.server_address[1]
        self.bases = {"{SELF}": self.url, "{OTHER}": "http://127.0.0.1:%d" % self.other.server_address[1],
                      "{PORT}": str(self.main.server_address[1])}
        self.threads = [threading.Thread(target=s.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
                        for s in (self.main, self.other)]

    def start(self):
        for thread in self.threads:
            thread.start()
        return self

    def stop(self):
        for server in (self.main, self.other):
            server.shutdown()
            server.server_close()

    def begin(self, case):
        """Serve `case` from now on. Its answers are put on the wire here, before the case is
        measured: the memory they take is the server's, not the tool's."""
        bases = dict(self.bases, **{"{NOW}": formatdate(usegmt=True)})
        wired = {id(answer): answer.wire(bases) for answer in case.answers}
        with self.lock:
            self.case, self.served, self.records, self.wired = case, 0, [], wired

    def finish(self):
        with self.lock:
            records, self.case = self.records, None
        return records

    def serve(self, sock, role):
        sock.settimeout(2)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)     # a head, then a body: no wait for an ACK
        request = read_request(sock)
        if request is None:
            return
        method, target, headers = request
        path, _, query = target.partition("?")
        route = ROUTES.get((method, path))
        record = {"role": role, "method": method, "path": path, "route": route, "host": headers.get("host", ""),
                  "authorization": headers.get("authorization"), "key": headers.get("idempotency-key"),
                  "t0": time.monotonic(), "outlived": False, "overread": False}
        with self.lock:
            case = self.case
            self.records.append(record)
            if case is None:
                answer = Answer(503, b"{}")
            elif role == "other" or "fuzz-redirected" in query or route != case.route:
                answer = case.fallback(route)
            else:
                self.served += 1
                answer = case.answers[self.served - 1] if self.served <= len(case.answers) else \
                    case.answers[-1] if case.persistent else case.fallback(route)
        self.perform(sock, answer, record)

    def perform(self, sock, answer, record):
        """Send the answer as its action says: at once, a byte at a time, endlessly, or never whole."""
        action, deadline = answer.action, record["t0"] + SLOW_CAP
        try:
            if action == "reset":
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01" + b"\x00" * 7)
                return sock.close()
            if action in ("close", "http09", "binary"):         # no head at all, or no HTTP at all
                return sock.sendall({"close": b"", "http09": answer.body, "binary": bytes(range(256))[::-7]}[action])
            head, body = self.wired.get(id(answer)) or answer.wire(self.bases)
            if action is None:
                sock.settimeout(30)         # a 4 MiB answer to a tool that shares a loaded machine
                sock.sendall(head)
                return sock.sendall(body)
            data = head + body
            pieces = {"drip": [data[i:i + 1] for i in range(len(data))], "hang": [], "head-hang": [head],
                      "hold": [data], "endless": [head + b"%x\r\n" % len(body) + body + b"\r\n"] +
                      [b"100000\r\n" + b"x" * 0x100000 + b"\r\n"] * (ENDLESS_BYTES // MIB)}[action]
            for piece in pieces:
                if time.monotonic() >= deadline or client_gone(sock):
                    break
                sock.settimeout(deadline - time.monotonic())
                sock.sendall(piece)
                time.sleep(0.02 * (action == "drip"))
            else:
                record["overread"] = action == "endless"
            record["outlived"] = still_there(sock, deadline)
        except socket.timeout:
            record["outlived"] = not client_gone(sock)      # it neither read the answer nor left
        except (OSError, ValueError):
            pass                    # the client left: what the slow answers wait for


# ---------------------------------------------------------------- the oracle: CLI.md's promises on one run

STAMP = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z ")
HUMAN_ERROR = re.compile(r"(?:%s)?error ([A-Z_]+) \(exit ([0-9]+)\): " % STAMP.pattern)
REDRAW = re.compile(r"\r|\x1b\[[JK]|\x1b\[[0-9]+A|\x1b\[[0-9;]*m")    # a redraw: back, clear, up, colour
# what no line may hold: controls (C0, DEL, C1), lone surrogates, line and paragraph separators, bidi overrides
UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff\u2028\u2029\u202a-\u202e\u2066-\u2069]")


WINDOW = 16         # this many characters of a secret in a row give it away (12 bytes in base64)


def fragments(token):
    """The pieces of a token that give it away: itself (when not too short to say), its long
    alphanumeric runs, and its windows of WINDOW characters every WINDOW // 2 and at its end: a
    secret cut short where it is quoted shows if WINDOW + WINDOW // 2 - 1 characters of it, or its
    first or its last WINDOW, are printed."""
    pieces = re.findall(r"[A-Za-z0-9]{8,}", token)
    if len(token) >= 10:
        pieces.append(token)
    if len(token) > WINDOW:
        starts = range(0, len(token) - WINDOW, WINDOW // 2)
        pieces += [token[start:start + WINDOW] for start in starts]
        pieces.append(token[-WINDOW:])
    return pieces


# The readings of an output, written here rather than taken from html and urllib.parse:
# html.unescape raises on "&#" and 4,301 digits (3.7+), and unquote makes a list item of every %
# (the oracle reads outputs of 4 MiB).
REFERENCE = re.compile(r"&(?:#[xX]([0-9a-fA-F]{1,6});?|#([0-9]{1,7});?"
                       r"|([A-Za-z][A-Za-z0-9]{1,31};))")
PERCENT_RUN = re.compile(r"(?:%[0-9A-Fa-f]{2})+")
JSON_ESCAPE = re.compile(r"\\u([0-9a-fA-F]{4})")


def _reference(match):
    hexadecimal, decimal, name = match.groups()
    if name:
        return html5.get(name, match.group(0))
    if hexadecimal:
        code = int(hexadecimal, 16)
    else:
        code = int(decimal)
    if 0 < code < 0x110000:
        return chr(code)
    return "\ufffd"


def _percent(match):
    return bytes.fromhex(match.group(0).replace("%", "")).decode("utf-8", "replace")


def _json_escape(match):
    return chr(int(match.group(1), 16))


def readings(text):
    """text as a reader may decode it: as is, HTML's character references, percent-encoding (with
    + as a space, as a form writes it, and without), JSON's \\u escapes (and those a JSON document
    holds as text: \\\\u006c in stdout's document is \\u006c in its string)."""
    return [text, REFERENCE.sub(_reference, text), PERCENT_RUN.sub(_percent, text),
            PERCENT_RUN.sub(_percent, text.replace("+", " ")), JSON_ESCAPE.sub(_json_escape, text),
            JSON_ESCAPE.sub(_json_escape, text.replace("\\\\", "\\"))]


def _refuse(name):
    raise ValueError("%s is not JSON" % name)


def cpu_bound(case):
    """CPU seconds a case may spend: the promise, whatever the size of what it is given."""
    return CPU_LIMIT


def check(case, run):
    """The problems of one run, as (label, detail); empty when the run kept every promise."""
    problems = []

    def bad(label, detail=""):
        problems.append((label, detail))

    code, out, err = run["exit"], run["stdout"], run["stderr"]
    if run["runaway"]:
        bad("runaway", run["runaway"])
    elif code != 0 and code not in EXIT_CODES.values():
        bad("exit-code", "exit %r is not in CLI.md's table" % (code,))
    for name, text in (("stdout", out), ("stderr", err)):
        if "Traceback" in text:
            bad("traceback", name)
        if "internal error" in text.lower():
            bad("internal-error", text.strip().split("\n")[-1][:200])
    decoded = [(name, reading) for name, text in (("stdout", out), ("stderr", err))
               for reading in readings(text)]
    for kind, token in case.tokens:
        found = [name for piece in fragments(token) for name, text in decoded if piece in text]
        where = found[0] if found else None
        if where:
            bad("token-leak", "%s token %r on %s" % (kind, token[:40], where))
    doc = check_stdout(case, code, out, bad)
    outcome = "OK" if code == 0 else None
    lines = err.split("\n") if err else []
    if lines and lines.pop() != "":
        bad("stderr-unterminated", repr(err[-80:]))
    if code not in (0, None):
        try:
            error = json.loads(lines[-1])["error"]
            outcome = error["code"]
            if not isinstance(error["message"], str) or not isinstance(error["meta"], dict):
                raise TypeError("message or meta of the wrong type")
            if EXIT_CODES.get(outcome) != code:
                bad("exit-mismatch", "exit %d with code %r" % (code, outcome))
        except (ValueError, KeyError, TypeError, IndexError) as exc:
            bad("no-envelope", "%s: last stderr line %r" % (exc, lines[-1:]))
    for number, line in enumerate(lines):
        envelope_line = code not in (0, None) and number == len(lines) - 1
        human = HUMAN_ERROR.match(line)
        if human and (EXIT_CODES.get(human.group(1)) != int(human.group(2)) or human.group(1) != outcome):
            bad("exit-mismatch", "%r, and the envelope says %s" % (line[:100], outcome))
        for segment in line.split("\r") if case.tty else [line]:
            visible = REDRAW.sub("", segment) if case.tty else segment
            odd = UNPRINTABLE.findall(visible)
            if odd:
                bad("unprintable-stderr", "%r in %r" % ("".join(sorted(set(odd)))[:10], visible[:120]))
            if visible.lstrip().startswith(MARKER):
                bad("forged-line", "server text began a line: %r" % visible[:80])
        if not case.tty and not envelope_line and not STAMP.match(line):
            bad("undated-line", "a log line without its UTC time: %r" % line[:100])
    allowed = case.expect
    if allowed and outcome is not None and not (outcome in allowed or ("!OK" in allowed and outcome != "OK")):
        bad("outcome", "ended %s; the contract says %s" % (outcome, " or ".join(sorted(allowed))))
    if case.clock:
        check_clock(case, doc, bad)
    if case.tty and err.count("\r") < case.redraws:
        bad("too-few-redraws", "%d redraws; the case is built for %d at least (one a second)"
            % (err.count("\r"), case.redraws))
    check_requests(case, run, bad)
    budget = run.get("memory_budget_mib", CASE_MIB)
    if run["rss_growth_mib"] > budget:
        bad("memory", "peak memory grew %.0f MiB during the case (at most %.0f MiB: %d MiB less "
            "the tool at rest)" % (run["rss_growth_mib"], budget, MEMORY_LIMIT_MIB))
    if case.size and run["cpu"] > cpu_bound(case):
        bad("complexity", "%.2f s of CPU for %d KiB (the promise: under %g s for up to 4 MiB)"
            % (run["cpu"], case.size // 1024, cpu_bound(case)))
    return problems


STATUS_KEYS = ["counts", "error", "importId", "percent", "phase"]


def check_stdout(case, code, out, bad):
    """stdout: one JSON document of the command's shape, or nothing (but doctor's report and a
    wait's last statuses, which a failure prints too); the document, or None."""
    if not out:
        if code == 0:
            bad("stdout-not-one-json", "exit 0 with nothing on stdout")
        return None
    doc = None
    try:
        if not out.endswith("\n") or out.count("\n") != 1:
            raise ValueError("not one line")
        doc = json.loads(out, parse_constant=_refuse)
    except (ValueError, TypeError) as exc:
        bad("stdout-not-one-json", "%s: %r" % (exc, out[:200]))
    if case.command in ("status", "wait") and doc is not None:
        if not isinstance(doc, dict) or sorted(doc) != STATUS_KEYS:
            bad("output-shape", "a status prints exactly its five keys: %r" % (out[:100],))
    if case.command == "doctor" and doc is not None and not is_doctor_report(doc):
        bad("output-shape", "doctor prints {ok, checks: [{name, status, detail, fix}]}: %r"
            % (out[:200],))
    if code != 0 and case.command not in ("wait", "doctor"):
        bad("stdout-on-failure", "exit %r with %r on stdout" % (code, out[:120]))
    return doc


def is_doctor_report(doc):
    """CLI.md: {"ok": bool, "checks": [{"name", "status", "detail", "fix"}]}, each status ok, warn
    or fail."""
    if not isinstance(doc, dict) or sorted(doc) != ["checks", "ok"]:
        return False
    if not isinstance(doc["ok"], bool) or not isinstance(doc["checks"], list):
        return False
    for row in doc["checks"]:
        if not isinstance(row, dict) or sorted(row) != ["detail", "fix", "name", "status"]:
            return False
        if row["status"] not in ("ok", "warn", "fail"):
            return False
    return True


SKEW = re.compile(r"\b(ahead|behind)\b|\b[0-9]+[dhms]\b")    # how a difference of clocks reads


def check_clock(case, doc, bad):
    """doctor against a hostile Date (CLI.md): one clock row; a missing or invalid Date is a
    warning that says so, never a skew; a valid one far from now a skew (warn or fail); the
    present, ok."""
    if not is_doctor_report(doc):
        bad("clock-row", "no report to find the clock row in")
        return
    rows = [row for row in doc["checks"] if re.search("clock|date", row["name"], re.I)]
    if len(rows) != 1:
        bad("clock-row", "%d clock rows (CLI.md: the clock against the Date)" % len(rows))
        return
    row = rows[0]
    if case.clock == "now" and row["status"] != "ok":
        bad("clock-row", "a Date of the present is %s: %r" % (row["status"], row["detail"][:120]))
    if case.clock == "skew" and row["status"] not in ("warn", "fail"):
        bad("clock-row", "a Date far from now is %s: %r" % (row["status"], row["detail"][:120]))
    if case.clock != "invalid":
        return
    if row["status"] != "warn" or "date" not in row["detail"].lower():
        bad("clock-row", "a missing or invalid Date must be a warning that says so: %s %r"
            % (row["status"], row["detail"][:120]))
    if SKEW.search(row["detail"]):
        bad("clock-row", "a missing or invalid Date was read as a skew: %r" % row["detail"][:120])


def check_requests(case, run, bad):
    records = run["requests"]
    if case.silent and records:
        bad("sent", "%d requests; the input was refused, nothing may be sent" % len(records))
    if case.proxy is not None and records:
        bad("proxy-skipped", "%d requests reached a server behind the proxy" % len(records))
    for record in records:
        if record["role"] == "other" or (record["host"] and not record["host"].startswith("127.0.0.1:")):
            bad("cross-origin-request", "%s %s reached another origin%s" % (
                record["method"], record["path"], " with the token" if record["authorization"] else ""))
        if record["outlived"]:
            bad("outlived-timeout", "still reading %s %.2fs after it began (--timeout %g)"
                % (record["path"], SLOW_CAP, TIMEOUT))
        if record["overread"]:
            bad("read-past-cap", "read %d MiB of one answer (API.md: not past 4 MiB)" % (ENDLESS_BYTES // MIB))
    if len(set(r["key"] for r in records if r["route"] == "start")) > 1:
        bad("idempotency-key", "start retried with another Idempotency-Key")
    attempts, each = max(1, len(records)), min(case.timeout, TIMEOUT) + MARGIN
    what = "requests"           # the hostile server answers at once, or holds on for SLOW_CAP
    if case.proxy is not None:
        attempts, each = max(1, run["proxy"]["connections"]), case.timeout + MARGIN
        what = "connections to the proxy"
        for held in run["proxy"]["held"]:
            if held is None or held > case.timeout + MARGIN:
                bad("outlived-timeout", "held the proxy's dripping answer %s (--timeout %g)"
                    % (held_for(held), case.timeout))
    bound = CASE_BASE + attempts * each
    if case.size:
        bound += 2 * cpu_bound(case)
    if run["seconds"] > bound:
        bad("slow-case", "%.2fs for %d %s (bound %.2fs)" % (run["seconds"], attempts, what, bound))
    limit = {"wait": WAIT_LIMIT, "device": DEVICE_LIMIT}.get(case.command)
    if limit and run["fake_seconds"] > limit + 30:
        bad("overslept", "%s slept %.3g s of fake time (limit %d s)" % (case.command, run["fake_seconds"], limit))


def held_for(seconds):
    if seconds is None:
        return "until the case ended"
    return "%.1f s" % seconds

#!/usr/bin/env python3
"""landbase-import: bulk-import a Landbase dataset's contacts into an account under a tag.

One file, standard library only, Python 3.6+. Copy it onto a host and run it:

    landbase_import.py auth login [--device | --with-token]     then: account list, account set ID
    landbase_import.py contacts-import start --json body.json --watch
    landbase_import.py contacts-import status 7 | wait 7 [8 ...]
    landbase_import.py doctor

`landbase_import.py --help` is the manual. stdout carries one JSON document on success (or the text
that --query asks for). Progress, warnings and, on failure, a line naming the error and then the
one-line JSON envelope go to stderr.

Exit codes: 0 success; 1 the input or the setup is wrong; 2 the platform refused or failed, or an
import ended failed or partial; 3 log in again; 4 timeout or network; 130 Ctrl-C; 143 SIGTERM; 129
SIGHUP.
"""

import argparse
import collections
import contextlib
import io
import itertools
import json
import operator
import os
import re
import shlex
import signal
import stat
import sys
import time
import unicodedata

__version__ = "1.2.0"

DEFAULT_API_URL = "https://api.landbase.com"
DEFAULT_WEB_URL = "https://platform.landbase.com"
CLIENT_ID = "landbase-cli"
SESSION_FILE = "platform.json"
SESSION_LIFETIME = 7 * 24 * 3600        # a login's; --with-token's guess if the platform is silent
SESSION_WARN_BELOW = 24 * 3600          # warn when less than this is left
LOCK_WAIT = 10                          # seconds a writer of platform.json waits for another one
LOCK_POLL = 0.05                        # and how often it tries the lock meanwhile
CLOCK_SKEW = 5 * 60                     # doctor: a larger one from the platform's clock fails
CERT_WARN_BELOW = 14 * 86400            # doctor: a certificate that ends sooner is a warning

DEFAULT_TIMEOUT = 30.0                  # seconds per request (--timeout)
MAX_TIMEOUT = 3600
RETRY_DELAYS = (5, 10, 20)              # one-shot commands: three retries
RETRY_AFTER_CAP = 300                   # a longer Retry-After ends a one-shot command
POLL_DELAYS = (5, 10)                   # then POLL_EVERY, until WAIT_LIMIT
POLL_EVERY = 20
WAIT_LIMIT = 30 * 60                    # --max-wait's default
MAX_WAIT_LIMIT = 7 * 24 * 3600          # and its largest value
KEY_KEPT = 24 * 3600                    # a key seen this recently gets its import back
REDRAW_EVERY = 1                        # seconds between redraws of a terminal's progress line
BAR_WIDTH = 20                          # the progress bar's widest; it shrinks first when narrow
MAX_POLLS_IN_FLIGHT = 4                 # wait with many ids
LOGIN_LIMIT = 5 * 60                    # browser login, from the moment it starts
CALLBACK_CONNECTION_TIMEOUT = 10        # seconds one connection to the login callback may take
DEVICE_LIMIT = 15 * 60                  # device login, whatever expiresIn says
DEVICE_INTERVAL = 5                     # the device flow polls this often unless the server says,
DEVICE_INTERVALS = (1, 60)              # and never outside these bounds
MAX_REDIRECTS = 5
STOPPED_WRITES_LIMIT = 2                # seconds a run a signal stopped waits to write its end

MAX_BODY_BYTES = 1024 * 1024            # the body of start --json, and platform.json
MAX_ANSWER_BYTES = 4 * 1024 * 1024      # an answer from the platform
MAX_JSON_DIGITS = 40                    # a longer integer in any JSON document is refused,
MAX_JSON_DEPTH = 64                     # and a deeper document,
MAX_JSON_CONTAINERS = 400000            # and more objects and arrays: a list of 4 MiB of the
                                        # shortest accounts ({"id": "a"}) holds 381,300
MAX_OBJECT_KEYS = 10000                 # and an object of more keys: no answer API.md describes
                                        # has one, and 280,000 in one object take 50 MiB to parse
MAX_JSON_VALUES = 20000                 # and, but in the accounts list, more values (each comma
                                        # and each object or array counts one): the documents
                                        # API.md describes hold a few dozen, and 840,000 small
                                        # strings in 4 MiB took the process to 98 MiB
ACCOUNTS_PATH = "/v1/accounts"          # the one answer of many entries: 381,300 accounts in 4 MiB
ESCAPED_CHAR_SPAN = 16                  # the longest escape of a character that redaction finds,
ESCAPED_FORMS_UP_TO = 256               # in a secret of at most this many characters
MIN_SECRET = 8                          # a shorter value cannot be hidden (remember_secret)
SECRET_PIECE = 16                       # the shortest piece of a secret that is hidden, and
SECRET_WINDOW_STEP = 16                 # its windows begin this far apart (_windows)
MAX_DATASET_ID = 200
MAX_TAG_NAME = 100
MAX_IMPORT_ID = 2 ** 63 - 1
BODY_KEYS = ("datasetId", "tagName", "importId")
STATUS_KEYS = ("importId", "phase", "percent", "counts", "error")
COUNT_KEYS = ("total", "imported", "skipped", "failed")
TIME_RE = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.[0-9]+)?"
    r"(?:[Zz]|\+00:00)?\Z"
)
ACCOUNT_ID_RE = re.compile(r"[A-Za-z0-9_-]{1,64}\Z")
IMPORT_ID_RE = re.compile(r"[0-9]{1,19}\Z")
KEY_RE = re.compile(r"[\x20-\x7e]{1,255}\Z")
TOKEN_CHARS = r"[^\s\"',;&()<>\\\u2026]"      # what an lbs_ token holds (\u2026: the redacted form
TOKEN_ENDS = r"[\s\"',;&()<>\\\u2026]"        # is not redacted again), and what ends one
TOKEN_RE = re.compile("lbs_" + TOKEN_CHARS + "+")
# a run of token shapes with nothing but what ends a token between them: one redaction stands for
# the run, so that a text of many short tokens does not grow threefold when it is redacted
TOKEN_RUN_RE = re.compile("lbs_%s+(?:%s+lbs_%s+)*" % (TOKEN_CHARS, TOKEN_ENDS, TOKEN_CHARS))
TOKEN_END_RE = re.compile(TOKEN_ENDS)
REDACTED = "lbs_\u2026(redacted)"

TERMINAL_PHASES = ("completed", "partial", "failed")   # any other phase is in flight

# CLI.md's table: the exit code of each error code. 128 + the signal's number for a signal: 129
# SIGHUP.
EXIT_CODES = {
    "INVALID_INPUT": 1, "VALIDATION_ERROR": 1, "SETUP_FAILED": 1,
    "NOT_FOUND": 2, "CONFLICT": 2, "API_ERROR": 2, "RATE_LIMITED": 2, "UPGRADE_REQUIRED": 2,
    "IMPORT_FAILED": 2, "IMPORT_PARTIAL": 2, "OUTPUT_FAILED": 2,
    "AUTH_REQUIRED": 3, "AUTH_FAILED": 3,
    "TIMEOUT": 4, "NETWORK_ERROR": 4,
    "INTERRUPTED": 130, "TERMINATED": 143,
}
# the tool's own codes: never taken from a server's envelope (its status decides instead)
LOCAL_CODES = ("INVALID_INPUT", "SETUP_FAILED", "AUTH_REQUIRED", "OUTPUT_FAILED", "INTERRUPTED",
               "TERMINATED")
STATUS_CODES = {
    400: "VALIDATION_ERROR",
    422: "VALIDATION_ERROR",
    401: "AUTH_FAILED",
    403: "NOT_FOUND",
    404: "NOT_FOUND",
    409: "CONFLICT",
    426: "UPGRADE_REQUIRED",
    429: "RATE_LIMITED",
}
# meta keys that are the tool's own: a server's envelope cannot set them
OWN_META = ("resume", "signal", "idempotencyKey", "importIds", "serverCode", "safeUntil")
STOP_SIGNALS = [
    getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name)
]


# ---------------------------------------------------------------- errors

class LandbaseError(Exception):
    """The one error type: a stable code, a message and meta, all decided where it is raised; the
    exit code follows from the code."""

    def __init__(self, code, message, meta=None, transient=False, retry_after=None,
                 server_code=None, signum=None, fix=None, unsent=False):
        Exception.__init__(self, message)
        self.code = code
        self.message = message
        self.meta = dict(meta or {})
        self.transient = transient          # worth another try later
        self.retry_after = retry_after      # seconds the server asked us to wait
        self.server_code = server_code      # the code in the server's envelope, known or not
        # the signal that stopped the run: its exit is 128 + its number
        self.signum = signum
        # the next step on its own, where the message names one (doctor)
        self.fix = fix
        # no connection to the platform was made: the request cannot have done anything
        self.unsent = unsent

    @property
    def exit_code(self):
        if self.signum:
            return 128 + self.signum
        return EXIT_CODES.get(self.code, 2)

    def replace(self, **changes):
        """A new error like this one but for `changes`: what a caller adds never loses what the
        server said (its code, its Retry-After)."""
        fields = {"code": self.code, "message": self.message, "meta": self.meta,
                  "transient": self.transient, "retry_after": self.retry_after,
                  "server_code": self.server_code, "signum": self.signum, "fix": self.fix,
                  "unsent": self.unsent}
        fields.update(changes)
        return LandbaseError(**fields)


class Stopped(BaseException):
    """Stopped(signum): raised by _on_signal for SIGTERM and SIGHUP (SIGINT raises
    KeyboardInterrupt), so that cleanup runs and the run reports the signal."""


def stopped(exc, message=None, meta=None):
    """The error of a run a signal stopped: INTERRUPTED for Ctrl-C, TERMINATED for SIGTERM and
    SIGHUP. The signal comes first in the message, so that a command at its end can be pasted as it
    is."""
    signum = signal.SIGINT
    if isinstance(exc, Stopped):
        signum = exc.args[0]
    name = signal.Signals(signum).name
    meta = dict(meta or {}, signal=name)
    code = "TERMINATED"
    if signum == signal.SIGINT:
        code = "INTERRUPTED"
    text = "stopped by %s" % name
    if message:
        text += ": " + message
    return LandbaseError(code, text, meta, signum=signum)


# ---------------------------------------------------------------- what may be printed
#
# A secret is every form of a credential the tool holds or sends: the tokens of this run (stored,
# from the environment or stdin, granted by a login) and the proxy's password, its user:password
# and the base64 of that, which travels in Proxy-Authorization. None is printed, as it is or with
# any of its characters escaped as JSON, HTML or a URL would escape it. Text a server sends is also
# cleared of anything shaped like an lbs_ token (never the user's own words: those are shown as
# they are sent).

SECRETS = set()
# [(the secrets it was made for, the pattern that finds them)], made when first needed
SECRET_FORMS = []


def remember_secret(value):
    """A secret from now on. A value shorter than MIN_SECRET (a proxy password of a few letters) is
    not one: hiding it wherever it stands would hide pieces of every word that holds it, and the
    forms the tool sends it in (user:password, its base64) are secrets of their own."""
    if isinstance(value, str) and len(value.strip()) >= MIN_SECRET:
        SECRETS.add(value)
        SECRETS.add(value.strip())
    return value


def remember_proxy_credentials(user, password):
    """The proxy's credentials in every form the tool sends or was given them."""
    import base64
    import urllib.parse
    user = urllib.parse.unquote(user or "")
    password = urllib.parse.unquote(password or "")
    pair = "%s:%s" % (user, password)
    remember_secret(password)
    remember_secret(pair)
    remember_secret(base64.b64encode(pair.encode("utf-8")).decode("ascii"))
    return pair


def redact(text, pattern=False):
    """text without a known secret in it; with `pattern`, for what a server sends, without anything
    shaped like lbs_… either. Linear in the length of text, whatever it holds."""
    if may_hold_secret(text):
        text = _without_secrets(text)
    if pattern:
        text = without_token_shapes(text)
    return text


def may_hold_secret(text):
    """Whether _secret_forms() finds a secret in text; when text holds no escape (ESCAPE_RE: a
    backslash or a +, & before # or a letter, % before two hex digits), known from a few searches
    for plain text, four times as fast: a secret's every form without an escape holds, as it is,
    one of its windows (_windows; the whole of a secret of at most SECRET_PIECE characters)."""
    if not SECRETS:
        return False
    marked = any(mark in text for mark in ESCAPE_MARKS)     # a few fast searches, and only then
    if marked and ESCAPE_RE.search(text):                   # the pattern: 250 times as slow
        return _secret_forms().search(text) is not None
    for secret in SECRETS:
        if len(secret) <= SECRET_PIECE and secret in text:
            return True
        for offset in _windows(secret):
            if secret[offset:offset + SECRET_PIECE] in text:
                return True
    return False


ESCAPE_MARKS = ("\\", "&", "%", "+")         # each of _char_heads' escapes begins with one
ESCAPE_ENDS = ';+"/\\'                        # and ends with one of these, a letter or a digit;
# where one may begin: 4 MiB of % with no hex digits after them holds none, and is not scanned
ESCAPE_RE = re.compile(r"[\\+]|&[#A-Za-z]|%[0-9A-Fa-f]{2}")


def without_token_shapes(text, size=65536):
    """text with anything shaped like an lbs_ token redacted, a slice at a time: re.sub holds every
    piece of its result in a list, and 4 MiB of short tokens would make a million pieces at once.
    Each slice ends just after a character no token holds, so no token is cut in two."""
    if len(text) <= size:
        return TOKEN_RUN_RE.sub(REDACTED, text)
    slices = []
    start = 0
    while start < len(text):
        end = TOKEN_END_RE.search(text, start + size)
        if end is None:
            stop = len(text)
        else:
            stop = end.end()
        slices.append(TOKEN_RUN_RE.sub(REDACTED, text[start:stop]))
        start = stop
    return "".join(slices)


def _without_secrets(text):
    """text with every match of _secret_forms() redacted. A match of one of a secret's windows
    (_windows) reaches back and forward over as much more of the secret as the text holds around
    it, each character as it is or escaped."""
    pattern = _secret_forms()
    kept = []
    done = 0
    for match in pattern.finditer(text):
        start, end = match.span()
        if end <= done:
            continue                    # inside what a window's reach has redacted already
        if match.lastindex:
            secret, offset = SECRET_FORMS[0][2][match.lastindex - 1]
            start = _reach_back(text, done, start, secret[:offset])
            end = _reach_forward(text, end, secret[offset + SECRET_PIECE:])
        start = max(start, done)
        kept.append(text[done:start])
        kept.append(REDACTED)
        done = end
    kept.append(text[done:])
    return "".join(kept)


def _reach_back(text, done, start, before):
    """Where the piece of a secret that goes on at `start` begins: each of the characters
    `before` it, as it is or escaped, from the last, as far back as the text holds them (never
    before `done`, the end of the last redaction)."""
    for ch in reversed(before):
        if start <= done:
            break
        previous = text[start - 1]
        if previous.isalnum() or previous in ESCAPE_ENDS:     # an escape may end here
            found = _char_pattern(ch, "\\Z").search(text, max(done, start - ESCAPED_CHAR_SPAN),
                                                     start)
            if found is None:
                break
            start = found.start()       # the earliest start: the longest escape
        elif previous == ch:
            start -= 1
        else:
            break
    return start


def _reach_forward(text, end, after):
    """Where the piece of a secret that has reached `end` ends: each of the characters `after`
    it, as it is or escaped, as far as the text holds them."""
    for ch in after:
        if end >= len(text):
            break
        following = text[end]
        if following == ch and following not in ESCAPE_MARKS:
            end += 1                    # as it is, and no escape begins with it
            continue
        found = _char_pattern(ch, "").match(text, end)
        if found is None:
            break
        end = found.end()               # its escapes come first: the longest
    return end


def _char_pattern(ch, anchor):
    """A pattern for `ch` as it is or escaped, followed by `anchor`."""
    key = (ch, anchor)
    if key not in CHAR_PATTERNS:
        names = _entity_names({ch})
        CHAR_PATTERNS[key] = re.compile("(?:%s)%s" % (_char_forms(ch, names), anchor))
    return CHAR_PATTERNS[key]


CHAR_PATTERNS = {}


def _secret_forms():
    """One pattern for every secret with each of its characters as it is or escaped: a secret of
    at most SECRET_PIECE characters whole, a longer one by its windows (_windows), and one too long
    for that (building takes about 0.35 ms a character: 92 ms for 256) in its usual escapings."""
    secrets = sorted(SECRETS, key=len, reverse=True)
    if not SECRET_FORMS or SECRET_FORMS[0][0] != secrets:
        short = [secret for secret in secrets if len(secret) <= ESCAPED_FORMS_UP_TO]
        names = _entity_names(set("".join(short)))
        forms = {ch: _char_forms(ch, names) for ch in set("".join(short))}
        patterns = []
        for secret in secrets:
            if len(secret) > ESCAPED_FORMS_UP_TO:
                patterns.extend(re.escape(form) for form in _usual_escapings(secret))
            elif len(secret) <= SECRET_PIECE:
                patterns.append("".join(forms[ch] for ch in secret))
        # a longer one by its windows alone
        windows = [(secret, offset) for secret in short for offset in _windows(secret)]
        marks = []
        if windows:
            patterns.append(_windows_pattern(windows, forms, names, marks))
        SECRET_FORMS[:] = [(secrets, re.compile("|".join(patterns)), marks)]
    return SECRET_FORMS[0][1]


def _windows_pattern(windows, forms, names, marks):
    """One alternation for the windows [(secret, offset)] with their first characters' escapes
    shared: a position is tried once for each kind of escape (\\u, &#, %, ...), not once for each
    window, which made a 4 MiB text of character references 40% slower to read. Each way a window
    can match ends in an empty group; `marks` gets its (secret, offset) by the group's number - 1,
    so the alternatives are built in the order of the pattern's text (ESCAPE_KINDS)."""
    heads = {kind: [] for kind in ESCAPE_KINDS}
    for secret, offset in windows:
        for kind, head in _char_heads(secret[offset], names):
            heads[kind].append((head, secret, offset))
    alternatives = {}
    for kind in ESCAPE_KINDS:
        found = []
        for head, secret, offset in heads[kind]:
            found.append(head + _window_rest(secret, offset, forms, marks))
        alternatives[kind] = found
    return _kinds_pattern(alternatives)


def _window_rest(secret, offset, forms, marks):
    """A window's characters after its first, each as it is or escaped, and the empty group that
    says which window matched."""
    marks.append((secret, offset))
    window = secret[offset + 1:offset + SECRET_PIECE]
    return "".join(forms[ch] for ch in window) + "()"


def _windows(secret):
    """Where the windows of a secret longer than SECRET_PIECE begin: a window of SECRET_PIECE
    characters every SECRET_WINDOW_STEP, and its last SECRET_PIECE. An echo that cuts the secret (a
    line break inside it, lbs_ left off, the last character lost) still holds one in each piece
    that begins or ends it and is at least SECRET_PIECE long, and in any piece of SECRET_PIECE +
    SECRET_WINDOW_STEP - 1; _without_secrets reaches out from it. (A pattern for every piece would
    be tried at every position of the text.)"""
    if len(secret) <= SECRET_PIECE:
        return []
    last = len(secret) - SECRET_PIECE
    offsets = list(range(0, last, SECRET_WINDOW_STEP))
    offsets.append(last)
    return offsets


def _usual_escapings(secret):
    """A secret as it is and as JSON, a URL and HTML escape it whole."""
    import html
    import urllib.parse
    forms = {secret, json.dumps(secret)[1:-1], html.escape(secret), html.escape(secret, False),
             urllib.parse.quote(secret, safe=""), urllib.parse.quote_plus(secret, safe="")}
    return sorted(forms, key=len, reverse=True)


def _char_forms(ch, names):
    """A pattern for one character as it is or escaped (_char_heads): the pattern of each of its
    characters makes the pattern of a secret, and of its windows after their first character."""
    alternatives = {}
    for kind, head in _char_heads(ch, names):
        alternatives.setdefault(kind, []).append(head)
    return "(?:%s)" % _kinds_pattern(alternatives)


# The ways a character is written, in the order a pattern tries them (_kinds_pattern), and what
# introduces each: JSON's \u00XX (\\u00XX too: that escape written in JSON text), HTML's &#NN;
# and &#xHH;, a URL's %HH (+ for a space), JSON's \" \/ \\, HTML's &name;, and the character as
# it is, last: an escape that begins with the character goes whole.
ESCAPE_KINDS = ("json", "reference", "percent", "space", "slashed", "entity", "plain")
ESCAPE_INTROS = {"json": r"\\{1,2}u", "reference": "&#", "percent": "%", "space": r"\+",
                 "slashed": "", "entity": "", "plain": ""}


def _char_heads(ch, names):
    """[(kind, head)]: each way `ch` is written (ESCAPE_KINDS), and its head: the pattern that
    follows the kind's introduction. The hex digits are in either case by hand: a scoped (?i:)
    flag makes the pattern slow to build."""
    code = ord(ch)
    heads = [("json", _either_case("%04x" % code)),
             ("reference", "0{0,8}%d;?" % code),
             ("reference", "[xX]0{0,8}%s;?" % _either_case("%02x" % code))]
    if code < 256:
        heads.append(("percent", _either_case("%02x" % code)))
    if ch == " ":
        heads.append(("space", ""))
    if ch in "\\/\"":
        heads.append(("slashed", re.escape("\\" + ch)))
    for name in names.get(ch, ()):
        heads.append(("entity", re.escape("&" + name)))
    heads.append(("plain", re.escape(ch)))
    return heads


def _kinds_pattern(alternatives):
    """The pattern of {kind: [alternative]}: each kind's introduction, then its alternatives, in
    the order of ESCAPE_KINDS."""
    parts = []
    for kind in ESCAPE_KINDS:
        if alternatives.get(kind):
            parts.append(ESCAPE_INTROS[kind] + _one_of(alternatives[kind]))
    return "|".join(parts)


def _one_of(alternatives):
    """A pattern for any of `alternatives` (none holds a | of its own): one as it is, more in a
    group. The pattern of a long secret is built of thousands: the fewer groups, the sooner."""
    if len(alternatives) == 1:
        return alternatives[0]
    return "(?:%s)" % "|".join(alternatives)


def _either_case(hex_digits):
    """A pattern for hex digits in upper or lower case: 2f -> 2[fF]."""
    parts = []
    for digit in hex_digits:
        if digit.isalpha():
            parts.append("[%s%s]" % (digit, digit.upper()))
        else:
            parts.append(digit)
    return "".join(parts)


def _entity_names(chars):
    """{character: the HTML entity names that stand for it} for these characters, the longest
    first (&amp; before &amp, or the ; would be left behind)."""
    from html.entities import html5
    names = {}
    for name, value in html5.items():
        if value in chars:
            names.setdefault(value, []).append(name)
    for found in names.values():
        found.sort(key=len, reverse=True)
    return names


def printable(text):
    """text on one line, every control character (newlines and terminal escapes among them)
    replaced."""
    if text.isprintable():
        return text
    text = CONTROL_RE.sub("\ufffd", text)
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else "\ufffd" for ch in text)


CONTROL_RE = re.compile("[\x00-\x1f\x7f-\x9f]")


def redact_values(value, clean=False, pattern=False):
    """A JSON document with every string in it (keys too) redacted, and printable with `clean`, so
    that it stays valid JSON."""
    if isinstance(value, str):
        value = redact(value, pattern)
        if clean:
            value = printable(value)
        return value
    if isinstance(value, list):
        return [redact_values(item, clean, pattern) for item in value]
    if isinstance(value, dict):
        return {redact_values(str(key), clean, pattern): redact_values(item, clean, pattern)
                for key, item in value.items()}
    return value


def excerpt(raw, limit=200):
    """At most `limit` characters of text a server sent (an answer, a message, a header), on one
    line and redacted. Only a window of the text is read: the part that can be printed, and enough
    after it to recognise a secret that begins inside it."""
    longest = max(map(len, SECRETS), default=0)
    window = raw[:limit + 2 + ESCAPED_CHAR_SPAN * longest]
    if isinstance(window, bytes):
        window = window.decode("utf-8", "replace")
    text = " ".join(redact(str(window), pattern=True).split())
    return printable(text[:limit]) or "(empty body)"


def shown(text, limit=200):
    """At most `limit` characters of the tool's or the user's text (a path, a URL, a value),
    printable."""
    return printable(redact(str(text)))[:limit]


# ---------------------------------------------------------------- time and streams

class Clock:
    """The seam for time: tests replace it so that a 30-minute wait runs in milliseconds."""

    def now(self):
        return time.monotonic()

    def wall(self):
        return time.time()

    def sleep(self, seconds):
        time.sleep(max(0.0, seconds))

    def wait_event(self, event, seconds):
        return event.wait(max(0.0, seconds))


CLOCK = Clock()
# once a run has its outcome (a signal, its result, its error), signals are ignored
STOPPING = []


class Console:
    """stderr for people and logs. Every character written passes through redact() and printable();
    a closed stderr is silent. A log (not a terminal, or TERM=dumb) gets one line per event, each
    beginning with its UTC time, written when it happens; a terminal gets plain lines, and progress
    redrawn in place on one line that is never wider than the terminal."""

    def __init__(self, quiet=False, verbose=False, stream=None, query=None):
        self.stream = stream
        if stream is None:
            self.stream = sys.stderr            # None when stderr was closed (2>&-)
        self.quiet = quiet
        self.verbose = verbose
        self.query = query                      # --query's paths, or None
        self.tty = _isatty(self.stream) and os.environ.get("TERM") != "dumb"
        # no-color.org: NO_COLOR set to anything but the empty string turns colour off
        self.color = self.tty and os.environ.get("NO_COLOR", "") == ""
        self.drawn = 0                          # the columns of the redrawn line on screen
        self.warned = set()

    def result(self, doc, meta=None):
        """The command's result on stdout: its one JSON document, or --query's text (see
        write_stdout); `meta` names what the command did, for OUTPUT_FAILED. From here on, signals
        change nothing."""
        STOPPING.append("result")
        self.end_progress()
        text = json.dumps(doc, ensure_ascii=True, allow_nan=False)
        if may_hold_secret(text):               # one reading of all that is printed
            doc = redact_values(doc)
            text = json.dumps(doc, ensure_ascii=True, allow_nan=False)
        if self.query:
            text = query_text(doc, self.query)
        else:
            text += "\n"
        write_stdout(text, meta, doc)

    def line(self, text):
        self.end_progress()
        stamp = ""
        if not self.tty:
            stamp = format_time(CLOCK.wall()) + " "
        self._write(stamp + printable(redact(text)) + "\n")

    def warn(self, text):
        if text in self.warned:         # once a run, however often the file is read
            return
        self.warned.add(text)
        self.line("warning: " + text)

    def debug(self, text):
        if self.verbose:
            self.line(text)

    def failure(self, error):
        """The end of a failed run: a line naming the code, the exit and the message (and the
        command that resumes a wait), then the envelope: the last line, pure JSON, every string in
        it redacted."""
        text = "error %s (exit %d): %s" % (error.code, error.exit_code, error.message)
        resume = error.meta.get("resume")
        if resume:
            text += ". Resume with: " + resume
        self.line(text)
        doc = {"error": {"code": error.code, "message": error.message, "meta": error.meta}}
        self._write(json.dumps(redact_values(doc, True), ensure_ascii=True, default=str) + "\n")

    def redraw(self, text, phase=None):
        """Progress on a terminal: `text` (ASCII, cut to the width) drawn over the line drawn
        before. Only the rows of that line are erased (erase-line), from its last row up to its
        first (a narrower terminal has folded it): erasing the rest of the screen would push a tmux
        or screen pane's lines into its history at every redraw."""
        columns = self.width()
        text = terminal_text(text)[:columns - 1]
        up = 0
        if self.drawn:
            up = (self.drawn - 1) // columns
        moves = "\r\x1b[K" + "\x1b[1A\x1b[K" * up
        self.drawn = len(text)
        color = None
        if self.color:
            color = {"completed": "32", "partial": "33", "failed": "31"}.get(phase)
        if color:
            text = "\x1b[%sm%s\x1b[0m" % (color, text)
        self._write(moves + text)

    def end_progress(self):
        if self.drawn:
            self.drawn = 0
            self._write("\n")

    def width(self):
        """The columns of the terminal stderr is on (not stdout's: `x=$(… wait 7)` is the usual
        case); COLUMNS, then 80, where it does not say (a pseudo-terminal nobody sized says 0)."""
        try:
            columns = os.get_terminal_size(self.stream.fileno()).columns
        except (AttributeError, ValueError, OSError):
            columns = 0
        if columns <= 0:
            columns = 80
            variable = os.environ.get("COLUMNS", "")
            if re.match(r"[0-9]{1,4}\Z", variable):
                columns = int(variable)
        return max(2, columns)

    def _write(self, text):
        if self.stream is None:
            return
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError, AttributeError):
            self.stream = None          # a closed or full stderr changes nothing else


def _isatty(stream):
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def query_text(doc, paths):
    """--query: the values at `paths`, tab-separated, one line per entry of an array. Strings raw
    (on one printable line), numbers and booleans as JSON, null empty, objects and arrays as
    compact JSON."""
    entries = doc
    if not isinstance(doc, list):
        entries = [doc]
    lines = []
    for entry in entries:
        lines.append("\t".join(query_field(entry, path) for path in paths) + "\n")
    return "".join(lines)


def query_field(value, path):
    for key in path.split("."):
        if isinstance(value, dict):
            value = value.get(key)
        else:
            value = None
    if value is None:
        return ""
    if isinstance(value, str):
        return printable(value)
    return json.dumps(value, ensure_ascii=True, allow_nan=False, separators=(",", ":"))


def write_stdout(text, meta=None, doc=None):
    """Write stdout, in UTF-8 whatever the locale (cron's LANG=C). A reader that left (| head) ends
    it quietly; any other failure is OUTPUT_FAILED, which carries what could not be printed (`doc`,
    already redacted), so that nothing is lost."""
    try:
        if sys.stdout is None:
            raise OSError("stdout is closed")
        buffer = getattr(sys.stdout, "buffer", None)
        if buffer is None:
            sys.stdout.write(text)
            sys.stdout.flush()
        else:
            sys.stdout.flush()
            # encoded a slice at a time: a result of 8 MB is not copied whole into bytes
            for start in range(0, len(text), 65536):
                _write_all(buffer, text[start:start + 65536].encode("utf-8", "surrogateescape"))
            buffer.flush()
    except BrokenPipeError:
        _silence_stdout()
    except (OSError, ValueError, AttributeError) as exc:
        _silence_stdout()
        reason = str(exc)
        if isinstance(exc, OSError) and exc.strerror:
            reason = exc.strerror
        message = "the command did its work but stdout could not be written (%s)" % reason
        if doc is not None:
            shown_doc = json.dumps(doc, ensure_ascii=True, allow_nan=False)
            message += "; the result was: " + shown_doc[:2000]
        raise LandbaseError("OUTPUT_FAILED", message, meta)


def _write_all(buffer, data):
    """All of data, however often a signal cuts a write short."""
    view = memoryview(data)
    while view:
        written = buffer.write(view) or 0
        view = view[written:]


def _silence_stdout():
    """Point stdout at /dev/null, so that the interpreter's last flush cannot fail again."""
    _point_at_devnull(sys.stdout, 1)


def _point_at_devnull(stream, fd):
    """Point the file descriptor of `stream` (`fd` when it has none) at /dev/null."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        if stream is not None:
            fd = stream.fileno()
        os.dup2(devnull, fd)
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass


# ---------------------------------------------------------------- strict JSON

class StrictJSONError(ValueError):
    """A document that strict JSON refuses; `key` names a duplicated key."""

    def __init__(self, message, key=None):
        ValueError.__init__(self, message)
        self.key = key


def parse_json(raw, many=False):
    """The one JSON reader, for input bodies, platform.json and every answer alike: UTF-8 (one BOM
    tolerated), no duplicate keys, no NaN/Infinity, no number too large to print back, no nesting
    deeper than MAX_JSON_DEPTH, no more than MAX_JSON_CONTAINERS objects and arrays, no object of
    more than MAX_OBJECT_KEYS keys, and, unless `many` (the accounts list), no more than
    MAX_JSON_VALUES values. What memory a document takes grows with its values, not its size: a
    million empty objects in 4 MiB would take 100 MiB. Linear in the size of `raw`.
    StrictJSONError."""
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    shape = _refused_shape(raw, many)       # before the text is decoded: up to 4 times the bytes
    if shape:
        raise StrictJSONError(shape)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise StrictJSONError("not UTF-8 (byte 0x%02x at offset %d)" % (raw[exc.start], exc.start))
    hooks = {"object_pairs_hook": _refuse_duplicates, "parse_constant": _refuse_constant}
    if LONG_NUMBER_RE.search(raw):      # a call per number only where a number may be too long
        hooks.update(parse_float=_finite_float, parse_int=_bounded_int)
    import gc
    collect = gc.isenabled()
    gc.disable()                # many small containers: the collector would make parsing slower
    try:
        return json.loads(text, **hooks)
    except RecursionError:
        raise StrictJSONError("nested deeper than %d levels" % MAX_JSON_DEPTH)
    except StrictJSONError:
        raise
    except ValueError as exc:
        raise StrictJSONError("not valid JSON: %s" % exc)
    finally:
        if collect:
            gc.enable()


def _refused_shape(raw, many):
    """What refuses a document before it is parsed: more objects and arrays than
    MAX_JSON_CONTAINERS, an object of more keys than MAX_OBJECT_KEYS, brackets nested deeper than
    MAX_JSON_DEPTH (on 3.12+ the parser accepts documents deeper than Python's recursion limit lets
    anything walk afterwards), or, unless `many`, more values than MAX_JSON_VALUES; else None. Only
    brackets, colons and commas outside strings count; the text is read a chunk at a time, with
    whole-chunk operations (no regular expression, and a Python loop over braces and colons alone,
    only when there are more colons than an object may have keys): time and memory stay linear."""
    brackets = raw.count(b"[") + raw.count(b"{")
    colons = raw.count(b":")
    few_values = many or brackets + raw.count(b",") <= MAX_JSON_VALUES
    if brackets <= MAX_JSON_DEPTH and colons <= MAX_OBJECT_KEYS and few_values:
        return None
    containers = 0
    commas = 0
    depth = 0
    deepest = 0
    open_objects = []
    for outside in _outside_strings(raw):
        containers += outside.count(b"[") + outside.count(b"{")
        if containers > MAX_JSON_CONTAINERS:
            return "more than %d objects and arrays" % MAX_JSON_CONTAINERS
        if colons > MAX_OBJECT_KEYS and _passes_key_limit(outside, open_objects):
            return "an object of more than %d keys" % MAX_OBJECT_KEYS
        depth, deepest = _depths(outside, depth, deepest)
        commas += outside.count(b",")
    if deepest > MAX_JSON_DEPTH:
        return "nested deeper than %d levels" % MAX_JSON_DEPTH
    if not many and containers + commas > MAX_JSON_VALUES:
        return "more than %d values (only the accounts list may hold more)" % MAX_JSON_VALUES
    return None


def _outside_strings(raw, chunk=65536):
    """The JSON text of `raw` outside its strings, a chunk at a time (splitting the whole of a text
    of a million quotes would make a million pieces at once)."""
    bare = raw.replace(b"\\\\", b"").replace(b'\\"', b"")         # escaped quotes gone
    inside = False
    for start in range(0, len(bare), chunk):
        pieces = bare[start:start + chunk].split(b'"')
        if inside:
            yield b"".join(pieces[1::2])
        else:
            yield b"".join(pieces[0::2])
        if len(pieces) % 2 == 0:                    # an odd number of quotes: a string goes on
            inside = not inside


def _depths(outside, depth, deepest):
    """(the depth after the brackets in `outside`, the deepest point so far), from `depth` and
    `deepest` before them."""
    steps = outside.translate(BRACKET_STEPS, NOT_BRACKETS)     # 2 for [ {, 0 for ] }
    # after n brackets, their running sum less n is how much deeper the text went: C loops find
    # the deepest point, not a Python loop over each bracket
    rises = map(operator.sub, itertools.accumulate(steps), itertools.count(1))
    deepest = max(deepest, depth + max(rises, default=0))
    return depth + 2 * steps.count(2) - len(steps), deepest


def _passes_key_limit(outside, open_objects):
    """Whether an object in the text `outside` strings passes MAX_OBJECT_KEYS keys. `open_objects`
    holds how many keys each object still open has so far, innermost last; it goes on to the next
    chunk. Outside strings a colon is a key's, of the innermost object open (an array holds no
    colon of its own), so braces and colons are all that count: at most 1.2 million in 4 MiB, 0.1 s
    of CPU on 3.6."""
    for mark in outside.translate(None, NOT_KEY_MARKS):
        if mark == COLON:
            if not open_objects:        # not JSON: the parser says where
                return False
            open_objects[-1] += 1
            if open_objects[-1] > MAX_OBJECT_KEYS:
                return True
        elif mark == OPEN_BRACE:
            open_objects.append(0)
        elif open_objects:
            open_objects.pop()
    return False


def _refuse_duplicates(pairs):
    if not pairs:
        return {}       # dict([]) takes 241 bytes on 3.8 and 3.9, {} 73: a million empty objects
    seen = dict(pairs)
    if len(seen) < len(pairs):
        keys = [key for key, _ in pairs]
        for index, key in enumerate(keys):
            if key in keys[:index]:
                raise StrictJSONError("duplicate key %r" % key, key)
    return seen


def _refuse_constant(name):
    raise StrictJSONError("%s is not allowed (only finite numbers)" % name)


# else finite
LONG_NUMBER_RE = re.compile(rb"[0-9]{%d}|[eE][-+]?0*[1-9][0-9]{2}" % (MAX_JSON_DIGITS + 1))
BRACKET_STEPS = bytes.maketrans(b"[{]}", b"\x02\x02\x00\x00")
NOT_BRACKETS = bytes(sorted(set(range(256)) - set(b"[]{}")))
NOT_KEY_MARKS = bytes(sorted(set(range(256)) - set(b"{}:")))
COLON = ord(":")
OPEN_BRACE = ord("{")


def _finite_float(text):
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise StrictJSONError("the number %s is out of range" % text[:40])
    return value


def _bounded_int(text):
    if len(text.lstrip("-")) > MAX_JSON_DIGITS:
        raise StrictJSONError("the number %s… is out of range" % text[:20])
    return int(text)


# ---------------------------------------------------------------- config and session

def format_time(epoch):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def parse_time(text):
    """Seconds since the epoch for an RFC 3339 UTC time such as 2026-12-05T10:00:00Z; ValueError
    otherwise. (By hand: time.strptime would import _strptime, calendar and datetime on every
    command.)"""
    match = None
    if isinstance(text, str):
        match = TIME_RE.match(text.strip())
    if not match:
        raise ValueError("not a time like 2026-12-05T10:00:00Z: %r" % (text,))
    year, month, day, hour, minute, second = (int(group) for group in match.groups())
    if not (1 <= month <= 12 and 1 <= day <= days_in_month(year, month)):
        raise ValueError("not a valid date: %r" % text)
    if not (hour < 24 and minute < 60 and second <= 60):
        raise ValueError("not a valid time of day: %r" % text)
    return days_since_1970(year, month, day) * 86400 + hour * 3600 + minute * 60 + second


def days_in_month(year, month):
    if month == 2:
        leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
        return 28 + leap
    return (31, 0, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)[month - 1]


def days_since_1970(year, month, day):
    """Days from 1970-01-01 in the proleptic Gregorian calendar (the civil-from-days algorithm run
    backwards: a year that starts in March puts the leap day last)."""
    if month <= 2:
        year -= 1
        month += 12
    era, year_of_era = divmod(year, 400)
    day_of_year = (153 * (month - 3) + 2) // 5 + day - 1
    day_of_era = year_of_era * 365 + year_of_era // 4 - year_of_era // 100 + day_of_year
    return era * 146097 + day_of_era - 719468


def is_time(value):
    try:
        parse_time(value)
    except ValueError:
        return False
    return True


DURATION_RE = re.compile(r"\s*([0-9]{1,9})\s*([smhd]?)\s*\Z")
DURATION_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text):
    """Seconds in 90, 90s, 30m, 12h or 2d; None for anything else."""
    match = DURATION_RE.match(text or "")
    if not match:
        return None
    return int(match.group(1)) * DURATION_UNITS[match.group(2)]


SPAN_UNITS = ((86400, 3600, "d", "h"), (3600, 60, "h", "m"), (60, 1, "m", "s"))


def format_span(seconds):
    """Seconds in their two largest units, the second left out when nought: 45s, 1m30s, 30m, 1d02h,
    7d."""
    if seconds != seconds:              # NaN
        seconds = 0
    seconds = int(min(max(0, seconds), 10 ** 9))
    for big, small, big_name, small_name in SPAN_UNITS:
        if seconds >= big:
            text = "%d%s" % (seconds // big, big_name)
            rest = seconds % big // small
            if rest:
                text += "%02d%s" % (rest, small_name)
            return text
    return "%ds" % seconds


def account_variable():
    """The account LANDBASE_ACCOUNT_ID names, which every command uses instead of the stored one;
    "" when it names none (unset or empty)."""
    return os.environ.get("LANDBASE_ACCOUNT_ID", "")


def environment_token():
    """The token LANDBASE_ACCESS_TOKEN gives, which every command uses instead of the stored one;
    "" when it gives none (unset, empty or blank)."""
    return os.environ.get("LANDBASE_ACCESS_TOKEN", "").strip()


# The credentials for one call: the token, its source ("env" or "file"), its end (epoch seconds, or
# None), the active account, where that came from ("--account", "LANDBASE_ACCOUNT_ID", the file's
# path or None), and the SETUP_FAILED of a stored account id that is none, for the commands that
# need one.
Session = collections.namedtuple("Session", "token source expires_at account_id account_source "
                                            "account_error")


class SessionStore:
    """platform.json, the official CLI's file: private, written atomically under a lock, unknown
    keys kept; the session and the one rule for the active account (--account, LANDBASE_ACCOUNT_ID,
    the file)."""

    def __init__(self, directory=None):
        self.directory = directory or os.environ.get("LANDBASE_CONFIG_DIR")
        if not self.directory:
            self.directory = os.path.join("~", ".landbase")
        # a crontab does not expand ~, and a relative path would depend on where the command ran
        self.directory = os.path.abspath(os.path.expanduser(self.directory))
        self.path = os.path.join(self.directory, SESSION_FILE)
        self.login_hint = "; fix it, or remove it and run: %s auth login" % program_command()

    def load(self, console=None):
        """The stored object ({} when there is none); a damaged file is SETUP_FAILED naming it."""
        raw, mode = self._read()
        if raw is None:
            return {}
        if console is not None and os.name == "posix" and mode & 0o077:
            console.warn(
                "%s is open to group or others; run: chmod 600 %s" % (self.path, self.path)
            )
        if not raw.strip():
            raise LandbaseError("SETUP_FAILED", "%s is empty%s" % (self.path, self.login_hint))
        try:
            data = parse_json(raw)
        except StrictJSONError as exc:
            raise LandbaseError(
                "SETUP_FAILED", "%s is damaged: %s%s" % (self.path, exc, self.login_hint)
            )
        if not isinstance(data, dict):
            raise LandbaseError("SETUP_FAILED", "%s must hold a JSON object, not %s%s"
                                % (self.path, json_type(data), self.login_hint))
        for key in ("accessToken", "expiresAt", "accountId", "deviceName"):
            if data.get(key) is not None and not isinstance(data[key], str):
                raise LandbaseError("SETUP_FAILED", "%s: %s must be a string%s"
                                    % (self.path, key, self.login_hint))
        remember_secret(data.get("accessToken"))
        if data.get("expiresAt") is not None and not is_time(data["expiresAt"]):
            raise LandbaseError(
                "SETUP_FAILED",
                "%s: expiresAt %s is not a time like 2026-12-05T10:00:00Z%s"
                % (self.path, shown(repr(data["expiresAt"]), 80), self.login_hint),
            )
        return data

    def _read(self):
        """(bytes, mode) of the file, or (None, None) when there is none. Opened without blocking
        and refused unless it is a regular file: a FIFO in its place must not hang every command.
        """
        flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0)
        try:
            with os.fdopen(os.open(self.path, flags), "rb") as handle:
                mode = os.fstat(handle.fileno()).st_mode
                if not stat.S_ISREG(mode):
                    raise self._not_a_regular_file()
                raw = handle.read(MAX_BODY_BYTES + 1)
        except FileNotFoundError:
            return None, None
        except NotADirectoryError:
            raise self._not_a_directory()
        except IsADirectoryError:
            raise self._not_a_regular_file()
        except OSError as exc:
            raise LandbaseError(
                "SETUP_FAILED", "cannot read %s: %s" % (self.path, exc.strerror or exc)
            )
        if len(raw) > MAX_BODY_BYTES:
            raise LandbaseError("SETUP_FAILED", "%s is larger than 1 MiB: not a session file%s"
                                % (self.path, self.login_hint))
        return raw, mode

    def session(self, account_override, console):
        """The session for this call: AUTH_REQUIRED without one, AUTH_FAILED past expiresAt;
        nothing sent."""
        stored = self.load(console)
        token = environment_token()
        source = "env"
        if not token:
            token = stored.get("accessToken") or ""
            source = "file"
        if not token:
            raise LandbaseError("AUTH_REQUIRED", "not logged in (no session in %s): run %s auth "
                                "login (or set LANDBASE_ACCESS_TOKEN)"
                                % (self.path, program_command()))
        if not usable_token(token):
            raise self._unusable(source)
        expires_at = None
        if stored.get("expiresAt") and stored.get("accessToken") == token:
            expires_at = parse_time(stored["expiresAt"])
            if expires_at <= CLOCK.wall():
                raise LandbaseError("AUTH_FAILED", "the session expired at %s: run %s auth login"
                                    % (stored["expiresAt"], program_command()),
                                    {"expiresAt": stored["expiresAt"]})
            warn_if_ending(expires_at, console)
        account_id, account_source, error = self._account(account_override, stored)
        return Session(token, source, expires_at, account_id, account_source, error)

    def _unusable(self, source):
        if source == "env":
            return LandbaseError(
                "INVALID_INPUT",
                "LANDBASE_ACCESS_TOKEN is not a usable token (printable "
                "ASCII only): set it to the token itself",
            )
        return LandbaseError(
            "SETUP_FAILED",
            "%s: accessToken is not a usable token (printable ASCII "
            "only): run: %s auth login" % (self.path, program_command()),
        )

    def _account(self, account_override, stored):
        """(the active account id or None, where it came from, the error of a stored one that is
        none)."""
        if account_override:
            return check_account_id(account_override, "--account"), "--account", None
        from_env = account_variable()
        if from_env:
            return check_account_id(from_env, "LANDBASE_ACCOUNT_ID"), "LANDBASE_ACCOUNT_ID", None
        stored_id = stored.get("accountId")
        if stored_id is None or stored_id == "":
            return None, None, None
        if not ACCOUNT_ID_RE.match(stored_id):
            error = LandbaseError(
                "SETUP_FAILED",
                "%s: accountId %s is not an account id; choose one with: %s"
                % (self.path, shown(repr(stored_id), 80), choose_account()),
            )
            return None, None, error
        return stored_id, self.path, None

    def update(self, changes, console=None, replace_damaged=False, expected=None):
        """Read, change and write back under the lock; keys this tool does not know are kept.
        `changes` is the keys to change, or a function of the stored object that returns them. The
        object as it was before. A change that follows a request made with what the file held
        passes `expected` (keys and the values they held): when the file no longer holds them
        (another command changed it meanwhile), nothing is written, and the answer is None."""
        with self.locked():
            try:
                data = self.load(console)
            except LandbaseError:
                if not replace_damaged:
                    raise
                if console is not None:
                    console.warn("replacing the damaged %s" % self.path)
                data = {}
            if not holds(data, expected):
                return None
            before = dict(data)
            if callable(changes):
                changes = changes(data)
            data.update(changes)
            self._save(data)
        return before

    def remove(self, token=None):
        """Remove the file; with `token`, only while it still holds that token (a newer login's is
        kept). Whether it was removed."""
        with self.locked():
            if token is not None and self.load().get("accessToken") != token:
                return False
            try:
                os.remove(self.path)
            except FileNotFoundError:
                return False
            except OSError as exc:
                raise LandbaseError("SETUP_FAILED", "cannot remove %s: %s; remove it by hand"
                                    % (self.path, exc.strerror or exc))
        return True

    def changed_meanwhile(self, again):
        """The error of a command whose request was made with what the file no longer holds: a
        logout removed it, or another login replaced it. `again` is the command to run again."""
        if not os.path.lexists(self.path):
            return LandbaseError("SETUP_FAILED", "%s was removed while this command ran (a "
                                 "logout), so nothing was changed: log in, then run it again: %s "
                                 "auth login, then %s" % (self.path, program_command(), again))
        return LandbaseError("SETUP_FAILED", "%s changed while this command ran (another login "
                             "saved a new token), so nothing was changed: run it again: %s"
                             % (self.path, again))

    @contextlib.contextmanager
    def locked(self):
        """The lock every change of the file is made under (a file beside it, never removed),
        waited for at most LOCK_WAIT seconds: flock on POSIX, msvcrt.locking on Windows; closing it
        releases it."""
        self._make_directory()
        lock_path = self.path + ".lock"
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            fix = self._writable_hint()
            problem = self.change_problem()
            if problem is not None:
                fix = problem[1]
            raise LandbaseError("SETUP_FAILED", "cannot open the lock file %s: %s; %s"
                                % (lock_path, exc.strerror or exc, fix))
        try:
            ends = CLOCK.now() + LOCK_WAIT
            while not _try_lock(fd):
                if CLOCK.now() > ends:
                    raise LandbaseError(
                        "SETUP_FAILED",
                        "another process has held the lock %s for %ds, "
                        "so %s was not changed; try again" % (lock_path, LOCK_WAIT, self.path),
                    )
                CLOCK.sleep(LOCK_POLL)
            yield
        finally:
            os.close(fd)

    def change_problem(self):
        """(what is wrong, the fix) when this user cannot change platform.json, as far as can be
        told without trying: its lock is a directory (a mkdir-style locker's), or the lock or the
        directory cannot be written. None when nothing is known to be wrong. Doctor's config row,
        logout before it revokes, and a change that failed to open the lock all say this."""
        lock = self.path + ".lock"
        if os.path.isdir(lock):
            return ("%s is a directory, not a lock file" % lock,
                    "remove it (rm -r %s)" % shlex.quote(lock))
        if os.path.lexists(lock) and not os.access(lock, os.W_OK):
            return ("%s cannot be written by this user" % lock,
                    "remove it, or run as its owner (ls -l %s)" % shlex.quote(lock))
        if not os.access(self.directory, os.W_OK | os.X_OK):
            return ("%s cannot be written by this user" % self.directory, self._directory_fix())
        return None

    def _directory_fix(self):
        return "chown or chmod it (ls -ld %s)" % shlex.quote(self.directory)

    def _writable_hint(self):
        return "the user running this must be able to write in %s: %s" % (
            self.directory, self._directory_fix())

    def _save(self, data):
        """Write atomically: a reader, or a crash at any point, sees the old file or the new one.
        The file is synced before the rename, else a crash could leave the new name on an empty
        file. Writers hold the lock, so one temporary name serves: a writer killed mid-write leaves
        it for the next to replace."""
        tmp = self.path + ".tmp"
        payload = (json.dumps(data, indent=2, ensure_ascii=True, allow_nan=False) + "\n").encode(
            "ascii"
        )
        try:
            with contextlib.suppress(FileNotFoundError):
                os.remove(tmp)
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
            fd = os.open(tmp, flags, 0o600)
            try:
                if hasattr(os, "fchmod"):
                    os.fchmod(fd, 0o600)        # whatever the umask (277 would leave 0400)
                view = memoryview(payload)
                while view:
                    view = view[os.write(fd, view):]
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, self.path)
        except BaseException as exc:
            with contextlib.suppress(OSError):
                os.remove(tmp)
            if not isinstance(exc, OSError):
                raise
            if os.path.isdir(self.path):
                raise self._not_a_regular_file()
            raise LandbaseError("SETUP_FAILED", "cannot write %s: %s; %s"
                                % (self.path, exc.strerror or exc, self._writable_hint()))

    def _make_directory(self):
        """The config directory, made 0700 (its parents too) when it is missing; the mode of a
        directory the tool did not make is left alone, and a file in its place is refused."""
        if os.path.isdir(self.directory):
            return
        if os.path.lexists(self.directory):
            raise self._not_a_directory()
        try:
            os.makedirs(self.directory, 0o700)
            os.chmod(self.directory, 0o700)     # makedirs' mode meets the umask
        except FileExistsError:
            pass                                # another process made it first
        except OSError as exc:
            raise LandbaseError("SETUP_FAILED", "cannot create %s: %s"
                                % (self.directory, exc.strerror or exc))

    def _not_a_regular_file(self):
        kind = "not a regular file"
        if os.path.isdir(self.path):
            kind = "a directory, not a session file"
        return LandbaseError("SETUP_FAILED", "%s is %s: remove it (rm -r %s), then run: %s "
                             "auth login" % (self.path, kind, shlex.quote(self.path),
                                             program_command()))

    def _not_a_directory(self):
        return LandbaseError(
            "SETUP_FAILED",
            "%s is not a directory; LANDBASE_CONFIG_DIR names the "
            "directory platform.json goes in" % self.directory,
        )


def holds(data, expected):
    """Whether the stored object still holds the `expected` keys and values (None: anything)."""
    for key, value in (expected or {}).items():
        if data.get(key) != value:
            return False
    return True


def _try_lock(fd):
    """Take the lock on fd without waiting; whether it was taken."""
    try:
        import fcntl
    except ImportError:
        return _try_lock_windows(fd)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    return True


def _try_lock_windows(fd):
    import msvcrt
    try:
        msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
    except OSError:
        return False
    return True


def warn_if_ending(expires_at, console, source="file"):
    left = expires_at - CLOCK.wall()
    if left < SESSION_WARN_BELOW:
        console.warn("the session expires in %s (%s): %s soon"
                     % (format_span(left), format_time(expires_at), renewal(source)))


def renewal(source):
    """The next step for a session that ended or was refused: a login for the stored one; for a
    token from the environment, which a login does not replace, a new token there."""
    if source == "env":
        return "renew LANDBASE_ACCESS_TOKEN (or unset it, to use the stored session)"
    return "run %s auth login" % program_command()


def unknown_end_step(source):
    """The next step when nobody says when a session ends: a login saves its end; a token from the
    environment has none to save."""
    if source == "env":
        return ("drop --min-valid, or unset LANDBASE_ACCESS_TOKEN to check the stored session, "
                "whose end is saved")
    return "run %s auth login (a login saves when the session ends)" % program_command()


def require_account(session):
    if session.account_error is not None:
        raise session.account_error
    if not session.account_id:
        raise LandbaseError(
            "INVALID_INPUT",
            "No account id: run %s account set <accountId> (see account "
            "list), or pass --account=<id>" % program_command(),
        )
    return session.account_id


def check_account_id(value, what="account id"):
    if not isinstance(value, str) or not ACCOUNT_ID_RE.match(value):
        raise LandbaseError(
            "INVALID_INPUT",
            "%s %s is not valid: use 1 to 64 letters, digits, _ or -"
            % (what, shown(repr(value), 80)),
        )
    return value


def is_import_id(value):
    """An import id as the platform holds it: a positive whole number (not true, not 7.0) of 63
    bits."""
    if isinstance(value, bool) or not isinstance(value, int):
        return False
    return 0 < value <= MAX_IMPORT_ID


def program_command():
    """This file as a command that runs from any directory: its absolute path, behind the
    interpreter when the file cannot be run by itself (no run bit)."""
    path = os.path.abspath(__file__)
    if not os.path.isfile(path):        # run from stdin: no path runs it again
        return "landbase_import.py"
    if os.access(path, os.X_OK):
        return shlex.quote(path)
    return "python3 " + shlex.quote(path)


def redirect_step():
    """What ends the message of a redirect the tool does not follow."""
    return ("; check LANDBASE_PLATFORM_API_URL, and what may redirect it (a proxy, a captive "
            "portal): %s doctor" % program_command())


def doctor_hint():
    """What ends the message of an exchange that got no answer, after its next step: doctor checks
    each step of the way. doctor's own rows leave it out (Report.error)."""
    return ", or run %s doctor" % program_command()


def choose_account():
    """The command that makes an account active, with the one that lists the ids, both runnable
    as printed."""
    return "%s account set <accountId> (the ids: %s account list)" % (program_command(),
                                                                       program_command())


# ---------------------------------------------------------------- HTTP

def base_url(env_name, default):
    """A base URL from the environment, refused unless it is https on Landbase (or http on
    loopback)."""
    import urllib.parse
    url = os.environ.get(env_name) or default
    try:
        parts = urllib.parse.urlsplit(url)
        host = (parts.hostname or "").lower()
        parts.port                      # raises ValueError for a bad port
    except ValueError as exc:
        raise LandbaseError(
            "INVALID_INPUT", "%s=%s is not a valid URL (%s)" % (env_name, shown(url), exc)
        )
    odd = any(ch.isspace() or not ch.isprintable() for ch in url)
    extra = parts.username or parts.query or parts.fragment
    if parts.scheme not in ("http", "https") or not host or extra or odd:
        raise LandbaseError(
            "INVALID_INPUT", "%s=%s is not an http(s) base URL" % (env_name, shown(url))
        )
    if parts.scheme == "http" and not is_loopback(url):
        raise LandbaseError(
            "INVALID_INPUT", "%s=%s: https is required except on loopback (127.0.0.1, ::1 or "
            "localhost): use https://, or one of those names" % (env_name, url)
        )
    landbase = host == "landbase.com" or host.endswith(".landbase.com")
    custom = os.environ.get("LANDBASE_ALLOW_CUSTOM_API_URL") == "1"
    if not (landbase or is_loopback(url) or custom):
        raise LandbaseError(
            "INVALID_INPUT",
            "%s=%s: the host %s is not landbase.com or loopback; set "
            "LANDBASE_ALLOW_CUSTOM_API_URL=1 to send your credentials there"
            % (env_name, url, host),
        )
    return url.rstrip("/")


def is_loopback(url):
    import urllib.parse
    return (urllib.parse.urlsplit(url).hostname or "").lower() in ("localhost", "127.0.0.1", "::1")


def same_origin(url_a, url_b):
    """Whether two URLs share scheme, host and port; ValueError for a port out of range."""
    return origin(url_a) == origin(url_b)


def origin(url):
    """(scheme, host, port) of a URL, the port filled in; ValueError for a port out of range."""
    import urllib.parse
    parts = urllib.parse.urlsplit(url)
    port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    return parts.scheme, (parts.hostname or "").lower(), port


def host_port(host, port):
    """host:port as a person writes it, an IPv6 address in brackets."""
    if ":" in host:
        host = "[%s]" % host
    return "%s:%d" % (host, port)


class Proxy(collections.namedtuple("Proxy", "where variable authorization")):
    """The proxy a request goes through: `where` (host:port, never its credentials), the variable
    it came from, and the Proxy-Authorization its credentials make (or None)."""

    def __str__(self):
        return "the proxy %s (%s)" % (self.where, self.variable)


def proxy_for(base):
    """The Proxy for requests to `base`, or None: the one decision of what is proxied, which the
    requests follow and every message describes. https_proxy or HTTPS_PROXY, for an https base,
    unless NO_PROXY covers its host (or host:port); never for loopback (plain http with a token
    must not leave the host); ALL_PROXY is not read. urllib speaks only http:// to a proxy, so
    https:// (where the user wants the credentials kept from the wire) and socks are INVALID_INPUT
    before anything is sent, as is a URL that does not parse, which is named by its variable alone:
    its pieces may be a password."""
    import base64
    import urllib.parse
    if not base.startswith("https:") or is_loopback(base):
        return None
    variable = None
    for name in ("https_proxy", "HTTPS_PROXY"):
        if os.environ.get(name):
            variable = name
            break
    if variable is None or no_proxy_covers(base):
        return None
    url = os.environ[variable].strip()
    if "://" not in url:
        url = "http://" + url
    scheme = url.split("://", 1)[0].lower()
    if scheme != "http":
        raise LandbaseError(
            "INVALID_INPUT",
            "%s is a %s:// proxy, which this tool cannot speak without "
            "sending its credentials in clear: only http:// proxies are supported (the "
            "tunnel to the platform is TLS either way)" % (variable, shown(scheme, 20)),
        )
    unreadable = LandbaseError(
        "INVALID_INPUT",
        "%s is not a proxy URL that can be read: write it as "
        "http://[user:password@]host:port, with @ : / %% in the password "
        "percent-encoded (%%40 %%3A %%2F %%25)" % variable,
    )
    try:
        parts = urllib.parse.urlsplit(url)
        host, port = parts.hostname, parts.port
        user, password = parts.username, parts.password
    except ValueError:
        raise unreadable
    if not host or parts.path not in ("", "/") or parts.query or parts.fragment:
        raise unreadable
    authorization = None
    if user is not None:
        pair = remember_proxy_credentials(user, password)
        authorization = "Basic " + base64.b64encode(pair.encode("utf-8")).decode("ascii")
    return Proxy(host_port(host, port or 80), variable, authorization)


def no_proxy_covers(base):
    """Whether NO_PROXY (no_proxy) names the base's host: the host, a domain of it, or host:port.
    """
    import urllib.parse
    import urllib.request
    scheme, host, port = origin(base)
    netloc = urllib.parse.urlsplit(base).netloc
    for name in (host, netloc, host_port(host, port)):
        if urllib.request.proxy_bypass_environment(name):
            return True
    return False


def parse_retry_after(headers, data):
    """Seconds from Retry-After (seconds or an HTTP date) and error.meta.retry_after_seconds, the
    larger."""
    found = []
    value = ""
    if headers is not None:
        value = (headers.get("Retry-After") or "").strip()
    if re.match(r"[0-9]+\Z", value):                # ASCII digits only: "²".isdigit() is true
        found.append(min(int(value[:10]), 10 ** 9))
    elif value:
        when = parse_http_date(value)
        if when is not None:
            found.append(min(10 ** 9, max(0, int(when - CLOCK.wall()))))
    error = None
    if isinstance(data, dict):
        error = data.get("error")
    meta = None
    if isinstance(error, dict):
        meta = error.get("meta")
    if isinstance(meta, dict):
        seconds = meta.get("retry_after_seconds")
        if is_number(seconds) and seconds >= 0:
            found.append(int(min(seconds, 10 ** 9) + 0.999))
    return max(found, default=None)


def parse_http_date(text):
    """Seconds since the epoch of an HTTP date (Retry-After, Date); None when it is not a valid one
    (the 32nd of February, the year 10000)."""
    from email.utils import parsedate_tz, mktime_tz
    try:
        parsed = parsedate_tz(text)
    except (TypeError, ValueError, IndexError):
        return None
    if not parsed:
        return None
    year, month, day, hour, minute, second = parsed[:6]
    if not (1970 <= year <= 9999 and 1 <= month <= 12 and 1 <= day <= days_in_month(year, month)):
        return None
    if not (hour < 24 and minute < 60 and second <= 60):
        return None
    zone = parsed[9]
    if zone is not None and abs(zone) > 24 * 3600:        # no zone is a day away from UTC
        return None
    try:
        return mktime_tz(parsed)
    except (OverflowError, ValueError):
        return None


def retry_wait(error, planned, longest=None, transient=None):
    """The one retry decision (one-shot retries, --watch's start, the poller, the device flow): the
    seconds to wait after `error`, or None to give up. `planned` is the loop's next wait (None: no
    try left); a longer Retry-After is honoured up to `longest`; `transient` says an answer is
    worth waiting on ("authorization pending")."""
    if transient is None:
        transient = error.transient
    if not transient or planned is None:
        return None
    wait = planned
    if error.retry_after is not None:
        wait = max(planned, error.retry_after)
    if longest is not None and wait > longest:
        return None
    return wait


def poll_delays():
    """5 s, 10 s, then 20 s for ever: the waits between status reads (and --watch's start
    attempts)."""
    return itertools.chain(POLL_DELAYS, itertools.repeat(POLL_EVERY))


def in_background(target, *args):
    """A daemon thread running target(*args) that never takes SIGINT, SIGTERM or SIGHUP: only the
    main thread does, so that signals sent together are taken in the kernel's order, not in the
    order threads race."""
    import threading
    mask = getattr(signal, "pthread_sigmask", None)         # not on Windows
    before = None
    if mask:
        # the thread starts with its parent's mask
        before = mask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        thread = threading.Thread(target=target, args=args, daemon=True)
        thread.start()
    finally:
        if mask:
            mask(signal.SIG_SETMASK, before)
    return thread


class Deadline:
    """--timeout over a whole request, name resolution to last byte: then its sockets are shut
    down, so that a server dripping a byte at a time cannot stretch it (a socket's own timeout
    bounds each read, not the request). Real time, not CLOCK: it bounds what real sockets do."""

    def __init__(self, seconds):
        import threading
        self.seconds = seconds
        self.ends = time.monotonic() + seconds
        self.expired = False
        self.lock = threading.Lock()
        self.sockets = []
        self.over = threading.Event()

    def left(self):
        return self.ends - time.monotonic()

    def watch(self, sock):
        """Called with each socket the request opens (a proxy's included); returns it."""
        with self.lock:
            self.sockets.append(sock.dup())
        if self.expired:
            self.expire()
        return sock

    def expire(self):
        import socket
        with self.lock:
            self.expired = True
            for sock in self.sockets:
                with contextlib.suppress(OSError):      # already closed
                    sock.shutdown(socket.SHUT_RDWR)

    def _watchdog(self):
        if not self.over.wait(self.seconds):
            self.expire()

    def __enter__(self):
        in_background(self._watchdog)
        return self

    def __exit__(self, *exc):
        self.over.set()
        with self.lock:
            for sock in self.sockets:
                sock.close()
            self.sockets = []


class Trace:
    """What one exchange reached, as doctor reports it: the name resolved and its address, the TCP
    connection (to the proxy when there is one) and its milliseconds, the proxy's tunnel, TLS and
    the seconds its certificate has left, then the answer's status, headers and milliseconds."""

    def __init__(self, host, proxy, names_wanted=False):
        self.host = host                # the platform's host: the TLS name
        self.proxy = proxy
        # doctor: read the names of a certificate for another name
        self.names_wanted = names_wanted
        self.resolved = None            # (name, address)
        self.connected_ms = None
        self.tunnel = False
        self.tls = None                 # (version, seconds the certificate has left)
        self.certificate_names = None   # the names a certificate for another name holds
        self.status = None
        self.headers = None
        self.ms = None


def resolve(host, port, deadline):
    """getaddrinfo within what is left of the request's deadline: it has no timeout of its own, and
    a name server that never answers would hold the request for as long as the resolver's own
    retries."""
    import socket
    answer = []

    def lookup():
        try:
            answer.append(socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM))
        except (OSError, UnicodeError) as exc:
            answer.append(exc)
    in_background(lookup).join(max(0.0, deadline.left()))
    if not answer:
        raise socket.timeout("no answer from the name server for %s" % host)
    if isinstance(answer[0], BaseException):
        raise answer[0]
    return answer[0]


def open_socket(address, deadline, trace):
    """A TCP connection to address (host, port): the name resolved within the request's deadline,
    then each of its addresses tried with the time left, the socket watched by the deadline."""
    import socket
    host, port = address
    started = time.monotonic()
    addresses = resolve(host, port, deadline)
    trace.resolved = (host, addresses[0][4][0])
    error = OSError("no address for %s" % host)
    for _, _, _, _, socket_address in addresses:
        try:
            sock = socket.create_connection(socket_address[:2], max(0.001, deadline.left()))
        except OSError as exc:
            error = exc
            continue
        trace.connected_ms = (time.monotonic() - started) * 1000
        return deadline.watch(sock)
    raise error


def connection_classes():
    """The HTTP and HTTPS connections of every request: their sockets opened by open_socket()
    (bounded and watched), what they reach recorded in the request's Trace."""
    import http.client

    class Plain(http.client.HTTPConnection):
        def __init__(self, host, *args, deadline=None, trace=None, **kwargs):
            http.client.HTTPConnection.__init__(self, host, *args, **kwargs)
            self.deadline = deadline
            self.trace = trace
            self._create_connection = self.open_socket

        def open_socket(self, address, timeout=None, source_address=None):
            return open_socket(address, self.deadline, self.trace)

    class Secure(http.client.HTTPSConnection):
        def __init__(self, host, *args, deadline=None, trace=None, context=None, **kwargs):
            http.client.HTTPSConnection.__init__(self, host, *args, context=context, **kwargs)
            self.deadline = deadline
            self.trace = trace
            self.tls_context = context
            self._create_connection = self.open_socket

        def open_socket(self, address, timeout=None, source_address=None):
            return open_socket(address, self.deadline, self.trace)

        def connect(self):
            """TCP, the proxy's tunnel, then TLS, as HTTPSConnection.connect does, each step
            traced."""
            http.client.HTTPConnection.connect(self)
            # a CONNECT answer the deadline cut short reads as a status line and no headers: that
            # tunnel was never let through
            self.trace.tunnel = self.trace.proxy is not None and not self.deadline.expired
            try:
                self.sock = self.tls_context.wrap_socket(
                    self.sock, server_hostname=self.trace.host
                )
            except ValueError as exc:
                if self.trace.names_wanted and is_name_mismatch(exc):
                    self.trace.certificate_names = names_on_certificate(self, Secure)
                raise
            certificate = self.sock.getpeercert()
            self.trace.tls = (self.sock.version(), certificate_left(certificate))

        def set_tunnel(self, host, port=None, headers=None):
            self.tunnel = (host, port, headers)
            http.client.HTTPSConnection.set_tunnel(self, host, port, headers)
    return Plain, Secure


def names_on_certificate(connection, secure):
    """The names the platform's certificate holds, read by a second handshake of the same kind of
    connection (the same way, through the same proxy) that checks the chain but not the name, and
    sends nothing: for doctor's fix of a certificate for another name."""
    import ssl
    context = ssl.create_default_context(cafile=os.environ.get("SSL_CERT_FILE") or None)
    context.check_hostname = False
    trace = Trace(connection.trace.host, connection.trace.proxy)
    other = secure(connection.host, connection.port, deadline=connection.deadline, trace=trace,
                   context=context)
    if getattr(connection, "tunnel", None):
        other.set_tunnel(*connection.tunnel)
    try:
        other.connect()
        return certificate_names(other.sock.getpeercert())
    except (OSError, ValueError):
        return None
    finally:
        other.close()


def is_name_mismatch(exc):
    """Whether a TLS failure is a certificate for another name (3.6 raises a bare
    CertificateError)."""
    if getattr(exc, "verify_code", None) in (62, 64):
        return True
    return "hostname" in str(exc).lower() or "match" in str(exc).lower()


def certificate_left(certificate):
    import ssl
    try:
        return ssl.cert_time_to_seconds(certificate["notAfter"]) - CLOCK.wall()
    except (KeyError, TypeError, ValueError):
        return None


def certificate_names(certificate):
    """The DNS names and addresses a certificate is for, or its common name."""
    names = [
        value
        for kind, value in certificate.get("subjectAltName", ())
        if kind in ("DNS", "IP Address")
    ]
    if not names:
        for entry in certificate.get("subject", ()):
            for key, value in entry:
                if key == "commonName":
                    names.append(value)
    return ", ".join(names) or None


def tls_context():
    """The verifying TLS context: the system store, or SSL_CERT_FILE, which must be a regular file
    (a FIFO would hang the load, before any request's deadline)."""
    import ssl
    cafile = os.environ.get("SSL_CERT_FILE")
    try:
        if cafile and not stat.S_ISREG(os.stat(cafile).st_mode):
            raise OSError(0, "not a regular file: point it at a PEM bundle of CA certificates")
        # a file with no certificate fails
        return ssl.create_default_context(cafile=cafile or None)
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "strerror", None) or exc
        fix = ("point SSL_CERT_FILE at a readable PEM bundle of CA certificates (it names %s), or "
               "unset it" % shown(cafile))
        raise LandbaseError("SETUP_FAILED", "SSL_CERT_FILE=%s cannot be used: %s; %s"
                            % (shown(cafile), reason, fix), fix=fix)


def build_opener(base):
    """The opener of every request: no redirect followed by urllib (Api.once() judges them), no
    proxy chosen by urllib (Api.send() sets the one proxy_for() chose), each connection bounded by
    its request's Deadline and traced, a verifying TLS context for https only (the CA store costs
    ~35 ms)."""
    import urllib.request
    plain, secure = connection_classes()

    class NoRedirects(urllib.request.HTTPRedirectHandler):
        """Follow nothing, read no Location."""

        def http_error_302(self, req, fp, code, msg, headers):
            return None                 # the default error handler then raises HTTPError 30x

        http_error_301 = http_error_302
        http_error_303 = http_error_302
        http_error_307 = http_error_302
        http_error_308 = http_error_302

    class HTTPHandler(urllib.request.HTTPHandler):
        def http_open(self, req):
            return self.do_open(plain, req, deadline=req.deadline, trace=req.trace)

    class HTTPSHandler(urllib.request.HTTPSHandler):
        def https_open(self, req):
            return self.do_open(secure, req, context=self._context, deadline=req.deadline,
                                trace=req.trace)

    # the handlers named one by one: urllib's build_opener() would add one that reads proxies
    # from the environment, the file, ftp and data schemes, and an HTTPS handler that, on 3.12+,
    # loads the CA store itself when it is given no context
    opener = urllib.request.OpenerDirector()
    opener.add_handler(urllib.request.UnknownHandler())
    opener.add_handler(urllib.request.HTTPDefaultErrorHandler())
    opener.add_handler(urllib.request.HTTPErrorProcessor())
    opener.add_handler(NoRedirects())
    opener.add_handler(HTTPHandler())
    if base.startswith("https:"):
        opener.add_handler(HTTPSHandler(context=tls_context()))
    return opener


class Api:
    """The one way to talk to the platform: timeout, headers, token, proxy, JSON, error mapping,
    retries."""

    def __init__(self, base, token=None, timeout=DEFAULT_TIMEOUT, console=None, renewal=None):
        self.base = base
        self.token = token
        self.timeout = timeout
        self.console = console or Console()
        self.renewal = renewal or "run %s auth login" % program_command()   # after a 401
        self.proxy = proxy_for(base)
        self.opener = None

    def call(self, method, path, body=None, auth=True, headers=None, check=None, retry=True,
             timeout=None, until=None, attempts=None, trace=None):
        """The decoded answer of a 2xx, through check(data, headers) (a broken one is retried like
        a 5xx); else the error. A transient failure is tried again after 5, 10 and 20 s
        (retry=False: never); with `until` (a time on CLOCK), on the wait's schedule (5, 10, then
        every 20 s) until then, each request bounded by the time left. Each failed attempt's error
        is added to `attempts`."""
        delays = iter(RETRY_DELAYS if retry else ())
        if until is not None:
            delays = poll_delays()
        attempt = 0
        while True:
            limit = timeout or self.timeout
            if until is not None:
                limit = max(0.001, min(limit, until - CLOCK.now()))
            try:
                return self.once(method, path, body, auth, headers, check, limit, trace)
            except LandbaseError as exc:
                if attempts is not None:
                    attempts.append(exc)
                planned = next(delays, None)
                longest = RETRY_AFTER_CAP
                if until is not None:
                    longest = until - CLOCK.now()
                wait = retry_wait(exc, planned, longest)
                if wait is None:
                    raise self.given_up(exc, planned, until, attempt)
                attempt += 1
                self.console.line("%s %s failed (%s: %s); %s in %ds" % (
                    method, path, exc.code, exc.message, retry_name(attempt, until), wait))
                CLOCK.sleep(wait)

    def given_up(self, error, planned, until, attempt):
        """The error a request ends with: a platform that failed every try of a one-shot command,
        or asked to wait longer than one waits, says to run it again later (a failure of the
        network already ends with its step)."""
        if until is not None or not error.transient:
            return error
        if planned is None and attempt > 0 and "status" in error.meta:
            return error.replace(message="%s; it failed %d times in a row: run it again later"
                                 % (error.message, attempt + 1))
        if error.retry_after is None:
            return error
        return error.replace(
            message="%s; the platform asked to wait %s, longer than the %s a one-shot "
            "command waits: run it again later"
            % (error.message, format_span(error.retry_after), format_span(RETRY_AFTER_CAP))
        )

    def once(self, method, path, body=None, auth=True, headers=None, check=None, timeout=None,
             trace=None):
        """One request, with the same-origin redirects it meets, its answer judged."""
        url = self.base + path
        data = None
        if body is not None:
            data = json.dumps(body, ensure_ascii=True, allow_nan=False).encode("ascii")
        shown_url = url
        for _ in range(MAX_REDIRECTS + 1):
            status, answer_headers, raw = self.send(method, url, data, auth, headers or {},
                                                    timeout or self.timeout, shown_url, trace)
            if status in (301, 302, 303, 307, 308):
                url, method, data = self.redirect(
                    url, method, data, status, answer_headers, shown_url
                )
                shown_url = redact(url, pattern=True)   # a redirect's URL is the server's text
                continue
            answer = self.decode(method, path, status, answer_headers, raw)
            redacted = needs_redaction(raw)
            del raw                     # up to 4 MiB, no longer needed while the answer is judged
            if check is not None:
                answer = check(answer, answer_headers)
            if path == "/v1/oauth/token" or not redacted:
                return answer           # a token is kept as it is, to be stored
            return redact_values(answer, pattern=True)
        raise LandbaseError("API_ERROR", "%s %s: more than %d redirects%s"
                            % (method, path, MAX_REDIRECTS, redirect_step()))

    def redirect(self, url, method, data, status, headers, shown_url):
        """(url, method, body) of the redirect's target: the same origin only, so the token goes
        nowhere else; a POST only where the status keeps its method and body (307, 308)."""
        import urllib.parse
        location = (headers.get("Location") or "").strip()
        where = "%s %s: HTTP %d" % (method, shown_url, status)
        try:
            target = urllib.parse.urljoin(url, location)
            usable = bool(location) and urllib.parse.urlsplit(target).username is None
            usable = usable and not any(ch.isspace() or not ch.isprintable() for ch in target)
            same = usable and same_origin(url, target)
        except ValueError:
            usable = False
        if not usable:
            raise LandbaseError(
                "API_ERROR",
                "%s with a Location that is not a usable URL (%s)"
                % (where, excerpt(location, 100)),
                {"status": status},
                transient=True,
            )
        if not same:
            raise LandbaseError(
                "API_ERROR",
                "%s: refused a redirect to another origin (%s); the token is never sent "
                "there%s" % (where, excerpt(target), redirect_step()),
                {"status": status},
            )
        if status in (307, 308):
            return target, method, data
        if method == "GET":
            return target, method, None
        raise LandbaseError("API_ERROR", "%s: refused the redirect of a %s" % (where, method))

    def send(self, method, url, data, auth, headers, timeout, shown_url=None, trace=None):
        """(status, headers, body) of one exchange, read against a Deadline and at most
        MAX_ANSWER_BYTES."""
        import urllib.parse
        import http.client
        import urllib.error
        if self.opener is None:
            self.opener = build_opener(self.base)
        shown_url = shown_url or url
        request = self.request(method, url, data, auth, headers, shown_url)
        request.trace = trace or Trace(urllib.parse.urlsplit(url).hostname, self.proxy)
        request.deadline = deadline = Deadline(timeout)
        where = "%s %s" % (method, shown_url)
        started = CLOCK.now()
        try:
            with deadline:
                try:
                    response = self.opener.open(request, timeout=timeout)
                except urllib.error.HTTPError as exc:
                    response = exc
                with response:
                    status, answer_headers = response.getcode(), response.headers
                    raw = read_answer(response, where)
        except LandbaseError:
            raise
        except urllib.error.URLError as exc:
            raise self.transport_error(where, exc.reason, deadline.expired, timeout, request.trace)
        except (OSError, http.client.HTTPException, ValueError) as exc:
            raise self.transport_error(where, exc, deadline.expired, timeout, request.trace)
        # what was read before the deadline may look complete: it is not
        if deadline.expired:
            raise self.transport_error(where, None, True, timeout, request.trace)
        elapsed = (CLOCK.now() - started) * 1000
        request.trace.status = status
        request.trace.headers = answer_headers
        request.trace.ms = elapsed
        self.console.debug("< HTTP %d in %d ms" % (status, elapsed))
        if "/oauth/" not in url:
            self.console.debug("< " + excerpt(raw, 500))
        return status, answer_headers, raw

    def request(self, method, url, data, auth, headers, shown_url):
        """The urllib Request of one exchange, through the proxy proxy_for() chose; what it sends
        is shown with --verbose (no token, no credential, no login secret)."""
        import urllib.request
        request = urllib.request.Request(url, data=data, method=method)
        request.add_header("Accept", "application/json")
        request.add_header("User-Agent", "landbase-import/%s python/%d.%d"
                           % ((__version__,) + sys.version_info[:2]))
        if data is not None:
            request.add_header("Content-Type", "application/json")
        for name, value in headers.items():
            request.add_header(name, value)
        if auth and self.token:
            request.add_unredirected_header("Authorization", "Bearer " + self.token)
        if self.proxy is not None:
            request.set_proxy(self.proxy.where, "http")
            if self.proxy.authorization:        # sent to the proxy in its CONNECT only
                request.add_header("Proxy-authorization", self.proxy.authorization)
        line = "> %s %s" % (method, shown_url)
        if auth and self.token:
            line += " (Authorization: Bearer %s)" % REDACTED
        self.console.debug(line)
        if self.proxy is not None:
            self.console.debug("> through %s" % (self.proxy,))
        else:
            self.console.debug("> no proxy")
        for name, value in sorted(headers.items()):
            self.console.debug("> %s: %s" % (name, value))
        if data is not None and "/oauth/" not in url:
            self.console.debug("> " + data.decode("ascii"))
        return request

    def transport_error(self, where, reason, expired, timeout, trace):
        """The error of an exchange that got no answer (what_failed), and whether its request was
        never sent: no connection to the platform was made (for https, no TLS session), so it
        cannot have done anything."""
        error = self.what_failed(where, reason, expired, timeout, trace)
        unsent = trace.connected_ms is None
        if self.base.startswith("https:"):
            unsent = trace.tls is None
        message = error.message
        if error.code in ("NETWORK_ERROR", "TIMEOUT"):
            message += doctor_hint()
        return error.replace(unsent=unsent, message=message)

    def what_failed(self, where, reason, expired, timeout, trace):
        """What failed in an exchange that got no answer, through which proxy, what to do."""
        import socket
        import ssl
        if self.proxy is not None:
            where += " (through %s)" % (self.proxy,)
        if expired or isinstance(reason, socket.timeout):
            limit = "--timeout"
            larger = "--timeout"
            if timeout != self.timeout:
                limit = "what was left of --max-wait"
                larger = "--max-wait"
            fix = "check the network, or give it a larger %s" % larger
            return LandbaseError(
                "TIMEOUT",
                "%s: no complete answer within %gs (%s); %s" % (where, timeout, limit, fix),
                transient=True,
                fix=fix,
            )
        text = str(reason) or type(reason).__name__
        refused = re.match(r"Tunnel connection failed: (40[137])", text)
        if self.proxy is not None and refused:
            return self.tunnel_refused(where, text, int(refused.group(1)))
        if is_tls_failure(reason, text):
            return self.tls_error(where, reason, text, trace)
        if isinstance(reason, ValueError) and not isinstance(reason, ssl.SSLError):
            fix = ("something that does not speak HTTP answers there: check "
                   "LANDBASE_PLATFORM_API_URL and the network path")
            return LandbaseError("API_ERROR", "%s: a malformed answer (%s); %s"
                                 % (where, excerpt(text), fix), transient=True, fix=fix)
        if self.proxy is not None and trace.connected_ms is None:
            fix = "check that %s is up and reachable from this host (%s)" % (self.proxy.where,
                                                                             self.proxy.variable)
            return LandbaseError("NETWORK_ERROR", "%s: the proxy cannot be reached (%s); %s"
                                 % (where, excerpt(text), fix), transient=True, fix=fix)
        if isinstance(reason, socket.gaierror) and self.proxy is None:
            fix = unresolved_name_fix(self.base)
            return LandbaseError("NETWORK_ERROR", "%s: the name %s cannot be resolved (%s); %s" % (
                where, trace.host, excerpt(text), fix), transient=True, fix=fix)
        fix = "check the network"
        if isinstance(reason, ConnectionRefusedError) and self.proxy is None:
            fix = "nothing accepts connections at %s: check the address and the firewall" % (
                host_port(*origin(self.base)[1:]))
        if self.proxy is not None:
            fix = "check the network and %s" % (self.proxy,)
        return LandbaseError(
            "NETWORK_ERROR", "%s: %s; %s" % (where, excerpt(text), fix), transient=True, fix=fix
        )

    def tunnel_refused(self, where, text, status):
        """A proxy that refuses the tunnel is configured so: waiting will not change it."""
        target = host_port(*origin(self.base)[1:])
        fix = "the proxy must allow CONNECT to %s, or set NO_PROXY" % target
        if status == 407 and self.proxy.authorization is None:
            fix = ("the proxy asks for a user and password, and %s has none: put them in it "
                   "(http://user:password@host:port, percent-encoded)" % self.proxy.variable)
        elif status == 407:
            fix = "check the user and password in %s (percent-encoded); %s" % (
                self.proxy.variable, fix)
        return LandbaseError("NETWORK_ERROR", "%s: the proxy refused the tunnel (%s); %s"
                             % (where, excerpt(text, 80), fix), {"status": status}, fix=fix)

    def tls_error(self, where, reason, text, trace):
        """A certificate that fails verification is not retried; a handshake cut short is."""
        verify = getattr(reason, "verify_code", None)
        detail = excerpt(getattr(reason, "verify_message", None) or text)
        verified = verify is not None or isinstance(reason, ValueError)
        if not verified and "CERTIFICATE_VERIFY" not in text:
            fix = "check the network, and what is in the way (a proxy, a TLS-inspecting box)"
            return LandbaseError("NETWORK_ERROR", "%s: the TLS handshake was cut short (%s); %s"
                                 % (where, detail, fix), transient=True, fix=fix)
        fix = "trust the issuer: SSL_CERT_FILE=<your CA bundle> (a TLS-inspecting proxy's CA, say)"
        hint = "the certificate chain is not acceptable here (Python 3.13 checks more strictly)"
        if verify in (2, 18, 19, 20, 21):
            hint = "the issuer is not trusted by the system store or SSL_CERT_FILE"
        elif verify in (9, 10):
            hint = "the certificate is not valid now"
            fix = (
                "check this host's clock (date -u); if it is right, the certificate has expired "
                "(or is not valid yet): tell whoever serves it, a TLS-inspecting proxy or Landbase"
            )
        elif is_name_mismatch(reason):
            hint, fix = self.name_mismatch(trace)
        elif verify is None:                    # 3.6 does not say which check failed
            hint = (
                "it expired (check the clock), or its issuer is not trusted (the system store or "
                "SSL_CERT_FILE must trust it)"
            )
        return LandbaseError(
            "NETWORK_ERROR", "%s: TLS failed (%s); %s: %s" % (where, detail, hint, fix), fix=fix
        )

    def name_mismatch(self, trace):
        names = trace.certificate_names
        hint = "the certificate is for another name than %s" % trace.host
        if names:
            hint += " (it holds %s)" % excerpt(names, 120)
        fix = (
            "point the base URL at a name the certificate holds, or fix the platform's certificate"
        )
        if self.proxy is not None:
            fix = "check that %s does not answer for %s itself" % (self.proxy, trace.host)
        return hint, fix

    def decode(self, method, path, status, headers, raw):
        """The JSON of a 2xx; for another status a LandbaseError, its code from the envelope or the
        status."""
        where = "%s %s" % (method, path)
        data = None
        if raw.strip():
            try:
                data = parse_json(raw, many=path == ACCOUNTS_PATH)
            except StrictJSONError as exc:
                if 200 <= status < 300:
                    raise LandbaseError(
                        "API_ERROR",
                        "%s: HTTP %d with a body that is not strict JSON "
                        "(%s): %s" % (where, status, exc, excerpt(raw)),
                        {"status": status},
                        transient=True,
                    )
        if 200 <= status < 300:
            return data
        raise answer_error(where, status, headers, data, raw, self.renewal)


def answer_error(where, status, headers, data, raw, renewal):
    """The error of an answer that is not a 2xx: the code its envelope carries, when the tool knows
    it, else the status's; its message, or the start of the body."""
    error = {}
    if isinstance(data, dict) and isinstance(data.get("error"), dict):
        error = data["error"]
    server_code = error.get("code")
    if not isinstance(server_code, str):
        server_code = None
    code = STATUS_CODES.get(status, "API_ERROR")
    if server_code in EXIT_CODES and server_code not in LOCAL_CODES:
        code = server_code
    message = error.get("message")
    if isinstance(message, str) and message:
        message = "%s: %s" % (where, excerpt(message, 300))
    else:
        message = "%s: HTTP %d: %s" % (where, status, excerpt(raw))
    if status == 401:
        message += "; " + renewal
    meta = {}
    if isinstance(error.get("meta"), dict):
        for key, value in error["meta"].items():
            if key not in OWN_META:
                meta[key] = value
    meta = redact_values(meta, pattern=True)
    meta["status"] = status
    transient = status == 429 or status >= 500
    return LandbaseError(
        code, message, meta, transient, parse_retry_after(headers, data), server_code
    )


def unresolved_name_fix(base):
    """What to do about a name that does not resolve, reached without a proxy: where no proxy is
    set, set one if that is how this host reaches the internet; where NO_PROXY keeps the one set
    from being used, say so."""
    fix = "check the name and this host's DNS"
    if proxy_variable() and base.startswith("https:") and not is_loopback(base):
        return fix + "; HTTPS_PROXY is set, but NO_PROXY covers this host, so it is not used"
    return fix + "; if this host reaches the internet through a proxy, set HTTPS_PROXY"


def is_tls_failure(reason, text):
    import ssl
    if getattr(reason, "verify_code", None) is not None:
        return True
    if isinstance(reason, (ssl.SSLError, ssl.CertificateError)):
        return True
    return "CERTIFICATE_VERIFY" in text


def retry_name(attempt, until):
    if until is None:
        return "retry %d of %d" % (attempt, len(RETRY_DELAYS))
    return "retry %d (until %s, the end of --max-wait)" % (attempt, format_time(
        CLOCK.wall() + until - CLOCK.now()))


def needs_redaction(raw):
    """Whether an answer may hold anything redact() takes out of a server's text: an lbs_ shape, or
    a secret in any of its forms. Read once in the JSON text, which holds its strings as they are
    when it holds no backslash (any escape: then yes), so that an answer of 150,000 accounts is
    not redacted a string at a time for nothing."""
    if b"lbs_" in raw or b"\\" in raw:
        return True
    return may_hold_secret(raw.decode("utf-8", "replace"))


def read_answer(response, where):
    """The body, read in chunks; past MAX_ANSWER_BYTES it is a broken answer and is not read
    further. The chunks go into one buffer that grows in place, and the bytes returned are that
    buffer (not a copy), so that a 4 MiB answer is held once."""
    body = io.BytesIO()
    while True:
        chunk = response.read(65536)
        if not chunk:
            break
        body.write(chunk)
        if body.tell() > MAX_ANSWER_BYTES:
            raise LandbaseError(
                "API_ERROR",
                "%s: the answer is larger than %d MiB; it was not read further"
                % (where, MAX_ANSWER_BYTES // (1024 * 1024)),
                transient=True,
            )
    left = getattr(response, "length", None)      # what Content-Length promised and never came
    if isinstance(left, int) and left > 0:
        fix = "check the network, and what is in the way (a proxy)"
        raise LandbaseError("NETWORK_ERROR", "%s: the connection closed %d bytes before the end "
                            "of the answer; %s" % (where, left, fix), transient=True, fix=fix)
    return body.getvalue()


def usable_token(token):
    """Whether a token can travel in an Authorization header: printable ASCII."""
    if not isinstance(token, str) or not token.strip() or len(token) > 4096:
        return False
    return all(" " <= ch <= "~" for ch in token)


def api_for(args, console, token=None, source="file"):
    base = base_url("LANDBASE_PLATFORM_API_URL", DEFAULT_API_URL)
    return Api(base, token, args.timeout, console, renewal(source))


# ---------------------------------------------------------------- the answers a server sends

def is_number(value):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return value == value and value not in (float("inf"), float("-inf"))


def is_string(value):
    return isinstance(value, str)


def is_optional_string(value):
    return value is None or isinstance(value, str)


def is_optional_object(value):
    return value is None or isinstance(value, dict)


def is_count(value):
    return value is None or type(value) is int


def is_phase(value):
    return isinstance(value, str) and value != ""


def is_percent(value):
    return value is None or (is_number(value) and 0 <= value <= 100)


def is_account_id(value):
    return isinstance(value, str) and ACCOUNT_ID_RE.match(value) is not None


def is_optional_account_id(value):
    return value is None or is_account_id(value)


def is_lbs_token(value):
    return usable_token(value) and TOKEN_RE.fullmatch(value) is not None


def is_account_list(value):
    if not isinstance(value, list):
        return False
    for entry in value:
        if not isinstance(entry, dict) or not is_account_id(entry.get("id")):
            return False
        if not is_optional_string(entry.get("name")):
            return False
    return True


# What each answer must hold, field by field: (the test, what is expected, as the error says it). A
# dotted field is looked up inside its object, when there is one.
ANSWERS = {
    "status": {
        "phase": (is_phase, "a non-empty string"),
        "percent": (is_percent, "a number from 0 to 100 or null"),
        "counts": (is_optional_object, "an object or null"),
        "counts.total": (is_count, "an integer or null"),
        "counts.imported": (is_count, "an integer or null"),
        "counts.skipped": (is_count, "an integer or null"),
        "counts.failed": (is_count, "an integer or null"),
        "error": (is_optional_object, "an object or null"),
        "error.code": (is_optional_string, "a string or null"),
        "error.message": (is_optional_string, "a string or null"),
    },
    "start": {"importId": (is_import_id, "a positive integer"), "runRef": (is_string, "a string")},
    "me": {
        "userId": (is_optional_string, "a string or null"),
        "email": (is_optional_string, "a string or null"),
        "expiresAt": (is_optional_string, "a string or null"),
    },
    "device": {
        "deviceCode": (is_string, "a string"),
        "userCode": (is_string, "a string"),
        "verificationUri": (is_string, "a string"),
    },
    "token": {
        "accessToken": (is_lbs_token, "an lbs_ token"),
        "expiresAt": (is_time, "a time like 2026-12-05T10:00:00Z"),
        "accountId": (is_optional_account_id, "an account id or null"),
    },
    "accounts": {
        "accounts": (
            is_account_list,
            "a list of {id: an account id (1 to 64 letters, digits, _  or -), name}",
        )
    },
}


def expect(kind, where, also=()):
    """The check of a 2xx answer of `kind` (see ANSWERS): the fields it names and `also` (nothing
    else is kept), or a transient API_ERROR naming the first field that breaks the contract."""
    def check(data, headers=None):
        if not isinstance(data, dict):
            raise contract_error(where, "the body", data, "an object")
        if kind == "token":
            # a token a login grants is never printed
            remember_secret(data.get("accessToken"))
        for field, (test, expected) in ANSWERS[kind].items():
            value = data
            for key in field.split("."):
                value = value.get(key) if isinstance(value, dict) else None
            if not test(value):
                if field == "accessToken":
                    value = "(hidden)"
                raise contract_error(where, field, value, expected)
        kept = [field.split(".")[0] for field in ANSWERS[kind]] + list(also)
        return {key: data.get(key) for key in kept}
    return check


def contract_error(where, field, value, expected):
    return LandbaseError(
        "API_ERROR",
        "%s: the answer broke the contract: %s is %s, expected %s"
        % (where, field, excerpt(json.dumps(value), 60), expected),
        transient=True,
    )


def count_of(counts, key):
    value = None
    if isinstance(counts, dict):
        value = counts.get(key)
    if is_number(value):
        return value
    return None


# The account a command works in, where its id came from (--account, LANDBASE_ACCOUNT_ID or the
# path of platform.json), for the message of an account that is not found, and where the token
# came from ("env" or "file"), for what --dry-run can say it checked.
Account = collections.namedtuple("Account", "id source token_source")


def account_not_found(error, account, import_id=None):
    """A NOT_FOUND on an account's path, naming where the account id came from and the next step;
    for a start that resumes `import_id` (the body's importId), that import is what was not found.
    """
    if error.code != "NOT_FOUND":
        return error
    source = account.source
    if source not in ("--account", "LANDBASE_ACCOUNT_ID"):
        source = "the stored account (%s)" % source
    hint = (
        " (account %s comes from %s; if it is not one this identity can use, see: %s account list)"
        % (account.id, source, program_command())
    )
    if import_id is not None:
        hint = (
            " (the body's importId %d is not an import of account %s, which comes from %s: fix "
            "the importId, or the account: %s account list)"
            % (import_id, account.id, source, program_command())
        )
    if account.source == "LANDBASE_ACCOUNT_ID":
        hint = (
            hint[:-1]
            + ", and change or unset LANDBASE_ACCOUNT_ID: account set cannot override it)"
        )
    return error.replace(message=error.message + hint)


def fetch_status(api, account, import_id, retry=True, timeout=None):
    """The five keys of an import's status (an answer about another import is a broken one)."""
    where = "import %d status" % import_id

    def check(data, headers):
        expect("status", where)(data)
        if data.get("importId") != import_id or isinstance(data.get("importId"), bool):
            raise contract_error(where, "importId", data.get("importId"), "%d" % import_id)
        return {key: data.get(key) for key in STATUS_KEYS}
    path = "/v1/accounts/%s/contacts-imports/%d" % (account.id, import_id)
    try:
        return api.call("GET", path, retry=retry, check=check, timeout=timeout)
    except LandbaseError as exc:
        error = account_not_found(exc, account)
        raise error.replace(meta=dict(error.meta, importId=import_id))


def fetch_accounts(api, retry=True):
    check = expect("accounts", "GET /v1/accounts")

    def accounts(data, headers):
        """Each account as {id, name}, in the answer's own objects (a copy of 150,000 would double
        the memory the answer takes)."""
        listed = check(data)["accounts"]
        for entry in listed:
            account_id = entry["id"]
            name = entry.get("name")
            entry.clear()
            entry["id"] = account_id
            entry["name"] = name
        return listed
    return api.call("GET", ACCOUNTS_PATH, retry=retry, check=accounts)


def fetch_me(api, retry=True, trace=None):
    return api.call("GET", "/v1/me", check=expect("me", "GET /v1/me"), retry=retry, trace=trace)


# ---------------------------------------------------------------- the import poller

class Tracker:
    """One import being waited on: its schedule, its last snapshot (or the error that ended it),
    its ETA."""

    def __init__(self, import_id, now):
        self.import_id = import_id
        self.delays = poll_delays()
        self.due = now                  # when it is polled next
        self.status = None              # the last snapshot,
        self.polled = None              # when it was read,
        self.label = None               # and its phase as the terminal shows it (redacted once)
        # the permanent error that ended this id (NOT_FOUND and the like)
        self.error = None
        self.first_seen = None          # (time, percent) of the first in_progress reading

    @property
    def phase(self):
        if self.status is None:
            return None
        return self.status["phase"]

    @property
    def done(self):
        return self.error is not None or self.phase in TERMINAL_PHASES

    @property
    def outcome(self):
        """The code this id ends a wait with; None when it completed."""
        if self.error is not None:
            return self.error.code
        return {"completed": None, "partial": "IMPORT_PARTIAL", "failed": "IMPORT_FAILED"}.get(
            self.phase, "TIMEOUT")

    def entry(self):
        """Its place in the output: the last snapshot, or phase null and the error that ended it.
        """
        if self.status is not None and self.error is None:
            return self.status
        error = None
        if self.error is not None:
            error = {"code": self.error.code, "message": self.error.message}
        return {
            "importId": self.import_id,
            "phase": None,
            "percent": None,
            "counts": None,
            "error": error,
        }

    def observe(self, status, now):
        self.status = status
        self.polled = now
        self.label = terminal_text(excerpt(status["phase"], 60))
        in_progress = status["phase"] == "in_progress" and is_number(status["percent"])
        if in_progress and self.first_seen is None:
            self.first_seen = (now, status["percent"])

    def eta(self, now):
        """Seconds left at the rate observed so far, counting down between polls; None until a rate
        is known, and for a rate so slow that the end is out of sight."""
        percent = None
        if self.status is not None:
            percent = self.status["percent"]
        if self.first_seen is None or not is_number(percent) or self.done:
            return None
        started, first = self.first_seen
        if self.polled <= started or percent <= first:
            return None
        left = (100 - percent) * (self.polled - started) / (percent - first) - (now - self.polled)
        if left >= MAX_WAIT_LIMIT * 100:
            return None
        return max(0.0, left)


def progress_line(tracker, now):
    """The log form of a reading: import 7: in_progress 42% (410 imported, … of 1000 rows); next
    poll in 20s"""
    status = tracker.status
    counts = status["counts"]
    parts = []
    for key in ("imported", "skipped", "failed"):
        if count_of(counts, key) is not None:
            parts.append("%d %s" % (count_of(counts, key), key))
    rows = ", ".join(parts)
    if count_of(counts, "total") is not None:
        if rows:
            rows += " of "
        rows += "%d rows" % count_of(counts, "total")
    percent = "--%"
    if is_number(status["percent"]):
        percent = "%d%%" % status["percent"]
    line = "import %d: %s %s" % (tracker.import_id, excerpt(status["phase"], 60), percent)
    if rows:
        line += " (%s)" % rows
    if not tracker.done:
        line += "; next poll in %ds" % until(tracker.due, now)
    return line


def terminal_line(trackers, now, room):
    """The redrawn form, in ASCII (so that a character is a column) and at most `room` columns."""
    pending = [t for t in trackers if not t.done]
    countdown = ""
    if pending:
        countdown = " | next poll in %ds" % until(min(t.due for t in pending), now)
    if len(trackers) > 1:
        return (summary_line(trackers) + countdown)[:room]
    return single_line(trackers[0], now, countdown, room)


def summary_line(trackers):
    """Several imports: the ids that failed or ended partial first (a narrow terminal cuts the end
    of the line), then how many are in each phase."""
    phases = []
    for tracker in trackers:
        if tracker.status is not None:
            phases.append(tracker.label)
        elif tracker.error is not None:
            phases.append("error")
        else:
            phases.append("waiting")
    named = []
    for outcome, name in (("IMPORT_FAILED", "failed"), ("IMPORT_PARTIAL", "partial")):
        ids = [str(t.import_id) for t in trackers if t.done and t.outcome == outcome]
        if ids:
            named.append("%s %s" % (name, " ".join(ids)))
    errors = [str(t.import_id) for t in trackers if t.error is not None]
    if errors:
        named.append("error %s" % " ".join(errors))
    counted = []
    for phase in sorted(set(phases), key=phases.index):
        counted.append("%d %s" % (phases.count(phase), phase))
    line = "%d imports: %s" % (len(trackers), ", ".join(counted))
    if named:
        line = "%s | %s" % ("; ".join(named), line)
    return line


def single_line(tracker, now, countdown, room):
    """One import: `import 7 [#####-----] 42% in_progress 410/1000 rows ETA 2m10s | next poll in
    5s`; on a narrow terminal the bar shrinks first, then the countdown, the ETA and the rows go,
    in that order."""
    counts = tracker.status["counts"]
    percent = None
    if is_number(tracker.status["percent"]):
        percent = tracker.status["percent"]
    rows = ""
    if count_of(counts, "total") is not None:
        done = sum(count_of(counts, key) or 0 for key in ("imported", "skipped", "failed"))
        rows = " %d/%d rows" % (done, count_of(counts, "total"))
        if count_of(counts, "failed"):
            rows += ", %d failed" % count_of(counts, "failed")
    eta = tracker.eta(now)
    extras = [rows, "", countdown]
    if eta is not None:
        extras[1] = " ETA %s" % format_span(eta)
    head = "import %d " % tracker.import_id
    shown_percent = "--%"
    if percent is not None:
        shown_percent = "%d%%" % percent
    tail = "%s %s" % (shown_percent, tracker.label)
    # room for a bar of 5 at least
    while extras and len(head + tail + "".join(extras)) + 8 > room:
        extras.pop()
    width = min(BAR_WIDTH, room - len(head + tail + "".join(extras)) - 3)
    bar = ""
    if width >= 5:
        filled = 0
        if percent is not None:
            filled = int(width * percent / 100)
        bar = "[%s%s] " % ("#" * filled, "-" * (width - filled))
    return (head + bar + tail + "".join(extras))[:room]


def terminal_text(text):
    """text for the redrawn line: ASCII, so that a character is a column, printable and redacted.
    """
    return printable(redact(text)).encode("ascii", "replace").decode("ascii")


def until(when, now):
    return max(0, int(when - now + 0.999))


def show_progress(console, trackers, now, tracker=None):
    """A reading (of `tracker`) or a tick of the clock: a line in the log form, or the redrawn
    line."""
    if console.quiet:
        return
    if console.tty:
        phase = None
        if len(trackers) == 1:
            phase = trackers[0].phase
        console.redraw(terminal_line(trackers, now, console.width() - 1), phase)
    elif tracker is not None:
        console.line(progress_line(tracker, now))


def poll_until_terminal(api, account, trackers, console, limit):
    """Poll each import on its own schedule until every one has ended, or `limit` has passed. On a
    terminal, the progress line is redrawn about once a second between polls."""
    deadline = CLOCK.now() + limit
    try:
        while True:
            pending = [t for t in trackers if not t.done]
            now = CLOCK.now()
            if not pending or now >= deadline:
                return
            due = [t for t in pending if t.due <= now]
            if due:
                poll_round(api, account, trackers, due, console, deadline)
                continue
            wake = min(min(t.due for t in pending), deadline)
            pause_until(wake, console, trackers)
    finally:
        console.end_progress()


def pause_until(wake, console, trackers):
    """Sleep until `wake`; on a terminal, redraw the line about once a second meanwhile."""
    now = CLOCK.now()
    while now < wake:
        step = wake - now
        if console.tty:
            if any(t.status for t in trackers):
                show_progress(console, trackers, now)
            step = min(REDRAW_EVERY, step)
        CLOCK.sleep(step)
        now = CLOCK.now()


def poll_round(api, account, trackers, due, console, deadline):
    """Read the imports that are due, and plan each one's next read: the one retry decision decides
    after a failure. AUTH_FAILED ends the whole wait; another permanent error ends that id only."""
    for tracker, (status, error) in zip(due, poll_batch(api, account, due, deadline)):
        now = CLOCK.now()
        if status is None and error is None:
            continue                    # not read: the wait's time was up before its turn came
        if error is not None:
            settle_failed_poll(tracker, error, now, console, len(trackers) > 1)
            continue
        tracker.observe(status, now)
        if not tracker.done:
            tracker.due = now + next(tracker.delays)
        show_progress(console, trackers, now, tracker)


def settle_failed_poll(tracker, error, now, console, several):
    if not isinstance(error, LandbaseError):
        raise error                     # a bug, for main()'s boundary to report
    if error.code == "AUTH_FAILED":
        raise error
    wait = retry_wait(error, next(tracker.delays))
    if wait is None:
        tracker.error = error
        if several:
            console.line(
                "import %d: %s (%s); not polled again"
                % (tracker.import_id, error.message, error.code)
            )
        return
    tracker.due = now + wait
    console.line("import %d: poll failed (%s: %s); next poll in %ds"
                 % (tracker.import_id, error.code, error.message, wait))


def poll_batch(api, account, trackers, deadline):
    """(status, error) for each tracker, MAX_POLLS_IN_FLIGHT requests at most at a time, each
    bounded by --timeout or what is left of --max-wait; daemon threads (Ctrl-C waits for none) that
    hand all back."""
    def poll(tracker):
        left = deadline - CLOCK.now()
        if left <= 0:
            return None, None           # not read: the wait is over
        try:
            status = fetch_status(api, account, tracker.import_id, False, min(api.timeout, left))
        # to the main thread, which raises what is not a LandbaseError
        except Exception as exc:
            return None, exc
        return status, None

    if len(trackers) == 1:
        return [poll(trackers[0])]
    results = [None] * len(trackers)
    todo = list(enumerate(trackers))

    def work():
        while True:
            try:
                # atomic (the Python FAQ): each tracker goes to one worker
                index, tracker = todo.pop()
            except IndexError:
                return
            results[index] = poll(tracker)
    workers = [in_background(work) for _ in range(min(MAX_POLLS_IN_FLIGHT, len(todo)))]
    for worker in workers:
        worker.join()
    return results


def import_meta(import_ids, single):
    """The one builder of the error meta that names imports: importId for one, importIds for
    several."""
    if single:
        return {"importId": import_ids[0]}
    return {"importIds": list(import_ids)}


def wait_and_report(api, account, import_ids, console, limit, started=False):
    """Wait, then print the final status (or the array of every id's last-known state, always, but
    on AUTH_FAILED), and return 0 when every import completed; otherwise raise the error of the
    first id, in the order given, that did not. A signal ends the wait with the command that
    resumes it. `started`: this run started the one import (start --watch), so its last-known
    state is printed however the wait ends, and a night's --query row exists whenever an import
    was started."""
    single = len(import_ids) == 1       # the output's shape: one status, or an array of them
    trackers = [Tracker(import_id, CLOCK.now()) for import_id in import_ids]
    stop = None                         # what ended the wait before every import had its end
    try:
        poll_until_terminal(api, account, trackers, console, limit)
    except (KeyboardInterrupt, Stopped) as exc:
        running = [t.import_id for t in trackers if not t.done] or import_ids
        meta = dict(import_meta(running, single), resume=resume_command(account.id, running))
        stop = stopped(exc, keep_running(running), meta)
    except LandbaseError as exc:
        if not started:
            raise                       # AUTH_FAILED ends everything, and nothing is printed
        stop = exc
    first = None
    for tracker in trackers:
        if tracker.outcome is not None:
            first = tracker
            break
    outcome = None
    if first is not None:
        outcome = first.outcome
    # what is printed: always the array of several ids; one id's status unless the error that ends
    # the wait means its status cannot be read (AUTH_FAILED, NOT_FOUND and the like), but always
    # that of the import this run started
    printed = started or outcome in (None, "IMPORT_FAILED", "IMPORT_PARTIAL", "TIMEOUT")
    if not single or stop is not None or printed:
        output = trackers[0].entry()
        if not single:
            output = [t.entry() for t in trackers]
        console.result(output, import_meta(import_ids, single))
    if stop is not None:
        raise stop
    if first is None:
        return 0
    raise wait_error(first, trackers, account, limit, single)


def wait_error(first, trackers, account, limit, single):
    """The error of a wait: that of `first`, the first id that did not complete (and how many more
    ended alike); the ids still running when --max-wait ran out are named with the command that
    resumes their wait, whatever the first one's error."""
    alike = [t for t in trackers if t.outcome == first.outcome]
    meta = import_meta([t.import_id for t in alike], single)
    more = ""
    if len(alike) > 1:
        more = " (and %d more)" % (len(alike) - 1)
    running = [t.import_id for t in trackers if t.outcome == "TIMEOUT"]
    if running:
        meta["resume"] = resume_command(account.id, running)
    if first.outcome == "TIMEOUT":
        return LandbaseError("TIMEOUT", "gave up after %s (--max-wait); %s"
                             % (format_span(limit), keep_running(alike)), meta)
    still = ""
    if running:
        still = "; still running at the end of --max-wait: %s" % " ".join(map(str, running))
    if first.error is not None:
        for key, value in first.error.meta.items():
            if key != "importId":
                meta.setdefault(key, value)
        if first.outcome != "NOT_FOUND":            # the import is there, and may keep running
            ids = [t.import_id for t in alike] + running
            meta["resume"] = resume_command(account.id, ids)
        return first.error.replace(code=first.outcome, message=first.error.message + more + still,
                                   meta=meta)
    message = "import %d ended %s" % (first.import_id, first.phase)
    error = first.status["error"]
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        message += ": %s" % excerpt(error["message"])
    return LandbaseError(first.outcome, message + more + still, meta)


def keep_running(imports):
    if len(imports) == 1:
        return "the import keeps running on Landbase"
    return "the imports keep running on Landbase"


def resume_command(account_id, import_ids):
    """The exact command that resumes a wait, runnable from any directory."""
    words = (
        ["contacts-import", "wait"] + [str(i) for i in import_ids] + ["--account=" + account_id]
    )
    return command_again(words)


# ---------------------------------------------------------------- input body

def read_import_body(source):
    """The validated body of `start --json` (a path, or - for stdin): INVALID_INPUT naming the
    field for anything off."""
    name = source
    if source == "-":
        name = "stdin"
    raw = read_body_bytes(source)
    if len(raw) > MAX_BODY_BYTES:
        raise LandbaseError("INVALID_INPUT", "the body in %s is larger than 1 MiB" % name)
    if not raw.strip() or raw.strip() == b"\xef\xbb\xbf":
        raise LandbaseError(
            "INVALID_INPUT",
            "%s is empty: expected a JSON object with datasetId and tagName" % name,
        )
    try:
        body = parse_json(raw)
    except StrictJSONError as exc:
        if exc.key is not None:
            raise LandbaseError(
                "INVALID_INPUT", "duplicate key %r in the body" % exc.key, {"field": exc.key}
            )
        if str(exc).startswith("not "):
            raise LandbaseError("INVALID_INPUT", "%s is %s" % (name, exc))
        raise LandbaseError("INVALID_INPUT", "%s: %s" % (name, exc))
    if not isinstance(body, dict):
        raise LandbaseError(
            "INVALID_INPUT",
            "%s must be a JSON object with datasetId and tagName, not %s"
            % (name, json_type(body)),
        )
    return check_import_body(body)


def read_body_bytes(source):
    """At most MAX_BODY_BYTES + 1 bytes of the body, from the file or stdin."""
    try:
        if source == "-":
            stream = getattr(sys.stdin, "buffer", sys.stdin)
            if stream is None:
                raise LandbaseError(
                    "INVALID_INPUT", "stdin is closed: --json - reads the body from stdin"
                )
            raw = stream.read(MAX_BODY_BYTES + 1)
            if isinstance(raw, str):
                raw = raw.encode("utf-8", "surrogateescape")
            return raw
        with open(source, "rb") as handle:
            return handle.read(MAX_BODY_BYTES + 1)
    except (OSError, ValueError) as exc:
        reason = exc
        if isinstance(exc, OSError) and exc.strerror:
            reason = exc.strerror
        hint = ""
        if source.lstrip().startswith(("{", "[")):
            hint = (
                "; --json takes a path or -, not the JSON itself: "
                "echo '{...}' | %s contacts-import "
                "start --json -" % program_command()
            )
        raise LandbaseError(
            "INVALID_INPUT", "cannot read --json %s: %s%s" % (shown(source, 80), reason, hint)
        )


JSON_TYPES = ((bool, "a boolean"), (int, "a number"), (float, "a number"), (str, "a string"),
              (list, "an array"), (dict, "an object"))


def json_type(value):
    if value is None:
        return "null"
    for kind, name in JSON_TYPES:      # bool before int: True is an int too
        if isinstance(value, kind):
            return name
    return "an object"


def invalid_field(field, message):
    return LandbaseError("INVALID_INPUT", "%s %s" % (field, message), {"field": field})


def check_import_body(body):
    """The body as it is sent, or INVALID_INPUT naming the first field that is off."""
    for key in body:
        if key not in BODY_KEYS:
            suggestion = did_you_mean(key.replace("_", "").replace("-", ""), BODY_KEYS)
            raise invalid_field(key, "is not a known key%s; the body takes datasetId, tagName and "
                                "importId" % suggestion)
    for key, example in (("datasetId", 'the dataset to import, e.g. "ds_def456"'),
                         ("tagName", "the tag to put on the imported contacts")):
        if key not in body:
            raise invalid_field(key, "is required (%s)" % example)
        if not isinstance(body[key], str):
            raise invalid_field(key, "must be a string, not %s" % json_type(body[key]))
    check_dataset_id(body["datasetId"])
    check_tag_name(body["tagName"])
    import_id = body.get("importId", 1)
    if not is_import_id(import_id):
        found = json_type(import_id)
        if type(import_id) is int:
            found = import_id
        raise invalid_field("importId", "must be a positive integer such as 7, not %s (omit it to "
                            "start a new import)" % found)
    return {key: body[key] for key in BODY_KEYS if key in body}


def check_dataset_id(dataset_id):
    if not dataset_id:
        raise invalid_field("datasetId", "must not be empty")
    if len(dataset_id) > MAX_DATASET_ID:
        raise invalid_field("datasetId", "is %d characters; at most %d"
                            % (len(dataset_id), MAX_DATASET_ID))
    for ch in dataset_id:
        if ch.isspace() or unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Zs", "Zl", "Zp"):
            raise invalid_field("datasetId", "must not contain whitespace or control characters "
                                "(found U+%04X)" % ord(ch))


def check_tag_name(tag_name):
    if not 1 <= len(tag_name) <= MAX_TAG_NAME:
        raise invalid_field("tagName", "is %d characters; it takes 1 to %d"
                            % (len(tag_name), MAX_TAG_NAME))
    if not tag_name.strip():
        raise invalid_field("tagName", "must not be blank")
    if any("\ud800" <= ch <= "\udfff" for ch in tag_name):
        raise invalid_field("tagName", "is not valid Unicode (a lone surrogate)")


def did_you_mean(word, choices):
    """(did you mean 'x'?) with the nearest of `choices` to what was typed: one it begins, or one
    close to it whatever the case; nothing when none is near."""
    import difflib
    if not word:
        return ""
    for choice in sorted(choices, key=len):
        if choice.startswith(word):
            return " (did you mean %r?)" % choice
    folded = {choice.lower(): choice for choice in choices}
    close = difflib.get_close_matches(word.lower(), sorted(folded), n=1, cutoff=0.6)
    if close:
        return " (did you mean %r?)" % folded[close[0]]
    return ""


# ---------------------------------------------------------------- login

def login_browser(args, console, api):
    """Authorization code + PKCE S256 through a loopback listener; the token answer. The 5 minutes
    start now, and the browser runs on its own: it neither holds the login back nor writes on our
    streams."""
    import base64
    import urllib.parse
    import hashlib
    import secrets
    import socket
    deadline = CLOCK.now() + LOGIN_LIMIT
    web = base_url("LANDBASE_PLATFORM_WEB_URL", DEFAULT_WEB_URL)
    listener = CallbackListener(secrets.token_urlsafe(32))
    verifier = secrets.token_urlsafe(64)
    digest = hashlib.sha256(verifier.encode()).digest()
    challenge = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    query = urllib.parse.urlencode([
        ("client_id", CLIENT_ID), ("response_type", "code"),
        ("redirect_uri", listener.redirect_uri), ("state", listener.state),
        ("code_challenge", challenge), ("code_challenge_method", "S256"),
        ("device_name", socket.gethostname())])
    url = "%s/cli/authorize?%s" % (web, query)
    warn_if_proxied_callback(console)
    try:
        if args.no_browser:
            console.line("Open this URL in a browser on this machine to sign in:")
        else:
            console.line("Opening the browser to sign in. If it does not open, visit:")
        console.line("  " + url)
        if not args.no_browser and not open_browser(url):
            console.line(
                "No browser could be opened; visit the URL above, or use: auth login --device"
            )
        CLOCK.wait_event(listener.done, deadline - CLOCK.now())
    finally:
        listener.stop()
    result = listener.result
    if result is None:
        command = program_command()
        raise LandbaseError("TIMEOUT", "no answer from the browser within %d minutes; run %s auth "
                            "login again (or %s auth login --device)"
                            % (LOGIN_LIMIT // 60, command, command))
    if "error" in result:
        raise LandbaseError("AUTH_FAILED", "the login was refused in the browser (%s); to log in, "
                            "run it again and approve: %s auth login"
                            % (excerpt(result["error"], 80), program_command()))
    body = {"grant_type": "authorization_code", "client_id": CLIENT_ID, "code": result["code"],
            "code_verifier": verifier, "redirect_uri": listener.redirect_uri}
    return exchange_token(api, body)


def open_browser(url):
    """Start the browser on `url` and return at once: BROWSER (commands, %s for the URL, as the
    webbrowser module reads it) or, without it, what the webbrowser module finds, run by a child
    interpreter. Its streams go nowhere: a launcher's "Opening in existing browser session." must
    not reach our stdout."""
    import subprocess
    commands = []
    for entry in os.environ.get("BROWSER", "").split(os.pathsep):
        if entry.strip():
            commands.append(shlex.split(entry))
    if not commands:
        # a blank one, which the webbrowser module cannot read
        os.environ.pop("BROWSER", None)
        import webbrowser
        try:
            webbrowser.get()
        except webbrowser.Error:
            return False
        commands = [[sys.executable, "-m", "webbrowser", "-t"]]
    for command in commands:
        if "%s" in " ".join(command):
            argv = [word.replace("%s", url) for word in command]
        else:
            argv = command + [url]
        try:
            subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, start_new_session=True)
        except (OSError, ValueError):
            continue
        return True
    return False


def warn_if_proxied_callback(console):
    """A browser that honours http_proxy sends the login's answer to 127.0.0.1 through the proxy,
    which cannot reach it: say so before the 5 minutes are spent."""
    import urllib.request
    proxied = os.environ.get("http_proxy") or os.environ.get("HTTP_PROXY")
    if proxied and not urllib.request.proxy_bypass_environment("127.0.0.1"):
        console.warn(
            "HTTP_PROXY is set and NO_PROXY does not cover 127.0.0.1: a browser that uses the "
            "proxy cannot bring the login back. Set NO_PROXY=127.0.0.1,localhost, or use: "
            "auth login --device"
        )


class CallbackListener:
    """http://127.0.0.1:{port}/callback: takes one answer whose state matches, then stops. Each
    connection has a thread of its own and a time limit, so that no local client holds the
    browser's answer back; nothing is printed."""

    def __init__(self, state):
        import threading
        import socketserver
        from http.server import HTTPServer, BaseHTTPRequestHandler
        listener = self
        self.state = state
        self.result = None
        self.done = threading.Event()

        class Handler(BaseHTTPRequestHandler):
            timeout = CALLBACK_CONNECTION_TIMEOUT

            def do_GET(self):
                listener.handle(self)

            def log_message(self, *args):
                pass

        class Server(socketserver.ThreadingMixIn, HTTPServer):
            daemon_threads = True

            def handle_error(self, request, client_address):
                pass                    # a client that resets or misbehaves is its own problem

        self.server = Server(("127.0.0.1", 0), Handler)
        self.redirect_uri = "http://127.0.0.1:%d/callback" % self.server.server_address[1]
        in_background(self.server.serve_forever, 0.2)

    def handle(self, request):
        import urllib.parse
        import hmac
        # no urlsplit: "//[oops/callback" made it raise on 3.6
        path, _, query = request.path.partition("?")
        try:
            query = {key: values[0] for key, values in urllib.parse.parse_qs(query).items()}
        except ValueError:
            return self._answer(request, 400, "This is not a sign-in answer.")
        if path != "/callback" or self.done.is_set():
            return self._answer(request, 404, "Not found.")
        given = query.get("state", "").encode("utf-8", "replace")
        if not hmac.compare_digest(given, self.state.encode()):
            return self._answer(
                request,
                400,
                "This sign-in answer does not match the login in progress "
                "(wrong or missing state). Close this tab.",
            )
        if "code" in query:
            self.result = {"code": query["code"]}
            text = "Landbase sign-in complete. You can close this tab."
        else:
            self.result = {"error": query.get("error") or "none"}
            text = "Landbase sign-in cancelled. You can close this tab."
        self._answer(request, 200, text)
        self.done.set()

    @staticmethod
    def _answer(request, status, text):
        body = (
            "<!doctype html><meta charset=utf-8><title>landbase-import</title><p>%s</p>" % text
        ).encode()
        request.send_response(status)
        request.send_header("Content-Type", "text/html; charset=utf-8")
        request.send_header("Content-Length", str(len(body)))
        request.end_headers()
        request.wfile.write(body)

    def stop(self):
        self.done.set()
        self.server.shutdown()
        self.server.server_close()


def clamp(value, low, high, default):
    """A server's number kept within bounds; `default` when it is no positive number."""
    if not is_number(value) or value <= 0:
        return default
    return min(max(value, low), high)


def login_device(console, api):
    """RFC 8628: show a code, poll the token endpoint every `interval` until it is approved; the
    wait ends when the code expires, and never later than DEVICE_LIMIT whatever the server says."""
    import socket
    check = expect(
        "device", "POST /v1/oauth/device", ("interval", "expiresIn", "verificationUriComplete")
    )
    data = api.call(
        "POST",
        "/v1/oauth/device",
        {"client_id": CLIENT_ID, "device_name": socket.gethostname()},
        auth=False,
        check=check,
    )
    interval = clamp(
        data.get("interval"), DEVICE_INTERVALS[0], DEVICE_INTERVALS[1], DEVICE_INTERVAL
    )
    expires_in = clamp(data.get("expiresIn"), 1, DEVICE_LIMIT, DEVICE_LIMIT)
    code = excerpt(data["userCode"], 40)
    console.line("To sign in, open %s and enter the code %s (it expires in %s, at %s)" % (
        excerpt(data["verificationUri"]), code, format_span(expires_in),
        format_time(CLOCK.wall() + expires_in)))
    if isinstance(data.get("verificationUriComplete"), str):
        console.line("  (or open %s)" % excerpt(data["verificationUriComplete"]))
    deadline = CLOCK.now() + expires_in
    expired = LandbaseError("TIMEOUT", "the code %s expired before it was approved; run it again: "
                            "%s auth login --device" % (code, program_command()))
    body = {"grant_type": "urn:ietf:params:oauth:grant-type:device_code", "client_id": CLIENT_ID,
            "device_code": data["deviceCode"]}
    return poll_device_token(api, console, body, interval, deadline, expired)


def poll_device_token(api, console, body, interval, deadline, expired):
    """The token answer once the code is approved, asked for every `interval` seconds (slow_down
    adds 5); `expired` when the code expires first."""
    wait = interval
    while True:
        if CLOCK.now() + wait > deadline:
            raise expired
        CLOCK.sleep(wait)
        try:
            return exchange_token(api, body, "--device", retry=False)
        except LandbaseError as exc:
            if exc.server_code == "ACCESS_DENIED":
                raise LandbaseError("AUTH_FAILED", "the login was refused on the device page; to "
                                    "log in, run it again and approve: %s auth login --device"
                                    % program_command())
            if exc.server_code == "EXPIRED_TOKEN":
                raise expired
            if exc.server_code == "SLOW_DOWN":
                interval += 5
            # nobody has answered yet
            pending = exc.server_code in ("AUTHORIZATION_PENDING", "SLOW_DOWN")
            if exc.transient and not pending:
                console.line(
                    "waiting for approval: %s (%s); trying again" % (exc.message, exc.code)
                )
            wait = retry_wait(
                exc, interval, deadline - CLOCK.now(), transient=pending or exc.transient
            )
            if wait is None and (pending or exc.transient):
                raise expired
            if wait is None:
                raise


def exchange_token(api, body, flow="", retry=True):
    """The token answer; a refused code or verifier is AUTH_FAILED: the login failed, and is run
    again with `flow` (--device, or nothing for the browser)."""
    try:
        return api.call("POST", "/v1/oauth/token", body, auth=False, retry=retry,
                        check=expect("token", "POST /v1/oauth/token"))
    except LandbaseError as exc:
        device_flow = ("AUTHORIZATION_PENDING", "SLOW_DOWN", "ACCESS_DENIED", "EXPIRED_TOKEN")
        if exc.code != "VALIDATION_ERROR" or exc.server_code in device_flow:
            raise
        again = ("%s auth login %s" % (program_command(), flow)).rstrip()
        raise exc.replace(code="AUTH_FAILED",
                          message="%s; the login failed: run it again: %s" % (exc.message, again))


def should_use_device_flow():
    """No browser can be opened here: over SSH, or on Linux/BSD without a display (unless BROWSER
    says)."""
    env = os.environ.get
    if env("BROWSER", "").strip():
        return False
    if env("SSH_CONNECTION") or env("SSH_TTY"):
        return True
    unix = sys.platform.startswith(("linux", "freebsd", "openbsd", "netbsd"))
    return unix and not (env("DISPLAY") or env("WAYLAND_DISPLAY"))


def read_token_from_stdin():
    pipe = ('pipe the lbs_ token in, alone on its line: echo "$TOKEN" | %s auth login '
            '--with-token' % program_command())
    if sys.stdin is None:
        raise LandbaseError("INVALID_INPUT", "stdin is closed: " + pipe)
    try:
        if _isatty(sys.stdin):
            import getpass
            token = getpass.getpass("Paste the lbs_ token, then press Enter: ")
        else:
            token = sys.stdin.readline(64 * 1024)
    except EOFError:
        token = ""
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise LandbaseError("INVALID_INPUT", "cannot read the token from stdin: %s" % exc)
    token = remember_secret(token.strip())
    if not token:
        raise LandbaseError("INVALID_INPUT", "no token on stdin: " + pipe)
    if not is_lbs_token(token):
        raise LandbaseError(
            "INVALID_INPUT",
            "the token on stdin is not an lbs_ platform token (printable ASCII, no spaces or "
            "quotes); " + pipe,
        )
    return token


# ---------------------------------------------------------------- commands

def cmd_auth_login(args, console):
    store = SessionStore()
    api = api_for(args, console)
    if args.with_token:
        granted, me = login_with_token(api, console)
    else:
        granted = login_interactively(args, console, api)
        me = None
    if parse_time(granted["expiresAt"]) <= CLOCK.wall():
        raise LandbaseError("AUTH_FAILED", "the platform granted a session that ended at %s, "
                            "before it began: check this host's clock (date -u; %s doctor "
                            "compares it with the platform's), then log in again"
                            % (granted["expiresAt"], program_command()))
    before = store.update(lambda data: store_login(data, granted), console, replace_damaged=True)
    console.line("Saved the session in %s" % store.path)
    if environment_token():
        console.warn("LANDBASE_ACCESS_TOKEN is set, and commands use it, not this session: unset "
                     "it to use this one")
    api.token = granted["accessToken"]
    if me is None:
        me = fetch_me(api)
    account_id = settle_login_account(store, api, granted, before, console)
    from_env = account_variable()
    if from_env and from_env != account_id:
        account_text = "%s (from LANDBASE_ACCOUNT_ID)" % shown(from_env, 80)
    elif account_id is None:
        account_text = "none; choose one with: %s" % choose_account()
    else:
        account_text = account_id
    console.line("Logged in as %s (%s) until %s; active account: %s" % (
        me.get("email"), me.get("userId"), granted["expiresAt"], account_text))
    console.result({"userId": me.get("userId"), "email": me.get("email"), "accountId": account_id,
                    "expiresAt": granted["expiresAt"]})
    return 0


def login_with_token(api, console):
    """(what a token from stdin grants, /v1/me): the token is checked before it is saved."""
    api.token = read_token_from_stdin()
    me = fetch_me(api)
    expires_at = me.get("expiresAt")
    if not is_time(expires_at):
        expires_at = format_time(CLOCK.wall() + SESSION_LIFETIME)
        console.line("The session is assumed to last 7d from now; the platform may end it sooner.")
    return {"accessToken": api.token, "expiresAt": expires_at, "accountId": None}, me


def login_interactively(args, console, api):
    """What the browser or the device flow grants."""
    use_device = args.device or (not args.no_browser and should_use_device_flow())
    if use_device and not args.device:
        console.line(
            "No browser can be opened here; using the device code flow (auth login --device)."
        )
    if use_device:
        answer = login_device(console, api)
    else:
        answer = login_browser(args, console, api)
    return {key: answer.get(key) for key in ("accessToken", "expiresAt", "accountId")}


def store_login(data, granted):
    """The stored object after a login: the new token with only the account the platform granted
    (the one stored before may be another identity's: settle_login_account decides)."""
    device_name = data.get("deviceName")
    if not device_name:
        import socket
        device_name = socket.gethostname()
    return dict(granted, deviceName=device_name)


def settle_login_account(store, api, granted, before, console):
    """The active account after a login: one this identity can use. The one granted, else the one
    stored before the login, else the only one the identity has; else none. A LANDBASE_ACCOUNT_ID
    that commands will use instead is named."""
    try:
        ids = [account["id"] for account in fetch_accounts(api)]
    except LandbaseError as exc:
        raise exc.replace(
            message="%s; the login is saved, but its accounts could not be read, so no "
            "account is active: choose one with: %s account set <accountId>"
            % (exc.message, program_command())
        )
    account_id = choose_login_account(store, granted, before, ids, console)
    warn_account_variable(account_id, console, ids)
    return account_id


def choose_login_account(store, granted, before, ids, console):
    """settle_login_account's choice among the identity's accounts (`ids`), saved."""
    previous = before.get("accountId")
    account_id = None
    for candidate in (granted["accountId"], previous):
        if candidate in ids:
            account_id = candidate
            break
    chosen = ""
    if account_id is None and len(ids) == 1:
        account_id = ids[0]
        chosen = " (the only one this identity has)"
    if previous and previous not in ids and account_id is None:
        console.line(
            "The active account %s is not one this identity can use; it was cleared. Choose one "
            "with: %s" % (shown(previous), choose_account())
        )
    elif previous and previous not in ids:
        console.line("The active account %s is not one this identity can use; the active account "
                     "is now %s%s" % (shown(previous), account_id, chosen))
    elif chosen:
        console.line("Active account: %s%s" % (account_id, chosen))
    if account_id == granted["accountId"]:
        return account_id
    written = {"accessToken": granted["accessToken"], "accountId": granted["accountId"]}
    if store.update({"accountId": account_id}, expected=written) is not None:
        return account_id
    stored = store.load()               # changed meanwhile: what another command wrote stands
    if stored.get("accessToken") != granted["accessToken"]:
        console.line("%s changed meanwhile (another login saved a new token); it is left as it is"
                     % store.path)
        return None
    console.line("The active account was changed meanwhile to %s (account set); it is left as it "
                 "is" % shown(stored.get("accountId")))
    return stored.get("accountId")


def listed_ids(ids, most=10):
    """Account ids for a message: the first `most`, and how many more (an identity may have
    150,000)."""
    if not ids:
        return "none"
    text = ", ".join(ids[:most])
    if len(ids) > most:
        text += " and %d more" % (len(ids) - most)
    return text


def warn_account_variable(stored, console, usable=None):
    """LANDBASE_ACCOUNT_ID, when set, is the active account wherever it is set, whatever is
    stored: account set and a login, which change the stored one, say so. A login knows the
    accounts the identity can use (`usable`), and says when the variable's is not one of them."""
    from_env = account_variable()
    if from_env in ("", stored):
        return
    if usable is not None and from_env not in usable:
        console.warn("LANDBASE_ACCOUNT_ID=%s is set, and commands use it, but this identity "
                     "cannot use it (it can use: %s): change or unset it"
                     % (shown(from_env, 80), listed_ids(usable)))
        return
    stored_text = "no account is stored"
    if stored:
        stored_text = "%s is the stored one, for commands run without it" % stored
    console.warn("LANDBASE_ACCOUNT_ID=%s is set: it stays the active account wherever it is "
                 "set; %s" % (shown(from_env, 80), stored_text))


def cmd_auth_status(args, console):
    session = SessionStore().session(args.account, console)
    if session.account_error is not None:
        raise session.account_error
    if args.min_valid is not None and session.expires_at is not None:
        check_min_valid(session.expires_at, args.min_valid)        # before any request
    me = fetch_me(api_for(args, console, session.token, session.source))
    expires_at = session_end(session, me, console)
    if args.min_valid is not None:
        if expires_at is None:
            source = "platform.json"
            if session.source == "env":
                source = "LANDBASE_ACCESS_TOKEN"
            raise LandbaseError(
                "AUTH_FAILED",
                "nobody says when this session ends (neither %s nor the platform's /v1/me), so "
                "--min-valid cannot pass; %s" % (source, unknown_end_step(session.source)),
            )
        check_min_valid(expires_at, args.min_valid)
    left = None
    shown_end = None
    if expires_at is not None:
        left = int(expires_at - CLOCK.wall())
        shown_end = format_time(expires_at)
    console.result(
        {
            "authenticated": True,
            "userId": me.get("userId"),
            "email": me.get("email"),
            "accountId": session.account_id,
            "expiresAt": shown_end,
            "expiresInSeconds": left,
            "tokenSource": session.source,
        }
    )
    return 0


def session_end(session, me, console):
    """When the session ends: as platform.json records it, else as the platform's /v1/me says (a
    token from LANDBASE_ACCESS_TOKEN), with the warning under 24 hours either way; None when nobody
    says."""
    if session.expires_at is not None:
        return session.expires_at
    if not is_time(me.get("expiresAt")):
        return None
    expires_at = parse_time(me["expiresAt"])
    if expires_at <= CLOCK.wall():
        raise LandbaseError("AUTH_FAILED", "the token from %s ended at %s, as the platform says: "
                            "%s" % (token_name(session), me["expiresAt"], renewal(session.source)),
                            {"expiresAt": me["expiresAt"]})
    warn_if_ending(expires_at, console, session.source)
    return expires_at


def token_name(session):
    if session.source == "env":
        return "LANDBASE_ACCESS_TOKEN"
    return "platform.json"


def check_min_valid(expires_at, min_valid):
    left = int(expires_at - CLOCK.wall())
    if left < min_valid:
        raise LandbaseError(
            "AUTH_FAILED",
            "the session ends in %s (%s), before the %s asked for by "
            "--min-valid: run %s auth login (auth login --device over SSH)"
            % (
                format_span(left),
                format_time(expires_at),
                format_span(min_valid),
                program_command(),
            ),
            {"expiresInSeconds": left, "expiresAt": format_time(expires_at)},
        )


def cmd_auth_logout(args, console):
    store = SessionStore()
    damaged = None
    session = {}
    try:
        session = store.load(console)
    except LandbaseError as exc:
        damaged = exc.message.split("; ")[0]
    token = session.get("accessToken")
    revoked = False
    if token:
        check_lock(store)
        revoked = revoke(args, console, token, session.get("expiresAt"))
    removed = remove_session(store, token, revoked, console)
    if removed and damaged:
        console.line("Removed it: %s" % damaged)
    elif not token:
        console.line("No stored session in %s." % store.path)
    if environment_token():
        console.warn("LANDBASE_ACCESS_TOKEN is set and still used; logout neither revokes nor "
                     "unsets it")
    console.result({"loggedOut": True, "revoked": revoked})
    return 0


def check_lock(store):
    """The lock of platform.json can be taken: else nothing is revoked, so that the file is never
    left holding a revoked token."""
    problem = store.change_problem()
    if problem is not None:
        raise LandbaseError("SETUP_FAILED", "%s, so %s cannot be removed: %s; nothing was revoked "
                            "or removed" % (problem[0], store.path, problem[1]))
    try:
        with store.locked():
            pass
    except LandbaseError as exc:
        raise exc.replace(message="%s; nothing was revoked or removed" % exc.message)


def revoke(args, console, token, expires_at):
    """True when the platform revoked the token. A transient failure is tried again, as every
    one-shot request's is; whatever the end, the local session is removed after (API.md), and
    stderr says what that leaves."""
    try:
        api_for(args, console, token).call("POST", "/v1/oauth/revoke")
    except LandbaseError as exc:
        if exc.code == "AUTH_FAILED":
            console.line("The platform no longer accepts this token (%s), so there is nothing to "
                         "revoke; removing the local session." % exc.message)
            return False
        ends = "it expires"
        if expires_at:
            ends = expires_at
        console.line("Could not revoke the token on the platform (%s: %s); removing the local "
                     "session anyway. The token stays valid until %s for whoever holds a copy."
                     % (exc.code, exc.message, ends))
        return False
    return True


def remove_session(store, token, revoked, console):
    """Remove platform.json if it still holds `token`: a login made meanwhile is kept. A lock that
    hangs now leaves the file holding a token that was revoked: say so, and what to run."""
    try:
        removed = store.remove(token)
    except LandbaseError as exc:
        if not revoked:
            raise
        raise exc.replace(message="%s; the token was revoked, but %s still holds it: remove it "
                          "with: rm %s" % (exc.message, store.path, shlex.quote(store.path)))
    if token and not removed and os.path.exists(store.path):
        console.line("%s holds a newer login's token now: it is kept; only the token this logout "
                     "revoked is removed" % store.path)
    return removed


def cmd_account_list(args, console):
    session = SessionStore().session(args.account, console)
    accounts = fetch_accounts(api_for(args, console, session.token, session.source))
    for account in accounts:            # in place: a list of 150,000 is not copied
        account["active"] = account["id"] == session.account_id
    console.result(accounts)
    return 0


def cmd_account_set(args, console):
    store = SessionStore()
    # a stored account that is no account id is what this repairs
    session = store.session(None, console)
    # what the file holds as the check is made: the set is written only if it still does
    read = {"accessToken": store.load().get("accessToken")}
    accounts = fetch_accounts(api_for(args, console, session.token, session.source))
    match = [a for a in accounts if a["id"] == args.account_id]
    if not match:
        usable = listed_ids([a["id"] for a in accounts])
        raise LandbaseError(
            "NOT_FOUND",
            "account %s is not one this identity can use (it can use: %s; see: "
            "%s account list)" % (args.account_id, usable, program_command()),
            {"accountId": args.account_id},
        )
    if store.update({"accountId": args.account_id}, console, expected=read) is None:
        raise store.changed_meanwhile("%s account set %s"
                                      % (program_command(), shlex.quote(args.account_id)))
    warn_account_variable(args.account_id, console)
    console.result({"accountId": args.account_id, "name": match[0].get("name")})
    return 0


def account_api(args, console):
    """(the Api, the Account) of a command that works in an account; nothing is sent."""
    session = SessionStore().session(args.account, console)
    account = Account(require_account(session), session.account_source, session.source)
    return api_for(args, console, session.token, session.source), account


def cmd_contacts_import_start(args, console):
    import uuid
    body = read_import_body(args.json)
    api, account = account_api(args, console)
    key = args.idempotency_key or str(uuid.uuid4())
    path = "/v1/accounts/%s/contacts-imports" % account.id
    if args.dry_run:
        return dry_run(account, path, key, body, console)
    # what this run knows, in its outcome before anything is written
    known = {"idempotencyKey": key}
    # with --watch, the start's retries and the wait share --max-wait
    until = None
    if args.watch:
        until = CLOCK.now() + args.max_wait
    try:
        answer = post_start(api, account, body, key, args, console, known, until)
    except LandbaseError as exc:
        running = exc.meta.get("importId")
        if exc.code != "CONFLICT" or not is_import_id(running):
            raise
        return attach_to_running(api, account, exc, running, args, console)
    try:
        return report_started(api, account, answer, key, args, console, until)
    except (KeyboardInterrupt, Stopped) as exc:
        raise started_and_stopped(exc, account, known)


def dry_run(account, path, key, body, console):
    """The request a start would send, after the checks that need no request; what they cover."""
    source = account.source
    if source not in ("--account", "LANDBASE_ACCOUNT_ID"):
        source = "the stored account"
    session = "the session (present, not expired)"
    if account.token_source == "env":   # its end is not recorded here (auth status asks)
        session = "the token in LANDBASE_ACCESS_TOKEN (present; when it ends, the platform knows)"
    held = "as stored"
    if account.token_source == "env" or source != "the stored account":
        held = "as given"
    console.line("Dry run: checked the body, %s and the account %s (from %s) %s; nothing was "
                 "sent. The platform checks the dataset and the account's access to it only at "
                 "start; %s doctor checks the platform side."
                 % (session, account.id, source, held, program_command()))
    console.result({"dryRun": True, "accountId": account.id, "request": "POST " + path,
                    "idempotencyKey": key, "body": body})
    return 0


def post_start(api, account, body, key, args, console, known, until):
    """The platform's answer to the start, with `replayed` and `retried` (an earlier attempt of
    this run failed, so a replayed answer may be its own); `known` gets the import id as soon as it
    is known. A transient failure is retried with the same key: three times, or with --watch until
    `until`. An error after an attempt that may have reached the platform names the key and the
    command that gets the import back, and never exits 1 ("fix it and run it again")."""
    path = "/v1/accounts/%s/contacts-imports" % account.id
    first_attempt = CLOCK.wall()
    attempts = []
    again = rerun_text(args, key, account.id, first_attempt)

    def started(data, headers):
        answer = expect("start", "POST contacts-imports")(data)
        known["importId"] = answer["importId"]
        replayed = (headers.get("Idempotent-Replayed") or "").strip().lower() == "true"
        return dict(answer, replayed=replayed, retried=bool(attempts))
    try:
        return api.call("POST", path, body, headers={"Idempotency-Key": key}, check=started,
                        attempts=attempts, until=until)
    except (KeyboardInterrupt, Stopped) as exc:
        if "importId" in known:
            raise started_and_stopped(exc, account, known)
        meta = dict(known, safeUntil=format_time(first_attempt + KEY_KEPT))
        raise stopped(
            exc, "before the platform's answer arrived; the import may exist: " + again, meta
        )
    except LandbaseError as exc:
        running = exc.meta.get("importId")
        if exc.code == "CONFLICT" and is_import_id(running):
            raise
        if exc.meta.get("reason") == "idempotency_key_reused":
            raise key_reused(exc, args, key, account.id)
        # an attempt that failed for good, or that never reached the platform, started nothing
        if not any(attempt.transient and not attempt.unsent for attempt in attempts):
            raise start_refused(exc, account, body, args)
        code = exc.code
        if exc.exit_code == 1:
            code = "API_ERROR"
        meta = dict(exc.meta, idempotencyKey=key, serverCode=exc.code,
                    safeUntil=format_time(first_attempt + KEY_KEPT))
        raise exc.replace(code=code, message="%s; the platform may have created the import: %s"
                          % (exc.message, again), meta=meta)


def start_refused(error, account, body, args):
    """A start the platform refused for good: it started nothing and kept no key (API.md), so the
    same line runs again once what was refused is fixed."""
    if error.code == "NOT_FOUND":
        return account_not_found(error, account, body.get("importId"))
    if error.code == "CONFLICT":        # the running import unnamed (meta.importId names it)
        return error.replace(message="%s; an import is already running and the platform did not "
                             "say which: run the same line again once it has ended (the key was "
                             "not kept)" % error.message)
    if error.code != "VALIDATION_ERROR":
        return error
    fixed = "fix the body and run the same line again"
    if args.json == "-":
        fixed = "fix the body and run the same line again, with the fixed body on stdin"
    return error.replace(message="%s; nothing was started and the key was not kept: %s"
                         % (error.message, fixed))


def key_reused(error, args, key, account_id):
    """The key was kept for another body: the same line with a new key starts this one."""
    import uuid
    new_key = "%s-%s" % (key[:240], uuid.uuid4().hex[:8])
    stdin = ""
    if args.json == "-":
        stdin = "with the same body on stdin again, "
    # the server's message says why (the 24 hours, the other body): the tool adds what to run
    return error.replace(message="%s; %srun the same line with a new key: %s"
                         % (error.message, stdin, rerun_command(args, new_key, account_id)))


def started_and_stopped(exc, account, known):
    """A signal after the platform created the import: its id and key are in the outcome."""
    import_id = known["importId"]
    meta = dict(known, resume=resume_command(account.id, [import_id]))
    return stopped(exc, "import %d was started and keeps running on Landbase" % import_id, meta)


def attach_to_running(api, account, error, running, args, console):
    """A CONFLICT that names the running import: wait on it with --watch, else say how."""
    command = resume_command(account.id, [running])
    if not args.watch:
        raise error.replace(message="%s; wait on import %d with: %s"
                            % (error.message, running, command))
    console.line(
        "Import %d is already running (CONFLICT); waiting on it, as --watch asks. Resume with: %s"
        % (running, command)
    )
    return watch_started(api, account, running, console, args.max_wait)


def report_started(api, account, answer, key, args, console, until):
    """The stderr line that names the import (it comes first), then the result or the wait."""
    import_id = answer["importId"]
    run = "(run %s) in account %s" % (answer["runRef"], account.id)
    if not answer["replayed"]:
        what = "Started import %d %s." % (import_id, run)
    elif answer["retried"]:
        what = ("Import %d was started with key %s %s by an earlier attempt of this run, whose "
                "answer was lost; nothing new started." % (import_id, key, run))
    else:
        what = ("Import %d was already started with key %s %s; nothing new started."
                % (import_id, key, run))
    console.line("%s Follow it with: %s" % (what, resume_command(account.id, [import_id])))
    if not args.watch:
        console.result({"importId": import_id, "runRef": answer["runRef"]},
                       {"importId": import_id})
        return 0
    # the wait gets what the start's retries left of --max-wait (one request at least)
    limit = max(until - CLOCK.now(), min(api.timeout, args.max_wait))
    return watch_started(api, account, import_id, console, limit, key)


def watch_started(api, account, import_id, console, limit, key=None):
    """start --watch: the wait on the import, which exists now. An error that is not the import's
    own end (a refused session, a lost account) says that the import keeps running and how to
    follow it once fixed, and never exits 1 ("fix it and run it again")."""
    try:
        return wait_and_report(api, account, [import_id], console, limit, started=True)
    except LandbaseError as exc:
        if exc.code in ("IMPORT_FAILED", "IMPORT_PARTIAL", "TIMEOUT") or exc.signum:
            raise
        code = exc.code
        if exc.exit_code == 1:
            code = "API_ERROR"
        meta = dict(exc.meta, importId=import_id, serverCode=exc.code,
                    resume=resume_command(account.id, [import_id]))
        if key is not None:
            meta["idempotencyKey"] = key
        raise exc.replace(code=code, meta=meta, message="%s (%s); import %d exists and keeps "
                          "running on Landbase" % (exc.message, exc.code, import_id))


def rerun_text(args, key, account_id, first_attempt):
    """How to get the import of an ambiguous start back: this start's command line again with its
    key, safe for 24 hours from the key's first use. A key the user gave (the night's, in cron) may
    have been used by an earlier run: then this run's first attempt gives only the latest time."""
    until = format_time(first_attempt + KEY_KEPT)
    if args.idempotency_key is None:
        text = "until %s (24 hours from the first attempt" % until
    else:
        text = ("until %s at the latest (24 hours from this run's first attempt; if an earlier "
                "run used this key, 24 hours from that run's" % until)
    text = "get it back, never a second one, %s; later, the same key starts a new import)" % text
    if args.json == "-":
        text += ", with the same body on stdin again"
    return text + ", with: " + rerun_command(args, key, account_id)


def rerun_command(args, key, account_id):
    """This start's command line again, runnable from any directory (its body's path made
    absolute), in the account it started in (whatever the environment or the stored account say
    when it is pasted), with its key in the --idempotency-key=KEY form (a key that begins with -
    works)."""
    words = []
    previous = None
    for word in args.argv:
        dropped = previous in ("--idempotency-key", "--account")
        previous = word
        if dropped or word in ("--idempotency-key", "--account"):
            continue
        if word.startswith(("--idempotency-key=", "--account=")):
            continue
        words.append(word)
    words.append("--account=" + account_id)
    words.append("--idempotency-key=" + key)
    return command_again(words)


def command_again(words):
    """The command line `words` as a command that runs from any directory: this file's path, and
    a body's path made absolute."""
    words = list(words)
    for index, word in enumerate(words):
        if word == "--json" and index + 1 < len(words) and words[index + 1] != "-":
            words[index + 1] = os.path.abspath(words[index + 1])
        elif word.startswith("--json=") and word != "--json=-":
            words[index] = "--json=" + os.path.abspath(word[len("--json="):])
    return " ".join([program_command()] + [shlex.quote(word) for word in words])


def cmd_contacts_import_status(args, console):
    api, account = account_api(args, console)
    import_id = args.import_ids[0]
    console.result(fetch_status(api, account, import_id), {"importId": import_id})
    return 0


def cmd_contacts_import_wait(args, console):
    api, account = account_api(args, console)
    return wait_and_report(api, account, args.import_ids, console, args.max_wait)


# ---------------------------------------------------------------- doctor

class Silent(Console):
    """A console that prints nothing: doctor reports what it finds as rows, not as warnings."""

    def _write(self, text):
        pass


class Report:
    """doctor's rows: each check ok, warn or fail, with a detail and the fix; a table on stderr as
    they come, the report on stdout at the end. The exit is that of the first failure's class."""

    def __init__(self, console):
        self.console = console
        self.checks = []
        self.failures = []              # (code, name, detail, fix)

    def add(self, name, status, detail, fix="", code="SETUP_FAILED"):
        detail = shown(detail, 300)
        fix = shown(fix or "", 300)
        self.checks.append({"name": name, "status": status, "detail": detail, "fix": fix})
        line = "%-4s  %-12s %s" % (status, name, detail)
        if fix:
            line += "; fix: " + fix
        self.console.line(line)
        if status == "fail":
            # 1 setup, 3 session, 4 network: no other
            if EXIT_CODES.get(code) not in (1, 3, 4):
                code = "NETWORK_ERROR"
            self.failures.append((code, name, detail, fix))

    def error(self, name, error, fix=None):
        """A failed check that says what the tool's own error says, less the next step a command's
        message ends with: the fix is the error's own step, or, for a timeout, the check's (which
        names the step that did not answer)."""
        detail = error.message
        if detail.endswith(doctor_hint()):
            detail = detail[:-len(doctor_hint())]
        if error.fix and detail.endswith(error.fix):
            detail = detail[:-len(error.fix)].rstrip("; :")
        if error.code != "TIMEOUT" or not fix:
            fix = error.fix or fix
        self.add(name, "fail", detail, fix, error.code)

    def finish(self):
        self.console.result({"ok": not self.failures, "checks": self.checks})
        if not self.failures:
            return 0
        code, name, detail, fix = self.failures[0]
        count = "1 check failed"
        if len(self.failures) > 1:
            count = "%d checks failed" % len(self.failures)
        message = "%s; the first: %s: %s" % (count, name, detail)
        if fix:
            message += "; fix: " + fix     # what cron mails ends with the next step
        raise LandbaseError(code, message, {"failed": [failure[1] for failure in self.failures]})


def cmd_doctor(args, console):
    """What a locked-down host gets wrong, each check ok, warn or fail, with a detail and the fix:
    a report on stdout, a table on stderr; the exit of the first failure's class (1 setup, 3
    session, 4 network)."""
    report = Report(console)
    store = SessionStore()
    report.add("python", "ok", "CPython %s (%s)" % (sys.version.split()[0], sys.executable))
    session = None
    session_error = None
    config_ok = check_config(report, store)
    if config_ok:
        session, session_error = read_session(store, args)
    api = check_environment(report, args, session)
    me = None
    if api is not None:
        me = check_platform(report, api, session)
    if config_ok:
        check_session(report, store, session, session_error, me)
    if session is not None:
        check_account(report, api, session, me)
    check_tool(report)
    return report.finish()


def check_tool(report):
    if file_digest() is None:
        report.add("tool", "warn", "landbase-import %s, %s" % (__version__, digest_text()),
                   "run it as a file: python3 landbase_import.py doctor")
        return
    report.add("tool", "ok", "landbase-import %s, %s" % (__version__, digest_text()))


def check_config(report, store):
    """The config directory and platform.json: there, of the right kind, private, writable,
    readable, strict JSON. Whether a session can be read from it."""
    directory = store.directory
    if os.path.lexists(directory) and not os.path.isdir(directory):
        report.add("config", "fail", "%s is not a directory" % directory,
                   "remove it, or point LANDBASE_CONFIG_DIR at a directory")
        return False
    if not os.path.isdir(directory):
        report.add("config", "warn", "%s does not exist" % directory,
                   "%s auth login creates it" % program_command())
        return True
    mode = stat.S_IMODE(os.stat(directory).st_mode)
    problem = store.change_problem()
    if problem is not None:
        what, fix = problem
        report.add("config", "fail", "%s: no login, logout or account set can change %s"
                   % (what, store.path), fix)
        return False
    if mode & 0o077:
        report.add("config", "warn", "%s, mode %o" % (directory, mode), "chmod 700 %s" % directory)
    else:
        report.add("config", "ok", "%s, mode %o" % (directory, mode))
    return check_session_file(report, store)


def check_session_file(report, store):
    path = store.path
    if not os.path.lexists(path) and environment_token():
        report.add("config", "ok", "%s does not exist; not needed: LANDBASE_ACCESS_TOKEN is set"
                   % path)
        return True
    if not os.path.lexists(path):
        report.add(
            "config", "warn", "%s does not exist" % path, "%s auth login" % program_command()
        )
        return True
    if not os.path.isfile(path):
        report.add("config", "fail", "%s is not a regular file" % path,
                   "remove it (rm -r %s), then: %s auth login" % (path, program_command()))
        return False
    mode = stat.S_IMODE(os.stat(path).st_mode)
    try:
        store.load()
    except LandbaseError as exc:
        report.error("config", exc)
        return False
    if not os.access(path, os.W_OK):
        report.add("config", "warn", "%s, mode %o, cannot be written by this user" % (path, mode),
                   "chown it to this user, or remove it and log in again")
    elif mode & 0o077:
        report.add("config", "warn", "%s, mode %o" % (path, mode), "chmod 600 %s" % path)
    else:
        report.add("config", "ok", "%s, mode %o, strict JSON" % (path, mode))
    return True


def read_session(store, args):
    """(the session, or None and the error that says why there is none); nothing is sent."""
    try:
        return store.session(args.account, Silent()), None
    except LandbaseError as exc:
        return None, exc


def check_environment(report, args, session):
    """The base URLs, the proxy that applies, SSL_CERT_FILE: the Api every later check uses, or
    None."""
    try:
        base_url("LANDBASE_PLATFORM_WEB_URL", DEFAULT_WEB_URL)
        base = base_url("LANDBASE_PLATFORM_API_URL", DEFAULT_API_URL)
    except LandbaseError as exc:
        report.error("environment", exc, "unset it, or set it to https://…landbase.com")
        return None
    token = None
    if session is not None:
        token = session.token
    try:
        source = "file"
        if session is not None:
            source = session.source
        api = Api(base, token, args.timeout, Silent(), renewal(source))
    except LandbaseError as exc:
        report.error("proxy", exc, "http://[user:password@]host:port, percent-encoded")
        return None
    if api.proxy is not None:
        report.add("proxy", "ok", "requests to %s go through %s" % (base, api.proxy))
    elif base.startswith("https:") and no_proxy_covers(base) and proxy_variable():
        report.add("proxy", "ok", "NO_PROXY covers %s: requests go to it directly" % base)
    else:
        report.add("proxy", "ok", "no proxy: requests go to %s directly" % base)
    if not base.startswith("https:"):
        report.add("tls store", "ok", "none needed (http)")
        return api
    try:
        tls_context()
    except LandbaseError as exc:
        report.error("tls store", exc)
        return None
    if os.environ.get("SSL_CERT_FILE"):
        report.add("tls store", "ok", "SSL_CERT_FILE=" + os.environ["SSL_CERT_FILE"])
    else:
        report.add("tls store", "ok", "the system's CA store")
    return api


def proxy_variable():
    return os.environ.get("https_proxy") or os.environ.get("HTTPS_PROXY")


def check_platform(report, api, session):
    """One request, GET /v1/me, through the one request path, each step it reached reported as a
    row: name resolution, TCP, the proxy's tunnel, TLS, the answer; then the clock against its
    Date. /v1/me's answer, or None."""
    import urllib.parse
    host = urllib.parse.urlsplit(api.base).hostname
    trace = Trace(host, api.proxy, names_wanted=True)
    error = None
    me = None
    try:
        me = fetch_me(api, retry=False, trace=trace)
    except LandbaseError as exc:
        error = exc
    if not report_connection(report, api, trace, error):
        return None
    answered = "GET /v1/me: HTTP %d in %d ms" % (trace.status, trace.ms)
    if error is None:
        report.add("platform", "ok", answered)
    elif session is None and error.code == "AUTH_FAILED":
        report.add("platform", "ok", "%s (no session was sent: it answers)" % answered)
    else:
        report.error("platform", error, answer_fix(error, trace, api))
    check_clock(report, trace.headers)
    return me


# what to do when a step got no answer within --timeout (the other failures say it themselves)
STEP_FIXES = {
    "dns": "the name server did not answer: check /etc/resolv.conf; if this host reaches the "
           "internet through a proxy, set HTTPS_PROXY",
    "connection": "nothing answered within --timeout: check the firewall and the address",
    "tunnel": "the proxy did not answer the CONNECT within --timeout: check the proxy",
    "tls": "the TLS handshake did not end within --timeout: check what is in the way",
    "platform": "the platform did not answer within --timeout: run doctor again, or with a "
                "larger --timeout",
}


def answer_fix(error, trace, api):
    """What to do about an answer of the platform's that is not /v1/me's."""
    if error.code == "AUTH_FAILED":
        return api.renewal
    if error.code == "UPGRADE_REQUIRED":
        return "upgrade landbase-import: the platform asks for a newer client"
    if error.code == "NOT_FOUND":
        return "LANDBASE_PLATFORM_API_URL does not serve the Landbase API: unset it, or fix it"
    if error.code == "RATE_LIMITED":
        return "the platform asks to slow down: run doctor again in a minute"
    if error.code == "TIMEOUT":
        return STEP_FIXES["platform"]
    if trace.status is not None and trace.status >= 500:
        return "the platform is failing: try again later; if it goes on, tell Landbase support"
    return ("something answers in the platform's place (a captive portal, a proxy's own page): "
            "check LANDBASE_PLATFORM_API_URL and the network path")


def report_connection(report, api, trace, error):
    """The rows of the steps before the answer; False when one failed (it says what the error
    says)."""
    steps = [("dns", trace.resolved is not None), ("connection", trace.connected_ms is not None)]
    if api.proxy is not None:
        steps.append(("tunnel", trace.tunnel))
    if api.base.startswith("https:"):
        steps.append(("tls", trace.tls is not None))
    steps.append(("platform", trace.status is not None))
    for name, reached in steps:
        if not reached:
            report.error(name, error, STEP_FIXES.get(name, ""))
            return False
        if name == "dns":
            report.add("dns", "ok", "%s is %s" % trace.resolved)
        elif name == "connection":
            report.add(
                "connection",
                "ok",
                "%s:%s in %d ms" % (trace.resolved[0], connected_port(api), trace.connected_ms),
            )
        elif name == "tunnel":
            report.add("tunnel", "ok", "%s let the tunnel through to %s" % (
                api.proxy, host_port(*origin(api.base)[1:])))
        elif name == "tls":
            report_tls(report, trace)
    return True


def connected_port(api):
    if api.proxy is not None:
        return api.proxy.where.rsplit(":", 1)[1]
    return origin(api.base)[2]


def report_tls(report, trace):
    version, left = trace.tls
    detail = "%s, the certificate of %s" % (version, trace.host)
    if left is None:
        report.add("tls", "ok", detail)
    elif left < CERT_WARN_BELOW:
        report.add("tls", "warn", "%s ends in %s" % (detail, format_span(left)),
                   "the platform's certificate must be renewed")
    else:
        report.add("tls", "ok", "%s ends in %s" % (detail, format_span(left)))


def check_clock(report, headers):
    """The local clock against the platform's Date header: session ends and TLS depend on it."""
    value = None
    if headers is not None:
        value = headers.get("Date")
    by_hand = "compare date -u with a clock you trust; check that the host keeps it (NTP)"
    if not value:
        report.add(
            "clock",
            "warn",
            "the platform's answer has no Date header, so the clock was not compared",
            by_hand,
        )
        return
    when = parse_http_date(value)
    if when is None:
        report.add(
            "clock",
            "warn",
            "the platform's Date header is not a valid date (%s), so the clock was "
            "not compared" % excerpt(value, 60),
            by_hand,
        )
        return
    skew = CLOCK.wall() - when
    side = "behind"
    if skew > 0:
        side = "ahead of"
    detail = "%s %s the platform's" % (format_span(abs(skew)), side)
    if abs(skew) > CLOCK_SKEW:
        report.add(
            "clock",
            "fail",
            detail,
            "sync the clock (NTP: timedatectl set-ntp true): session ends and TLS depend on it",
        )
    else:
        report.add("clock", "ok", detail)


def check_session(report, store, session, error, me):
    """The session's source and end: as platform.json records it, else as /v1/me says."""
    if session is None:
        report.error("session", error, "%s auth login" % program_command())
        return
    source = store.path
    if session.source == "env":
        source = "LANDBASE_ACCESS_TOKEN"
    expires_at = session.expires_at
    if expires_at is None and me is not None and is_time(me.get("expiresAt")):
        expires_at = parse_time(me["expiresAt"])
    if expires_at is None and me is None:
        report.add("session", "warn", "from %s; when it ends is not known: the platform, which "
                   "says so, could not be asked" % source, "fix the failed check above first")
        return
    if expires_at is None:
        report.add("session", "warn", "from %s; nobody says when it ends, so auth status "
                   "--min-valid cannot pass" % source, unknown_end_step(session.source))
        return
    left = expires_at - CLOCK.wall()
    detail = "from %s; ends %s (in %s)" % (source, format_time(expires_at), format_span(left))
    if left <= 0:
        report.add("session", "fail", "from %s; ended %s" % (source, format_time(expires_at)),
                   renewal(session.source), "AUTH_FAILED")
    elif left < SESSION_WARN_BELOW:
        report.add("session", "warn", detail, renewal(session.source))
    else:
        report.add("session", "ok", detail)


def check_account(report, api, session, me):
    """The active account: set, well formed, usable by this identity; where its id came from.
    Whether this identity can use it is asked only of a platform that answered /v1/me."""
    try:
        account_id = require_account(session)
        if api is None or me is None:
            report.add("account", "warn", "%s (from %s); whether this identity can use it is not "
                       "known: the platform could not be asked"
                       % (account_id, session.account_source), "fix the failed check above first")
            return
        accounts = fetch_accounts(api, retry=False)
    except LandbaseError as exc:
        report.error("account", exc, choose_account())
        return
    source = session.account_source
    fix = choose_account()
    if source == "LANDBASE_ACCOUNT_ID":
        fix = "change or unset LANDBASE_ACCOUNT_ID (account set cannot override it)"
    elif source == "--account":
        fix = "pass another --account (the ids: %s account list)" % program_command()
    if account_id in [a["id"] for a in accounts]:
        report.add(
            "account", "ok", "%s (from %s) is usable by this identity" % (account_id, source)
        )
    else:
        report.add(
            "account",
            "fail",
            "%s (from %s) is not usable by this identity" % (account_id, source),
            fix,
            "SETUP_FAILED",
        )


def file_digest():
    """The SHA-256 of this file, as it is on disk: what --version and doctor show; None when the
    tool was not run from a file (python3 - < landbase_import.py)."""
    import hashlib
    digest = hashlib.sha256()
    try:
        with open(os.path.abspath(__file__), "rb") as handle:
            for block in iter(lambda: handle.read(65536), b""):
                digest.update(block)
    except OSError:
        return None
    return digest.hexdigest()


def digest_text():
    """sha256 HEX PATH, as --version prints it and doctor shows it."""
    digest = file_digest()
    if digest is None:
        return "sha256 unknown: %s is no file (run the tool from its file)" % __file__
    return "sha256 %s %s" % (digest, os.path.abspath(__file__))


# ---------------------------------------------------------------- command line

INTRO = """Bulk-import a Landbase dataset's contacts into an account under a tag, read an import's
progress, or wait until it ends. stdout is one JSON document (or --query's text); progress and, on
failure, a line naming the error and then the one-line JSON envelope go to stderr, each line dated
when it is a log.

commands (each with --help):
  auth login [--device | --with-token] [--no-browser]   log in for 7 days
  auth status [--min-valid DURATION]                     who is logged in, and until when
  auth logout                                            revoke the token, remove the session
  account list                                           the accounts this identity can use
  account set ACCOUNT_ID                                 choose the active account
  contacts-import start --json PATH|- [--watch] [--max-wait DURATION] [--dry-run]
                        [--idempotency-key KEY]          start an import (and wait for it)
  contacts-import status IMPORT_ID                       an import's status, once
  contacts-import wait IMPORT_ID... [--max-wait DURATION]  wait until the imports end
  doctor                                                 check the host, the session, the platform
"""

MANUAL = """environment:
  LANDBASE_ACCESS_TOKEN        a token to use instead of the stored one (CI, cron; 7 days too)
  LANDBASE_ACCOUNT_ID          the active account, unless --account is given
  LANDBASE_CONFIG_DIR          where platform.json lives (default ~/.landbase)
  LANDBASE_PLATFORM_API_URL, LANDBASE_PLATFORM_WEB_URL   the API and the login pages (by default
                               https://api.landbase.com and https://platform.landbase.com)
  LANDBASE_ALLOW_CUSTOM_API_URL=1  allow a host other than landbase.com and loopback
  HTTPS_PROXY, NO_PROXY        an http:// proxy for https, with user:password percent-encoded in it
  SSL_CERT_FILE                a CA bundle to trust instead of the system store
  BROWSER                      the browser auth login opens
  NO_COLOR, TERM=dumb          no colours; TERM=dumb also gets the dated log lines

exit codes:
  0    success; for wait and --watch, every import completed
  1    the input or the setup is wrong: INVALID_INPUT, VALIDATION_ERROR, SETUP_FAILED
  2    the platform refused or failed, or an import ended failed or partial: NOT_FOUND, CONFLICT,
       API_ERROR, RATE_LIMITED, UPGRADE_REQUIRED, IMPORT_FAILED, IMPORT_PARTIAL, OUTPUT_FAILED
  3    no session, or it was refused or has ended (run auth login): AUTH_REQUIRED, AUTH_FAILED
  4    the platform could not be reached, or a wait ran out of time: TIMEOUT, NETWORK_ERROR
  129  SIGHUP (TERMINATED); 130 Ctrl-C (INTERRUPTED); 143 SIGTERM (TERMINATED)

session file:
  ~/.landbase/platform.json (or $LANDBASE_CONFIG_DIR/platform.json), 0600 in a 0700 directory, the
  official landbase-cli's file: {"accessToken", "expiresAt", "accountId", "deviceName"}. A session
  lasts 7 days: log in again each week (auth status --min-valid 2d warns two days ahead).

example:
  %(prog)s contacts-import start --json body.json --watch
"""

GROUPS = {
    "auth": (
        "ACTION ...",
        "Log in, show who is logged in, or log out.",
        """actions (each with --help):
  auth login [--device | --with-token] [--no-browser]   log in for 7 days
  auth status [--min-valid DURATION]                     who is logged in, and until when
  auth logout                                            revoke the token, remove the session

example:
  %(prog)s login --device""",
    ),
    "account": (
        "ACTION ...",
        "List the accounts this identity can use, or choose the active one.",
        """actions (each with --help):
  account list                  the accounts, and which one is active
  account set ACCOUNT_ID        make one the active account

example:
  %(prog)s set acc_abc123""",
    ),
    "contacts-import": (
        "ACTION ...",
        "Start, read or wait for imports.",
        """actions (each with --help):
  contacts-import start --json PATH|- [--watch] [--max-wait DURATION] [--dry-run]
                        [--idempotency-key KEY]
  contacts-import status IMPORT_ID
  contacts-import wait IMPORT_ID... [--max-wait DURATION]

example:
  %(prog)s start --json body.json --watch""",
    ),
}

# Each command's usage (after the program and its words), what it does, and an example.
COMMAND_HELP = {
    ("auth", "login"): (
        "[--device | --with-token] [--no-browser]",
        """Log in for 7 days. By default a browser on this machine signs in (PKCE, an answer on
127.0.0.1); --no-browser prints its URL instead. --device shows a URL and a code to approve on any
device: it is chosen by itself over SSH or without a display. --with-token reads an lbs_ token from
stdin. The session is saved in platform.json, and stderr says where.""",
        "echo \"$TOKEN\" | %(prog)s --with-token",
    ),
    ("auth", "status"): (
        "[--min-valid DURATION]",
        """Who is logged in, and until when. Exit 3 without a valid session, or with --min-valid
when the session ends sooner than that: a pre-flight for cron.""",
        "%(prog)s --min-valid 2d",
    ),
    ("auth", "logout"): (
        "",
        "Revoke the token on the platform and remove the local session.",
        "%(prog)s",
    ),
    ("account", "list"): (
        "",
        "The accounts this identity can use, and which one is active.",
        "%(prog)s",
    ),
    ("account", "set"): (
        "ACCOUNT_ID",
        """Make an account (1 to 64 letters, digits, _ or -) the active one; --account=ID overrides
it for one call, LANDBASE_ACCOUNT_ID for a whole environment.""",
        "%(prog)s acc_abc123",
    ),
    ("contacts-import", "start"): (
        "--json PATH|- [--watch] [--max-wait DURATION]\n"
        "           [--dry-run] [--idempotency-key KEY]",
        """Start an import from a JSON body {"datasetId", "tagName", "importId"?} in a file, or on
stdin (-). The first stderr line after the platform's answer names the import and the command that
follows it. The same --idempotency-key, account and body within 24 hours get the same import, never
a second one. --watch then waits for it, as wait does, and keeps retrying a start that fails for a
while (network, 5xx, 429) until --max-wait runs out; without it, three retries.""",
        "%(prog)s --json body.json --watch --idempotency-key nightly-7",
    ),
    ("contacts-import", "status"): (
        "IMPORT_ID",
        """An import's status, once: {"importId", "phase", "percent", "counts", "error"}.""",
        "%(prog)s 7",
    ),
    ("contacts-import", "wait"): (
        "IMPORT_ID... [--max-wait DURATION]",
        """Wait until the imports end: each is read at once, after 5 s, 10 s, then every 20 s, for
--max-wait. Exit 0 when all completed; the final status (an array for several ids) is printed
either way.""",
        "%(prog)s 7 8 --max-wait 3h",
    ),
    ("doctor",): (
        "",
        """Check what a locked-down host gets wrong: Python, this file's SHA-256, the config
directory and platform.json, the base URLs, the proxy, SSL_CERT_FILE, name resolution, TCP, the
proxy's tunnel, TLS, the platform and its latency, the clock, the session and the account. Each
check is ok, warn or fail, with the fix; exit 0 when none fails, else 1 (setup), 3 (session) or 4
(network).""",
        "%(prog)s",
    ),
}

# What each command prints, for --query.
OUTPUT_KEYS = {
    "wait": (
        "importId",
        "phase",
        "percent",
        "counts",
        "counts.total",
        "counts.imported",
        "counts.skipped",
        "counts.failed",
        "error",
        "error.code",
        "error.message",
    ),
    "auth login": ("userId", "email", "accountId", "expiresAt"),
    "auth status": (
        "authenticated",
        "userId",
        "email",
        "accountId",
        "expiresAt",
        "expiresInSeconds",
        "tokenSource",
    ),
    "auth logout": ("loggedOut", "revoked"),
    "account list": ("id", "name", "active"),
    "account set": ("accountId", "name"),
    "doctor": ("ok", "checks"),
    "start": ("importId", "runRef"),
    "start --dry-run": (
        "dryRun",
        "accountId",
        "request",
        "idempotencyKey",
        "body",
        "body.datasetId",
        "body.tagName",
        "body.importId",
    ),
}


class ShowText(Exception):
    """--help, --version or a command line that stops at a level: this text on stdout, exit 0."""


class Parser(argparse.ArgumentParser):
    """argparse as this tool needs it: a usage mistake is INVALID_INPUT (exit 1, the dated line and
    the envelope, as every error), and help goes through the one stdout writer (a closed stdout is
    OUTPUT_FAILED)."""

    words = ()                          # the command's words to this level (CommandLine.parser)

    def error(self, message):
        command = " ".join((program_command(),) + self.words)
        raise LandbaseError("INVALID_INPUT", "%s (see: %s --help)" % (message, command))

    def _check_value(self, action, value):
        """argparse's check of a word against its choices (the commands), with the nearest one to
        what was typed. argparse keeps this method private, but it is the same from 3.6 to 3.13
        (test_input)."""
        if action.choices is not None and value not in action.choices:
            choices = sorted(action.choices)
            raise argparse.ArgumentError(
                action, "unknown command %r%s" % (value, did_you_mean(value, choices))
            )

    def print_help(self, file=None):
        raise ShowText(self.format_help())


class HelpLayout(argparse.RawTextHelpFormatter):
    """Help laid out as it is written here, 100 columns wide whatever the terminal: argparse's own
    wrapping would import textwrap and shutil, some 7 ms of every --help."""

    def __init__(self, prog):
        argparse.RawTextHelpFormatter.__init__(self, prog, max_help_position=30, width=100)


class ShowVersion(argparse.Action):
    """--version: the version and the SHA-256 of the file that runs, to compare with the published
    one."""

    def __init__(self, option_strings, dest, **kwargs):
        argparse.Action.__init__(self, option_strings, dest, nargs=0, default=argparse.SUPPRESS,
                                 help="the version, and the SHA-256 of this file")

    def __call__(self, parser, namespace, values, option_string=None):
        raise ShowText(version_text())


def version_text():
    return "landbase-import %s\n%s\n" % (__version__, digest_text())


# argparse's types: each turns a word into its value, or says what it takes
def timeout_option(text):
    if not re.match(r"([0-9]+\.?[0-9]*|\.[0-9]+)\Z", text) or not 0 < float(text) <= MAX_TIMEOUT:
        raise argparse.ArgumentTypeError(
            "takes a number of seconds greater than 0 and at most %d, not %s"
            % (MAX_TIMEOUT, shown(repr(text), 80))
        )
    return float(text)


def duration_option(text):
    seconds = parse_duration(text)
    if seconds is None or not 0 < seconds <= MAX_WAIT_LIMIT:
        raise argparse.ArgumentTypeError(
            "takes a duration greater than 0 and at most 7d, such as 90s, 30m, "
            "12h or 2d, not %s" % shown(repr(text), 80)
        )
    return seconds


def min_valid_option(text):
    seconds = parse_duration(text)
    if seconds is None:
        raise argparse.ArgumentTypeError("takes a duration such as 90s, 30m, 12h or 2d, not %s"
                                         % shown(repr(text), 80))
    return seconds


def account_option(text):
    if not ACCOUNT_ID_RE.match(text):
        raise argparse.ArgumentTypeError("%s is not valid: use 1 to 64 letters, digits, _ or -"
                                         % shown(repr(text), 80))
    return text


def import_id_option(text):
    if not IMPORT_ID_RE.match(text) or not 0 < int(text) <= MAX_IMPORT_ID:
        raise argparse.ArgumentTypeError(
            "import id %s is not valid: it is a positive whole number such as 7"
            % shown(repr(text), 80)
        )
    return int(text)


def key_option(text):
    if not KEY_RE.match(text) or not text.strip():
        raise argparse.ArgumentTypeError(
            "takes 1 to 255 printable ASCII characters, not only spaces (such "
            "as nightly-2026-11-29), not %s" % shown(repr(text), 80)
        )
    return text


class CommandLine:
    """The parsers of every level (the program, each group, each command) and the options each
    takes, as they are added: for the help of a level and the nearest option to an unknown one."""

    def __init__(self, program):
        self.program = program
        self.parsers = {}
        self.options = {}

    def parser(self, words, subparsers=None, **kwargs):
        kwargs.update(formatter_class=HelpLayout, allow_abbrev=False)
        if subparsers is None:
            parser = Parser(prog=self.program, **kwargs)
        else:
            parser = subparsers.add_parser(words[-1], **kwargs)
        parser.words = words
        self.parsers[words] = parser
        self.options[words] = ["-h", "--help"]
        return parser

    def option(self, words, container, *names, **kwargs):
        self.options[words].extend(name for name in names if name.startswith("-"))
        return container.add_argument(*names, **kwargs)

    def all_options(self):
        names = set()
        for options in self.options.values():
            names.update(options)
        return sorted(names)


def add_global_options(line, words):
    """--account, --timeout, --query, --verbose and --quiet, before the command (with their
    defaults) or after it (where an option not given leaves the value before it as it is)."""
    parser = line.parsers[words]
    group = parser.add_argument_group("global options, before or after the command")
    top = words == ()

    def default(value):
        if top:
            return value
        return argparse.SUPPRESS
    query = "query"
    if not top:
        query = "query_after"           # joined with the --query before the command (parse_args)
    line.option(
        words,
        group,
        "--account",
        metavar="ID",
        type=account_option,
        default=default(None),
        help="the account for this call\n(else LANDBASE_ACCOUNT_ID, else the stored one)",
    )
    line.option(words, group, "--timeout", metavar="SECONDS", type=timeout_option,
                default=default(DEFAULT_TIMEOUT),
                help="the bound on each whole request, connect to last byte (default 30)")
    line.option(
        words,
        group,
        "--query",
        metavar="PATH[,PATH]",
        dest=query,
        action="append",
        default=default(None),
        help="print these fields as text instead of JSON:\nimportId, counts.imported, error.code",
    )
    line.option(words, group, "--verbose", action="store_true", default=default(False),
                help="requests and answers on stderr (tokens redacted)")
    line.option(words, group, "--quiet", action="store_true", default=default(False),
                help="no progress lines")


COMMAND_LINES = {}                      # program name -> its CommandLine, built once


def build_command_line(program):
    """The command line: a level per word, each command's options, the global options at every
    level."""
    line = CommandLine(program)
    top = line.parser(
        (), usage="%(prog)s [global options] COMMAND ...", description=INTRO, epilog=MANUAL
    )
    line.option((), top, "--version", action=ShowVersion)
    add_global_options(line, ())
    commands = top.add_subparsers(
        dest="command", metavar="COMMAND", help=argparse.SUPPRESS, prog=program
    )
    for group, (usage, description, actions) in GROUPS.items():
        line.parser((group,), commands, usage="%(prog)s " + usage, description=description,
                    epilog=actions)
        add_global_options(line, (group,))
        actions_of = line.parsers[(group,)].add_subparsers(dest="action", metavar="ACTION",
                                                           help=argparse.SUPPRESS,
                                                           prog="%s %s" % (program, group))
        for words in COMMAND_HELP:
            if words[0] == group:
                add_command(line, actions_of, words)
    add_command(line, commands, ("doctor",))
    return line


def add_command(line, subparsers, words):
    usage, description, example = COMMAND_HELP[words]
    line.parser(words, subparsers, usage=("%(prog)s " + usage).rstrip(), description=description,
                epilog="example:\n  " + example)
    OPTIONS_OF[words](line, words)
    add_global_options(line, words)


def login_options(line, words):
    way = line.parsers[words].add_mutually_exclusive_group()
    line.option(words, way, "--device", action="store_true",
                help="a URL and a code to approve on any device\n(over SSH, without a display)")
    line.option(words, way, "--with-token", action="store_true",
                help="read an lbs_ token from stdin")
    line.option(words, line.parsers[words], "--no-browser", action="store_true",
                help="print the login URL, open no browser")


def status_options(line, words):
    line.option(words, line.parsers[words], "--min-valid", metavar="DURATION",
                type=min_valid_option,
                help="exit 3 when the session ends sooner than this (90s, 30m, 12h, 2d)")


def no_options(line, words):
    pass


def account_set_options(line, words):
    line.option(words, line.parsers[words], "account_id", metavar="ACCOUNT_ID",
                type=account_option, help="the account to use")


def start_options(line, words):
    parser = line.parsers[words]
    line.option(words, parser, "--json", metavar="PATH|-",
                help="the body: a file, or - for stdin (UTF-8, at most 1 MiB); required")
    line.option(words, parser, "--watch", action="store_true",
                help="then wait for the import, as wait does")
    line.option(words, parser, "--max-wait", metavar="DURATION", type=duration_option,
                help="with --watch: how long to wait (default 30m, at most 7d)")
    line.option(words, parser, "--dry-run", action="store_true",
                help="check the body, the session and the account as stored; send nothing")
    line.option(
        words,
        parser,
        "--idempotency-key",
        metavar="KEY",
        type=key_option,
        help="1 to 255 printable ASCII characters; a key seen in the last 24 hours\n"
        "gets its import back (default: a new random key)",
    )


def status_id_options(line, words):
    line.option(
        words,
        line.parsers[words],
        "import_ids",
        metavar="IMPORT_ID",
        type=import_id_option,
        nargs=1,
        help="the import",
    )


def wait_options(line, words):
    parser = line.parsers[words]
    line.option(words, parser, "import_ids", metavar="IMPORT_ID", type=import_id_option, nargs="+",
                help="the imports (at most 4 are read at a time)")
    line.option(words, parser, "--max-wait", metavar="DURATION", type=duration_option,
                help="give up with TIMEOUT after this long (default 30m, at most 7d)")


OPTIONS_OF = {
    ("auth", "login"): login_options,
    ("auth", "status"): status_options,
    ("auth", "logout"): no_options,
    ("account", "list"): no_options,
    ("account", "set"): account_set_options,
    ("contacts-import", "start"): start_options,
    ("contacts-import", "status"): status_id_options,
    ("contacts-import", "wait"): wait_options,
    ("doctor",): no_options,
}


def parse_args(argv):
    """The command line as a namespace, every check of it made before anything is sent; ShowText
    for --help, --version and a command line that stops at a level."""
    program = "landbase_import.py"
    if sys.argv and sys.argv[0]:
        program = os.path.basename(sys.argv[0])
    line = COMMAND_LINES.get(program)
    if line is None:                    # built once a process: a caller may run main() many times
        line = build_command_line(program)
        COMMAND_LINES[program] = line
    try:
        args, extra = line.parsers[()].parse_known_args(argv)
    except LandbaseError:
        refuse_unknown_options(line, argv)       # what threw the words off, if anything did
        raise
    words = tuple(word for word in (args.command, getattr(args, "action", None)) if word)
    take_extra_words(args, extra, line, words)
    if words not in COMMANDS:
        raise ShowText(line.parsers[words].format_help())
    args.words = words
    args.argv = list(argv)
    queries = (args.query or []) + (getattr(args, "query_after", None) or [])
    args.query = None
    if queries:
        args.query = ",".join(queries).split(",")
    return check_args(args, line.parsers[words])


def refuse_unknown_options(line, argv):
    """An option that no command has takes the word after it for a command word (--acount acc_1
    contacts-import ...): it, not the word, is the mistake to report."""
    known = line.all_options()
    for word in argv:
        if word == "--":
            return
        name = word.partition("=")[0]
        if name.startswith("--") and name not in known:
            line.parsers[()].error("unknown option %s%s" % (name, did_you_mean(name, known)))


def take_extra_words(args, extra, line, words):
    """What argparse left: more import ids after an option (wait 7 --max-wait 3h 8: 3.6 has no
    parse_intermixed_args), else a word or an option that is not this command's."""
    parser = line.parsers[words]
    for word in extra:
        if word.startswith("-") and word != "-":
            name = word.partition("=")[0]
            parser.error("unknown option %s%s" % (name, did_you_mean(name, line.options[words])))
        if words == ("contacts-import", "wait"):
            args.import_ids.append(import_id_value(word, parser))
        else:
            parser.error("unexpected argument %s" % shown(repr(word), 80))


def import_id_value(word, parser):
    try:
        return import_id_option(word)
    except argparse.ArgumentTypeError as exc:
        parser.error("argument IMPORT_ID: %s" % exc)


def check_args(args, parser):
    """The checks of the command line that argparse's types do not make, before anything is sent.
    """
    if args.words == ("contacts-import", "start") and args.json is None:
        parser.error("contacts-import start needs --json PATH (or - for stdin)")
    ids = getattr(args, "import_ids", None)
    if ids is not None and len(set(ids)) != len(ids):
        parser.error("an import id is given twice: %s" % " ".join(map(str, ids)))
    if args.words == ("contacts-import", "start") and args.max_wait is not None and not args.watch:
        parser.error("--max-wait bounds the wait of --watch: add --watch, or leave --max-wait out")
    if getattr(args, "max_wait", None) is None:
        args.max_wait = WAIT_LIMIT
    if args.query is not None:
        allowed = OUTPUT_KEYS[output_of(args)]
        for path in args.query:
            if path not in allowed:
                parser.error("--query %r is not in this command's output; it prints: %s"
                             % (path, ", ".join(allowed)))
    return args


def output_of(args):
    """The name of what a command prints, in OUTPUT_KEYS."""
    if args.words[0] != "contacts-import":
        return " ".join(args.words)
    if args.words[1] == "start" and args.dry_run:
        return "start --dry-run"
    if args.words[1] == "start" and not args.watch:
        return "start"
    return "wait"


# ---------------------------------------------------------------- main

# each command's function: a reader finds the callers of cmd_auth_login here
COMMANDS = {
    ("auth", "login"): cmd_auth_login,
    ("auth", "status"): cmd_auth_status,
    ("auth", "logout"): cmd_auth_logout,
    ("account", "list"): cmd_account_list,
    ("account", "set"): cmd_account_set,
    ("contacts-import", "start"): cmd_contacts_import_start,
    ("contacts-import", "status"): cmd_contacts_import_status,
    ("contacts-import", "wait"): cmd_contacts_import_wait,
    ("doctor",): cmd_doctor,
}


def _on_signal(signum, frame):
    """SIGINT, SIGTERM and SIGHUP stop the run: the first of them, until the run has its outcome
    (result or error) and no later, a second Ctrl-C or a SIGTERM right behind it changing nothing.
    Python may run a handler at the first instruction of another's (`frame`): the interrupted one
    came first."""
    if STOPPING:
        return
    if frame is not None and frame.f_code is _on_signal.__code__:
        return
    STOPPING.append(signum)
    if signum == signal.SIGINT:
        raise KeyboardInterrupt()
    raise Stopped(signum)


def main(argv=None):
    """Run one command; the exit code. Called as the program (argv None), it leaves the signals
    ignored: nothing may interrupt the exit; called by a caller that goes on (the tests), it puts
    theirs back."""
    console = Console()
    previous = {}
    del STOPPING[:]
    SECRETS.clear()                     # the secrets of this run (a caller may run main() again)
    try:
        try:
            # inside the try: a signal right after the first is reported
            for signum in STOP_SIGNALS:
                previous[signum] = signal.signal(signum, _on_signal)
        except (ValueError, OSError):
            pass                        # not the main thread (in-process tests)
        try:
            return run(argv, console)
        except LandbaseError as exc:
            return report(console, exc)
        except Exception as exc:        # the one boundary that turns a bug into an envelope
            return report(
                console,
                LandbaseError(
                    "API_ERROR",
                    "internal error: %s: %s (please report it)" % (type(exc).__name__, exc),
                ),
            )
    except (KeyboardInterrupt, Stopped) as exc:
        words = argv
        if words is None:
            words = sys.argv[1:]
        return report(console, stopped(exc, "run it again: " + command_again(words)))
    finally:
        restore_signals(previous, argv is None)


def run(argv, console):
    """Parse the command line and run its command with its console."""
    if argv is None:
        argv = sys.argv[1:]
    try:
        args = parse_args(argv)
    except ShowText as text:            # --help, --version, a command line that stops at a level
        write_stdout(str(text))
        return 0
    console.quiet = args.quiet
    console.verbose = args.verbose
    console.query = args.query
    remember_secret(os.environ.get("LANDBASE_ACCESS_TOKEN"))
    return COMMANDS[args.words](args, console)


def restore_signals(previous, ignore):
    for signum, handler in previous.items():
        if ignore:
            handler = signal.SIG_IGN
        try:
            signal.signal(signum, handler)
        except (ValueError, OSError, TypeError):
            pass


def report(console, exc):
    """The run's end on stderr: its error line and envelope. A run a signal stopped (a kill, a
    reboot) gives them STOPPED_WRITES_LIMIT seconds: a stderr pipe nobody reads would hold it
    forever, a second signal changing nothing. Then stderr is pointed at /dev/null, where the write
    under way ends."""
    STOPPING.append("report")
    if not exc.signum:
        console.failure(exc)
        return exc.exit_code
    try:
        previous = signal.signal(signal.SIGALRM, _on_stuck_stderr)
    except (ValueError, OSError, AttributeError):
        console.failure(exc)            # not the main thread (in-process tests), or no SIGALRM
        return exc.exit_code
    signal.setitimer(signal.ITIMER_REAL, STOPPED_WRITES_LIMIT)
    try:
        console.failure(exc)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    return exc.exit_code


def _on_stuck_stderr(signum, frame):
    """SIGALRM: the stopped run's last lines found no reader; the write that waits is retried
    (PEP 475) on /dev/null, and the interpreter's last flush goes there too."""
    _point_at_devnull(sys.stderr, 2)


if __name__ == "__main__":
    sys.exit(main())

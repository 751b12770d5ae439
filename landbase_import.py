#!/usr/bin/env python3
"""landbase-import: bulk-import a Landbase dataset's contacts into an account under a tag.

One file, standard library only, Python 3.6+. Copy it onto a host and run it:

    landbase_import.py auth login [--device | --with-token]     then: account list, account set ID
    landbase_import.py contacts-import start --json body.json --watch
    landbase_import.py contacts-import status 7 | wait 7 [8 ...]
    landbase_import.py doctor

`landbase_import.py --help` is the manual. stdout carries one JSON document on success (or --query's
text); progress, warnings and, on failure, a line naming the error and the one-line JSON envelope go to
stderr. Exit codes: 0 success; 1 the input or the setup is wrong; 2 the platform refused or failed, or an
import ended failed or partial; 3 log in again; 4 timeout or network; 130 Ctrl-C; 143 SIGTERM; 129 SIGHUP.
"""

import base64
import collections
import contextlib
import itertools
import json
import operator
import os
import re
import shlex
import signal
import stat
import sys
import threading
import time
import unicodedata
import urllib.parse

__version__ = "1.1.0"

DEFAULT_API_URL = "https://api.landbase.com"
DEFAULT_WEB_URL = "https://platform.landbase.com"
CLIENT_ID = "landbase-cli"
SESSION_FILE = "platform.json"
SESSION_LIFETIME = 7 * 24 * 3600        # what a login grants; --with-token's guess if the platform is silent
SESSION_WARN_BELOW = 24 * 3600          # warn when less than this is left
LOCK_WAIT = 10                          # seconds a writer of platform.json waits for another one
CLOCK_SKEW = 5 * 60                     # doctor: a larger difference from the platform's clock is a warning

DEFAULT_TIMEOUT = 30.0                  # seconds per request (--timeout)
MAX_TIMEOUT = 3600
RETRY_DELAYS = (5, 10, 20)              # one-shot commands: three retries
RETRY_AFTER_CAP = 300                   # a longer Retry-After ends a one-shot command
POLL_DELAYS = (5, 10)                   # then POLL_EVERY, until WAIT_LIMIT
POLL_EVERY = 20
WAIT_LIMIT = 30 * 60                    # --max-wait's default
MAX_WAIT_LIMIT = 7 * 24 * 3600          # and its largest value
REDRAW_EVERY = 1                        # seconds between redraws of a terminal's progress line
BAR_WIDTH = 20                          # the progress bar's widest; it shrinks first on a narrow terminal
MAX_POLLS_IN_FLIGHT = 4                 # wait with many ids
LOGIN_LIMIT = 5 * 60                    # browser login, from the moment it starts
CALLBACK_CONNECTION_TIMEOUT = 10        # seconds one connection to the login callback may take
DEVICE_LIMIT = 15 * 60                  # device login, whatever expiresIn says
DEVICE_INTERVAL = 5                     # the device flow polls this often unless the server says otherwise,
DEVICE_INTERVALS = (1, 60)              # and never outside these bounds
MAX_REDIRECTS = 5

MAX_BODY_BYTES = 1024 * 1024            # the body of start --json, and platform.json
MAX_ANSWER_BYTES = 4 * 1024 * 1024      # an answer from the platform
MAX_JSON_DIGITS = 40                    # a longer integer in any JSON document is refused,
MAX_JSON_DEPTH = 64                     # and a deeper document,
MAX_JSON_VALUES = 100000                # and one of more values: memory stays small whatever a server sends
EXCERPT_WINDOW = 64 * 1024              # what is quoted of an answer comes from its first characters only
MAX_DATASET_ID = 200
MAX_TAG_NAME = 100
MAX_IMPORT_ID = 2 ** 63 - 1
BODY_KEYS = ("datasetId", "tagName", "importId")
COUNT_KEYS = ("total", "imported", "skipped", "failed")
TIME_RE = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.[0-9]+)?"
                     r"(?:[Zz]|\+00:00)?\Z")
ACCOUNT_ID_RE = re.compile(r"[A-Za-z0-9_-]{1,64}\Z")
IMPORT_ID_RE = re.compile(r"[0-9]{1,19}\Z")
TOKEN_RE = re.compile(r"lbs_[^\s\"',;&()<>\\\u2026]+")       # \u2026: not the redacted form again
REDACTED = "lbs_\u2026(redacted)"

TERMINAL_PHASES = ("completed", "partial", "failed")   # any other phase is in flight

EXIT_CODES = {"INVALID_INPUT": 1, "VALIDATION_ERROR": 1, "SETUP_FAILED": 1, "NOT_FOUND": 2, "CONFLICT": 2,
              "API_ERROR": 2, "RATE_LIMITED": 2, "UPGRADE_REQUIRED": 2, "IMPORT_FAILED": 2,
              "IMPORT_PARTIAL": 2,
              "OUTPUT_FAILED": 2, "AUTH_REQUIRED": 3, "AUTH_FAILED": 3, "TIMEOUT": 4, "NETWORK_ERROR": 4,
              "INTERRUPTED": 130, "TERMINATED": 143}       # 128 + the signal's number: 129 for SIGHUP
# the tool's own codes: never taken from a server's envelope (its status decides instead)
LOCAL_CODES = ("INVALID_INPUT", "SETUP_FAILED", "AUTH_REQUIRED", "OUTPUT_FAILED", "INTERRUPTED", "TERMINATED")
STATUS_CODES = {400: "VALIDATION_ERROR", 422: "VALIDATION_ERROR", 401: "AUTH_FAILED", 403: "NOT_FOUND",
                404: "NOT_FOUND", 409: "CONFLICT", 426: "UPGRADE_REQUIRED", 429: "RATE_LIMITED"}
STOP_SIGNALS = [getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name)]


# ---------------------------------------------------------------- errors

class LandbaseError(Exception):
    """The one error type: a stable code, a message, meta; the exit code follows from the code."""

    def __init__(self, code, message, meta=None, transient=False, retry_after=None, server_code=None,
                 signum=None):
        Exception.__init__(self, message)
        self.code = code
        self.message = message
        self.meta = meta or {}
        self.transient = transient          # worth another try later
        self.retry_after = retry_after      # seconds the server asked us to wait
        self.server_code = server_code      # the code in the server's envelope, known or not
        self.signum = signum                # the signal that stopped the run: its exit is 128 + its number
        self.unsure = transient             # whether the platform may have acted on the request (Api.call)

    @property
    def exit_code(self):
        return 128 + self.signum if self.signum else EXIT_CODES.get(self.code, 2)


class Stopped(BaseException):
    """Stopped(signum): raised by _on_signal for SIGTERM and SIGHUP (SIGINT raises KeyboardInterrupt), so
    that cleanup runs and the run reports the signal."""


def stopped(exc, message, meta=None):
    """The error of a run a signal stopped: INTERRUPTED for Ctrl-C, TERMINATED for SIGTERM and SIGHUP."""
    signum = exc.args[0] if isinstance(exc, Stopped) else signal.SIGINT
    meta = dict(meta or {}, signal=signal.Signals(signum).name)
    return LandbaseError("INTERRUPTED" if signum == signal.SIGINT else "TERMINATED",
                         "%s (%s)" % (message, meta["signal"]), meta, signum=signum)


# ---------------------------------------------------------------- what may be printed

SECRETS = set()     # the tokens of this run (stored, from the environment or stdin, granted by a login) and
                    # the proxy's password: redacted wherever they would be printed, whatever their characters


def remember_secret(value):
    if isinstance(value, str) and value.strip():
        SECRETS.update((value, value.strip()))
    return value


def redact(text, pattern=False):
    """text without a known secret in it, as it is or hidden in escapes (JSON's, HTML's, percent-encoding:
    then the text is shown decoded, the secret redacted); with `pattern`, for what a server sends, without
    anything shaped like lbs_… either (never the user's own words, shown as they are sent)."""
    text = _without_secrets(text)
    if SECRETS and any(mark in text for mark in ("\\", "&", "%", "+")):
        for decoded in unescaped(text):
            if any(secret in decoded for secret in SECRETS):
                text = _without_secrets(decoded)
                break
    return TOKEN_RE.sub(REDACTED, text) if pattern else text


def _without_secrets(text):
    for secret in sorted(SECRETS, key=len, reverse=True):      # the longest first: one may hold another
        text = text.replace(secret, REDACTED)
    return text


JSON_ESCAPE_RE = re.compile(r'\\(?:u([0-9a-fA-F]{4})|(["\\/bfnrt]))')


def unescaped(text):
    """text with what may hide a token decoded, step by step: JSON's escapes, HTML's entities, then
    percent-encoding (a token may hold what a later step decodes)."""
    import html
    text = JSON_ESCAPE_RE.sub(lambda m: chr(int(m.group(1), 16)) if m.group(1)
                              else " " if m.group(2) in "bfnrt" else m.group(2), text)
    yield text
    text = html.unescape(text)
    yield text
    yield urllib.parse.unquote_plus(text)


def printable(text):
    """text on one line, every control character (newlines and terminal escapes among them) replaced."""
    return "".join(ch if ch.isprintable() else "\ufffd" for ch in text)


def redact_values(value, clean=False, pattern=False):
    """A JSON document with every string in it (keys too) redacted, and printable with `clean`, so that it
    stays valid JSON."""
    if isinstance(value, str):
        return printable(redact(value, pattern)) if clean else redact(value, pattern)
    if isinstance(value, list):
        return [redact_values(item, clean, pattern) for item in value]
    if isinstance(value, dict):
        return {redact_values(str(key), clean, pattern): redact_values(item, clean, pattern)
                for key, item in value.items()}
    return value


def excerpt(raw, limit=200):
    """At most `limit` characters of text a server sent (an answer, a message, a header), on one line,
    redacted (see redact); a long one is quoted from its first EXCERPT_WINDOW characters, less what could be
    the start of a secret cut in two."""
    text = raw[:EXCERPT_WINDOW]
    text = text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)
    if len(raw) > EXCERPT_WINDOW:
        text = text[:len(text) - 6 * max(map(len, SECRETS), default=0)]       # \uXXXX: 6 a character
    return printable(" ".join(redact(text, pattern=True).split())[:limit]) or "(empty body)"


def shown(text, limit=200):
    """At most `limit` characters of the tool's or the user's text (a path, a URL, a value), printable."""
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
STOPPING = []       # once a run has its outcome (a signal, its result, its error), signals are ignored


class Console:
    """stderr for people and logs. Every character written passes through redact() and printable(); a closed
    stderr is silent. A log (not a terminal, or TERM=dumb) gets one line per event, each beginning with
    its UTC time, written when it happens; a terminal gets plain lines and progress redrawn in place on one
    line that is never wider than the terminal."""

    def __init__(self, quiet=False, verbose=False, stream=None, query=None):
        self.stream = sys.stderr if stream is None else stream     # None when stderr was closed (2>&-)
        self.quiet, self.verbose, self.query = quiet, verbose, query     # query: --query's paths, or None
        self.tty = _isatty(self.stream) and os.environ.get("TERM") != "dumb"
        self.color = self.tty and bool(os.environ.get("NO_COLOR", "") == "")    # no-color.org: set, not empty
        self.drawn, self.warned = 0, set()     # the columns of the redrawn line on screen; warnings given

    def result(self, doc, meta=None):
        """The command's result on stdout: its one JSON document, or --query's text (see write_stdout);
        `meta` names what the command did, for OUTPUT_FAILED. From here on, signals change nothing."""
        STOPPING.append("result")
        self.end_progress()
        doc = redact_values(doc)
        text = json.dumps(doc, ensure_ascii=True, allow_nan=False) + "\n"
        write_stdout(query_text(doc, self.query) if self.query else text, meta, doc)

    def line(self, text):
        self.end_progress()
        stamp = "" if self.tty else format_time(CLOCK.wall()) + " "
        self._write(stamp + printable(redact(text)) + "\n")

    def warn(self, text):
        if text not in self.warned:     # once a run, whatever reads the file again
            self.warned.add(text)
            self.line("warning: " + text)

    def debug(self, text):
        if self.verbose:
            self.line(text)

    def failure(self, error):
        """The end of a failed run: a line naming the code, the exit and the message (and the command that
        resumes a wait), then the envelope: the last line, pure JSON, every string in it redacted."""
        resume = error.meta.get("resume")
        self.line("error %s (exit %d): %s%s" % (error.code, error.exit_code, error.message,
                                                ". Resume with: %s" % resume if resume else ""))
        doc = {"error": {"code": error.code, "message": error.message, "meta": error.meta}}
        self._write(json.dumps(redact_values(doc, True), ensure_ascii=True, default=str) + "\n")

    def redraw(self, text, phase=None):
        """Progress on a terminal: `text` (ASCII, cut to the width) drawn over the line drawn before. A
        narrower terminal has folded that line onto several rows: the cursor goes up to its first row."""
        columns = self.width()
        text = terminal_text(text)[:columns - 1]
        up = (self.drawn - 1) // columns if self.drawn else 0
        color = {"completed": "32", "partial": "33", "failed": "31"}.get(phase) if self.color else None
        self._write("\r" + ("\x1b[%dA" % up if up else "") + "\x1b[J"
                    + ("\x1b[%sm%s\x1b[0m" % (color, text) if color else text))
        self.drawn = len(text)

    def end_progress(self):
        if self.drawn:
            self.drawn = 0
            self._write("\n")

    def width(self):
        """The columns of the terminal stderr is on (not stdout's: `x=$(… wait 7)` is the usual case);
        COLUMNS, then 80, where it does not say (a pseudo-terminal nobody sized says 0)."""
        try:
            columns = os.get_terminal_size(self.stream.fileno()).columns
        except (AttributeError, ValueError, OSError):
            columns = 0
        if columns <= 0:
            columns = os.environ.get("COLUMNS", "")
            columns = int(columns) if re.match(r"[0-9]{1,4}\Z", columns) else 80
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
    """--query: the values at `paths`, tab-separated, one line per entry of an array. Strings raw (on one
    printable line), numbers and booleans as JSON, null empty, objects and arrays as compact JSON."""
    def field(value, path):
        for key in path.split("."):
            value = value.get(key) if isinstance(value, dict) else None
        return "" if value is None else printable(value) if isinstance(value, str) else \
            json.dumps(value, ensure_ascii=True, allow_nan=False, separators=(",", ":"))
    return "".join("\t".join(field(entry, path) for path in paths) + "\n"
                   for entry in (doc if isinstance(doc, list) else [doc]))


def write_stdout(text, meta=None, doc=None):
    """Write stdout, in UTF-8 whatever the locale (cron's LANG=C). A reader that left (| head) ends it
    quietly; any other failure is OUTPUT_FAILED, which carries what could not be printed (`doc`, already
    redacted), so that nothing is lost."""
    try:
        if sys.stdout is None:
            raise OSError("stdout is closed")
        buffer = getattr(sys.stdout, "buffer", None)
        if buffer is None:
            sys.stdout.write(text)
        else:                           # a write a signal cut short says so: what is left is written too
            sys.stdout.flush()
            data = memoryview(text.encode("utf-8", "surrogateescape"))
            while data:
                data = data[buffer.write(data) or 0:]
        (buffer or sys.stdout).flush()
    except BrokenPipeError:
        _silence_stdout()
    except (OSError, ValueError, AttributeError) as exc:
        _silence_stdout()
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        shown_doc = json.dumps(doc, ensure_ascii=True, allow_nan=False) if doc is not None else ""
        raise LandbaseError("OUTPUT_FAILED", "the command did its work but stdout could not be written (%s)%s"
                            % (reason, "; the result was: " + shown_doc[:2000] if shown_doc else ""), meta)


def _silence_stdout():
    """Point fd 1 at /dev/null, so that the interpreter's last flush cannot fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno() if sys.stdout is not None else 1)
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass


# ---------------------------------------------------------------- strict JSON

class StrictJSONError(ValueError):
    """A document that strict JSON refuses; `key` names a duplicated key."""

    def __init__(self, message, key=None):
        ValueError.__init__(self, message)
        self.key = key


def parse_json(raw):
    """The one JSON reader, for input bodies, platform.json and every answer alike: UTF-8 (one BOM
    tolerated), no duplicate keys, no NaN/Infinity, no number too large to print back, no nesting deeper
    than MAX_JSON_DEPTH, no more than MAX_JSON_VALUES values. Linear in the size of `raw`. StrictJSONError."""
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise StrictJSONError("not UTF-8 (byte 0x%02x at offset %d)" % (raw[exc.start], exc.start))
    shape = _refused_shape(raw)
    if shape:
        raise StrictJSONError(shape)
    hooks = {"object_pairs_hook": _refuse_duplicates, "parse_constant": _refuse_constant}
    if LONG_NUMBER_RE.search(raw):      # a call a number: only where a number may be too long
        hooks.update(parse_float=_finite_float, parse_int=_bounded_int)
    import gc
    collect = gc.isenabled()
    gc.disable()                # a million small containers: the collector would make it slower, not safer
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


def _refused_shape(raw):
    """What refuses a document before it is parsed, by whole-buffer operations only (no regular expression,
    no loop a character): more values than MAX_JSON_VALUES (a million empty objects in 4 MiB would take
    100 MiB), or brackets outside strings nested deeper than MAX_JSON_DEPTH (on 3.12+ the parser accepts
    documents deeper than Python's recursion limit lets anything walk afterwards); else None."""
    if raw.count(b"[") + raw.count(b"{") <= MAX_JSON_DEPTH and raw.count(b",") < MAX_JSON_VALUES:
        return None
    bare = raw.replace(b"\\\\", b"").replace(b'\\"', b"")          # escaped quotes gone
    if bare.count(b'"') > 4 * MAX_JSON_VALUES + 2:     # a value holds two strings at most (a key and
        return "more than %d values" % MAX_JSON_VALUES      # its value): no split into a million pieces
    outside = b"".join(bare.split(b'"')[::2])                       # strings gone
    steps = outside.translate(BRACKET_STEPS, NOT_BRACKETS)      # 2 for [ {, 0 for ] }: depth = sum - count
    steps = steps[:2 * MAX_JSON_VALUES]         # past this, there are too many values anyway
    if max(map(operator.sub, itertools.accumulate(steps), itertools.count(1)), default=0) > MAX_JSON_DEPTH:
        return "nested deeper than %d levels" % MAX_JSON_DEPTH
    if outside.count(b",") + outside.count(b"[") + outside.count(b"{") >= MAX_JSON_VALUES:
        return "more than %d values" % MAX_JSON_VALUES
    return None


def _refuse_duplicates(pairs):
    seen = dict(pairs)
    if len(seen) < len(pairs):
        keys = [key for key, _ in pairs]
        key = next(key for index, key in enumerate(keys) if key in keys[:index])
        raise StrictJSONError("duplicate key %r" % key, key)
    return seen


def _refuse_constant(name):
    raise StrictJSONError("%s is not allowed (only finite numbers)" % name)


LONG_NUMBER_RE = re.compile(rb"[0-9]{%d}|[eE][-+]?0*[1-9][0-9]{2}" % (MAX_JSON_DIGITS + 1))  # else finite
BRACKET_STEPS = bytes.maketrans(b"[{]}", b"\x02\x02\x00\x00")
NOT_BRACKETS = bytes(sorted(set(range(256)) - set(b"[]{}")))


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
    """Seconds since the epoch for an RFC 3339 UTC time such as 2026-12-05T10:00:00Z; ValueError otherwise.
    (By hand: time.strptime would import _strptime, calendar and datetime on every command.)"""
    match = TIME_RE.match(text.strip()) if isinstance(text, str) else None
    if not match:
        raise ValueError("not a time like 2026-12-05T10:00:00Z: %r" % (text,))
    year, month, day, hour, minute, second = (int(group) for group in match.groups())
    leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
    days_in_month = (31, 29 if leap else 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
    if not (1 <= month <= 12 and 1 <= day <= days_in_month[month - 1] and hour < 24 and minute < 60
            and second <= 60):
        raise ValueError("not a valid time: %r" % text)
    shifted = year - (month <= 2)                # days since 1970-01-01 in the proleptic Gregorian calendar
    era, year_of_era = shifted // 400, shifted % 400
    day_of_year = (153 * (month - 3 if month > 2 else month + 9) + 2) // 5 + day - 1
    days = era * 146097 + year_of_era * 365 + year_of_era // 4 - year_of_era // 100 + day_of_year - 719468
    return days * 86400 + hour * 3600 + minute * 60 + second


def is_time(value):
    try:
        return parse_time(value) is not None
    except ValueError:
        return False


def parse_duration(text, option):
    """Seconds in 90, 90s, 30m, 12h or 2d; INVALID_INPUT naming the option otherwise."""
    match = re.match(r"\s*([0-9]{1,9})\s*([smhd]?)\s*\Z", text or "")
    if not match:
        raise LandbaseError("INVALID_INPUT", "%s takes a duration such as 90s, 30m, 12h or 2d, not %s"
                            % (option, shown(repr(text), 80)))
    return int(match.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[match.group(2)]


def format_span(seconds):
    """Seconds in their two largest units, the second left out when nought: 45s, 1m30s, 30m, 1d02h, 7d."""
    seconds = int(min(max(0, seconds), 10 ** 9)) if seconds == seconds else 0
    for big, small, names in ((86400, 3600, "dh"), (3600, 60, "hm"), (60, 1, "ms")):
        if seconds >= big:
            rest = seconds % big // small
            return "%d%s" % (seconds // big, names[0]) + ("%02d%s" % (rest, names[1]) if rest else "")
    return "%ds" % seconds


# The credentials for one call: the token, its source ("env" or "file"), its end (epoch seconds, or None),
# the active account, and the SETUP_FAILED of a stored account id that is none, for commands that need one.
Session = collections.namedtuple("Session", "token source expires_at account_id account_error")


class SessionStore:
    """platform.json, the official CLI's file: private, written atomically under a lock, unknown keys kept;
    the session and the one rule for the active account (--account, LANDBASE_ACCOUNT_ID, the file)."""

    def __init__(self, directory=None):
        self.directory = directory or os.environ.get("LANDBASE_CONFIG_DIR") \
            or os.path.join(os.path.expanduser("~"), ".landbase")
        self.path = os.path.join(self.directory, SESSION_FILE)

    def load(self, console=None):
        """The stored object ({} when there is none); a damaged file is SETUP_FAILED naming it."""
        raw, mode = self._read()
        if raw is None:
            return {}
        if console is not None and os.name == "posix" and mode & 0o077:
            console.warn("%s is open to group or others; run: chmod 600 %s" % (self.path, self.path))
        fix = "; fix it, or remove it and run: landbase_import.py auth login"
        try:
            data = parse_json(raw) if raw.strip() else None
        except StrictJSONError as exc:
            raise LandbaseError("SETUP_FAILED", "%s is damaged: %s%s" % (self.path, exc, fix))
        if not isinstance(data, dict):
            raise LandbaseError("SETUP_FAILED", "%s is empty%s" % (self.path, fix) if not raw.strip() else
                                "%s must hold a JSON object, not %s%s" % (self.path, json_type(data), fix))
        for key in ("accessToken", "expiresAt", "accountId", "deviceName"):
            if data.get(key) is not None and not isinstance(data[key], str):
                raise LandbaseError("SETUP_FAILED", "%s: %s must be a string%s" % (self.path, key, fix))
        remember_secret(data.get("accessToken"))
        if data.get("expiresAt") is not None and not is_time(data["expiresAt"]):
            raise LandbaseError("SETUP_FAILED", "%s: expiresAt %s is not a time like 2026-12-05T10:00:00Z%s"
                                % (self.path, shown(repr(data["expiresAt"]), 80), fix))
        return data

    def _read(self):
        """(bytes, mode) of the file, or (None, None) when there is none. Opened without blocking and
        refused unless it is a regular file: a FIFO in its place must not hang every command."""
        try:
            with os.fdopen(os.open(self.path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0)), "rb") as handle:
                mode = os.fstat(handle.fileno()).st_mode
                if not stat.S_ISREG(mode):
                    raise LandbaseError("SETUP_FAILED", "%s is not a regular file; remove it and run: "
                                        "landbase_import.py auth login" % self.path)
                raw = handle.read(MAX_BODY_BYTES + 1)
        except FileNotFoundError:
            return None, None
        except OSError as exc:
            raise LandbaseError("SETUP_FAILED", "cannot read %s: %s" % (self.path, exc.strerror or exc))
        if len(raw) > MAX_BODY_BYTES:
            raise LandbaseError("SETUP_FAILED", "%s is larger than 1 MiB: not a session file" % self.path)
        return raw, mode

    def session(self, account_override, console):
        """The session for this call: AUTH_REQUIRED without one, AUTH_FAILED past expiresAt; nothing sent."""
        stored = self.load(console)
        token = os.environ.get("LANDBASE_ACCESS_TOKEN", "").strip()
        source = "env" if token else "file"
        token = token or stored.get("accessToken") or ""
        if not token:
            raise LandbaseError("AUTH_REQUIRED", "not logged in: run landbase_import.py auth login "
                                "(or set LANDBASE_ACCESS_TOKEN)")
        if not usable_token(token):
            raise LandbaseError("INVALID_INPUT" if source == "env" else "SETUP_FAILED", "%s is not a usable "
                                "token (printable ASCII only): %s" % (
                                    ("LANDBASE_ACCESS_TOKEN", "set it to the token itself") if source == "env"
                                    else (self.path + ": accessToken", "run: landbase_import.py auth login")))
        expires_at = None
        if stored.get("expiresAt") and stored.get("accessToken") == token:
            expires_at = parse_time(stored["expiresAt"])
            if expires_at <= CLOCK.wall():
                raise LandbaseError("AUTH_FAILED", "the session expired at %s: run landbase_import.py auth "
                                    "login" % stored["expiresAt"], {"expiresAt": stored["expiresAt"]})
            warn_if_ending(expires_at, console)
        account_id, error = account_override or os.environ.get("LANDBASE_ACCOUNT_ID"), None
        if account_id:
            check_account_id(account_id, "--account" if account_override else "LANDBASE_ACCOUNT_ID")
        elif stored.get("accountId") is not None and not ACCOUNT_ID_RE.match(stored["accountId"]):
            error = LandbaseError("SETUP_FAILED", "%s: accountId %s is not an account id; choose one with: "
                                  "landbase_import.py account set <accountId> (see: account list)"
                                  % (self.path, shown(repr(stored["accountId"]), 80)))
        else:
            account_id = stored.get("accountId")
        return Session(token, source, expires_at, account_id or None, error)

    def update(self, changes, console=None, replace_damaged=False):
        """Read, change and write back under the lock; keys this tool does not know are kept. `changes` may
        be a function of the stored object."""
        with self.locked():
            try:
                data = self.load(console)
            except LandbaseError:
                if not replace_damaged:
                    raise
                if console is not None:
                    console.warn("replacing the damaged %s" % self.path)
                data = {}
            data.update(changes(data) if callable(changes) else changes)
            self._save(data)
        return data

    def remove(self):
        with self.locked():
            try:
                os.remove(self.path)
                return True
            except FileNotFoundError:
                return False
            except OSError as exc:
                raise LandbaseError("SETUP_FAILED", "cannot remove %s: %s; remove it by hand"
                                    % (self.path, exc.strerror or exc))

    @contextlib.contextmanager
    def locked(self):
        """The lock every change of the file is made under (a file beside it, never removed), waited for
        at most LOCK_WAIT seconds: flock on POSIX, msvcrt.locking on Windows; closing it releases it."""
        self._make_directory()
        try:
            fd = os.open(self.path + ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise LandbaseError("SETUP_FAILED", "cannot lock %s: %s" % (self.path, exc.strerror or exc))
        try:
            ends = time.monotonic() + LOCK_WAIT
            while not _try_lock(fd):
                if time.monotonic() > ends:
                    raise LandbaseError("SETUP_FAILED", "another process has been changing %s for %ds; try "
                                        "again" % (self.path, LOCK_WAIT))
                time.sleep(0.05)
            yield
        finally:
            os.close(fd)

    def _save(self, data):
        """Write atomically: a reader, or a crash at any point, sees the old file or the new one. The file is
        synced before the rename, else a crash could leave the new name on an empty file. Writers hold the
        lock, so one temporary name serves: a writer killed mid-write leaves it for the next to replace."""
        tmp = self.path + ".tmp"
        payload = (json.dumps(data, indent=2, ensure_ascii=True, allow_nan=False) + "\n").encode("ascii")
        try:
            with contextlib.suppress(FileNotFoundError):
                os.remove(tmp)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
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
            raise LandbaseError("SETUP_FAILED", "cannot write %s: %s" % (self.path, exc.strerror or exc))

    def _make_directory(self):
        """The config directory, made 0700 (its parents too) when it is missing; the mode of a directory the
        tool did not make is left alone, and a file in its place is refused."""
        if os.path.isdir(self.directory):
            return
        if os.path.lexists(self.directory):
            raise LandbaseError("SETUP_FAILED", "%s is not a directory; LANDBASE_CONFIG_DIR names the "
                                "directory platform.json goes in" % self.directory)
        try:
            os.makedirs(self.directory, 0o700)
            os.chmod(self.directory, 0o700)     # makedirs' mode meets the umask
        except FileExistsError:
            pass                                # another process made it first
        except OSError as exc:
            raise LandbaseError("SETUP_FAILED", "cannot create %s: %s"
                                % (self.directory, exc.strerror or exc))


def _try_lock(fd):
    """Take the lock on fd without waiting; whether it was taken."""
    try:
        import fcntl
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except ImportError:
        import msvcrt
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
    except OSError:
        return False
    return True


def warn_if_ending(expires_at, console):
    left = expires_at - CLOCK.wall()
    if left < SESSION_WARN_BELOW:
        console.warn("the session expires in %s (%s): run landbase_import.py auth login soon"
                     % (format_span(left), format_time(expires_at)))


def require_account(session):
    if session.account_error is not None:
        raise session.account_error
    if not session.account_id:
        raise LandbaseError("INVALID_INPUT", "No account id: run landbase_import.py account set <accountId> "
                            "(see account list), or pass --account=<id>")
    return session.account_id


def check_account_id(value, what="account id"):
    if not isinstance(value, str) or not ACCOUNT_ID_RE.match(value):
        raise LandbaseError("INVALID_INPUT", "%s %s is not valid: use 1 to 64 letters, digits, _ or -"
                            % (what, shown(repr(value), 80)))
    return value


def is_import_id(value):
    """An import id as the platform holds it: a positive whole number (not true, not 7.0) of 63 bits."""
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value <= MAX_IMPORT_ID


def check_import_id(value):
    if not IMPORT_ID_RE.match(value) or not 0 < int(value) <= MAX_IMPORT_ID:
        raise LandbaseError("INVALID_INPUT", "import id %s is not valid: it is a positive whole number such "
                            "as 7" % shown(repr(value), 80))
    return int(value)


# ---------------------------------------------------------------- HTTP

def base_url(env_name, default):
    """A base URL from the environment, refused unless it is https on Landbase (or http on loopback)."""
    url = os.environ.get(env_name) or default
    try:
        parts = urllib.parse.urlsplit(url)
        host = (parts.hostname or "").lower()
        parts.port                      # raises ValueError for a bad port
    except ValueError as exc:
        raise LandbaseError("INVALID_INPUT", "%s=%s is not a valid URL (%s)" % (env_name, shown(url), exc))
    if parts.scheme not in ("http", "https") or not host or parts.username or parts.query or parts.fragment \
            or any(ch.isspace() or not ch.isprintable() for ch in url):
        raise LandbaseError("INVALID_INPUT", "%s=%s is not an http(s) base URL" % (env_name, shown(url)))
    if parts.scheme == "http" and not is_loopback(url):
        raise LandbaseError("INVALID_INPUT", "%s=%s: https is required except on loopback" % (env_name, url))
    if not (host == "landbase.com" or host.endswith(".landbase.com") or is_loopback(url)) \
            and os.environ.get("LANDBASE_ALLOW_CUSTOM_API_URL") != "1":
        raise LandbaseError("INVALID_INPUT", "%s=%s: the host %s is not landbase.com or loopback; set "
                            "LANDBASE_ALLOW_CUSTOM_API_URL=1 to send your credentials there"
                            % (env_name, url, host))
    return url.rstrip("/")


def is_loopback(url):
    return (urllib.parse.urlsplit(url).hostname or "").lower() in ("localhost", "127.0.0.1", "::1")


def same_origin(url_a, url_b):
    """Whether two URLs share scheme, host and port; ValueError for a port out of range."""
    a, b = urllib.parse.urlsplit(url_a), urllib.parse.urlsplit(url_b)
    default = {"http": 80, "https": 443}
    return ((a.scheme, (a.hostname or "").lower(), a.port or default.get(a.scheme))
            == (b.scheme, (b.hostname or "").lower(), b.port or default.get(b.scheme)))


class Proxy(collections.namedtuple("Proxy", "url where variable")):
    """The proxy a request goes through: its URL (for urllib), `where` (host:port, never its credentials)
    and the variable it came from."""

    def __str__(self):
        return "the proxy %s (%s)" % (self.where, self.variable)


def proxy_for(base):
    """The Proxy for requests to `base`, or None: https_proxy or HTTPS_PROXY for an https base, unless
    NO_PROXY covers its host; never for loopback (plain http with a token must not leave the host); ALL_PROXY
    is not read. urllib speaks only http:// to a proxy, so https:// (where the user wants the credentials
    kept from the wire) and socks are INVALID_INPUT before anything is sent, as is a URL that does not parse,
    which is named by its variable alone: its pieces may be a password."""
    if not base.startswith("https:") or is_loopback(base):
        return None
    import urllib.request
    variable = next((name for name in ("https_proxy", "HTTPS_PROXY") if os.environ.get(name)), None)
    if variable is None or urllib.request.proxy_bypass_environment(urllib.parse.urlsplit(base).hostname):
        return None
    url = os.environ[variable].strip()
    url = url if "://" in url else "http://" + url
    scheme = url.split("://", 1)[0].lower()
    if scheme != "http":
        raise LandbaseError("INVALID_INPUT", "%s is a %s:// proxy, which this tool cannot speak without "
                            "sending its credentials in clear: only http:// proxies are supported (the "
                            "tunnel to the platform is TLS either way)" % (variable, shown(scheme, 20)))
    try:
        parts = urllib.parse.urlsplit(url)
        host, port = parts.hostname, parts.port
        remember_secret(parts.password)
        remember_secret(urllib.parse.unquote(parts.password or ""))
    except ValueError:
        host = None
    if not host or parts.path not in ("", "/") or parts.query or parts.fragment:
        raise LandbaseError("INVALID_INPUT", "%s is not a proxy URL that can be read: write it as http://"
                            "[user:password@]host:port, with @ : / %% in the password percent-encoded (%%40 "
                            "%%3A %%2F %%25)" % variable)
    return Proxy(url, "%s:%d" % (host, port or 80), variable)


def parse_retry_after(headers, data):
    """Seconds from Retry-After (seconds or an HTTP date) and error.meta.retry_after_seconds, the larger."""
    found = []
    value = (headers.get("Retry-After") or "").strip() if headers is not None else ""
    if re.match(r"[0-9]+\Z", value):                # ASCII digits only: "²".isdigit() is true
        found.append(int(value) if len(value) < 10 else 10 ** 9)
    elif value:
        from email.utils import parsedate_tz, mktime_tz
        try:
            parsed = parsedate_tz(value)
            if parsed:
                found.append(min(10 ** 9, max(0, int(mktime_tz(parsed) - CLOCK.wall()))))
        except (TypeError, ValueError, OverflowError, IndexError):
            pass                        # an unreadable date: the loop's own schedule applies
    error = data.get("error") if isinstance(data, dict) else None
    meta = error.get("meta") if isinstance(error, dict) else None
    if isinstance(meta, dict):
        seconds = meta.get("retry_after_seconds")
        if is_number(seconds) and seconds >= 0:
            found.append(int(min(seconds, 10 ** 9) + 0.999))
    return max(found) if found else None


def retry_wait(error, planned, longest=None, transient=None):
    """The one retry decision (one-shot retries, the poller, the device flow): the seconds to wait after
    `error`, or None to give up. `planned` is the loop's next wait (None: no try left); a longer Retry-After
    is honoured up to `longest`; `transient` says an answer is worth waiting on ("authorization pending")."""
    if not (error.transient if transient is None else transient) or planned is None:
        return None
    wait = planned if error.retry_after is None else max(planned, error.retry_after)
    return None if longest is not None and wait > longest else wait


def in_background(target, *args):
    """A daemon thread running target(*args) that never takes SIGINT, SIGTERM or SIGHUP: only the main thread
    does, so that signals sent together are taken in the kernel's order, not in the order threads race."""
    mask = getattr(signal, "pthread_sigmask", None)         # not on Windows
    before = mask and mask(signal.SIG_BLOCK, STOP_SIGNALS)  # the thread starts with the mask of its parent
    try:
        thread = threading.Thread(target=target, args=args, daemon=True)
        thread.start()
    finally:
        if mask:
            mask(signal.SIG_SETMASK, before)
    return thread


class Deadline:
    """--timeout over a whole request, connect to last byte: then its sockets are shut down, so that a server
    dripping a byte at a time cannot stretch it (a socket's own timeout bounds each read, not the request)."""

    def __init__(self, seconds):
        self.seconds, self.expired, self.lock, self.sockets = seconds, False, threading.Lock(), []
        self.over = threading.Event()

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

    def __enter__(self):
        in_background(lambda: self.over.wait(self.seconds) or self.expire())
        return self

    def __exit__(self, *exc):
        self.over.set()
        with self.lock:
            for sock in self.sockets:
                sock.close()
            self.sockets = []


def tls_context():
    """The verifying TLS context: the system store, or SSL_CERT_FILE, which must be a regular file (a FIFO
    would hang the load, before any request's deadline)."""
    import ssl
    cafile = os.environ.get("SSL_CERT_FILE")
    try:
        if cafile and not stat.S_ISREG(os.stat(cafile).st_mode):
            raise OSError(0, "not a regular file: point it at a PEM bundle of CA certificates")
        return ssl.create_default_context(cafile=cafile or None)       # a file with no certificate fails
    except (OSError, ValueError) as exc:
        raise LandbaseError("SETUP_FAILED", "SSL_CERT_FILE=%s cannot be used: %s"
                            % (shown(cafile), getattr(exc, "strerror", None) or exc))


def _opener(base, proxy):
    """One opener a process: no redirect followed by urllib, each socket watched by its request's Deadline,
    a verifying TLS context for https only (the CA store costs ~35 ms), the proxy proxy_for() chose."""
    import socket
    import http.client
    import urllib.request

    def watched(connection_class):
        class Watched(connection_class):
            def __init__(self, *args, **kwargs):
                deadline = kwargs.pop("deadline")
                connection_class.__init__(self, *args, **kwargs)
                self._create_connection = lambda *a, **k: deadline.watch(socket.create_connection(*a, **k))
        return Watched
    plain, secure = watched(http.client.HTTPConnection), watched(http.client.HTTPSConnection)

    class NoRedirects(urllib.request.HTTPRedirectHandler):
        """Follow nothing, read no Location: Api.once() judges redirects itself."""

        def http_error_302(self, req, fp, code, msg, headers):
            return None                 # the default error handler then raises HTTPError 30x
        http_error_301 = http_error_303 = http_error_307 = http_error_308 = http_error_302

    class HTTPHandler(urllib.request.HTTPHandler):
        def http_open(self, req):
            return self.do_open(plain, req, deadline=req.deadline)

    class HTTPSHandler(urllib.request.HTTPSHandler):
        def https_open(self, req):
            return self.do_open(secure, req, context=self._context, deadline=req.deadline)

    context = tls_context() if base.startswith("https:") else object()     # no CA store for http: never used
    return urllib.request.build_opener(NoRedirects(), HTTPHandler(), HTTPSHandler(context=context),
                                       urllib.request.ProxyHandler({"https": proxy.url} if proxy else {}))


class Api:
    """The one way to talk to the platform: timeout, headers, token, proxy, JSON, error mapping, retries."""

    def __init__(self, base, token=None, timeout=DEFAULT_TIMEOUT, console=None):
        self.base = base
        self.token = token
        self.timeout = timeout
        self.console = console or Console()
        self.proxy = proxy_for(base)
        self._opener = None

    def call(self, method, path, body=None, auth=True, retry=True, headers=None, check=None, timeout=None):
        """The decoded answer of a 2xx, through check(data, headers) (a broken one is retried like a 5xx);
        else the error, `unsure` when an attempt failed so that the platform may have acted on it."""
        delays = iter(RETRY_DELAYS if retry else ())
        unsure, attempt = False, 0
        while True:
            try:
                return self.once(method, path, body, auth, headers, check, timeout)
            except LandbaseError as exc:
                unsure = unsure or exc.transient
                planned = next(delays, None)
                wait = retry_wait(exc, planned, RETRY_AFTER_CAP)
                if wait is None:
                    if exc.transient and planned is not None and exc.retry_after is not None:
                        exc = LandbaseError(exc.code, "%s; the platform asked to wait %s, longer than the %s "
                                            "a one-shot command waits: run it again later" % (
                                                exc.message, format_span(exc.retry_after),
                                                format_span(RETRY_AFTER_CAP)), exc.meta, True)
                    exc.unsure = unsure
                    raise exc
                attempt += 1
                self.console.line("%s %s failed (%s: %s); retry %d of %d in %ds"
                                  % (method, path, exc.code, exc.message, attempt, len(RETRY_DELAYS), wait))
                CLOCK.sleep(wait)

    def once(self, method, path, body=None, auth=True, headers=None, check=None, timeout=None):
        """One request, with the same-origin redirects it meets, its answer judged."""
        url = self.base + path
        data = None if body is None else json.dumps(body, ensure_ascii=True, allow_nan=False).encode("ascii")
        for hop in range(MAX_REDIRECTS + 1):
            shown = redact(url, pattern=True) if hop else url      # a redirect's URL is the server's text
            status, answer_headers, raw = self.send(method, url, data, auth, headers or {},
                                                    timeout or self.timeout, shown)
            if status in (301, 302, 303, 307, 308):
                url, method, data = self._redirect(url, method, data, status, answer_headers, shown)
                continue
            answer = self._decode(method, path, status, answer_headers, raw)
            answer = check(answer, answer_headers) if check is not None else answer     # what is kept is
            return answer if path == "/v1/oauth/token" else redact_values(answer, pattern=True)  # redacted
        raise LandbaseError("API_ERROR", "%s %s: more than %d redirects" % (method, path, MAX_REDIRECTS))

    def _redirect(self, url, method, data, status, headers, shown):
        location = (headers.get("Location") or "").strip()
        where = "%s %s: HTTP %d" % (method, shown, status)
        try:
            target = urllib.parse.urljoin(url, location)
            usable = location and not any(ch.isspace() or not ch.isprintable() for ch in target) \
                and urllib.parse.urlsplit(target).username is None
            same = usable and same_origin(url, target)
        except ValueError:
            usable = False
        if not usable:
            raise LandbaseError("API_ERROR", "%s with a Location that is not a usable URL (%s)"
                                % (where, excerpt(location, 100)), {"status": status}, transient=True)
        if not same:
            raise LandbaseError("API_ERROR", "%s: refused a redirect to another origin (%s); the token is "
                                "never sent there" % (where, excerpt(target)), {"status": status})
        if status in (307, 308) or method == "GET":
            return target, method, data if status in (307, 308) else None
        raise LandbaseError("API_ERROR", "%s: refused the redirect of a %s" % (where, method))

    def send(self, method, url, data, auth, headers, timeout, shown=None):
        """(status, headers, body) of one exchange, read against a Deadline and at most MAX_ANSWER_BYTES."""
        import http.client
        import urllib.request
        import urllib.error
        if self._opener is None:
            self._opener = _opener(self.base, self.proxy)
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
        shown_url = shown or url        # how the URL is printed (see once())
        self.console.debug("> %s %s%s" % (method, shown_url, " (Authorization: Bearer %s)" % REDACTED
                                          if auth and self.token else ""))
        self.console.debug("> through %s" % (self.proxy,) if self.proxy else "> no proxy")
        for name, value in sorted(headers.items()):
            self.console.debug("> %s: %s" % (name, value))
        if data is not None and "/oauth/" not in url:
            self.console.debug("> " + data.decode("ascii"))
        started = CLOCK.now()
        where = "%s %s" % (method, shown_url)
        request.deadline = deadline = Deadline(timeout)
        try:
            with deadline:
                try:
                    response = self._opener.open(request, timeout=timeout)
                except urllib.error.HTTPError as exc:
                    response = exc
                with response:
                    status, answer_headers = response.getcode(), response.headers
                    raw = read_answer(response, where)
        except LandbaseError:
            raise
        except urllib.error.URLError as exc:
            raise self._transport_error(where, exc.reason, deadline.expired, timeout)
        except (OSError, http.client.HTTPException, ValueError) as exc:
            raise self._transport_error(where, exc, deadline.expired, timeout)
        if deadline.expired:            # what was read before the deadline may look complete: it is not
            raise self._transport_error(where, None, True, timeout)
        self.console.debug("< HTTP %d in %d ms" % (status, (CLOCK.now() - started) * 1000))
        if "/oauth/" not in url:
            self.console.debug("< " + excerpt(raw, 500))
        return status, answer_headers, raw

    def _transport_error(self, where, reason, expired, timeout):
        """The error of an exchange that got no answer: what failed, through which proxy, what to check."""
        import socket
        import ssl
        where += " (through %s)" % (self.proxy,) if self.proxy else ""
        if expired or isinstance(reason, socket.timeout):
            return LandbaseError("TIMEOUT", "%s: no complete answer within %gs (%s)" % (where, timeout, (
                "--timeout" if timeout == self.timeout else "what was left of --max-wait")), {}, True)
        text = str(reason) or type(reason).__name__
        refused = re.match(r"Tunnel connection failed: (40[137])", text)
        if self.proxy and refused:      # the configuration is wrong: waiting will not change it
            return LandbaseError("NETWORK_ERROR", "%s: the proxy refused the tunnel (%s): check the user and "
                                 "password in %s (percent-encoded), that the proxy allows port %d, or "
                                 "NO_PROXY" % (where, excerpt(text, 80), self.proxy.variable,
                                               urllib.parse.urlsplit(self.base).port or 443),
                                 {"status": int(refused.group(1))})
        verify = getattr(reason, "verify_code", None)
        if verify is not None or isinstance(reason, ssl.CertificateError) or "CERTIFICATE_VERIFY" in text:
            hint = "the certificate chain is not acceptable here (Python 3.13 checks more strictly)"
            if verify in (2, 18, 19, 20, 21):
                hint = "the issuer is not trusted: the certificate must be trusted by the system store or " \
                       "SSL_CERT_FILE (a TLS-inspecting proxy's CA, say)"
            elif verify is None and "hostname" not in text:         # 3.6 does not say which check failed
                hint = "it expired (check the clock), or is for another name, or its issuer is not " \
                       "trusted (the system store or SSL_CERT_FILE must trust it)"
            elif verify in (9, 10):
                hint = "the certificate is not valid now: check this host's clock (landbase_import.py doctor)"
            elif verify in (62, 64) or "hostname" in text:
                hint = "the certificate is for another name than %s" % self.base.split("/")[2]
            return LandbaseError("NETWORK_ERROR", "%s: TLS failed (%s); %s" % (
                where, excerpt(getattr(reason, "verify_message", None) or text), hint))
        if isinstance(reason, ValueError) and not isinstance(reason, ssl.SSLError):
            return LandbaseError("API_ERROR", "%s: a malformed answer (%s)" % (where, excerpt(text)), {},
                                 True)
        return LandbaseError("NETWORK_ERROR", "%s: %s; check the network%s, or run landbase_import.py doctor"
                             % (where, excerpt(text), " and " + str(self.proxy) if self.proxy else ""),
                             {}, True)

    def _decode(self, method, path, status, headers, raw):
        """The JSON of a 2xx (once() redacts what its check keeps: the fields of a token answer are checked to
        the letter); for another status a LandbaseError, its code from the envelope or the status."""
        where = "%s %s" % (method, path)
        data = None
        if raw.strip():
            try:
                data = parse_json(raw)
            except StrictJSONError as exc:
                if 200 <= status < 300:
                    raise LandbaseError("API_ERROR", "%s: HTTP %d with a body that is not strict JSON (%s): "
                                        "%s" % (where, status, exc, excerpt(raw)), {"status": status}, True)
        if 200 <= status < 300:
            return data
        error = data.get("error") if isinstance(data, dict) else None
        error = error if isinstance(error, dict) else {}
        server_code = error.get("code") if isinstance(error.get("code"), str) else None
        code = server_code if server_code in EXIT_CODES and server_code not in LOCAL_CODES \
            else STATUS_CODES.get(status, "API_ERROR")
        message = error.get("message")
        message = "%s: %s" % (where, excerpt(message, 300)) if isinstance(message, str) and message \
            else "%s: HTTP %d: %s" % (where, status, excerpt(raw))
        meta = error["meta"] if isinstance(error.get("meta"), dict) else {}
        meta = {key: value for key, value in meta.items()         # but for the keys that are the tool's
                if key not in ("resume", "signal", "idempotencyKey", "importIds", "serverCode")}
        meta = dict(redact_values(meta, pattern=True), status=status)
        raise LandbaseError(code, message + ("; run landbase_import.py auth login" if status == 401 else ""),
                            meta, status == 429 or status >= 500, parse_retry_after(headers, data),
                            server_code)


def read_answer(response, where):
    """The body, read in chunks; past MAX_ANSWER_BYTES it is a broken answer and is not read further."""
    chunks, size = [], 0
    while True:
        chunk = response.read(65536)
        if not chunk:
            left = getattr(response, "length", None)      # what Content-Length promised and never came
            if isinstance(left, int) and left > 0:
                raise LandbaseError("NETWORK_ERROR", "%s: the connection closed %d bytes before the end of "
                                    "the answer" % (where, left), transient=True)
            return b"".join(chunks)
        size += len(chunk)
        if size > MAX_ANSWER_BYTES:
            raise LandbaseError("API_ERROR", "%s: the answer is larger than %d MiB; it was not read further"
                                % (where, MAX_ANSWER_BYTES // (1024 * 1024)), transient=True)
        chunks.append(chunk)


def usable_token(token):
    """Whether a token can travel in an Authorization header: printable ASCII."""
    return isinstance(token, str) and 0 < len(token.strip()) and len(token) <= 4096 \
        and all(" " <= ch <= "~" for ch in token)


def api_for(args, console, token=None):
    return Api(base_url("LANDBASE_PLATFORM_API_URL", DEFAULT_API_URL), token, args.timeout, console)


# ---------------------------------------------------------------- the answers a server sends

def is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == value \
        and value not in (float("inf"), float("-inf"))


def _optional(test):
    return lambda value: value is None or test(value)


def _is_account_id(value):
    return isinstance(value, str) and ACCOUNT_ID_RE.match(value) is not None


STRING = (lambda value: isinstance(value, str), "a string")
OPTIONAL_STRING = (_optional(STRING[0]), "a string or null")
OPTIONAL_OBJECT = (_optional(lambda value: isinstance(value, dict)), "an object or null")
COUNT = (_optional(lambda value: type(value) is int), "an integer or null")
# what each answer must hold, field by field (a dotted field is looked up inside its object, if there is one)
ANSWERS = {
    "status": dict([("phase", (lambda value: isinstance(value, str) and value != "", "a non-empty string")),
                    ("percent", (_optional(lambda value: is_number(value) and 0 <= value <= 100),
                                 "a number from 0 to 100 or null")), ("counts", OPTIONAL_OBJECT)]
                   + [("counts." + key, COUNT) for key in COUNT_KEYS] + [
                       ("error", OPTIONAL_OBJECT), ("error.code", OPTIONAL_STRING),
                       ("error.message", OPTIONAL_STRING)]),
    "start": {"importId": (is_import_id, "a positive integer"), "runRef": STRING},
    "me": {"userId": OPTIONAL_STRING, "email": OPTIONAL_STRING, "expiresAt": OPTIONAL_STRING},
    "device": {"deviceCode": STRING, "userCode": STRING, "verificationUri": STRING},
    "token": {"accessToken": (lambda value: usable_token(value) and TOKEN_RE.fullmatch(value) is not None,
                              "an lbs_ token"),
              "expiresAt": (is_time, "a time like 2026-12-05T10:00:00Z"),
              "accountId": (_optional(_is_account_id), "an account id or null")},
    "accounts": {"accounts": (lambda value: isinstance(value, list) and all(
        isinstance(entry, dict) and _is_account_id(entry.get("id")) and OPTIONAL_STRING[0](entry.get("name"))
        for entry in value), "a list of {id: an account id (1 to 64 letters, digits, _ or -), name}")},
}


def expect(kind, where, also=()):
    """The check of a 2xx answer of `kind` (see ANSWERS): the fields it names and `also` (nothing else is
    kept), or a transient API_ERROR naming the first field that breaks the contract."""
    def check(data, headers=None):
        if not isinstance(data, dict):
            raise contract_error(where, "the body", data, "an object")
        if kind == "token":
            remember_secret(data.get("accessToken"))        # a token a login grants is never printed
        for field, (test, expected) in ANSWERS[kind].items():
            value = data
            for key in field.split("."):
                value = value.get(key) if isinstance(value, dict) else None
            if not test(value):
                raise contract_error(where, field, "(hidden)" if field == "accessToken" else value, expected)
        return {key: data.get(key) for key in [field.split(".")[0] for field in ANSWERS[kind]] + list(also)}
    return check


def contract_error(where, field, value, expected):
    return LandbaseError("API_ERROR", "%s: the answer broke the contract: %s is %s, expected %s"
                         % (where, field, excerpt(json.dumps(value), 60), expected), transient=True)


def count_of(counts, key):
    value = counts.get(key) if isinstance(counts, dict) else None
    return value if is_number(value) else None


def fetch_status(api, account_id, import_id, retry=True, timeout=None):
    """The five keys of an import's status (an answer about another import is a broken one)."""
    where = "import %d status" % import_id

    def check(data, headers):
        expect("status", where)(data)
        if data.get("importId") != import_id or isinstance(data.get("importId"), bool):
            raise contract_error(where, "importId", data.get("importId"), "%d" % import_id)
        return {key: data.get(key) for key in ("importId", "phase", "percent", "counts", "error")}
    try:
        return api.call("GET", "/v1/accounts/%s/contacts-imports/%d" % (account_id, import_id), retry=retry,
                        check=check, timeout=timeout)
    except LandbaseError as exc:
        exc.meta["importId"] = import_id
        if exc.code == "NOT_FOUND":
            exc.message += " (if %s is not the right account, see: landbase_import.py account list)" \
                % account_id
        raise


def fetch_accounts(api, retry=True):
    check = expect("accounts", "GET /v1/accounts")
    return api.call("GET", "/v1/accounts", retry=retry, check=lambda data, headers: [
        {"id": entry["id"], "name": entry.get("name")} for entry in check(data)["accounts"]])


def fetch_me(api):
    return api.call("GET", "/v1/me", check=expect("me", "GET /v1/me"))


# ---------------------------------------------------------------- the import poller

def poll_delays():
    """5 s, 10 s, then 20 s for ever: the waits between status reads."""
    return itertools.chain(POLL_DELAYS, itertools.repeat(POLL_EVERY))


class Tracker:
    """One import being waited on: its schedule, its last snapshot (or the error that ended it), its ETA."""

    def __init__(self, import_id, now):
        self.import_id, self.delays = import_id, poll_delays()
        self.due = now                  # when it is polled next
        self.status, self.polled = None, None   # the last snapshot, and when it was read
        self.error = None               # the permanent error that ended this id (NOT_FOUND and the like)
        self.first_seen = None          # (time, percent) of the first in_progress reading

    @property
    def phase(self):
        return self.status["phase"] if self.status is not None else None

    @property
    def done(self):
        return self.error is not None or self.phase in TERMINAL_PHASES

    @property
    def outcome(self):
        """The code this id ends a wait with; None when it completed."""
        if self.error is not None:
            return self.error.code
        return {"completed": None, "partial": "IMPORT_PARTIAL", "failed": "IMPORT_FAILED"}.get(self.phase,
                                                                                               "TIMEOUT")

    def entry(self):
        """Its place in the output: the last snapshot, or phase null and the error that ended it."""
        if self.status is not None and self.error is None:
            return self.status
        error = {"code": self.error.code, "message": self.error.message} if self.error is not None else None
        return {"importId": self.import_id, "phase": None, "percent": None, "counts": None, "error": error}

    def observe(self, status, now):
        self.status, self.polled = status, now
        if status["phase"] == "in_progress" and is_number(status["percent"]) and self.first_seen is None:
            self.first_seen = (now, status["percent"])

    def eta(self, now):
        """Seconds left at the rate observed so far, counting down between polls; None until a rate is known,
        and for a rate so slow that the end is out of sight."""
        percent = self.status["percent"] if self.status is not None else None
        if self.first_seen is None or not is_number(percent) or self.done:
            return None
        started, first = self.first_seen
        if self.polled <= started or percent <= first:
            return None
        left = (100 - percent) * (self.polled - started) / (percent - first) - (now - self.polled)
        return max(0.0, left) if left < MAX_WAIT_LIMIT * 100 else None


def progress_line(tracker, now):
    """The log form of a reading: import 7: in_progress 42% (… of 1000 rows); next poll in 20s"""
    status, counts = tracker.status, tracker.status["counts"]
    parts = ", ".join("%d %s" % (count_of(counts, key), key) for key in ("imported", "skipped", "failed")
                      if count_of(counts, key) is not None)
    if count_of(counts, "total") is not None:
        parts += "%s%d rows" % (" of " if parts else "", count_of(counts, "total"))
    percent = "%d%%" % status["percent"] if is_number(status["percent"]) else "--%"
    parts = " (%s)" % parts if parts else ""
    return "import %d: %s %s%s%s" % (tracker.import_id, status["phase"], percent, parts,
                                     "" if tracker.done else "; next poll in %ds" % until(tracker.due, now))


def terminal_line(trackers, now, room):
    """The redrawn form, in ASCII (so that a character is a column) and at most `room` columns. One import:
    `import 7 [#####-----] 42% in_progress 410/1000 rows ETA 2m10s | next poll in 5s`; the bar shrinks
    first, then the countdown, the ETA and the rows go, in that order. Several: the imports by phase."""
    pending = [t for t in trackers if not t.done]
    countdown = " | next poll in %ds" % until(min(t.due for t in pending), now) if pending else ""
    if len(trackers) > 1:
        phases = [terminal_text(t.phase) if t.status else "error" if t.error else "waiting" for t in trackers]
        counted = ", ".join("%d %s" % (phases.count(p), p) for p in sorted(set(phases), key=phases.index))
        return ("%d imports: %s" % (len(trackers), counted) + countdown)[:room]
    tracker, counts = trackers[0], trackers[0].status["counts"]
    percent = tracker.status["percent"] if is_number(tracker.status["percent"]) else None
    done = [count_of(counts, key) for key in ("imported", "skipped", "failed")]
    rows = " %d/%d rows" % (sum(n or 0 for n in done), counts["total"]) \
        if count_of(counts, "total") is not None else ""
    rows += ", %d failed" % done[2] if rows and done[2] else ""
    eta = tracker.eta(now)
    extras = [rows, " ETA %s" % format_span(eta) if eta is not None else "", countdown]
    head = "import %d " % tracker.import_id
    tail = "%s %s" % ("%d%%" % percent if percent is not None else "--%", terminal_text(tracker.phase))
    while extras and len(head + tail + "".join(extras)) + 8 > room:        # room for a bar of 5 at least
        extras.pop()
    width = min(BAR_WIDTH, room - len(head + tail + "".join(extras)) - 3)
    filled = int(width * percent / 100) if percent is not None else 0
    bar = "[%s%s] " % ("#" * filled, "-" * (width - filled)) if width >= 5 else ""
    return (head + bar + tail + "".join(extras))[:room]


def terminal_text(text):
    """text for the redrawn line: ASCII, so that a character is a column, printable and redacted."""
    return printable(redact(text)).encode("ascii", "replace").decode("ascii")


def until(when, now):
    return max(0, int(when - now + 0.999))


def show_progress(console, trackers, now, tracker=None):
    """A reading (of `tracker`) or a tick of the clock: a line in the log form, or the redrawn line."""
    if console.quiet:
        return
    if console.tty:
        console.redraw(terminal_line(trackers, now, console.width() - 1),
                       trackers[0].phase if len(trackers) == 1 else None)
    elif tracker is not None:
        console.line(progress_line(tracker, now))


def poll_until_terminal(api, account_id, trackers, console, limit):
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
                poll_round(api, account_id, trackers, due, console, deadline)
                continue
            wake = min(min(t.due for t in pending), deadline)
            while now < wake:
                if console.tty and any(t.status for t in trackers):
                    show_progress(console, trackers, now)
                CLOCK.sleep(min(REDRAW_EVERY, wake - now) if console.tty else wake - now)
                now = CLOCK.now()
    finally:
        console.end_progress()


def poll_round(api, account_id, trackers, due, console, deadline):
    """Read the imports that are due, and plan each one's next read: the one retry decision decides
    after a failure. AUTH_FAILED ends the whole wait; another permanent error ends that id only."""
    for tracker, (status, error) in zip(due, poll_batch(api, account_id, due, deadline)):
        now = CLOCK.now()
        if status is None and error is None:
            continue                    # not read: the wait's time was up before its turn came
        if error is not None and not isinstance(error, LandbaseError):
            raise error                 # a bug, for main()'s boundary to report
        if error is not None:
            if error.code == "AUTH_FAILED":
                raise error
            wait = retry_wait(error, next(tracker.delays))
            if wait is None:
                tracker.error = error
                if len(trackers) > 1:
                    console.line("import %d: %s (%s); not polled again"
                                 % (tracker.import_id, error.message, error.code))
                continue
            tracker.due = now + wait
            console.line("import %d: poll failed (%s: %s); next poll in %ds"
                         % (tracker.import_id, error.code, error.message, wait))
            continue
        tracker.observe(status, now)
        if not tracker.done:
            tracker.due = now + next(tracker.delays)
        show_progress(console, trackers, now, tracker)


def poll_batch(api, account_id, trackers, deadline):
    """(status, error) for each tracker, MAX_POLLS_IN_FLIGHT requests at most at a time, each bounded by
    --timeout or what is left of --max-wait; daemon threads (Ctrl-C waits for none) that hand all back."""
    def poll(tracker):
        left = deadline - CLOCK.now()
        if left <= 0:
            return None, None           # not read: the wait is over
        try:
            return fetch_status(api, account_id, tracker.import_id, False, min(api.timeout, left)), None
        except Exception as exc:        # to the main thread, which raises what is not a LandbaseError
            return None, exc
    if len(trackers) == 1:
        return [poll(trackers[0])]
    results = [None] * len(trackers)
    todo = list(enumerate(trackers))

    def work():
        while True:
            try:
                index, tracker = todo.pop()     # atomic (the Python FAQ): each tracker goes to one worker
            except IndexError:
                return
            results[index] = poll(tracker)
    for worker in [in_background(work) for _ in range(min(MAX_POLLS_IN_FLIGHT, len(todo)))]:
        worker.join()
    return results


def import_meta(import_ids, single):
    """The one builder of the error meta that names imports: importId for one, importIds for several."""
    return {"importId": import_ids[0]} if single else {"importIds": list(import_ids)}


def wait_and_report(api, account_id, import_ids, console, limit):
    """Wait, then print the final status (or the array of every id's last-known state, always, but on
    AUTH_FAILED), and return 0 when every import completed; otherwise raise the error of the first id, in
    the order given, that did not. A signal ends the wait with the command that resumes it."""
    single = len(import_ids) == 1       # the output's shape: one status, or an array of them
    trackers = [Tracker(import_id, CLOCK.now()) for import_id in import_ids]
    try:
        poll_until_terminal(api, account_id, trackers, console, limit)
        stop = None
    except (KeyboardInterrupt, Stopped) as exc:
        running = [t.import_id for t in trackers if not t.done] or import_ids
        stop = stopped(exc, "the wait was stopped; " + keep_running(running),
                       dict(import_meta(running, single), resume=resume_command(account_id, running)))
    first = next((t for t in trackers if t.outcome is not None), None)
    code = stop.code if stop is not None else first.outcome if first is not None else None
    if not single or stop is not None or code in (None, "IMPORT_FAILED", "IMPORT_PARTIAL", "TIMEOUT"):
        console.result(trackers[0].entry() if single else [t.entry() for t in trackers],
                       import_meta(import_ids, single))
    if stop is not None:
        raise stop
    if first is None:
        return 0
    alike = [t for t in trackers if t.outcome == first.outcome]
    meta = import_meta([t.import_id for t in alike], single)
    more = " (and %d more)" % (len(alike) - 1) if len(alike) > 1 else ""
    if first.outcome == "TIMEOUT":
        meta["resume"] = resume_command(account_id, [t.import_id for t in alike])
        raise LandbaseError("TIMEOUT", "gave up after %s (--max-wait); %s" % (format_span(limit),
                                                                             keep_running(alike)), meta)
    if first.error is not None:
        meta = dict({k: v for k, v in first.error.meta.items() if k != "importId"}, **meta)
        raise LandbaseError(first.outcome, first.error.message + more, meta)
    detail = first.status["error"].get("message") if isinstance(first.status["error"], dict) else None
    raise LandbaseError(first.outcome, "import %d ended %s%s%s" % (first.import_id, first.phase, ": %s" % (
        excerpt(detail)) if isinstance(detail, str) else "", more), meta)


def keep_running(imports):
    return "the import%s running on Landbase" % (" keeps" if len(imports) == 1 else "s keep")


def resume_command(account_id, import_ids):
    """The exact command that resumes a wait, as this process was called."""
    words = [program_path(), "contacts-import", "wait"] + [str(i) for i in import_ids]
    return " ".join(shlex.quote(word) for word in words + ["--account=" + account_id])


def program_path():
    return sys.argv[0] if sys.argv and sys.argv[0] else "landbase_import.py"


# ---------------------------------------------------------------- input body

def read_import_body(source):
    """The validated body of `start --json` (a path, or - for stdin): INVALID_INPUT naming the field for
    anything off."""
    name = "stdin" if source == "-" else source
    try:
        if source == "-":
            stream = getattr(sys.stdin, "buffer", sys.stdin)
            if stream is None:
                raise LandbaseError("INVALID_INPUT", "stdin is closed: --json - reads the body from stdin")
            raw = stream.read(MAX_BODY_BYTES + 1)
            raw = raw.encode("utf-8", "surrogateescape") if isinstance(raw, str) else raw
        elif not source:
            raise LandbaseError("INVALID_INPUT", "--json takes a path, or - for stdin, not an empty string")
        else:
            with open(source, "rb") as handle:
                raw = handle.read(MAX_BODY_BYTES + 1)
    except (OSError, ValueError) as exc:
        hint = "; --json takes a path or -, not the JSON itself: echo '{...}' | landbase_import.py " \
            "contacts-import start --json -" if source.lstrip().startswith(("{", "[")) else ""
        raise LandbaseError("INVALID_INPUT", "cannot read --json %s: %s%s" % (
            shown(source, 80), exc.strerror if isinstance(exc, OSError) and exc.strerror else exc, hint))
    if len(raw) > MAX_BODY_BYTES:
        raise LandbaseError("INVALID_INPUT", "the body in %s is larger than 1 MiB" % name)
    if not raw.strip() or raw.strip() == b"\xef\xbb\xbf":
        raise LandbaseError("INVALID_INPUT", "%s is empty: expected a JSON object with datasetId and tagName"
                            % name)
    try:
        body = parse_json(raw)
    except StrictJSONError as exc:
        if exc.key is not None:
            raise LandbaseError("INVALID_INPUT", "duplicate key %r in the body" % exc.key, {"field": exc.key})
        raise LandbaseError("INVALID_INPUT", ("%s is %s" if str(exc).startswith("not ") else "%s: %s")
                            % (name, exc))
    if not isinstance(body, dict):
        raise LandbaseError("INVALID_INPUT", "%s must be a JSON object with datasetId and tagName, not %s"
                            % (name, json_type(body)))
    return check_import_body(body)


def json_type(value):
    return "null" if value is None else "a boolean" if isinstance(value, bool) else "a number" \
        if isinstance(value, (int, float)) else "a string" if isinstance(value, str) else "an array" \
        if isinstance(value, list) else "an object"


def check_import_body(body):
    def invalid(field, message):
        return LandbaseError("INVALID_INPUT", "%s %s" % (field, message), {"field": field})
    for key in body:
        if key not in BODY_KEYS:
            raise invalid(key, "is not a known key%s; the body takes datasetId, tagName and importId"
                          % did_you_mean(key.replace("_", "").replace("-", ""), BODY_KEYS))
    for key, example in (("datasetId", 'the dataset to import, e.g. "ds_def456"'),
                         ("tagName", "the tag to put on the imported contacts")):
        if key not in body:
            raise invalid(key, "is required (%s)" % example)
        if not isinstance(body[key], str):
            raise invalid(key, "must be a string, not %s" % json_type(body[key]))
    dataset_id, tag_name = body["datasetId"], body["tagName"]
    if not 1 <= len(dataset_id) <= MAX_DATASET_ID:
        raise invalid("datasetId", "must not be empty" if not dataset_id else "is %d characters; at most %d"
                      % (len(dataset_id), MAX_DATASET_ID))
    for ch in dataset_id:
        if ch.isspace() or unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Zs", "Zl", "Zp"):
            raise invalid("datasetId", "must not contain whitespace or control characters (found U+%04X)"
                          % ord(ch))
    if not 1 <= len(tag_name) <= MAX_TAG_NAME:
        raise invalid("tagName", "is %d characters; it takes 1 to %d" % (len(tag_name), MAX_TAG_NAME))
    if not tag_name.strip():
        raise invalid("tagName", "must not be blank")
    if any("\ud800" <= ch <= "\udfff" for ch in tag_name):
        raise invalid("tagName", "is not valid Unicode (a lone surrogate)")
    import_id = body.get("importId", 1)
    if not is_import_id(import_id):
        raise invalid("importId", "must be a positive integer such as 7, not %s (omit it to start a new "
                      "import)" % (import_id if type(import_id) is int else json_type(import_id)))
    return {key: body[key] for key in BODY_KEYS if key in body}


def did_you_mean(word, choices):
    """ (did you mean 'x'?) with the nearest of `choices` to what was typed: one it begins, or one close
    to it whatever the case; nothing when none is near."""
    import difflib
    folded = {choice.lower(): choice for choice in choices}
    close = [c for c in sorted(choices, key=len) if word and c.startswith(word)] + [
        folded[c] for c in difflib.get_close_matches(word.lower(), sorted(folded), n=1, cutoff=0.6)]
    return " (did you mean %r?)" % close[0] if close else ""


# ---------------------------------------------------------------- login

def login_browser(args, console, api):
    """Authorization code + PKCE S256 through a loopback listener; the token answer. The 5 minutes start
    now, and the browser runs on its own: it neither holds the login back nor writes on our streams."""
    import hashlib
    import secrets
    import socket
    deadline = CLOCK.now() + LOGIN_LIMIT
    web = base_url("LANDBASE_PLATFORM_WEB_URL", DEFAULT_WEB_URL)
    listener = CallbackListener(secrets.token_urlsafe(32))
    verifier = secrets.token_urlsafe(64)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    query = urllib.parse.urlencode([("client_id", CLIENT_ID), ("response_type", "code"),
                                    ("redirect_uri", listener.redirect_uri), ("state", listener.state),
                                    ("code_challenge", challenge), ("code_challenge_method", "S256"),
                                    ("device_name", socket.gethostname())])
    url = "%s/cli/authorize?%s" % (web, query)
    warn_if_proxied_callback(console)
    try:
        console.line("Open this URL in a browser on this machine to sign in:" if args.no_browser else
                     "Opening the browser to sign in. If it does not open, visit:")
        console.line("  " + url)
        if not args.no_browser and not open_browser(url):
            console.line("No browser could be opened; visit the URL above, or use: auth login --device")
        CLOCK.wait_event(listener.done, deadline - CLOCK.now())
    finally:
        listener.stop()
    result = listener.result
    if result is None:
        raise LandbaseError("TIMEOUT", "no answer from the browser within %d minutes; run auth login again "
                            "(or auth login --device)" % (LOGIN_LIMIT // 60))
    if "error" in result:
        raise LandbaseError("AUTH_FAILED", "the login was refused in the browser (%s)"
                            % excerpt(result["error"], 80))
    body = {"grant_type": "authorization_code", "client_id": CLIENT_ID, "code": result["code"],
            "code_verifier": verifier, "redirect_uri": listener.redirect_uri}
    return exchange_token(api, body)


def open_browser(url):
    """Start the browser on `url` and return at once: BROWSER (commands, %s for the URL, as the webbrowser
    module reads it) or, without it, what the webbrowser module finds, run by a child interpreter. Its
    streams go nowhere: a launcher's "Opening in existing browser session." must not reach our stdout."""
    import subprocess
    commands = [shlex.split(entry) for entry in os.environ.get("BROWSER", "").split(os.pathsep)
                if entry.strip()]
    if not commands:
        os.environ.pop("BROWSER", None)         # a blank one, which the webbrowser module cannot read
        import webbrowser
        try:
            webbrowser.get()
        except webbrowser.Error:
            return False
        commands = [[sys.executable, "-m", "webbrowser", "-t"]]
    for command in commands:
        argv = [word.replace("%s", url) for word in command] if "%s" in " ".join(command) else command + [url]
        try:
            subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, start_new_session=True)
            return True
        except (OSError, ValueError):
            continue
    return False


def warn_if_proxied_callback(console):
    """A browser that honours http_proxy sends the login's answer to 127.0.0.1 through the proxy, which
    cannot reach it: say so before the 5 minutes are spent."""
    import urllib.request
    if (os.environ.get("http_proxy") or os.environ.get("HTTP_PROXY")) \
            and not urllib.request.proxy_bypass_environment("127.0.0.1"):
        console.warn("HTTP_PROXY is set and NO_PROXY does not cover 127.0.0.1: a browser that uses the "
                     "proxy cannot bring the login back. Set NO_PROXY=127.0.0.1,localhost, or use: "
                     "auth login --device")


class CallbackListener:
    """http://127.0.0.1:{port}/callback: takes one answer whose state matches, then stops. A thread and a
    time limit a connection, so that no local client holds the browser's answer back; nothing printed."""

    def __init__(self, state):
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
        import hmac
        path, _, query = request.path.partition("?")   # no urlsplit: "//[oops/callback" made it raise on 3.6
        try:
            query = {key: values[0] for key, values in urllib.parse.parse_qs(query).items()}
        except ValueError:
            return self._answer(request, 400, "This is not a sign-in answer.")
        if path != "/callback" or self.done.is_set():
            return self._answer(request, 404, "Not found.")
        if not hmac.compare_digest(query.get("state", "").encode("utf-8", "replace"), self.state.encode()):
            return self._answer(request, 400, "This sign-in answer does not match the login in progress "
                                "(wrong or missing state). Close this tab.")
        self.result = {"code": query["code"]} if "code" in query else {"error": query.get("error") or "none"}
        self._answer(request, 200, "Landbase sign-in %s. You can close this tab."
                     % ("complete" if "code" in self.result else "cancelled"))
        self.done.set()

    @staticmethod
    def _answer(request, status, text):
        body = ("<!doctype html><meta charset=utf-8><title>landbase-import</title><p>%s</p>" % text).encode()
        request.send_response(status)
        request.send_header("Content-Type", "text/html; charset=utf-8")
        request.send_header("Content-Length", str(len(body)))
        request.end_headers()
        request.wfile.write(body)

    def stop(self):
        self.done.set()
        self.server.shutdown()
        self.server.server_close()


def login_device(console, api):
    """RFC 8628: show a code, poll the token endpoint every `interval` until it is approved; the wait
    ends when the code expires, and never later than DEVICE_LIMIT whatever the server says."""
    import socket
    data = api.call("POST", "/v1/oauth/device", {"client_id": CLIENT_ID, "device_name": socket.gethostname()},
                    auth=False, check=expect("device", "POST /v1/oauth/device",
                                             ("interval", "expiresIn", "verificationUriComplete")))
    clamp = lambda value, low, high, default: min(max(value, low), high) \
        if is_number(value) and value > 0 else default     # noqa: E731 (a server's number, kept in bounds)
    interval = clamp(data.get("interval"), DEVICE_INTERVALS[0], DEVICE_INTERVALS[1], DEVICE_INTERVAL)
    expires_in = clamp(data.get("expiresIn"), 1, DEVICE_LIMIT, DEVICE_LIMIT)
    code = excerpt(data["userCode"], 40)
    console.line("To sign in, open %s and enter the code %s (it expires in %s, at %s)" % (excerpt(
        data["verificationUri"]), code, format_span(expires_in), format_time(CLOCK.wall() + expires_in)))
    if isinstance(data.get("verificationUriComplete"), str):
        console.line("  (or open %s)" % excerpt(data["verificationUriComplete"]))
    deadline = CLOCK.now() + expires_in
    expired = LandbaseError("TIMEOUT", "the code %s expired before it was approved; run auth login --device "
                            "again" % code)
    body = {"grant_type": "urn:ietf:params:oauth:grant-type:device_code", "client_id": CLIENT_ID,
            "device_code": data["deviceCode"]}
    wait = interval
    while True:
        if CLOCK.now() + wait > deadline:
            raise expired
        CLOCK.sleep(wait)
        try:
            return exchange_token(api, body, retry=False)
        except LandbaseError as exc:
            if exc.server_code == "ACCESS_DENIED":
                raise LandbaseError("AUTH_FAILED", "the login was refused on the device page")
            if exc.server_code == "EXPIRED_TOKEN":
                raise expired
            interval += 5 if exc.server_code == "SLOW_DOWN" else 0
            pending = exc.server_code in ("AUTHORIZATION_PENDING", "SLOW_DOWN")    # nobody has answered yet
            if exc.transient and not pending:
                console.line("waiting for approval: %s (%s); trying again" % (exc.message, exc.code))
            wait = retry_wait(exc, interval, deadline - CLOCK.now(), transient=pending or exc.transient)
            if wait is None:
                raise expired if pending or exc.transient else exc


def exchange_token(api, body, retry=True):
    """The token answer; a refused code or verifier is AUTH_FAILED: the login failed."""
    try:
        return api.call("POST", "/v1/oauth/token", body, auth=False, retry=retry,
                        check=expect("token", "POST /v1/oauth/token"))
    except LandbaseError as exc:
        if exc.code != "VALIDATION_ERROR" or exc.server_code in (
                "AUTHORIZATION_PENDING", "SLOW_DOWN", "ACCESS_DENIED", "EXPIRED_TOKEN"):
            raise
        raise LandbaseError("AUTH_FAILED", exc.message, exc.meta, server_code=exc.server_code)


def should_use_device_flow():
    """No browser can be opened here: over SSH, or on Linux/BSD without a display (unless BROWSER says)."""
    env = os.environ.get
    return not env("BROWSER", "").strip() and bool(env("SSH_CONNECTION") or env("SSH_TTY") or (
        sys.platform.startswith(("linux", "freebsd", "openbsd", "netbsd")) and not (env("DISPLAY") or
                                                                                   env("WAYLAND_DISPLAY"))))


def read_token_from_stdin():
    pipe = "pipe an lbs_ token into auth login --with-token"
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
    if not (usable_token(token) and TOKEN_RE.fullmatch(token)):
        raise LandbaseError("INVALID_INPUT", "the token on stdin is not an lbs_ platform token (printable "
                            "ASCII, no spaces or quotes)")
    return token


# ---------------------------------------------------------------- commands

def cmd_auth_login(args, console):
    import socket
    store = SessionStore()
    api = api_for(args, console)
    me = None
    if args.with_token:
        api.token = read_token_from_stdin()
        me = fetch_me(api)              # the check: a rejected token is never saved
        expires_at = me["expiresAt"] if is_time(me.get("expiresAt")) else None
        if expires_at is None:
            expires_at = format_time(CLOCK.wall() + SESSION_LIFETIME)
            console.line("The session is assumed to last 7d from now; the platform may end it sooner.")
        granted = {"accessToken": api.token, "expiresAt": expires_at, "accountId": None}
    else:
        use_device = args.device or (not args.no_browser and should_use_device_flow())
        if use_device and not args.device:
            console.line("No browser can be opened here; using the device code flow (auth login --device).")
        answer = login_device(console, api) if use_device else login_browser(args, console, api)
        granted = {key: answer.get(key) for key in ("accessToken", "expiresAt", "accountId")}
        api.token = granted["accessToken"]
    before = []                         # saved at once, with only the account the platform granted: the one

    def login(data):                    # stored before may be another identity's (settled below)
        before.append(data.get("accountId"))
        return dict(granted, deviceName=data.get("deviceName") or socket.gethostname())
    store.update(login, console, replace_damaged=True)
    me = me or fetch_me(api)
    try:
        ids = [account["id"] for account in fetch_accounts(api)]
    except LandbaseError as exc:
        raise LandbaseError(exc.code, "%s; the login is saved, but its accounts could not be read, so no "
                            "account is active: choose one with: landbase_import.py account set <accountId>"
                            % exc.message, exc.meta)
    only = ids[0] if len(ids) == 1 else None
    account_id = next((a for a in (granted["accountId"], before[0]) if a in ids), only)
    if before[0] and before[0] not in ids:
        console.line("The active account %s is not one this identity can use; it was cleared. Choose one "
                     "with: landbase_import.py account set <accountId> (see: account list)"
                     % shown(before[0]))
    if only and account_id not in (granted["accountId"], before[0]):
        console.line("Active account: %s (the only one this identity has)" % account_id)
    if account_id != granted["accountId"]:
        store.update({"accountId": account_id})
    console.line("Logged in as %s (%s) until %s; active account: %s" % (
        me.get("email"), me.get("userId"), granted["expiresAt"], account_id or "none (see account list)"))
    console.result({"userId": me.get("userId"), "email": me.get("email"), "accountId": account_id,
                    "expiresAt": granted["expiresAt"]})
    return 0


def cmd_auth_status(args, console):
    session = SessionStore().session(args.account, console)
    if session.account_error is not None:
        raise session.account_error
    if args.min_valid is not None and session.expires_at is not None:
        check_min_valid(session.expires_at, args.min_valid)        # before any request
    me = fetch_me(api_for(args, console, session.token))
    expires_at = session.expires_at
    if expires_at is None and is_time(me.get("expiresAt")):        # LANDBASE_ACCESS_TOKEN: the platform says
        expires_at = parse_time(me["expiresAt"])
        warn_if_ending(expires_at, console)
    if args.min_valid is not None:
        if expires_at is None:
            raise LandbaseError("AUTH_FAILED", "nobody says when this session ends (neither %s nor the "
                                "platform's /v1/me), so --min-valid cannot pass" % (
                                    "platform.json" if session.source == "file" else "LANDBASE_ACCESS_TOKEN"))
        check_min_valid(expires_at, args.min_valid)
    console.result({"authenticated": True, "userId": me.get("userId"), "email": me.get("email"),
                    "accountId": session.account_id,
                    "expiresAt": format_time(expires_at) if expires_at is not None else None,
                    "expiresInSeconds": int(expires_at - CLOCK.wall()) if expires_at is not None else None,
                    "tokenSource": session.source})
    return 0


def check_min_valid(expires_at, min_valid):
    left = int(expires_at - CLOCK.wall())
    if left < min_valid:
        raise LandbaseError("AUTH_FAILED", "the session ends in %s (%s), before the %s asked for by "
                            "--min-valid: run landbase_import.py auth login (auth login --device over SSH)"
                            % (format_span(left), format_time(expires_at), format_span(min_valid)),
                            {"expiresInSeconds": left, "expiresAt": format_time(expires_at)})


def cmd_auth_logout(args, console):
    store = SessionStore()
    try:
        token, damaged = store.load(console).get("accessToken"), None
    except LandbaseError as exc:
        token, damaged = None, exc.message.split("; ")[0]
    revoked = False
    if token:
        try:
            api_for(args, console, token).call("POST", "/v1/oauth/revoke", retry=False)
            revoked = True
        except LandbaseError as exc:
            console.line("Could not revoke the token on the platform (%s: %s); removing the local session "
                         "anyway." % (exc.code, exc.message))
    if store.remove() and damaged:
        console.line("Removed it: %s" % damaged)
    elif not token:
        console.line("No stored session in %s." % store.path)
    if os.environ.get("LANDBASE_ACCESS_TOKEN"):
        console.warn("LANDBASE_ACCESS_TOKEN is set and still used; logout neither revokes nor unsets it")
    console.result({"loggedOut": True, "revoked": revoked})
    return 0


def cmd_account_list(args, console):
    session = SessionStore().session(args.account, console)
    accounts = fetch_accounts(api_for(args, console, session.token))
    console.result([dict(account, active=account["id"] == session.account_id) for account in accounts])
    return 0


def cmd_account_set(args, console):
    store = SessionStore()
    session = store.session(None, console)      # a stored account that is no account id is what this repairs
    accounts = fetch_accounts(api_for(args, console, session.token))
    match = [a for a in accounts if a["id"] == args.account_id]
    if not match:
        raise LandbaseError("NOT_FOUND", "account %s is not one this identity can use (it can use: %s; see: "
                            "landbase_import.py account list)" % (args.account_id, ", ".join(
                                a["id"] for a in accounts) or "none"), {"accountId": args.account_id})
    store.update({"accountId": args.account_id}, console)
    if os.environ.get("LANDBASE_ACCOUNT_ID") not in (None, "", args.account_id):
        console.warn("LANDBASE_ACCOUNT_ID=%s is set: it stays the active account wherever it is set; %s is "
                     "the stored one, for commands run without it" % (
                         shown(os.environ["LANDBASE_ACCOUNT_ID"], 80), args.account_id))
    console.result({"accountId": args.account_id, "name": match[0].get("name")})
    return 0


def account_api(args, console):
    """(the Api, the active account) of a command that works in an account; nothing is sent."""
    session = SessionStore().session(args.account, console)
    account_id = require_account(session)
    return api_for(args, console, session.token), account_id


def cmd_contacts_import_start(args, console):
    import uuid
    body = read_import_body(args.json)
    api, account_id = account_api(args, console)
    path = "/v1/accounts/%s/contacts-imports" % account_id
    key = args.idempotency_key or str(uuid.uuid4())
    if args.dry_run:                    # the user's body, as it would be sent
        console.result({"dryRun": True, "accountId": account_id, "request": "POST " + path,
                        "idempotencyKey": key, "body": body})
        return 0
    again = "get it back, never a second one, with: " + rerun_command(args, key)

    def started(data, headers):
        return dict(expect("start", "POST contacts-imports")(data),
                    replayed=(headers.get("Idempotent-Replayed") or "").strip().lower() == "true")
    try:
        answer = api.call("POST", path, body, headers={"Idempotency-Key": key}, check=started)
    except (KeyboardInterrupt, Stopped) as exc:
        raise stopped(exc, "start was stopped before the platform's answer arrived; the import may exist: "
                      + again, {"idempotencyKey": key})
    except LandbaseError as exc:
        running = exc.meta.get("importId")
        if exc.code == "CONFLICT" and is_import_id(running):
            command = resume_command(account_id, [running])
            if not args.watch:
                raise LandbaseError("CONFLICT", "%s; import %d is already running: wait on it with: %s"
                                    % (exc.message, running, command), exc.meta)
            console.line("Import %d is already running (CONFLICT); waiting on it, as --watch asks. Resume "
                         "with: %s" % (running, command))
            return watch_started(api, account_id, running, console, args.max_wait)
        if not exc.unsure:
            raise
        # the platform may have acted on one of the attempts: never exit 1 ("fix it and run it again") then
        raise LandbaseError("API_ERROR" if exc.exit_code == 1 else exc.code, "%s; the platform may have "
                            "created the import: %s" % (exc.message, again),
                            dict(exc.meta, idempotencyKey=key, serverCode=exc.code), exc.transient)
    import_id, follow = answer["importId"], resume_command(account_id, [answer["importId"]])
    console.line(("Import %d was already started with key %s (run %%s) in account %%s; nothing new started."
                  % (import_id, key) if answer["replayed"] else "Started import %d (run %%s) in account %%s."
                  % import_id) % (answer["runRef"], account_id) + " Follow it with: " + follow)
    if not args.watch:
        console.result({"importId": import_id, "runRef": answer["runRef"]}, {"importId": import_id})
        return 0
    return watch_started(api, account_id, import_id, console, args.max_wait)


def watch_started(api, account_id, import_id, console, limit):
    """start --watch: the wait on the import, which exists now: exit 1 ("fix it and run it again") never."""
    try:
        return wait_and_report(api, account_id, [import_id], console, limit)
    except LandbaseError as exc:
        if exc.exit_code != 1:
            raise
        raise LandbaseError("API_ERROR", "%s (%s); import %d exists and keeps running: %s" % (
            exc.message, exc.code, import_id, resume_command(account_id, [import_id])),
            dict(exc.meta, importId=import_id, serverCode=exc.code))


def rerun_command(args, key):
    """This start's command line again, with its key in the --idempotency-key=KEY form (a key that begins
    with - must work)."""
    words, skip = [], False
    for word in args.argv:
        if not skip and word != "--idempotency-key" and not word.startswith("--idempotency-key="):
            words.append(word)
        skip = word == "--idempotency-key"
    return " ".join(shlex.quote(word) for word in [program_path()] + words + ["--idempotency-key=" + key])


def cmd_contacts_import_status(args, console):
    api, account_id = account_api(args, console)
    console.result(fetch_status(api, account_id, args.import_ids[0]), {"importId": args.import_ids[0]})
    return 0


def cmd_contacts_import_wait(args, console):
    api, account_id = account_api(args, console)
    return wait_and_report(api, account_id, args.import_ids, console, args.max_wait)


def cmd_doctor(args, console):
    """What a locked-down host gets wrong, each check ok, warn or fail, with a detail and the fix: a report
    on stdout, a table on stderr; the exit of the first failure's class (1 setup, 3 session, 4 network)."""
    checks, failures, quiet = [], [], Console(stream=open(os.devnull, "w"))

    def report(name, status, detail, fix="", code="SETUP_FAILED"):
        checks.append({"name": name, "status": status, "detail": shown(detail, 300), "fix": shown(fix, 300)})
        console.line("%-4s  %-12s %s%s" % (status, name, detail, "; fix: " + fix if fix else ""))
        failures.extend([(code if EXIT_CODES.get(code) in (1, 3, 4) else "NETWORK_ERROR", name, detail)]
                        if status == "fail" else [])            # 1 setup, 3 session, 4 network: no other

    def attempt(name, action, fix, code="NETWORK_ERROR"):
        """action()'s result, or None and a failed check that says what it raised, in the tool's words."""
        try:
            return action()
        except LandbaseError as exc:
            report(name, "fail", exc.message, fix, exc.code)
        except (OSError, ValueError) as exc:
            error = api._transport_error(api.base.split("/")[2], exc, False, args.timeout)
            report(name, "fail", error.message.partition("; check the network")[0], fix, code)
        return None

    store, api = SessionStore(), None
    report("python", "ok", "CPython %s (%s)" % (sys.version.split()[0], sys.executable))
    for path, private in ((store.directory, 0o700), (store.path, 0o600)):
        mode = stat.S_IMODE(os.stat(path).st_mode) if os.path.exists(path) else None
        report("config", "warn" if mode is None or mode & 0o077 else "ok", "%s%s" % (path, (
            ", mode %o" % mode) if mode is not None else " does not exist"), "" if mode == private else
            "landbase_import.py auth login" if mode is None else "chmod %o %s" % (private, path))
    session = attempt("session", lambda: store.session(args.account, quiet), "landbase_import.py auth login")
    if session is not None:
        left = session.expires_at - CLOCK.wall() if session.expires_at else None
        short = left is not None and left < SESSION_WARN_BELOW
        report("session", "warn" if short else "ok", "from %s; %s" % (
            "LANDBASE_ACCESS_TOKEN" if session.source == "env" else store.path, "ends %s (in %s)" % (
                format_time(session.expires_at), format_span(left)) if left is not None else
            "its end is not recorded"), "auth login (--device over SSH)" if short else "")
    base = attempt("environment", lambda: [base_url("LANDBASE_PLATFORM_WEB_URL", DEFAULT_WEB_URL),
                                           base_url("LANDBASE_PLATFORM_API_URL", DEFAULT_API_URL)][1],
                   "unset it, or set it to https://…landbase.com", "INVALID_INPUT")
    api = base and attempt("proxy", lambda: Api(base, session and session.token, args.timeout, quiet),
                           "http://[user:password@]host:port, percent-encoded", "INVALID_INPUT")
    if api and (not base.startswith("https:") or attempt("tls store", tls_context, "see the detail")):
        report("proxy", "ok", "%s go to %s" % (str(api.proxy or "no proxy: requests"), base))
        report("tls store", "ok", "none needed (http)" if not base.startswith("https:") else "SSL_CERT_FILE="
               + os.environ["SSL_CERT_FILE"] if os.environ.get("SSL_CERT_FILE") else "the system's CA store")
        check_connection(api, session, args, report, attempt)
    if not failures and api and session is not None:
        accounts = attempt("account", lambda: fetch_accounts(api, retry=False), "see the detail")
        account = attempt("account", lambda: require_account(session), "landbase_import.py account set ID")
        if accounts is not None and account is not None:
            usable = account in [a["id"] for a in accounts]
            report("account", "ok" if usable else "fail", "%s %s usable by this identity" % (
                account, "is" if usable else "is not"), "" if usable else "see: account list")
    console.result({"ok": not failures, "checks": checks})
    if failures:
        code, name, detail = failures[0]
        raise LandbaseError(code, "%d check%s failed; the first: %s: %s" % (len(failures), "" if len(
            failures) == 1 else "s", name, detail), {"failed": [failure[1] for failure in failures]})
    return 0


def check_connection(api, session, args, report, attempt):
    """doctor: name resolution, then TCP, the proxy's CONNECT and TLS with its certificate, then GET
    /v1/me and its latency, and the clock against the platform's Date header; each bounded by --timeout."""
    import http.client
    import socket
    import ssl
    from email.utils import parsedate_tz, mktime_tz
    parts = urllib.parse.urlsplit(api.base)
    secure = parts.scheme == "https"
    host, port = parts.hostname, parts.port or (443 if secure else 80)
    proxy = urllib.parse.urlsplit(api.proxy.url) if api.proxy else None
    address = (proxy.hostname, proxy.port or 80) if proxy else (host, port)
    found = []                                  # getaddrinfo has no timeout of its own: --timeout bounds it
    in_background(lambda: found.append(attempt("dns", lambda: socket.getaddrinfo(
        address[0], address[1], type=socket.SOCK_STREAM), "check the name"))).join(args.timeout)
    if not found or found[0] is None:
        return None if found else report("dns", "fail", "%s: no answer within %gs" % (
            address[0], args.timeout), "check resolv.conf", "NETWORK_ERROR")
    report("dns", "ok", "%s is %s" % (address[0], found[0][0][4][0]))
    connection = (http.client.HTTPSConnection(*address, timeout=args.timeout, context=tls_context()) if secure
                  else http.client.HTTPConnection(*address, timeout=args.timeout))
    if proxy:
        pair = ":".join(urllib.parse.unquote(word or "") for word in (proxy.username, proxy.password))
        connection.set_tunnel(host, port, {"Proxy-Authorization": "Basic " + base64.b64encode(
            pair.encode("utf-8")).decode("ascii")} if proxy.username is not None else {})
    started = CLOCK.now()
    fix = "see the detail: the firewall, %s, the clock, or the CA (SSL_CERT_FILE)" % (
        "the proxy's credentials and ports" if proxy else "the name")
    if attempt("connection", lambda: connection.connect() or True, fix) is None:
        return
    with contextlib.closing(connection):
        detail = "%s:%d in %d ms%s" % (address + ((CLOCK.now() - started) * 1000, ", then a tunnel to %s:%d"
                                                  % (host, port) if proxy else ""))
        if secure:
            left = ssl.cert_time_to_seconds(connection.sock.getpeercert()["notAfter"]) - CLOCK.wall()
            detail += "; %s, the certificate of %s ends in %s" % (connection.sock.version(), host,
                                                                   format_span(left))
        report("connection", "warn" if secure and left < 14 * 86400 else "ok", detail)
    started = CLOCK.now()
    answer = attempt("platform", lambda: api.send("GET", api.base + "/v1/me", None, bool(session), {},
                                                  args.timeout), "see the detail")
    if answer is None:
        return
    status, headers, raw = answer
    if attempt("platform", lambda: api._decode("GET", "/v1/me", status, headers, raw),
               "landbase_import.py auth login" if status == 401 else "see the detail") is not None or (
                   session is None and status == 401):
        report("platform", "ok", "GET /v1/me: HTTP %d in %d ms" % (status, (CLOCK.now() - started) * 1000))
    date = parsedate_tz(headers.get("Date") or "")
    if date:
        skew = CLOCK.wall() - mktime_tz(date)
        report("clock", "warn" if abs(skew) > CLOCK_SKEW else "ok", "%s %s the platform's" % (
            format_span(abs(skew)), "ahead of" if skew > 0 else "behind"),
            "set the clock (NTP): session ends are checked against it" if abs(skew) > CLOCK_SKEW else "")


# ---------------------------------------------------------------- command line

MANUAL = """\
usage: landbase_import.py [global options] COMMAND ...

Bulk-import a Landbase dataset's contacts into an account under a tag, read an import's progress, or
wait until it ends. stdout is one JSON document (or --query's text); progress and, on failure, a line
naming the error and then the one-line JSON envelope go to stderr, each line dated when it is a log.

commands (each with --help):
{commands}

global options, before or after the command:
  --account=ID         the account for this call (else LANDBASE_ACCOUNT_ID, else the stored one)
  --timeout=SECONDS    the bound on each whole request, connect to last byte (default 30)
  --query=PATH[,PATH]  print these fields as text instead of JSON: importId, counts.imported, error.code
  --verbose            requests and answers on stderr (tokens redacted)
  --quiet              no progress lines
  --help, --version

environment:
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
  official landbase-cli's file: {{"accessToken", "expiresAt", "accountId", "deviceName"}}. A session
  lasts 7 days: log in again each week (auth status --min-valid 2d warns two days ahead).
"""

# Each command's help: its usage (the first line), what it does and an example. The manual, a group's help
# and the command's own help are made of these.
HELP = {
    ("auth", "login"): """\
auth login [--device | --with-token] [--no-browser]
    Log in for 7 days: a browser by default (--no-browser prints its URL); --device, a code to enter on
    any device (chosen by itself over SSH or without a display); --with-token, an lbs_ token on stdin.
    example: landbase_import.py auth login --device""",
    ("auth", "status"): """\
auth status [--min-valid DURATION]
    Who is logged in, and until when. Exit 3 without a valid session, or with --min-valid when the
    session ends sooner than that (90s, 30m, 12h, 2d).
    example: landbase_import.py auth status --min-valid 2d""",
    ("auth", "logout"): """\
auth logout
    Revoke the token on the platform and remove the local session.
    example: landbase_import.py auth logout""",
    ("account", "list"): """\
account list
    The accounts this identity can use, and which one is active.
    example: landbase_import.py account list""",
    ("account", "set"): """\
account set ACCOUNT_ID
    Make an account (1 to 64 letters, digits, _ or -) the active one; --account=ID overrides it once.
    example: landbase_import.py account set acc_abc123""",
    ("contacts-import", "start"): """\
contacts-import start --json PATH|- [--watch] [--max-wait D] [--dry-run] [--idempotency-key=KEY]
    Start an import from a JSON body {"datasetId", "tagName", "importId"?} in a file or stdin (-);
    --watch then waits for it, for --max-wait. --dry-run checks and sends nothing. The same
    --idempotency-key (1 to 255 printable ASCII), account and body within 24 hours get the same import.
    example: landbase_import.py contacts-import start --json body.json --watch""",
    ("contacts-import", "status"): """\
contacts-import status IMPORT_ID
    An import's status, once: {"importId", "phase", "percent", "counts", "error"}.
    example: landbase_import.py contacts-import status 7""",
    ("contacts-import", "wait"): """\
contacts-import wait IMPORT_ID... [--max-wait DURATION]
    Wait until the imports end: each is read at once, after 5 s, 10 s, then every 20 s, for --max-wait
    (default 30m, at most 7d; a duration is 90, 90s, 30m, 12h or 2d). Exit 0 when all completed.
    example: landbase_import.py contacts-import wait 7 8 --max-wait 3h""",
    ("doctor",): """\
doctor
    Check Python, the config directory and platform.json, the session, the account, the base URLs, the
    proxy, SSL_CERT_FILE, DNS, TCP, TLS, the platform and its latency, and the clock.
    example: landbase_import.py doctor""",
}
GROUPS = {"auth": "Log in, show or end the platform session.", "contacts-import": "Start, read or wait "
          "for imports.", "account": "List the accounts or choose the active one."}
# the options of each command: name -> whether it takes a value; and what its words that are no option are
GLOBAL_OPTIONS = {"--account": True, "--timeout": True, "--query": True, "--verbose": False, "--quiet": False}
OPTIONS = {("auth", "login"): {"--device": False, "--with-token": False, "--no-browser": False},
           ("auth", "status"): {"--min-valid": True}, ("contacts-import", "wait"): {"--max-wait": True},
           ("contacts-import", "start"): {"--json": True, "--watch": False, "--max-wait": True,
                                          "--dry-run": False, "--idempotency-key": True}}
POSITIONALS = {("account", "set"): "account_id", ("contacts-import", "status"): "import_ids",
               ("contacts-import", "wait"): "import_ids"}
OUTPUT_KEYS = {                         # what each command prints, for --query
    "contacts-import": ("importId", "phase", "percent", "counts", "counts.total", "counts.imported",
                        "counts.skipped", "counts.failed", "error", "error.code", "error.message"),
    "auth login": ("userId", "email", "accountId", "expiresAt"),
    "auth status": ("authenticated", "userId", "email", "accountId", "expiresAt", "expiresInSeconds",
                    "tokenSource"),
    "auth logout": ("loggedOut", "revoked"), "account list": ("id", "name", "active"),
    "account set": ("accountId", "name"), "doctor": ("ok", "checks"), "start": ("importId", "runRef"),
    "start --dry-run": ("dryRun", "accountId", "request", "idempotencyKey", "body", "body.datasetId",
                        "body.tagName", "body.importId"),
}


class ShowText(Exception):
    """--help, --version or a bare level: this text on stdout, exit 0."""


def help_text(words, program):
    indented = lambda text: "\n".join("  " + line for line in text.split("\n"))      # noqa: E731
    if not words:
        text = MANUAL.format(commands=indented("\n".join(HELP.values())))
    elif words in HELP:
        text = "usage: landbase_import.py %s\n\n%s\n\nglobal options (--account, --timeout, --query, " \
               "--verbose, --quiet): see landbase_import.py --help\n" % tuple(HELP[words].split("\n", 1))
    else:
        text = "usage: landbase_import.py %s ACTION ...\n\n%s\n\nactions:\n%s\n" % (
            words[0], GROUPS[words[0]], indented("\n".join(HELP[w] for w in HELP if w[0] == words[0])))
    return text.replace("landbase_import.py", program)


def parse_args(argv):
    """The command line as a namespace, every check of it made before anything is sent; ShowText for
    --help, --version and a command line that stops at a level."""
    import types
    program = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "landbase_import.py"
    words, given, positionals, show_help = (), {}, [], False

    def usage(message, word=None, choices=()):
        """INVALID_INPUT naming what was typed, the nearest valid word, and the help to read."""
        return LandbaseError("INVALID_INPUT", "%s%s (see: %s --help)" % (
            message, did_you_mean(word, choices) if word else "", " ".join((program,) + words)))
    rest = iter(argv)
    for word in rest:
        if word in ("-h", "--help"):
            show_help = True
        elif word == "--version":
            raise ShowText("landbase-import %s\n" % __version__)
        elif word.startswith("-") and word not in ("-", "--"):
            name, equals, value = word.partition("=")
            known = dict(GLOBAL_OPTIONS, **OPTIONS.get(words, {}))
            if name not in known:
                raise usage("unknown option %s" % name, name, known)
            if known[name] and not equals:
                value = next(rest, None)
                if value is None or (value.startswith("-") and value != "-"):
                    raise usage("%s takes a value (write %s=VALUE for one that begins with -)" % (name, name))
            elif equals and not known[name]:
                raise usage("%s takes no value" % name)
            given[name] = given[name] + "," + value if name == "--query" and name in given \
                else value if known[name] else True
        elif words in HELP:
            positionals.extend(list(rest) if word == "--" else [word])
        else:
            choices = sorted({w[len(words)] for w in HELP if w[:len(words)] == words})
            if word not in choices:
                raise usage("unknown command %r" % word, word, choices)
            words += (word,)
    if show_help or words not in HELP:
        raise ShowText(help_text(words, program))
    args = types.SimpleNamespace(words=words, program=program, argv=list(argv), account_id=None,
                                 import_ids=None)
    for name, takes_value in itertools.chain(GLOBAL_OPTIONS.items(), *(o.items() for o in OPTIONS.values())):
        setattr(args, name[2:].replace("-", "_"), given.get(name, None if takes_value else False))
    wanted = POSITIONALS.get(words)
    extra = positionals[0 if not wanted else 1 if words[-1] != "wait" else len(positionals):]
    if extra or (wanted and not positionals):
        raise usage("unexpected argument %s" % shown(repr(extra[0]), 80) if extra else "%s is required"
                    % ("ACCOUNT_ID" if wanted == "account_id" else "IMPORT_ID"))
    if wanted:
        setattr(args, wanted, positionals if wanted == "import_ids" else positionals[0])
    return check_args(args, usage)


def check_args(args, usage):
    """Every check of the command line that its shape does not make, in one place, before anything is sent."""
    if args.account is not None:
        check_account_id(args.account, "--account")
    if args.account_id is not None:
        check_account_id(args.account_id)
    if args.import_ids is not None:
        ids = args.import_ids = [check_import_id(value) for value in args.import_ids]
        if len(set(ids)) != len(ids):
            raise LandbaseError("INVALID_INPUT", "an import id is given twice: %s" % " ".join(map(str, ids)))
    if args.device and args.with_token:
        raise usage("--device and --with-token are two ways to log in: choose one")
    timeout = args.timeout or str(DEFAULT_TIMEOUT)
    args.timeout = float(timeout) if re.match(r"([0-9]+\.?[0-9]*|\.[0-9]+)\Z", timeout) else -1.0
    if not 0 < args.timeout <= MAX_TIMEOUT:
        raise usage("--timeout takes a number of seconds greater than 0 and at most %d, not %s"
                    % (MAX_TIMEOUT, shown(repr(timeout), 80)))
    if args.min_valid is not None:
        args.min_valid = parse_duration(args.min_valid, "--min-valid")
    if args.words[-1] == "start" and args.json is None:
        raise usage("contacts-import start needs --json PATH (or - for stdin)")
    if args.words[-1] == "start" and args.max_wait is not None and not args.watch:
        raise usage("--max-wait bounds the wait of --watch: add --watch, or leave --max-wait out")
    text, args.max_wait = args.max_wait, WAIT_LIMIT if args.max_wait is None else parse_duration(
        args.max_wait, "--max-wait")
    if not 0 < args.max_wait <= MAX_WAIT_LIMIT:
        raise usage("--max-wait takes a duration greater than 0 and at most 7d, not %s" % shown(text, 80))
    key = args.idempotency_key
    if key is not None and not (re.match(r"[\x20-\x7e]{1,255}\Z", key) and key.strip()):
        raise usage("--idempotency-key takes 1 to 255 printable ASCII characters, not only spaces (such as "
                    "nightly-2026-11-29), not %s" % shown(repr(key), 80))
    if args.query is not None:
        allowed = OUTPUT_KEYS[" ".join(args.words) if args.words[0] != "contacts-import" else
                              "start --dry-run" if args.dry_run else "start" if args.words[1] == "start"
                              and not args.watch else "contacts-import"]
        args.query = args.query.split(",")
        for path in args.query:
            if path not in allowed:
                raise LandbaseError("INVALID_INPUT", "--query %r is not in this command's output; it prints: "
                                    "%s" % (path, ", ".join(allowed)), {"field": "--query"})
    return args


# ---------------------------------------------------------------- main

def _on_signal(signum, frame):
    """SIGINT, SIGTERM and SIGHUP stop the run: the first of them, until the run has its outcome (result
    or error) and no later, a second Ctrl-C or a SIGTERM right behind it changing nothing. Python may run
    a handler at the first instruction of another's (`frame`): the interrupted one came first."""
    if STOPPING or frame is not None and frame.f_code is _on_signal.__code__:
        return
    STOPPING.append(signum)
    raise KeyboardInterrupt() if signum == signal.SIGINT else Stopped(signum)


def main(argv=None):
    """Run one command; the exit code. Called as the program (argv None), it leaves the signals ignored:
    nothing may interrupt the exit; called by a caller that goes on (the tests), it puts theirs back."""
    console = Console()
    previous = {}
    del STOPPING[:]
    try:
        try:
            for signum in STOP_SIGNALS:     # inside the try: a signal right after the first is reported
                previous[signum] = signal.signal(signum, _on_signal)
        except (ValueError, OSError):
            pass                        # not the main thread (in-process tests)
        try:
            try:
                args = parse_args(sys.argv[1:] if argv is None else argv)
            except ShowText as text:    # --help, --version, a bare level
                write_stdout(str(text))
                return 0
            console = Console(quiet=args.quiet, verbose=args.verbose, query=args.query)
            remember_secret(os.environ.get("LANDBASE_ACCESS_TOKEN"))
            # each command is the function named after its words: ("auth", "login") runs cmd_auth_login
            return globals()["cmd_" + "_".join(args.words).replace("-", "_")](args, console)
        except LandbaseError as exc:
            return report(console, exc)
        except Exception as exc:        # the one boundary that turns a bug into an envelope
            return report(console, LandbaseError("API_ERROR", "internal error: %s: %s (please report it)"
                                                 % (type(exc).__name__, exc)))
    except (KeyboardInterrupt, Stopped) as exc:
        return report(console, stopped(exc, "stopped"))
    finally:
        for signum, handler in previous.items():
            try:
                signal.signal(signum, signal.SIG_IGN if argv is None else handler)
            except (ValueError, OSError, TypeError):
                pass


def report(console, exc):
    STOPPING.append("report")
    console.failure(exc)
    return exc.exit_code


if __name__ == "__main__":
    sys.exit(main())

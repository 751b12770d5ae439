#!/usr/bin/env python3
"""landbase-import: bulk-import a Landbase dataset's contacts into an account under a tag.

One file, standard library only, Python 3.6+. Copy it onto a host and run it:

    landbase_import.py auth login [--device | --with-token] [--no-browser]
    landbase_import.py auth status [--min-valid 2d]
    landbase_import.py auth logout
    landbase_import.py account list
    landbase_import.py account set <accountId>
    landbase_import.py contacts-import start --json <path|-> [--watch] [--dry-run] [--max-wait 4h]
                                             [--idempotency-key KEY]
    landbase_import.py contacts-import status <importId>
    landbase_import.py contacts-import wait <importId> [<importId> ...] [--max-wait 4h]

Global options, before or after the command: --account=ID --timeout=SECONDS --query=PATH[,PATH]
--verbose --quiet. `landbase_import.py --help` is the manual.

stdout carries exactly one JSON document on success (or --query's text); progress, warnings and,
on failure, a one-line error envelope go to stderr.

Exit codes: 0 success; 1 INVALID_INPUT, VALIDATION_ERROR, SETUP_FAILED;
2 NOT_FOUND, CONFLICT, API_ERROR, RATE_LIMITED, UPGRADE_REQUIRED, IMPORT_FAILED,
IMPORT_PARTIAL, OUTPUT_FAILED; 3 AUTH_REQUIRED, AUTH_FAILED; 4 TIMEOUT, NETWORK_ERROR;
130 INTERRUPTED; 143 TERMINATED.
"""

import argparse
import base64
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

__version__ = "1.0.0"

DEFAULT_API_URL = "https://api.landbase.com"
DEFAULT_WEB_URL = "https://platform.landbase.com"
CLIENT_ID = "landbase-cli"
SESSION_FILE = "platform.json"
SESSION_LIFETIME = 7 * 24 * 3600        # what a login grants; --with-token assumes it
SESSION_WARN_BELOW = 24 * 3600          # warn when less than this is left

DEFAULT_TIMEOUT = 30.0                  # seconds per request (--timeout)
MAX_TIMEOUT = 3600
RETRY_DELAYS = (5, 10, 20)              # one-shot commands: three retries
RETRY_AFTER_CAP = 300                   # a longer Retry-After ends a one-shot command
POLL_DELAYS = (5, 10)                   # then POLL_EVERY, until WAIT_LIMIT
POLL_EVERY = 20
WAIT_LIMIT = 30 * 60                    # --max-wait's default
MAX_WAIT_LIMIT = 7 * 24 * 3600          # and its largest value
REDRAW_EVERY = 1                        # seconds between redraws of a terminal's progress line
BAR_WIDTH = 20
MAX_POLLS_IN_FLIGHT = 4                 # wait with many ids
LOGIN_LIMIT = 5 * 60                    # browser login
CALLBACK_CONNECTION_TIMEOUT = 10        # seconds one connection to the login callback may take
DEVICE_LIMIT = 15 * 60                  # device login, whatever expiresIn says
DEVICE_INTERVAL = 5                     # the device flow polls this often unless the server says otherwise,
DEVICE_INTERVALS = (1, 60)              # and never outside these bounds
MAX_REDIRECTS = 5

MAX_BODY_BYTES = 1024 * 1024            # the body of start --json, and platform.json
MAX_ANSWER_BYTES = 4 * 1024 * 1024      # an answer from the platform
MAX_JSON_DIGITS = 40                    # a longer integer in any JSON document is refused,
MAX_JSON_DEPTH = 64                     # and a deeper document
EXCERPT_JSON_BYTES = 64 * 1024          # a longer answer is quoted as text, not parsed a second time
MAX_DATASET_ID = 200
MAX_TAG_NAME = 100
MAX_IMPORT_ID = 2 ** 63 - 1
BODY_KEYS = ("datasetId", "tagName", "importId")
COUNT_KEYS = ("total", "imported", "skipped", "failed")
TIME_RE = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.[0-9]+)?(?:[Zz]|\+00:00)?\Z")
ACCOUNT_ID_RE = re.compile(r"[A-Za-z0-9_-]{1,64}\Z")
IMPORT_ID_RE = re.compile(r"[0-9]{1,19}\Z")
TOKEN_RE = re.compile(r"lbs_[^\s\"',;&()<>\u2026]+")     # \u2026: not the redacted form again
REDACTED = "lbs_\u2026(redacted)"

TERMINAL_PHASES = ("completed", "partial", "failed")   # any other phase is in flight

EXIT_CODES = {
    "INVALID_INPUT": 1, "VALIDATION_ERROR": 1, "SETUP_FAILED": 1,
    "NOT_FOUND": 2, "CONFLICT": 2, "API_ERROR": 2, "RATE_LIMITED": 2,
    "UPGRADE_REQUIRED": 2, "IMPORT_FAILED": 2, "IMPORT_PARTIAL": 2,
    "OUTPUT_FAILED": 2,
    "AUTH_REQUIRED": 3, "AUTH_FAILED": 3,
    "TIMEOUT": 4, "NETWORK_ERROR": 4,
    "INTERRUPTED": 130, "TERMINATED": 143,
}
# the tool's own codes: never taken from a server's envelope (its status decides instead)
LOCAL_CODES = ("INVALID_INPUT", "SETUP_FAILED", "AUTH_REQUIRED", "OUTPUT_FAILED", "INTERRUPTED", "TERMINATED")
STATUS_CODES = {400: "VALIDATION_ERROR", 422: "VALIDATION_ERROR", 401: "AUTH_FAILED",
                403: "NOT_FOUND", 404: "NOT_FOUND", 409: "CONFLICT",
                426: "UPGRADE_REQUIRED", 429: "RATE_LIMITED"}


# ---------------------------------------------------------------- errors

class LandbaseError(Exception):
    """The one error type: a stable code, a message, meta; the exit code follows from the code."""

    def __init__(self, code, message, meta=None, transient=False, retry_after=None,
                 server_code=None):
        Exception.__init__(self, message)
        self.code = code
        self.message = message
        self.meta = meta or {}
        self.transient = transient          # worth another try later
        self.retry_after = retry_after      # seconds the server asked us to wait
        self.server_code = server_code      # the code in the server's envelope, known or not

    @property
    def exit_code(self):
        return EXIT_CODES.get(self.code, 2)

    def envelope(self):
        return {"error": {"code": self.code, "message": self.message, "meta": self.meta}}


class Terminated(BaseException):
    """Raised by the SIGTERM handler (_on_signal) so that cleanup runs and the exit is 143."""


# ---------------------------------------------------------------- what may be printed

SECRETS = set()             # every token value seen in this run: stored, from the environment, sent by a server


def remember_secret(value):
    """From now on, `value` is redacted wherever it would be printed, whatever its characters: as it is,
    and as it reads inside a JSON string or a URL, where a server may echo it."""
    if isinstance(value, str) and value.strip():
        for text in (value, value.strip()):
            SECRETS.update((text, json.dumps(text)[1:-1], json.dumps(text, ensure_ascii=False)[1:-1],
                            urllib.parse.quote(text, safe=""), urllib.parse.quote(text),
                            urllib.parse.quote_plus(text)))
    return value


def redact(text, pattern=True):
    """text without any token in it: the exact values in SECRETS, longest first, then (with `pattern`)
    anything that looks like lbs_…"""
    for secret in sorted(SECRETS, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, REDACTED)
    return TOKEN_RE.sub(REDACTED, text) if pattern else text


def printable(text):
    """text on one line, with every control character (newlines and terminal escapes among them) replaced."""
    return "".join(ch if ch.isprintable() else "\ufffd" for ch in text)


def sanitize(text):
    """The one sanitiser for text bound for a terminal or a log: no token, no control character."""
    return printable(redact(text))


def redact_values(value):
    """A JSON document with every string in it (keys too) redacted, so that it stays valid JSON."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, list):
        return [redact_values(item) for item in value]
    if isinstance(value, dict):
        return {redact(str(key)): redact_values(item) for key, item in value.items()}
    return value


def excerpt(raw, limit=200):
    """At most `limit` characters of any text the tool quotes (an answer, a message, a URL, a path), on one
    line, without control characters or tokens. A token hides in escapes (JSON's \\u0022, HTML's &quot;):
    JSON is redacted as values and written back, other text is read with HTML's entities decoded."""
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
    try:
        if text.lstrip()[:1] not in ("{", "[") or len(text) > EXCERPT_JSON_BYTES:
            raise StrictJSONError("not an object or an array, or too long to parse again for a few words")
        text = json.dumps(redact_values(parse_json(text.encode("utf-8", "surrogatepass"))), ensure_ascii=False)
    except StrictJSONError:
        # the known tokens as they came, then everything once decoded (the pattern first would cut a token
        # short where an entity begins, and leave its end behind)
        text = _unescaped(redact(text, pattern=False))
    return printable(" ".join(redact(text).split())[:limit]) or "(empty body)"     # redacted before it is cut


def _unescaped(text):
    """Text that is not JSON, with what may hide a token decoded: HTML entities, JSON's \\uXXXX escapes,
    percent-encoding. (Only for what is quoted back; the tool reads nothing from it.)"""
    if "&" in text:
        import html
        text = html.unescape(text)
    if "\\u" in text:
        text = re.sub(r"\\u([0-9a-fA-F]{4})", lambda match: chr(int(match.group(1), 16)), text)
    if "%" in text:
        text = urllib.parse.unquote(text)
    return text


# ---------------------------------------------------------------- time and streams

class Clock:
    """The seam for time: tests replace it so that a 30-minute wait runs in milliseconds."""

    def now(self):
        return time.monotonic()

    def wall(self):
        return time.time()

    def sleep(self, seconds):
        if seconds > 0:
            time.sleep(seconds)

    def wait_event(self, event, seconds):
        return event.wait(max(0.0, seconds))


CLOCK = Clock()


class Console:
    """stderr for people and logs. Every character written passes through sanitize(); a closed stderr is silent.

    A log (not a terminal, or TERM=dumb) gets one line per event, each beginning with its UTC time;
    a terminal gets plain lines and one progress line redrawn in place, cut to the terminal's width."""

    def __init__(self, quiet=False, verbose=False, stream=None, query=None):
        self.stream = sys.stderr if stream is None else stream     # None when stderr was closed (2>&-)
        self.quiet = quiet
        self.verbose = verbose
        self.query = query              # --query paths: the result is printed as text
        self.tty = _isatty(self.stream) and os.environ.get("TERM") != "dumb"
        self.color = self.tty and not os.environ.get("NO_COLOR")        # no-color.org: set and not empty
        self._redrawn = False
        self._held = None

    def result(self, doc, meta=None):
        """The command's result, on stdout (see write_json)."""
        self._end_redraw()
        write_json(doc, meta, self.query)

    def line(self, text):
        if self._held is not None:
            self._held.append(text)
            return
        self._end_redraw()
        stamp = "" if self.tty else format_time(CLOCK.wall()) + " "
        self._write(stamp + sanitize(text) + "\n")

    def hold(self):
        """Keep lines back until release(), so that release's line comes first."""
        self._held = []

    def release(self, first_line=None):
        held, self._held = self._held or [], None
        for text in ([first_line] if first_line is not None else []) + held:
            self.line(text)

    def warn(self, text):
        self.line("warning: " + text)

    def debug(self, text):
        if self.verbose:
            self.line(text)

    def envelope(self, error):
        """The error envelope: the last line, pure JSON, every string in it redacted."""
        self.release()
        self._end_redraw()
        doc = redact_values(error.envelope())
        self._write(printable(json.dumps(doc, ensure_ascii=True, allow_nan=False, default=str)) + "\n")

    def progress(self, plain, segments=None):
        """A progress event: on a terminal, one line redrawn from `segments` [(text, phase to colour, rank)],
        which never wraps: the pieces of highest rank are left out first, then the line is cut; else a line."""
        if self.quiet:
            return
        if not (self.tty and segments):
            self.line(plain)
            return
        room = self.width() - 1
        pieces = []
        for text, phase, rank in segments:
            text = self._as_written(sanitize(text))
            pieces.append((text, phase, rank, cells(text)))
        while sum(piece[3] for piece in pieces) > room and any(piece[2] for piece in pieces):
            pieces.remove(max(pieces, key=lambda piece: piece[2] or 0))
        shown = []
        for text, phase, _, width in pieces:
            if width > room:
                text = fit(text, room)
                width = cells(text)
            room -= width
            shown.append(self.paint(text, phase) if phase else text)
        self._write("\r\x1b[K" + "".join(shown))
        self._redrawn = True

    def _as_written(self, text):
        """text as the stream will write it: what its encoding cannot hold becomes a backslash escape
        (stderr under LC_ALL=C on 3.6), which is wider on the terminal than the character was."""
        encoding = getattr(self.stream, "encoding", None) or "utf-8"
        try:
            text.encode(encoding)
            return text
        except (UnicodeEncodeError, LookupError):
            return text.encode("ascii", "backslashreplace").decode("ascii")

    def width(self):
        """The columns of the terminal stderr is on (not stdout's: `x=$(… wait 7)` is the usual case);
        COLUMNS, then 80, where it does not say (a pseudo-terminal nobody sized says 0)."""
        try:
            columns = os.get_terminal_size(self.stream.fileno()).columns
        except (AttributeError, ValueError, OSError):
            columns = 0
        if columns <= 0:
            columns = int(os.environ["COLUMNS"]) if re.match(r"[0-9]{1,4}\Z", os.environ.get("COLUMNS", "")) else 80
        return max(1, columns)

    def paint(self, text, phase):
        color = {"completed": "32", "partial": "33", "failed": "31"}.get(phase)
        return "\x1b[%sm%s\x1b[0m" % (color, text) if color and self.color and text else text

    def end_progress(self):
        self._end_redraw()

    def _end_redraw(self):
        if self._redrawn:
            self._redrawn = False
            self._write("\n")

    def _write(self, text):
        if self.stream is None:
            return
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError, AttributeError):
            self.stream = None          # a closed or full stderr changes nothing else


def cells(text):
    """The columns text takes on a terminal: wide characters take two, combining marks none."""
    try:
        text.encode("ascii")
        return len(text)                # the common case, without a look at each character
    except UnicodeEncodeError:
        return sum(_cells(ch) for ch in text)


def _cells(ch):
    return 0 if unicodedata.combining(ch) else 2 if unicodedata.east_asian_width(ch) in "WF" else 1


def fit(text, room):
    """text cut to at most `room` columns, in one pass however long it is."""
    if len(text) * 2 <= room:
        return text
    width = 0
    for index, ch in enumerate(text):
        width += _cells(ch)
        if width > room:
            return text[:index]
    return text


def _isatty(stream):
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def write_json(doc, meta=None, query=None):
    """Print the result of a command: its one JSON document, or with --query the selected values as
    text (see write_stdout). `meta` names what the command did, for OUTPUT_FAILED."""
    doc = redact_values(doc)
    text = json.dumps(doc, ensure_ascii=True, allow_nan=False) + "\n" if query is None else query_text(doc, query)
    write_stdout(text, meta, doc)


def query_text(doc, paths):
    """--query: the values at `paths`, tab-separated, one line per entry of an array. Strings raw (on one
    printable line), numbers and booleans as JSON, null empty, objects and arrays as compact JSON."""
    lines = []
    for entry in doc if isinstance(doc, list) else [doc]:
        fields = []
        for path in paths:
            value = entry
            for key in path.split("."):
                value = value.get(key) if isinstance(value, dict) else None
            if value is None:
                fields.append("")
            elif isinstance(value, str):
                fields.append(printable(value))
            else:
                fields.append(json.dumps(value, ensure_ascii=True, allow_nan=False, separators=(",", ":")))
        lines.append("\t".join(fields) + "\n")
    return "".join(lines)


def write_stdout(text, meta=None, doc=None):
    """Write stdout. A reader that left (| head) ends it quietly; any other failure is OUTPUT_FAILED,
    which carries what could not be printed (`doc`, already redacted), so that nothing is lost."""
    try:
        if sys.stdout is None:
            raise OSError("stdout is closed")
        sys.stdout.write(text)
        sys.stdout.flush()
    except BrokenPipeError:
        _silence_stdout()
    except (OSError, ValueError, AttributeError) as exc:
        _silence_stdout()
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        shown = json.dumps(doc, ensure_ascii=True, allow_nan=False) if doc is not None else ""   # redacted
        raise LandbaseError("OUTPUT_FAILED", "the command did its work but stdout could not be written (%s)%s"
                            % (reason, "; the result was: " + shown[:2000] if shown else ""), meta)


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
    than MAX_JSON_DEPTH. Linear in the size of `raw`, whatever it holds. StrictJSONError."""
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise StrictJSONError("not UTF-8 (byte 0x%02x at offset %d)" % (raw[exc.start], exc.start))
    if _too_deep(raw):
        raise StrictJSONError("nested deeper than %d levels" % MAX_JSON_DEPTH)
    numbers = {}                # the number checks cost a call a number: only where a number may be too long
    if LONG_NUMBER_RE.search(raw):
        numbers = {"parse_float": _finite_float, "parse_int": _bounded_int}
    import gc
    collect = gc.isenabled()
    gc.disable()                # a million small containers: the collector would make it slower, not safer
    try:
        return json.loads(text, object_pairs_hook=_refuse_duplicates, parse_constant=_refuse_constant, **numbers)
    except RecursionError:
        raise StrictJSONError("nested deeper than %d levels" % MAX_JSON_DEPTH)
    except StrictJSONError:
        raise
    except ValueError as exc:
        raise StrictJSONError("not valid JSON: %s" % exc)
    finally:
        if collect:
            gc.enable()


def _too_deep(raw):
    """Whether the brackets outside strings nest deeper than MAX_JSON_DEPTH, by whole-buffer operations only
    (no regular expression, no loop a character): on 3.12+ the parser accepts documents deeper than Python's
    recursion limit lets anything walk afterwards."""
    if raw.count(b"[") + raw.count(b"{") <= MAX_JSON_DEPTH:
        return False
    outside = b"".join(raw.replace(b"\\\\", b"").replace(b'\\"', b"").split(b'"')[::2])    # strings gone
    steps = outside.translate(BRACKET_STEPS, NOT_BRACKETS)          # 2 for [ {, 0 for ] }: depth = sum - count
    return max(map(operator.sub, itertools.accumulate(steps), itertools.count(1)), default=0) > MAX_JSON_DEPTH


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


DURATION_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text, option):
    """Seconds in 90, 90s, 30m, 12h or 2d; INVALID_INPUT naming the option otherwise."""
    match = re.match(r"\s*([0-9]{1,9})\s*([smhd]?)\s*\Z", text or "")
    if not match:
        raise LandbaseError("INVALID_INPUT", "%s takes a duration such as 90s, 30m, 12h or 2d, not %r" % (option, text))
    return int(match.group(1)) * DURATION_UNITS[match.group(2)]


def format_duration(seconds):
    """The shortest of 90s, 30m, 1h30m, 2d for a whole number of seconds."""
    seconds = int(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return "%d%s" % (seconds // size, unit)
    return format_span(seconds).replace("m00s", "m")


def config_dir():
    configured = os.environ.get("LANDBASE_CONFIG_DIR")
    return configured if configured else os.path.join(os.path.expanduser("~"), ".landbase")


class Session:
    """The credentials for one call: token, where it came from, when it ends, the active account."""

    def __init__(self, token, source, expires_at, account_id):
        self.token = token
        self.source = source            # "env" or "file"
        self.expires_at = expires_at    # epoch seconds, or None when unknown
        self.account_id = account_id


class SessionStore:
    """platform.json: the official CLI's file and shape, private, written atomically, unknown keys kept.

    Everything that knows the file's format is here: reading a session, saving a login, and the one rule
    for the active account (--account, then LANDBASE_ACCOUNT_ID, then the file)."""

    def __init__(self, directory=None):
        self.directory = directory or config_dir()
        self.path = os.path.join(self.directory, SESSION_FILE)

    def load(self, console=None):
        """The stored object ({} when there is none); a damaged file is SETUP_FAILED naming it."""
        raw, mode = self._read()
        if raw is None:
            return {}
        if console is not None and os.name == "posix" and mode & 0o077:
            console.warn("%s is open to group or others; run: chmod 600 %s" % (self.path, self.path))
        fix = "; fix it, or remove it and run: landbase_import.py auth login"
        if not raw.strip():
            raise LandbaseError("SETUP_FAILED", "%s is empty%s" % (self.path, fix))
        try:
            data = parse_json(raw)
        except StrictJSONError as exc:
            raise LandbaseError("SETUP_FAILED", "%s is damaged: %s%s" % (self.path, exc, fix))
        if not isinstance(data, dict):
            raise LandbaseError("SETUP_FAILED", "%s must hold a JSON object, not %s%s"
                                % (self.path, _json_type(data), fix))
        for key in ("accessToken", "expiresAt", "accountId", "deviceName"):
            if data.get(key) is not None and not isinstance(data[key], str):
                raise LandbaseError("SETUP_FAILED", "%s: %s must be a string%s" % (self.path, key, fix))
        remember_secret(data.get("accessToken"))
        if data.get("accountId") is not None and not ACCOUNT_ID_RE.match(data["accountId"]):
            raise LandbaseError("SETUP_FAILED", "%s: accountId %s is not an account id%s" % (
                self.path, excerpt(repr(data["accountId"]), 80), "; run: landbase_import.py account set <accountId>"))
        if data.get("expiresAt") is not None:
            try:
                parse_time(data["expiresAt"])
            except ValueError:
                raise LandbaseError("SETUP_FAILED", "%s: expiresAt %r is not a time like 2026-12-05T10:00:00Z%s"
                                    % (self.path, data["expiresAt"], fix))
        return data

    def _read(self):
        """(bytes, mode) of the file, or (None, None) when there is none. Opened without blocking and
        refused unless it is a regular file: a FIFO in its place must not hang every command."""
        try:
            fd = os.open(self.path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        except FileNotFoundError:
            return None, None
        except OSError as exc:
            raise LandbaseError("SETUP_FAILED", "cannot read %s: %s" % (self.path, exc.strerror or exc))
        try:
            mode = os.fstat(fd).st_mode
            if not stat.S_ISREG(mode):
                raise LandbaseError("SETUP_FAILED", "%s is not a regular file; remove it and run: "
                                    "landbase_import.py auth login" % self.path)
            chunks, size = [], 0
            while size <= MAX_BODY_BYTES:
                chunk = os.read(fd, 65536)
                if not chunk:
                    break
                chunks.append(chunk)
                size += len(chunk)
        except OSError as exc:
            raise LandbaseError("SETUP_FAILED", "cannot read %s: %s" % (self.path, exc.strerror or exc))
        finally:
            os.close(fd)
        if size > MAX_BODY_BYTES:
            raise LandbaseError("SETUP_FAILED", "%s is larger than 1 MiB: it is not a session file" % self.path)
        return b"".join(chunks), mode

    def session(self, account_override, console):
        """The session for this call: AUTH_REQUIRED without one, AUTH_FAILED past expiresAt; no request sent."""
        stored = self.load(console)
        token = os.environ.get("LANDBASE_ACCESS_TOKEN", "").strip()
        source = "env"
        if not token:
            token, source = stored.get("accessToken") or "", "file"
        if not token:
            raise LandbaseError("AUTH_REQUIRED", "not logged in: run landbase_import.py auth login "
                                "(or set LANDBASE_ACCESS_TOKEN)")
        if not usable_token(token):
            raise (LandbaseError("INVALID_INPUT", "LANDBASE_ACCESS_TOKEN is not a usable token (printable ASCII "
                                 "only); set it to the token itself") if source == "env" else
                   LandbaseError("SETUP_FAILED", "%s: accessToken is not a usable token (printable ASCII only); "
                                 "run: landbase_import.py auth login" % self.path))
        expires_at = None
        if stored.get("expiresAt") and stored.get("accessToken") == token:
            expires_at = parse_time(stored["expiresAt"])
        if expires_at is not None:
            left = expires_at - CLOCK.wall()
            if left <= 0:
                raise LandbaseError("AUTH_FAILED", "the session expired at %s: run landbase_import.py auth login"
                                    % stored["expiresAt"], {"expiresAt": stored["expiresAt"]})
            if left < SESSION_WARN_BELOW:
                console.warn("the session expires in %s (%s): run landbase_import.py auth login soon"
                             % (format_span(left), stored["expiresAt"]))
        account_id = account_override or os.environ.get("LANDBASE_ACCOUNT_ID") or stored.get("accountId")
        return Session(token, source, expires_at, account_id or None)

    def save_login(self, granted, console):
        """Store a new login over whatever was there (a damaged file is replaced); the stored active
        account, which settle_account() then checks against the new identity."""
        import socket
        try:
            previous = self.load(console)
        except LandbaseError:
            previous = {}
        account_id = granted.get("accountId") or previous.get("accountId")
        self.update({"accessToken": granted["accessToken"], "expiresAt": granted["expiresAt"],
                     "accountId": account_id, "deviceName": previous.get("deviceName") or socket.gethostname()},
                    console, replace_damaged=True)
        return account_id

    def settle_account(self, accounts, account_id, console):
        """After a login, the active account is one the new identity can use: a stored one it cannot use
        is cleared, and when none is active the identity's only account becomes the active one."""
        ids = [a["id"] for a in accounts]
        if account_id and account_id not in ids:
            self.update({"accountId": None})
            console.line("The active account %s is not one this identity can use; it was cleared. Choose one "
                         "with: landbase_import.py account set <accountId> (see: landbase_import.py account list)"
                         % account_id)
            account_id = None
        if not account_id and len(ids) == 1:
            account_id = ids[0]
            self.update({"accountId": account_id})
            console.line("Active account: %s (the only one this identity has)" % account_id)
        return account_id

    def save(self, data):
        """Write atomically: a reader, or a crash at any point, sees the old file or the new one."""
        self._make_directory()
        tmp = os.path.join(self.directory, ".%s.%d.%s.tmp" % (SESSION_FILE, os.getpid(), os.urandom(4).hex()))
        payload = (json.dumps(data, indent=2, ensure_ascii=True, allow_nan=False) + "\n").encode("ascii")
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
        try:
            fd = os.open(tmp, flags, 0o600)
            try:
                if hasattr(os, "fchmod"):
                    os.fchmod(fd, 0o600)
                view = memoryview(payload)
                while view:
                    view = view[os.write(fd, view):]
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, self.path)
        except OSError as exc:
            _remove_quietly(tmp)
            raise LandbaseError("SETUP_FAILED", "cannot write %s: %s" % (self.path, exc.strerror or exc))
        except BaseException:
            _remove_quietly(tmp)
            raise
        self._fsync_directory()
        self._remove_stale_temporaries()

    def update(self, changes, console=None, replace_damaged=False):
        """Read, change, write back; keys this tool does not know are kept."""
        try:
            data = self.load(console)
        except LandbaseError:
            if not replace_damaged:
                raise
            if console is not None:
                console.warn("replacing the damaged %s" % self.path)
            data = {}
        data.update(changes)
        self.save(data)
        return data

    def remove(self):
        try:
            os.remove(self.path)
            return True
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise LandbaseError("SETUP_FAILED", "cannot remove %s: %s" % (self.path, exc.strerror or exc))

    def _make_directory(self):
        try:
            parent = os.path.dirname(os.path.abspath(self.directory))
            if not os.path.isdir(parent):
                os.makedirs(parent, 0o700)
            if not os.path.isdir(self.directory):
                try:
                    os.mkdir(self.directory, 0o700)
                except FileExistsError:
                    pass                # another process made it first
                os.chmod(self.directory, 0o700)
        except OSError as exc:
            raise LandbaseError("SETUP_FAILED", "cannot create %s: %s" % (self.directory, exc.strerror or exc))

    def _remove_stale_temporaries(self):
        """Remove temporary files of writers that died mid-write (SIGKILL runs no cleanup); best effort,
        as the new file is already in place."""
        if os.name != "posix":
            return                      # os.kill(pid, 0) would terminate the process on Windows
        prefix = ".%s." % SESSION_FILE
        try:
            names = os.listdir(self.directory)
        except OSError:
            return
        for name in names:
            pid = name[len(prefix):].split(".", 1)[0]
            if name.startswith(prefix) and name.endswith(".tmp") and pid.isdigit() and not _alive(int(pid)):
                _remove_quietly(os.path.join(self.directory, name))

    def _fsync_directory(self):
        if not hasattr(os, "O_DIRECTORY"):
            return
        try:
            fd = os.open(self.directory, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError:
            pass                        # best effort: the rename already happened


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True                     # alive, owned by someone else
    return True


def _remove_quietly(path):
    try:
        os.remove(path)
    except OSError:
        pass


def require_account(session):
    if not session.account_id:
        raise LandbaseError("INVALID_INPUT", "No account id: run landbase_import.py account set <accountId> "
                            "(see account list), or pass --account=<id>")
    check_account_id(session.account_id)
    return session.account_id


def check_account_id(value, what="account id"):
    if not isinstance(value, str) or not ACCOUNT_ID_RE.match(value):
        raise LandbaseError("INVALID_INPUT", "%s %r is not valid: use 1 to 64 letters, digits, _ or -"
                            % (what, value))
    return value


def is_import_id(value):
    """An import id as the platform holds it: a positive whole number (not true, not 7.0) of 63 bits."""
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value <= MAX_IMPORT_ID


def check_import_id(value):
    if not IMPORT_ID_RE.match(value) or not 0 < int(value) <= MAX_IMPORT_ID:
        raise LandbaseError("INVALID_INPUT", "import id %r is not valid: it is a positive whole number such as 7"
                            % value)
    return int(value)


def format_span(seconds):
    seconds = int(max(0, seconds))
    if seconds >= 86400:
        return "%dd%02dh" % (seconds // 86400, seconds % 86400 // 3600)
    if seconds >= 3600:
        return "%dh%02dm" % (seconds // 3600, seconds % 3600 // 60)
    if seconds >= 60:
        return "%dm%02ds" % (seconds // 60, seconds % 60)
    return "%ds" % seconds


# ---------------------------------------------------------------- HTTP

def base_url(env_name, default):
    """A base URL from the environment, refused unless it is https on Landbase (or http on loopback)."""
    url = os.environ.get(env_name) or default
    try:
        parts = urllib.parse.urlsplit(url)
        host = (parts.hostname or "").lower()
        parts.port                      # raises ValueError for a bad port
    except ValueError as exc:
        raise LandbaseError("INVALID_INPUT", "%s=%s is not a valid URL (%s)" % (env_name, excerpt(url), exc))
    if parts.scheme not in ("http", "https") or not host or parts.username or parts.query or parts.fragment \
            or any(ch.isspace() or not ch.isprintable() for ch in url):
        raise LandbaseError("INVALID_INPUT", "%s=%s is not an http(s) base URL" % (env_name, excerpt(url)))
    if parts.scheme == "http" and not is_loopback(url):
        raise LandbaseError("INVALID_INPUT", "%s=%s: https is required except on loopback" % (env_name, url))
    landbase = host == "landbase.com" or host.endswith(".landbase.com")
    if not (landbase or is_loopback(url)) and os.environ.get("LANDBASE_ALLOW_CUSTOM_API_URL") != "1":
        raise LandbaseError("INVALID_INPUT", "%s=%s: the host %s is not landbase.com or loopback; set "
                            "LANDBASE_ALLOW_CUSTOM_API_URL=1 to send your credentials there" % (env_name, url, host))
    return url.rstrip("/")


def is_loopback(url):
    return (urllib.parse.urlsplit(url).hostname or "").lower() in ("localhost", "127.0.0.1", "::1")


def same_origin(url_a, url_b):
    """Whether two URLs share scheme, host and port; ValueError for a port out of range."""
    a, b = urllib.parse.urlsplit(url_a), urllib.parse.urlsplit(url_b)
    default = {"http": 80, "https": 443}
    return ((a.scheme, (a.hostname or "").lower(), a.port or default.get(a.scheme))
            == (b.scheme, (b.hostname or "").lower(), b.port or default.get(b.scheme)))


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


def retry_wait(error, planned, longest=None):
    """The one retry decision, for the one-shot retries, the poller and the device flow alike: the
    seconds to wait before trying again after `error`, or None to give up. `planned` is the loop's own
    next wait (None when it has no try left); a longer Retry-After is honoured, up to `longest`."""
    if not error.transient or planned is None:
        return None
    wait = planned if error.retry_after is None else max(planned, error.retry_after)
    if longest is not None and wait > longest:
        return None
    return wait


class Deadline:
    """--timeout over a whole request, connect to last byte: when it passes, the request's socket is
    shut down, so that a server dripping one byte at a time cannot stretch it (the socket's own
    timeout bounds each read, not the request)."""

    def __init__(self, seconds):
        self.seconds = seconds
        self.expired = False
        self.lock = threading.Lock()
        self.sockets = []
        self.timer = threading.Timer(seconds, self.expire)
        self.timer.daemon = True

    def watch(self, sock):
        """Called with each socket the request opens (a proxy's included); returns it."""
        with self.lock:
            watched = sock.dup()
            self.sockets.append(watched)
            if self.expired:
                self._shut(watched)
        return sock

    def expire(self):
        with self.lock:
            self.expired = True
            for sock in self.sockets:
                self._shut(sock)

    @staticmethod
    def _shut(sock):
        import socket
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass                        # already closed

    def __enter__(self):
        self.timer.start()
        return self

    def __exit__(self, *exc):
        self.timer.cancel()
        with self.lock:
            for sock in self.sockets:
                sock.close()
            self.sockets = []


def _opener(https, direct):
    """One opener per process: no redirects followed by urllib, every socket watched by its request's
    Deadline, one verifying TLS context for https, and no proxy at all for a loopback base."""
    import socket
    import ssl
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
        """Follow nothing, read no Location: Api.once() judges redirects itself, inside the answer boundary."""

        def http_error_302(self, req, fp, code, msg, headers):
            return None                 # the default error handler then raises HTTPError 30x
        http_error_301 = http_error_303 = http_error_307 = http_error_308 = http_error_302

    class HTTPHandler(urllib.request.HTTPHandler):
        def http_open(self, req):
            return self.do_open(plain, req, deadline=req.deadline)

    class HTTPSHandler(urllib.request.HTTPSHandler):
        def https_open(self, req):
            return self.do_open(secure, req, context=self._context, deadline=req.deadline)

    # loading the CA store costs ~35 ms: only where it is used
    handlers = [NoRedirects(), HTTPHandler(),
                HTTPSHandler(context=ssl.create_default_context() if https else None)]
    if direct:                          # http_proxy must never see a token bound for loopback
        handlers.append(urllib.request.ProxyHandler({}))
    return urllib.request.build_opener(*handlers)


class AnswerBoundary:
    """Where an answer (status, headers, body) is interpreted: anything raised inside that is not a
    LandbaseError is a broken answer, a transient API_ERROR, never an internal error."""

    def __init__(self, where):
        self.where = where

    def __enter__(self):
        return self

    def __exit__(self, kind, exc, traceback):
        if kind is None or not issubclass(kind, Exception) or issubclass(kind, LandbaseError):
            return False
        raise LandbaseError("API_ERROR", "%s: the answer could not be read (%s: %s)"
                            % (self.where, kind.__name__, excerpt(str(exc), 120)), transient=True)


class Api:
    """The one way to talk to the platform: timeout, headers, token, JSON, error mapping, retries."""

    def __init__(self, base, token=None, timeout=DEFAULT_TIMEOUT, console=None):
        self.base = base
        self.token = remember_secret(token)
        self.ambiguous = False
        self.timeout = timeout
        self.console = console or Console()
        self._opener = None

    def call(self, method, path, body=None, auth=True, retry=True, headers=None, check=None, timeout=None):
        """The decoded JSON answer of a 2xx, passed through check(); LandbaseError otherwise.

        check() raises a transient API_ERROR for an answer that breaks the contract, so that
        such an answer is retried like a 5xx. `ambiguous` says afterwards whether an attempt failed
        after it was sent: the platform may have acted on it."""
        delays = iter(RETRY_DELAYS if retry else ())
        attempt = 0
        self.ambiguous = False
        while True:
            try:
                return self.once(method, path, body, auth, headers, check, timeout)
            except LandbaseError as exc:
                self.ambiguous = self.ambiguous or exc.transient
                planned = next(delays, None)
                wait = retry_wait(exc, planned, RETRY_AFTER_CAP)
                if wait is None:
                    if exc.transient and planned is not None and exc.retry_after is not None:
                        exc.message += ("; the platform asked to wait %s before trying again, longer than the %s a "
                                        "one-shot command waits: run it again later"
                                        % (format_span(exc.retry_after), format_duration(RETRY_AFTER_CAP)))
                    raise
                attempt += 1
                self.console.line("%s %s failed (%s: %s); retry %d of %d in %ds"
                                  % (method, path, exc.code, exc.message, attempt, len(RETRY_DELAYS), wait))
                CLOCK.sleep(wait)

    def once(self, method, path, body=None, auth=True, headers=None, check=None, timeout=None):
        """One request, with the same-origin redirects it meets; its answer judged inside the boundary."""
        url = self.base + path
        data = None if body is None else json.dumps(body, ensure_ascii=True, allow_nan=False).encode("ascii")
        for _ in range(MAX_REDIRECTS + 1):
            status, reply_headers, raw = self._send(method, url, data, auth, headers or {}, timeout or self.timeout)
            with AnswerBoundary("%s %s" % (method, path)):
                if status in (301, 302, 303, 307, 308):
                    url, method, data = self._redirect(url, method, data, status, reply_headers)
                    continue
                answer = self._decode(method, path, status, reply_headers, raw)
                return check(answer) if check is not None else answer
        raise LandbaseError("API_ERROR", "%s %s: more than %d redirects" % (method, path, MAX_REDIRECTS))

    def _redirect(self, url, method, data, status, headers):
        location = (headers.get("Location") or "").strip()
        if not location:
            raise LandbaseError("API_ERROR", "%s %s: HTTP %d without a Location" % (method, url, status),
                                transient=True)
        try:
            target = urllib.parse.urljoin(url, location)
            usable = not any(ch.isspace() or not ch.isprintable() for ch in target) \
                and urllib.parse.urlsplit(target).username is None
            same = usable and same_origin(url, target)
        except ValueError:
            usable = False
        if not usable:
            raise LandbaseError("API_ERROR", "%s %s: HTTP %d with a Location that is not a usable URL (%s)"
                                % (method, url, status, excerpt(location, 100)), {"status": status},
                                transient=True)
        if not same:
            raise LandbaseError("API_ERROR", "%s %s: refused a redirect to another origin (%s); the token "
                                "is never sent there" % (method, url, excerpt(target)), {"status": status})
        if status in (307, 308):
            return target, method, data
        if method == "GET":
            return target, "GET", None
        raise LandbaseError("API_ERROR", "%s %s: refused an HTTP %d redirect of a %s" % (method, url, status, method))

    def _send(self, method, url, data, auth, headers, timeout):
        """(status, headers, body) of one exchange, read against a Deadline and at most MAX_ANSWER_BYTES."""
        import http.client
        import urllib.request
        import urllib.error
        if self._opener is None:
            self._opener = _opener(self.base.startswith("https:"), is_loopback(self.base))
        request = urllib.request.Request(url, data=data, method=method)
        request.add_header("Accept", "application/json")
        request.add_header("User-Agent", "landbase-import/%s python/%d.%d" % ((__version__,) + sys.version_info[:2]))
        if data is not None:
            request.add_header("Content-Type", "application/json")
        for name, value in headers.items():
            request.add_header(name, value)
        if auth and self.token:
            request.add_unredirected_header("Authorization", "Bearer " + self.token)
        self.console.debug("> %s %s%s" % (method, url, " (Authorization: Bearer %s)" % REDACTED
                                          if auth and self.token else ""))
        for name, value in sorted(headers.items()):
            self.console.debug("> %s: %s" % (name, value))
        if data is not None and "/oauth/" not in url:
            self.console.debug("> " + data.decode("ascii"))
        started = CLOCK.now()
        where = "%s %s" % (method, url)
        request.deadline = deadline = Deadline(timeout)
        try:
            with deadline:
                try:
                    response = self._opener.open(request, timeout=timeout)
                except urllib.error.HTTPError as exc:
                    response = exc
                with response:
                    status = response.getcode()
                    reply_headers = response.headers
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
        return status, reply_headers, raw

    def _transport_error(self, where, reason, expired, timeout):
        import socket
        import ssl
        if expired or isinstance(reason, socket.timeout):
            return LandbaseError("TIMEOUT", "%s: no complete answer within %gs%s" % (
                where, timeout, " (--timeout)" if timeout == self.timeout else " (what was left of --max-wait)"),
                transient=True)
        if isinstance(reason, ssl.CertificateError) or (isinstance(reason, ssl.SSLError) and "CERTIFICATE_VERIFY_FAILED"
                                                        in "%s %s" % (getattr(reason, "reason", ""), reason)):
            return LandbaseError("NETWORK_ERROR", "%s: TLS failed (%s); the certificate must be trusted by "
                                 "the system store or SSL_CERT_FILE" % (where, excerpt(str(reason))))
        if isinstance(reason, ValueError) and not isinstance(reason, ssl.SSLError):
            return LandbaseError("API_ERROR", "%s: a malformed answer (%s)" % (where, excerpt(str(reason))),
                                 transient=True)
        return LandbaseError("NETWORK_ERROR", "%s: %s" % (where, excerpt(str(reason) or type(reason).__name__)),
                             transient=True)

    def _decode(self, method, path, status, headers, raw):
        where = "%s %s" % (method, path)
        data = None
        if raw.strip():
            try:
                data = parse_json(raw)
            except StrictJSONError as exc:
                if 200 <= status < 300:
                    raise LandbaseError("API_ERROR", "%s: HTTP %d with a body that is not strict JSON (%s): %s"
                                        % (where, status, exc, excerpt(raw)), {"status": status}, transient=True)
        if isinstance(data, dict):
            remember_secret(data.get("accessToken"))        # a token a server sends is never printed
        if 200 <= status < 300:
            return data
        error = data.get("error") if isinstance(data, dict) else None
        error = error if isinstance(error, dict) else {}
        server_code = error.get("code") if isinstance(error.get("code"), str) else None
        code = server_code if server_code in EXIT_CODES and server_code not in LOCAL_CODES \
            else STATUS_CODES.get(status, "API_ERROR")
        message = error.get("message") if isinstance(error.get("message"), str) else None
        if message:
            message = "%s: %s" % (where, excerpt(message, 300))
        else:
            message = "%s: HTTP %d: %s" % (where, status, excerpt(raw))
        if status == 401:
            message += "; run landbase_import.py auth login"
        meta = {"status": status}
        if isinstance(error.get("meta"), dict):
            meta.update(error["meta"])
        raise LandbaseError(code, message, meta, server_code=server_code,
                            transient=status == 429 or status >= 500,
                            retry_after=parse_retry_after(headers, data))


def read_answer(response, where):
    """The body, read in chunks; past MAX_ANSWER_BYTES it is a broken answer and is not read further."""
    chunks, size = [], 0
    while True:
        chunk = response.read(65536)
        if not chunk:
            left = getattr(response, "length", None)      # what Content-Length promised and never came
            if isinstance(left, int) and left > 0:
                raise LandbaseError("NETWORK_ERROR", "%s: the connection closed %d bytes before the end of the "
                                    "answer" % (where, left), transient=True)
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

def contract_error(where, field, value, expected):
    return LandbaseError("API_ERROR", "%s: the answer broke the contract: %s is %s, expected %s"
                         % (where, field, excerpt(json.dumps(value), 60), expected), transient=True)


def expect_object(data, where):
    if not isinstance(data, dict):
        raise contract_error(where, "the body", data, "an object")
    return data


def is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == value \
        and value not in (float("inf"), float("-inf"))


def status_answer(data, import_id):
    """The five keys of a status snapshot, checked against the contract."""
    where = "import %d status" % import_id
    expect_object(data, where)
    if data.get("importId") != import_id or isinstance(data.get("importId"), bool):
        raise contract_error(where, "importId", data.get("importId"), "%d" % import_id)
    phase = data.get("phase")
    if not isinstance(phase, str) or not phase:
        raise contract_error(where, "phase", phase, "a string")
    percent = data.get("percent")
    if percent is not None and not (is_number(percent) and 0 <= percent <= 100):
        raise contract_error(where, "percent", percent, "a number from 0 to 100 or null")
    counts = data.get("counts")
    if counts is not None and not isinstance(counts, dict):
        raise contract_error(where, "counts", counts, "an object or null")
    for key in COUNT_KEYS:
        value = counts.get(key) if counts is not None else None
        if value is not None and not (isinstance(value, int) and not isinstance(value, bool)):
            raise contract_error(where, "counts." + key, value, "an integer or null")
    error = data.get("error")
    if error is not None and not isinstance(error, dict):
        raise contract_error(where, "error", error, "an object or null")
    for key in ("code", "message"):
        if error is not None and error.get(key) is not None and not isinstance(error[key], str):
            raise contract_error(where, "error." + key, error[key], "a string")
    return {"importId": import_id, "phase": phase, "percent": percent, "counts": counts, "error": error}


def started_answer(data):
    where = "POST contacts-imports"
    import_id = expect_object(data, where).get("importId")
    if not is_import_id(import_id):
        raise contract_error(where, "importId", import_id, "a positive integer")
    if not isinstance(data.get("runRef"), str):
        raise contract_error(where, "runRef", data.get("runRef"), "a string")
    return data


def accounts_answer(data):
    accounts = expect_object(data, "GET /v1/accounts").get("accounts")
    if not isinstance(accounts, list):
        raise contract_error("GET /v1/accounts", "accounts", accounts, "a list")
    for entry in accounts:
        if not isinstance(entry, dict) or not isinstance(entry.get("id"), str):
            raise contract_error("GET /v1/accounts", "an account", entry, "an object with a string id")
    return accounts


def me_answer(data):
    expect_object(data, "GET /v1/me")
    for key in ("userId", "email", "expiresAt"):
        if data.get(key) is not None and not isinstance(data.get(key), str):
            raise contract_error("GET /v1/me", key, data.get(key), "a string")
    return data


def device_answer(data):
    expect_object(data, "POST /v1/oauth/device")
    for key in ("deviceCode", "userCode", "verificationUri"):
        if not isinstance(data.get(key), str):
            raise contract_error("POST /v1/oauth/device", key, data.get(key), "a string")
    return data


def token_answer(data):
    where = "POST /v1/oauth/token"
    expect_object(data, where)
    token = remember_secret(data.get("accessToken"))
    if not (usable_token(token) and token.startswith("lbs_") and len(token) > 4 and " " not in token):
        raise contract_error(where, "accessToken", "(hidden)", "an lbs_ token")
    try:
        parse_time(data.get("expiresAt"))
    except ValueError:
        raise contract_error(where, "expiresAt", data.get("expiresAt"), "a time like 2026-12-05T10:00:00Z")
    if data.get("accountId") is not None and not isinstance(data.get("accountId"), str):
        raise contract_error(where, "accountId", data.get("accountId"), "a string or null")
    return data


def count_of(counts, key):
    value = counts.get(key) if isinstance(counts, dict) else None
    return value if is_number(value) else None


def fetch_status(api, account_id, import_id, retry=True, timeout=None):
    path = "/v1/accounts/%s/contacts-imports/%d" % (account_id, import_id)
    try:
        return api.call("GET", path, retry=retry, check=lambda data: status_answer(data, import_id), timeout=timeout)
    except LandbaseError as exc:
        exc.meta.setdefault("importId", import_id)
        raise account_hint(exc, account_id)


def fetch_accounts(api):
    return api.call("GET", "/v1/accounts", check=accounts_answer)


def fetch_me(api):
    return api.call("GET", "/v1/me", check=me_answer)


# ---------------------------------------------------------------- the import poller

def poll_delays():
    """5 s, 10 s, then 20 s for ever: the waits between status reads."""
    for delay in POLL_DELAYS:
        yield delay
    while True:
        yield POLL_EVERY


class Tracker:
    """One import being waited on: its schedule, its last snapshot (or the error that ended it), its ETA."""

    def __init__(self, import_id, now):
        self.import_id = import_id
        self.delays = poll_delays()
        self.due = now                  # when it is polled next
        self.polled = None              # when it was last read
        self.status = None
        self.error = None               # the permanent error that ended this id (NOT_FOUND and the like)
        self.first_seen = None          # (time, percent) of the first in_progress reading

    @property
    def done(self):
        return self.error is not None or (self.status is not None and self.status["phase"] in TERMINAL_PHASES)

    @property
    def outcome(self):
        """The code this id ends a wait with; None when it completed."""
        if self.error is not None:
            return self.error.code
        phase = self.status["phase"] if self.status is not None else None
        return {"completed": None, "partial": "IMPORT_PARTIAL", "failed": "IMPORT_FAILED"}.get(phase, "TIMEOUT")

    def entry(self):
        """Its place in the output: the last snapshot, or phase null and the error that ended it."""
        if self.status is not None and self.error is None:
            return self.status
        error = {"code": self.error.code, "message": self.error.message} if self.error is not None else None
        return {"importId": self.import_id, "phase": None, "percent": None, "counts": None, "error": error}

    def observe(self, status, now):
        self.status, self.polled = status, now
        percent = status["percent"]
        if status["phase"] == "in_progress" and is_number(percent) and self.first_seen is None:
            self.first_seen = (now, percent)

    def eta(self, now):
        """Seconds left at the rate observed so far, counting down between polls; None until a rate is known."""
        percent = self.status["percent"] if self.status is not None else None
        if self.first_seen is None or not is_number(percent) or self.done:
            return None
        started, first = self.first_seen
        if self.polled <= started or percent <= first:
            return None
        return max(0.0, (100 - percent) * (self.polled - started) / (percent - first) - (now - self.polled))


def describe_counts(counts):
    parts = []
    for key in ("imported", "skipped", "failed"):
        value = count_of(counts, key)
        if value is not None:
            parts.append("%d %s" % (value, key))
    total = count_of(counts, "total")
    text = ", ".join(parts)
    if total is not None:
        text = (text + " of %d rows" % total) if text else "%d rows" % total
    return text


def progress_line(tracker, now):
    """The log form of a reading: import 7: in_progress 42% (… of 1000 rows); next poll in 20s"""
    status = tracker.status
    percent = "%d%%" % status["percent"] if is_number(status["percent"]) else "--%"
    counts = describe_counts(status["counts"])
    return "import %d: %s %s%s%s" % (tracker.import_id, status["phase"], percent, " (%s)" % counts if counts else "",
                                     "" if tracker.done else "; next poll in %ds" % seconds_until(tracker.due, now))


def progress_segments(tracker, now):
    """The terminal form, as (text, phase to colour, rank) pieces: a bar, counts, an ETA once a rate is
    known, a countdown to the next poll. Console.progress() sanitises them and fits them to the width,
    leaving out the pieces of highest rank first (the id, the percentage and the phase always stay)."""
    status = tracker.status
    percent = status["percent"] if is_number(status["percent"]) else None
    filled = int(BAR_WIDTH * percent / 100) if percent is not None else 0
    total, done = count_of(status["counts"], "total"), [count_of(status["counts"], key)
                                                         for key in ("imported", "skipped", "failed")]
    counts = "%d/%d rows" % (sum(n or 0 for n in done), total) if total is not None else ""
    counts += ", %d failed" % done[2] if counts and done[2] else ""
    eta = tracker.eta(now)
    return [("import %d " % tracker.import_id, None, None),
            ("[%s%s] " % ("#" * filled, "-" * (BAR_WIDTH - filled)), None, 3),
            ("%s " % ("%d%%" % percent if percent is not None else "--%"), None, None),
            (status["phase"], status["phase"], None),
            (" " + counts if counts else "", None, 4),
            (" ETA %s" % format_span(eta) if eta is not None else "", None, 1),
            ("" if tracker.done else " | next poll in %ds" % seconds_until(tracker.due, now), None, 2)]


def seconds_until(when, now):
    return max(0, int(when - now + 0.999))


def poll_until_terminal(api, account_id, trackers, console, limit):
    """Poll each import on its own schedule until every one has ended; TIMEOUT once `limit` has passed.

    On a terminal, a single import's line is redrawn about once a second between polls."""
    deadline = CLOCK.now() + limit
    redraw = console.tty and not console.quiet and len(trackers) == 1
    try:
        while True:
            pending = [t for t in trackers if not t.done]
            if not pending:
                return
            now = CLOCK.now()
            if now >= deadline:
                raise StopWaiting()
            due = [t for t in pending if t.due <= now]
            if due:
                poll_round(api, account_id, due, console, redraw, len(trackers) > 1, deadline - now)
                continue
            wake = min(min(t.due for t in pending), deadline)
            while now < wake:
                if redraw and trackers[0].status is not None:
                    console.progress(None, progress_segments(trackers[0], now))
                CLOCK.sleep(min(REDRAW_EVERY, wake - now) if redraw else wake - now)
                now = CLOCK.now()
    finally:
        console.end_progress()


class StopWaiting(Exception):
    """The wait's limit has passed: finish_wait() reports the imports still running."""


def poll_round(api, account_id, due, console, redraw, several, left):
    """Read the imports that are due, and plan each one's next read: the one retry decision decides
    after a failure. AUTH_FAILED ends the whole wait; another permanent error ends that id only.
    No request outlives the wait: each gets --timeout or what is `left` of --max-wait, the less."""
    timeout = min(api.timeout, max(left, 0.001))
    for tracker, (status, error) in zip(due, poll_batch(api, account_id, due, timeout)):
        now = CLOCK.now()
        if error is not None and not isinstance(error, LandbaseError):
            raise error                 # a bug, for main()'s boundary to report
        if error is not None:
            if error.code == "AUTH_FAILED":
                raise error
            wait = retry_wait(error, next(tracker.delays))
            if wait is None:
                tracker.error = error
                if several:
                    console.line("import %d: %s (%s); not polled again" % (tracker.import_id, error.message,
                                                                         error.code))
                continue
            tracker.due = now + wait
            console.line("import %d: poll failed (%s: %s); next poll in %ds"
                         % (tracker.import_id, error.code, error.message, wait))
            continue
        tracker.observe(status, now)
        if not tracker.done:
            tracker.due = now + next(tracker.delays)
        console.progress(progress_line(tracker, now), progress_segments(tracker, now) if redraw else None)


def poll_batch(api, account_id, trackers, timeout):
    """(status, error) for each tracker, at most MAX_POLLS_IN_FLIGHT requests at a time.

    The workers are daemon threads, so Ctrl-C or SIGTERM never waits for a request in flight;
    whatever a worker meets is handed back to this thread, never printed by the thread."""
    if len(trackers) == 1:
        return [poll_once(api, account_id, trackers[0], timeout)]
    results = [None] * len(trackers)
    todo = list(enumerate(trackers))
    lock = threading.Lock()

    def work():
        while True:
            with lock:
                if not todo:
                    return
                index, tracker = todo.pop()
            try:
                results[index] = poll_once(api, account_id, tracker, timeout)
            except Exception as exc:    # handed to the main thread, which raises it
                results[index] = (None, exc)
    workers = [threading.Thread(target=work, daemon=True) for _ in range(min(MAX_POLLS_IN_FLIGHT, len(trackers)))]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return results


def poll_once(api, account_id, tracker, timeout):
    try:
        return fetch_status(api, account_id, tracker.import_id, retry=False, timeout=timeout), None
    except LandbaseError as exc:
        return None, exc


def import_meta(import_ids, single):
    """The one builder of the error meta that names imports: importId for one, importIds for several."""
    return {"importId": import_ids[0]} if single else {"importIds": list(import_ids)}


def wait_and_report(api, account_id, import_ids, console, limit, single):
    """Wait, print the final status (or the array), and decide the exit (see finish_wait)."""
    started = CLOCK.now()
    trackers = [Tracker(import_id, started) for import_id in import_ids]
    try:
        poll_until_terminal(api, account_id, trackers, console, limit)
    except StopWaiting:
        pass
    except (KeyboardInterrupt, Terminated) as exc:
        code = "TERMINATED" if isinstance(exc, Terminated) else "INTERRUPTED"
        running = [t.import_id for t in trackers if not t.done] or import_ids
        command = resume_command(account_id, running)
        console.line("%s: the import%s keep%s running on Landbase. Resume the wait with:"
                     % ("Terminated" if code == "TERMINATED" else "Interrupted",
                        "" if single else "s", "s" if single else ""))
        console.line("  " + command)
        meta = import_meta(running, single)
        meta["resume"] = command
        stopped = LandbaseError(code, "the wait was %s; resume it with: %s"
                                % ("terminated" if code == "TERMINATED" else "interrupted", command), meta)
        return finish_wait(console, trackers, single, account_id, limit, stopped)
    return finish_wait(console, trackers, single, account_id, limit)


def finish_wait(console, trackers, single, account_id, limit, stopped=None):
    """Print the final status, or the array of every id's last-known state, and return 0 when every
    import completed; otherwise raise the error of the first id, in the order given, that did not."""
    first = next((t for t in trackers if t.outcome is not None), None)
    code = stopped.code if stopped is not None else first.outcome if first is not None else None
    ids = [t.import_id for t in trackers]
    if not single or code in (None, "IMPORT_FAILED", "IMPORT_PARTIAL"):
        console.result(trackers[0].entry() if single else [t.entry() for t in trackers], import_meta(ids, single))
    if code is None:
        return 0
    if stopped is not None:
        raise stopped
    alike = [t for t in trackers if t.outcome == code]
    meta = import_meta([t.import_id for t in alike], single)
    more = " (and %d more)" % (len(alike) - 1) if len(alike) > 1 else ""
    if code == "TIMEOUT":
        raise LandbaseError("TIMEOUT", "gave up after %s (--max-wait); the import%s keep%s running: %s"
                            % (format_duration(limit), "" if len(alike) == 1 else "s",
                               "s" if len(alike) == 1 else "", resume_command(account_id, [t.import_id for t in alike])),
                            meta)
    if first.error is not None:
        meta.update((k, v) for k, v in first.error.meta.items() if k != "importId")
        raise LandbaseError(code, first.error.message + more, meta)
    detail = first.status["error"].get("message") if isinstance(first.status["error"], dict) else None
    raise LandbaseError(code, "import %d ended %s%s%s" % (first.import_id, first.status["phase"],
                                                         ": %s" % detail if isinstance(detail, str) else "", more),
                        meta)


def resume_command(account_id, import_ids):
    """The exact command that resumes a wait, as this process was called."""
    program = sys.argv[0] if sys.argv and sys.argv[0] else "landbase_import.py"
    words = [program, "contacts-import", "wait"] + [str(i) for i in import_ids] + ["--account=" + account_id]
    return " ".join(shlex.quote(word) for word in words)


# ---------------------------------------------------------------- input body

def read_import_body(source):
    """The validated body of `start --json`: INVALID_INPUT naming the field for anything off."""
    if source == "-":
        if sys.stdin is None:
            raise LandbaseError("INVALID_INPUT", "stdin is closed: --json - reads the body from stdin")
        stream = getattr(sys.stdin, "buffer", sys.stdin)
        try:
            raw = stream.read(MAX_BODY_BYTES + 1)
        except (OSError, ValueError) as exc:
            raise LandbaseError("INVALID_INPUT", "cannot read the body from stdin: %s" % exc)
        if isinstance(raw, str):
            raw = raw.encode("utf-8", "surrogateescape")
        name = "stdin"
    else:
        name = source
        if not source:
            raise LandbaseError("INVALID_INPUT", "--json takes a path, or - for stdin, not an empty string")
        try:
            with open(source, "rb") as handle:
                raw = handle.read(MAX_BODY_BYTES + 1)
        except (OSError, ValueError) as exc:
            hint = ""
            if source.lstrip().startswith(("{", "[")):
                hint = ("; --json takes a path or -, not the JSON itself: "
                        "echo '{...}' | landbase_import.py contacts-import start --json -")
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise LandbaseError("INVALID_INPUT", "cannot read --json %s: %s%s" % (excerpt(source, 80), reason, hint))
    if len(raw) > MAX_BODY_BYTES:
        raise LandbaseError("INVALID_INPUT", "the body in %s is larger than 1 MiB" % name)
    return parse_import_body(raw, name)


def parse_import_body(raw, name="the body"):
    if not raw.strip() or raw.strip() == b"\xef\xbb\xbf":
        raise LandbaseError("INVALID_INPUT", "%s is empty: expected a JSON object with datasetId and tagName" % name)
    try:
        body = parse_json(raw)
    except StrictJSONError as exc:
        if exc.key is not None:
            raise LandbaseError("INVALID_INPUT", "duplicate key %r in the body" % exc.key, {"field": exc.key})
        raise LandbaseError("INVALID_INPUT", "%s is %s" % (name, exc) if str(exc).startswith("not ")
                            else "%s: %s" % (name, exc))
    if not isinstance(body, dict):
        raise LandbaseError("INVALID_INPUT", "%s must be a JSON object with datasetId and tagName, not %s"
                            % (name, _json_type(body)))
    return check_import_body(body)


def _json_type(value):
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _invalid_field(field, message):
    return LandbaseError("INVALID_INPUT", "%s %s" % (field, message), {"field": field})


def _has_surrogate(text):
    return any("\ud800" <= ch <= "\udfff" for ch in text)


def check_import_body(body):
    for key in body:
        if key not in BODY_KEYS:
            raise _invalid_field(key, "is not a known key%s; the body takes datasetId, tagName and importId"
                                 % _did_you_mean(key))
    dataset_id = body.get("datasetId")
    if "datasetId" not in body:
        raise _invalid_field("datasetId", "is required (the dataset to import, e.g. \"ds_def456\")")
    if not isinstance(dataset_id, str):
        raise _invalid_field("datasetId", "must be a string, not %s" % _json_type(dataset_id))
    if not dataset_id:
        raise _invalid_field("datasetId", "must not be empty")
    if len(dataset_id) > MAX_DATASET_ID:
        raise _invalid_field("datasetId", "is %d characters; at most %d" % (len(dataset_id), MAX_DATASET_ID))
    for ch in dataset_id:
        if ch.isspace() or unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Zs", "Zl", "Zp"):
            raise _invalid_field("datasetId", "must not contain whitespace or control characters (found U+%04X)"
                                 % ord(ch))
    tag_name = body.get("tagName")
    if "tagName" not in body:
        raise _invalid_field("tagName", "is required (the tag to put on the imported contacts)")
    if not isinstance(tag_name, str):
        raise _invalid_field("tagName", "must be a string, not %s" % _json_type(tag_name))
    if not 1 <= len(tag_name) <= MAX_TAG_NAME:
        raise _invalid_field("tagName", "is %d characters; it takes 1 to %d" % (len(tag_name), MAX_TAG_NAME))
    if not tag_name.strip():
        raise _invalid_field("tagName", "must not be blank")
    if _has_surrogate(tag_name):
        raise _invalid_field("tagName", "is not valid Unicode (a lone surrogate)")
    clean = {"datasetId": dataset_id, "tagName": tag_name}
    if "importId" in body:
        import_id = body["importId"]
        if not is_import_id(import_id):
            shown = _json_type(import_id) if not isinstance(import_id, int) or isinstance(import_id, bool) \
                else str(import_id)
            raise _invalid_field("importId", "must be a positive integer such as 7, not %s "
                                 "(omit it to start a new import)" % shown)
        clean["importId"] = import_id
    return clean


def _did_you_mean(key):
    import difflib
    folded = {known.lower(): known for known in BODY_KEYS}
    match = folded.get(key.lower().replace("_", "").replace("-", ""))
    if match is None:
        close = difflib.get_close_matches(key, BODY_KEYS, n=1, cutoff=0.6)
        match = close[0] if close else None
    return " (did you mean %r?)" % match if match else ""


# ---------------------------------------------------------------- login

def login_browser(args, console, api):
    """Authorization code + PKCE S256 through a loopback listener; the token response."""
    import hashlib
    import secrets
    import socket
    web = base_url("LANDBASE_PLATFORM_WEB_URL", DEFAULT_WEB_URL)
    listener = CallbackListener(secrets.token_urlsafe(32))
    verifier = secrets.token_urlsafe(64)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode("ascii")).digest()).rstrip(b"=").decode()
    query = urllib.parse.urlencode([("client_id", CLIENT_ID), ("response_type", "code"),
                       ("redirect_uri", listener.redirect_uri), ("state", listener.state),
                       ("code_challenge", challenge), ("code_challenge_method", "S256"),
                       ("device_name", socket.gethostname())])
    url = "%s/cli/authorize?%s" % (web, query)
    listener.start()
    try:
        if args.no_browser:
            console.line("Open this URL in a browser on this machine to sign in:")
            console.line("  " + url)
        else:
            console.line("Opening the browser to sign in. If it does not open, visit:")
            console.line("  " + url)
            import webbrowser
            try:
                opened = webbrowser.open(url)
            except webbrowser.Error:
                opened = False
            if not opened:
                console.line("No browser could be opened; visit the URL above, or use: auth login --device")
        result = listener.wait(LOGIN_LIMIT)
    finally:
        listener.stop()
    if result is None:
        raise LandbaseError("TIMEOUT", "no answer from the browser within %d minutes; run auth login again "
                            "(or auth login --device)" % (LOGIN_LIMIT // 60))
    if "error" in result:
        raise LandbaseError("AUTH_FAILED", "the login was refused in the browser (%s)" % result["error"])
    body = {"grant_type": "authorization_code", "client_id": CLIENT_ID, "code": result["code"],
            "code_verifier": verifier, "redirect_uri": listener.redirect_uri}
    return exchange_token(api, body)


class CallbackListener:
    """http://127.0.0.1:{port}/callback: takes one answer whose state matches, then stops.

    Each connection has its own thread and a time limit, so an idle or slow local client cannot hold
    the real browser's callback back; anything malformed gets a 400; nothing is ever printed."""

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
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def start(self):
        self.thread.start()

    def _serve(self):
        self.server.timeout = 0.2
        while not self.done.is_set():
            self.server.handle_request()

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
        if "code" in query:
            self.result = {"code": query["code"]}
        else:
            self.result = {"error": query.get("error") or "no code in the answer"}
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

    def wait(self, limit):
        CLOCK.wait_event(self.done, limit)
        return self.result

    def stop(self):
        self.done.set()
        self.thread.join(2)
        self.server.server_close()


def login_device(console, api):
    """RFC 8628: show a code, poll the token endpoint every `interval` until it is approved; the wait
    ends when the code expires, and never later than DEVICE_LIMIT whatever the server says."""
    import socket
    data = api.call("POST", "/v1/oauth/device", {"client_id": CLIENT_ID, "device_name": socket.gethostname()},
                    auth=False, check=device_answer)
    interval = clamp(data.get("interval"), DEVICE_INTERVALS, DEVICE_INTERVAL)
    expires_in = clamp(data.get("expiresIn"), (1, DEVICE_LIMIT), DEVICE_LIMIT)
    console.line("To sign in, open %s and enter the code %s" % (data["verificationUri"], data["userCode"]))
    if isinstance(data.get("verificationUriComplete"), str):
        console.line("  (or open %s)" % data["verificationUriComplete"])
    deadline = CLOCK.now() + expires_in
    expired = LandbaseError("TIMEOUT", "the code %s expired before it was approved; run auth login --device again"
                            % data["userCode"])
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
            if exc.server_code == "SLOW_DOWN":
                interval += 5
            if exc.server_code in ("AUTHORIZATION_PENDING", "SLOW_DOWN"):
                exc.transient = True    # not a failure: the person has not answered yet
            elif exc.transient:
                console.line("waiting for approval: %s (%s); trying again" % (exc.message, exc.code))
            wait = retry_wait(exc, interval, deadline - CLOCK.now())
            if wait is None:
                raise expired if exc.transient else exc


def clamp(value, bounds, default):
    """A server's number kept within bounds; the default when it is not a positive number."""
    if not is_number(value) or value <= 0:
        return default
    return min(max(value, bounds[0]), bounds[1])


def exchange_token(api, body, retry=True):
    try:
        return api.call("POST", "/v1/oauth/token", body, auth=False, retry=retry, check=token_answer)
    except LandbaseError as exc:
        if exc.code == "VALIDATION_ERROR" and exc.server_code not in (
                "AUTHORIZATION_PENDING", "SLOW_DOWN", "ACCESS_DENIED", "EXPIRED_TOKEN"):
            exc.code = "AUTH_FAILED"        # a refused code or verifier: the login failed
        raise


def should_use_device_flow():
    """No browser can be opened here: over SSH, or on Linux/BSD without a display."""
    if os.environ.get("BROWSER"):
        return False
    if os.environ.get("SSH_CONNECTION") or os.environ.get("SSH_TTY"):
        return True
    if sys.platform.startswith(("linux", "freebsd", "openbsd", "netbsd")):
        return not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    return False


def read_token_from_stdin():
    if sys.stdin is None:
        raise LandbaseError("INVALID_INPUT", "stdin is closed: pipe an lbs_ token into auth login --with-token")
    if _isatty(sys.stdin):
        import getpass
        try:
            token = getpass.getpass("Paste the lbs_ token, then press Enter: ")
        except EOFError:
            token = ""
    else:
        try:
            token = sys.stdin.readline(64 * 1024)
        except (OSError, ValueError, UnicodeDecodeError) as exc:
            raise LandbaseError("INVALID_INPUT", "cannot read the token from stdin: %s" % exc)
    token = token.strip()
    if not token:
        raise LandbaseError("INVALID_INPUT", "no token on stdin: pipe an lbs_ token into auth login --with-token")
    remember_secret(token)
    if not token.startswith("lbs_") or not TOKEN_RE.match(token) or TOKEN_RE.match(token).group(0) != token:
        raise LandbaseError("INVALID_INPUT", "the token on stdin is not an lbs_ platform token")
    return token


# ---------------------------------------------------------------- commands

def cmd_auth_login(args, console):
    store = SessionStore()
    api = api_for(args, console)
    me = None
    if args.with_token:
        api.token = read_token_from_stdin()
        me = fetch_me(api)              # the check: a rejected token is never saved
        expires_at = me.get("expiresAt")
        try:
            parse_time(expires_at)
        except ValueError:
            expires_at = format_time(CLOCK.wall() + SESSION_LIFETIME)
            console.line("The session is assumed to last %s from now; the platform may end it sooner."
                         % format_duration(SESSION_LIFETIME))
        granted = {"accessToken": api.token, "expiresAt": expires_at, "accountId": None}
    else:
        use_device = args.device or (not args.no_browser and should_use_device_flow())
        if use_device and not args.device:
            console.line("No browser can be opened here; using the device code flow (auth login --device).")
        granted = login_device(console, api) if use_device else login_browser(args, console, api)
        api.token = granted["accessToken"]
    account_id = store.save_login(granted, console)         # saved first: a failure below loses no login
    if me is None:
        me = fetch_me(api)
    account_id = store.settle_account(fetch_accounts(api), account_id, console)
    console.result({"userId": me.get("userId"), "email": me.get("email"), "accountId": account_id,
                    "expiresAt": granted["expiresAt"]})
    return 0


def cmd_auth_status(args, console):
    session = SessionStore().session(args.account, console)
    expires_in = None if session.expires_at is None else int(session.expires_at - CLOCK.wall())
    if args.min_valid is not None and expires_in is not None and expires_in < args.min_valid:
        raise LandbaseError("AUTH_FAILED", "the session ends in %s, before the %s asked for by --min-valid: "
                            "run landbase_import.py auth login" % (format_span(expires_in),
                                                                   format_duration(args.min_valid)),
                            {"expiresInSeconds": expires_in})
    me = fetch_me(api_for(args, console, session.token))
    console.result({"authenticated": True, "userId": me.get("userId"), "email": me.get("email"),
                    "accountId": session.account_id,
                    "expiresAt": format_time(session.expires_at) if session.expires_at is not None else None,
                    "expiresInSeconds": expires_in, "tokenSource": session.source})
    return 0


def cmd_auth_logout(args, console):
    store = SessionStore()
    try:
        stored = store.load(console)
    except LandbaseError as exc:
        console.warn("%s; logout removes it" % exc.message.split("; ")[0])     # not the fix: this is it
        stored = {}
    token = stored.get("accessToken")
    revoked = False
    if token:
        api = api_for(args, console, token)
        try:
            api.call("POST", "/v1/oauth/revoke", retry=False)
            revoked = True
        except LandbaseError as exc:
            console.line("Could not revoke the token on the platform (%s: %s); removing the local session anyway."
                         % (exc.code, exc.message))
    else:
        console.line("No stored session in %s." % store.path)
    store.remove()
    if os.environ.get("LANDBASE_ACCESS_TOKEN"):
        console.warn("LANDBASE_ACCESS_TOKEN is set and still used; logout neither revokes nor unsets it")
    console.result({"loggedOut": True, "revoked": revoked})
    return 0


def cmd_account_list(args, console):
    session = SessionStore().session(args.account, console)
    accounts = fetch_accounts(api_for(args, console, session.token))
    console.result([{"id": a["id"], "name": a.get("name"), "active": a["id"] == session.account_id}
                    for a in accounts])
    return 0


def cmd_account_set(args, console):
    store = SessionStore()
    session = store.session(args.account, console)
    accounts = fetch_accounts(api_for(args, console, session.token))
    match = [a for a in accounts if a["id"] == args.account_id]
    if not match:
        known = ", ".join(a["id"] for a in accounts) or "none"
        raise LandbaseError("NOT_FOUND", "account %s is not one this identity can use (it can use: %s; see: "
                            "landbase_import.py account list)" % (args.account_id, known),
                            {"accountId": args.account_id})
    store.update({"accountId": args.account_id}, console)
    console.result({"accountId": args.account_id, "name": match[0].get("name")})
    return 0


def cmd_import_start(args, console):
    import uuid
    body = read_import_body(args.json)
    console.hold()                      # the first stderr line names the import id
    session = SessionStore().session(args.account, console)
    account_id = require_account(session)
    path = "/v1/accounts/%s/contacts-imports" % account_id
    if args.dry_run:
        console.release()
        console.result({"dryRun": True, "accountId": account_id, "request": "POST " + path, "body": body})
        return 0
    api = api_for(args, console, session.token)
    key = args.idempotency_key or str(uuid.uuid4())
    again = "re-run it with --idempotency-key %s to get that import back, never a second one" % shlex.quote(key)
    import_id = None
    try:
        try:
            data = api.call("POST", path, body, headers={"Idempotency-Key": key}, check=started_answer)
        except (KeyboardInterrupt, Terminated) as exc:
            raise LandbaseError("TERMINATED" if isinstance(exc, Terminated) else "INTERRUPTED",
                                "start was stopped before the platform's answer arrived; the import may exist: "
                                + again, {"idempotencyKey": key})
        except LandbaseError as exc:
            running = exc.meta.get("importId")
            if exc.code != "CONFLICT" or not is_import_id(running):
                raise account_hint(exc, account_id)
            import_id, command = running, resume_command(account_id, [running])
            if not args.watch:
                exc.message += "; import %d is already running: wait on it with: %s" % (running, command)
                raise
            console.release("Import %d is already running (CONFLICT); waiting on it, as --watch asks. Resume "
                            "with: %s" % (running, command))
            return wait_and_report(api, account_id, [running], console, args.max_wait, single=True)
        import_id = data["importId"]
        console.release("Started import %d (run %s) in account %s. Follow it with: %s"
                        % (import_id, data["runRef"], account_id, resume_command(account_id, [import_id])))
        if not args.watch:
            console.result({"importId": import_id, "runRef": data["runRef"]}, {"importId": import_id})
            return 0
        return wait_and_report(api, account_id, [import_id], console, args.max_wait, single=True)
    except LandbaseError as exc:
        if exc.exit_code != 1 or not (api.ambiguous or import_id):
            raise
        # exit 1 says "fix the input and run it again": never after an import may have been created
        where = ("import %d exists and keeps running: %s" % (import_id, resume_command(account_id, [import_id]))
                 if import_id else "an earlier attempt may have created the import: " + again)
        meta = {"importId": import_id} if import_id else {"idempotencyKey": key}
        meta["serverCode"] = exc.code
        raise LandbaseError("API_ERROR", "%s (%s); %s" % (exc.message, exc.code, where), meta)


def account_hint(exc, account_id):
    """A NOT_FOUND under an account says where to look next."""
    if exc.code == "NOT_FOUND" and "account list" not in exc.message:
        exc.message += " (if %s is not the right account, see: landbase_import.py account list)" % account_id
    return exc


def cmd_import_status(args, console):
    session = SessionStore().session(args.account, console)
    account_id = require_account(session)
    import_id = args.import_ids[0]
    console.result(fetch_status(api_for(args, console, session.token), account_id, import_id),
                   {"importId": import_id})
    return 0


def cmd_import_wait(args, console):
    session = SessionStore().session(args.account, console)
    account_id = require_account(session)
    api = api_for(args, console, session.token)
    return wait_and_report(api, account_id, args.import_ids, console, args.max_wait, single=len(args.import_ids) == 1)


# ---------------------------------------------------------------- argument parser

class Parser(argparse.ArgumentParser):
    """argparse that raises INVALID_INPUT (exit 1) with the nearest valid word, and prints help through
    write_stdout (a closed stdout is OUTPUT_FAILED, a reader that left is quiet)."""

    def error(self, message):
        import difflib
        words, parsers = set(), [self]
        while parsers:                  # this level's words, and every option below it
            parser = parsers.pop()
            words.update(parser._option_string_actions)
            for action in parser._actions:
                if isinstance(action, argparse._SubParsersAction):
                    words.update(action.choices if parser is self else ())
                    parsers.extend(action.choices.values())
        bad = re.search(r"invalid choice: (['\"])(.*?)\1|unrecognized arguments: (\S+)", message)
        word = bad and (bad.group(2) if bad.group(2) is not None else bad.group(3).split("=", 1)[0])
        close = [w for w in sorted(words, key=len) if word and w.startswith(word)] \
            or (difflib.get_close_matches(word, sorted(words), n=1, cutoff=0.6) if word else [])
        hint = " (did you mean %r?)" % close[0] if close else ""
        raise LandbaseError("INVALID_INPUT", "%s%s (see: %s --help)" % (message, hint, self.prog))

    def format_help(self):
        if getattr(self, "manual", None) is not None:
            self.epilog = self.manual(self.prog)        # built only when the help is printed
        return argparse.ArgumentParser.format_help(self)

    def _print_message(self, message, file=None):
        if message:
            write_stdout(message)


def timeout_seconds(text):
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not (0 < value <= MAX_TIMEOUT):
        raise argparse.ArgumentTypeError("a number of seconds greater than 0 and at most %d is allowed, not %r"
                                         % (MAX_TIMEOUT, text))
    return value


OUTPUT_KEYS = {                         # what each command prints, for --query
    "status": ("importId", "phase", "percent", "counts", "counts.total", "counts.imported", "counts.skipped",
               "counts.failed", "error", "error.code", "error.message"),
    "auth login": ("userId", "email", "accountId", "expiresAt"),
    "auth status": ("authenticated", "userId", "email", "accountId", "expiresAt", "expiresInSeconds",
                    "tokenSource"),
    "auth logout": ("loggedOut", "revoked"),
    "account list": ("id", "name", "active"),
    "account set": ("accountId", "name"),
    "start": ("importId", "runRef"),
    "start --dry-run": ("dryRun", "accountId", "request", "body", "body.datasetId", "body.tagName",
                        "body.importId"),
}


def query_keys(args):
    """The paths --query may name for this command line."""
    if args.command == "contacts-import":
        if args.action == "start" and args.dry_run:
            return OUTPUT_KEYS["start --dry-run"]
        if args.action == "start" and not args.watch:
            return OUTPUT_KEYS["start"]
        return OUTPUT_KEYS["status"]
    return OUTPUT_KEYS["%s %s" % (args.command, args.action)]


def check_args(args):
    """Every check of the command line that argparse cannot make, in one place, before anything is sent."""
    if args.account is not None:
        check_account_id(args.account, "--account")
    if getattr(args, "account_id", None) is not None:
        check_account_id(args.account_id)
    if getattr(args, "import_ids", None) is not None:
        ids = args.import_ids = [check_import_id(value) for value in args.import_ids]
        if len(set(ids)) != len(ids):
            raise LandbaseError("INVALID_INPUT", "an import id is given twice: %s" % " ".join(map(str, ids)))
    if getattr(args, "min_valid", None) is not None:
        args.min_valid = parse_duration(args.min_valid, "--min-valid")
    if getattr(args, "max_wait", None) is not None:
        text, args.max_wait = args.max_wait, parse_duration(args.max_wait, "--max-wait")
        if not 0 < args.max_wait <= MAX_WAIT_LIMIT:
            raise LandbaseError("INVALID_INPUT", "--max-wait takes a duration greater than 0 and at most %s, not %r"
                                % (format_duration(MAX_WAIT_LIMIT), text))
    key = getattr(args, "idempotency_key", None)
    if key is not None and not (re.match(r"[\x20-\x7e]{1,255}\Z", key) and key.strip()):
        raise LandbaseError("INVALID_INPUT", "--idempotency-key takes 1 to 255 printable ASCII characters, not "
                            "only spaces (such as nightly-2026-11-29), not %s" % excerpt(repr(key), 80))
    if args.query is not None:
        allowed = query_keys(args)
        args.query = ",".join(args.query).split(",")          # --query a --query b is --query a,b
        for path in args.query:
            if path not in allowed:
                raise LandbaseError("INVALID_INPUT", "--query %r is not in this command's output; it prints: %s"
                                    % (path, ", ".join(allowed)), {"field": "--query"})
    return args


def schedule_text():
    return "at once, then after %s, and every %d s" % (", ".join("%d s" % d for d in POLL_DELAYS), POLL_EVERY)


# (words, what it does, example, positionals as (name, meaning)): the commands, in the order of the manual
COMMANDS = [
    (("auth", "login"), "log in: a browser (PKCE), --device (a code to enter elsewhere) or --with-token (stdin)",
     "auth login --device", ()),
    (("auth", "status"), "who is logged in, and how long the session lasts (exit 3 without a valid one)",
     "auth status --min-valid 2d", ()),
    (("auth", "logout"), "revoke the token and remove the local session", "auth logout", ()),
    (("account", "list"), "the accounts this identity can use", "account list", ()),
    (("account", "set"), "make an account the active one", "account set acc_abc123",
     (("accountId", "an account id from account list, such as acc_abc123"),)),
    (("contacts-import", "start"), "start an import from a JSON body {datasetId, tagName, importId?}",
     "contacts-import start --json body.json --watch", ()),
    (("contacts-import", "status"), "print an import's status once", "contacts-import status 7",
     (("importId", "the import's id, a positive whole number (start prints it)"),)),
    (("contacts-import", "wait"), "wait until imports end: reads %s, for --max-wait (default %s)"
     % (schedule_text(), format_duration(WAIT_LIMIT)), "contacts-import wait 7 8 --max-wait 3h",
     (("importId", "one or more import ids, positive whole numbers; several are waited on at once"),)),
]
LEVELS = {"auth": "log in, show or end the platform session", "account": "list accounts or choose the active one",
          "contacts-import": "start, read or wait for imports"}
GLOBAL_OPTIONS = [                      # the options of every command; "=" marks those that take a value
    ("--account=ID", "the account for this call (else LANDBASE_ACCOUNT_ID, else the stored one)"),
    ("--timeout=SECONDS", "bound on each whole request, connect to last byte (default %g)" % DEFAULT_TIMEOUT),
    ("--query=PATH[,PATH]", "print these fields as text, e.g. importId or counts.imported,error.code"),
    ("--verbose", "requests and answers on stderr (the token redacted)"),
    ("--quiet", "no progress lines"),
]
ENVIRONMENT = [
    ("LANDBASE_ACCESS_TOKEN", "a token to use instead of the stored one (CI, cron)"),
    ("LANDBASE_ACCOUNT_ID", "the active account, unless --account is given"),
    ("LANDBASE_CONFIG_DIR", "where platform.json lives (default ~/.landbase)"),
    ("LANDBASE_PLATFORM_API_URL", "the API (default %s)" % DEFAULT_API_URL),
    ("LANDBASE_PLATFORM_WEB_URL", "the login pages (default %s)" % DEFAULT_WEB_URL),
    ("LANDBASE_ALLOW_CUSTOM_API_URL=1", "allow a host other than landbase.com and loopback"),
    ("HTTPS_PROXY, NO_PROXY", "proxies for https (a loopback base never uses one)"),
    ("SSL_CERT_FILE", "a CA bundle to trust instead of the system store"),
    ("BROWSER", "the browser auth login opens"),
    ("NO_COLOR, TERM=dumb", "no colours; TERM=dumb also gets plain log lines"),
]
EXIT_MEANINGS = {0: "success; for wait and --watch, every import completed", 1: "the input or the setup is wrong",
                 2: "the platform refused or failed, or an import ended failed or partial",
                 3: "no session, or the session was rejected (run auth login)", 4: "timeout or network error",
                 130: "Ctrl-C", 143: "SIGTERM"}


def manual(program):
    """The top-level help's epilog: what a host without the README needs."""
    import textwrap
    lines = ["commands, each with an example (global options go before or after them):"]
    for words, text, example, _ in COMMANDS:
        lines += textwrap.wrap(text, 96, initial_indent="  %-23s " % " ".join(words), subsequent_indent=" " * 26)
        lines.append("  %-23s   example: %s %s" % ("", program, example))
    lines += ["", "environment:"]
    lines += ["  %-32s %s" % item for item in ENVIRONMENT]
    lines += ["", "exit codes:"]
    for exit_code in sorted(set(EXIT_CODES.values()) | {0}):
        codes = ", ".join(code for code, value in EXIT_CODES.items() if value == exit_code)
        lines += textwrap.wrap("%s%s" % (EXIT_MEANINGS[exit_code], ": %s" % codes if codes else ""), 96,
                               initial_indent="  %-4d " % exit_code, subsequent_indent=" " * 7)
    lines += ["", "session file:",
              "  ~/.landbase/platform.json (or $LANDBASE_CONFIG_DIR/platform.json), 0600 in a 0700 directory,",
              "  the file of the official landbase-cli: {accessToken, expiresAt, accountId, deviceName}.",
              "", "stdout is one JSON document (or --query's text); progress and the error envelope go to stderr."]
    return "\n".join(lines)


def build_parser(program):
    """The parser, and the parser of every level by its words (for the help of a bare level). The global
    options are the top level's alone: take_globals() brings them there from wherever they stand."""
    if program in PARSERS:
        return PARSERS[program]
    formatter = argparse.RawDescriptionHelpFormatter

    def level(subparsers, words, text, epilog):
        sub = subparsers.add_parser(words[-1], help=text, description=text, formatter_class=formatter,
                                    prog="%s %s" % (program, " ".join(words)),
                                    allow_abbrev=False, epilog=epilog + "\n\nglobal options (%s): see %s --help"
                                    % (", ".join(name.partition("=")[0] for name, _ in GLOBAL_OPTIONS), program))
        levels[words] = sub
        return sub

    levels = {}
    parser = Parser(prog=program, description="Bulk-import a Landbase dataset's contacts into an account under a "
                    "tag.", formatter_class=formatter, allow_abbrev=False, usage="%(prog)s [global options] COMMAND ...")
    parser.manual = manual
    parser.add_argument("--version", action="version", version="landbase-import %s" % __version__)
    group = parser.add_argument_group("global options (before or after the command)")
    group.add_argument("--account", metavar="ID", help=GLOBAL_OPTIONS[0][1])
    group.add_argument("--timeout", metavar="SECONDS", type=timeout_seconds, default=DEFAULT_TIMEOUT,
                       help=GLOBAL_OPTIONS[1][1])
    group.add_argument("--query", metavar="PATH[,PATH]", action="append", help=GLOBAL_OPTIONS[2][1])
    group.add_argument("--verbose", action="store_true", help=GLOBAL_OPTIONS[3][1])
    group.add_argument("--quiet", action="store_true", help=GLOBAL_OPTIONS[4][1])
    levels[()] = parser
    top = parser.add_subparsers(dest="command", metavar="COMMAND", title="command groups")
    groups = {}
    for name, text in LEVELS.items():
        examples = ["  %s %s" % (program, example) for words, _, example, _ in COMMANDS if words[0] == name]
        groups[name] = level(top, (name,), text, "examples:\n" + "\n".join(examples)).add_subparsers(
            dest="action", metavar="ACTION", title="actions")
    commands = {}
    for words, text, example, positionals in COMMANDS:
        commands[words] = sub = level(groups[words[0]], words, text, "example:\n  %s %s" % (program, example))
        for name, meaning in positionals:
            if name == "accountId":
                sub.add_argument("account_id", metavar=name, help=meaning)
            else:
                sub.add_argument("import_ids", metavar=name, help=meaning, nargs="+" if words[1] == "wait" else 1)
        sub.set_defaults(run=RUNNERS[words])
    login = commands[("auth", "login")]
    how = login.add_mutually_exclusive_group()
    how.add_argument("--device", action="store_true", help="the device code flow, for hosts without a browser")
    how.add_argument("--with-token", action="store_true", help="read an lbs_ token from stdin")
    login.add_argument("--no-browser", action="store_true", help="print the login URL instead of opening it")
    commands[("auth", "status")].add_argument(
        "--min-valid", metavar="DURATION", help="exit 3 unless the session lasts at least this long (90s, 30m, "
        "12h, 2d)")
    start = commands[("contacts-import", "start")]
    start.add_argument("--json", required=True, metavar="PATH|-",
                       help="the body: a file, or - for stdin (UTF-8 JSON, at most %d MiB)"
                            % (MAX_BODY_BYTES // (1024 * 1024)))
    start.add_argument("--watch", action="store_true", help="then wait until it ends, as wait does")
    start.add_argument("--dry-run", action="store_true", help="check the body, the session and the account; "
                       "send nothing; print the request")
    start.add_argument("--idempotency-key", metavar="KEY", help="your own key (1 to 255 printable ASCII "
                       "characters): sent again to the same account with the same body within 24 hours, it gets "
                       "the original import back")
    for words in (("contacts-import", "start"), ("contacts-import", "wait")):
        commands[words].add_argument("--max-wait", metavar="DURATION", default=str(WAIT_LIMIT),
                                     help="give up waiting after this long (default %s, at most %s)"
                                          % (format_duration(WAIT_LIMIT), format_duration(MAX_WAIT_LIMIT)))
    PARSERS[program] = parser, levels
    return parser, levels


PARSERS = {}                            # built once a process (the tests call main() thousands of times)


def take_globals(argv):
    """argv with the global options moved in front of the command, from wherever they stand
    (`contacts-import status 7 --account=acc_1`), so that only the top level needs to know them."""
    options = dict(name.partition("=")[::2] for name, _ in GLOBAL_OPTIONS)     # the option: its value's name
    moved, rest, words = [], [], iter(argv)
    for word in words:
        if word == "--":
            rest.append(word)
            rest.extend(words)
            break
        name, equals, _ = word.partition("=")
        if options.get(name) is None or (equals and not options[name]):
            rest.append(word)
        else:
            moved.append(word)
            if options[name] and not equals:
                moved.extend(word for word in [next(words, None)] if word is not None)
    return moved + rest


RUNNERS = {}                            # each command's function, filled in below the commands


def parse_args(argv):
    """The checked arguments; a bare level (no command, or no action) prints that level's help."""
    parser, levels = build_parser(os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "landbase_import.py")
    args = parser.parse_args(take_globals(argv))
    if not hasattr(args, "run"):
        levels[tuple(word for word in (args.command, getattr(args, "action", None)) if word)].print_help()
        raise SystemExit(0)
    return check_args(args)


# ---------------------------------------------------------------- main

RUNNERS.update({("auth", "login"): cmd_auth_login, ("auth", "status"): cmd_auth_status,
                ("auth", "logout"): cmd_auth_logout, ("account", "list"): cmd_account_list,
                ("account", "set"): cmd_account_set, ("contacts-import", "start"): cmd_import_start,
                ("contacts-import", "status"): cmd_import_status, ("contacts-import", "wait"): cmd_import_wait})


STOPPING = []                           # the signal that asked this run to stop, once one has


def _on_signal(signum, frame):
    """Ctrl-C raises KeyboardInterrupt and SIGTERM Terminated, the first of them only: the ones that
    follow (a second Ctrl-C, a SIGTERM right behind it) change nothing while the first is reported."""
    if STOPPING:
        return
    STOPPING.append(signum)
    raise Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()


def ignore_signals():
    """Ctrl-C and SIGTERM ignored, for the exit after main(): nothing may interrupt it any more."""
    for signum in (signal.SIGINT, signal.SIGTERM):
        try:
            signal.signal(signum, signal.SIG_IGN)
        except (ValueError, OSError):
            pass                        # not the main thread (in-process tests)


def main(argv=None):
    """Run one command; the exit code. Every failure ends stderr with the one-line error envelope."""
    argv = sys.argv[1:] if argv is None else argv
    console = Console()
    previous = {}
    del STOPPING[:]
    try:
        for signum in (signal.SIGINT, signal.SIGTERM):
            previous[signum] = signal.signal(signum, _on_signal)
    except (ValueError, OSError):
        pass                            # not the main thread (in-process tests)
    try:
        args = parse_args(argv)
        console = Console(quiet=args.quiet, verbose=args.verbose, query=args.query)
        remember_secret(os.environ.get("LANDBASE_ACCESS_TOKEN"))
        return args.run(args, console)
    except LandbaseError as exc:
        return report(console, exc)
    except KeyboardInterrupt:
        return report(console, LandbaseError("INTERRUPTED", "interrupted"))
    except Terminated:
        return report(console, LandbaseError("TERMINATED", "terminated by SIGTERM"))
    except SystemExit as exc:           # --help and --version
        return exc.code if isinstance(exc.code, int) else 0
    except BrokenPipeError:             # --help | head -c0: the reader left, nothing to say
        _silence_stdout()
        return 0
    except Exception as exc:            # the one boundary that turns a bug into an envelope
        return report(console, LandbaseError("API_ERROR", "internal error: %s: %s (please report it)"
                                             % (type(exc).__name__, exc)))
    finally:
        # as they were, for a caller that goes on (the tests); but once a signal has stopped this run, the
        # ones that follow stay ignored until the process is gone
        for signum, handler in previous.items() if not STOPPING else ():
            try:
                signal.signal(signum, handler)
            except (ValueError, OSError, TypeError):
                pass


def report(console, exc):
    console.envelope(exc)
    return exc.exit_code


if __name__ == "__main__":
    exit_code = main()
    ignore_signals()                    # the exit itself is not to be interrupted
    sys.exit(exit_code)

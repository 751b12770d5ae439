#!/usr/bin/env python3
"""landbase-import: bulk-import a Landbase dataset's contacts into an account under a tag.

One file, standard library only, Python 3.6+. Copy it onto a host and run it:

    landbase_import.py auth login [--device | --with-token] [--no-browser]
    landbase_import.py auth status [--min-valid 2d]
    landbase_import.py auth logout
    landbase_import.py account list
    landbase_import.py account set <accountId>
    landbase_import.py contacts-import start --json <path|-> [--watch]
    landbase_import.py contacts-import status <importId>
    landbase_import.py contacts-import wait <importId> [<importId> ...]

stdout carries exactly one JSON document on success; progress, warnings and,
on failure, a one-line error envelope go to stderr.

Exit codes: 0 success; 1 INVALID_INPUT, VALIDATION_ERROR, SETUP_FAILED;
2 NOT_FOUND, CONFLICT, API_ERROR, RATE_LIMITED, UPGRADE_REQUIRED,
IMPORT_FAILED, IMPORT_PARTIAL; 3 AUTH_REQUIRED, AUTH_FAILED;
4 TIMEOUT, NETWORK_ERROR; 130 interrupted; 143 terminated.
"""

import argparse
import json
import os
import re
import signal
import sys
import time

__version__ = "1.0.0"

DEFAULT_API_URL = "https://api.landbase.com"
DEFAULT_WEB_URL = "https://platform.landbase.com"
CLIENT_ID = "landbase-cli"
SESSION_FILE = "platform.json"
SESSION_LIFETIME = 7 * 24 * 3600        # what a login grants; --with-token assumes it
SESSION_WARN_BELOW = 24 * 3600          # warn when less than this is left

DEFAULT_TIMEOUT = 30.0                  # seconds per request
RETRY_DELAYS = (5, 10, 20)              # one-shot commands: three retries
RETRY_AFTER_CAP = 300                   # a longer Retry-After ends a one-shot command
POLL_DELAYS = (5, 10)                   # then POLL_EVERY, until WAIT_LIMIT
POLL_EVERY = 20
WAIT_LIMIT = 30 * 60
MAX_POLLS_IN_FLIGHT = 4                 # wait with many ids
LOGIN_LIMIT = 5 * 60                    # browser login
MAX_REDIRECTS = 5

MAX_BODY_BYTES = 1024 * 1024
MAX_DATASET_ID = 200
MAX_TAG_NAME = 100
MAX_IMPORT_ID = 2 ** 63 - 1
BODY_KEYS = ("datasetId", "tagName", "importId")
ACCOUNT_ID_RE = re.compile(r"[A-Za-z0-9_-]{1,64}\Z")
IMPORT_ID_RE = re.compile(r"[0-9]{1,19}\Z")
TOKEN_RE = re.compile(r"lbs_[^\s\"',;&]+")

TERMINAL_PHASES = ("completed", "partial", "failed")   # any other phase is in flight

EXIT_CODES = {
    "INVALID_INPUT": 1, "VALIDATION_ERROR": 1, "SETUP_FAILED": 1,
    "NOT_FOUND": 2, "CONFLICT": 2, "API_ERROR": 2, "RATE_LIMITED": 2,
    "UPGRADE_REQUIRED": 2, "IMPORT_FAILED": 2, "IMPORT_PARTIAL": 2,
    "AUTH_REQUIRED": 3, "AUTH_FAILED": 3,
    "TIMEOUT": 4, "NETWORK_ERROR": 4,
    "INTERRUPTED": 130, "TERMINATED": 143,
}
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
    """Raised by the SIGTERM handler so that cleanup runs and the exit is 143."""


def redact(text):
    return TOKEN_RE.sub("lbs_\u2026(redacted)", text)


def printable(text, keep="\n"):
    """text with control characters (terminal escapes among them) replaced by U+FFFD."""
    return "".join(ch if ch.isprintable() or ch in keep else "\ufffd" for ch in text)


def quote_body(raw, limit=200):
    """At most `limit` characters of a server's text, on one line, without control characters or tokens."""
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
    return redact(printable(" ".join(text.split())[:limit], keep="")) or "(empty body)"


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
    """stderr for people and logs: warnings, progress (plain or redrawn), the error envelope."""

    def __init__(self, quiet=False, verbose=False, stream=None):
        self.stream = stream or sys.stderr
        self.quiet = quiet
        self.verbose = verbose
        self.tty = _isatty(self.stream)
        self.color = self.tty and "NO_COLOR" not in os.environ and os.environ.get("TERM") != "dumb"
        self._redrawn = False
        self._held = None

    def line(self, text):
        if self._held is not None:
            self._held.append(text)
            return
        self._end_redraw()
        self._write(redact(printable(text)) + "\n")

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

    def progress(self, text, redraw_text=None):
        if self.quiet:
            return
        if self.tty and redraw_text is not None:
            self._write("\r\x1b[K" + redraw_text)
            self._redrawn = True
        else:
            self.line(text)

    def paint(self, text, phase):
        if not self.color:
            return text
        color = {"completed": "32", "partial": "33", "failed": "31"}.get(phase)
        return "\x1b[%sm%s\x1b[0m" % (color, text) if color else text

    def end_progress(self):
        self._end_redraw()

    def _end_redraw(self):
        if self._redrawn:
            self._redrawn = False
            self._write("\n")

    def _write(self, text):
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):
            pass                        # a closed stderr must not turn into a traceback


def _isatty(stream):
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def write_json(doc):
    """Print the one JSON document of a successful command; a closed stdout is not an error."""
    text = json.dumps(doc, ensure_ascii=True, allow_nan=False) + "\n"
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except BrokenPipeError:
        _silence_stdout()


def _silence_stdout():
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass


# ---------------------------------------------------------------- config and session

def format_time(epoch):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def parse_time(text):
    """Seconds since the epoch for an RFC 3339 UTC time such as 2026-12-05T10:00:00Z."""
    import calendar
    if not isinstance(text, str):
        raise ValueError("not a string")
    value = text.strip()
    if value.endswith(("Z", "z")):
        value = value[:-1]
    elif value.endswith("+00:00"):
        value = value[:-6]
    value = value.split(".", 1)[0]
    return calendar.timegm(time.strptime(value, "%Y-%m-%dT%H:%M:%S"))


def parse_duration(text):
    """Seconds in 90, 90s, 30m, 12h or 2d."""
    match = re.match(r"\s*([0-9]{1,9})\s*([smhd]?)\s*\Z", text or "")
    if not match:
        raise LandbaseError("INVALID_INPUT", "--min-valid takes a duration such as 90s, 30m, 12h or 2d, not %r" % text)
    return int(match.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[match.group(2)]


def config_dir():
    configured = os.environ.get("LANDBASE_CONFIG_DIR")
    return configured if configured else os.path.join(os.path.expanduser("~"), ".landbase")


class SessionStore:
    """platform.json: the official CLI's file and shape, private, written atomically, unknown keys kept."""

    def __init__(self, directory=None):
        self.directory = directory or config_dir()
        self.path = os.path.join(self.directory, SESSION_FILE)

    def load(self, console=None):
        """The stored object ({} when there is none); a damaged file is SETUP_FAILED naming it."""
        try:
            with open(self.path, "rb") as handle:
                mode = os.fstat(handle.fileno()).st_mode
                raw = handle.read(MAX_BODY_BYTES + 1)
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise LandbaseError("SETUP_FAILED", "cannot read %s: %s" % (self.path, exc.strerror or exc))
        if console is not None and os.name == "posix" and mode & 0o077:
            console.warn("%s is open to group or others; run: chmod 600 %s" % (self.path, self.path))
        fix = "; fix it, or remove it and run: landbase_import.py auth login"
        if not raw.strip():
            raise LandbaseError("SETUP_FAILED", "%s is empty%s" % (self.path, fix))
        try:
            data = json.loads(raw.decode("utf-8"))
        except (ValueError, RecursionError) as exc:
            raise LandbaseError("SETUP_FAILED", "%s is not valid JSON (%s)%s" % (self.path, exc, fix))
        if not isinstance(data, dict):
            raise LandbaseError("SETUP_FAILED", "%s must hold a JSON object, not %s%s"
                                % (self.path, type(data).__name__, fix))
        for key in ("accessToken", "expiresAt", "accountId", "deviceName"):
            if data.get(key) is not None and not isinstance(data[key], str):
                raise LandbaseError("SETUP_FAILED", "%s: %s must be a string%s" % (self.path, key, fix))
        if data.get("expiresAt") is not None:
            try:
                parse_time(data["expiresAt"])
            except ValueError:
                raise LandbaseError("SETUP_FAILED", "%s: expiresAt %r is not a time like 2026-12-05T10:00:00Z%s"
                                    % (self.path, data["expiresAt"], fix))
        return data

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
            self._remove_stale_temporaries()
        except OSError as exc:
            _remove_quietly(tmp)
            raise LandbaseError("SETUP_FAILED", "cannot write %s: %s" % (self.path, exc.strerror or exc))
        except BaseException:
            _remove_quietly(tmp)
            raise
        self._fsync_directory()

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
        """Remove temporary files of writers that died mid-write (SIGKILL runs no cleanup)."""
        if os.name != "posix":
            return                      # os.kill(pid, 0) would terminate the process on Windows
        prefix = ".%s." % SESSION_FILE
        for name in os.listdir(self.directory):
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


class Session:
    """The credentials for one call: token, where it came from, when it ends, the active account."""

    def __init__(self, token, source, expires_at, account_id):
        self.token = token
        self.source = source            # "env" or "file"
        self.expires_at = expires_at    # epoch seconds, or None when unknown
        self.account_id = account_id


def load_session(args, store, console):
    """The session for this call: AUTH_REQUIRED without one, AUTH_FAILED past expiresAt; no request sent."""
    stored = store.load(console)
    token = os.environ.get("LANDBASE_ACCESS_TOKEN", "").strip()
    source = "env"
    if not token:
        token, source = stored.get("accessToken") or "", "file"
    if not token:
        raise LandbaseError("AUTH_REQUIRED", "not logged in: run landbase_import.py auth login "
                            "(or set LANDBASE_ACCESS_TOKEN)")
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
    account_id = getattr(args, "account", None) or os.environ.get("LANDBASE_ACCOUNT_ID") or stored.get("accountId")
    return Session(token, source, expires_at, account_id or None)


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
    from urllib.parse import urlsplit
    url = os.environ.get(env_name) or default
    try:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        parts.port                      # raises ValueError for a bad port
    except ValueError as exc:
        raise LandbaseError("INVALID_INPUT", "%s=%s is not a valid URL (%s)" % (env_name, url, exc))
    loopback = host in ("localhost", "127.0.0.1", "::1")
    if parts.scheme not in ("http", "https") or not host or parts.username or parts.query or parts.fragment:
        raise LandbaseError("INVALID_INPUT", "%s=%s is not an http(s) base URL" % (env_name, url))
    if parts.scheme == "http" and not loopback:
        raise LandbaseError("INVALID_INPUT", "%s=%s: https is required except on loopback" % (env_name, url))
    landbase = host == "landbase.com" or host.endswith(".landbase.com")
    if not (landbase or loopback) and os.environ.get("LANDBASE_ALLOW_CUSTOM_API_URL") != "1":
        raise LandbaseError("INVALID_INPUT", "%s=%s: the host %s is not landbase.com or loopback; set "
                            "LANDBASE_ALLOW_CUSTOM_API_URL=1 to send your credentials there" % (env_name, url, host))
    return url.rstrip("/")


def same_origin(url_a, url_b):
    from urllib.parse import urlsplit
    a, b = urlsplit(url_a), urlsplit(url_b)
    default = {"http": 80, "https": 443}
    return ((a.scheme, (a.hostname or "").lower(), a.port or default.get(a.scheme))
            == (b.scheme, (b.hostname or "").lower(), b.port or default.get(b.scheme)))


def parse_retry_after(headers, data):
    """Seconds from Retry-After (seconds or an HTTP date) and error.meta.retry_after_seconds, the larger."""
    found = []
    value = (headers.get("Retry-After") or "").strip() if headers is not None else ""
    if value:
        if value.isdigit():
            found.append(int(value))
        else:
            from email.utils import parsedate_tz, mktime_tz
            try:
                parsed = parsedate_tz(value)
                if parsed:
                    found.append(max(0, int(mktime_tz(parsed) - CLOCK.wall())))
            except (TypeError, ValueError, OverflowError):
                pass
    meta = data.get("error", {}).get("meta") if isinstance(data, dict) and isinstance(data.get("error"), dict) else None
    if isinstance(meta, dict):
        seconds = meta.get("retry_after_seconds")
        if isinstance(seconds, (int, float)) and not isinstance(seconds, bool) and 0 <= seconds < 10 ** 7:
            found.append(int(seconds + 0.999))
    return max(found) if found else None


def _opener(https):
    """One opener per process: no redirects followed by urllib, one verifying TLS context for https."""
    import ssl
    import urllib.request

    class NoRedirects(urllib.request.HTTPRedirectHandler):
        """Follow nothing: Api.once() follows same-origin redirects itself and refuses the rest."""

        def redirect_request(self, req, fp, code, msg, headers, newurl):
            return None

    handlers = [NoRedirects()]
    if https:                           # loading the CA store costs ~35 ms: only where it is used
        handlers.append(urllib.request.HTTPSHandler(context=ssl.create_default_context()))
    return urllib.request.build_opener(*handlers)


class Api:
    """The one way to talk to the platform: timeout, headers, token, JSON, error mapping, retries."""

    def __init__(self, base, token=None, timeout=DEFAULT_TIMEOUT, console=None):
        self.base = base
        self.token = token
        self.timeout = timeout
        self.console = console or Console()
        self._opener = None

    def call(self, method, path, body=None, auth=True, retry=True, headers=None, check=None):
        """The decoded JSON answer of a 2xx, passed through check(); LandbaseError otherwise.

        check() raises a transient API_ERROR for an answer that breaks the contract, so that
        such an answer is retried like a 5xx."""
        delays = list(RETRY_DELAYS) if retry else []
        attempt = 0
        while True:
            try:
                data = self.once(method, path, body, auth, headers)
                return check(data) if check is not None else data
            except LandbaseError as exc:
                if not exc.transient or attempt >= len(delays):
                    raise
                delay = delays[attempt]
                if exc.retry_after is not None:
                    if exc.retry_after > RETRY_AFTER_CAP:
                        raise
                    delay = max(delay, exc.retry_after)
                attempt += 1
                self.console.line("%s %s failed (%s: %s); retry %d of %d in %ds"
                                  % (method, path, exc.code, exc.message, attempt, len(delays), delay))
                CLOCK.sleep(delay)

    def once(self, method, path, body=None, auth=True, headers=None):
        url = self.base + path
        data = None if body is None else json.dumps(body, ensure_ascii=True, allow_nan=False).encode("ascii")
        for _ in range(MAX_REDIRECTS + 1):
            status, reply_headers, raw = self._send(method, url, data, auth, headers or {})
            if status in (301, 302, 303, 307, 308):
                url, method, data = self._redirect(url, method, data, status, reply_headers)
                continue
            return self._decode(method, path, status, reply_headers, raw)
        raise LandbaseError("API_ERROR", "%s %s: more than %d redirects" % (method, path, MAX_REDIRECTS))

    def _redirect(self, url, method, data, status, headers):
        from urllib.parse import urljoin
        location = headers.get("Location") if headers is not None else None
        if not location:
            raise LandbaseError("API_ERROR", "%s %s: HTTP %d without a Location" % (method, url, status))
        target = urljoin(url, location)
        if not same_origin(url, target):
            raise LandbaseError("API_ERROR", "%s %s: refused a redirect to another origin (%s); the token "
                                "is never sent there" % (method, url, quote_body(target)),
                                {"status": status})
        if status in (307, 308):
            return target, method, data
        if method == "GET":
            return target, "GET", None
        raise LandbaseError("API_ERROR", "%s %s: refused an HTTP %d redirect of a %s" % (method, url, status, method))

    def _send(self, method, url, data, auth, headers):
        import socket
        import ssl
        import http.client
        import urllib.request
        import urllib.error
        if self._opener is None:
            self._opener = _opener(self.base.startswith("https:"))
        request = urllib.request.Request(url, data=data, method=method)
        request.add_header("Accept", "application/json")
        request.add_header("User-Agent", "landbase-import/%s python/%d.%d" % ((__version__,) + sys.version_info[:2]))
        if data is not None:
            request.add_header("Content-Type", "application/json")
        for name, value in headers.items():
            request.add_header(name, value)
        if auth and self.token:
            request.add_unredirected_header("Authorization", "Bearer " + self.token)
        self.console.debug("> %s %s%s" % (method, url, " (Authorization: Bearer lbs_\u2026(redacted))"
                                                          if auth and self.token else ""))
        for name, value in sorted(headers.items()):
            self.console.debug("> %s: %s" % (name, value))
        if data is not None and "/oauth/" not in url:
            self.console.debug("> " + data.decode("ascii"))
        started = CLOCK.now()
        where = "%s %s" % (method, url)
        try:
            try:
                response = self._opener.open(request, timeout=self.timeout)
            except urllib.error.HTTPError as exc:
                response = exc
            with response:
                status = response.getcode() if hasattr(response, "getcode") else response.code
                raw = response.read()
                reply_headers = response.headers
        except urllib.error.URLError as exc:
            raise self._transport_error(where, exc.reason, socket, ssl, http.client)
        except (socket.timeout, ssl.SSLError, ssl.CertificateError, OSError, http.client.HTTPException,
                ValueError) as exc:
            raise self._transport_error(where, exc, socket, ssl, http.client)
        self.console.debug("< HTTP %d in %d ms" % (status, (CLOCK.now() - started) * 1000))
        if "/oauth/" not in url:
            self.console.debug("< " + quote_body(raw, 500))
        return status, reply_headers, raw

    def _transport_error(self, where, reason, socket, ssl, http_client):
        if isinstance(reason, socket.timeout):
            return LandbaseError("TIMEOUT", "%s: no answer within %gs (--timeout)" % (where, self.timeout),
                                 transient=True)
        if isinstance(reason, (ssl.CertificateError, ssl.SSLError)):
            return LandbaseError("NETWORK_ERROR", "%s: TLS failed (%s); the certificate must be trusted by "
                                 "the system store or SSL_CERT_FILE" % (where, reason))
        if isinstance(reason, (http_client.InvalidURL, ValueError)):   # e.g. control characters in a Location
            return LandbaseError("API_ERROR", "%s: %s" % (quote_body(where), quote_body(str(reason))))
        if isinstance(reason, (OSError, http_client.HTTPException)):
            return LandbaseError("NETWORK_ERROR", "%s: %s" % (where, reason or type(reason).__name__),
                                 transient=True)
        return LandbaseError("NETWORK_ERROR", "%s: %s" % (where, reason), transient=True)

    def _decode(self, method, path, status, headers, raw):
        where = "%s %s" % (method, path)
        data = None
        if raw.strip():
            try:
                data = json.loads(raw.decode("utf-8"))
            except (ValueError, RecursionError):
                data = None
                if 200 <= status < 300:
                    raise LandbaseError("API_ERROR", "%s: HTTP %d with a body that is not JSON: %s"
                                        % (where, status, quote_body(raw)), {"status": status}, transient=True)
        if 200 <= status < 300:
            return data
        error = data.get("error") if isinstance(data, dict) else None
        error = error if isinstance(error, dict) else {}
        server_code = error.get("code") if isinstance(error.get("code"), str) else None
        code = server_code if server_code in EXIT_CODES and server_code not in ("INTERRUPTED", "TERMINATED") \
            else STATUS_CODES.get(status, "API_ERROR")
        message = error.get("message") if isinstance(error.get("message"), str) else None
        if message:
            message = "%s: %s" % (where, quote_body(message, 300))
        else:
            message = "%s: HTTP %d: %s" % (where, status, quote_body(raw))
        meta = {"status": status}
        if isinstance(error.get("meta"), dict):
            meta.update(error["meta"])
        raise LandbaseError(code, message, meta, server_code=server_code,
                            transient=status == 429 or status >= 500,
                            retry_after=parse_retry_after(headers, data))


def api_for(args, console, token=None):
    return Api(base_url("LANDBASE_PLATFORM_API_URL", DEFAULT_API_URL), token, args.timeout, console)


def contract_error(where, field, value, expected):
    return LandbaseError("API_ERROR", "%s: the answer broke the contract: %s is %s, expected %s"
                         % (where, field, quote_body(json.dumps(value), 60), expected), transient=True)


def expect_object(data, where):
    if not isinstance(data, dict):
        raise contract_error(where, "the body", data, "an object")
    return data


def is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == value \
        and value not in (float("inf"), float("-inf"))


def normalize_status(data, import_id):
    """The five keys of a status snapshot, checked against API.md; a broken answer is a transient API_ERROR."""
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
    error = data.get("error")
    if error is not None and not isinstance(error, dict):
        raise contract_error(where, "error", error, "an object or null")
    return {"importId": import_id, "phase": phase, "percent": percent, "counts": counts, "error": error}


def count_of(counts, key):
    value = counts.get(key) if isinstance(counts, dict) else None
    return value if is_number(value) else None


def fetch_status(api, account_id, import_id, retry=True):
    path = "/v1/accounts/%s/contacts-imports/%d" % (account_id, import_id)
    try:
        return api.call("GET", path, retry=retry, check=lambda data: normalize_status(data, import_id))
    except LandbaseError as exc:
        exc.meta.setdefault("importId", import_id)
        raise


def check_accounts(data):
    accounts = expect_object(data, "GET /v1/accounts").get("accounts")
    if not isinstance(accounts, list):
        raise contract_error("GET /v1/accounts", "accounts", accounts, "a list")
    for entry in accounts:
        if not isinstance(entry, dict) or not isinstance(entry.get("id"), str):
            raise contract_error("GET /v1/accounts", "an account", entry, "an object with a string id")
    return accounts


def fetch_accounts(api):
    return api.call("GET", "/v1/accounts", check=check_accounts)


def check_me(data):
    expect_object(data, "GET /v1/me")
    for key in ("userId", "email"):
        if data.get(key) is not None and not isinstance(data.get(key), str):
            raise contract_error("GET /v1/me", key, data.get(key), "a string")
    return data


def fetch_me(api):
    return api.call("GET", "/v1/me", check=check_me)


# ---------------------------------------------------------------- the import poller

def poll_delays():
    """5 s, 10 s, then 20 s for ever: the waits between status reads."""
    for delay in POLL_DELAYS:
        yield delay
    while True:
        yield POLL_EVERY


class Tracker:
    """One import being waited on: its schedule, its last snapshot, the rate behind its ETA."""

    def __init__(self, import_id, now):
        self.import_id = import_id
        self.delays = poll_delays()
        self.due = now
        self.status = None
        self.first_seen = None          # (time, percent) of the first in_progress reading

    @property
    def done(self):
        return self.status is not None and self.status["phase"] in TERMINAL_PHASES

    def observe(self, status, now):
        self.status = status
        percent = status["percent"]
        if status["phase"] == "in_progress" and is_number(percent) and self.first_seen is None:
            self.first_seen = (now, percent)

    def eta(self, now):
        percent = self.status and self.status["percent"]
        if self.first_seen is None or not is_number(percent):
            return None
        started, first = self.first_seen
        if now <= started or percent <= first:
            return None
        return (100 - percent) * (now - started) / (percent - first)

    def schedule(self, now, retry_after=None):
        delay = next(self.delays)
        if retry_after is not None and retry_after > delay:
            delay = retry_after
        self.due = now + delay
        return delay


def describe_counts(counts):
    parts = []
    for key in ("imported", "skipped", "failed"):
        value = count_of(counts, key)
        if value is not None:
            parts.append("%d %s" % (value, key))
    total = count_of(counts, "total")
    text = ", ".join(parts)
    if total is not None:
        text = (text + " of %d" % total) if text else "%d contacts" % total
    return text


def progress_texts(tracker, console, now, delay, deadline):
    status = tracker.status
    percent = status["percent"]
    pct = "%d%%" % percent if is_number(percent) else "--%"
    counts = describe_counts(status["counts"])
    eta = tracker.eta(now)
    timing = "" if tracker.done else "; next poll in %ds" % delay
    plain = "import %d: %s %s%s%s" % (tracker.import_id, status["phase"], pct,
                                      " (%s)" % counts if counts else "", timing)
    width = 24
    filled = int(width * percent / 100) if is_number(percent) else 0
    bar = "[" + "#" * filled + "-" * (width - filled) + "]"
    eta_text = (" ETA %s" % format_span(eta)) if eta is not None and not tracker.done else ""
    left = "" if tracker.done else " %s left" % format_span(max(0, deadline - now))
    redraw = "import %d %s %s %s%s%s%s" % (tracker.import_id, bar, pct, console.paint(status["phase"], status["phase"]),
                                          " " + counts if counts else "", eta_text, left if not eta_text else "")
    return plain, redraw


def poll_until_terminal(api, account_id, import_ids, console):
    """Poll each import on its own schedule until all are terminal; the final snapshots, in order."""
    started = CLOCK.now()
    deadline = started + WAIT_LIMIT
    trackers = [Tracker(import_id, started) for import_id in import_ids]
    try:
        while True:
            now = CLOCK.now()
            pending = [t for t in trackers if not t.done]
            if not pending:
                return [t.status for t in trackers]
            due = [t for t in pending if t.due <= now]
            if not due:
                wake = min(t.due for t in pending)
                if wake > deadline:
                    CLOCK.sleep(deadline - now)
                    raise wait_timeout(pending, account_id)
                CLOCK.sleep(wake - now)
                continue
            results = poll_batch(api, account_id, due)
            now = CLOCK.now()
            for tracker, (status, error) in zip(due, results):
                if error is not None and (not error.transient or error.code in ("AUTH_FAILED", "NOT_FOUND")):
                    raise error         # AUTH_FAILED, NOT_FOUND and the like end the wait at once
                if error is not None:
                    delay = tracker.schedule(now, error.retry_after)
                    console.line("import %d: poll failed (%s: %s); next poll in %ds"
                                 % (tracker.import_id, error.code, error.message, delay))
                    continue
                tracker.observe(status, now)
                delay = 0 if tracker.done else tracker.schedule(now)
                plain, redraw = progress_texts(tracker, console, now, delay, deadline)
                console.progress(plain, redraw if len(trackers) == 1 else None)
            if CLOCK.now() >= deadline and any(not t.done for t in trackers):
                raise wait_timeout([t for t in trackers if not t.done], account_id)
    finally:
        console.end_progress()


def poll_batch(api, account_id, trackers):
    """(status, error) for each tracker, at most MAX_POLLS_IN_FLIGHT requests at a time.

    The workers are daemon threads, so Ctrl-C or SIGTERM never waits for a request in flight."""
    if len(trackers) == 1:
        return [poll_once(api, account_id, trackers[0])]
    import threading
    results = [None] * len(trackers)
    todo = list(enumerate(trackers))
    lock = threading.Lock()

    def work():
        while True:
            with lock:
                if not todo:
                    return
                index, tracker = todo.pop()
            results[index] = poll_once(api, account_id, tracker)
    workers = [threading.Thread(target=work, daemon=True) for _ in range(min(MAX_POLLS_IN_FLIGHT, len(trackers)))]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return results


def poll_once(api, account_id, tracker):
    try:
        return fetch_status(api, account_id, tracker.import_id, retry=False), None
    except LandbaseError as exc:
        return None, exc


def wait_timeout(pending, account_id):
    ids = [t.import_id for t in pending]
    meta = {"importId": ids[0]} if len(ids) == 1 else {"importIds": ids}
    return LandbaseError("TIMEOUT", "gave up after %d minutes; the import keeps running: %s"
                         % (WAIT_LIMIT // 60, resume_command(account_id, ids)), meta)


def finish_wait(statuses, single):
    """Print the final status (or array); IMPORT_FAILED/IMPORT_PARTIAL when not all completed."""
    write_json(statuses[0] if single else statuses)
    failed = [s for s in statuses if s["phase"] == "failed"]
    partial = [s for s in statuses if s["phase"] == "partial"]
    if not failed and not partial:
        return 0
    worst = failed or partial
    code = "IMPORT_FAILED" if failed else "IMPORT_PARTIAL"
    first = worst[0]
    detail = first["error"].get("message") if isinstance(first["error"], dict) else None
    message = "import %d ended %s%s" % (first["importId"], first["phase"], ": %s" % detail if detail else "")
    if len(worst) > 1:
        message += " (and %d more)" % (len(worst) - 1)
    meta = {"importId": first["importId"]} if single else {"importIds": [s["importId"] for s in worst]}
    raise LandbaseError(code, message, meta)


def resume_command(account_id, import_ids):
    """The exact command that resumes a wait, as this process was called."""
    import shlex
    program = sys.argv[0] if sys.argv and sys.argv[0] else "landbase_import.py"
    words = [program, "contacts-import", "wait"] + [str(i) for i in import_ids] + ["--account=" + account_id]
    return " ".join(shlex.quote(word) for word in words)


# ---------------------------------------------------------------- input body

def read_import_body(source):
    """The validated body of `start --json`: INVALID_INPUT naming the field for anything off."""
    if source == "-":
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
        try:
            with open(source, "rb") as handle:
                raw = handle.read(MAX_BODY_BYTES + 1)
        except (OSError, ValueError) as exc:
            hint = ""
            if source.lstrip().startswith(("{", "[")):
                hint = ("; --json takes a path or -, not the JSON itself: "
                        "echo '{...}' | landbase_import.py contacts-import start --json -")
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise LandbaseError("INVALID_INPUT", "cannot read --json %s: %s%s" % (quote_body(source, 80), reason, hint))
    if len(raw) > MAX_BODY_BYTES:
        raise LandbaseError("INVALID_INPUT", "the body in %s is larger than 1 MiB" % name)
    return parse_import_body(raw, name)


def parse_import_body(raw, name="the body"):
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise LandbaseError("INVALID_INPUT", "%s is not UTF-8 (byte 0x%02x at offset %d)"
                            % (name, raw[exc.start], exc.start))
    if not text.strip():
        raise LandbaseError("INVALID_INPUT", "%s is empty: expected a JSON object with datasetId and tagName" % name)
    try:
        body = json.loads(text, object_pairs_hook=_refuse_duplicates, parse_constant=_refuse_constant,
                          parse_float=_finite_float)
    except RecursionError:
        raise LandbaseError("INVALID_INPUT", "%s is nested too deeply to be an import body" % name)
    except ValueError as exc:
        raise LandbaseError("INVALID_INPUT", "%s is not valid JSON: %s" % (name, exc))
    if not isinstance(body, dict):
        raise LandbaseError("INVALID_INPUT", "%s must be a JSON object with datasetId and tagName, not %s"
                            % (name, _json_type(body)))
    return check_import_body(body)


def _refuse_duplicates(pairs):
    seen = {}
    for key, value in pairs:
        if key in seen:
            raise LandbaseError("INVALID_INPUT", "duplicate key %r in the body" % key, {"field": key})
        seen[key] = value
    return seen


def _refuse_constant(name):
    raise LandbaseError("INVALID_INPUT", "%s is not allowed in the body (only finite numbers)" % name)


def _finite_float(text):
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise LandbaseError("INVALID_INPUT", "the number %s is out of range" % text[:40])
    return value


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
    import unicodedata
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
        if not isinstance(import_id, int) or isinstance(import_id, bool) or not 0 < import_id <= MAX_IMPORT_ID:
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
    import base64
    import hashlib
    import secrets
    import socket
    from urllib.parse import urlencode
    web = base_url("LANDBASE_PLATFORM_WEB_URL", DEFAULT_WEB_URL)
    listener = CallbackListener(secrets.token_urlsafe(32))
    verifier = secrets.token_urlsafe(64)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode("ascii")).digest()).rstrip(b"=").decode()
    query = urlencode([("client_id", CLIENT_ID), ("response_type", "code"),
                       ("redirect_uri", listener.redirect_uri), ("state", listener.state),
                       ("code_challenge", challenge), ("code_challenge_method", "S256"),
                       ("device_name", socket.gethostname())])
    url = "%s/cli/authorize?%s" % (web, query)
    listener.start()
    try:
        if args.no_browser:
            console.line("Open this URL in a browser on this machine to sign in:\n  %s" % url)
        else:
            console.line("Opening the browser to sign in. If it does not open, visit:\n  %s" % url)
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
    """http://127.0.0.1:{port}/callback: takes one answer whose state matches, then stops."""

    def __init__(self, state):
        import threading
        from http.server import HTTPServer, BaseHTTPRequestHandler
        listener = self
        self.state = state
        self.result = None
        self.done = threading.Event()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                listener.handle(self)

            def log_message(self, *args):
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
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
        from urllib.parse import urlsplit, parse_qs
        parts = urlsplit(request.path)
        query = {key: values[0] for key, values in parse_qs(parts.query).items()}
        if parts.path != "/callback" or self.done.is_set():
            return self._answer(request, 404, "Not found.")
        if not hmac.compare_digest(query.get("state", "").encode(), self.state.encode()):
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
    """RFC 8628: show a code, poll the token endpoint every `interval` until it is approved."""
    import socket
    data = api.call("POST", "/v1/oauth/device", {"client_id": CLIENT_ID, "device_name": socket.gethostname()},
                    auth=False, check=check_device_answer)
    interval = data.get("interval") if is_number(data.get("interval")) and data["interval"] > 0 else 5
    expires_in = data.get("expiresIn") if is_number(data.get("expiresIn")) and data["expiresIn"] > 0 else 600
    console.line("To sign in, open %s and enter the code %s" % (data["verificationUri"], data["userCode"]))
    if isinstance(data.get("verificationUriComplete"), str):
        console.line("  (or open %s)" % data["verificationUriComplete"])
    deadline = CLOCK.now() + expires_in
    body = {"grant_type": "urn:ietf:params:oauth:grant-type:device_code", "client_id": CLIENT_ID,
            "device_code": data["deviceCode"]}
    while True:
        CLOCK.sleep(interval)
        if CLOCK.now() > deadline:
            raise LandbaseError("TIMEOUT", "the code %s expired before it was approved; run auth login --device again"
                                % data["userCode"])
        try:
            return exchange_token(api, body, retry=False)
        except LandbaseError as exc:
            if exc.server_code == "AUTHORIZATION_PENDING":
                continue
            if exc.server_code == "SLOW_DOWN":
                interval += 5
                continue
            if exc.server_code == "ACCESS_DENIED":
                raise LandbaseError("AUTH_FAILED", "the login was refused on the device page")
            if exc.server_code == "EXPIRED_TOKEN":
                raise LandbaseError("TIMEOUT", "the code %s expired before it was approved; run auth login "
                                    "--device again" % data["userCode"])
            if exc.transient:
                console.line("waiting for approval: %s (%s); trying again" % (exc.message, exc.code))
                continue
            raise


def check_device_answer(data):
    expect_object(data, "POST /v1/oauth/device")
    for key in ("deviceCode", "userCode", "verificationUri"):
        if not isinstance(data.get(key), str):
            raise contract_error("POST /v1/oauth/device", key, data.get(key), "a string")
    return data


def exchange_token(api, body, retry=True):
    try:
        return api.call("POST", "/v1/oauth/token", body, auth=False, retry=retry, check=check_token_answer)
    except LandbaseError as exc:
        if exc.code == "VALIDATION_ERROR" and exc.server_code not in (
                "AUTHORIZATION_PENDING", "SLOW_DOWN", "ACCESS_DENIED", "EXPIRED_TOKEN"):
            exc.code = "AUTH_FAILED"        # a refused code or verifier: the login failed
        raise


def check_token_answer(data):
    where = "POST /v1/oauth/token"
    expect_object(data, where)
    token = data.get("accessToken")
    if not isinstance(token, str) or not token.startswith("lbs_"):
        raise contract_error(where, "accessToken", "(hidden)", "an lbs_ token")
    try:
        parse_time(data.get("expiresAt"))
    except ValueError:
        raise contract_error(where, "expiresAt", data.get("expiresAt"), "a time like 2026-12-05T10:00:00Z")
    if data.get("accountId") is not None and not isinstance(data.get("accountId"), str):
        raise contract_error(where, "accountId", data.get("accountId"), "a string or null")
    return data


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
    if not token.startswith("lbs_") or not TOKEN_RE.match(token) or TOKEN_RE.match(token).group(0) != token:
        raise LandbaseError("INVALID_INPUT", "the token on stdin is not an lbs_ platform token")
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
        granted = {"accessToken": api.token, "expiresAt": format_time(CLOCK.wall() + SESSION_LIFETIME),
                   "accountId": None}
        console.line("The session is assumed to last 7 days from now; the platform may end it sooner.")
    else:
        use_device = args.device or (not args.no_browser and should_use_device_flow())
        if use_device and not args.device:
            console.line("No browser can be opened here; using the device code flow (auth login --device).")
        granted = login_device(console, api) if use_device else login_browser(args, console, api)
        api.token = granted["accessToken"]
    try:
        previous = store.load(console)
    except LandbaseError:
        previous = {}
    account_id = granted.get("accountId") or previous.get("accountId")
    session = {"accessToken": granted["accessToken"], "expiresAt": granted["expiresAt"], "accountId": account_id,
               "deviceName": previous.get("deviceName") or socket.gethostname()}
    store.update(session, console, replace_damaged=True)      # saved first: a failure below loses no login
    if me is None:
        me = fetch_me(api)
    if not (getattr(args, "account", None) or os.environ.get("LANDBASE_ACCOUNT_ID") or account_id):
        accounts = fetch_accounts(api)
        if len(accounts) == 1:
            account_id = accounts[0]["id"]
            store.update({"accountId": account_id})
            console.line("Active account: %s (the only one this identity has)" % account_id)
    write_json({"userId": me.get("userId"), "email": me.get("email"), "accountId": account_id,
                "expiresAt": granted["expiresAt"]})
    return 0


def cmd_auth_status(args, console):
    min_valid = parse_duration(args.min_valid) if args.min_valid is not None else None
    session = load_session(args, SessionStore(), console)
    expires_in = None if session.expires_at is None else int(session.expires_at - CLOCK.wall())
    if min_valid is not None and expires_in is not None and expires_in < min_valid:
        raise LandbaseError("AUTH_FAILED", "the session ends in %s, before the %s asked for by --min-valid: "
                            "run landbase_import.py auth login" % (format_span(expires_in), args.min_valid),
                            {"expiresInSeconds": expires_in})
    me = fetch_me(api_for(args, console, session.token))
    write_json({"authenticated": True, "userId": me.get("userId"), "email": me.get("email"),
                "accountId": session.account_id,
                "expiresAt": format_time(session.expires_at) if session.expires_at is not None else None,
                "expiresInSeconds": expires_in, "tokenSource": session.source})
    return 0


def cmd_auth_logout(args, console):
    store = SessionStore()
    try:
        stored = store.load(console)
    except LandbaseError as exc:
        console.warn(exc.message)
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
    write_json({"loggedOut": True, "revoked": revoked})
    return 0


def cmd_account_list(args, console):
    session = load_session(args, SessionStore(), console)
    accounts = fetch_accounts(api_for(args, console, session.token))
    write_json([{"id": a["id"], "name": a.get("name"), "active": a["id"] == session.account_id} for a in accounts])
    return 0


def cmd_account_set(args, console):
    account_id = check_account_id(args.account_id)
    store = SessionStore()
    session = load_session(args, store, console)
    accounts = fetch_accounts(api_for(args, console, session.token))
    match = [a for a in accounts if a["id"] == account_id]
    if not match:
        known = ", ".join(a["id"] for a in accounts) or "none"
        raise LandbaseError("NOT_FOUND", "account %s is not one this identity can use (it can use: %s)"
                            % (account_id, known), {"accountId": account_id})
    store.update({"accountId": account_id}, console)
    write_json({"accountId": account_id, "name": match[0].get("name")})
    return 0


def cmd_import_start(args, console):
    import uuid
    body = read_import_body(args.json)
    console.hold()                      # the first stderr line names the import id
    session = load_session(args, SessionStore(), console)
    account_id = require_account(session)
    api = api_for(args, console, session.token)
    path = "/v1/accounts/%s/contacts-imports" % account_id
    data = api.call("POST", path, body, headers={"Idempotency-Key": str(uuid.uuid4())}, check=check_started)
    import_id = data["importId"]
    console.release("Started import %d (run %s) in account %s. Follow it with: %s"
                    % (import_id, data["runRef"], account_id, resume_command(account_id, [import_id])))
    if not args.watch:
        write_json({"importId": import_id, "runRef": data["runRef"]})
        return 0
    return wait_for(api, account_id, [import_id], console, single=True)


def check_started(data):
    where = "POST contacts-imports"
    import_id = expect_object(data, where).get("importId")
    if not isinstance(import_id, int) or isinstance(import_id, bool) or not 0 < import_id <= MAX_IMPORT_ID:
        raise contract_error(where, "importId", import_id, "a positive integer")
    if not isinstance(data.get("runRef"), str):
        raise contract_error(where, "runRef", data.get("runRef"), "a string")
    return data


def cmd_import_status(args, console):
    import_id = check_import_id(args.import_id)
    session = load_session(args, SessionStore(), console)
    account_id = require_account(session)
    write_json(fetch_status(api_for(args, console, session.token), account_id, import_id))
    return 0


def cmd_import_wait(args, console):
    import_ids = [check_import_id(value) for value in args.import_ids]
    if len(set(import_ids)) != len(import_ids):
        raise LandbaseError("INVALID_INPUT", "an import id is given twice: %s" % " ".join(args.import_ids))
    session = load_session(args, SessionStore(), console)
    account_id = require_account(session)
    api = api_for(args, console, session.token)
    return wait_for(api, account_id, import_ids, console, single=len(import_ids) == 1)


def wait_for(api, account_id, import_ids, console, single):
    try:
        statuses = poll_until_terminal(api, account_id, import_ids, console)
    except (KeyboardInterrupt, Terminated) as exc:
        code = "TERMINATED" if isinstance(exc, Terminated) else "INTERRUPTED"
        command = resume_command(account_id, import_ids)
        console.line("%s: the import%s keep%s running on Landbase. Resume the wait with:\n  %s"
                     % ("Terminated" if code == "TERMINATED" else "Interrupted",
                        "" if single else "s", "s" if single else "", command))
        meta = {"importId": import_ids[0]} if single else {"importIds": import_ids}
        meta["resume"] = command
        raise LandbaseError(code, "the wait was %s; resume it with: %s"
                            % ("terminated" if code == "TERMINATED" else "interrupted", command), meta)
    return finish_wait(statuses, single)


# ---------------------------------------------------------------- argument parser

class Parser(argparse.ArgumentParser):
    """argparse that raises INVALID_INPUT (exit 1) instead of printing usage and exiting 2."""

    def error(self, message):
        raise LandbaseError("INVALID_INPUT", "%s (see: %s --help)" % (message, self.prog))


def positive_seconds(text):
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not (0 < value <= 3600):
        raise argparse.ArgumentTypeError("--timeout takes seconds between 0 and 3600, not %r" % text)
    return value


EXAMPLES = {
    "": """examples:
  landbase_import.py auth login
  landbase_import.py account set acc_abc123
  echo '{"datasetId": "ds_def456", "tagName": "Q2 outreach"}' |
    landbase_import.py contacts-import start --json - --watch
  landbase_import.py contacts-import wait 7 --account=acc_abc123

exit codes: 0 ok; 1 invalid input; 2 not found, conflict, API error, import failed or partial;
3 no or rejected session; 4 timeout or network error; 130 Ctrl-C; 143 SIGTERM""",
    "auth": "example:\n  landbase_import.py auth login --device",
    "auth login": "examples:\n  landbase_import.py auth login\n  landbase_import.py auth login --device\n"
                  "  printf '%s\\n' \"$TOKEN\" | landbase_import.py auth login --with-token",
    "auth status": "example (cron pre-flight):\n  landbase_import.py auth status --min-valid 2d >/dev/null || alert",
    "auth logout": "example:\n  landbase_import.py auth logout",
    "account": "example:\n  landbase_import.py account list",
    "account list": "example:\n  landbase_import.py account list",
    "account set": "example:\n  landbase_import.py account set acc_abc123",
    "contacts-import": "example:\n  landbase_import.py contacts-import status 7",
    "contacts-import start": "examples:\n  landbase_import.py contacts-import start --json body.json\n"
                             "  echo '{\"datasetId\": \"ds_def456\", \"tagName\": \"Q2\"}' | "
                             "landbase_import.py contacts-import start --json - --watch",
    "contacts-import status": "example:\n  landbase_import.py contacts-import status 7 --account=acc_abc123",
    "contacts-import wait": "example:\n  landbase_import.py contacts-import wait 7 8 9",
}


def build_parser():
    def add_globals(parser, top):
        default = (lambda value: value) if top else (lambda value: argparse.SUPPRESS)
        group = parser.add_argument_group("global options")
        group.add_argument("--account", metavar="ID", default=default(None),
                           help="the account for this call (else LANDBASE_ACCOUNT_ID, else the stored one)")
        group.add_argument("--timeout", metavar="SECONDS", type=positive_seconds, default=default(DEFAULT_TIMEOUT),
                           help="per-request timeout (default 30)")
        group.add_argument("--verbose", action="store_true", default=default(False),
                           help="request and response details on stderr (the token is redacted)")
        group.add_argument("--quiet", action="store_true", default=default(False), help="no progress lines")

    def command(subparsers, name, key, help_text):
        sub = subparsers.add_parser(name, help=help_text, description=help_text, epilog=EXAMPLES[key],
                                    formatter_class=argparse.RawDescriptionHelpFormatter, allow_abbrev=False)
        add_globals(sub, top=False)
        return sub

    def group(parser, dest):
        subparsers = parser.add_subparsers(dest=dest, metavar="COMMAND")
        subparsers.required = True
        return subparsers

    parser = Parser(prog=os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "landbase_import.py",
                    description="Bulk-import a Landbase dataset's contacts into an account under a tag.",
                    epilog=EXAMPLES[""], formatter_class=argparse.RawDescriptionHelpFormatter, allow_abbrev=False)
    parser.add_argument("--version", action="version", version="landbase-import %s" % __version__)
    add_globals(parser, top=True)
    top = group(parser, "command")

    auth = group(command(top, "auth", "auth", "log in, show or end the platform session"), "action")
    login = command(auth, "login", "auth login", "log in: browser (PKCE), --device, or --with-token from stdin")
    how = login.add_mutually_exclusive_group()
    how.add_argument("--device", action="store_true", help="device code flow, for hosts without a browser")
    how.add_argument("--with-token", action="store_true", help="read an lbs_ token from stdin")
    login.add_argument("--no-browser", action="store_true", help="print the login URL instead of opening it")
    login.set_defaults(run=cmd_auth_login)
    status = command(auth, "status", "auth status", "show who is logged in and how long the session lasts")
    status.add_argument("--min-valid", metavar="DURATION",
                        help="exit 3 unless the session lasts at least this long (90s, 30m, 12h, 2d)")
    status.set_defaults(run=cmd_auth_status)
    command(auth, "logout", "auth logout", "revoke the token and remove the local session").set_defaults(
        run=cmd_auth_logout)

    account = group(command(top, "account", "account", "list accounts or choose the active one"), "action")
    command(account, "list", "account list", "list the accounts this identity can use").set_defaults(
        run=cmd_account_list)
    account_set = command(account, "set", "account set", "make an account the active one")
    account_set.add_argument("account_id", metavar="accountId")
    account_set.set_defaults(run=cmd_account_set)

    imports = group(command(top, "contacts-import", "contacts-import", "start, read or wait for imports"), "action")
    start = command(imports, "start", "contacts-import start", "start an import from {datasetId, tagName, importId?}")
    start.add_argument("--json", required=True, metavar="PATH|-", help="the body: a file, or - for stdin")
    start.add_argument("--watch", action="store_true", help="then wait until it ends, as wait does")
    start.set_defaults(run=cmd_import_start)
    status = command(imports, "status", "contacts-import status", "print an import's status once")
    status.add_argument("import_id", metavar="importId")
    status.set_defaults(run=cmd_import_status)
    wait = command(imports, "wait", "contacts-import wait", "wait until imports end (5 s, 10 s, then every 20 s; "
                   "30 minutes at most)")
    wait.add_argument("import_ids", metavar="importId", nargs="+")
    wait.set_defaults(run=cmd_import_wait)
    return parser


def parse_args(argv):
    args = build_parser().parse_args(argv)
    if args.account is not None:
        check_account_id(args.account, "--account")
    return args


# ---------------------------------------------------------------- main

def _on_sigterm(signum, frame):
    raise Terminated()


def main(argv=None):
    """Run one command; the exit code. Every failure ends stderr with the one-line error envelope."""
    argv = sys.argv[1:] if argv is None else argv
    console = Console()
    previous = None
    try:
        previous = signal.signal(signal.SIGTERM, _on_sigterm)
    except (ValueError, OSError):
        pass                            # not the main thread (in-process tests)
    try:
        args = parse_args(argv)
        console = Console(quiet=args.quiet, verbose=args.verbose)
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
        if previous is not None:
            try:
                signal.signal(signal.SIGTERM, previous)
            except (ValueError, OSError):
                pass


def report(console, exc):
    console.release()
    console.line(json.dumps(exc.envelope(), ensure_ascii=True, allow_nan=False, default=str))
    return exc.exit_code


if __name__ == "__main__":
    sys.exit(main())

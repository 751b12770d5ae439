#!/usr/bin/env python3
"""`make mutants`: hand-written mutations of landbase_import.py, each breaking one promise of the
README, CLI.md or an issue, each of which the suite must kill.

    mutants.py [-j JOBS] [--modules PATTERN]... [--list] [--no-baseline] [NAME ...]

For each mutation: a copy of the repository in a scratch directory, the tool in it with one snippet
replaced, or several (a snippet found other than exactly once, or a mutant that does not compile,
is an error that names the mutation), and tests/run.py run there on the test modules that should
kill it. A mutant is killed when that run fails. The named modules are first run once on the
unmutated copy: a module that fails there would kill anything, so the run stops. At the end, a
table (mutation, promise, seconds, killed by) and `mutants: N killed, M survived`; the exit is 1
when any survived or did not apply.

--modules (one pattern each time it is given) runs other modules than the ones each mutation names
(--modules 'test_*.py' to find every killer); NAME runs only those mutations; --list prints the
mutations and applies each to check it, running nothing.
"""

import argparse
import collections
import fnmatch
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
TOOL_NAME = "landbase_import.py"

Mutant = collections.namedtuple("Mutant", "name promise old new modules")

# name, the promise it breaks, the exact text it replaces (a tuple: several), its replacement, the
# modules that kill it
MUTANTS = [
    # ---- exit codes, the envelope, the streams
    Mutant("exit-4-network",
           "exit 4 is TIMEOUT and NETWORK_ERROR: the platform could not be reached",
           '"TIMEOUT": 4, "NETWORK_ERROR": 4,', '"TIMEOUT": 2, "NETWORK_ERROR": 2,',
           ("test_promises",)),
    Mutant("exit-3-auth-required", "exit 3 is AUTH_REQUIRED: log in again",
           '"AUTH_REQUIRED": 3,', '"AUTH_REQUIRED": 1,', ("test_promises",)),
    Mutant("exit-signal", "SIGINT, SIGTERM and SIGHUP exit 130, 143 and 129",
           "            return 128 + self.signum\n", "            return 130\n", ("test_poll",)),
    Mutant("sighup-handled",
           "SIGHUP (an SSH session that drops) exits 129 as TERMINATED, naming the key",
           '("SIGINT", "SIGTERM", "SIGHUP")', '("SIGINT", "SIGTERM")', ("test_unattended",)),
    Mutant("first-signal-only",
           "only the first signal acts: a SIGTERM right behind a Ctrl-C is ignored",
           "    if STOPPING:\n        return\n"
           "    if frame is not None and frame.f_code is _on_signal.__code__:\n        return\n",
           "", ("test_promises",)),
    Mutant("first-signal-nested", "a signal taken as another's handler begins changes nothing",
           "    if frame is not None and frame.f_code is _on_signal.__code__:\n        return\n",
           "", ("test_promises",)),
    Mutant("signal-name-first", "a signal's name comes first in its message: a command at its "
           "end can be pasted as it is",
           '    text = "stopped by %s" % name\n    if message:\n        text += ": " + message\n',
           '    text = "stopped"\n    if message:\n        text = message\n'
           '    text += " (%s)" % name\n', ("test_hostile_three",)),
    Mutant("signals-main-thread", "only the main thread takes SIGINT, SIGTERM and SIGHUP",
           'mask = getattr(signal, "pthread_sigmask", None)', "mask = None",
           ("test_e2e_sessions",)),
    Mutant("envelope-meta", "the envelope is {error: {code, message, meta}}",
           '"message": error.message, "meta": error.meta}}', '"message": error.message}}',
           ("test_poll",)),
    Mutant("envelope-dated", "the envelope is the last stderr line, pure JSON, no time in front",
           'self._write(json.dumps(redact_values(doc, True), ensure_ascii=True, default=str)'
           ' + "\\n")',
           'self.line(json.dumps(redact_values(doc, True), ensure_ascii=True, default=str))',
           ("test_poll",)),
    Mutant("stdout-one-line", "stdout carries exactly one JSON document and a newline",
           "        text = json.dumps(doc, ensure_ascii=True, allow_nan=False)\n"
           "        if may_hold_secret",
           "        text = json.dumps(doc, ensure_ascii=True, allow_nan=False, indent=1)\n"
           "        if may_hold_secret",
           ("test_surface",)),
    Mutant("stdout-nothing-else", "everything but the result goes to stderr",
           "self.stream = sys.stderr            # None when stderr was closed",
           "self.stream = sys.stdout            # None when stderr was closed",
           ("test_surface",)),
    Mutant("log-lines-dated", "a log gets one line per event, each beginning with its UTC time",
           'stamp = format_time(CLOCK.wall()) + " "', 'stamp = ""', ("test_poll",)),
    Mutant("failure-line",
           "on failure a dated line names the code, the exit and the message, before the envelope",
           "        self.line(text)\n        doc = {\"error\":",
           "        self.debug(text)\n        doc = {\"error\":", ("test_unattended",)),
    Mutant("output-failed",
           "OUTPUT_FAILED (exit 2): the work was done but stdout could not be written",
           'raise LandbaseError("OUTPUT_FAILED", message, meta)',
           'raise LandbaseError("API_ERROR", message, meta)', ("test_surface",)),
    Mutant("output-failed-meta", "OUTPUT_FAILED's meta has the import id",
           'raise LandbaseError("OUTPUT_FAILED", message, meta)',
           'raise LandbaseError("OUTPUT_FAILED", message, None)', ("test_surface",)),
    Mutant("closed-stderr", "a closed or full stderr changes no exit code",
           "self.stream = None          # a closed or full stderr changes nothing else", "raise",
           ("test_promises",)),
    Mutant("utf8-stdout", "--query's text is UTF-8 whatever the locale",
           'text[start:start + 65536].encode("utf-8", "surrogateescape")',
           'text[start:start + 65536].encode("ascii", "replace")',
           ("test_unattended",)),
    Mutant("help-through-writer",
           "help goes through the stdout writer: a closed stdout is OUTPUT_FAILED",
           "        write_stdout(str(text))\n", "        print(str(text), end=\"\")\n",
           ("test_input",)),
    Mutant("version-sha256", "--version prints the SHA-256 of the file that runs",
           r'"landbase-import %s\n%s\n" % (__version__, digest_text())',
           r'"landbase-import %s\n%.0s" % (__version__, digest_text())',
           ("test_e2e",)),
    # ---- what may be printed
    Mutant("redact-exact-token",
           "the exact token is redacted, whatever its shape (not only lbs_…)",
           "    if may_hold_secret(text):\n        text = _without_secrets(text)\n",
           "    if False:\n        text = _without_secrets(text)\n",
           ("test_http",)),
    Mutant("redact-pattern", "anything shaped like an lbs_ token is redacted",
           "        text = without_token_shapes(text)\n", "        pass\n", ("test_promises",)),
    Mutant("redact-pattern-whole-tokens", "a long server text is redacted a slice at a time, "
           "never cutting a token shape in two", "            stop = end.end()\n",
           "            stop = start + size\n", ("test_hostile",)),
    Mutant("redact-escaped-forms",
           "a secret with its characters escaped (JSON, HTML, a URL) is redacted too",
           'return "(?:%s)" % _kinds_pattern(alternatives)', "return re.escape(ch)", ("test_hostile",)),
    Mutant("redact-escaped-twice", "a secret in JSON escapes written inside JSON text "
           "(\\\\u0041) is redacted too", r'ESCAPE_INTROS = {"json": r"\\{1,2}u"',
           r'ESCAPE_INTROS = {"json": r"\\u"', ("test_fuzz_server",)),
    Mutant("redact-escape-whole", "an escaped form that begins with the secret's last character "
           "is redacted whole (&#38; leaves no #38;)",
           'ESCAPE_KINDS = ("json", "reference", "percent", "space", "slashed", "entity", "plain")',
           'ESCAPE_KINDS = ("plain", "json", "reference", "percent", "space", "slashed", "entity")',
           ("test_hostile",)),
    Mutant("redact-long-secret-escaped", "a secret over 256 characters is redacted in its usual "
           "escapings (JSON, a URL, HTML) too",
           "patterns.extend(re.escape(form) for form in _usual_escapings(secret))",
           "patterns.append(re.escape(secret))", ("test_hostile",)),
    Mutant("redact-no-decoding", "redaction never decodes a server's text: a character "
           "reference is printed as sent, whatever its digits",
           "    if may_hold_secret(text):\n        text = _without_secrets(text)\n",
           '    text = __import__("html").unescape(text)\n'
           "    if may_hold_secret(text):\n        text = _without_secrets(text)\n",
           ("test_hostile_three",)),
    Mutant("proxy-base64-secret",
           "the proxy's user:password in base64, as Proxy-Authorization sends it, is a secret",
           'remember_secret(base64.b64encode(pair.encode("utf-8")).decode("ascii"))', "pass",
           ("test_hostile_three",)),
    Mutant("dry-run-body-as-is",
           "--dry-run prints the user's body as sent: never redacted by pattern",
           ("        if may_hold_secret(text):",
            "            doc = redact_values(doc)\n"),
           ("        if True:", "            doc = redact_values(doc, pattern=True)\n"),
           ("test_surface",)),
    Mutant("printable-escapes",
           "server text reaches a terminal or log as printable text: no escapes",
           (r'CONTROL_RE = re.compile("[\x00-\x1f\x7f-\x9f]")',
            r'ch if ch.isprintable() else "\ufffd"'),
           (r'CONTROL_RE = re.compile("[\x00-\x06\x08-\x1a\x1c-\x1f\x7f-\x9f]")',
            r'ch if ch.isprintable() or ch in "\x1b\x07" else "\ufffd"'), ("test_http",)),
    Mutant("printable-one-line", "server text reaches a terminal or log on one line: no newlines",
           (r'CONTROL_RE = re.compile("[\x00-\x1f\x7f-\x9f]")',
            r'ch if ch.isprintable() else "\ufffd"'),
           (r'CONTROL_RE = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f]")',
            r'ch if ch.isprintable() or ch == "\n" else "\ufffd"'), ("test_surface",)),
    Mutant("excerpt-window",
           "a server text of up to 4 MiB is cut to what is printed before it is decoded",
           "    window = raw[:limit + 2 + ESCAPED_CHAR_SPAN * longest]\n",
           "    window = raw\n", ("test_hostile_three",)),
    # ---- retries
    Mutant("retry-schedule", "one-shot requests retry after 5 s, 10 s and 20 s",
           "RETRY_DELAYS = (5, 10, 20)", "RETRY_DELAYS = (5, 10, 30)", ("test_http",)),
    Mutant("retry-count", "one-shot requests retry a transient failure up to 3 times",
           "delays = iter(RETRY_DELAYS if retry else ())",
           "delays = iter(RETRY_DELAYS[:2] if retry else ())", ("test_http",)),
    Mutant("retry-after", "a longer Retry-After is honoured",
           "wait = max(planned, error.retry_after)", "wait = planned", ("test_http",)),
    Mutant("retry-after-cap", "a Retry-After over 5 minutes ends a one-shot command",
           "RETRY_AFTER_CAP = 300", "RETRY_AFTER_CAP = 3000", ("test_http",)),
    Mutant("retry-after-digits", "Retry-After in ASCII digits only ('²' is no number)",
           'if re.match(r"[0-9]+\\Z", value):', "if value.isdigit():", ("test_http",)),
    Mutant("retry-after-larger",
           "Retry-After and meta.retry_after_seconds: the larger is honoured",
           "return max(found, default=None)", "return found[-1] if found else None",
           ("test_promises",)),
    Mutant("retry-after-kept",
           "an error re-wrapped by a caller keeps the server's Retry-After and code",
           '"transient": self.transient, "retry_after": self.retry_after,',
           '"transient": self.transient, "retry_after": None,', ("test_poll",)),
    Mutant("429-transient", "429 is transient: retried", "status == 429 or status >= 500",
           "status >= 500", ("test_http",)),
    Mutant("401-next-step", "a 401 says to run auth login",
           "    if status == 401:\n        message +=", "    if False:\n        message +=",
           ("test_http",)),
    # ---- the poller
    Mutant("poll-schedule", "wait reads at once, then after 5 s and 10 s", "POLL_DELAYS = (5, 10)",
           "POLL_DELAYS = (5, 15)", ("test_poll",)),
    Mutant("poll-every", "then every 20 s", "POLL_EVERY = 20", "POLL_EVERY = 15", ("test_poll",)),
    Mutant("wait-30-minutes", "wait gives up with TIMEOUT after 30 minutes by default",
           "WAIT_LIMIT = 30 * 60", "WAIT_LIMIT = 40 * 60", ("test_poll",)),
    Mutant("max-wait-7-days", "--max-wait is at most 7 days",
           "if seconds is None or not 0 < seconds <= MAX_WAIT_LIMIT:",
           "if seconds is None or not 0 < seconds:", ("test_promises",)),
    Mutant("max-wait-bounds-requests", "--max-wait bounds each request: its timeout is the "
           "smaller of --timeout and the time left",
           "tracker.import_id, False, min(api.timeout, left))",
           "tracker.import_id, False, api.timeout)", ("test_surface",)),
    Mutant("max-wait-needs-watch", "--max-wait without --watch is INVALID_INPUT",
           'if args.words == ("contacts-import", "start") and args.max_wait is not None '
           'and not args.watch:', "if False:", ("test_hostile",)),
    Mutant("auth-failed-ends-wait", "AUTH_FAILED ends the wait at once",
           '    if error.code == "AUTH_FAILED":\n        raise error\n',
           '    if False:\n        raise error\n', ("test_poll",)),
    Mutant("timeout-prints-status",
           "a wait that ends in TIMEOUT prints the last-known status all the same",
           'printed = started or outcome in (None, "IMPORT_FAILED", "IMPORT_PARTIAL", "TIMEOUT")',
           'printed = started or outcome in (None, "IMPORT_FAILED", "IMPORT_PARTIAL")', ("test_poll",)),
    Mutant("lock-a-directory", "a directory in place of the lock file fails doctor, and a change's "
           "error says to remove it", "        if os.path.isdir(lock):\n            return (",
           "        if False:\n            return (", ("test_hostile_three",)),
    Mutant("logout-retries-revoke", "a logout retries a revoke that failed transiently",
           'call("POST", "/v1/oauth/revoke")', 'call("POST", "/v1/oauth/revoke", retry=False)',
           ("test_session",)),
    Mutant("login-names-account-variable", "a login names the LANDBASE_ACCOUNT_ID that commands "
           "will use instead of the stored account",
           "    warn_account_variable(account_id, console, ids)\n", "", ("test_hostile",)),
    Mutant("given-up-says-later", "a one-shot command the platform failed every try of says to "
           "run it again later", 'if planned is None and attempt > 0 and "status" in error.meta:',
           "if False:", ("test_http",)),
    Mutant("wait-permanent-error-resume", "a wait ended by a permanent error gives the command "
           "that resumes it", 'if first.outcome != "NOT_FOUND":', "if False:", ("test_poll",)),
    Mutant("signal-run-again", "a signal that stops a one-shot command gives the command again",
           'stopped(exc, "run it again: " + command_again(words))', "stopped(exc)",
           ("test_hostile_three",)),
    Mutant("device-login-again", "a device login's failure ends with the command that logs in "
           "again", '"log in, run it again and approve: %s auth login --device"',
           '"log in, run it again and approve: %s"', ("test_login",)),
    Mutant("proxy-407-without-credentials", "a 407 to a proxy URL without credentials says to "
           "put them in it", "if status == 407 and self.proxy.authorization is None:", "if False:",
           ("test_proxy",)),
    Mutant("tls-cut-short-fix", "a TLS handshake cut short has its own fix, not the timeout's",
           "% (where, detail, fix), transient=True, fix=fix)", "% (where, detail, fix), transient=True)",
           ("test_second_week",)),
    Mutant("started-import-printed",
           "a row every night an import started, even when its session ends during the wait",
           'printed = started or outcome in', 'printed = outcome in', ("test_poll",)),
    Mutant("started-wait-survives-auth-failed",
           "a watched start whose session ends prints its import's last-known state",
           "        if not started:\n            raise ", "        if True:\n            raise ",
           ("test_poll",)),
    Mutant("several-ids-not-found",
           "with several ids, an id that cannot be read does not stop the others",
           "        tracker.error = error\n", "        raise error\n", ("test_poll",)),
    Mutant("first-id-decides", "the exit and envelope are those of the first id, in the order "
           "given, that did not complete",
           "    for tracker in trackers:\n        if tracker.outcome is not None:",
           "    for tracker in reversed(trackers):\n        if tracker.outcome is not None:",
           ("test_poll",)),
    Mutant("four-in-flight", "with several ids, at most 4 requests at a time",
           "MAX_POLLS_IN_FLIGHT = 4", "MAX_POLLS_IN_FLIGHT = 8", ("test_poll",)),
    Mutant("redraw-own-lines",
           "the redraw erases only its own lines (erase-line), never the display (ESC[J)",
           r'moves = "\r\x1b[K" + "\x1b[1A\x1b[K" * up', r'moves = "\x1b[1A" * up + "\r\x1b[J"',
           ("test_poll",)),
    Mutant("summary-failed-first",
           "the summary of several ids names the failed and partial ids first",
           'line = "%s | %s" % ("; ".join(named), line)',
           'line = "%s | %s" % (line, "; ".join(named))', ("test_second_week",)),
    # ---- start
    Mutant("idempotency-key-reused",
           "each start sends one Idempotency-Key, the same on each of its retries",
           "                attempt += 1\n",
           '                attempt += 1\n                headers = dict(headers or {}, '
           '**{"Idempotency-Key": "retry-%d" % attempt})\n', ("test_http",)),
    Mutant("unsure-names-key", "a start that gives up after a POST that may have reached the "
           "platform names its key in meta.idempotencyKey",
           "meta = dict(exc.meta, idempotencyKey=key, serverCode=exc.code,",
           "meta = dict(exc.meta, serverCode=exc.code,", ("test_unattended",)),
    Mutant("rerun-equals-form", "the command that gets the import back uses "
           "--idempotency-key=KEY (a key may begin with -)",
           'words.append("--idempotency-key=" + key)',
           'words.extend(["--idempotency-key", key])', ("test_unattended",)),
    Mutant("rerun-safe-until", "the command that gets an ambiguous start back names its deadline "
           "(24 hours from the first attempt)",
           '    text = "get it back, never a second one, %s; later, the same key starts a new '
           'import)" % text\n',
           '    text = "get it back, never a second one"\n', ("test_second_week",)),
    Mutant("rerun-safe-until-meta", "an ambiguous start's meta.safeUntil is its rerun's deadline",
           "        meta = dict(exc.meta, idempotencyKey=key, serverCode=exc.code,\n"
           "                    safeUntil=format_time(first_attempt + KEY_KEPT))",
           "        meta = dict(exc.meta, idempotencyKey=key, serverCode=exc.code)",
           ("test_second_week",)),
    Mutant("rerun-stdin-said",
           "a rerun of start --json - says that it needs the body on stdin again",
           '    if args.json == "-":\n        text +=', "    if False:\n        text +=",
           ("test_hostile_three",)),
    Mutant("unsure-never-exit-1", "a start that may have created an import never exits 1",
           '        if exc.exit_code == 1:\n            code = "API_ERROR"\n'
           '        meta = dict(exc.meta, idempotencyKey=key',
           '        if False:\n            code = "API_ERROR"\n'
           '        meta = dict(exc.meta, idempotencyKey=key', ("test_surface",)),
    Mutant("watch-never-exit-1", "start --watch never exits 1 once the import exists",
           '        if exc.exit_code == 1:\n            code = "API_ERROR"\n'
           '        meta = dict(exc.meta, importId=import_id',
           '        if False:\n            code = "API_ERROR"\n'
           '        meta = dict(exc.meta, importId=import_id', ("test_surface",)),
    Mutant("watch-retries-until-max-wait",
           "start --watch retries a transient start with the same key until --max-wait",
           "            delays = poll_delays()\n", "            delays = iter(RETRY_DELAYS)\n",
           ("test_second_week",)),
    Mutant("watch-retries-bounded", "start --watch's retries and its wait share --max-wait",
           "        until = CLOCK.now() + args.max_wait\n",
           "        until = CLOCK.now() + 2 * args.max_wait\n", ("test_second_week",)),
    Mutant("start-three-retries", "start without --watch retries a transient failure 3 times",
           "    if args.watch:\n        until = CLOCK.now()",
           "    if True:\n        until = CLOCK.now()",
           ("test_second_week",)),
    Mutant("key-reused-new-key", "a key kept for another body gives the same line with a new key",
           '        if exc.meta.get("reason") == "idempotency_key_reused":\n',
           "        if False:\n", ("test_second_week",)),
    Mutant("replayed-logged",
           "an Idempotent-Replayed answer is logged 'already started', never 'Started'",
           '.strip().lower() == "true"', '.strip().lower() == "yes"', ("test_unattended",)),
    Mutant("own-retry-not-replay",
           "a run's own retry that created the import is not called a replay",
           '    elif answer["retried"]:\n', "    elif False:\n", ("test_hostile_three",)),
    Mutant("start-line-follow",
           "start's first stderr line names the import and the command that follows it",
           'console.line("%s Follow it with: %s" % (what, resume_command(account.id, '
           '[import_id])))', "console.line(what)", ("test_poll",)),
    Mutant("outcome-before-output",
           "a signal after the start is answered names the import: known before it is written",
           '        known["importId"] = answer["importId"]\n', "", ("test_races",)),
    Mutant("conflict-names-wait", "a CONFLICT names the command that waits on the running import",
           "% (error.message, running, command))", '% (error.message, running, "it"))',
           ("test_surface",)),
    Mutant("conflict-watch-attaches", "a CONFLICT with --watch attaches to the running import",
           '    if not args.watch:\n        raise error.replace(message="%s; wait on import %d',
           '    if True:\n        raise error.replace(message="%s; wait on import %d',
           ("test_surface",)),
    Mutant("key-charset", "--idempotency-key takes 1 to 255 printable ASCII characters",
           r'KEY_RE = re.compile(r"[\x20-\x7e]{1,255}\Z")',
           r'KEY_RE = re.compile(r"[\x20-\x7e]{1,999}\Z")', ("test_surface",)),
    Mutant("dry-run-says-what", "--dry-run's line says what it checked and what only a start or "
           "doctor checks",
           "\"sent. The platform checks the dataset and the account's access to it only at \"\n"
           "                 \"start; %s doctor checks the platform side.\"",
           "\"sent.%s\"", ("test_second_week",)),
    # ---- accounts and the session file
    Mutant("account-option-first", "--account beats LANDBASE_ACCOUNT_ID",
           "        if account_override:\n            return check_account_id(account_override, ",
           '        if account_override and not os.environ.get("LANDBASE_ACCOUNT_ID"):\n'
           "            return check_account_id(account_override, ", ("test_input",)),
    Mutant("account-env-before-file", "LANDBASE_ACCOUNT_ID beats the stored account",
           "        if from_env:\n            return check_account_id(from_env,",
           '        if from_env and not stored.get("accountId"):\n'
           "            return check_account_id(from_env,", ("test_input",)),
    Mutant("not-found-names-source", "a NOT_FOUND on an account's path names where the account "
           "id came from (--account, LANDBASE_ACCOUNT_ID, the stored one)",
           "% (account.id, source, program_command())\n    )",
           '% (account.id, "the session", program_command())\n    )', ("test_second_week",)),
    Mutant("file-0600", "platform.json is created 0600 whatever the umask",
           "os.fchmod(fd, 0o600)", "os.fchmod(fd, 0o644)", ("test_session",)),
    Mutant("directory-0700", "the config directory is created 0700 whatever the umask",
           "os.chmod(self.directory, 0o700)", "os.chmod(self.directory, 0o755)",
           ("test_session",)),
    Mutant("atomic-write", "each write goes to a temporary file renamed over the old one",
           'tmp = self.path + ".tmp"', "tmp = self.path", ("test_session",)),
    Mutant("synced-write", "the temporary file is synced before it is renamed",
           "                os.fsync(fd)\n", "                pass\n", ("test_unattended",)),
    Mutant("write-lock", "every change of platform.json is made under the lock",
           "while not _try_lock(fd):", "while False:", ("test_unattended",)),
    Mutant("lock-wait-clock", "the lock wait goes through the clock seam (CLOCK), not time.sleep",
           ("ends = CLOCK.now() + LOCK_WAIT", "if CLOCK.now() > ends:",
            "CLOCK.sleep(LOCK_POLL)"),
           ("ends = time.monotonic() + LOCK_WAIT", "if time.monotonic() > ends:",
            "time.sleep(LOCK_POLL)"), ("test_races",)),
    Mutant("unknown-keys-kept", "keys the tool does not know are kept in platform.json",
           "            data.update(changes)\n", "            data = dict(changes)\n",
           ("test_session",)),
    Mutant("fifo-refused", "a FIFO or a directory in place of platform.json is SETUP_FAILED "
           "naming it", "if not stat.S_ISREG(mode):", "if False:", ("test_promises",)),
    Mutant("group-readable-warning", "a platform.json readable by group or others gets a warning",
           'os.name == "posix" and mode & 0o077:', 'os.name == "posix" and mode & 0o007:',
           ("test_session",)),
    Mutant("expired-before-request", "a session past expiresAt is AUTH_FAILED before any request",
           "            if expires_at <= CLOCK.wall():\n                raise LandbaseError(",
           "            if expires_at <= CLOCK.wall() - 30 * 86400:\n"
           "                raise LandbaseError(",
           ("test_session",)),
    Mutant("warn-24-hours", "less than 24 hours of session left warns once",
           "    left = expires_at - CLOCK.wall()\n    if left < SESSION_WARN_BELOW:\n",
           "    left = expires_at - CLOCK.wall()\n    if left < 12 * 3600:\n", ("test_session",)),
    Mutant("min-valid", "auth status --min-valid exits 3 when the session ends sooner",
           "if left < min_valid:", "if left < min_valid - 86400:", ("test_promises",)),
    Mutant("account-set-checks-file", "account set writes only if platform.json still holds the "
           "token it checked the account with",
           'store.update({"accountId": args.account_id}, console, expected=read)',
           'store.update({"accountId": args.account_id}, console, expected=None)',
           ("test_races",)),
    Mutant("login-second-write-checks", "a login's choice of account is written only if "
           "platform.json still holds what the login wrote",
           'store.update({"accountId": account_id}, expected=written)',
           'store.update({"accountId": account_id}, expected=None)', ("test_races",)),
    Mutant("logout-removes-its-token", "a logout removes only the token it revoked",
           "removed = store.remove(token)", "removed = store.remove()", ("test_races",)),
    Mutant("logout-lock-before-revoke",
           "a logout checks the lock before revoking: a hung lock revokes nothing",
           "        check_lock(store)\n", "", ("test_races",)),
    Mutant("login-names-file", "a login's stderr says where it saved the session",
           'console.line("Saved the session in %s" % store.path)', "pass",
           ("test_second_week",)),
    # ---- strict JSON and the limits
    Mutant("json-duplicates", "duplicate keys are refused", "if len(seen) < len(pairs):",
           "if False:", ("test_input",)),
    Mutant("json-nan", "NaN and Infinity are refused",
           '"parse_constant": _refuse_constant}', '"parse_constant": float}', ("test_session",)),
    Mutant("json-40-digits", "a number of more than 40 digits is refused",
           "MAX_JSON_DIGITS = 40 ", "MAX_JSON_DIGITS = 400 ", ("test_promises",)),
    Mutant("json-64-levels", "a document nested deeper than 64 levels is refused",
           "MAX_JSON_DEPTH = 64 ", "MAX_JSON_DEPTH = 640 ", ("test_promises",)),
    Mutant("json-containers", "more than 400,000 objects and arrays in one document are refused",
           "MAX_JSON_CONTAINERS = 400000 ", "MAX_JSON_CONTAINERS = 4000000 ",
           ("test_hostile_three",)),
    Mutant("json-values", "a document of more than 20,000 values, but the accounts list, is refused",
           "MAX_JSON_VALUES = 20000 ", "MAX_JSON_VALUES = 2000000 ", ("test_hostile_three",)),
    Mutant("json-values-scan", "the values are counted outside strings, past the first chunk too",
           '        commas += outside.count(b",")\n', "", ("test_hostile_three",)),
    Mutant("doctor-envelope-fix", "doctor's envelope ends with the first failed check's fix",
           '            message += "; fix: " + fix', "            pass", ("test_doctor",)),
    Mutant("transport-doctor-hint", "each network failure and timeout ends with the pointer to doctor",
           "            message += doctor_hint()\n", "            pass\n", ("test_http",)),
    Mutant("json-values-accounts-only", "only the accounts list may hold more values",
           "data = parse_json(raw, many=path == ACCOUNTS_PATH)", "data = parse_json(raw, many=True)",
           ("test_hostile_three",)),
    Mutant("secret-plain-marks", "a text with a + in it is read by the secret's forms (a space escaped as +)",
           'ESCAPE_RE = re.compile(r"[\\\\+]|&[#A-Za-z]|%[0-9A-Fa-f]{2}")',
           'ESCAPE_RE = re.compile(r"[\\\\]|&[#A-Za-z]|%[0-9A-Fa-f]{2}")',
           ("test_attack_findings",)),
    Mutant("secret-plain-end", "a text without escapes is searched for each window of a secret",
           "        for offset in _windows(secret):\n            if secret[offset:",
           "        for offset in _windows(secret)[:1]:\n            if secret[offset:",
           ("test_attack_findings",)),
    Mutant("json-object-keys", "an object of more than 10,000 keys is refused before it is parsed",
           "MAX_OBJECT_KEYS = 10000 ", "MAX_OBJECT_KEYS = 100000 ", ("test_hostile_three",)),
    Mutant("json-object-keys-scan", "each open object keeps its own count of keys, nested ones closed",
           "            open_objects.append(0)\n", "            open_objects[:] = [0]\n", ("test_hostile_three",)),
    Mutant("answer-4-mib", "an answer over 4 MiB is not read further: a broken answer",
           "if body.tell() > MAX_ANSWER_BYTES:", "if body.tell() > 8 * MAX_ANSWER_BYTES:", ("test_promises",)),
    Mutant("body-1-mib", "the body of start --json is at most 1 MiB",
           "MAX_BODY_BYTES = 1024 * 1024 ", "MAX_BODY_BYTES = 2 * 1024 * 1024 ", ("test_input",)),
    Mutant("status-five-keys", "status prints exactly these five keys",
           "        return {key: data.get(key) for key in STATUS_KEYS}\n",
           "        return data\n", ("test_http",)),
    Mutant("import-id-twice", "an id given twice is INVALID_INPUT",
           "if ids is not None and len(set(ids)) != len(ids):", "if False:", ("test_input",)),
    # ---- transport
    Mutant("timeout-whole-request", "--timeout bounds each whole request, connect to last byte",
           "if not self.over.wait(self.seconds):", "if not self.over.wait(self.seconds * 1000):",
           ("test_http",)),
    Mutant("resolve-within-deadline",
           "name resolution runs within the request's deadline (--timeout)",
           "    addresses = resolve(host, port, deadline)\n",
           "    addresses = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)\n",
           ("test_hostile_three",)),
    Mutant("redirect-same-origin",
           "a redirect to another origin is refused: the token never goes there",
           "        if not same:\n", "        if False:\n", ("test_http",)),
    Mutant("redirect-not-by-urllib", "redirects are judged by the tool, never followed by urllib",
           "            return None                 # the default error handler then raises "
           "HTTPError 30x",
           "            return urllib.request.HTTPRedirectHandler.http_error_302(self, req, fp, "
           "code, msg, headers)", ("test_http",)),
    Mutant("host-allowlist", "a base URL's host is landbase.com, a subdomain of it, or loopback",
           'host.endswith(".landbase.com")', 'host.endswith("landbase.com")', ("test_http",)),
    Mutant("https-except-loopback", "https is required except on loopback",
           'if parts.scheme == "http" and not is_loopback(url):', "if False:", ("test_http",)),
    Mutant("loopback-never-proxied", "a loopback base never goes through a proxy",
           "    opener.add_handler(HTTPHandler())\n",
           "    opener.add_handler(HTTPHandler())\n    opener.add_handler(urllib.request.ProxyHandler())\n",
           ("test_http",)),
    Mutant("no-proxy-host-port", "NO_PROXY=host:port keeps the proxy from being used, and the "
           "tool says so", "for name in (host, netloc, host_port(host, port)):",
           "for name in (host,):", ("test_hostile_three",)),
    Mutant("ipv6-proxy-brackets", "an IPv6 proxy is named host:port with the address in brackets",
           '    if ":" in host:\n        host = "[%s]" % host\n', "", ("test_hostile_three",)),
    Mutant("proxy-refusal-final", "a proxy that refuses the tunnel (403, 407) is not retried",
           "if self.proxy is not None and refused:", "if False:", ("test_proxy",)),
    Mutant("https-proxy-refused", "an https:// proxy is refused before anything is sent",
           'if scheme != "http":', 'if scheme not in ("http", "https"):', ("test_proxy",)),
    Mutant("dns-suggests-proxy", "a name that does not resolve without a proxy suggests "
           "HTTPS_PROXY", "; if this host reaches the internet through a proxy, set HTTPS_PROXY",
           "", ("test_second_week",)),
    Mutant("tls-verified", "TLS certificates are always verified",
           "return ssl.create_default_context(cafile=cafile or None)",
           "return ssl._create_unverified_context()", ("test_http",)),
    Mutant("tls-failure-final", "a certificate that fails verification is not retried",
           '"%s: TLS failed (%s); %s: %s" % (where, detail, hint, fix), fix=fix\n',
           '"%s: TLS failed (%s); %s: %s" % (where, detail, hint, fix), fix=fix, transient=True\n',
           ("test_http",)),
    Mutant("printed-command-path",
           "the commands the tool prints run this file from any directory (its absolute path)",
           "    path = os.path.abspath(__file__)\n    if not os.path.isfile(path):",
           "    path = os.path.basename(__file__)\n    if not os.path.isfile(path):",
           ("test_hostile_three",)),
    # ---- login
    Mutant("pkce-s256", "the browser login sends the S256 challenge of its verifier",
           "hashlib.sha256(verifier.encode()).digest()",
           "hashlib.sha1(verifier.encode()).digest()",
           ("test_login",)),
    Mutant("state-checked", "the login callback checks state",
           "if not hmac.compare_digest(given, self.state.encode()):",
           "if False and hmac.compare_digest(given, self.state.encode()):", ("test_login",)),
    Mutant("callback-loopback", "the callback listens on 127.0.0.1 only",
           'Server(("127.0.0.1", 0), Handler)', 'Server(("0.0.0.0", 0), Handler)',
           ("test_login",)),
    Mutant("login-5-minutes", "the browser login gives up after 5 minutes",
           "LOGIN_LIMIT = 5 * 60 ", "LOGIN_LIMIT = 6 * 60 ", ("test_login",)),
    Mutant("device-15-minutes", "the device login gives up after 15 minutes at most",
           "DEVICE_LIMIT = 15 * 60 ", "DEVICE_LIMIT = 30 * 60 ", ("test_promises",)),
    Mutant("device-interval-bounds", "the device flow's interval is kept between 1 and 60 s",
           "DEVICE_INTERVALS = (1, 60) ", "DEVICE_INTERVALS = (1, 600) ", ("test_login",)),
    Mutant("device-slow-down", "slow_down adds 5 s between device polls",
           "                interval += 5\n", "                interval += 1\n", ("test_login",)),
    # ---- the terminal and the command line
    Mutant("terminal-width", "the redrawn line is never wider than the terminal",
           "return max(2, columns)", "return max(2, columns) + 10", ("test_poll",)),
    Mutant("no-color", "NO_COLOR turns colours off",
           'self.color = self.tty and os.environ.get("NO_COLOR", "") == ""',
           "self.color = self.tty", ("test_poll",)),
    Mutant("term-dumb", "TERM=dumb gets the log form",
           'self.tty = _isatty(self.stream) and os.environ.get("TERM") != "dumb"',
           "self.tty = _isatty(self.stream)", ("test_poll",)),
    Mutant("query-null-empty", "--query prints null as an empty field",
           '    if value is None:\n        return ""\n    if isinstance(value, str):',
           '    if value is None:\n        return "null"\n    if isinstance(value, str):',
           ("test_surface",)),
    Mutant("query-tabs", "--query's paths print tab-separated",
           '"\\t".join(query_field(entry, path) for path in paths)',
           '" ".join(query_field(entry, path) for path in paths)', ("test_surface",)),
    Mutant("query-unknown-path",
           "a --query path not in the output is INVALID_INPUT before anything is sent",
           "            if path not in allowed:\n", "            if False:\n", ("test_surface",)),
    Mutant("help-every-level", "--help works at every level",
           'line.parser(words, subparsers, usage=("%(prog)s " + usage).rstrip(), ',
           'line.parser(words, subparsers, add_help=False, usage=("%(prog)s " + usage).rstrip(), ',
           ("test_input",)),
    Mutant("no-abbreviations", "an abbreviated option (--max for --max-wait) is refused",
           "formatter_class=HelpLayout, allow_abbrev=False)",
           "formatter_class=HelpLayout, allow_abbrev=True)",
           ("test_input",)),
    Mutant("did-you-mean", "a mistyped command or option gets the nearest valid one",
           '    if not word:\n        return ""\n', '    if True:\n        return ""\n',
           ("test_input",)),
    # ---- doctor
    Mutant("doctor-exit-class", "doctor exits with the class of its first failure (1 setup, "
           "3 session, 4 network)",
           'raise LandbaseError(code, message, {"failed"',
           'raise LandbaseError("API_ERROR", message, {"failed"',
           ("test_doctor",)),
    Mutant("doctor-skew-fails", "doctor fails a clock skew over 5 minutes (exit 1)",
           '            "clock",\n            "fail",\n',
           '            "clock",\n            "warn",\n',
           ("test_doctor",)),
    Mutant("doctor-env-token-end", "doctor takes an environment token's end from /v1/me",
           'if expires_at is None and me is not None and is_time(me.get("expiresAt")):',
           "if False:", ("test_hostile_three",)),
    Mutant("doctor-unwritable-lock", "doctor fails a platform.json.lock this user cannot write, "
           "naming it", "    if os.path.lexists(lock) and not os.access(lock, os.W_OK):\n",
           "    if False:\n", ("test_hostile_three",)),
    Mutant("doctor-ca-fix", "doctor's fix for an untrusted CA names SSL_CERT_FILE, not a generic "
           "list", 'fix = "trust the issuer: SSL_CERT_FILE=<your CA bundle> (a TLS-inspecting '
           'proxy\'s CA, say)"',
           'fix = "see the detail: the firewall, the proxy\'s credentials and ports, the clock, '
           'or the CA"', ("test_second_week",)),
    Mutant("doctor-no-leak", "doctor leaves no file open (clean under -X dev)",
           'with open(os.path.abspath(__file__), "rb") as handle:',
           'for handle in [open(os.path.abspath(__file__), "rb")]:', ("test_devmode",)),
    # ---- what the black-box attack found (test_attack_findings)
    Mutant("answer-redaction-precheck",
           "an answer that may hold a secret or a token shape is redacted (the one reading of it)",
           '    if b"lbs_" in raw or b"\\\\" in raw:\n        return True\n',
           '    if False:\n        return True\n', ("test_http", "test_hostile")),
    Mutant("short-values-no-secret", "a value of a few characters is no secret: the output stays whole",
           "MIN_SECRET = 8 ", "MIN_SECRET = 1 ", ("test_attack_findings",)),
    Mutant("secret-pieces", "a secret cut by its echo is redacted piece by piece",
           "            patterns.append(_windows_pattern(windows, forms, names, marks))\n",
           "            pass\n", ("test_attack_findings",)),
    Mutant("secret-middle-windows", "a piece from the middle of a secret is redacted (a window every 8)",
           "    offsets = list(range(0, last, SECRET_WINDOW_STEP))\n", "    offsets = [0]\n",
           ("test_attack_findings",)),
    Mutant("secret-reach-forward", "an echo of a secret is redacted up to where the secret ends in it",
           "            end = _reach_forward(text, end, secret[offset + SECRET_PIECE:])\n", "            pass\n",
           ("test_attack_findings",)),
    Mutant("secret-escape-ends", "a backslash escape before a secret's end is redacted with it",
           "ESCAPE_ENDS = ';+\"/\\\\'", "ESCAPE_ENDS = ';+'", ("test_attack_findings",)),
    Mutant("unsent-not-ambiguous", "a start that never reached the platform says nothing of an import",
           "        if not any(attempt.transient and not attempt.unsent for attempt in attempts):",
           "        if not any(attempt.transient for attempt in attempts):", ("test_second_week",)),
    Mutant("stopped-writes-bounded", "a stopped run ends though nobody reads its stderr",
           "    signal.setitimer(signal.ITIMER_REAL, STOPPED_WRITES_LIMIT)\n", "    pass\n",
           ("test_races",)),
    Mutant("secret-reach-back", "an echo of a secret is redacted from where the secret begins in it",
           "            start = _reach_back(text, done, start, secret[:offset])\n", "            pass\n",
           ("test_attack_findings",)),
    Mutant("secret-end-longest", "an escaped character before a secret's window is redacted whole",
           "        if previous.isalnum() or previous in ESCAPE_ENDS:", "        if False:",
           ("test_attack_findings",)),
    Mutant("environment-token-renewal",
           "a token from LANDBASE_ACCESS_TOKEN is renewed there, not by a login",
           '    if source == "env":\n        return "renew LANDBASE_ACCESS_TOKEN',
           '    if False:\n        return "renew LANDBASE_ACCESS_TOKEN', ("test_attack_findings",)),
    Mutant("watch-says-the-import-exists",
           "start --watch refused after the start says the import exists, with its key",
           "            meta[\"idempotencyKey\"] = key\n", "            pass\n",
           ("test_attack_findings",)),
]


def apply(mutant, source):
    """The tool's source with the mutation applied; ValueError naming it when it does not apply.
    A mutation of several snippets (old and new as tuples) replaces each, each found once."""
    olds = mutant.old
    news = mutant.new
    if isinstance(olds, str):
        olds = (olds,)
        news = (news,)
    if len(olds) != len(news):
        raise ValueError("mutant %s: %d snippets, %d replacements"
                         % (mutant.name, len(olds), len(news)))
    mutated = source
    for old, new in zip(olds, news):
        if old == new:
            raise ValueError("mutant %s changes nothing" % mutant.name)
        found = source.count(old)
        if found != 1:
            raise ValueError("mutant %s: its snippet is found %d times in %s, not once: %r"
                             % (mutant.name, found, TOOL_NAME, old[:80]))
        mutated = mutated.replace(old, new)
    try:
        compile(mutated, TOOL_NAME, "exec")
    except SyntaxError as exc:
        raise ValueError("mutant %s does not compile: %s" % (mutant.name, exc))
    return mutated


def scratch_copy(source):
    """A copy of the repository (no .git, no build, no caches) with `source` as the tool: (the
    scratch directory, the copy in it)."""
    directory = tempfile.mkdtemp(prefix="lbi-mutant-")
    # mkdtemp makes it 0700: the tests that run the tool as the user nobody must reach the copy
    os.chmod(directory, 0o755)
    copy = os.path.join(directory, "repo")
    ignored = shutil.ignore_patterns(".git", "build", "__pycache__", "*.pyc")
    shutil.copytree(ROOT, copy, ignore=ignored)
    with open(os.path.join(copy, TOOL_NAME), "w", encoding="utf-8") as handle:
        handle.write(source)
    return directory, copy


# the modules that take longest (seconds, roughly, on 2 loaded cores), so that their mutants start
# first: a shorter tail
SLOWER = {"test_hostile_three": 25, "test_unattended": 20, "test_e2e_sessions": 15,
          "test_poll": 12, "test_http": 11, "test_e2e": 10, "test_login": 9, "test_hostile": 9}
FAILED_TEST = re.compile(r"^(?:FAIL|ERROR): (\w+) \(([\w.]+)\)", re.M)
MODULE_LINE = re.compile(r"^(test_\w+) +(\d+) passed +(\d+) failed", re.M)


def run_tests(source, modules, jobs, timeout):
    """(failed, what failed, seconds) of tests/run.py on `modules` against a copy holding
    `source`."""
    started = time.monotonic()
    directory, copy = scratch_copy(source)
    command = [sys.executable, os.path.join(copy, "tests", "run.py"), "-j", str(jobs)]
    command += [module + ".py" for module in modules]
    try:
        env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
        process = subprocess.Popen(command, cwd=copy, env=env, stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, start_new_session=True)
        try:
            output = process.communicate(timeout=timeout)[0].decode("utf-8", "replace")
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
            return True, ["timed out after %ds" % timeout], time.monotonic() - started
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    return process.returncode != 0, what_failed(output, process.returncode), (
        time.monotonic() - started)


def what_failed(output, returncode):
    """The tests that failed in run.py's output (module.Class.test), else the modules, else its
    last line when it failed otherwise."""
    tests = []
    for test, where in FAILED_TEST.findall(output):
        name = where
        if not where.endswith("." + test):
            name = where + "." + test
        if name not in tests:
            tests.append(name)
    if tests:
        return tests
    modules = [module for module, _, failed in MODULE_LINE.findall(output) if int(failed)]
    if modules:
        return modules
    if returncode:
        return [output.strip().split("\n")[-1]]
    return []


def killers(what):
    """What killed a mutant, short: the modules, with the first failing test of each and how many
    more."""
    by_module = collections.OrderedDict()
    for name in what:
        by_module.setdefault(name.split(".")[0], []).append(name.split(".", 1)[-1])
    parts = []
    for module, names in by_module.items():
        if names[0] == module:          # a module's name alone: no test was named
            parts.append(module)
            continue
        more = ""
        if len(names) > 1:
            more = " +%d" % (len(names) - 1)
        parts.append("%s (%s%s)" % (module, names[0].split(".")[-1], more))
    return "; ".join(parts)


def parse_args(argv):
    parser = argparse.ArgumentParser(description="Run the hand-written mutations of the tool.")
    parser.add_argument("-j", "--jobs", type=int, default=3, help="mutants at a time (default 3)")
    parser.add_argument("--test-jobs", type=int, default=2,
                        help="test modules at a time in each mutant")
    parser.add_argument("--timeout", type=int, default=600,
                        help="seconds a mutant's tests may take")
    # one pattern an option: a list (nargs) would take the names after it for patterns
    parser.add_argument("--modules", action="append",
                        help="run the modules this pattern names instead of each mutant's "
                        "(repeatable)")
    parser.add_argument("--list", action="store_true",
                        help="print and check the mutations; run nothing")
    parser.add_argument("--no-baseline", action="store_true",
                        help="skip the run on the unmutated tool")
    parser.add_argument("names", nargs="*", help="run only these mutations (default: all)")
    return parser.parse_args(argv[1:])


def mutated_sources(chosen, source):
    """({name: the mutated source} of the mutants that apply, [the error of each that does
    not])."""
    errors = []
    sources = {}
    for mutant in chosen:
        missing = [m for m in mutant.modules if not os.path.exists(os.path.join(HERE, m + ".py"))]
        try:
            if missing or not mutant.modules:   # run.py would fail, and the mutant pass for killed
                raise ValueError("mutant %s names no test module, or one that does not exist: %s"
                                 % (mutant.name, ", ".join(missing)))
            sources[mutant.name] = apply(mutant, source)
        except ValueError as exc:
            errors.append(str(exc))
    return sources, errors


def modules_of(mutant, patterns):
    """The modules a mutant runs: its own, or those the --modules patterns name."""
    if not patterns:
        return list(mutant.modules)
    files = sorted(f[:-3] for f in os.listdir(HERE) if f.startswith("test") and f.endswith(".py"))
    return [f for f in files if any(fnmatch.fnmatch(f + ".py", p) for p in patterns)]


def print_table(rows, errors, started):
    """The table of every mutant run, the kills of each module, and the summary line; the exit."""
    print()
    print("%-28s | %-60s | %7s | %s" % ("mutation", "promise", "seconds", "killed by"))
    print("-" * 29 + "|" + "-" * 62 + "|" + "-" * 9 + "|" + "-" * 40)
    kills = collections.Counter()
    survived = []
    for mutant, failed, what, seconds in rows:
        killed_by = "SURVIVED"
        if failed:
            killed_by = killers(what)
            kills.update(set(name.split(".")[0] for name in what))
        else:
            survived.append(mutant.name)
        print("%-28s | %-60s | %7.0f | %s" % (mutant.name, mutant.promise[:60], seconds,
                                              killed_by))
    print("kills by module: %s" % ", ".join("%s %d" % item for item in kills.most_common()))
    for error in errors:
        print("NOT APPLIED: " + error)
    for name in survived:
        print("SURVIVED: %s" % name)
    not_applied = ""
    if errors:
        not_applied = ", %d not applied" % len(errors)
    print("mutants: %d killed, %d survived%s (%.0fs)" % (
        len(rows) - len(survived), len(survived), not_applied, time.monotonic() - started))
    if survived or errors:
        return 1
    return 0


def main(argv):
    args = parse_args(argv)
    started = time.monotonic()
    with open(os.path.join(ROOT, TOOL_NAME), encoding="utf-8") as handle:
        source = handle.read()
    names = [m.name for m in MUTANTS]
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        print("mutants: duplicated names: %s" % ", ".join(duplicated))
        return 1
    unknown = [n for n in args.names if n not in names]
    if unknown:
        print("mutants: no mutation named %s" % ", ".join(unknown))
        return 1
    chosen = [m for m in MUTANTS if not args.names or m.name in args.names]
    sources, errors = mutated_sources(chosen, source)
    if args.list:
        for mutant in chosen:
            print("%-28s %-20s %s" % (mutant.name, ",".join(mutant.modules), mutant.promise))
        print("mutants: %d listed, %d do not apply" % (len(chosen), len(errors)))
        for error in errors:
            print("NOT APPLIED: " + error)
        if errors:
            return 1
        return 0

    runnable = [m for m in chosen if m.name in sources]
    if not args.no_baseline:
        baseline = sorted({module for m in runnable for module in modules_of(m, args.modules)})
        jobs = max(args.test_jobs, args.jobs)
        failed, what, seconds = run_tests(source, baseline, jobs, args.timeout)
        outcome = "passed"
        if failed:
            outcome = "FAILED: %s" % ", ".join(what)
        print("baseline: %d modules on the unmutated tool, %s in %.0fs"
              % (len(baseline), outcome, seconds), flush=True)
        if failed:
            print("mutants: the unmutated tool fails these modules, so no kill would mean "
                  "anything")
            return 1

    def run(mutant):
        modules = modules_of(mutant, args.modules)
        failed, what, seconds = run_tests(sources[mutant.name], modules, args.test_jobs,
                                          args.timeout)
        line = "%-28s SURVIVED in %.0fs" % (mutant.name, seconds)
        if failed:
            line = "%-28s killed in %.0fs: %s" % (mutant.name, seconds, killers(what))
        print(line, flush=True)
        return mutant, failed, what, seconds

    def slowness(mutant):
        return -sum(SLOWER.get(module, 1) for module in modules_of(mutant, args.modules))
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:   # the slowest first
        done = {}
        for row in pool.map(run, sorted(runnable, key=slowness)):
            done[row[0].name] = row
    rows = [done[m.name] for m in runnable]
    return print_table(rows, errors, started)


if __name__ == "__main__":
    sys.exit(main(sys.argv))

#!/usr/bin/env python3
"""`make reliability`: run the fault matrix, the fuzzers and the guarantee tests; print the figures
as Markdown.

What it prints is the full record of the tool's reliability, each table with the date and the
interpreter it was made on (the README keeps a few headline figures and points here). Exits 1 if
anything fails.
"""

import json
import os
import platform
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import faults  # noqa: E402
import fuzz_server  # noqa: E402

GUARANTEES = [
    ("20 processes running `account set` and `status` at once leave a valid `platform.json`, no temporary files",
     "test_state.ConcurrencyTests"),
    ("SIGKILL during a session write (40 kills, half of them mid-write for certain) leaves the old file or the new one",
     "test_state.CrashSafetyTests"),
    ("SIGINT/SIGTERM during a wait exit 130/143 with the resume command; a closed stdout exits quietly",
     "test_e2e_sessions.LoginAndSignalTests.test_signals_end_a_wait_with_the_resume_command",
     "test_e2e.EndToEndTests.test_a_closed_stdout_exits_quietly"),
    ("a wait rides out a 3-minute outage of the status endpoint and ends with the final status",
     "test_poll.PollTests.test_a_long_outage_is_ridden_out"),
    ("a corrupt, truncated, empty or wrong-typed `platform.json` is `SETUP_FAILED` naming the file; "
     "group/other-readable gets a warning with the fix",
     "test_session.SessionFileTests.test_damaged_files_are_named",
     "test_session.SessionFileTests.test_a_truncated_file_is_named",
     "test_session.SessionFileTests.test_a_file_readable_by_others_gets_a_warning_with_the_fix"),
    ("less than 24 h of session left warns once; `auth status --min-valid 2d` exits 3 when it will not last",
     "test_session.SessionFileTests.test_a_session_with_less_than_a_day_left_warns_once",
     "test_session.AuthCommandTests.test_min_valid"),
    ("the token is never printed (`--verbose` included) and never sent to another origin",
     "test_http.HeaderTests.test_verbose_shows_requests_and_never_the_token",
     "test_http.RedirectTests.test_a_cross_origin_redirect_is_refused_and_the_token_stays_home"),
    ("base URLs: `landbase.com`, its subdomains or loopback only; plain http only to loopback",
     "test_http.BaseUrlTests"),
    ("the OAuth callback listens on 127.0.0.1 only, rejects a wrong or missing `state`, accepts one callback "
     "and stops; PKCE S256 always",
     "test_login.BrowserLoginTests.test_the_listener_binds_loopback_only",
     "test_login.BrowserLoginTests.test_wrong_or_missing_state_is_rejected_and_the_login_goes_on",
     "test_login.BrowserLoginTests.test_one_callback_is_accepted_then_the_listener_stops",
     "test_login.BrowserLoginTests.test_the_authorize_url_carries_pkce_s256_and_a_loopback_redirect"),
    ("the session file is created 0600 in a 0700 directory under umask 000, 022 and 277",
     "test_session.SessionFileTests.test_created_0600_in_a_0700_directory_whatever_the_umask"),
    ("`start` retried after a lost answer imports once (same `Idempotency-Key`)",
     "test_http.HeaderTests.test_start_retries_with_the_same_idempotency_key_and_imports_once"),
    ("closed stdout / stderr / stdin, `/dev/full` and a reader that left, for `start`, `status`, `wait` and "
     "`auth status`: `OUTPUT_FAILED` with the import id, no exit changed by stderr, `INVALID_INPUT` for stdin",
     "test_streams.StreamTests.test_closed_or_full_stdout_is_output_failed_naming_the_import",
     "test_streams.StreamTests.test_closed_stderr_changes_no_exit_code",
     "test_streams.StreamTests.test_closed_stdin", "test_streams.StreamTests.test_a_reader_that_left_is_quiet"),
    ("a FIFO or a directory in place of `platform.json`: `SETUP_FAILED` naming it, never a hang",
     "test_streams.StreamTests.test_a_fifo_or_a_directory_in_place_of_platform_json"),
    ("`http_proxy` with a loopback base: the proxy sees nothing",
     "test_streams.StreamTests.test_http_proxy_is_never_used_for_a_loopback_base",
     "test_http.ProxyTests"),
    ("an idle, reset or malformed connection to the login callback neither blocks the browser's answer nor "
     "prints anything",
     "test_streams.StreamTests.test_an_idle_connection_does_not_hold_the_login_callback",
     "test_streams.StreamTests.test_a_reset_and_a_malformed_request_on_the_login_callback_print_nothing"),
    ("a device flow that never ends stops within 15 minutes; a huge interval is kept in bounds; "
     "`Retry-After` is honoured",
     "test_streams.StreamTests.test_device_login_is_bounded_and_honours_retry_after",
     "test_login.DeviceLoginTests"),
    ("a token of odd shape in the environment, echoed back by a server (plain, JSON-escaped, HTML-escaped), "
     "under `--verbose`: on no stream",
     "test_streams.StreamTests.test_a_token_of_odd_shape_is_printed_nowhere",
     "test_http.HostileAnswerTests.test_a_token_the_server_echoes_is_never_printed"),
    ("a hostile `phase` on a terminal (a pseudo-terminal, 40 and 80 columns): no escape, no newline, no token, "
     "no wrapped line; `TERM=dumb` and logs get dated plain lines",
     "test_streams.StreamTests.test_a_hostile_phase_on_a_terminal",
     "test_streams.StreamTests.test_term_dumb_on_a_terminal_gets_the_log_form",
     "test_streams.StreamTests.test_the_log_form_dates_every_line_and_ends_with_pure_json"),
    ("a crafted document (a megabyte body, four 4 MiB answers of brackets and escaped quotes) is judged at once",
     "test_hostile.CraftedDocuments"),
    ("a start that gives up after an attempt that may have reached the platform names its key and the command "
     "that gets the import back; SIGHUP during a start exits 129 naming it; a replay logs 'already started'",
     "test_unattended.LostAnswerTests", "test_unattended.ReplayTests",
     "test_unattended.ProcessTests.test_sighup_during_a_start_names_the_key"),
    ("a login or a logout during another process's slow write of `platform.json` is kept (a 2-second fsync)",
     "test_unattended.ProcessTests.test_a_login_during_a_slow_write_is_kept",
     "test_unattended.ProcessTests.test_a_logout_during_a_slow_write_is_not_undone"),
    ("`--max-wait 2` bounds a wait on 12 silent ids; a TIMEOUT still prints the last-known status",
     "test_unattended.ProcessTests.test_max_wait_bounds_a_wait_on_many_ids",
     "test_unattended.TimeoutRowTests"),
    ("the browser: started detached (it prints and stays open, yet the login returns and stdout is one JSON "
     "document); the 5 minutes start with the login; a blank `BROWSER` is no crash",
     "test_hostile.BrowserTests"),
    ("the config directory: a file in its place keeps its mode and is `SETUP_FAILED`; a directory the tool did "
     "not make keeps its mode; `SSL_CERT_FILE` naming a FIFO is refused at once",
     "test_hostile.OddEnvironmentTests"),
    ("an account id a server sends is checked and never stored; a bad stored one is repaired by an override",
     "test_hostile.AccountIdTests"),
]


def made():
    """When and on what a table was made: the date, the interpreter and the machine."""
    return "%s, %s %s, %s" % (time.strftime("%Y-%m-%d"), platform.python_implementation(),
                              platform.python_version(), platform.machine())


INTRODUCTION = """What the tool guarantees, each backed by tests. `make test` runs them all, with
the fault matrix for `start` and `wait`, every other case of the input fuzzer and every fourth of
the server-side one (and issue 21's shapes, but for the slow proxy ones); `make reliability` (also
run by CI) runs the full matrix and every case, and prints what follows. The fault matrix runs the
real file as a subprocess against the sandbox's fault injection; `tests/fastclock.py` lets the
retries and polls happen for real while their waits take no time, and logs each wait so that the
schedule is checked. The fuzzers run the tool in-process with a fake clock, each case judged by an
oracle that states the contract's promises without reading an answer the way the tool does.
"""


def run_tests(names, env=None):
    saved = dict(os.environ)
    os.environ.update(env or {})
    try:
        suite = unittest.defaultTestLoader.loadTestsFromNames(names)
        with open(os.devnull, "w") as sink:
            result = unittest.TextTestRunner(stream=sink, verbosity=0).run(suite)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return result.testsRun, len(result.failures) + len(result.errors)


def cell(row):
    """The row's cell in the matrix table, and whether it kept its contract (faults.problems)."""
    if row["error"]:
        return "**HARNESS FAILED**", False
    found = faults.problems(row)
    text = ("exit %d `%s`" % (row["exit"], row["code"])) if row["exit"] else "exit 0"
    return "%s, %d req%s" % (text, row["attempts"], " **UNEXPECTED: %s**" % "; ".join(found) if found else ""), \
        not found


def waits(sleeps):
    if len(sleeps) > 6:
        return "%s, ... (%d waits, %g s)" % (", ".join("%g" % s for s in sleeps[:4]), len(sleeps), sum(sleeps))
    return ", ".join("%g" % s for s in sleeps) + " s" if sleeps else "none"


def print_matrix():
    """The fault matrix as a table; returns the number of rows that broke their contract."""
    failures = 0
    rows = faults.run_matrix()
    commands = list(faults.COMMANDS)
    by_key = {(r["command"], r["fault"]): r for r in rows}
    print("### Fault matrix: %d commands x %d faults, each the real file as a subprocess\n"
          % (len(commands), len(faults.FAULTS)))
    print("Made %s.\n" % made())
    print("| fault | " + " | ".join("`%s`" % c for c in commands) + " | waits between tries | `wait` polls "
          "again after | max RSS |")
    print("|---" * (len(commands) + 4) + "|")
    for fault in faults.FAULTS:
        cells = []
        for command in commands:
            text, ok = cell(by_key[(command, fault.name)])
            failures += not ok
            cells.append(text)
        one_shot = next((by_key[(c, fault.name)]["sleeps"] for c in commands
                         if c != "wait" and by_key[(c, fault.name)]["sleeps"]), [])
        rss = max(by_key[(c, fault.name)]["maxrss"] for c in commands) / 2.0 ** 20
        print("| %s | %s | %s | %s | %.0f MiB |" % (fault.name, " | ".join(cells), waits(one_shot),
                                                   waits(by_key[("wait", fault.name)]["sleeps"]), rss))
    slowest = max(rows, key=lambda r: r["seconds"])
    dead = next(fault.name for fault in faults.FAULTS if fault.times == "always")
    print("\nEach cell: the exit, the error code, and the attempts counted where they arrive (requests on the "
          "route the command uses; connections for the TLS rows and for the listener that closes what it "
          "accepts). One-shot commands retry a transient failure after 5, 10 and 20 s; `wait` rides out "
          "three failed polls (5, 10, 20 s) and prints the final status, and against a platform that never "
          "answers it gives up with `TIMEOUT` after %d polls and 30 minutes. Max RSS: the largest "
          "`ru_maxrss` (wait4) of the row's %d runs, each under %d MiB whatever the server sent (a 100 MB "
          "body, an endless one). Each run ended within its waits (on the fast clock) plus `--timeout` per "
          "request plus %g s; the longest took %.1f s of real time (%s, %s). No row printed a traceback, "
          "\"internal error\" or the token; no request reached the other origin.\n"
          % (by_key[("wait", dead)]["attempts"], len(commands), faults.MAX_RSS // 2 ** 20,
             faults.STARTUP_MARGIN, slowest["seconds"], slowest["command"], slowest["fault"]))
    if failures:
        print("**%d runs broke their contract: the cells marked UNEXPECTED say how; the paragraph above is what "
              "the others kept.**\n" % failures)
    return failures


def print_server_fuzzer():
    """The server-side fuzzer: seeded answers of a hostile platform, each run through the tool and
    judged against the contract's promises; issue 21's shapes; the cases built for complexity, with
    their CPU time and memory; the planted bugs it catches. Failures: a count."""
    report = os.path.join(tempfile.mkdtemp(prefix="lbi-rel-"), "server-fuzz.json")
    ran, failed = run_tests(["test_fuzz_server"], {"FUZZ_SERVER_REPORT": report})
    try:
        with open(report) as handle:
            figures = json.load(handle)
        fuzz, complexity, planted = figures["fuzz"], figures["complexity"], figures["planted"]
        shapes, memory = figures["shapes"], figures["memory"]
    except (OSError, ValueError, KeyError):
        print("### Server-side fuzzer\n\n**it wrote no report** (%d tests ran, %d failed)\n" % (ran, failed))
        return failed or 1
    print("### Server-side fuzzer\n")
    print("Made %s.\n" % made())
    print("%d seeded cases (seed %s) of the answers of %d routes (%s), through the commands that read them, "
          "each judged against the contract's promises, not a second reading of the answer: no traceback or "
          "internal error, no token on any stream in any escaping, an exit and a code from the documented table "
          "that agree, stdout one JSON document or nothing, every stderr line printable (dated in the log form, the "
          "envelope last on failure), requests within `--timeout`, memory bounded; and, where a case's "
          "construction settles it, the end (a valid answer succeeds, a known code wins, a broken answer is "
          "retried). %d families (%s); exits seen: %s; codes: %s. Slowest case %.2f s; peak memory grew %.1f MiB "
          "over the run (bound %.0f).\n" % (
              fuzz["cases"], figures["seed"], len(fuzz["by_route"]), ", ".join(sorted(fuzz["by_route"])),
              len(fuzz["by_family"]), ", ".join("%s %d" % item for item in sorted(fuzz["by_family"].items())),
              ", ".join("%s x%s" % item for item in sorted(fuzz["exits"].items(), key=lambda i: int(i[0])
                                                             if i[0].lstrip("-").isdigit() else 999)),
              ", ".join("%s x%s" % item for item in sorted(fuzz["codes"].items())),
              fuzz["max_case_seconds"], fuzz["maxrss_growth_mib"], memory["budget_mib"]))
    print_shapes(shapes)
    print_complexity(complexity, memory)
    caught = sum(1 for count in planted.values() if count)
    print("Planted bugs caught: %d of %d.\n" % (caught, len(planted)))
    print("| planted bug | cases that caught it |")
    print("|---|---|")
    for name, caught in sorted(planted.items()):
        print("| %s | %s |" % (name, caught or "**none**"))
    print("\n%s\n" % ("All passed." if not failed else "**%d FAILED**" % failed))
    return failed


def result_cell(problems):
    if not problems:
        return "pass"
    return "**%s**" % ", ".join(problems)


SHAPES = """%d cases: character references (`&#` and 4,301 to 1,000,000 digits, numeric and named
references) and percent runs in phases, pages and messages; every command behind a proxy that
answers CONNECT with no HTTP, a header over 64 KiB, a status line that drips a byte a second past
`--timeout`, or a 407 that echoes the credentials it was sent (as sent, in base64, decoded and
escaped): each must end `NETWORK_ERROR` or `TIMEOUT` within `--timeout` a connection; `doctor`
against hostile `Date` headers (a missing or invalid one is a warning that says so, never a skew);
the token echoed in every escaping in every place the tool prints. %d passed. Made %s.
"""
COMPLEXITY = """%d answers of up to 4 MiB and inputs of up to 1 MiB, each in a forked worker of its own.
The promise: whatever its size (up to 4 MiB), an answer costs under %g s of CPU (the thread that
runs the tool) and the process stays under %d MiB, on a terminal too. A case over 512 KiB runs
again as a process of the tool's own (tests/fastclock.py: compiled from its source, its clock
fake), whose peak is judged; a smaller one may add %.1f MiB to its worker (64 MiB less the tool at
rest, after one small status read: %s on this interpreter). Worst: %.2f s of CPU per MiB (%s, %d KiB); highest peak: %s. Over
%g s of CPU: %s. Over the memory bound: %s. Made %s.
"""


def print_shapes(shapes):
    """Issue 21's shapes at fixed sizes, one row a case."""
    rows = shapes["rows"]
    passed = sum(1 for row in rows if not row["problems"])
    print("#### Issue 21's shapes\n")
    print(SHAPES % (len(rows), passed, made()))
    print("| family | case | command | exit | seconds | CPU | memory growth | result |")
    print("|---|---|---|---|---|---|---|---|")
    for row in rows:
        ending = "exit %s" % row["exit"]
        if row["exit"]:
            ending += " `%s`" % row["code"]
        print("| %s | %s | `%s` | %s | %.2f s | %.2f s | %.0f MiB | %s |" % (
            row["family"], row["kind"].replace("|", "\\|"), row["command"], ending,
            row["seconds"], row["cpu"], max(0.0, row["rss_growth_mib"]),
            result_cell(row["problems"])))
    print()


def print_complexity(complexity, memory):
    """The cases built for complexity, one row a case, sorted by kind and size."""
    rows = complexity["rows"]
    worst = max(rows, key=lambda row: row["cpu_per_mib"])
    limit, budget = fuzz_server.CPU_LIMIT, memory["budget_mib"]
    over = sorted(set(row["kind"] for row in rows if row["cpu"] > limit))
    heavy = sorted(set(row["kind"] for row in rows if "memory" in row["problems"]))
    rest = "not measured"
    if memory["rest_mib"] is not None:
        rest = "%.1f MiB" % memory["rest_mib"]
    peaks = [row for row in rows if row.get("peak_mib") is not None]
    highest = "none measured"
    if peaks:
        top = max(peaks, key=lambda row: row["peak_mib"])
        highest = "%.1f MiB (%s, %d KiB)" % (top["peak_mib"], top["kind"], top["bytes"] // 1024)
    print("#### Built for complexity\n")
    print(COMPLEXITY % (len(rows), limit, memory["limit_mib"], budget, rest, worst["cpu_per_mib"],
                        worst["kind"], worst["bytes"] // 1024, highest, limit,
                        ", ".join(over) or "none", ", ".join(heavy) or "none", made()))
    print("| case | command | size | CPU | CPU per MiB | growth in its worker | peak of its own process | result |")
    print("|---|---|---|---|---|---|---|---|")
    for row in sorted(rows, key=lambda row: (row["kind"], row["bytes"])):
        peak = "-"
        if row.get("peak_mib") is not None:
            peak = "%.0f MiB" % row["peak_mib"]
        print("| %s | `%s` | %d KiB | %.2f s | %.2f s | %.0f MiB | %s | %s |" % (
            row["kind"].replace("|", "\\|"), row["command"], row["bytes"] // 1024, row["cpu"],
            row["cpu_per_mib"], max(0.0, row["rss_growth_mib"]), peak, result_cell(row["problems"])))
    print()


def main():
    os.environ["LANDBASE_TEST_FULL"] = "1"      # every command of the fault matrix, every case of the fuzzers
    started = time.monotonic()
    failures = 0
    print("## Reliability: figures from `make reliability` (%s)\n" % made())
    print(INTRODUCTION)

    failures += print_matrix()

    report = os.path.join(tempfile.mkdtemp(prefix="lbi-rel-"), "fuzz.json")
    ran, failed = run_tests(["test_fuzz"], {"FUZZ_REPORT": report})
    failures += failed
    with open(report) as handle:
        fuzz = json.load(handle)
    print("### Fuzzer\n")
    print("Made %s.\n" % made())
    print("%d generated inputs through `main()` (seed 20261128): %d bodies the oracle calls valid, %d it calls "
          "invalid (each `INVALID_INPUT` with nothing sent), %d mutated argv lists. Exit codes seen: %s. %s\n"
          % (fuzz["cases"], fuzz["oracle"]["valid"], fuzz["oracle"]["invalid"], fuzz["oracle"]["None"],
             ", ".join("%s x%s" % item for item in sorted(fuzz["exits"].items(), key=lambda i: int(i[0]))),
             "All passed." if not failed else "**%d FAILED**" % failed))

    failures += print_server_fuzzer()

    print("### Guarantees\n")
    print("Made %s.\n" % made())
    print("| guarantee | tests | result |")
    print("|---|---|---|")
    for guarantee in GUARANTEES:
        ran, failed = run_tests(list(guarantee[1:]))
        failures += failed
        print("| %s | %d | %s |" % (guarantee[0], ran, "pass" if not failed and ran else "**FAIL**"))
    print("\n(%d s)" % (time.monotonic() - started))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Run the suite with unittest and close with one plain line: 'tests: N passed, N failed, N skipped'.

    run.py [-v] [-j JOBS] [PATTERN ...]      PATTERN: test_*.py (the default), test_http.py, test_e2e*.py

Each test module runs in its own process, JOBS at a time (default: two more than the CPUs), slowest
first: most of the end-to-end modules wait on subprocesses and sockets, so they overlap well. Each
module's line gives its wall and CPU seconds. -v shows every test's name as it runs. The tool's
compiled code is kept for the suite in one temporary directory, $LBI_TEST_CACHE (see launch.py).
"""

import argparse
import atexit
import fnmatch
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import unittest
from concurrent.futures import ThreadPoolExecutor, as_completed

HERE = os.path.dirname(os.path.abspath(__file__))
# modules known to take longest, started first so that they do not finish last: those that mostly wait
# (on real time, slow writers, the sandbox) before those that mostly compute
SLOWEST = ("test_fuzz", "test_fuzz_server", "test_e2e", "test_hostile_three", "test_unattended", "test_poll",
           "test_cron", "test_e2e_sessions", "test_http", "test_login", "test_streams", "test_faults",
           "test_state", "test_hostile")
SUMMARY = re.compile(r"^tests: (\d+) passed, (\d+) failed, (\d+) skipped$", re.M)


class Counted(unittest.TextTestResult):
    """Counts the tests that passed, rather than subtracting from testsRun, which 3.12.1 alone does not
    raise for a test skipped by a decorator (so its suite was one test short)."""
    passed = 0

    def addSuccess(self, test):
        super().addSuccess(test)
        self.passed += 1


def run_module(name, verbosity):
    """Run one module in this process; the summary line is the last line printed."""
    suite = unittest.defaultTestLoader.loadTestsFromName(name)
    result = unittest.TextTestRunner(stream=sys.stdout, verbosity=verbosity, resultclass=Counted).run(suite)
    failed = len(result.failures) + len(result.errors) + len(result.unexpectedSuccesses)
    print("tests: %d passed, %d failed, %d skipped" % (result.passed, failed, len(result.skipped)))
    return 0 if failed == 0 and result.testsRun > 0 else 1


def in_child(name, verbosity):
    """(name, output, counts, wall, cpu) of the module run as a child process."""
    started = time.monotonic()
    # -S: the tests need nothing outside the standard library, and a site's .pth files cost each of the
    # suite's processes their start-up (~70 ms here); the processes they start have their site as usual
    process = subprocess.Popen([sys.executable, "-S", os.path.abspath(__file__), "--module", name,
                                "-v" if verbosity > 1 else "-q"], cwd=HERE, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT)
    output = process.stdout.read().decode("utf-8", "replace")
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = 0
    found = SUMMARY.findall(output)
    counts = tuple(int(n) for n in found[-1]) if found else (0, 1, 0)     # no summary: it crashed
    if status != 0 and counts[1] == 0:
        counts = (counts[0], 1, counts[2])
    return name, output, counts, time.monotonic() - started, usage.ru_utime + usage.ru_stime


def main(argv):
    parser = argparse.ArgumentParser(description="Run the test suite.")
    parser.add_argument("-v", "--verbose", action="store_true", help="every test's name as it runs")
    parser.add_argument("-q", "--quiet", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("-j", "--jobs", type=int, default=(os.cpu_count() or 1) + 2)
    parser.add_argument("--module", help=argparse.SUPPRESS)
    parser.add_argument("patterns", nargs="*", default=["test_*.py"])
    args = parser.parse_args(argv[1:])
    sys.path.insert(0, HERE)
    verbosity = 2 if args.verbose else 1
    if args.module:
        return run_module(args.module, verbosity)
    names = sorted(name[:-3] for name in os.listdir(HERE)
                   if name.endswith(".py") and any(fnmatch.fnmatch(name, p) for p in args.patterns))
    names = [n for n in names if n.startswith("test")]
    if not names:
        print("tests: no module matches %s" % " ".join(args.patterns))
        return 1
    names.sort(key=lambda n: SLOWEST.index(n) if n in SLOWEST else len(SLOWEST))
    if not os.environ.get("LBI_TEST_CACHE"):
        # the tool compiled once for the whole suite, not once a process (see launch.py)
        os.environ["LBI_TEST_CACHE"] = tempfile.mkdtemp(prefix="lbi-code-")
        atexit.register(shutil.rmtree, os.environ["LBI_TEST_CACHE"], True)
    started = time.monotonic()
    totals = [0, 0, 0]
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        futures = [pool.submit(in_child, name, verbosity) for name in names]
        for future in as_completed(futures):
            name, output, counts, wall, cpu = future.result()
            if counts[1] or args.verbose:
                sys.stdout.write(output)
            print("%-22s %3d passed %2d failed %2d skipped %6.1fs wall %6.1fs CPU" % ((name,) + counts + (wall, cpu)),
                  flush=True)
            totals = [a + b for a, b in zip(totals, counts)]
    print("(%d modules, %d at a time, %.1fs)" % (len(names), args.jobs, time.monotonic() - started))
    print("tests: %d passed, %d failed, %d skipped" % tuple(totals))
    return 0 if totals[1] == 0 and totals[0] > 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))

#!/usr/bin/env python3
"""`make test-all`: the whole suite on every CPython 3.x found (pyenv's, and python3.X on PATH).

Fails if any interpreter fails, or if fewer than two were found. One interpreter at a time (TEST_ALL_JOBS
says otherwise), each running the suite as `make test` does: two suites at once on two cores slow the
tests that bound real time past the margins they keep for make test's own load.
"""

import glob
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))


def interpreters():
    """{(major, minor): path} of every distinct CPython 3 here."""
    candidates = []
    try:
        root = subprocess.run(["pyenv", "root"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                              universal_newlines=True).stdout.strip()
        names = subprocess.run(["pyenv", "versions", "--bare"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                               universal_newlines=True).stdout.split()
        candidates += [os.path.join(root, "versions", name, "bin", "python3") for name in names]
    except OSError:
        pass
    for directory in os.environ.get("PATH", "").split(os.pathsep):
        candidates += sorted(glob.glob(os.path.join(directory, "python3.[0-9]*")))
    found = {}
    for path in candidates:
        if not os.path.isfile(path) or not os.access(path, os.X_OK) or path.endswith("-config"):
            continue
        try:
            out = subprocess.run([path, "-c", "import sys, platform; print(platform.python_implementation(), "
                                              "*sys.version_info[:2])"],
                                 stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, universal_newlines=True,
                                 timeout=30).stdout.split()
        except (OSError, subprocess.SubprocessError):
            continue
        if len(out) == 3 and out[0] == "CPython" and out[1] == "3":
            found.setdefault((3, int(out[2])), path)
    return found


def run(version, path):
    started = time.monotonic()
    # each interpreter's own directory first in PATH, as where it runs alone: pyenv's python3 puts
    # its own first for its children, and with 3.11's there a 4 MiB case on 3.12 grew 4 MiB more
    env = dict(os.environ, PATH=os.pathsep.join([os.path.dirname(path), os.environ.get("PATH", "")]))
    process = subprocess.run([path, os.path.join(HERE, "run.py")], stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, universal_newlines=True, env=env)
    return version, path, process.returncode, process.stdout, time.monotonic() - started


def main():
    found = interpreters()
    if len(found) < 2:
        print("test-all: found %d CPython 3 interpreter(s); at least two are needed" % len(found))
        return 1
    print("test-all: %s" % ", ".join("%d.%d" % v for v in sorted(found)), flush=True)
    failures = 0
    with ThreadPoolExecutor(max_workers=int(os.environ.get("TEST_ALL_JOBS", "1"))) as pool:
        for version, path, code, output, seconds in pool.map(lambda item: run(*item), sorted(found.items())):
            last = output.strip().splitlines()[-1] if output.strip() else "(no output)"
            print("  %d.%d  %-4s %5.0fs  %s  (%s)" % (version + ("ok" if code == 0 else "FAIL", seconds, last, path)),
                  flush=True)
            if code != 0:
                failures += 1
                sys.stdout.write(output[-6000:])
    print("test-all: %d interpreters, %d passed, %d failed" % (len(found), len(found) - failures, failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

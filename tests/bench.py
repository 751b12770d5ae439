#!/usr/bin/env python3
"""`make bench`: start-up, a status read, a wait, a terminal wait, and 200 imports at once, each as a
ratio to its floor. What it prints is the full record of the tool's performance, each table with
the date and the interpreter it was made on (the README keeps a few headline figures and points
here).

Every figure is a median over interleaved runs (the tool and its floor take turns, so load on the
machine hits both alike). A script run by path is never cached as bytecode, so every start of the
tool compiles it; the floors that carry a target include that compilation:
  parse + compile   python3 -c "import argparse, json; compile(<the tool>)"   --help, an invalid start
  fetch + compile   tests/bench_floor.py URL TOKEN <the tool>                   status
  parse, fetch, pass                                                          the raw ratios beside them
"""

import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
TOOL = os.path.join(ROOT, "landbase_import.py")
sys.path.insert(0, HERE)
import faults  # noqa: E402
import sandbox  # noqa: E402
from support import subprocess_env, write_session  # noqa: E402

PY = sys.executable
RUNS = int(os.environ.get("BENCH_RUNS", "25"))
MANY = int(os.environ.get("BENCH_MANY", "200"))
TTY_SECONDS = int(os.environ.get("BENCH_TTY_SECONDS", "22"))
LISTED = 150000
SHORTEST = 381000        # of the shortest accounts ({"id":"a"}) in 4 MiB: near the 400,000 objects and
                         # arrays the strict reader allows an accounts list (MAX_JSON_CONTAINERS)


def measure(argv, env, stdin=b""):
    """(wall seconds, cpu seconds, max RSS in KiB, exit) of one run, started by a small launcher process:
    on Linux a child's ru_maxrss counts the copy of its parent it was forked from, and this process,
    which holds a sandbox, is far bigger than the runs it measures."""
    with tempfile.NamedTemporaryFile(prefix="lbi-bench-in-") as handle:
        handle.write(stdin)
        handle.flush()
        report = LAUNCHER[0].run(argv, env, handle.name, os.devnull, os.devnull, 600)
    return report["seconds"], report["cpu"], report["maxrss"] / 1024, report["exit"]


def interleaved(commands, env, runs=RUNS):
    """{name: [(wall, cpu, rss, exit), ...]} with the commands taking turns."""
    results = {name: [] for name in commands}
    for _ in range(runs):
        for name, (argv, stdin) in commands.items():
            results[name].append(measure(argv, env, stdin))
    return results


def median(results, name, field):
    return statistics.median(run[field] for run in results[name])


LAUNCHER = []                           # the faults.Launcher every measured run is started by


def main():
    started = time.monotonic()
    LAUNCHER.append(faults.Launcher(PY))
    work = tempfile.mkdtemp(prefix="lbi-bench-")
    box = sandbox.Sandbox(min_poll_interval=0, speed=10).start()
    try:
        platform_ = box.platform
        token = platform_.mint_token()
        config = os.path.join(work, "landbase")
        write_session(config, token)
        env = subprocess_env(box.url, config)
        env.pop("PYTHONDONTWRITEBYTECODE", None)        # the floors and the tool alike use the stdlib's caches
        status_url = box.url + "/v1/accounts/acc_demo/contacts-imports/1"
        rows = []

        # 1. start-up without the network
        compile_tool = "compile(open(%r, encoding='utf-8').read(), 'landbase_import.py', 'exec')" % TOOL
        runs = interleaved({
            "pass": ([PY, "-c", "pass"], b""),
            "parse": ([PY, "-c", "import argparse, json"], b""),
            "parse + compile": ([PY, "-c", "import argparse, json; " + compile_tool], b""),
            "--help": ([PY, TOOL, "--help"], b""),
            "start, invalid body": ([PY, TOOL, "contacts-import", "start", "--json", "-"], b'{"datasetId": 7}'),
        }, env)
        for name in ("--help", "start, invalid body"):
            rows.append(row(runs, name, "parse + compile", 1.2, ("parse", "pass")))
        startup_pass = median(runs, "pass", 0)
        compiling = median(runs, "parse + compile", 0) - median(runs, "parse", 0)

        # 2. one status read against the sandbox
        runs = interleaved({
            "pass": ([PY, "-c", "pass"], b""),
            "fetch": ([PY, os.path.join(HERE, "bench_floor.py"), status_url, token], b""),
            "fetch + compile": ([PY, os.path.join(HERE, "bench_floor.py"), status_url, token, TOOL], b""),
            "status": ([PY, TOOL, "contacts-import", "status", "1"], b""),
        }, env)
        if not all(run[3] == 0 for run in runs["status"]):
            raise SystemExit("bench: status failed")
        rows.append(row(runs, "status", "fetch + compile", 1.25, ("fetch", "pass")))
        status_rss, fetch_rss = median(runs, "status", 2), median(runs, "fetch", 2)
        compiled_rss = median(runs, "fetch + compile", 2)
        status_cpu = median(runs, "status", 1)

        # 3. a wait of a 30-minute import: every poll real, the sleeps skipped (tests/fastclock.py)
        long_id = start_import(platform_, "ds_long")
        before = platform_.count("GET", "/contacts-imports/%d" % long_id)
        wait_runs = [measure([PY, os.path.join(HERE, "fastclock.py"), "contacts-import", "wait", str(long_id),
                              "--quiet"], env) for _ in range(5)]
        polls = (platform_.count("GET", "/contacts-imports/%d" % long_id) - before) // len(wait_runs)
        wait_cpu = statistics.median(run[1] for run in wait_runs)
        wait_rss = statistics.median(run[2] for run in wait_runs)
        per_poll = (wait_cpu - status_cpu) / max(1, polls - 1)

        # 4. a wait on a terminal, its line redrawn once a second: CPU per second of waiting, as the slope
        # between a short wait and a long one (the start-up both pay cancels out)
        tty_id = start_import(platform_, "ds_long")
        short = sorted(terminal_wait(env, tty_id, 2) for _ in range(3))[1]          # the medians of three
        long_ = sorted(terminal_wait(env, tty_id, TTY_SECONDS) for _ in range(3))[1]
        tty_share = max(0.0, long_[0] - short[0]) / (long_[1] - short[1])

        # 5. many imports: one process for all of them, or one process each
        ids = [start_import(platform_, "ds_demo") for _ in range(MANY)]
        one = measure([PY, TOOL, "contacts-import", "wait", "--quiet"] + [str(i) for i in ids], env)
        ids = [start_import(platform_, "ds_demo") for _ in range(MANY)]
        t0 = time.perf_counter()
        with ThreadPoolExecutor(max_workers=MANY) as pool:
            usages = list(pool.map(lambda i: measure([PY, TOOL, "contacts-import", "wait", str(i), "--quiet"], env),
                                   ids))
        many_wall = time.perf_counter() - t0
        many_cpu = sum(u[1] for u in usages)
        many_rss = sum(u[2] for u in usages)
        failed = sum(1 for u in usages if u[3] != 0) + (one[3] != 0)

        # 6. the largest valid answer there is: an accounts list of 150,000 accounts, just under 4 MiB
        accounts = [{"id": "a%d" % n, "name": ""} for n in range(LISTED)]
        listing = json.dumps({"accounts": accounts}, separators=(",", ":"))
        platform_.inject("accounts", {"raw": listing}, times=3)
        listed = sorted(measure([PY, TOOL, "account", "list"], env) for _ in range(3))
        failed += sum(1 for run in listed if run[3] != 0)

        # 7. the most memory an answer can take: the accounts list of the most accounts 4 MiB can hold
        shortest = '{"accounts":[{"id":"acc_demo"},' + ",".join(['{"id":"a"}'] * SHORTEST) + ']}'
        platform_.inject("accounts", {"raw": shortest}, times=3)
        shortest_runs = sorted(measure([PY, TOOL, "account", "list"], env) for _ in range(3))
        failed += sum(1 for run in shortest_runs if run[3] != 0)

        print("## Performance: figures from `make bench` (%s)\n" % made())
        print(INTRODUCTION)
        print("Measured by `make bench` (%s): %s, %d CPUs; medians of %d interleaved runs\n"
              % (made(), cpu_model(), os.cpu_count() or 0, RUNS))
        print("| measure | tool | floor | ratio | target | raw ratios |")
        print("|---|---|---|---|---|---|")
        for name, value, floor_name, floor_value, target, raw in rows:
            ratio = value / floor_value
            print("| `%s` wall | %.1f ms | %s %.1f ms | %.2fx | ≤ %.2fx %s | %s |" % (
                name, value * 1000, floor_name, floor_value * 1000, ratio, target,
                "met" if ratio <= target else "**not met**",
                ", ".join("%.2fx %s" % (value / floor, floor_name) for floor_name, floor in raw)))
        # a script is compiled at every start, and compiling ~110 KB of source peaks at a few MiB: status
        # (run as a script) is judged against the floor that compiles it too; the wait, run by fastclock.py
        # (which imports the tool, from cached bytecode), against the bare fetch
        print("| `status` max RSS | %.1f MiB | fetch + compile %.1f MiB | %.2fx | ≤ 1.20x %s | %.2fx fetch |" % (
            status_rss / 1024, compiled_rss / 1024, status_rss / compiled_rss,
            "met" if status_rss / compiled_rss <= 1.2 else "**not met**", status_rss / fetch_rss))
        print("| `wait` max RSS | %.1f MiB | fetch %.1f MiB | %.2fx | ≤ 1.20x %s | |" % (
            wait_rss / 1024, fetch_rss / 1024, wait_rss / fetch_rss,
            "met" if wait_rss / fetch_rss <= 1.2 else "**not met**"))
        print("| `wait` CPU per poll | %.2f ms | | | < 5 ms %s | |" % (per_poll * 1000,
                                                                "met" if per_poll < 0.005 else "**not met**"))
        print("| `wait` requests for a 30-minute import | %d | | | ≤ 92 %s | |" % (polls, "met" if polls <= 92
                                                                           else "**not met**"))
        print("| `wait` on a terminal, redrawn once a second: CPU per second of waiting | %.2f%% of a core | | "
              "| < 1%% %s | %.0f ms of CPU for a %.0f s wait, %.0f ms for a %.0f s one |"
              % (tty_share * 100, "met" if tty_share < 0.01 else "**not met**", long_[0] * 1000, long_[1],
                 short[0] * 1000, short[1]))
        print("\n%d imports: one `wait` with %d ids vs %d `wait` processes (sandbox at --speed "
              "10; %s)\n" % (MANY, MANY, MANY, made()))
        print("| | one process | %d processes | ratio |" % MANY)
        print("|---|---|---|---|")
        print("| wall | %.1f s | %.1f s | %.2fx |" % (one[0], many_wall, one[0] / many_wall))
        print("| CPU | %.2f s | %.2f s | %.3fx |" % (one[1], many_cpu, one[1] / many_cpu))
        print("| memory (sum of max RSS) | %.0f MiB | %.0f MiB | %.3fx |" % (one[2] / 1024, many_rss / 1024,
                                                                          one[2] / many_rss))
        print("\n`account list` of %d accounts in %.1f MB (an answer near the 4 MiB a valid one may be): "
              "%.2f s of CPU and %.0f MiB max RSS, the median of 3 (%s). Python holds each account as a "
              "dict of its own: the 64 MiB the fuzzers hold a crafted answer to does not hold here." % (LISTED, len(listing) / 1e6, statistics.median(run[1] for run in listed),
                                        statistics.median(run[2] for run in listed) / 1024, made()))
        print("\n`account list` of %d of the shortest accounts (`{\"id\":\"a\"}`) in %.1f MB, the most "
              "accounts an answer of 4 MiB holds: %.2f s of CPU and %.0f MiB max RSS, the median of 3 "
              "(%s): the most memory of any answer we know, as an answer of any other route holds at "
              "most 20,000 values."
              % (SHORTEST + 1, len(shortest) / 1e6, statistics.median(run[1] for run in shortest_runs),
                 statistics.median(run[2] for run in shortest_runs) / 1024, made()))
        print("\nFloors: interpreter alone %.1f ms; compiling the %d-byte file costs %.1f ms of every start "
              "(Python caches no bytecode for a script it runs); failed runs: %d; bench took %.0f s."
              % (startup_pass * 1000, os.path.getsize(TOOL), compiling * 1000, failed, time.monotonic() - started))
        return 1 if failed else 0
    finally:
        box.stop()
        shutil.rmtree(work, ignore_errors=True)
        LAUNCHER.pop().close()


def made():
    """When and on what a table was made: the date, the interpreter and the machine."""
    return "%s, %s %s, %s" % (time.strftime("%Y-%m-%d"), platform.python_implementation(),
                              platform.python_version(), platform.machine())


INTRODUCTION = """Start-up without the network, one `status` read against the sandbox, a 30-minute
`wait` (every poll real, the sleeps skipped), a `wait` on a terminal redrawn once a second, 200
imports waited on by one process versus 200 processes, and an accounts list near 4 MiB. A script
run by path is never cached as bytecode, so every start of the tool compiles it; the floors the
targets use include that compilation, and the raw ratios (to a bare `import argparse, json`, a
bare urllib GET, an empty interpreter) stand beside them. Each run is started by a small launcher
process, so that its peak memory is its own (on Linux a child's `ru_maxrss` counts the parent it
was forked from).
"""


def row(runs, name, floor, target, raw_floors):
    """(name, wall, floor name, floor wall, target, [(raw floor name, its wall)])."""
    return (name, median(runs, name, 0), floor, median(runs, floor, 0), target,
            [(raw, median(runs, raw, 0)) for raw in raw_floors])


def terminal_wait(env, import_id, seconds):
    """(CPU seconds, wall seconds) of a real `wait` with stderr on a pseudo-terminal, stopped by
    --max-wait after `seconds`: its line is redrawn once a second, its polls follow the real schedule."""
    import fcntl
    import pty
    import struct
    import termios
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))     # a 100-column terminal
    started = time.perf_counter()
    process = subprocess.Popen([PY, TOOL, "contacts-import", "wait", str(import_id), "--max-wait", "%ds" % seconds],
                               env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=slave)
    os.close(slave)
    drained = []
    while True:                         # keep the terminal read, as a real one would be
        try:
            chunk = os.read(master, 65536)
        except OSError:
            break
        if not chunk:
            break
        drained.append(chunk)
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = 0
    os.close(master)
    if b"next poll in" not in b"".join(drained):
        raise SystemExit("bench: the terminal wait drew no progress line")
    return usage.ru_utime + usage.ru_stime, time.perf_counter() - started


def cpu_model():
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.machine()


def start_import(platform_, dataset):
    """An import started on the sandbox directly (the bench measures waiting, not starting)."""
    with platform_.lock:
        return platform_._start("acc_demo", {"datasetId": dataset, "tagName": "bench"})["importId"]


if __name__ == "__main__":
    sys.exit(main())

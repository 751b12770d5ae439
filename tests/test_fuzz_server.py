"""The server-side fuzzer: seeded answers of a hostile platform, each through main(), judged by fuzz_server.check.

The cases run in-process, in forked workers, against fuzz_server.HostileServer with a fake
clock (and, for the proxy cases, behind a tests/proxy.py that answers CONNECT badly). Each
complexity case runs in a forked worker of its own, its CPU time (the thread that runs main())
bounded by the promise, 1 s, and its memory by 64 MiB less the tool at rest (measured here:
rest_mib()); one larger than 512 KiB runs again as a process of the tool's own (fastclock.py), whose
peak is bounded by 64 MiB, as API.md says. The
planted bugs put back, one at a time, a bug this tool has had or could have: the fuzzer must fail.
make test runs every fourth drawn case, the fixed ones (issue 21's shapes but the slow proxy
ones), the complexity ones at 256 KiB and a few at 4 MiB; LANDBASE_TEST_FULL=1 (make reliability)
runs them all, the complexity ones at 1 and 4 MiB. FUZZ_SERVER_REPORT=path writes the figures as
JSON; FUZZ_SERVER_SEED=n explores another seed; FUZZ_SERVER_CPU_CAP=s lets a case spend s seconds
of CPU before it is stopped (to measure how far over the promise a tool goes; by default it is
stopped just past its bound).
"""

import contextlib
import gc
import io
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import warnings
from unittest import mock

import fuzz_server
import proxy
from fuzz_server import MIB
from support import FASTCLOCK, TOOL, FakeClock, ToolTestCase, tool

try:
    import resource
except ImportError:             # Windows: no RSS or thread CPU figure
    resource = None

REAL_SECONDS_PER_CASE = 8.0     # a case still running after this (and 16 s per MiB it is given) is stopped
CPU_CAP = float(os.environ.get("FUZZ_SERVER_CPU_CAP") or 0)   # 0: 1.2 times its bound, + 0.2 s
ROUND_THREE = ("references", "percent", "proxy", "date", "secrets")    # issue 21's fixed cases
FOUR_MIB_IN_MAKE_TEST = ["unterminated escapes after 65 [", "many small strings", "many two-letter strings",
                         "token-like runs in what is printed", "&# and digits as the phase",
                         "a run as the phase, redrawn on a terminal"]
MAX_SLEEPS, MAX_FAKE_SECONDS = 3000, 8 * 86400    # past a 30-minute wait, a device login, a 7-day --max-wait
WORKERS = max(1, min(4, 2 * (os.cpu_count() or 1)))   # two per core: each waits on its server half the time
FULL = bool(os.environ.get("LANDBASE_TEST_FULL"))
BIG_CASE_MIB = 2                # a case that grew the process more is followed by release_free_memory()
# a complexity case larger than this has its memory judged in a process of its own (fastclock.py): the growth
# of a forked worker carries the test process's heap, and it varied by 4 MiB from run to run for one case
OWN_PROCESS_BYTES = MIB // 2


class Runaway(BaseException):
    """Stops a case that loops or computes on: raised from the fake clock or a timer, past the tool's except."""


# the warnings Python's default filters hide from a process (unittest's runner shows them all)
QUIET_WARNINGS = (DeprecationWarning, PendingDeprecationWarning, ImportWarning, ResourceWarning)


@contextlib.contextmanager
def bounded(case):
    """Stops a case that runs on (Runaway): after its real seconds, by SIGALRM sent to this thread
    (the kernel gives a process's alarm to any of its threads, and only the thread it reaches
    leaves a blocking read), and a case with a size soon after it has spent its CPU bound
    (SIGPROF)."""
    if not hasattr(signal, "pthread_kill"):
        yield
        return
    previous = signal.signal(signal.SIGALRM, _stop), signal.signal(signal.SIGPROF, _stop)
    real = case.real_seconds or REAL_SECONDS_PER_CASE * (1 + 2 * case.size / MIB)
    target = (threading.get_ident(), signal.SIGALRM)
    alarm = threading.Timer(max(real, CPU_CAP * 2), signal.pthread_kill, target)
    alarm.daemon = True
    alarm.start()
    if case.size:
        signal.setitimer(signal.ITIMER_PROF, CPU_CAP or 1.2 * fuzz_server.cpu_bound(case) + 0.2)
    try:
        yield
    finally:
        alarm.cancel()
        signal.setitimer(signal.ITIMER_PROF, 0)
        signal.signal(signal.SIGALRM, previous[0])
        signal.signal(signal.SIGPROF, previous[1])


def _stop(signum, frame):
    raise Runaway("stopped after %s" % ("its real time" if signum == signal.SIGALRM else "its CPU time"))


class GuardedClock(FakeClock):
    def sleep(self, seconds):
        FakeClock.sleep(self, seconds)
        if len(self.sleeps) > MAX_SLEEPS or self.t - 1000.0 > MAX_FAKE_SECONDS:
            raise Runaway("the tool slept %d times, %.3g s of fake time" % (len(self.sleeps), self.t - 1000))


def maxrss_mib():
    value = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss if resource else 0
    return value / 1048576.0 if sys.platform == "darwin" else value / 1024.0


def memory_mib():
    """(resident now, peak) of this process in MiB: /proc's VmRSS and VmHWM, else ru_maxrss."""
    figures = {}
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                name, _, value = line.partition(":")
                if name in ("VmRSS", "VmHWM"):
                    figures[name] = int(value.split()[0]) / 1024.0
    except (OSError, ValueError, IndexError):
        pass
    if len(figures) != 2:
        return maxrss_mib(), maxrss_mib()
    return figures["VmRSS"], figures["VmHWM"]


def release_free_memory():
    """Give back to the system what this process holds free (gc, then glibc's malloc_trim): a
    forked worker starts with the test process's free heap, which a case would reuse unseen."""
    gc.collect()
    try:
        import ctypes
        ctypes.CDLL(None).malloc_trim(0)
    except (ImportError, OSError, AttributeError):
        pass                            # not glibc: the growth shown may be less than the case's


def reset_peak():
    """Start the peak (VmHWM) again from what is resident now (Linux 4.0+), so that a case's peak
    is its own and not an earlier case's in the same worker; where that cannot be done, growth past
    the old peak is all that shows."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
    except OSError:
        pass


# the tool run by path as users run it (compiled from its source, as every start is), its resident
# memory after one small status read; written as JSON to the file named last
REST_PROBE = r"""
import gc, json, runpy, sys
report = sys.argv.pop()
sys.argv = sys.argv[1:]
try:
    runpy.run_path(sys.argv[0], run_name="__main__")
    code = 0
except SystemExit as exc:
    code = exc.code
gc.collect()
try:
    with open("/proc/self/status") as handle:
        rss = [int(line.split()[1]) / 1024.0 for line in handle if line.startswith("VmRSS:")][0]
except (OSError, IndexError, ValueError):
    import resource
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    if sys.platform == "darwin":
        rss = rss / 1024.0
with open(report, "w") as handle:
    json.dump({"exit": code, "rss_mib": rss}, handle)
"""


def rest_mib(work):
    """MiB resident in a process of the tool at rest: the file run by path (without site, as the
    suite runs it: a site's .pth files are no part of the tool), after one small status read (the
    modules a request needs are imported then), as it is before it reads a hostile answer. None if
    it could not be measured."""
    server = fuzz_server.HostileServer().start()
    config = tempfile.mkdtemp(dir=work)
    report = os.path.join(config, "rest.json")
    case = fuzz_server.build(random.Random(1), time.time(), "status", "status", "valid",
                             lambda ctx: ctx.answer(ctx.doc("in_progress")), ("ok", {}))
    try:
        with open(os.path.join(config, "platform.json"), "wb") as handle:
            handle.write(case.session)
        server.begin(case)
        env = dict(os.environ, LANDBASE_PLATFORM_API_URL=server.url,
                   LANDBASE_PLATFORM_WEB_URL=server.url, LANDBASE_CONFIG_DIR=config)
        env.pop("LANDBASE_ACCESS_TOKEN", None)
        quiet = subprocess.DEVNULL
        argv = [sys.executable, "-S", "-c", REST_PROBE, TOOL, "contacts-import", "status", "7",
                report]
        subprocess.call(argv, env=env, stdin=quiet, stdout=quiet, stderr=quiet, timeout=60)
        with open(report) as handle:
            figures = json.load(handle)
        if figures["exit"] != 0:
            return None
        return figures["rss_mib"]
    except (OSError, ValueError, KeyError, subprocess.TimeoutExpired):
        return None
    finally:
        server.stop()


def cpu_seconds():
    """CPU time of this thread, which runs main() (the hostile server's threads do not count), else the process's."""
    if resource is not None and hasattr(resource, "RUSAGE_THREAD"):
        usage = resource.getrusage(resource.RUSAGE_THREAD)
        return usage.ru_utime + usage.ru_stime
    return time.process_time()


class ServerFuzzTests(ToolTestCase):
    start_sandbox = False
    figures = {"planted": {}}
    complexity = None

    @classmethod
    def setUpClass(cls):
        cls.seed = int(os.environ.get("FUZZ_SERVER_SEED") or fuzz_server.SEED)
        cls.cases = fuzz_server.generate(cls.seed, sizes=(MIB, 4 * MIB) if FULL else (MIB // 4,))
        shm = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None
        cls.work = tempfile.mkdtemp(prefix="lbi-server-fuzz-", dir=shm)
        # what a case may add to the process: 64 MiB less the tool at rest, on this interpreter
        cls.rest = rest_mib(cls.work)
        cls.budget = fuzz_server.CASE_MIB
        if cls.rest is not None:
            cls.budget = fuzz_server.MEMORY_LIMIT_MIB - cls.rest
        cls.figures["memory"] = {"rest_mib": cls.rest, "budget_mib": round(cls.budget, 1),
                                 "limit_mib": fuzz_server.MEMORY_LIMIT_MIB}

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.work, ignore_errors=True)
        if os.environ.get("FUZZ_SERVER_REPORT"):
            with open(os.environ["FUZZ_SERVER_REPORT"], "w") as handle:
                json.dump(dict(cls.figures, seed=cls.seed), handle, indent=1, sort_keys=True)

    def setUp(self):
        ToolTestCase.setUp(self)
        os.environ.update(LANGUAGE="C", COLUMNS="80", LINES="24", TERM="xterm-256color")
        self.clock = GuardedClock()
        patcher = mock.patch.object(tool, "CLOCK", self.clock)
        patcher.start()
        self.addCleanup(patcher.stop)

    # ------------------------------------------------------------ the cases, in forked workers

    def run_cases(self, cases, workers=None, alone=False):
        """One result per case, in order. The cases run in forked copies of this process, `workers` at a
        time, each with its own hostile server; `alone` gives each case a process of its own, so that its
        peak memory is its own. Without fork, here, one after the other."""
        workers = workers or max(1, min(WORKERS, len(cases) // 20 or 1))
        if not hasattr(os, "fork"):
            lines = []
            self._worker(cases, lines.append)
            return self._collect([(lines, len(cases), 0)], cases)
        shares, outputs = [[case] for case in cases] if alone else [cases[n::workers] for n in range(workers)], []
        for wave in range(0, len(shares), workers):
            sys.stdout.flush()
            sys.stderr.flush()
            children = []
            for number, share in enumerate(shares[wave:wave + workers]):
                path = os.path.join(self.work, "worker-%d.jsonl" % number)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", DeprecationWarning)    # fork with threads (3.12+)
                    pid = os.fork()
                if pid == 0:
                    try:
                        with open(path, "w", encoding="utf-8") as out:
                            self._worker(share, lambda line: out.write(json.dumps(line) + "\n"))
                    except BaseException:       # said by _collect: "a worker died", and how
                        with open(path, "a", encoding="utf-8") as out:
                            out.write(json.dumps({"died": traceback.format_exc()}) + "\n")
                    finally:
                        os._exit(0)
                children.append((pid, path, share))
            for (pid, path, share), (status, killed) in zip(children, reap(children)):
                with open(path, encoding="utf-8") as handle:
                    lines = [json.loads(line) for line in handle]
                os.remove(path)
                if killed is not None:
                    done = set(line.get("index") for line in lines)
                    lines += [stopped_line(case, killed) for case in share
                              if case.index not in done]
                outputs.append((lines, len(share), status))
        return self._collect(outputs, cases)

    def _collect(self, outputs, cases):
        results = {}
        for lines, expected, status in outputs:
            done = [line for line in lines if "index" in line]
            self.assertEqual(len(done), expected, "a worker died (wait status %d): %s" % (status, lines[-1:]))
            results.update((line["index"], line) for line in done)
        self.rss_growth = max(line.get("worker_rss_growth", 0) for lines, _, _ in outputs for line in lines)
        return [results[case.index] for case in cases]

    def _worker(self, cases, emit):
        server = fuzz_server.HostileServer().start()
        config_dir = tempfile.mkdtemp(dir=self.work)
        streams = tempfile.mkdtemp(dir=self.work)
        os.environ.update(LANDBASE_PLATFORM_API_URL=server.url, LANDBASE_PLATFORM_WEB_URL=server.url,
                          LANDBASE_CONFIG_DIR=config_dir)
        if len(cases) == 1:             # a case alone in its process: its memory is judged closely
            release_free_memory()
        rss_start = highest = memory_mib()[0]
        try:
            for case in cases:
                run = self.run_case(case, server, config_dir, streams)
                run["memory_budget_mib"] = self.budget
                highest = max(highest, run["rss_before"] + run["rss_growth_mib"])
                if run["rss_growth_mib"] > BIG_CASE_MIB:
                    # what a large answer freed goes back, as it would when its process ends:
                    # the next case's peak then stands on what is still held (a leak), not on a
                    # heap the allocator kept (3.12's drawn cases grew 32 MiB of a 33.5 budget so)
                    release_free_memory()
                problems = fuzz_server.check(case, run)
                line = {key: run[key] for key in ("exit", "seconds", "cpu", "rss_growth_mib")}
                line.update(index=case.index, problems=problems, code=_last_code(run["stderr"]),
                            tail=run["stderr"][-300:] if problems else "")
                emit(line)
        finally:
            server.stop()
            emit({"worker_rss_growth": highest - rss_start})

    def run_case(self, case, server, config_dir, streams):
        """One case through main(): what it printed, how it ended, what it cost, what the servers
        saw."""
        for name in os.listdir(config_dir):
            os.remove(os.path.join(config_dir, name))
        if case.session is not None:
            with open(os.open(os.path.join(config_dir, "platform.json"), os.O_WRONLY | os.O_CREAT, 0o600), "wb") as f:
                f.write(case.session)
        os.environ.pop("LANDBASE_ACCESS_TOKEN", None)
        os.environ.update({"LANDBASE_ACCESS_TOKEN": case.env_token} if case.env_token else {})
        self.clock.t, self.clock.wall0, self.clock.sleeps = 1000.0, time.time(), []
        if isinstance(getattr(tool, "SECRETS", None), set):
            tool.SECRETS.clear()        # what the tool remembered: each case stands for a new process
        server.begin(case)
        relay = None
        if case.proxy is not None:
            relay = proxy.Proxy(case.proxy["mode"], drip=case.proxy["drip"],
                                echo=fuzz_server.proxy_echo(case.proxy["echo"])).start()
        try:
            with behind(relay):
                run = self.run_main(case, streams)
        finally:
            if relay is not None:
                relay.stop()
        run["requests"] = server.finish()
        if relay is not None:
            run["proxy"] = {"connections": relay.connections, "held": list(relay.held)}
        return run

    def run_main(self, case, streams):
        """main() with the case's argv and stdin, its stdout and stderr written to files (a
        process's output leaves it: a StringIO would count it as the tool's memory), timed and
        measured."""
        files = [open(os.path.join(streams, name), "w+b") for name in ("stdout", "stderr")]
        stdout, stderr = [io.TextIOWrapper(raw, encoding="utf-8", errors="surrogatepass")
                          for raw in files]
        stderr.isatty = lambda: case.tty        # on a terminal, the tool redraws its progress line
        saved = sys.argv, sys.stdin, sys.stdout, sys.stderr
        stdin = io.TextIOWrapper(io.BytesIO(case.stdin), encoding="utf-8")
        runaway, code = None, None
        os.environ["COLUMNS"] = str(case.columns)       # where the terminal does not say
        reset_peak()
        rss_before = memory_mib()[0]
        started, cpu = time.monotonic(), cpu_seconds()
        with warnings.catch_warnings():     # what is freed after a runaway, too, warns no more
            for category in QUIET_WARNINGS:     # than in a process of the tool
                warnings.simplefilter("ignore", category)
            try:
                sys.argv, sys.stdin, sys.stdout, sys.stderr = [TOOL], stdin, stdout, stderr
                with bounded(case):
                    code = tool.main(list(case.argv))
            except BaseException as exc:
                runaway = "main() raised %s: %s" % (type(exc).__name__, exc)
                if isinstance(exc, Runaway):
                    runaway = str(exc)
            finally:
                cpu, seconds = cpu_seconds() - cpu, time.monotonic() - started
                sys.argv, sys.stdin, sys.stdout, sys.stderr = saved
                os.environ["COLUMNS"] = "80"
        growth = memory_mib()[1] - rss_before
        printed = []
        for stream, raw in zip((stdout, stderr), files):
            try:
                stream.flush()
            except ValueError:
                pass                    # closed by the tool
            raw.seek(0)
            printed.append(raw.read().decode("utf-8", "surrogateescape"))
            raw.close()
        return {"exit": code, "stdout": printed[0], "stderr": printed[1], "seconds": seconds,
                "cpu": cpu, "fake_seconds": self.clock.t - 1000.0, "runaway": runaway,
                "rss_growth_mib": growth, "rss_before": rss_before}

    def judge(self, cases, results, labels=None):
        """The figures of a run; a failed subtest for each case that broke a promise (of `labels`, if given)."""
        figures = {"by_family": {}, "by_route": {}, "exits": {}, "codes": {}, "failures": {},
                   "max_case_seconds": round(max(result["seconds"] for result in results), 2)}
        first = {}
        for case, result in zip(cases, results):
            for key, value in (("by_family", case.family), ("by_route", case.route), ("exits", str(result["exit"])),
                               ("codes", result["code"] if result["exit"] else None)):
                figures[key][value] = figures[key].get(value, 0) + 1
            problems = [(label, detail) for label, detail in result["problems"] if labels is None or label in labels]
            for label, detail in problems:
                figures["failures"][label] = figures["failures"].get(label, 0) + 1
                first.setdefault(label, (case, detail))
            with self.subTest(case=case.index, route=case.route, family=case.family):
                if problems:
                    self.fail("\n".join([case.describe()[:600]] + ["  %s: %s" % (label, detail[:300]) for
                                                                  label, detail in problems[:6]] +
                                        ["  exit %r; stderr tail: %r" % (result["exit"], result["tail"])]))
        figures["codes"].pop(None, None)
        sys.stderr.write("".join("server fuzz: %s in %d cases, e.g. %s\n    %s\n" % (
            label, figures["failures"][label], detail[:200], case.describe()[:300])
            for label, (case, detail) in sorted(first.items())))
        return figures

    # ------------------------------------------------------------ the fuzzer

    def test_answers_of_a_hostile_server(self):
        cases = [case for case in self.cases if case.family not in ROUND_THREE + ("complexity",)]
        cases = cases if FULL else cases[:fuzz_server.drawn():4] + cases[fuzz_server.drawn():]
        started = time.monotonic()
        results = self.run_cases(cases)
        figures = self.judge(cases, results)
        figures.update(cases=len(cases), seconds=round(time.monotonic() - started, 1),
                       maxrss_growth_mib=round(self.rss_growth, 1))
        self.figures["fuzz"] = figures
        # the generator reaches the contract's corners, or it proves little
        self.assertGreaterEqual(len(figures["by_family"]), 9, figures["by_family"])
        self.assertTrue({"0", "1", "2", "3", "4"} <= set(figures["exits"]), figures["exits"])
        self.assertLess(self.rss_growth, self.budget,
                        "peak memory grew %.0f MiB over the run" % self.rss_growth)

    def test_shapes_of_issue_21(self):
        """Character references, percent runs, a proxy that answers CONNECT with garbage, a header
        over 64 KiB, a drip past --timeout or the credentials it was sent, hostile Date headers for
        doctor, the token echoed in every escaping (fuzz_server.round_three_cases; the 4 MiB ones
        are complexity cases)."""
        cases = [case for case in self.cases if case.family in ROUND_THREE]
        if not FULL:
            cases = [case for case in cases if not case.full_only]
        started = time.monotonic()
        results = self.run_cases(cases, workers=WORKERS)
        self.judge(cases, results)
        rows = [shape_row(case, result) for case, result in zip(cases, results)]
        seconds = round(time.monotonic() - started, 1)
        self.figures["shapes"] = {"cases": len(cases), "seconds": seconds, "rows": rows}

    def complexity_results(self):
        """The complexity cases, each in a process of its own, run once for the two tests below."""
        if ServerFuzzTests.complexity is None:
            cases = [case for case in self.cases if case.family == "complexity"]
            if not FULL:
                cases += self.extra_cases([4 * MIB], FOUR_MIB_IN_MAKE_TEST)
            started = time.monotonic()
            results = self.run_cases(cases, workers=2, alone=True)
            ServerFuzzTests.complexity = cases, results
            self.figures["complexity"] = {"seconds": round(time.monotonic() - started, 1), "rows": [
                {"kind": case.kind, "command": case.command, "bytes": case.size, "cpu": round(result["cpu"], 3),
                 "cpu_per_mib": round(result["cpu"] * MIB / case.size, 3), "rss_growth_mib": round(
                     result["rss_growth_mib"], 1), "problems": sorted(set(label for label, _ in result["problems"]))}
                for case, result in zip(cases, results)]}
        return ServerFuzzTests.complexity

    def extra_cases(self, sizes, kinds):
        cases = fuzz_server.complexity_cases(random.Random(self.seed), time.time(), sizes, kinds)
        for index, case in enumerate(cases):
            case.index = len(self.cases) + index
        return cases

    def test_answers_and_inputs_built_for_complexity(self):
        """CPU time bounded by the promise (1 s for up to 4 MiB), and every other promise but
        memory (below)."""
        cases, results = self.complexity_results()
        labels = set(label for result in results for label, _ in result["problems"]) - {"memory"}
        self.judge(cases, results, labels)
        self.assertGreaterEqual(max(case.size for case in cases), 4 * MIB - 1024)

    def test_memory_of_answers_built_for_complexity(self):
        """API.md: memory stays bounded whatever the server sends: 64 MiB for the whole process. A
        case larger than OWN_PROCESS_BYTES runs again in a process of its own, whose peak is judged;
        a smaller one by what it added to its worker, at most 64 MiB less the tool at rest."""
        cases, results = self.complexity_results()
        rows = self.figures["complexity"]["rows"]          # one a case, in the same order
        judged = []
        server = fuzz_server.HostileServer().start()
        try:
            for case, result, row in zip(cases, results, rows):
                if case.size > OWN_PROCESS_BYTES:
                    problems, row["peak_mib"] = self.own_process_memory(case, result, server)
                    others = [problem for problem in result["problems"] if problem[0] != "memory"]
                    result = dict(result, problems=others + problems)
                    row["problems"] = sorted(set(label for label, _ in result["problems"]))
                judged.append(result)
        finally:
            server.stop()
        self.judge(cases, judged, labels={"memory"})

    def own_process_memory(self, case, result, server):
        """(the problems of `case`'s memory, the peak in MiB or None), run in a process of the
        tool's own (tests/fastclock.py) against `server`: no problem, or ("memory", what went
        wrong). That run must end as the case's `result` did in its worker, or it measured
        something else."""
        config = tempfile.mkdtemp(dir=self.work)
        report = os.path.join(config, "peak.json")
        if case.session is not None:
            with open(os.path.join(config, "platform.json"), "wb") as handle:
                handle.write(case.session)
        # fastclock.py: the tool's clock skips what it sleeps (a retry takes no time); without the
        # suite's cache of compiled code, the file is compiled from its source, as every start is
        env = dict(os.environ, LANDBASE_PLATFORM_API_URL=server.url, LANDBASE_PLATFORM_WEB_URL=server.url,
                   LANDBASE_CONFIG_DIR=config, COLUMNS=str(case.columns), FASTCLOCK_PEAK=report)
        for name in ("LANDBASE_ACCESS_TOKEN", "LBI_TEST_CACHE", "FASTCLOCK_TTY"):
            env.pop(name, None)
        if case.env_token:
            env["LANDBASE_ACCESS_TOKEN"] = case.env_token
        if case.tty:
            env["FASTCLOCK_TTY"] = "1"
        argv = [sys.executable, "-S", FASTCLOCK] + list(case.argv)
        server.begin(case)
        try:
            subprocess.run(argv, env=env, input=case.stdin, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, timeout=REAL_SECONDS_PER_CASE + 16 * case.size / MIB)
            with open(report) as handle:
                figures = json.load(handle)
        except (OSError, ValueError, subprocess.TimeoutExpired) as exc:
            return [("memory", "its own process was not measured: %s" % exc)], None
        finally:
            server.finish()
            shutil.rmtree(config, ignore_errors=True)
        peak = round(figures["peak_mib"], 1)
        if figures["exit"] != result["exit"]:
            return [("memory", "its own process ended with exit %r, not %r as in its worker"
                     % (figures["exit"], result["exit"]))], peak
        if figures["peak_mib"] > fuzz_server.MEMORY_LIMIT_MIB:
            return [("memory", "its own process's peak was %.1f MiB (at most %d MiB)"
                     % (figures["peak_mib"], fuzz_server.MEMORY_LIMIT_MIB))], peak
        return [], peak

    # ------------------------------------------------------------ planted bugs
    # Each patches one name of landbase_import.py and runs the cases that should see it: one at least must
    # fail with one of the labels given. When the name is gone (the tool's functions are being merged and
    # renamed), the test fails naming it: point it at the successor.

    def plant(self, name, target, replacement, select, labels, cases=None, limit=12, every=False):
        if not hasattr(tool, target):
            self.fail("planted bug %r: landbase_import.%s is gone; point it at its successor" % (name, target))
        cases = [case for case in (cases or self.cases) if select(case)][:limit]
        self.assertTrue(cases, "planted bug %r: no case exercises it" % name)
        original = getattr(tool, target)
        with mock.patch.object(tool, target, replacement(original) if callable(replacement) else replacement):
            seen = [set(label for label, _ in result["problems"]) for result in self.run_cases(cases, workers=1)]
        self.figures["planted"][name] = sum(1 for labels_seen in seen if labels & labels_seen)
        self.assertTrue(self.figures["planted"][name], "with %r planted, none of %d cases failed with %s (seen: %s)"
                        % (name, len(cases), sorted(labels), [sorted(s) for s in seen if s][:5]))
        if every:
            self.assertEqual(self.figures["planted"][name], len(cases),
                             "with %r planted, a case did not fail with %s (seen: %s)"
                             % (name, sorted(labels), [sorted(found) for found in seen]))

    def test_planted_redaction_by_pattern_only(self):
        # SECRETS, the exact token values redacted wherever they are printed, stays empty: the pattern alone
        self.plant("redaction by pattern only", "SECRETS", Forgetful(),
                   lambda c: c.family == "echo" and re.search(r"[,;&'\" ]", c.bearer), {"token-leak"})

    def test_planted_redaction_of_the_token_written_back_escaped(self):
        # SECRETS stays empty, as above: the token a server writes back in an escaping (\u,
        # character references, percent-encoding, a form's +) is printed as it came, and the
        # oracle, which reads the output in each of those ways, must see it in every one
        def escaped_in_a_message(case):
            return (case.family == "secrets" and case.kind.startswith("404 message,")
                    and not case.kind.endswith("as sent"))
        self.plant("the token written back escaped, unredacted", "SECRETS", Forgetful(),
                   escaped_in_a_message, {"token-leak"}, every=True)

    def test_planted_retry_after_isdigit(self):
        # parse_retry_after(headers, data) takes "²" for a number, as str.isdigit() does, and int() raises
        def planted(original):
            def parse_retry_after(headers, *args, **kwargs):
                value = (headers.get("Retry-After") or "").strip() if headers is not None else ""
                return int(value) if value.isdigit() else original(headers, *args, **kwargs)
            return parse_retry_after
        self.plant("Retry-After read with str.isdigit()", "parse_retry_after", planted,
                   lambda c: c.family == "retry-after", {"outcome", "internal-error", "traceback", "no-envelope"})

    def test_planted_unbounded_read(self):
        # MAX_ANSWER_BYTES, the 4 MiB cap on an answer, taken away: 5 MiB are read whole and taken for an answer
        self.plant("the whole body read with no cap", "MAX_ANSWER_BYTES", 2 ** 40,
                   lambda c: c.family == "size" and c.persistent, {"outcome", "read-past-cap", "memory"}, limit=1)

    def test_planted_unsanitised_text(self):
        # printable(text), the sanitiser of server text bound for a terminal or a log, lets everything through
        self.plant("server text printed unsanitised", "printable", lambda original: lambda text, *a, **k: text,
                   lambda c: c.family == "strings" or (c.command in ("wait", "device") and c.answers and re.search(
                       "[\n\r\x1b\x07\u2028\u202e]", str(getattr(c.answers[0], "shown", "")))),
                   {"unprintable-stderr", "forged-line", "undated-line"})

    def test_planted_backtracking_json_check(self):
        # parse_json(raw), the one JSON reader, first strips strings with the regular expression _too_deep
        # had: it backtracks on an unterminated string of escaped quotes, quadratic in its length
        # (0.8 s for 16 KiB, 3.2 s for 32 KiB here), and the bound of 1 s sees it at 32 KiB
        def planted(original):
            def parse_json(raw, *args, **kwargs):
                text = raw.decode("utf-8", "replace")
                if text.count("[") + text.count("{") > 64:
                    re.sub(r'"(?:[^"\\]|\\.)*"', "", text)
                return original(raw, *args, **kwargs)
            return parse_json
        self.plant("a backtracking regular expression before the JSON parser", "parse_json", planted,
                   lambda c: True, {"complexity"},
                   cases=self.extra_cases([32 * 1024], ["unterminated escapes after 65 ["]))

    def test_planted_token_sent_to_another_origin(self):
        # same_origin(a, b) says yes to every pair: a redirect to another origin is followed, token and all
        self.plant("a redirect followed to another origin", "same_origin", lambda original: lambda *a, **k: True,
                   lambda c: c.family == "redirect" and "{OTHER}" in str(c.answers[0].headers),
                   {"cross-origin-request"})


@contextlib.contextmanager
def behind(relay):
    """The tool's environment for a case behind the test proxy `relay` (none: the hostile
    server's, as it is): an https base under .invalid, allowed as a custom URL, reached through
    HTTPS_PROXY with a user and a password; a lookup of any .invalid name fails here, so a request
    that skipped the proxy goes nowhere."""
    if relay is None:
        yield
        return
    names = ("LANDBASE_PLATFORM_API_URL", "LANDBASE_PLATFORM_WEB_URL",
             "LANDBASE_ALLOW_CUSTOM_API_URL", "HTTPS_PROXY", "https_proxy")
    saved = {name: os.environ.get(name) for name in names}
    os.environ.update(LANDBASE_PLATFORM_API_URL=fuzz_server.PROXY_BASE,
                      LANDBASE_PLATFORM_WEB_URL=fuzz_server.PROXY_WEB,
                      LANDBASE_ALLOW_CUSTOM_API_URL="1",
                      HTTPS_PROXY=fuzz_server.proxy_url(relay.port))
    os.environ.pop("https_proxy", None)
    lookups = proxy.refusing_lookups("invalid", socket.getaddrinfo)
    try:
        with mock.patch.object(socket, "getaddrinfo", lookups):
            yield
    finally:
        for name, value in saved.items():
            os.environ.pop(name, None)
            if value is not None:
                os.environ[name] = value


class Forgetful(set):
    """SECRETS that remembers nothing: the tool redacts by pattern alone."""

    def add(self, value):
        pass

    def update(self, *values):
        pass


def reap(children):
    """(wait status, None or what a kill left) for each (pid, path, share) child, in order. A child
    is killed past its limits: a case alone, at its CPU bound and 2 s (a signal cannot stop one
    call in C: int() of 4 MiB of digits on 3.6 takes 90 s), any child at its cases' real seconds
    and 30 s. What a kill left: (its seconds, its CPU seconds)."""
    started = time.monotonic()
    results = {}
    killed = {}
    while len(results) < len(children):
        for pid, _, share in children:
            if pid in results:
                continue
            done, status, usage = os.wait4(pid, os.WNOHANG)
            if done:
                left = None
                if pid in killed:
                    left = (time.monotonic() - started, usage.ru_utime + usage.ru_stime)
                results[pid] = (status, left)
            elif pid not in killed and overdue(pid, share, time.monotonic() - started):
                os.kill(pid, signal.SIGKILL)
                killed[pid] = True
        time.sleep(0.05)
    return [results[pid] for pid, _, _ in children]


def overdue(pid, share, seconds):
    """Whether a child running `share` is past its limits (see reap())."""
    real = sum(case.real_seconds or REAL_SECONDS_PER_CASE * (1 + 2 * case.size / MIB)
               for case in share)
    if seconds > max(real, CPU_CAP * 2) + 30:
        return True
    if len(share) != 1 or not share[0].size:
        return False
    bound = CPU_CAP or 1.2 * fuzz_server.cpu_bound(share[0]) + 0.2
    return child_cpu(pid) > bound + 2


def child_cpu(pid):
    """CPU seconds of a running child (/proc: utime and stime, the 14th and 15th fields); 0 where
    that cannot be read."""
    try:
        with open("/proc/%d/stat" % pid) as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / float(os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return 0.0


def stopped_line(case, killed):
    """The result of a case its child did not finish: the child was killed (see reap())."""
    seconds, cpu = killed
    problems = [("runaway", "killed by the harness after %.1f s, %.1f s of CPU: in a call that "
                            "no signal interrupts" % (seconds, cpu))]
    if case.size and cpu > fuzz_server.cpu_bound(case):
        detail = "%.2f s of CPU for %d KiB (the promise: under %g s for up to 4 MiB)"
        problems.append(("complexity", detail % (cpu, case.size // 1024, fuzz_server.CPU_LIMIT)))
    return {"index": case.index, "exit": None, "seconds": seconds, "cpu": cpu,
            "rss_growth_mib": 0.0, "problems": problems, "code": "(killed)", "tail": ""}


def shape_row(case, result):
    """A case of issue 21's shapes as a row of the figures."""
    code = None
    if result["exit"]:
        code = result["code"]
    return {"family": case.family, "kind": case.kind, "command": case.command,
            "exit": result["exit"], "code": code, "seconds": round(result["seconds"], 2),
            "cpu": round(result["cpu"], 3), "rss_growth_mib": round(result["rss_growth_mib"], 1),
            "problems": sorted(set(label for label, _ in result["problems"]))}


def _last_code(stderr):
    try:
        return json.loads(stderr.rstrip("\n").split("\n")[-1])["error"]["code"]
    except (ValueError, KeyError, TypeError, IndexError):
        return "(no envelope)"

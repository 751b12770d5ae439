"""The README's crontab, run as cron runs it: the ```cron block of its Cron section, read from README.md.

`make install PREFIX=<tmp>` installs the tool; each job line runs through /bin/sh -c under `env -i` with
cron's variables (PATH=/usr/bin:/bin, SHELL, HOME, LANG=C, LOGNAME), then the crontab's own variable lines,
then the sandbox's URLs. What the test changes in the block is only what it must: /usr/local/bin becomes
the temporary prefix's bin, /etc/landbase and /var/log/landbase temporary directories. The operator's
login is done the same way first (auth login --with-token, account set), as the user whose HOME it is.

The installed tool runs under the python3 its #! line finds on that PATH (/usr/bin/python3),
whatever interpreter runs the suite: that is what cron does. The first test's night sleeps for
real: its watch reads the status at once and again 5 s later (the schedule), when the import
(ds_complete at speed 100) is over. The second test's sandbox runs a million times faster: its
import is over at the first read.
"""

import calendar
import json
import os
import pwd
import re
import shutil
import subprocess
import tempfile
import time
import unittest

from support import ROOT, STAMP, sandbox

README = os.path.join(ROOT, "README.md")
CRON_ENV = {"PATH": "/usr/bin:/bin", "SHELL": "/bin/sh", "LANG": "C"}      # and HOME, LOGNAME: the user's
VARIABLE = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)\Z")
JOB = re.compile(r"\s*(?:(@\w+)|(\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+))\s+(\S.*)\Z")
TIME_FIELD = re.compile(r"[0-9*/,-]+\Z|[A-Za-z]{3}\Z")
README_SANDBOX = "http://127.0.0.1:8765"          # make sandbox's URL, as the README shows it
ERROR_LINE = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ error %s \(exit %d\): \S"


def cron_fences(text):
    """[[(line number, line)], ...]: the ```cron fences of the "## Cron" section, in order."""
    lines = text.split("\n")
    section = next((i for i, line in enumerate(lines) if line.startswith("## ") and "Cron" in line), None)
    if section is None:
        raise AssertionError("README.md has no '## Cron' section")
    fences, block = [], None
    for number, line in enumerate(lines[section + 1:], section + 2):
        if block is None and line.startswith("## "):
            break
        if block is None and line.strip() == "```cron":
            block = []
        elif block is not None and line.strip() == "```":
            fences.append(block)
            block = None
        elif block is not None:
            block.append((number, line))
    return fences


def cron_block(text):
    """[(line number, line)] of the first ```cron fence in the "## Cron" section: the crontab."""
    fences = cron_fences(text)
    if not fences:
        raise AssertionError("the '## Cron' section of README.md has no ```cron block")
    return fences[0]


def rehearsal_block(text):
    """[(line number, line)] of the Cron section's ```cron fence that sets LANDBASE_CONFIG_DIR: the
    lines a crontab takes to run the night against the sandbox."""
    for fence in cron_fences(text)[1:]:
        if any(line.startswith("LANDBASE_CONFIG_DIR=") for _, line in fence):
            return fence
    raise AssertionError("the '## Cron' section of README.md has no ```cron block of the lines "
                         "that point a crontab at the sandbox (with LANDBASE_CONFIG_DIR)")


def sandbox_exports(text):
    """The export lines of the README's `make sandbox` block, as they are pasted into a shell."""
    lines = text.split("\n")
    start = next((i for i, line in enumerate(lines) if line.startswith("make sandbox")), None)
    if start is None:
        raise AssertionError("README.md has no block that begins with `make sandbox`")
    exports = []
    for line in lines[start + 1:]:
        if not line.startswith("export "):
            return exports
        exports.append(line)
    return exports


def split_percent(command):
    """What cron makes of a command: `\\%` is `%`; the first other `%` ends the command, and in the rest, its
    stdin, each `%` is a newline (a final one is added). Any other backslash stays as it is."""
    parts, current, escaped = [], [], False
    for char in command:
        if escaped:
            current.append(char if char == "%" else "\\" + char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == "%":
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    current.append("\\" if escaped else "")
    parts.append("".join(current))
    stdin = "\n".join(parts[1:])
    return parts[0], (stdin if stdin.endswith("\n") or len(parts) == 1 else stdin + "\n")


def parse_crontab(block):
    """(variables in order, jobs [(line number, schedule, command, stdin)]) as cron reads a user crontab."""
    variables, jobs = [], []
    for number, line in block:
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        job, variable = JOB.match(line), VARIABLE.match(line)
        if variable and not job:
            value = variable.group(2).strip()
            if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
                value = value[1:-1]
            variables.append((variable.group(1), value))
            continue
        if job is None or not (job.group(1) or all(TIME_FIELD.match(field) for field in job.group(2, 3, 4, 5, 6))):
            raise AssertionError("README.md line %d is neither NAME=value nor five time fields and a command: %s"
                                 % (number, line))
        command, stdin = split_percent(job.group(7))
        jobs.append((number, line, command, stdin))
    return variables, jobs


def utc_seconds(stamp):
    return calendar.timegm(time.strptime(stamp.strip(), "%Y-%m-%dT%H:%M:%SZ"))


class CronTests(unittest.TestCase):
    def setUp(self):
        for program in ("make", "env"):
            if shutil.which(program) is None:
                self.skipTest("%s is not installed" % program)
        if not any(os.access(path, os.X_OK) for path in ("/usr/bin/python3", "/bin/python3")):
            self.skipTest("no python3 on cron's PATH (/usr/bin:/bin) here: cron could not run the tool either")
        self.began = time.time()
        self.tmp = tempfile.mkdtemp(prefix="lbi-cron-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        for name in ("prefix", "home", "etc", "log"):
            os.mkdir(os.path.join(self.tmp, name))
        self.body = os.path.join(self.tmp, "etc", "nightly.json")
        self.write_body("ds_complete")

    def start_sandbox(self, speed):
        """The platform; any status read may follow another at once (a second run reads right after
        the first ended)."""
        self.sandbox = sandbox.Sandbox(speed=speed, min_poll_interval=0).start()
        self.addCleanup(self.sandbox.stop)
        self.platform = self.sandbox.platform

    def write_body(self, dataset):
        """The night's body, /etc/landbase/nightly.json, as the operator writes it."""
        with open(self.body, "w") as handle:
            json.dump({"datasetId": dataset, "tagName": "Nightly"}, handle)

    def readme_crontab(self):
        """(variables, the night's job, the session check, all jobs) of the README's crontab."""
        with open(README, encoding="utf-8") as handle:
            variables, jobs = parse_crontab(cron_block(handle.read()))
        night = [job for job in jobs if "contacts-import start" in job[2]]
        check = [job for job in jobs if "auth status" in job[2] and "--min-valid" in job[2]]
        self.assertEqual((len(night), len(check)), (1, 1),
                         "the README's crontab needs one 'contacts-import start' line and one "
                         "'auth status --min-valid' line: %s" % [job[1] for job in jobs])
        for number, line, command, _ in jobs:
            for path in re.findall(r"(?<![\w.$])/[\w./-]+", self.substitute(command)):
                said = ("README.md line %d writes or reads %s, which this test cannot point at a "
                        "temporary file (it moves /usr/local/bin, /etc/landbase and "
                        "/var/log/landbase): %s" % (number, path, line))
                self.assertTrue(path.startswith(self.tmp) or path == "/dev/null", said)
        return variables, night[0], check[0], jobs

    def install(self):
        """make install into the temporary prefix."""
        install = subprocess.run(["make", "-C", ROOT, "install",
                                  "PREFIX=" + os.path.join(self.tmp, "prefix")],
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                 universal_newlines=True)
        self.assertEqual(install.returncode, 0, install.stdout)

    def install_and_log_in(self, variables):
        """make install, then the operator's login as the user whose crontab it is, in the
        crontab's environment; that environment."""
        self.install()
        env = self.environment(variables)
        token = self.platform.mint_token()
        logins = (("landbase_import.py auth login --with-token", token + "\n"),
                  ("landbase_import.py account set acc_demo", ""))
        for command, stdin in logins:
            code, output = self.run_line(env, command, stdin)
            self.assertEqual(code, 0, "%s (with the crontab's variables) exited %d:\n%s"
                             % (command, code, output))
        return env

    def assertMailed(self, code, output, night_log, error, exit_code, explained):
        """A failed night looks failed: the line exits with the tool's exit, and what it prints
        (what cron mails) is the log's last lines, the night's error line and envelope last."""
        self.assertEqual(code, exit_code, "the cron line's exit:\n" + explained)
        self.assertEndsInError(night_log, error, exit_code, explained)
        self.assertTrue(self.read("nightly.log").endswith(output),
                        "the mail is not the log's last lines:\n" + explained)
        mailed = output.splitlines(True)
        self.assertEqual(mailed[-2:], night_log.splitlines(True)[-2:], "the mail:\n" + explained)

    def substitute(self, text):
        """The paths a test must move: the install prefix, the body's directory, the logs' directory."""
        for real, temporary in (("/usr/local/bin", os.path.join(self.tmp, "prefix", "bin")),
                                ("/etc/landbase", os.path.join(self.tmp, "etc")),
                                ("/var/log/landbase", os.path.join(self.tmp, "log"))):
            text = text.replace(real, temporary)
        return text

    def environment(self, variables, point_at_sandbox=True):
        """Cron's environment with the crontab's variables; then, unless the crontab points at the
        sandbox itself, the sandbox's URLs."""
        try:
            user = pwd.getpwuid(os.getuid()).pw_name
        except KeyError:                # a uid without a name (some containers)
            user = str(os.getuid())
        env = dict(CRON_ENV, HOME=os.path.join(self.tmp, "home"), LOGNAME=user)
        env.update((name, self.substitute(value)) for name, value in variables)
        if point_at_sandbox:
            env.update(LANDBASE_PLATFORM_API_URL=self.sandbox.url,
                       LANDBASE_PLATFORM_WEB_URL=self.sandbox.url,
                       NO_PROXY="127.0.0.1,localhost", no_proxy="127.0.0.1,localhost")
        return env

    def run_line(self, env, command, stdin=""):
        """(exit, output) of a command as cron runs it; the output, stdout and stderr, is what cron mails."""
        argv = ["env", "-i"] + ["%s=%s" % item for item in env.items()] + ["/bin/sh", "-c", command]
        process = subprocess.run(argv, input=stdin.encode("utf-8"), stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT, timeout=120)
        return process.returncode, process.stdout.decode("utf-8", "replace")

    def read(self, name):
        path = os.path.join(self.tmp, "log", name)
        if not os.path.exists(path):
            return ""
        with open(path, encoding="utf-8") as handle:
            return handle.read()

    def explain(self, number, line, code, output):
        return ("README.md line %d: %s\nexit %s; what cron would mail:\n%s\nthe log:\n%s"
                % (number, line, code, output or "(nothing)", self.read("nightly.log")[-3000:] or "(empty)"))

    def assertDated(self, text, where):
        """Every line begins with a UTC time of this test's run."""
        for line in text.rstrip("\n").split("\n"):
            match = STAMP.match(line)
            self.assertTrue(match, "%s: a line without its UTC time: %r" % (where, line))
            self.assertLessEqual(abs(utc_seconds(match.group(0)) - time.time()), time.time() - self.began + 60,
                                 "%s: not the UTC time of now: %r" % (where, line))

    def assertEndsInError(self, text, code, exit_code, explained):
        """Dated lines, the last of them `error CODE (exit N): message`, then the envelope (no time)."""
        lines = text.rstrip("\n").split("\n")
        self.assertGreaterEqual(len(lines), 2, "no dated error line above the envelope:\n" + explained)
        self.assertRegex(lines[-2], ERROR_LINE % (code, exit_code), "the dated error line:\n" + explained)
        self.assertDated("\n".join(lines[:-1]), explained)
        try:
            self.assertEqual(json.loads(lines[-1])["error"]["code"], code, explained)
        except ValueError:
            self.fail("the last line is not the envelope:\n" + explained)

    def test_the_readme_crontab_imports_once_logs_dated_lines_and_warns_before_the_session_ends(self):
        # speed 100: ds_complete (45 platform seconds) ends within the watch's first 5 real seconds
        self.start_sandbox(100)
        variables, night, check, jobs = self.readme_crontab()
        env = self.install_and_log_in(variables)

        imports = len(self.platform.imports)
        log_sizes = []
        # the first run of the night's line sleeps a real 5 s (its watch's second read sees the end); the
        # second run finds the import completed at its first read
        for attempt in (1, 2):
            for number, line, command, stdin in jobs:
                log_sizes.append(len(self.read("nightly.log")))
                code, output = self.run_line(env, self.substitute(command), stdin)
                self.assertEqual(code, 0, self.explain(number, line, code, output))
                self.assertEqual(output, "", "run %d printed something, which cron would mail every day:\n%s"
                                 % (attempt, self.explain(number, line, code, output)))
        self.assertEqual(len(self.platform.imports) - imports, 1, "two runs of the night's line, one import")
        keys = [key for (_, _, key) in self.platform.idempotency]
        self.assertEqual(len(keys), 1, keys)
        self.assertRegex(keys[0], r"\Anightly-\d{4}-\d\d-\d\d\Z", "the night's key, as sh and date made it")
        import_id = max(self.platform.imports)
        with self.platform.lock:
            final = self.platform.snapshot(self.platform.imports[import_id])
        row = "%d\tcompleted\t%d\n" % (import_id, final["counts"]["imported"])
        self.assertEqual(self.read("nightly.tsv"), row * 2, "one row a run, the same import")
        log = self.read("nightly.log")
        self.assertDated(log, "the night's log")
        second = log[log_sizes[jobs.index(night) + len(jobs)]:]
        said = "the second run of line %d:\n%s" % (night[0], second)
        self.assertIn("already started", second, said)
        self.assertNotIn("Started", second, said)
        self.assertIn("Started import %d" % import_id, log[:len(log) - len(second)])

        # a session that ends within 2 days: the pre-flight fails, with a dated line and the envelope, mailed
        short = self.platform.mint_token(ttl=36 * 3600)
        code, output = self.run_line(env, "landbase_import.py auth login --with-token", short + "\n")
        self.assertEqual(code, 0, output)
        number, line, command, stdin = check
        code, output = self.run_line(env, self.substitute(command), stdin)
        self.assertEqual(code, 3, self.explain(number, line, code, output))
        self.assertEndsInError(output, "AUTH_FAILED", 3, self.explain(number, line, code, output))

        # the session ended (nobody logged in again): the night fails, and its error is the night's mail
        self.platform.expire_tokens()
        number, line, command, stdin = night
        before = self.read("nightly.log")
        code, output = self.run_line(env, self.substitute(command), stdin)
        night_log = self.read("nightly.log")[len(before):]
        explained = self.explain(number, line, code, output)
        self.assertMailed(code, output, night_log, "AUTH_FAILED", 3, explained)
        self.assertEqual(self.read("nightly.tsv"), row * 2, "no row when nothing was started")
        self.assertEqual(len(self.platform.imports) - imports, 1)

    def test_a_night_refused_for_its_body_is_fixed_and_rerun_the_same_day_with_the_same_key(self):
        """Issue 22 point 1: the platform keeps no key for a refusal, so the README's line, re-run
        as it is once the body is fixed, starts the night's import."""
        self.start_sandbox(1e6)          # ds_complete is over at the watch's first read: no sleep
        variables, night, _, _ = self.readme_crontab()
        env = self.install_and_log_in(variables)
        number, line, command, stdin = night
        self.write_body("ds_other")      # a dataset acc_demo cannot read: the platform answers 422
        code, output = self.run_line(env, self.substitute(command), stdin)
        explained = self.explain(number, line, code, output)
        self.assertMailed(code, output, self.read("nightly.log"), "VALIDATION_ERROR", 1, explained)
        self.assertEqual(self.read("nightly.tsv"), "", "a row for a night that started nothing")
        self.assertEqual(sorted(self.platform.imports), [1], "the refused night started something")

        # the morning: the operator fixes the body and re-runs the line as it is
        self.write_body("ds_complete")
        before = self.read("nightly.log")
        code, output = self.run_line(env, self.substitute(command), stdin)
        explained = self.explain(number, line, code, output)
        self.assertEqual((code, output), (0, ""), explained)
        started = [number for number in self.platform.imports if number != 1]
        self.assertEqual(len(started), 1, explained)
        keys = [headers.get("Idempotency-Key") for method, path, headers in self.platform.requests
                if method == "POST" and path.endswith("/contacts-imports")]
        self.assertEqual(len(keys), 2, keys)
        self.assertEqual(keys[0], keys[1], "the re-run sent another key: %s" % keys)
        self.assertRegex(keys[0], r"\Anightly-\d{4}-\d\d-\d\d\Z")
        with self.platform.lock:
            final = self.platform.snapshot(self.platform.imports[started[0]])
        self.assertEqual(self.read("nightly.tsv"),
                         "%d\tcompleted\t%d\n" % (started[0], final["counts"]["imported"]))
        self.assertIn("Started import %d" % started[0], self.read("nightly.log")[len(before):])

    def test_the_rehearsal_runs_the_night_against_the_sandbox_with_the_session_it_logged_in(self):
        """Issue 22 point 8: the operator pastes make sandbox's exports (the README's block) into a
        shell, logs in there, and gives the crontab the README's rehearsal lines: cron finds the
        session the login saved, and the night imports."""
        self.start_sandbox(1e6)          # ds_complete is over at the watch's first read: no sleep
        with open(README, encoding="utf-8") as handle:
            text = handle.read()
        rehearsal, _ = parse_crontab(rehearsal_block(text))
        variables, night, _, _ = self.readme_crontab()
        exports = sandbox_exports(text)
        self.assertTrue(exports, "the README's `make sandbox` block shows no export line")
        self.install()
        home = os.path.join(self.tmp, "home")
        # the operator's shell: a login shell's PATH, the exports pasted, then the login
        shell = {"PATH": os.path.join(self.tmp, "prefix", "bin") + ":/usr/bin:/bin", "HOME": home,
                 "LANG": "C"}
        pasted = "\n".join(exports).replace(README_SANDBOX, self.sandbox.url)
        token = self.platform.mint_token()
        for command, stdin in (("landbase_import.py auth login --with-token", token + "\n"),
                               ("landbase_import.py account set acc_demo", "")):
            code, output = self.run_line(shell, pasted + "\n" + command, stdin)
            self.assertEqual(code, 0, "%s after the README's exports exited %d:\n%s"
                             % (command, code, output))
        # the crontab: its own lines, then the rehearsal's (the test's sandbox, the test's home)
        moved = []
        for name, value in rehearsal:
            value = value.replace(README_SANDBOX, self.sandbox.url)
            moved.append((name, value.replace("/home/importer", home)))
        env = self.environment(variables + moved, point_at_sandbox=False)
        number, line, command, stdin = night
        code, output = self.run_line(env, self.substitute(command), stdin)
        self.assertEqual((code, output), (0, ""), self.explain(number, line, code, output))
        started = [number for number in self.platform.imports if number != 1]
        self.assertEqual(len(started), 1)
        self.assertRegex(self.read("nightly.tsv"), r"\A%d\tcompleted\t\d+\n\Z" % started[0])
        self.assertFalse(os.path.exists(os.path.join(home, ".landbase")),
                         "the rehearsal wrote the real session directory, ~/.landbase")


class CrontabParsingTests(unittest.TestCase):
    def test_percent_signs_as_cron_reads_them(self):
        self.assertEqual(split_percent(r"echo $(date +\%F)"), ("echo $(date +%F)", ""))
        self.assertEqual(split_percent(r"cat%a%b\%c"), ("cat", "a\nb%c\n"))
        self.assertEqual(split_percent(r"printf 'a\tb' \\x"), (r"printf 'a\tb' \\x", ""))

    def test_variable_and_job_lines(self):
        block = list(enumerate(["# a comment", "", "MAILTO=ops@example.com", 'PATH = "/usr/local/bin:/bin"',
                                "15 2 * * * run --key=a-$(date +\\%F) >>/x 2>&1", "@daily  true",
                                "0 9 * * mon x"], 1))
        variables, jobs = parse_crontab(block)
        self.assertEqual(variables, [("MAILTO", "ops@example.com"), ("PATH", "/usr/local/bin:/bin")])
        self.assertEqual([(job[0], job[2]) for job in jobs],
                         [(5, "run --key=a-$(date +%F) >>/x 2>&1"), (6, "true"), (7, "x")])
        with self.assertRaisesRegex(AssertionError, "line 1 "):
            parse_crontab([(1, "15 2 * * landbase_import.py status 7")])


if __name__ == "__main__":
    unittest.main()

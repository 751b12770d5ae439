#!/usr/bin/env python3
"""`make test-tmux` (issue 22, point 4): the wait's progress line in a real tmux, as it comes.

    tmux_check.py [--seconds 30]

A `contacts-import wait` on an import that stays in progress runs as the command of a new
detached tmux session, so that its output begins on the pane's top row: one session 40 columns
wide and one 200 wide, both at once. The pane's history (#{history_size}) is read once the
progress line shows, and again after 30 s of waiting: it must not have grown. A redraw that
erases the display (ESC [ J) from the top row erases the whole screen, and tmux (scroll-on-clear,
on by default) first pushes the screen into the history: a line a redraw, until the operator's
scrollback, "Started import N ... follow it with" included, is gone. The pane must show the
progress line at the end, too.

Exits 0 with a message where tmux is missing; 1 when a check fails. Its tmux server has a socket
of its own (-S, in a temporary directory) and no configuration file (-f /dev/null), and is killed
at the end. Really waits: the 30 s are what the operator's wait does.
"""

import argparse
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import sandbox  # noqa: E402
from support import TOOL, subprocess_env, write_session  # noqa: E402

WIDTHS = (40, 200)
ROWS = 24
SHOWS_WITHIN = 20                       # seconds for the first progress line to show


class Tmux:
    """A tmux server of this check's own: its socket in `directory`, tmux's defaults, `env` for
    its panes."""

    def __init__(self, binary, directory, env):
        self.command = [binary, "-S", os.path.join(directory, "tmux.sock"), "-f", os.devnull]
        self.env = env

    def run(self, *args):
        """tmux's stdout; None when tmux failed (a session whose command has exited is gone)."""
        process = subprocess.run(self.command + list(args), env=self.env, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, universal_newlines=True, timeout=20)
        if process.returncode != 0:
            return None
        return process.stdout

    def history(self, session):
        text = self.run("display", "-p", "-t", session, "#{history_size}")
        if text is None:
            return None
        return int(text.strip())

    def screen(self, session):
        return self.run("capture-pane", "-p", "-t", session)

    def everything(self, session):
        """The pane's history and screen, for the report of a failure."""
        return self.run("capture-pane", "-p", "-S", "-", "-t", session)

    def kill(self):
        self.run("kill-server")


def scroll_on_clear(tmux):
    """The option that makes the defect visible, as this tmux sets it by default (it arrived in
    tmux 3.2: an older one never scrolls a cleared screen into history, and this check cannot
    fail there)."""
    value = tmux.run("show-options", "-gwv", "scroll-on-clear")
    if value is None:
        return "unknown to this tmux (the check cannot fail here)"
    return value.strip()


def started_import(platform):
    """An import of ds_long (in progress for hours) in acc_demo, started without the tool."""
    try:
        platform.start("usr_demo", "acc_demo", {"datasetId": "ds_long", "tagName": "tmux"}, None)
    except sandbox.Reply as reply:
        return reply.body["importId"]
    raise RuntimeError("the sandbox started nothing")


def wait_command(env, import_id):
    """The shell command of a session: the wait, in the environment that points it at the
    sandbox (the panes' environment is the server's, the same, but this says it in one place)."""
    names = [name for name in env if name.startswith("LANDBASE_") or name.lower() == "no_proxy"]
    names.sort()
    words = ["exec", "env"] + ["%s=%s" % (name, env[name]) for name in names]
    words += [sys.executable, TOOL, "contacts-import", "wait", str(import_id)]
    return " ".join(shlex.quote(word) for word in words)


def until_shown(tmux, sessions):
    """Wait until every pane shows its progress line; the names of those that never did."""
    ends = time.monotonic() + SHOWS_WITHIN
    missing = dict(sessions)
    while missing and time.monotonic() < ends:
        for name, import_id in list(missing.items()):
            screen = tmux.screen(name) or ""
            if "import %d" % import_id in screen:
                del missing[name]
        time.sleep(0.2)
    return sorted(missing)


def check(tmux, sessions, seconds):
    """Each session's failures (an empty list when it passed), after `seconds` of waiting."""
    failures = {name: [] for name in sessions}
    for name in until_shown(tmux, sessions):
        failures[name].append("the progress line never showed within %d s" % SHOWS_WITHIN)
    before = {name: tmux.history(name) for name in sessions}
    time.sleep(seconds)
    for name, import_id in sorted(sessions.items()):
        after = tmux.history(name)
        screen = tmux.screen(name)
        if after is None or screen is None or before[name] is None:
            failures[name].append("the session ended: the wait exited while it should be waiting")
            continue
        print("tmux-check: %s: history %d lines at the start, %d after %d s"
              % (name, before[name], after, seconds))
        if after > before[name]:
            failures[name].append("the history grew by %d lines in %d s of waiting: the redraw "
                                  "erased the screen, and tmux pushed it into the history"
                                  % (after - before[name], seconds))
        progress = r"^import %d .*%% (draft|preparing|in_progress)" % import_id
        if not re.search(progress, screen, re.M):
            failures[name].append("the pane does not show the progress line (import %d ...%% "
                                  "phase)" % import_id)
    return failures


def main(argv):
    parser = argparse.ArgumentParser(description="The wait's redraw in a real tmux (issue 22).")
    parser.add_argument("--seconds", type=float, default=30, help="how long the wait is watched")
    args = parser.parse_args(argv[1:])
    binary = shutil.which("tmux")
    if binary is None:
        print("tmux-check: skipped: tmux is not installed (the redraw is checked in tmux only)")
        return 0
    directory = tempfile.mkdtemp(prefix="lbi-tmux-")
    box = sandbox.Sandbox(min_poll_interval=0).start()
    config = os.path.join(directory, "landbase")
    write_session(config, box.platform.mint_token("usr_demo"))
    env = subprocess_env(box.url, config)
    env.pop("TMUX", None)               # run inside tmux too: this server is not the one around us
    tmux = Tmux(binary, directory, env)
    try:
        sessions = {}
        for width in WIDTHS:
            name = "wait-%d" % width
            sessions[name] = started_import(box.platform)
            created = tmux.run("new-session", "-d", "-s", name, "-x", str(width), "-y", str(ROWS),
                               wait_command(env, sessions[name]))
            if created is None:
                print("tmux-check: FAILED: tmux could not start a session %d columns wide" % width)
                return 1
        print("tmux-check: %s, scroll-on-clear %s" % (
            (tmux.run("-V") or "tmux").strip(), scroll_on_clear(tmux)))
        failures = check(tmux, sessions, args.seconds)
        for name in sorted(failures):
            for failure in failures[name]:
                print("tmux-check: %s: FAILED: %s" % (name, failure))
            if failures[name]:
                shown = (tmux.everything(name) or "(gone)").rstrip("\n")
                print("tmux-check: %s: the pane's history and screen:\n%s" % (name, shown))
    finally:
        tmux.kill()
        box.stop()
        shutil.rmtree(directory, True)
    failed = [name for name in sorted(failures) if failures[name]]
    if failed:
        print("tmux-check: FAILED: %s" % ", ".join(failed))
        return 1
    print("tmux-check: ok: the history did not grow at %s columns"
          % " or ".join(str(width) for width in WIDTHS))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

#!/usr/bin/env python3
"""`make demo`: the whole job against the sandbox, from login to the final status.

Starts tests/sandbox.py on a free port with a throwaway config directory, logs
in through the real browser flow (tests/fake_browser.py is the person who
presses Approve), picks the account, starts an import with --watch and shows
its progress and final status. The sandbox is stopped whatever happens.
"""

import os
import shlex
import shutil
import subprocess
import sys
import tempfile

from support import subprocess_env

HERE = os.path.dirname(os.path.abspath(__file__))
TOOL = os.path.join(os.path.dirname(HERE), "landbase_import.py")
BODY = '{"datasetId": "ds_demo", "tagName": "Demo outreach"}'


def step(env, words, stdin=None):
    shown = "landbase_import.py " + " ".join(shlex.quote(w) for w in words)
    if stdin is not None:
        shown = "echo %s | %s" % (shlex.quote(stdin.strip()), shown)
    print("\n$ " + shown, flush=True)
    # progress goes straight to our stdout, in order; the JSON answer is shown when the step ends
    result = subprocess.run([sys.executable, TOOL] + words, env=env, input=stdin, stdout=subprocess.PIPE,
                            stderr=sys.stdout.fileno(), universal_newlines=True, timeout=120)
    sys.stdout.write(result.stdout)
    sys.stdout.flush()
    if result.returncode != 0:
        raise DemoFailed("demo: step failed with exit %d: %s" % (result.returncode, shown))
    return result.stdout


class DemoFailed(Exception):
    pass


def main():
    workdir = tempfile.mkdtemp(prefix="landbase-demo-")
    log_path = os.path.join(workdir, "sandbox.log")
    log = open(log_path, "w")
    sandbox = subprocess.Popen([sys.executable, os.path.join(HERE, "sandbox.py"), "--port", "0"],
                               stdout=subprocess.PIPE, stderr=log, universal_newlines=True)
    try:
        url = sandbox.stdout.readline().strip()
        if not url.startswith("http://127.0.0.1:"):
            raise DemoFailed("demo: the sandbox did not start")
        print("Sandbox platform at %s (its request log is shown if a step fails)" % url)
        env = subprocess_env(url, os.path.join(workdir, "config"), BROWSER=os.path.join(HERE, "fake_browser.py"),
                             PYTHONUNBUFFERED="1")
        step(env, ["auth", "login"])
        step(env, ["auth", "status"])
        step(env, ["account", "list"])
        step(env, ["account", "set", "acc_demo"])
        final = step(env, ["contacts-import", "start", "--json", "-", "--watch"], stdin=BODY + "\n")
        if '"phase": "completed"' not in final:
            raise DemoFailed("demo: the import did not complete")
        print("\nDemo complete: the import ended completed.")
        return 0
    except DemoFailed as exc:
        log.flush()
        with open(log_path) as handle:
            print("\nThe sandbox's request log:\n" + "".join(handle.readlines()[-30:]))
        print(exc)
        return 1
    finally:
        sandbox.terminate()
        try:
            sandbox.wait(10)
        except subprocess.TimeoutExpired:
            sandbox.kill()
            sandbox.wait()
        log.close()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

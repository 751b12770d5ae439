"""Data and state: 20 processes at once, SIGKILL in the middle of a write."""

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

from support import ROOT, sandbox, subprocess_env, tool, write_session

WRITER = """
import sys
sys.path.insert(0, %r)
import landbase_import as tool
store = tool.SessionStore(sys.argv[1])
payloads = [{"accessToken": "lbs_a", "accountId": "acc_a", "pad": "a" * 300000},
            {"accessToken": "lbs_b", "accountId": "acc_b", "pad": "b" * 300000}]
i = 0
while True:
    store.save(payloads[i %% 2])
    i += 1
""" % ROOT


class ConcurrencyTests(unittest.TestCase):
    def test_twenty_processes_leave_a_valid_file_and_no_temporaries(self):
        box = sandbox.Sandbox(min_poll_interval=0).start()
        self.addCleanup(box.stop)
        config = tempfile.mkdtemp(prefix="lbi-conc-")
        self.addCleanup(shutil.rmtree, config, True)
        directory = os.path.join(config, "landbase")
        token = box.platform.mint_token()
        write_session(directory, token, deviceName="host", kept=[1])
        env = subprocess_env(box.url, directory)
        commands = []
        for i in range(20):
            if i < 10:
                argv = ["account", "set", ("acc_demo", "acc_team")[i % 2]]
            else:                       # the active account flips under it: name the one that holds import 1
                argv = ["contacts-import", "status", "1", "--account=acc_demo"]
            commands.append(subprocess.Popen([sys.executable, os.path.join(ROOT, "landbase_import.py")] + argv,
                                             env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE))
        for process in commands:
            out, err = process.communicate(timeout=60)
            self.assertEqual(process.returncode, 0, err)
            json.loads(out.decode())
        with open(os.path.join(directory, "platform.json")) as handle:
            data = json.load(handle)
        self.assertEqual(data["accessToken"], token)
        self.assertIn(data["accountId"], ("acc_demo", "acc_team"))
        self.assertEqual((data["deviceName"], data["kept"]), ("host", [1]))
        self.assertEqual(os.listdir(directory), ["platform.json"])


class CrashSafetyTests(unittest.TestCase):
    KILLS = 40

    def test_sigkill_mid_write_leaves_the_old_file_or_the_new_one(self):
        directory = os.path.join(tempfile.mkdtemp(prefix="lbi-kill-"), "landbase")
        self.addCleanup(shutil.rmtree, os.path.dirname(directory), True)
        store = tool.SessionStore(directory)
        store.save({"accessToken": "lbs_first", "accountId": "acc_first"})
        rng = random.Random(4)
        seen, interrupted = set(), 0
        for _ in range(self.KILLS):
            before = os.stat(store.path).st_mtime_ns
            writer = subprocess.Popen([sys.executable, "-c", WRITER, directory])
            deadline = time.monotonic() + 30
            while os.stat(store.path).st_mtime_ns == before and time.monotonic() < deadline:
                time.sleep(0.002)       # however slow the start, kill it while it is writing
            time.sleep(rng.uniform(0, 0.05))
            writer.send_signal(signal.SIGKILL)
            writer.wait()
            with open(store.path) as handle:
                data = json.load(handle)               # never a mix, never truncated
            self.assertIn(data["accessToken"], ("lbs_first", "lbs_a", "lbs_b"))
            self.assertEqual(data["accountId"], "acc" + data["accessToken"][3:])
            seen.add(data["accessToken"])
            interrupted += any(name.endswith(".tmp") for name in os.listdir(directory))
        self.assertTrue({"lbs_a", "lbs_b"} <= seen)
        self.assertGreater(interrupted, 0, "no kill landed in the middle of a write")
        store.update({"accountId": "acc_after"})      # the next writer clears what the killed ones left
        self.assertEqual(os.listdir(directory), ["platform.json"])

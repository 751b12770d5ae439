"""Data and state: 20 processes at once, SIGKILL in the middle of a write."""

import json
import os
import random
import signal
import time
import unittest
import warnings

from support import World, run_cli, tool

class ConcurrencyTests(unittest.TestCase):
    def test_twenty_processes_leave_a_valid_file_and_no_temporaries(self):
        world = World(self, min_poll_interval=0)
        token = world.write_session(deviceName="host", kept=[1])
        directory, env = world.config, world.env
        commands = []
        for i in range(20):
            if i < 10:
                argv = ["account", "set", ("acc_demo", "acc_team")[i % 2]]
            else:                       # the active account flips under it: name the one that holds import 1
                argv = ["contacts-import", "status", "1", "--account=acc_demo"]
            commands.append(run_cli(argv, env, background=True))
        for running in commands:
            result = running.finish(timeout=60)
            self.assertEqual(result.code, 0, result)
            json.loads(result.stdout)
        data = world.stored()
        self.assertEqual(data["accessToken"], token)
        self.assertIn(data["accountId"], ("acc_demo", "acc_team"))
        self.assertEqual((data["deviceName"], data["kept"]), ("host", [1]))
        self.assertEqual(sorted(os.listdir(directory)), ["platform.json", "platform.json.lock"])


PAYLOADS = [{"accessToken": "lbs_a", "accountId": "acc_a", "pad": "a" * 300000},
            {"accessToken": "lbs_b", "accountId": "acc_b", "pad": "b" * 300000}]


def start_writer(directory, pause_mid_write):
    """A forked process (the tool already imported) that saves the two payloads in turn for ever. With
    pause_mid_write, it stops inside its first write, after the temporary is written and before the
    rename, and says so on the pipe it returns: a kill then lands mid-write for certain."""
    ready, tell = os.pipe()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)         # 3.12+: fork() with threads about
        pid = os.fork()
    if pid:
        os.close(tell)
        return pid, ready
    try:
        os.close(ready)
        if pause_mid_write:
            real_fsync = os.fsync

            def fsync(fd):                  # the first fsync is the temporary's
                real_fsync(fd)
                os.write(tell, b"x")
                time.sleep(60)
            os.fsync = fsync
        store = tool.SessionStore(directory)
        i = 0
        while True:
            with store.locked():                # a writer's own write: no read first, as fast as it gets
                store._save(PAYLOADS[i % 2])
            i += 1
    finally:
        os._exit(0)


class CrashSafetyTests(unittest.TestCase):
    KILLS = 40

    def test_sigkill_mid_write_leaves_the_old_file_or_the_new_one(self):
        """Half the kills land mid-write for certain (the writer pauses there); the other half at a random
        time among whole writes. Either way the file is the old one or a new one, never a mix."""
        world = World(self, start=False)
        directory = world.config
        store = tool.SessionStore(directory)
        store.update({"accessToken": "lbs_first", "accountId": "acc_first"})
        rng = random.Random(4)
        seen, interrupted = set(), 0
        for kill in range(self.KILLS):
            paused = kill % 2 == 0
            before = os.stat(store.path).st_mtime_ns
            pid, ready = start_writer(directory, paused)
            try:
                if paused:
                    self.assertEqual(os.read(ready, 1), b"x")      # inside the write, before the rename
                else:
                    deadline = time.monotonic() + 30
                    while os.stat(store.path).st_mtime_ns == before and time.monotonic() < deadline:
                        time.sleep(0.002)                           # a whole write has landed; kill in the next
                    time.sleep(rng.uniform(0, 0.05))
            finally:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                os.close(ready)
            data = world.stored()                       # never a mix, never truncated
            self.assertIn(data["accessToken"], ("lbs_first", "lbs_a", "lbs_b"))
            self.assertEqual(data["accountId"], "acc" + data["accessToken"][3:])
            seen.add(data["accessToken"])
            interrupted += any(name.endswith(".tmp") for name in os.listdir(directory))
        self.assertTrue({"lbs_a", "lbs_b"} <= seen)
        self.assertGreaterEqual(interrupted, self.KILLS // 2)       # the paused kills left their temporaries
        store.update({"accountId": "acc_after"})      # the next writer replaces what the killed ones left
        self.assertEqual(sorted(os.listdir(directory)), ["platform.json", "platform.json.lock"])

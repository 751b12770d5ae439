"""The fault matrix of issue 4: every command against every fault, as a subprocess; see faults.py."""

import json
import unittest

import faults


class FaultMatrixTests(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.rows = faults.run_matrix()

    def test_the_matrix_is_complete(self):
        self.assertEqual(len(self.rows), len(faults.COMMANDS) * len(faults.FAULTS))

    def test_each_row_keeps_the_contract(self):
        for row in self.rows:
            with self.subTest(command=row["command"], fault=row["fault"]):
                exit_code, code, attempts = row["expected"]
                self.assertNotIn("Traceback", row["stderr"])
                self.assertNotIn("internal error", row["stderr"])
                self.assertEqual((row["exit"], row["code"]), (exit_code, code), row["stderr"][-1500:])
                self.assertEqual(row["attempts"], attempts, row)
                self.assertNotIn(row["token"], row["stdout"] + row["stderr"])
                self.assertEqual(row["leaked"], [], "a request reached another origin")
                if exit_code == 0:
                    json.loads(row["stdout"])
                    self.assertEqual(row["stdout"].count("\n"), 1)
                else:
                    self.assertEqual(row["stdout"], "")
                    self.assertEqual(json.loads(row["stderr"].strip().splitlines()[-1])["error"]["code"], code)

    def test_retries_follow_the_schedule(self):
        for row in self.rows:
            with self.subTest(command=row["command"], fault=row["fault"]):
                sleeps = row["sleeps"]
                if row["fault"] in ("same-origin redirect (307)", "cross-origin redirect",
                                    "TLS certificate not trusted"):
                    self.assertEqual(sleeps, [])
                elif row["command"] == "wait" and row["fault"] == "connection refused":
                    self.assertEqual(sleeps[:4], [5, 10, 20, 20])
                    self.assertAlmostEqual(sum(sleeps), 1800, delta=1)
                elif row["fault"] == "503 with Retry-After: 30":
                    self.assertEqual(sleeps, [30, 30, 30])
                elif row["fault"] == "429 with Retry-After as an HTTP date":
                    self.assertTrue(37 <= sleeps[0] <= 41, sleeps)
                    self.assertEqual(sleeps[1:], [10, 20])
                else:
                    self.assertEqual(sleeps, [5, 10, 20])

    def test_transient_failures_are_reported(self):
        for row in self.rows:
            if row["expected"][2] > 1 and row["sleeps"]:
                with self.subTest(command=row["command"], fault=row["fault"]):
                    marker = "poll failed" if row["command"] == "wait" else "retry 1 of 3"
                    self.assertIn(marker, row["stderr"])


if __name__ == "__main__":
    unittest.main()


class TrustedCertificateTests(unittest.TestCase):
    def test_ssl_cert_file_makes_the_test_ca_trusted(self):
        import os
        import shutil
        import tempfile
        from support import run_cli, subprocess_env, tool
        box = faults.sandbox.Sandbox(certfile=os.path.join(faults.TLS_DIR, "localhost.pem")).start()
        self.addCleanup(box.stop)
        config = tempfile.mkdtemp(prefix="lbi-tls-")
        self.addCleanup(shutil.rmtree, config, True)
        url = box.url.replace("127.0.0.1", "localhost")
        self.assertTrue(url.startswith("https://localhost:"))
        env = subprocess_env(url, config, SSL_CERT_FILE=os.path.join(faults.TLS_DIR, "ca.pem"))
        token = box.platform.mint_token()
        result = run_cli(["auth", "login", "--with-token"], env, stdin=token + "\n")
        self.assertEqual(result.code, 0, result)
        self.assertEqual(json.loads(result.stdout)["userId"], "usr_demo")
        self.assertIn(tool.__version__, box.platform.requests[0][2]["User-Agent"])

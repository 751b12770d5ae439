"""Every command runs clean in Python's development mode (issue 20, section 4): as a process under
`python3 -X dev -W error::ResourceWarning`, against the sandbox, each exits as it should and its
stderr holds no ResourceWarning (a file or socket left open), no Traceback and no internal error.

-X dev arrived in 3.7; on 3.6 it is ignored, and -W error::ResourceWarning alone still makes a
leaked file print "Exception ignored ... ResourceWarning".
"""

import json
import unittest

from support import ResultTestCase, World, run_cli, sandbox

DEV = ["-X", "dev", "-W", "error::ResourceWarning"]
BODY = '{"datasetId": "ds_demo", "tagName": "dev"}'
SIGNS = ("ResourceWarning", "Traceback", "internal error")


class DevModeTests(ResultTestCase):
    def setUp(self):
        self.world = World(self, min_poll_interval=0)
        self.platform = self.world.platform

    def dev(self, argv, exit_code=0, stdin="", clock=False):
        """The tool run as a process in development mode; its exit must be `exit_code`, its
        stderr clean. clock=True: fastclock.py, whose sleeps move the sandbox's clock (an
        import's end comes at once)."""
        extra = {}
        if clock:
            extra["FASTCLOCK_ADVANCE"] = self.world.url
        result = run_cli(argv, self.world.env, stdin=stdin, extra_env=extra, fast=clock, options=DEV)
        for sign in SIGNS:
            self.assertNotIn(sign, result.stderr, result)
        self.assertEqual(result.code, exit_code, result)
        return result

    def started(self):
        """An import of ds_demo started in acc_demo, without the tool."""
        try:
            self.platform.start("usr_demo", "acc_demo", json.loads(BODY), None)
        except sandbox.Reply as reply:
            return reply.body["importId"]
        raise AssertionError("the sandbox started nothing")

    def test_auth_login_with_token(self):
        token = self.platform.mint_token("usr_demo")
        self.dev(["auth", "login", "--with-token"], stdin=token + "\n")

    def test_auth_status(self):
        self.world.write_session()
        self.dev(["auth", "status"])

    def test_account_list(self):
        self.world.write_session()
        self.dev(["account", "list"])

    def test_account_set(self):
        self.world.write_session()
        self.dev(["account", "set", "acc_team"])

    def test_start(self):
        self.world.write_session()
        self.dev(["contacts-import", "start", "--json", "-"], stdin=BODY)

    def test_start_watch(self):
        self.world.write_session()
        self.dev(["contacts-import", "start", "--json", "-", "--watch"], stdin=BODY, clock=True)

    def test_status(self):
        self.world.write_session()
        self.dev(["contacts-import", "status", str(self.started())])

    def test_status_that_fails_after_its_retries(self):
        """The error path: four 503s (the first try and its three retries), API_ERROR, exit 2."""
        self.world.write_session()
        self.platform.inject("status", {"status": 503}, times=4)
        self.dev(["contacts-import", "status", "1"], exit_code=2, clock=True)

    def test_wait(self):
        self.world.write_session()
        self.dev(["contacts-import", "wait", str(self.started())], clock=True)

    def test_doctor(self):
        """Today's doctor leaves the file it sends its quiet console's lines to open."""
        self.world.write_session()
        self.dev(["doctor"])

    def test_auth_logout(self):
        self.world.write_session()
        self.dev(["auth", "logout"])

    def test_help_version_and_an_invalid_command(self):
        self.dev(["--help"])
        self.dev(["--version"])
        self.dev(["contacts-import", "begin"], exit_code=1)


if __name__ == "__main__":
    unittest.main()

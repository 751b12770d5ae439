"""What the black-box attack of the rewritten tool found (an independent helper working from README,
CLI.md and API.md alone, against main at 6d0d532): a test for each finding that was fixed, numbered
as its report numbers them. Each failed on the tool before its fix.
"""

import base64
import json
import os
import tempfile
import unittest

from support import TOOL, ToolTestCase, run_cli, tool

BODY = '{"datasetId": "%s", "tagName": "attack"}'
START = ("contacts-import", "start", "--json", "-")


class SecretTests(ToolTestCase):
    """1 and 8: what is a secret, and the forms of one (the mechanism: remember_secret, _pieces)."""

    start_sandbox = False

    def test_1_a_short_proxy_password_does_not_eat_the_output(self):
        pair = tool.remember_proxy_credentials("corp.user", "a")
        self.assertEqual(pair, "corp.user:a")
        self.assertNotIn("a", tool.SECRETS)
        for text in ("account acc_demo", '{"message": "nightly-2026-12-07"}'):
            self.assertEqual(tool.redact(text), text)
        self.assertEqual(tool.redact("auth corp.user:a"), "auth lbs_\u2026(redacted)")

    def test_8_a_cut_or_trimmed_echo_of_a_secret_is_redacted(self):
        token = "lbs_0123456789abcdefXYZ0123456789abcdefXYZ"
        tool.remember_secret(token)
        for echo in (token[:24] + "\n" + token[24:], token[4:], token[:-1]):
            with self.subTest(echo=echo):
                shown = tool.redact("said " + echo + " here")
                self.assertNotIn("0123456789abcdef", shown)
        basic = tool.remember_proxy_credentials("corp.user", "Tr0ub@dor:horse/9")
        sent = base64.b64encode(basic.encode()).decode()
        self.assertNotIn("Y29ycC51c2Vy", tool.redact("you sent Basic " + sent[:-1]))

    def test_8_a_cut_echo_with_its_characters_escaped_is_redacted_whole(self):
        """8, found again by a second attack (an echo matrix of cuts and escapes): a piece of a
        secret cut at either end, each of its characters escaped as JSON, HTML or a URL escapes
        it, was printed; it is redacted whole, like the plain piece, and the words around it stay.
        A piece from its middle is one too, from 31 characters: a piece that long holds one of the
        windows the tool looks for (one every 16 characters)."""
        token = 'lbs_A b&c%41+d\\e"f\'g<h>i/j#k=l;m0123456789XYZ'
        tool.remember_secret(token)
        escapes = {"\\u": lambda ch: "\\u%04x" % ord(ch),
                   "&#NN;": lambda ch: "&#%d;" % ord(ch),
                   "&#xHH;": lambda ch: "&#x%X;" % ord(ch),
                   "%HH": lambda ch: "%%%02x" % ord(ch),
                   "JSON's escapes (\\\" \\/ \\\\)": lambda ch: json.dumps(ch)[1:-1].replace("/", "\\/")}
        pieces = {"its first 16": token[:16], "its first 30": token[:30],
                  "its last 16": token[-16:], "its last 30": token[-30:], "lbs_ left off": token[4:],
                  "lbs_ and the last character left off": token[4:-1],
                  "31 from its middle": token[7:38]}
        for escape_name, escape in escapes.items():
            for piece_name, piece in pieces.items():
                half = len(piece) // 2
                mixed = "".join(escape(ch) for ch in piece[:half]) + piece[half:]
                for echo in ("".join(escape(ch) for ch in piece), mixed, piece):
                    with self.subTest(escape=escape_name, piece=piece_name, echo=echo):
                        shown = tool.redact("said " + echo + " here")
                        self.assertEqual(shown, "said " + tool.REDACTED + " here")

    def test_3_a_text_without_escapes_is_judged_as_the_forms_judge_it(self):
        """3: may_hold_secret reads a text that holds no escape with plain searches (an accounts list
        of 4 MiB, four times as fast); it says what _secret_forms() says of each form of a secret,
        each escape alone among them."""
        secret = "pass word Qx7 Lm2 Vk9 Rt4"          # spaces in its first and its last 16 characters
        tool.remember_secret(secret)
        forms = {"as it is": secret, "its beginning": secret[:17], "its end": secret[-16:],
                 "its middle (too short a piece)": secret[2:17], "nothing of it": "acc_demo " * 40,
                 "spaces as +": secret.replace(" ", "+"),
                 "percent-encoding": "".join("%%%02X" % ord(ch) for ch in secret),
                 "decimal references": "".join("&#%d;" % ord(ch) for ch in secret),
                 "\\u escapes": "".join("\\u%04x" % ord(ch) for ch in secret)}
        for name, form in forms.items():
            for text in (form, '{"name": "%s"}' % form):
                with self.subTest(form=name, text=text):
                    found = tool._secret_forms().search(text) is not None
                    self.assertEqual(tool.may_hold_secret(text), found)
                    self.assertEqual(found, name not in ("its middle (too short a piece)", "nothing of it"))


class StdinTests(ToolTestCase):
    """2: the tool run from stdin (python3 - < landbase_import.py) says so instead of crashing."""

    start_sandbox = False

    def test_2_version_and_doctor_from_stdin(self):
        with open(TOOL, encoding="utf-8") as handle:
            source = handle.read()
        version = run_cli(["--version"], self.env_for_process(), stdin=source, as_user=True,
                          program="-")
        self.assertEqual(version.code, 0, version)
        self.assertIn("sha256 unknown", version.stdout)
        doctor = run_cli(["doctor", "--timeout", "1"], self.env_for_process(), stdin=source,
                         as_user=True, program="-")
        self.assertClean(doctor)
        tool_row = [c for c in json.loads(doctor.stdout)["checks"] if c["name"] == "tool"][0]
        self.assertEqual(tool_row["status"], "warn")

    def env_for_process(self):
        from support import subprocess_env
        return subprocess_env("http://127.0.0.1:9", self.world.config)


class EnvironmentTokenTests(ToolTestCase):
    """5 and 6: a token from LANDBASE_ACCESS_TOKEN is renewed there, not by a login (the mechanism:
    renewal(), session_end())."""

    def test_5_a_refused_environment_token_says_to_renew_it(self):
        os.environ.update(LANDBASE_ACCESS_TOKEN="lbs_revoked_token_1234", LANDBASE_ACCOUNT_ID="acc_demo")
        message = self.assertFails(self.run_tool("account", "list"), "AUTH_FAILED")["error"]["message"]
        self.assertIn("renew LANDBASE_ACCESS_TOKEN", message)
        self.assertNotIn("auth login", message)
        os.environ.pop("LANDBASE_ACCESS_TOKEN")
        self.login()
        self.platform.expire_tokens()
        message = self.assertFails(self.run_tool("account", "list"), "AUTH_FAILED")["error"]["message"]
        self.assertIn("auth login", message)

    def test_6_an_environment_token_past_its_end_is_no_session(self):
        os.environ["LANDBASE_ACCESS_TOKEN"] = self.platform.mint_token("usr_demo")
        self.platform.inject("me", {"json": {"userId": "usr_demo", "email": "sam@acme.example",
                                             "expiresAt": "2020-01-01T00:00:00Z"}})
        envelope = self.assertFails(self.run_tool("auth", "status"), "AUTH_FAILED")
        self.assertIn("LANDBASE_ACCESS_TOKEN ended at 2020-01-01T00:00:00Z", envelope["error"]["message"])


class StartTests(ToolTestCase):
    """7 and 13 (the mechanism: rerun_command, watch_started)."""

    def test_7_the_rerun_command_names_the_body_by_its_absolute_path(self):
        self.login()
        folder = tempfile.mkdtemp(dir=self.config)
        with open(os.path.join(folder, "b.json"), "w") as handle:
            handle.write(BODY % "ds_demo")
        self.addCleanup(os.chdir, os.getcwd())
        os.chdir(folder)
        self.platform.inject("start", {"status": 503}, times=4)
        message = self.assertFails(self.run_tool("contacts-import", "start", "--json", "b.json"),
                                   "API_ERROR")["error"]["message"]
        self.assertIn("--json %s " % os.path.join(folder, "b.json"), message)

    def test_13_a_watch_refused_after_the_start_says_the_import_exists(self):
        self.login()
        self.platform.inject("status", {"status": 401, "body": {"error": {"code": "AUTH_FAILED",
                                                                          "message": "revoked"}}})
        result = self.run_tool(*(START + ("--watch", "--idempotency-key=night-1")), stdin=BODY % "ds_demo")
        envelope = self.assertFails(result, "AUTH_FAILED")
        meta = envelope["error"]["meta"]
        self.assertIn("import %d exists and keeps running" % meta["importId"], envelope["error"]["message"])
        self.assertEqual(meta["idempotencyKey"], "night-1")
        self.assertIn("contacts-import wait %d" % meta["importId"], meta["resume"])


class SeveralIdsTests(ToolTestCase):
    """14: ids still running when --max-wait runs out are named, whatever ended first."""

    def test_14_the_ids_still_running_are_named_with_their_resume_command(self):
        self.login()
        ids = []
        for dataset in ("ds_failed", "ds_long"):
            ids.append(self.assertOk(self.run_tool(*START, stdin=BODY % dataset))["importId"])
        result = self.run_tool("contacts-import", "wait", str(ids[0]), str(ids[1]), "--max-wait", "2m")
        envelope = self.assertFails(result, "IMPORT_FAILED")
        self.assertIn("still running at the end of --max-wait: %d" % ids[1], envelope["error"]["message"])
        self.assertIn("contacts-import wait %d" % ids[1], envelope["error"]["meta"]["resume"])


class DoctorFixTests(ToolTestCase):
    """10: each answer of the platform's that is not /v1/me's has its own fix (answer_fix)."""

    def test_10_the_platforms_answers_each_have_a_fix(self):
        self.login()
        cases = [(426, "UPGRADE_REQUIRED", "upgrade landbase-import"),
                 (500, "API_ERROR", "the platform is failing"),
                 (404, "NOT_FOUND", "does not serve the Landbase API")]
        fixes = set()
        for status, code, fix in cases:
            with self.subTest(status=status):
                self.platform.inject("me", {"status": status, "body": {"error": {"code": code,
                                                                                 "message": "no"}}})
                result = self.run_tool("doctor")
                checks = {c["name"]: c for c in json.loads(result.stdout)["checks"]}
                self.assertEqual(checks["platform"]["status"], "fail")
                self.assertIn(fix, checks["platform"]["fix"])
                fixes.add(checks["platform"]["fix"])
        self.assertEqual(len(fixes), len(cases))


class FileTests(ToolTestCase):
    """12: a directory in place of platform.json gets the fix that works (_not_a_regular_file)."""

    def test_12_a_login_over_a_directory_says_to_remove_it(self):
        os.makedirs(self.session_path)
        token = self.platform.mint_token("usr_demo")
        result = self.run_tool("auth", "login", "--with-token", stdin=token + "\n")
        message = self.assertFails(result, "SETUP_FAILED")["error"]["message"]
        self.assertIn("is a directory, not a session file: remove it (rm -r", message)


class UsageTests(ToolTestCase):
    """15 (low): a usage mistake names the help by a command that runs."""

    start_sandbox = False

    def test_15_the_help_to_read_is_a_runnable_command(self):
        message = self.assertFails(self.run_tool("contacts-import", "start", "--jsn", "b"),
                                   "INVALID_INPUT")["error"]["message"]
        self.assertIn("(see: %s contacts-import start --help)" % TOOL, message)

    def test_15_the_help_to_read_runs_from_a_file_whose_name_has_a_space(self):
        """A second attack: from 'l b.py', the help named '... l b.py' b.py contacts-import --help,
        the program's name cut at its space."""
        import shlex
        import shutil
        folder = tempfile.mkdtemp(prefix="lbi dir ")
        self.addCleanup(shutil.rmtree, folder, True)
        copy = os.path.join(folder, "l b.py")
        shutil.copy(TOOL, copy)
        os.chmod(copy, 0o755)
        env = dict(os.environ)
        result = run_cli(["contacts-import", "stat"], env, program=copy)
        message = self.assertFails(result, "INVALID_INPUT")["error"]["message"]
        command = shlex.split(message.rsplit("(see: ", 1)[1].rstrip(")"))
        self.assertEqual(command, [copy, "contacts-import", "--help"])
        shown = run_cli(command[1:], env, program=copy)
        self.assertEqual(shown.code, 0, shown)
        self.assertIn("contacts-import", shown.stdout)


if __name__ == "__main__":
    unittest.main()

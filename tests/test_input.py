"""The body of start and argument validation (README: Use): INVALID_INPUT naming the field, and nothing sent."""

import io
import os
import sys
from unittest import mock

from support import ToolTestCase, tool


class BodyTests(ToolTestCase):
    def setUp(self):
        ToolTestCase.setUp(self)
        self.login()

    def start(self, stdin, *extra):
        return self.run_tool("contacts-import", "start", "--json", "-", *extra, stdin=stdin)

    def refused(self, stdin, field=None, words=()):
        result = self.start(stdin)
        envelope = self.assertFails(result, "INVALID_INPUT")
        self.assertEqual(result.stdout, "")
        self.assertEqual(self.platform.requests, [], "a request was sent for invalid input")
        if field is not None:
            self.assertIn(field, envelope["error"]["message"])
            self.assertEqual(envelope["error"]["meta"].get("field"), field)
        for word in words:
            self.assertIn(word, envelope["error"]["message"])
        return envelope

    def test_a_valid_body_starts_an_import(self):
        result = self.start('{"datasetId": "ds_demo", "tagName": "Q2 outreach"}')
        doc = self.assertOk(result)
        self.assertEqual(sorted(doc), ["importId", "runRef"])
        self.assertIsInstance(doc["importId"], int)

    def test_a_bom_is_tolerated(self):
        self.assertOk(self.start(b'\xef\xbb\xbf{"datasetId": "ds_demo", "tagName": "x"}'))

    def test_import_id_resumes_a_draft(self):
        doc = self.assertOk(self.start('{"datasetId": "ds_demo", "tagName": "x", "importId": 1}'))
        self.assertEqual(doc["importId"], 1)

    def test_missing_fields(self):
        self.refused('{"tagName": "x"}', "datasetId", ["required"])
        self.refused('{"datasetId": "ds_demo"}', "tagName", ["required"])

    def test_dataset_id_rules(self):
        self.refused('{"datasetId": "", "tagName": "x"}', "datasetId", ["empty"])
        self.refused('{"datasetId": 7, "tagName": "x"}', "datasetId", ["string"])
        self.refused('{"datasetId": null, "tagName": "x"}', "datasetId", ["string"])
        self.refused('{"datasetId": "ds x", "tagName": "x"}', "datasetId", ["whitespace"])
        self.refused('{"datasetId": "ds\\u0007x", "tagName": "x"}', "datasetId", ["control"])
        self.refused('{"datasetId": "ds\\u200bx", "tagName": "x"}', "datasetId", ["control"])
        self.refused('{"datasetId": "%s", "tagName": "x"}' % ("d" * 201), "datasetId", ["200"])
        self.assertOk(self.start('{"datasetId": "%s", "tagName": "x"}' % "ds_demo"))

    def test_dataset_id_of_200_characters_is_accepted_locally(self):
        result = self.start('{"datasetId": "%s", "tagName": "x"}' % ("d" * 200))
        self.assertFails(result, "VALIDATION_ERROR")     # the platform does not know it; the tool sent it

    def test_tag_name_rules(self):
        self.refused('{"datasetId": "ds_demo", "tagName": ""}', "tagName", ["1 to 100"])
        self.refused('{"datasetId": "ds_demo", "tagName": "   "}', "tagName", ["blank"])
        self.refused('{"datasetId": "ds_demo", "tagName": "%s"}' % ("t" * 101), "tagName", ["1 to 100"])
        self.refused('{"datasetId": "ds_demo", "tagName": ["x"]}', "tagName", ["string"])
        self.refused('{"datasetId": "ds_demo", "tagName": "\\ud800"}', "tagName", ["Unicode"])
        self.assertOk(self.start('{"datasetId": "ds_demo", "tagName": "%s"}' % ("t" * 100)))

    def test_import_id_must_be_a_positive_integer(self):
        for value in ("true", "7.0", '"7"', "0", "-3", "null", "1e2", "[7]", "9223372036854775808"):
            with self.subTest(value=value):
                self.refused('{"datasetId": "ds_demo", "tagName": "x", "importId": %s}' % value, "importId",
                             ["positive integer"])

    def test_unknown_keys_name_the_nearest_known_one(self):
        envelope = self.refused('{"datasetID": "ds_demo", "tagName": "x"}', "datasetID")
        self.assertIn("did you mean 'datasetId'", envelope["error"]["message"])
        envelope = self.refused('{"datasetId": "ds_demo", "tagNmae": "x"}', "tagNmae")
        self.assertIn("did you mean 'tagName'", envelope["error"]["message"])
        envelope = self.refused('{"datasetId": "ds_demo", "tagName": "x", "zzz": 1}', "zzz")
        self.assertNotIn("did you mean", envelope["error"]["message"])

    def test_duplicate_keys(self):
        self.refused('{"datasetId": "a", "datasetId": "ds_demo", "tagName": "x"}', "datasetId", ["duplicate"])

    def test_non_finite_numbers(self):
        # refused by the reader, naming the value: a field's own rule ("importId must be a positive
        # integer", "tagName must be a string") would refuse them too, but only once they had been read
        for value in ("NaN", "Infinity", "-Infinity", "1e400"):
            for body in ('{"datasetId": "ds_demo", "tagName": "x", "importId": %s}',
                         '{"datasetId": "ds_demo", "tagName": %s}'):
                with self.subTest(body=body % value):
                    self.refused(body % value, words=[value])

    def test_malformed_documents(self):
        for raw in (b"", b"   \n", b"{", b"[]", b'"x"', b"null", b"7", b'{"datasetId": "ds_demo",}',
                    b"\xff\xfe{}", b'{"datasetId": "\xc3\x28", "tagName": "x"}', b"[" * 100000 + b"]" * 100000,
                    b'{"a":' * 50000 + b"1" + b"}" * 50000):
            with self.subTest(raw=raw[:30]):
                self.refused(raw)

    def test_utf16_is_refused(self):
        self.refused('{"datasetId": "ds_demo", "tagName": "x"}'.encode("utf-16"), words=["UTF-8"])

    def test_larger_than_one_mebibyte(self):
        body = b'{"datasetId": "ds_demo", "tagName": "x", "pad": "' + b"x" * (1024 * 1024) + b'"}'
        self.refused(body, words=["1 MiB"])

    def test_a_body_from_a_file(self):
        path = os.path.join(self.config, "body.json")
        with open(path, "w") as handle:
            handle.write('{"datasetId": "ds_demo", "tagName": "from a file"}')
        self.assertOk(self.run_tool("contacts-import", "start", "--json", path))

    def test_a_missing_file_names_it(self):
        result = self.run_tool("contacts-import", "start", "--json", "/nonexistent/body.json")
        envelope = self.assertFails(result, "INVALID_INPUT")
        self.assertIn("/nonexistent/body.json", envelope["error"]["message"])
        self.assertEqual(self.platform.requests, [])

    def test_inline_json_gets_a_hint(self):
        result = self.run_tool("contacts-import", "start", "--json", '{"datasetId": "ds_demo", "tagName": "x"}')
        envelope = self.assertFails(result, "INVALID_INPUT")
        self.assertIn("takes a path or -", envelope["error"]["message"])
        self.assertEqual(self.platform.requests, [])


class ArgumentTests(ToolTestCase):
    def setUp(self):
        ToolTestCase.setUp(self)
        self.login()

    def refused(self, *argv):
        result = self.run_tool(*argv)
        envelope = self.assertFails(result, "INVALID_INPUT")
        self.assertEqual(result.stdout, "")
        self.assertEqual(self.platform.requests, [])
        return envelope

    def test_import_ids_must_be_positive_ascii_integers(self):
        for value in ("0", "-1", "7.0", "abc", "7/../8", "..", "7 8", "\u0661\u0662", "", "1" * 20, "+7"):
            with self.subTest(value=value):
                self.refused("contacts-import", "status", value)
                self.refused("contacts-import", "wait", "5", value)

    def test_a_repeated_wait_id(self):
        self.refused("contacts-import", "wait", "5", "5")

    def test_account_ids(self):
        for value in ("", "acc/1", "acc 1", "a" * 65, "acc..", "\u00e9t\u00e9"):
            with self.subTest(value=value):
                self.refused("account", "set", value)
                self.refused("contacts-import", "status", "7", "--account=" + value)

    def test_timeout_must_be_positive(self):
        for value in ("0", "-1", "abc", "nan", "99999"):
            with self.subTest(value=value):
                self.refused("contacts-import", "status", "7", "--timeout", value)

    def test_timeout_says_what_is_allowed(self):
        message = self.refused("contacts-import", "status", "7", "--timeout", "0")["error"]["message"]
        self.assertIn("greater than 0 and at most %d" % tool.MAX_TIMEOUT, message)

    def test_a_bare_level_prints_its_help(self):
        for argv in ((), ("auth",), ("account",), ("contacts-import",), ("--verbose",), ("auth", "--quiet")):
            with self.subTest(argv=argv):
                result = self.run_tool(*argv)
                self.assertEqual(result.code, 0, result)
                self.assertTrue(result.stdout.startswith("usage: landbase_import.py"), result.stdout[:100])
                self.assertEqual(result.stderr, "")
        self.assertIn("auth login", self.run_tool("auth").stdout)
        self.assertEqual(self.platform.requests, [])

    def test_a_mistyped_word_gets_the_nearest_one(self):
        cases = [(("contacts-import", "stat", "7"), "'status'"), (("contacts-import", "wiat", "7"), "'wait'"),
                 (("acount", "list"), "'account'"), (("auth", "stauts"), "'status'"),
                 (("contacts-import", "status", "7", "--acount=acc_demo"), "'--account'"),
                 (("contacts-import", "start", "--json", "-", "--dryrun"), "'--dry-run'")]
        for argv, suggestion in cases:
            with self.subTest(argv=argv):
                self.assertIn("did you mean %s?" % suggestion, self.refused(*argv)["error"]["message"])

    def test_unknown_commands_and_options(self):
        self.refused("import")
        self.refused("contacts-import", "status")
        self.refused("contacts-import", "start")
        self.refused("contacts-import", "status", "7", "--bogus")
        self.refused("contacts-import", "status", "7", "--acc=acc_demo")     # no abbreviations
        self.refused("auth", "login", "--device", "--with-token")

    def test_global_options_before_or_after_the_subcommand(self):
        for argv in (("--account=acc_team", "contacts-import", "status", "1"),
                     ("contacts-import", "--account", "acc_team", "status", "1"),
                     ("contacts-import", "status", "1", "--account=acc_team")):
            with self.subTest(argv=argv):
                result = self.run_tool(*argv)
                self.assertFails(result, "NOT_FOUND")      # import 1 lives in acc_demo, not acc_team
                self.assertIn("/v1/accounts/acc_team/", self.platform.requests[-1][1])

    def test_the_account_option_beats_the_environment_and_the_file(self):
        os.environ["LANDBASE_ACCOUNT_ID"] = "acc_team"
        self.assertFails(self.run_tool("contacts-import", "status", "1"), "NOT_FOUND")
        self.assertOk(self.run_tool("contacts-import", "status", "1", "--account=acc_demo"))

    def test_no_account(self):
        tool.SessionStore().update({"accountId": None})
        result = self.run_tool("contacts-import", "status", "1")
        envelope = self.assertFails(result, "INVALID_INPUT")
        self.assertTrue(envelope["error"]["message"].startswith("No account id"), envelope)
        self.assertIn("account set", envelope["error"]["message"])
        self.assertIn("--account=<id>", envelope["error"]["message"])
        self.assertEqual(self.platform.requests, [])

    def test_help_at_every_level_has_an_example(self):
        for argv in ((), ("auth",), ("auth", "login"), ("auth", "status"), ("auth", "logout"), ("account",),
                     ("account", "list"), ("account", "set"), ("contacts-import",), ("contacts-import", "start"),
                     ("contacts-import", "status"), ("contacts-import", "wait")):
            with self.subTest(argv=argv):
                result = self.run_tool(*(argv + ("--help",)))
                self.assertEqual(result.code, 0)
                self.assertIn("usage:", result.stdout)
                self.assertIn("example", result.stdout)
                self.assertIn("landbase_import.py ", result.stdout.split("example", 1)[1])

    def test_help_into_a_closed_pipe_is_quiet(self):
        class ClosedPipe(io.StringIO):
            def write(self, text):
                raise BrokenPipeError(32, "Broken pipe")

            def fileno(self):
                raise io.UnsupportedOperation("no file descriptor")
        err = io.StringIO()
        with mock.patch.object(sys, "stdout", ClosedPipe()), mock.patch.object(sys, "stderr", err):
            self.assertEqual(tool.main(["--help"]), 0)
            self.assertEqual(tool.main(["contacts-import", "status", "1"]), 0)
        self.assertEqual(err.getvalue(), "")

    def test_version(self):
        result = self.run_tool("--version")
        self.assertEqual(result.code, 0)
        self.assertIn(tool.__version__, result.stdout)

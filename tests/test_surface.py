"""The scripting surface: --query, --dry-run, --idempotency-key, CONFLICT, and stdout/stderr/stdin
that are closed or full (in-process; tests/test_streams.py does the same with real descriptors)."""

import errno
import os
import io
import json
import sys
from unittest import mock

from support import ToolTestCase, envelope_of, on_sleep, tool

BODY = '{"datasetId": "ds_demo", "tagName": "surface"}'
START = ("contacts-import", "start", "--json", "-")


class QueryTests(ToolTestCase):
    def setUp(self):
        ToolTestCase.setUp(self)
        self.login()

    def test_one_path_prints_the_raw_value(self):
        result = self.run_tool(*(START + ("--query", "importId")), stdin=BODY)
        self.assertEqual(result.code, 0, result)
        self.assertRegex(result.stdout, r"^\d+\n$")
        self.assertIn(int(result.stdout), self.platform.imports)

    def test_several_paths_are_tab_separated_and_each_type_has_its_form(self):
        self.platform.inject("status", {"json": {"importId": 1, "phase": "in\tprogress\n", "percent": 42.5,
                                                 "counts": {"total": 9, "imported": None}, "error": None}})
        result = self.run_tool("contacts-import", "status", "1",
                               "--query=importId,phase,percent,counts,counts.imported,error,error.code")
        self.assertEqual(result.code, 0, result)
        self.assertEqual(result.stdout, "1\tin\ufffdprogress\ufffd\t42.5\t{\"total\":9,\"imported\":null}\t\t\t\n")

    def test_an_array_prints_one_line_per_entry(self):
        self.assertEqual(self.run_tool("account", "list", "--query", "id,active").stdout,
                         "acc_demo\ttrue\nacc_team\tfalse\n")

    def test_an_unknown_path_is_invalid_before_anything_is_sent(self):
        for argv in (START + ("--query", "phase"), START + ("--query", "importId,nope"),
                     ("contacts-import", "status", "1", "--query", "counts.bogus"),
                     ("auth", "status", "--query", "token"), ("account", "list", "--query", "")):
            with self.subTest(argv=argv):
                before = len(self.platform.requests)
                envelope = self.assertFails(self.run_tool(*argv, stdin=BODY), "INVALID_INPUT")
                self.assertIn("--query", envelope["error"]["message"])
                self.assertEqual(len(self.platform.requests), before)

    def test_start_watch_queries_the_final_status(self):
        result = self.run_tool(*(START + ("--watch", "--query", "phase,counts.imported")), stdin=BODY)
        self.assertEqual(result.stdout, "completed\t232\n")

    def test_a_failed_import_still_prints_its_query(self):
        result = self.run_tool(*(START + ("--watch", "--query=phase,error.code")),
                               stdin=BODY.replace("ds_demo", "ds_failed"))
        self.assertFails(result, "IMPORT_FAILED")
        self.assertEqual(result.stdout, "failed\tDATASET_UNREADABLE\n")


class DryRunTests(ToolTestCase):
    def test_it_checks_and_sends_nothing(self):
        self.login()
        doc = self.assertOk(self.run_tool(*(START + ("--dry-run", "--watch")), stdin=BODY))
        self.assertRegex(doc.pop("idempotencyKey"), r"^[0-9a-f-]{36}$")       # a random key, as a run would send
        self.assertEqual(doc, {"dryRun": True, "accountId": "acc_demo",
                               "request": "POST /v1/accounts/acc_demo/contacts-imports",
                               "body": {"datasetId": "ds_demo", "tagName": "surface"}})
        self.assertEqual(self.platform.requests, [])

    def test_it_shows_the_body_and_the_key_exactly_as_they_would_be_sent(self):
        self.login()
        body = '{"datasetId": "ds_demo", "tagName": "lbs_q2_outreach"}'       # user data shaped like a token
        result = self.run_tool(*(START + ("--dry-run", "--idempotency-key=-nightly")), stdin=body)
        doc = self.assertOk(result)
        self.assertEqual((doc["body"]["tagName"], doc["idempotencyKey"]), ("lbs_q2_outreach", "-nightly"))
        result = self.run_tool(*(START + ("--verbose",)), stdin=body)
        self.assertOk(result)
        self.assertIn('"tagName": "lbs_q2_outreach"', result.stderr)            # --verbose shows it as sent

    def test_it_fails_as_the_real_start_would(self):
        self.assertFails(self.run_tool(*(START + ("--dry-run",)), stdin=BODY), "AUTH_REQUIRED")
        self.login(expiresAt=tool.format_time(self.clock.wall() - 60))
        self.assertFails(self.run_tool(*(START + ("--dry-run",)), stdin=BODY), "AUTH_FAILED")
        self.login(account=None)
        envelope = self.assertFails(self.run_tool(*(START + ("--dry-run",)), stdin=BODY), "INVALID_INPUT")
        self.assertTrue(envelope["error"]["message"].startswith("No account id"))
        self.assertFails(self.run_tool(*(START + ("--dry-run", "--account=acc_demo")), stdin='{"datasetId": 7}'),
                         "INVALID_INPUT")
        self.assertEqual(self.platform.requests, [])

    def test_query_over_a_dry_run(self):
        self.login()
        result = self.run_tool(*(START + ("--dry-run", "--query", "request,body.tagName")), stdin=BODY)
        self.assertEqual(result.stdout, "POST /v1/accounts/acc_demo/contacts-imports\tsurface\n")


class IdempotencyKeyTests(ToolTestCase):
    def setUp(self):
        ToolTestCase.setUp(self)
        self.login()

    def start(self, key):
        return self.assertOk(self.run_tool(*(START + ("--idempotency-key", key)), stdin=BODY))

    def test_a_rerun_with_the_same_key_gets_the_original_import(self):
        first = self.start("nightly-2026-11-29")
        again = self.start("nightly-2026-11-29")
        self.assertEqual(first, again)
        keys = [h["Idempotency-Key"] for m, p, h in self.platform.requests if m == "POST"]
        self.assertEqual(keys, ["nightly-2026-11-29"] * 2)
        self.assertNotEqual(self.start("nightly-2026-11-30")["importId"], first["importId"])

    def test_a_key_belongs_to_an_account_and_a_body(self):
        first = self.start("nightly")
        other = self.assertOk(self.run_tool(*(START + ("--idempotency-key", "nightly", "--account=acc_team")),
                                            stdin=BODY))
        self.assertNotEqual(other["importId"], first["importId"])
        self.assertEqual(self.platform.imports[other["importId"]]["account"], "acc_team")
        envelope = self.assertFails(self.run_tool(*(START + ("--idempotency-key", "nightly")),
                                                  stdin=BODY.replace("ds_demo", "ds_partial")), "VALIDATION_ERROR")
        self.assertIn("Idempotency-Key", envelope["error"]["message"])

    def test_the_platform_keeps_a_key_24_hours(self):
        first = self.start("daily")
        self.platform.advance(23 * 3600)
        self.assertEqual(self.start("daily"), first)
        self.platform.advance(2 * 3600)
        self.assertNotEqual(self.start("daily")["importId"], first["importId"])

    def test_a_key_that_is_not_allowed(self):
        for key in ("", " ", "x" * 256, "caf\u00e9", "a\tb", "a\nb"):
            with self.subTest(key=key):
                envelope = self.assertFails(self.run_tool(*(START + ("--idempotency-key=" + key,)), stdin=BODY),
                                            "INVALID_INPUT")
                self.assertIn("--idempotency-key", envelope["error"]["message"])
        self.assertOk(self.run_tool(*(START + ("--idempotency-key", "k" * 255)), stdin=BODY))
        self.assertEqual(len([r for r in self.platform.requests if r[0] == "POST"]), 1)


class ConflictTests(ToolTestCase):
    def setUp(self):
        ToolTestCase.setUp(self)
        self.login()
        self.body = '{"datasetId": "ds_demo", "tagName": "again", "importId": 1}'
        self.assertOk(self.run_tool(*START, stdin=self.body))

    def test_conflict_names_the_wait_command(self):
        envelope = self.assertFails(self.run_tool(*START, stdin=self.body), "CONFLICT")
        self.assertIn("contacts-import wait 1 --account=acc_demo", envelope["error"]["message"])
        self.assertEqual(envelope["error"]["meta"]["importId"], 1)

    def test_watch_attaches_to_the_running_import(self):
        result = self.run_tool(*(START + ("--watch",)), stdin=self.body)
        doc = self.assertOk(result)
        self.assertEqual((doc["importId"], doc["phase"]), (1, "completed"))
        self.assertTrue(result.lines[0].startswith("Import 1 is already running (CONFLICT); waiting on it"),
                        result.lines)
        self.assertEqual(len([r for r in self.platform.requests if r[0] == "POST"]), 2)


class ClosedStreamTests(ToolTestCase):
    """A closed stream is None in Python (2>&-, >&-, <&-); /dev/full raises ENOSPC."""

    def setUp(self):
        ToolTestCase.setUp(self)
        self.login()

    def run_with(self, argv, stdout=None, stderr=None, stdin=BODY, closed_stdin=False):
        out = io.StringIO() if stdout is None else stdout
        err = io.StringIO() if stderr is None else stderr
        fake_in = None if closed_stdin else io.TextIOWrapper(io.BytesIO(stdin.encode()), encoding="utf-8")
        with mock.patch.object(sys, "stdout", None if stdout == "closed" else out), \
                mock.patch.object(sys, "stderr", None if stderr == "closed" else err), \
                mock.patch.object(sys, "stdin", fake_in), mock.patch.object(sys, "argv", ["landbase_import.py"]), \
                mock.patch.object(tool, "_silence_stdout"):
            code = tool.main(list(argv))
        return code, (out.getvalue() if stdout is None else ""), (err.getvalue() if stderr is None else "")

    def test_start_with_stdout_closed_or_full_is_output_failed_with_the_id(self):
        for stdout in ("closed", FullStream()):
            with self.subTest(stdout=stdout):
                before = len(self.platform.imports)
                code, _, err = self.run_with(START, stdout=stdout)
                self.assertEqual(code, 2, err)
                envelope = envelope_of(err)
                self.assertEqual(envelope["error"]["code"], "OUTPUT_FAILED")
                import_id = envelope["error"]["meta"]["importId"]
                self.assertIn(import_id, self.platform.imports)
                self.assertEqual(len(self.platform.imports), before + 1)
                self.assertIn('"importId": %d' % import_id, envelope["error"]["message"])
                self.assertIn("Started import %d" % import_id, err)

    def test_stderr_closed_changes_no_exit_code(self):
        code, out, _ = self.run_with(START, stderr="closed")
        self.assertEqual(code, 0)
        self.assertIn(json.loads(out)["importId"], self.platform.imports)
        self.assertEqual(self.run_with(("contacts-import", "status", "1"), stderr="closed")[0], 0)
        tool.SessionStore().remove()
        self.assertEqual(self.run_with(("auth", "status"), stderr="closed")[0], 3)
        self.assertEqual(self.run_with(("contacts-import", "status", "x"), stderr="closed")[0], 1)

    def test_stdin_closed_is_invalid_input(self):
        code, _, err = self.run_with(START, closed_stdin=True)
        self.assertEqual(code, 1)
        self.assertEqual(envelope_of(err)["error"]["code"], "INVALID_INPUT")
        self.assertEqual(self.platform.requests, [])

    def test_help_into_a_closed_stdout(self):
        code, _, err = self.run_with(("--help",), stdout="closed")
        self.assertEqual(code, 2)
        self.assertEqual(envelope_of(err)["error"]["code"], "OUTPUT_FAILED")


class FullStream(io.StringIO):
    def write(self, text):
        raise OSError(errno.ENOSPC, "No space left on device")


class NeverExitOneAfterCreatingTests(ToolTestCase):
    """A start that may have created an import never exits 1: cron reads 1 as 'fix it and run it again'."""

    def setUp(self):
        ToolTestCase.setUp(self)
        self.login()

    def test_a_status_refused_while_watching_the_new_import(self):
        self.platform.inject("status", {"status": 400, "body": {"error": {"code": "VALIDATION_ERROR",
                                                                          "message": "no"}}})
        result = self.run_tool(*(START + ("--watch",)), stdin=BODY)
        envelope = self.assertFails(result, "API_ERROR")
        import_id = envelope["error"]["meta"]["importId"]
        self.assertIn(import_id, self.platform.imports)
        self.assertEqual(envelope["error"]["meta"]["serverCode"], "VALIDATION_ERROR")
        self.assertIn("import %d exists and keeps running" % import_id, envelope["error"]["message"])
        self.assertIn("contacts-import wait %d" % import_id, envelope["error"]["meta"]["resume"])
        self.assertIn("Resume with: " + envelope["error"]["meta"]["resume"], result.stderr)

    def test_a_refusal_after_an_attempt_that_may_have_created_it(self):
        self.platform.inject("start", {"drop": True})           # the platform acts, the answer is lost
        self.platform.inject("start", {"status": 422, "body": {"error": {"code": "VALIDATION_ERROR",
                                                                         "message": "no"}}})
        envelope = self.assertFails(self.run_tool(*START, stdin=BODY), "API_ERROR")
        key = envelope["error"]["meta"]["idempotencyKey"]
        self.assertIn("--idempotency-key=%s" % key, envelope["error"]["message"])
        self.assertEqual([h["Idempotency-Key"] for m, p, h in self.platform.requests if m == "POST"], [key, key])
        doc = self.assertOk(self.run_tool(*(START + ("--idempotency-key", key)), stdin=BODY))
        self.assertEqual(len([i for i in self.platform.imports if i != 1]), 1)     # the one the lost answer made
        self.assertIn(doc["importId"], self.platform.imports)

    def test_a_plain_refusal_still_exits_1(self):
        self.assertFails(self.run_tool(*START, stdin=BODY.replace("ds_demo", "ds_other")), "VALIDATION_ERROR")

    def test_a_start_interrupted_before_its_answer_names_its_key(self):
        self.platform.inject("start", {"status": 503})

        def interrupt():
            raise KeyboardInterrupt()
        on_sleep(self.clock, 1, interrupt)
        envelope = self.assertFails(self.run_tool(*START, stdin=BODY), "INTERRUPTED", 130)
        self.assertIn("--idempotency-key=%s" % envelope["error"]["meta"]["idempotencyKey"],
                      envelope["error"]["message"])


class StrictAnswerTests(ToolTestCase):
    def setUp(self):
        ToolTestCase.setUp(self)
        self.login()

    def test_counts_and_error_have_their_types(self):
        for body in ({"counts": {"total": True}}, {"counts": {"imported": "7"}}, {"counts": {"failed": 1.5}},
                     {"error": {"code": 5}}, {"error": {"message": ["x"]}}):
            with self.subTest(body=body):
                answer = {"importId": 1, "phase": "failed", "percent": 1, "counts": None, "error": None}
                answer.update(body)
                self.platform.inject("status", {"json": answer}, times=4)
                envelope = self.assertFails(self.run_tool("contacts-import", "status", "1"), "API_ERROR")
                self.assertIn(sorted(body)[0] + ".", envelope["error"]["message"])

    def test_a_token_that_cannot_travel_in_a_header(self):
        os.environ["LANDBASE_ACCESS_TOKEN"] = "lbs_tok\u20ac"
        envelope = self.assertFails(self.run_tool("contacts-import", "status", "1"), "INVALID_INPUT")
        self.assertIn("LANDBASE_ACCESS_TOKEN", envelope["error"]["message"])
        del os.environ["LANDBASE_ACCESS_TOKEN"]
        self.login(accessToken="lbs_\u00e9t\u00e9")
        envelope = self.assertFails(self.run_tool("contacts-import", "status", "1"), "SETUP_FAILED")
        self.assertIn(self.session_path, envelope["error"]["message"])
        self.assertEqual(self.platform.requests, [])

    def test_an_account_id_in_the_file_that_is_none(self):
        self.login(account="../../v1/me?")
        envelope = self.assertFails(self.run_tool("auth", "status"), "SETUP_FAILED")
        self.assertIn(self.session_path, envelope["error"]["message"])

    def test_a_location_with_user_information_is_unusable(self):
        self.platform.inject("me", {"redirect": "http://x:y@%s/v1/me" % self.sandbox.url[len("http://"):],
                                    "status": 302}, times=4)
        envelope = self.assertFails(self.run_tool("auth", "status"), "API_ERROR")
        self.assertIn("not a usable URL", envelope["error"]["message"])

    def test_max_wait_bounds_the_requests_too(self):
        self.platform.inject("status", {"delay": 3}, times=5)      # answered, but only after 3 real seconds
        result = self.run_tool("contacts-import", "wait", "1", "--max-wait", "1", "--timeout", "30")
        envelope = self.assertFails(result, "TIMEOUT")
        self.assertIn("gave up after 1s", envelope["error"]["message"])
        self.assertIn("what was left of --max-wait", result.stderr)

"""The seeded fuzzer: 2,200 generated argv lists and bodies through main(), each checked against the README."""

import json
import os
from unittest import mock

import fuzz
from support import EXITS, ToolTestCase, tool

EXIT_VALUES = set(EXITS.values()) | {0}


class FuzzTests(ToolTestCase):
    sandbox_options = {"min_poll_interval": 0, "device_interval": 120}

    def setUp(self):
        ToolTestCase.setUp(self)
        self.clock.wait_event = lambda event, seconds: event.is_set()     # no browser will answer
        browser = mock.patch.object(tool, "open_browser", lambda *a, **k: False)
        browser.start()
        self.addCleanup(browser.stop)

    def fresh_session(self):
        return self.login()

    def check(self, kind, argv, stdin, expected):
        token = self.fresh_session()
        before = len(self.platform.requests)
        result = self.run_tool(*argv, stdin=stdin)
        sent = self.platform.requests[before:]
        where = "%s %r stdin=%r" % (kind, argv, stdin[:80])
        self.assertIn(result.code, EXIT_VALUES, where)
        self.assertNotIn("Traceback", result.stderr, where)
        self.assertNotIn(token, result.stdout + result.stderr, where)
        text_output = any(word in ("--help", "--version", "-h") for word in argv) or fuzz.is_bare_level(argv)
        if result.code == 0 and text_output and not result.stdout.startswith(("{", "[")):
            self.assertTrue(result.stdout.startswith(("usage:", "landbase-import ")), where)
        elif result.stdout:
            self.assertTrue(result.stdout.endswith("\n") and result.stdout.count("\n") == 1, where)
            json.loads(result.stdout)
        if result.code != 0:
            envelope = result.envelope
            code = envelope["error"]["code"]
            self.assertEqual(EXITS[code], result.code, where)
            self.assertFalse(envelope["error"]["message"].startswith("internal error"), where + result.stderr)
            if code == "INVALID_INPUT":
                self.assertEqual(sent, [], where)
            if result.code not in (2, 4) or code in ("NOT_FOUND", "CONFLICT"):
                self.assertEqual(result.stdout, "", where)      # only IMPORT_* print a final status
        if expected == "invalid":
            self.assertEqual(result.code, 1, where + result.stderr)
            self.assertEqual(result.envelope["error"]["code"], "INVALID_INPUT", where)
            self.assertEqual(sent, [], where)
        elif expected == "valid":
            self.assertNotEqual(sent, [], where + result.stderr)
        return result.code

    def test_generated_inputs(self):
        cases = fuzz.generate()
        self.assertGreaterEqual(len(cases), 2000)
        if not os.environ.get("LANDBASE_TEST_FULL"):     # make test: every other case; make reliability: all
            cases = cases[::2]
        counts = {"valid": 0, "invalid": 0, None: 0}
        exits = {}
        for kind, argv, stdin, expected in cases:
            counts[expected] += 1
            with self.subTest(kind=kind, argv=argv, stdin=stdin[:60]):
                code = self.check(kind, argv, stdin, expected)
                exits[code] = exits.get(code, 0) + 1
        # the generator reaches both sides of the oracle and several exits, or it proves little
        scale = 1 if os.environ.get("LANDBASE_TEST_FULL") else 2
        self.assertGreater(counts["valid"], 200 // scale)
        self.assertGreater(counts["invalid"], 800 // scale)
        self.assertTrue({0, 1, 2, 3}.issubset(exits), exits)
        if os.environ.get("FUZZ_REPORT"):
            with open(os.environ["FUZZ_REPORT"], "w") as handle:
                json.dump({"cases": len(cases), "oracle": {str(k): v for k, v in counts.items()},
                           "exits": {str(k): v for k, v in sorted(exits.items())}}, handle)

"""Hostile inputs, round two: crafted documents, odd environments, signals and a terminal with several imports
(README: Streams, Exit codes, The HTTP protocol). In-process against the sandbox, unless a case needs a process."""

import json
import time

from support import ToolTestCase, tool

CRAFTED = b"[" * 65 + b'"' + b'\\"' * 40000         # 65 brackets, then an unterminated string of escaped quotes


class CraftedDocuments(ToolTestCase):
    """Every check of an answer, body or file is linear in its size."""

    def setUp(self):
        ToolTestCase.setUp(self)
        self.login()

    def timed(self, *argv, **kwargs):
        started = time.process_time()
        result = self.run_tool(*argv, **kwargs)
        return result, time.process_time() - started

    def test_a_crafted_body_of_a_megabyte_is_refused_at_once(self):
        body = b"[" * 65 + b'"' + b'\\"' * (tool.MAX_BODY_BYTES // 2 - 40)
        result, seconds = self.timed("contacts-import", "start", "--json", "-", stdin=body)
        self.assertFails(result, "INVALID_INPUT")
        self.assertLess(seconds, 2.0, "a 1 MiB body took %.1f s of CPU to refuse (quadratic?)" % seconds)

    def test_a_crafted_status_answer_is_judged_at_once(self):
        raw = (b"[" * 65 + b'"' + b'\\"' * (2 * 1024 * 1024 - 40)).decode()
        self.platform.inject("status", {"raw": raw}, times=4)
        result, seconds = self.timed("contacts-import", "status", "1")
        self.assertFails(result, "API_ERROR")
        self.assertEqual(self.platform.count("GET", "/contacts-imports/1"), 4)
        self.assertLess(seconds, 8.0, "four 4 MiB answers took %.1f s of CPU to judge (quadratic?)" % seconds)
        self.assertIn("nested deeper than 64", result.envelope["error"]["message"])

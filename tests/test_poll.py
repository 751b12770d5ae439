"""The poller (README: wait): schedule, deadline, transient failures, terminal exits, signals, progress."""

import io
import json
import os
import re
import signal
import sys
from unittest import mock

from support import ToolTestCase, on_sleep, tool

BODY = '{"datasetId": "%s", "tagName": "poll test"}'


class ImportTestCase(ToolTestCase):
    """Logged in to acc_demo; start() starts an import of a sandbox dataset."""

    def setUp(self):
        ToolTestCase.setUp(self)
        self.login()

    def start(self, dataset):
        return self.assertOk(self.run_tool("contacts-import", "start", "--json", "-",
                                           stdin=BODY % dataset))["importId"]

    def interrupt_after(self, count, exception):
        """The signal arrives while the tool sleeps for the time after `count` sleeps."""
        def interrupt():
            raise exception()
        on_sleep(self.clock, count + 1, interrupt)


class PollTests(ImportTestCase):

    def polls(self, import_id):
        return self.platform.count("GET", "/contacts-imports/%d" % import_id)

    def test_the_schedule_is_at_once_then_5_10_and_every_20_seconds(self):
        import_id = self.start("ds_complete")       # preparing 5 s, then 40 s in progress
        result = self.run_tool("contacts-import", "wait", str(import_id))
        doc = self.assertOk(result)
        self.assertEqual(doc["phase"], "completed")
        self.assertEqual(doc["percent"], 100)
        self.assertEqual(sorted(doc), ["counts", "error", "importId", "percent", "phase"])
        self.assertEqual(self.clock.sleeps, [5, 10, 20, 20])
        self.assertEqual(self.polls(import_id), 5)

    def test_a_30_minute_limit_with_at_most_92_polls(self):
        import_id = self.start("ds_long")
        result = self.run_tool("contacts-import", "wait", str(import_id))
        envelope = self.assertFails(result, "TIMEOUT")
        resume = "contacts-import wait %d --account=acc_demo" % import_id
        self.assertEqual(sorted(envelope["error"]["meta"]), ["importId", "resume"])
        self.assertEqual(envelope["error"]["meta"]["importId"], import_id)
        self.assertTrue(envelope["error"]["meta"]["resume"].endswith(resume))
        self.assertIn("Resume with: ", result.lines[-2])
        self.assertEqual(result.stderr.count(resume), 2)        # the error's line, and meta
        self.assertEqual(sum(self.clock.sleeps), 1800)
        self.assertEqual(self.polls(import_id), 92)
        self.assertEqual(self.clock.sleeps[:4], [5, 10, 20, 20])
        doc = json.loads(result.stdout)                  # the last-known status: a cron job's row exists
        self.assertEqual((doc["importId"], doc["phase"]), (import_id, "in_progress"))

    def test_partial_and_failed_exit_2_with_the_final_status_on_stdout(self):
        for dataset, code, phase in (("ds_partial", "IMPORT_PARTIAL", "partial"),
                                     ("ds_failed", "IMPORT_FAILED", "failed")):
            with self.subTest(dataset=dataset):
                import_id = self.start(dataset)
                result = self.run_tool("contacts-import", "wait", str(import_id))
                envelope = self.assertFails(result, code)
                self.assertEqual(envelope["error"]["meta"], {"importId": import_id})
                doc = json.loads(result.stdout)
                self.assertEqual(doc["phase"], phase)
                self.assertIsInstance(doc["error"], dict)
                self.assertIn(doc["error"]["message"], envelope["error"]["message"])

    def test_a_transient_failure_is_reported_and_survived(self):
        import_id = self.start("ds_complete")
        self.platform.inject("status", {})                          # the first poll passes
        self.platform.inject("status", {"status": 502, "body": "<html>bad gateway</html>"})
        self.platform.inject("status", {"reset": True})
        result = self.run_tool("contacts-import", "wait", str(import_id))
        self.assertEqual(self.assertOk(result)["phase"], "completed")
        self.assertEqual(self.clock.sleeps[:3], [5, 10, 20])
        self.assertIn("poll failed (API_ERROR", result.stderr)
        self.assertIn("poll failed (NETWORK_ERROR", result.stderr)

    def test_broken_answers_are_survived(self):
        import_id = self.start("ds_complete")       # preparing 5 s, then 40 s in progress
        good = {"importId": import_id, "phase": "in_progress", "percent": 10, "counts": None, "error": None}
        broken = [("phase", 7), ("percent", "x"), ("counts", [])]       # one field broken in each answer
        for field, value in broken:
            self.platform.inject("status", {"json": dict(good, **{field: value})})
        self.platform.inject("status", {"truncate": True})
        result = self.run_tool("contacts-import", "wait", str(import_id))
        self.assertEqual(self.assertOk(result)["phase"], "completed")
        failed = [line for line in result.lines if "poll failed (API_ERROR" in line]
        self.assertEqual(len(failed), 4, result)                 # each one a failed poll, none of them fatal
        for (field, value), line in zip(broken, failed):     # each names the field and the value it had
            self.assertIn(field, line)
            self.assertIn(json.dumps(value), line)
        self.assertIn("JSON", failed[3])
        self.assertEqual(self.clock.sleeps, [5, 10, 20, 20])     # the schedule went on: polls at 0, 5, 15, 35, 55 s
        self.assertEqual(self.polls(import_id), 5)

    def test_a_longer_retry_after_is_honoured(self):
        import_id = self.start("ds_complete")
        self.platform.inject("status", {})
        self.platform.inject("status", {"status": 429, "headers": {"Retry-After": "45"}})
        result = self.run_tool("contacts-import", "wait", str(import_id))
        self.assertOk(result)
        self.assertEqual(self.clock.sleeps[:2], [5, 45])

    def test_a_shorter_retry_after_keeps_the_schedule(self):
        import_id = self.start("ds_complete")
        self.platform.inject("status", {"status": 429, "headers": {"Retry-After": "1"}})
        self.assertOk(self.run_tool("contacts-import", "wait", str(import_id)))
        self.assertEqual(self.clock.sleeps[:2], [5, 10])

    def test_a_long_outage_is_ridden_out(self):
        import_id = self.start("ds_complete")
        self.platform.inject("status", {"status": 503}, times=11)  # 195 s of polls answered 503
        result = self.run_tool("contacts-import", "wait", str(import_id))
        self.assertEqual(self.assertOk(result)["phase"], "completed")
        self.assertGreaterEqual(sum(self.clock.sleeps), 180)
        self.assertEqual(result.stderr.count("poll failed"), 11)

    def test_auth_failed_ends_the_wait_at_once(self):
        import_id = self.start("ds_long")
        self.platform.inject("status", {})
        self.platform.inject("status", {"status": 401})
        result = self.run_tool("contacts-import", "wait", str(import_id))
        envelope = self.assertFails(result, "AUTH_FAILED")
        self.assertEqual(envelope["error"]["meta"]["importId"], import_id)
        self.assertEqual(self.clock.sleeps, [5])
        self.assertEqual(result.stdout, "")

    def test_a_wait_ended_by_a_permanent_error_gives_the_command_that_resumes_it(self):
        """h12 F2: a redirect refused ended the wait, and no line named the resume command."""
        import_id = self.start("ds_long")
        self.platform.inject("status", {"redirect": "http://localhost:1/elsewhere", "status": 302})
        result = self.run_tool("contacts-import", "wait", str(import_id))
        envelope = self.assertFails(result, "API_ERROR", 2)
        resume = "%s contacts-import wait %d --account=acc_demo" % (tool.program_command(), import_id)
        self.assertEqual(envelope["error"]["meta"]["resume"], resume)
        self.assertTrue(result.lines[-2].endswith(". Resume with: " + resume), result.lines[-2])

    def test_not_found_ends_the_wait_at_once(self):
        result = self.run_tool("contacts-import", "wait", "99999")
        self.assertFails(result, "NOT_FOUND")
        self.assertEqual(self.clock.sleeps, [])

    def test_an_unknown_phase_is_in_flight(self):
        import_id = self.start("ds_complete")
        self.platform.inject("status", {"json": {"importId": import_id, "phase": "queued", "percent": None,
                                                 "counts": None, "error": None}})
        result = self.run_tool("contacts-import", "wait", str(import_id))
        self.assertEqual(self.assertOk(result)["phase"], "completed")
        self.assertIn("queued", result.stderr)

    def test_start_watch(self):
        result = self.run_tool("contacts-import", "start", "--json", "-", "--watch", stdin=BODY % "ds_demo")
        doc = self.assertOk(result)
        self.assertEqual(doc["phase"], "completed")
        first = result.lines[0]
        self.assertRegex(first, r"Started import %d\b" % doc["importId"])
        self.assertIn("contacts-import wait %d --account=acc_demo" % doc["importId"], first)

    def test_a_watched_start_whose_session_ends_prints_the_last_known_state(self):
        """README (Cron): a row every night an import started. The session that ends during the
        night's wait is no exception: the start's import exists, and its last-known state is printed."""
        self.platform.inject("status", {})
        self.platform.inject("status", {"status": 401})
        result = self.run_tool("contacts-import", "start", "--json", "-", "--watch", stdin=BODY % "ds_long")
        envelope = self.assertFails(result, "AUTH_FAILED", 3)
        import_id = envelope["error"]["meta"]["importId"]
        self.assertIn("import %d exists and keeps running" % import_id, envelope["error"]["message"])
        printed = json.loads(result.stdout)
        self.assertEqual((printed["importId"], printed["phase"]), (import_id, "draft"))

    def test_a_watched_start_refused_at_its_first_read_prints_its_import(self):
        self.platform.inject("status", {"status": 401})
        result = self.run_tool("contacts-import", "start", "--json", "-", "--watch", stdin=BODY % "ds_long")
        envelope = self.assertFails(result, "AUTH_FAILED", 3)
        self.assertEqual(json.loads(result.stdout), {"importId": envelope["error"]["meta"]["importId"],
                                                     "phase": None, "percent": None, "counts": None,
                                                     "error": None})

    def test_a_watched_start_whose_import_is_lost_prints_it_with_the_error(self):
        self.platform.inject("status", {})
        self.platform.inject("status", {"status": 404})
        result = self.run_tool("contacts-import", "start", "--json", "-", "--watch", "--query", "importId,phase",
                               stdin=BODY % "ds_long")
        envelope = self.assertFails(result, "NOT_FOUND", 2)
        self.assertEqual(result.stdout, "%d\t\n" % envelope["error"]["meta"]["importId"])

    def test_start_watch_of_a_failing_import(self):
        result = self.run_tool("contacts-import", "start", "--json", "-", "--watch", stdin=BODY % "ds_failed")
        self.assertFails(result, "IMPORT_FAILED")
        self.assertEqual(json.loads(result.stdout)["phase"], "failed")

    def test_progress_lines_name_phase_percent_counts_and_the_next_poll(self):
        import_id = self.start("ds_complete")
        result = self.run_tool("contacts-import", "wait", str(import_id))
        lines = [line for line in result.lines if line.startswith("import %d:" % import_id)]
        self.assertEqual(len(lines), 5)
        self.assertEqual(lines[0], "import %d: draft --%%; next poll in 5s" % import_id)
        self.assertEqual(lines[1], "import %d: in_progress 0%% (0 imported, 0 skipped, 0 failed of 300 rows); "
                                   "next poll in 10s" % import_id)
        self.assertRegex(lines[2], r"in_progress \d+% \(\d+ imported, \d+ skipped, 0 failed of 300 rows\); "
                                   r"next poll in 20s")
        self.assertEqual(lines[-1], "import %d: completed 100%% (290 imported, 10 skipped, 0 failed of 300 rows)"
                         % import_id)
        stamps = [line[:21] for line in result.stderr.splitlines()]
        self.assertEqual(len(stamps), 5)
        for stamp in stamps:                        # the log form: each line begins with its UTC time
            self.assertRegex(stamp, r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ ")
        self.assertEqual(stamps[0], tool.format_time(self.clock.wall0) + " ")

    def test_quiet_silences_progress(self):
        import_id = self.start("ds_complete")
        result = self.run_tool("contacts-import", "wait", str(import_id), "--quiet")
        self.assertOk(result)
        self.assertEqual(result.stderr, "")

    def test_ctrl_c_exits_130_with_the_resume_command(self):
        import_id = self.start("ds_long")
        self.interrupt_after(2, KeyboardInterrupt)
        result = self.run_tool("contacts-import", "wait", str(import_id))
        envelope = self.assertFails(result, "INTERRUPTED", 130)
        self.assertIn("keeps running", result.stderr)
        resume = "contacts-import wait %d --account=acc_demo" % import_id
        self.assertRegex(result.lines[-2], r"^error INTERRUPTED \(exit 130\): .*Resume with: \S+ %s$" % resume)
        self.assertEqual(result.stderr.count(resume), 2, result)       # printed once, and in meta
        self.assertTrue(envelope["error"]["meta"]["resume"].endswith(resume))
        self.assertEqual(envelope["error"]["meta"]["signal"], "SIGINT")

    def test_sigterm_exits_143_with_the_resume_command(self):
        import_id = self.start("ds_long")
        self.interrupt_after(1, lambda: tool.Stopped(signal.SIGTERM))
        result = self.run_tool("contacts-import", "wait", str(import_id))
        self.assertEqual(self.assertFails(result, "TERMINATED", 143)["error"]["meta"]["signal"], "SIGTERM")
        self.assertIn("contacts-import wait %d --account=acc_demo" % import_id, result.stderr)


class ManyImportsTests(ImportTestCase):
    def test_final_statuses_in_the_given_order(self):
        ids = [self.start(d) for d in ("ds_complete", "ds_demo", "ds_partial")]
        result = self.run_tool("contacts-import", "wait", *[str(i) for i in ids])
        envelope = self.assertFails(result, "IMPORT_PARTIAL")
        self.assertEqual(envelope["error"]["meta"], {"importIds": [ids[2]]})
        docs = json.loads(result.stdout)
        self.assertEqual([d["importId"] for d in docs], ids)
        self.assertEqual([d["phase"] for d in docs], ["completed", "completed", "partial"])

    def test_the_first_id_that_did_not_complete_decides(self):
        ids = [self.start(d) for d in ("ds_partial", "ds_failed", "ds_demo")]
        envelope = self.assertFails(self.run_tool("contacts-import", "wait", *[str(i) for i in ids]),
                                    "IMPORT_PARTIAL")
        self.assertEqual(envelope["error"]["meta"], {"importIds": [ids[0]]})
        ids = [self.start(d) for d in ("ds_demo", "ds_failed", "ds_partial")]
        envelope = self.assertFails(self.run_tool("contacts-import", "wait", *[str(i) for i in ids]),
                                    "IMPORT_FAILED")
        self.assertEqual(envelope["error"]["meta"], {"importIds": [ids[1]]})

    def test_all_completed_exits_0(self):
        ids = [self.start("ds_demo") for _ in range(3)]
        docs = self.assertOk(self.run_tool("contacts-import", "wait", *[str(i) for i in ids]))
        self.assertEqual([d["phase"] for d in docs], ["completed"] * 3)

    def test_at_most_four_requests_in_flight_and_finished_ones_dropped(self):
        ids = [self.start("ds_demo") for _ in range(6)] + [self.start("ds_complete") for _ in range(4)]
        self.platform.inject("status", {"delay": 0.2}, times=10)
        docs = self.assertOk(self.run_tool("contacts-import", "wait", *[str(i) for i in ids], "--quiet"))
        self.assertEqual(len(docs), 10)
        self.assertLessEqual(self.platform.most_in_flight, 4)
        self.assertGreaterEqual(self.platform.most_in_flight, 2)
        demo_polls = [self.platform.count("GET", "/contacts-imports/%d" % i) for i in ids[:6]]
        long_polls = [self.platform.count("GET", "/contacts-imports/%d" % i) for i in ids[6:]]
        self.assertEqual(demo_polls, [3] * 6)          # completed by the third poll, then left alone
        self.assertEqual(long_polls, [5] * 4)


class SeveralIdsTests(ImportTestCase):
    """README: an id that cannot be read does not stop the others; the array is printed whenever the wait
    ends; the first id, in the order given, that did not complete decides; AUTH_FAILED ends everything."""

    def wait(self, *ids, **kwargs):
        return self.run_tool("contacts-import", "wait", *[str(i) for i in ids], **kwargs)

    def test_an_unknown_id_does_not_stop_the_others(self):
        good = self.start("ds_demo")
        result = self.wait(good, 424242)
        envelope = self.assertFails(result, "NOT_FOUND")
        self.assertEqual(envelope["error"]["meta"]["importIds"], [424242])
        docs = json.loads(result.stdout)
        self.assertEqual(docs[0]["phase"], "completed")
        self.assertEqual(docs[1], {"importId": 424242, "phase": None, "percent": None, "counts": None,
                                   "error": {"code": "NOT_FOUND", "message": docs[1]["error"]["message"]}})
        self.assertEqual(self.platform.count("GET", "/contacts-imports/424242"), 1)
        self.assertIn("import 424242:", result.log)

    def test_a_timeout_lists_every_id_still_running_and_prints_the_array(self):
        ids = [self.start("ds_long"), self.start("ds_partial"), self.start("ds_long")]
        result = self.wait(*ids)
        envelope = self.assertFails(result, "TIMEOUT")
        self.assertEqual(envelope["error"]["meta"]["importIds"], [ids[0], ids[2]])
        self.assertTrue(envelope["error"]["meta"]["resume"].endswith("wait %d %d --account=acc_demo" % (ids[0], ids[2])))
        self.assertIn("Resume with: ", result.lines[-2])
        self.assertEqual([d["phase"] for d in json.loads(result.stdout)], ["in_progress", "partial", "in_progress"])

    def test_auth_failed_ends_everything_and_prints_nothing(self):
        ids = [self.start("ds_long"), self.start("ds_long")]
        self.platform.inject("status", {}, times=2)
        self.platform.inject("status", {"status": 401})
        result = self.wait(*ids)
        self.assertFails(result, "AUTH_FAILED")
        self.assertEqual(result.stdout, "")

    def test_ctrl_c_prints_the_last_known_states(self):
        ids = [self.start("ds_long"), self.start("ds_long")]
        self.interrupt_after(1, KeyboardInterrupt)
        result = self.wait(*ids)
        envelope = self.assertFails(result, "INTERRUPTED", 130)
        self.assertEqual(envelope["error"]["meta"]["importIds"], ids)
        self.assertEqual([d["importId"] for d in json.loads(result.stdout)], ids)

    def test_a_worker_that_meets_a_bug_reports_it_once_without_a_thread_traceback(self):
        ids = [self.start("ds_demo"), self.start("ds_demo")]
        with mock.patch.object(tool, "expect", side_effect=RuntimeError("boom")):
            result = self.wait(*ids)
        envelope = self.assertFails(result, "API_ERROR", bug=True)
        self.assertIn("internal error: RuntimeError: boom", envelope["error"]["message"])
        self.assertNotIn("Traceback", result.stderr)


class MaxWaitTests(ImportTestCase):
    def test_max_wait_sets_the_limit(self):
        import_id = self.start("ds_long")                 # 3 hours in progress
        result = self.run_tool("contacts-import", "wait", str(import_id), "--max-wait", "4h")
        self.assertEqual(self.assertOk(result)["phase"], "completed")
        self.assertGreater(sum(self.clock.sleeps), 3 * 3600)
        import_id = self.start("ds_long")
        before = len(self.clock.sleeps)
        envelope = self.assertFails(self.run_tool("contacts-import", "wait", str(import_id), "--max-wait", "90s"),
                                    "TIMEOUT")
        self.assertIn("gave up after 1m30s", envelope["error"]["message"])
        self.assertEqual(self.clock.sleeps[before:], [5, 10, 20, 20, 20, 15])

    def test_start_watch_takes_max_wait(self):
        result = self.run_tool("contacts-import", "start", "--json", "-", "--watch", "--max-wait", "1m",
                               stdin=BODY % "ds_long")
        self.assertFails(result, "TIMEOUT")

    def test_bad_max_wait(self):
        for value in ("0", "8d", "soon", "-1", "1w"):
            with self.subTest(value=value):
                envelope = self.assertFails(self.run_tool("contacts-import", "wait", "1", "--max-wait", value),
                                            "INVALID_INPUT")
                self.assertIn("--max-wait", envelope["error"]["message"])
        self.assertEqual(self.platform.requests, [])

    def test_a_wait_rides_out_hostile_answers(self):
        import_id = self.start("ds_complete")
        for fault in ({"status": 503, "headers": {"Retry-After": "\u00b2"}},
                      {"redirect": "http://127.0.0.1:99999/x", "status": 302},
                      {"raw": '{"importId": %d, "phase": "completed", "percent": NaN}' % import_id},
                      {"endless": True}):
            self.platform.inject("status", fault)
        result = self.run_tool("contacts-import", "wait", str(import_id))
        self.assertEqual(self.assertOk(result)["phase"], "completed")
        self.assertEqual(result.log.count("poll failed"), 4)
        self.assertEqual(self.clock.sleeps[:4], [5, 10, 20, 20])


class TerminalWaitTests(ImportTestCase):
    def test_the_line_is_redrawn_about_once_a_second_with_a_countdown(self):
        import_id = self.start("ds_complete")
        stream = FakeTty(200)
        with mock.patch("os.get_terminal_size", terminal_size), mock.patch.object(sys, "stderr", stream):
            code = tool.main(["contacts-import", "wait", str(import_id)])
        self.assertEqual(code, 0)
        frames = stream.getvalue().split("\r\x1b[K")[1:]
        # erase-line only: erase-display at a pane's top row pushes the screen into tmux's history
        self.assertNotIn("\x1b[J", stream.getvalue())
        countdown = [int(m) for m in re.findall(r"next poll in (\d+)s", stream.getvalue())]
        self.assertEqual(countdown[:6], [5, 5, 4, 3, 2, 1])     # the poll's line, then one a second
        self.assertTrue(set(self.clock.sleeps) <= {1, tool.REDRAW_EVERY})
        self.assertGreater(len(frames), 40)
        self.assertTrue(stream.getvalue().endswith("\n"))
        self.assertNotIn("left", stream.getvalue())


class RenderingTests(ToolTestCase):
    start_sandbox = False

    def setUp(self):
        ToolTestCase.setUp(self)
        patch = mock.patch("os.get_terminal_size", terminal_size)
        patch.start()
        self.addCleanup(patch.stop)

    def tracker(self, percent, phase="in_progress", counts=True):
        tracker = tool.Tracker(7, 0)
        tracker.observe({"importId": 7, "phase": phase, "percent": 10, "counts": None, "error": None}, 0)
        tracker.observe({"importId": 7, "phase": phase, "percent": percent, "error": None,
                         "counts": {"total": 1000, "imported": 400, "skipped": 10, "failed": 0} if counts else None},
                        30)
        tracker.due = 50
        return tracker

    def draw(self, columns, *trackers, **kwargs):
        """What one redraw writes on a terminal `columns` wide, without the escapes that move the cursor."""
        stream = FakeTty(columns)
        tool.show_progress(kwargs.get("console") or tool.Console(stream=stream), list(trackers), kwargs.get("now", 30))
        return re.sub(r"^\r\x1b\[K(\x1b\[1A\x1b\[K)*", "", stream.getvalue())

    def test_a_terminal_gets_a_redrawn_bar_with_an_eta_and_a_countdown(self):
        stream = FakeTty(160)
        console = tool.Console(stream=stream)
        tool.show_progress(console, [self.tracker(40)], 30)
        text = stream.getvalue()
        self.assertEqual(text, "\r\x1b[Kimport 7 [########------------] 40% in_progress 410/1000 rows ETA 1m "
                               "| next poll in 20s")      # 30 points in 30 s, 60 points to go
        tool.show_progress(console, [self.tracker(40)], 40)
        self.assertIn("ETA 50s | next poll in 10s", stream.getvalue())     # counting down between polls
        console.line("done")
        self.assertTrue(stream.getvalue().endswith("\ndone\n"))

    def test_no_eta_before_a_rate_is_known(self):
        tracker = tool.Tracker(7, 0)
        tracker.observe({"importId": 7, "phase": "preparing", "percent": None, "counts": None, "error": None}, 0)
        tracker.due = 5
        self.assertEqual(self.draw(80, tracker, now=0), "import 7 [--------------------] --% preparing | next poll in 5s")

    def test_an_eta_out_of_sight_is_left_out(self):
        tracker = tool.Tracker(7, 0)
        for now, percent in ((0, 0), (20, 1e-308)):      # both valid; the rate makes the end infinitely far
            tracker.observe({"importId": 7, "phase": "in_progress", "percent": percent, "counts": None,
                             "error": None}, now)
        tracker.due = 40
        self.assertEqual(self.draw(80, tracker), "import 7 [--------------------] 0% in_progress | next poll in 10s")

    def test_the_bar_shrinks_first_then_the_countdown_the_eta_and_the_rows_go(self):
        expected = {   # columns: the line drawn (an oracle written out, not computed)
            80: "import 7 [####--------] 40% in_progress 410/1000 rows ETA 1m | next poll in 20s",
            72: "import 7 [########------------] 40% in_progress 410/1000 rows ETA 1m",
            66: "import 7 [######-----------] 40% in_progress 410/1000 rows ETA 1m",
            60: "import 7 [####-------] 40% in_progress 410/1000 rows ETA 1m",
            46: "import 7 [#######-----------] 40% in_progress",
            38: "import 7 [####------] 40% in_progress",
            20: "import 7 40% in_pro",
            5: "impo",
        }
        for columns, line in expected.items():
            with self.subTest(columns=columns):
                self.assertEqual(self.draw(columns, self.tracker(40)), line)
                self.assertLessEqual(len(line), columns - 1)

    def test_server_text_is_shown_in_ascii_so_that_a_character_is_a_column(self):
        for phase in ("\u6f22\u5b57" * 40, "e\u0301" * 50, "\x1b]0;TITLE\x07\x1b[2Jx\n"):
            with self.subTest(phase=phase):
                for columns in (30, 80):
                    shown = self.draw(columns, self.tracker(40, phase=phase))
                    self.assertLessEqual(len(shown), columns - 1)
                    self.assertTrue(all(" " <= ch <= "~" for ch in shown), shown)

    def test_a_narrower_terminal_clears_the_rows_the_old_line_now_covers(self):
        stream = FakeTty(200)
        console = tool.Console(stream=stream)
        tool.show_progress(console, [self.tracker(40)], 30)
        drawn = ("import 7 [########------------] 40% in_progress 410/1000 rows ETA 1m "
                 "| next poll in 20s")
        self.assertEqual(stream.getvalue(), "\r\x1b[K" + drawn)
        self.assertEqual(len(drawn), 87)
        stream.columns = 40             # the window shrinks: the 87 columns now cover 3 rows
        stream.seek(0)
        stream.truncate()
        tool.show_progress(console, [self.tracker(40)], 31)
        # the cursor is on the third row: that row erased, then the two above it (erase-line), and
        # never the rest of the screen (erase-display)
        self.assertTrue(stream.getvalue().startswith("\r\x1b[K\x1b[1A\x1b[K\x1b[1A\x1b[Kimport 7"),
                        stream.getvalue())
        self.assertNotIn("\x1b[J", stream.getvalue())

    def test_several_imports_get_one_summary_line(self):
        trackers = [self.tracker(40), self.tracker(100, phase="completed"), tool.Tracker(9, 0)]
        trackers[0].due = 35
        expected = {   # columns: the line drawn, one column short of the width at most
            200: "3 imports: 1 in_progress, 1 completed, 1 waiting | next poll in 0s",
            40: "3 imports: 1 in_progress, 1 completed, ",
        }
        for columns, line in expected.items():
            with self.subTest(columns=columns):
                self.assertEqual(self.draw(columns, *trackers), line)

    def test_a_terminal_that_does_not_say_its_width(self):
        self.assertEqual(tool.Console(stream=FakeTty(0)).width(), 80)     # an unsized pseudo-terminal says 0
        os.environ["COLUMNS"] = "50"
        self.assertEqual(tool.Console(stream=FakeTty(0)).width(), 50)
        self.assertEqual(tool.Console(stream=FakeTty(120)).width(), 120)  # the terminal's own word wins

    def test_server_text_on_a_terminal_is_sanitised_and_redacted(self):
        token = "lbs_odd,token;x"
        tool.remember_secret(token)
        tracker = self.tracker(40, phase="\x1b]0;TITLE\x07\x1b[2Jx\n{\"error\": 1} " + token)
        shown = self.draw(200, tracker)
        self.assertNotIn("\x1b", shown)
        self.assertNotIn("\x07", shown)
        self.assertNotIn("\n", shown)
        self.assertNotIn("odd,token", shown)
        self.assertIn("(redacted)", shown)

    def test_no_color_is_respected(self):
        done = self.tracker(100, phase="failed")
        self.assertIn("\x1b[31m", self.draw(80, done))
        os.environ["NO_COLOR"] = "1"
        self.assertNotIn("\x1b[3", self.draw(80, done))
        os.environ["NO_COLOR"] = ""                         # no-color.org: set and not empty
        self.assertIn("\x1b[31m", self.draw(80, done))
        os.environ["TERM"] = "dumb"
        self.assertFalse(tool.Console(stream=FakeTty()).tty)

    def test_a_log_gets_plain_dated_lines(self):
        stream = io.StringIO()
        tracker = self.tracker(40)
        tool.show_progress(tool.Console(stream=stream), [tracker], 30, tracker)
        self.assertEqual(stream.getvalue(), tool.format_time(self.clock.wall()) + " import 7: in_progress 40% "
                                            "(400 imported, 10 skipped, 0 failed of 1000 rows); next poll in 20s\n")

    def test_the_poll_delays(self):
        delays = tool.poll_delays()
        self.assertEqual([next(delays) for _ in range(6)], [5, 10, 20, 20, 20, 20])


class FakeTty(io.StringIO):
    """A terminal `columns` wide: os.get_terminal_size() is asked about its descriptor."""

    def __init__(self, columns=80):
        io.StringIO.__init__(self)
        self.columns = columns

    def isatty(self):
        return True

    def fileno(self):
        return 1000 + self.columns


class AsciiTty(io.TextIOWrapper):
    def __init__(self, raw):
        io.TextIOWrapper.__init__(self, raw, encoding="ascii", errors="backslashreplace")

    def isatty(self):
        return True

    def fileno(self):
        return 1040                             # 40 columns (terminal_size below)


def terminal_size(fd):
    if fd < 1000:
        raise OSError("not a terminal")
    return os.terminal_size((fd - 1000, 24))

"""README.md against what it describes (issue 20 section 5, issue 22 point 8).

- Its size: at most 25 KB, so that a newcomer reads it in ten minutes.
- Its command lines against the tool's own --help, run as a process at each level: every command a
  README line runs (`landbase_import.py WORDS ... --options`) is a command of --help, and every
  option it uses is listed in that command's --help; every command of the top-level --help appears
  in a README command line.
- Its sandbox block: the export lines are exactly what `make sandbox` prints (tests/sandbox.py run
  as a process, on the Makefile's port).
- Its figures: each names its date and the make target that prints it again.
"""

import os
import re
import subprocess
import sys
import unittest

from support import HERE, ROOT, run_cli, subprocess_env

README = os.path.join(ROOT, "README.md")
MAKEFILE = os.path.join(ROOT, "Makefile")
MOST_BYTES = 25000
# a word of a command path (auth, contacts-import); what follows the words is arguments and options
WORD = re.compile(r"[a-z][a-z0-9-]*\Z")
OPTION = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")
# where a command line ends inside a unit: a shell operator, a quote, a comment
END = re.compile(r"[|;&<>)\"']|\s#")
SUBSTITUTION = re.compile(r"\$\([^()]*\)")
INLINE = re.compile(r"`([^`]+)`")
COMMANDS_HEADING = re.compile(r"commands\b.*:\s*\Z")


def readme():
    with open(README, encoding="utf-8") as handle:
        return handle.read()


def units(text):
    """[(line number, text)]: each line of a fenced block (a backslash continuation joined), and
    each inline code span of the prose (a span that wraps onto the next line joined; its number is
    its paragraph's first line)."""
    found = []
    fenced = False
    paragraph = []
    for number, line in enumerate(text.split("\n"), 1):
        if line.startswith("```"):
            fenced = not fenced
            found.extend(spans(paragraph))
            paragraph = []
        elif fenced:
            found.append((number, line))
        elif line.strip():
            paragraph.append((number, line))
        else:
            found.extend(spans(paragraph))
            paragraph = []
    found.extend(spans(paragraph))
    joined = []
    for number, line in found:
        if joined and joined[-1][1].endswith("\\"):
            joined[-1] = (joined[-1][0], joined[-1][1][:-1] + " " + line)
        else:
            joined.append((number, line))
    return joined


def spans(paragraph):
    """[(line number, code)] of the inline code spans of a paragraph's lines."""
    if not paragraph:
        return []
    text = " ".join(line for _, line in paragraph)
    return [(paragraph[0][0], match.group(1)) for match in INLINE.finditer(text)]


def command_lines(text):
    """[(line number, [tokens after landbase_import.py])] of every command line in the README's
    code; a $(...) inside one is one argument."""
    found = []
    for number, unit in units(text):
        unit = SUBSTITUTION.sub("SUBSTITUTED", unit)
        for match in re.finditer(r"landbase_import\.py", unit):
            rest = unit[match.end():]
            if rest[:1] not in ("", " "):
                continue                 # landbase_import.py's, a path into it: the file
            found.append((number, END.split(rest, 1)[0].split()))
    return found


def leading_words(tokens):
    """The words that begin a command line, up to its first argument or option."""
    words = []
    for token in tokens:
        if not WORD.match(token):
            break
        words.append(token)
    return tuple(words)


def usage_names(words, text):
    """True when a help text's usage line is this level's: usage: landbase_import.py WORDS ..."""
    usage = "usage: landbase_import.py" + "".join(" " + word for word in words)
    first = text.lstrip("\n").split("\n", 1)[0]
    return first == usage or first.startswith(usage + " ")


def listed_commands(text):
    """The commands the top-level --help lists: in its "commands" section, the lowercase words that
    begin each line at the section's indent, before two spaces and the description (auth login
    [--device ...]   log in -> auth login)."""
    lines = text.split("\n")
    start = next((i for i, line in enumerate(lines) if COMMANDS_HEADING.match(line)), None)
    if start is None:
        return []
    section = []
    for line in lines[start + 1:]:
        if line.strip() and not line.startswith(" "):
            break                        # the next section's heading
        if line.strip():
            section.append(line)
    if not section:
        return []
    indent = min(len(line) - len(line.lstrip()) for line in section)
    commands = []
    for line in section:
        if len(line) - len(line.lstrip()) != indent:
            continue                     # an entry's description or example
        words = leading_words(re.split(r"\s{2,}", line.strip())[0].split())  # before its description
        if words:
            commands.append(words)
    return commands


class HelpLevels(object):
    """The tool's --help at each level, run as a process once each: (exit, stdout)."""

    def __init__(self):
        self.texts = {}

    def text(self, words):
        if words not in self.texts:
            result = run_cli(list(words) + ["--help"], subprocess_env())
            self.texts[words] = (result.code, result.stdout)
        return self.texts[words]


class ReadmeSizeTests(unittest.TestCase):
    def test_the_readme_is_at_most_25_kb(self):
        size = os.path.getsize(README)
        said = ("README.md is %d bytes: move a reference out of it (to --help, tests/PROTOCOL.md, "
                "or what make bench and make reliability print)" % size)
        self.assertLessEqual(size, MOST_BYTES, said)


class ReadmeAgainstHelpTests(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.help = HelpLevels()
        cls.top_code, cls.top = cls.help.text(())
        cls.commands = listed_commands(cls.top)
        cls.levels = set()               # each command and each group it belongs to
        for command in cls.commands:
            for size in range(1, len(command) + 1):
                cls.levels.add(command[:size])
        cls.lines = command_lines(readme())

    def test_the_top_level_help_lists_the_commands_each_with_a_help_of_its_own(self):
        self.assertEqual(self.top_code, 0, self.top)
        said = ("the top-level --help lists no commands under a 'commands' heading (this test "
                "reads them there):\n" + self.top)
        self.assertGreaterEqual(len(self.commands), 5, said)
        for command in self.commands:
            code, text = self.help.text(command)
            shown = " ".join(command)
            self.assertEqual(code, 0, "%s --help:\n%s" % (shown, text))
            self.assertTrue(usage_names(command, text),
                            "'%s --help' is not that command's help:\n%s" % (shown, text))

    def test_every_command_and_option_the_readme_runs_is_in_the_help(self):
        self.assertGreaterEqual(len(self.lines), 20, "README.md has hardly any command lines")
        for number, tokens in self.lines:
            words = leading_words(tokens)
            level = ()
            for size in range(len(words), 0, -1):
                if words[:size] in self.levels:
                    level = words[:size]
                    break
            shown = "README.md line %d: landbase_import.py %s" % (number, " ".join(tokens))
            known = ", ".join(" ".join(command) for command in self.commands)
            if words and not level:
                self.fail("%s: '%s' is no command of --help (%s)" % (shown, words[0], known))
            if level not in self.commands and len(words) > len(level):
                self.fail("%s: '%s' has no command '%s' in --help"
                          % (shown, " ".join(level), words[len(level)]))
            _, text = self.help.text(level)
            listed = set(OPTION.findall(text))
            asked = " ".join(("landbase_import.py",) + level + ("--help",))
            for option in OPTION.findall(" ".join(tokens)):
                said = "%s: %s is not listed by '%s'" % (shown, option, asked)
                self.assertIn(option, listed, said)

    def test_every_command_of_the_help_is_in_a_readme_command_line(self):
        self.assertTrue(self.commands, "the top-level --help lists no commands:\n" + self.top)
        used = set()
        for _, tokens in self.lines:
            words = leading_words(tokens)
            for size in range(1, len(words) + 1):
                used.add(words[:size])
        missing = [" ".join(command) for command in self.commands if command not in used]
        self.assertEqual(missing, [], "commands of --help that no README command line runs")


class SandboxBlockTests(unittest.TestCase):
    def test_the_readme_shows_every_export_make_sandbox_prints(self):
        with open(MAKEFILE, encoding="utf-8") as handle:
            port = re.search(r"^SANDBOX_PORT \?= (\d+)$", handle.read(), re.M)
        self.assertIsNotNone(port, "the Makefile sets no SANDBOX_PORT")
        made = "http://127.0.0.1:" + port.group(1)
        argv = [sys.executable, os.path.join(HERE, "sandbox.py"), "--port", "0", "--quiet"]
        process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   universal_newlines=True)
        try:
            url = process.stdout.readline().strip()
        finally:
            process.terminate()          # it prints its exports, then stops on SIGTERM
        _, err = process.communicate(timeout=30)
        self.assertRegex(url, r"\Ahttp://127\.0\.0\.1:\d+\Z", err)
        exports = [line for line in err.split("\n") if line.startswith("export ")]
        printed = [line.replace(url, made) for line in exports]
        # the API and web URLs, NO_PROXY, the config directory
        self.assertGreaterEqual(len(printed), 3, err)
        lines = readme().split("\n")
        start = [i for i, line in enumerate(lines) if line.startswith("make sandbox")]
        self.assertEqual(len(start), 1, "README.md needs one block beginning with `make sandbox`")
        shown = []
        for line in lines[start[0] + 1:]:
            if not line.startswith("export "):
                break
            shown.append(line)
        self.assertEqual(shown, printed, "the README's sandbox block is not what it prints")
        self.assertIn(made, lines[start[0]], "the README's `make sandbox` line names another URL")


class FiguresTests(unittest.TestCase):
    def test_each_figure_has_its_date_and_the_command_that_prints_it(self):
        match = re.search(r"^## Figures\n(.*?)(?=^## |\Z)", readme(), re.M | re.S)
        self.assertIsNotNone(match, "README.md has no '## Figures' section")
        figures = re.findall(r"^- (.*?)(?=^- |^\n|\Z)", match.group(1), re.M | re.S)
        self.assertGreaterEqual(len(figures), 3, match.group(1))
        for figure in figures:
            self.assertRegex(figure, r"`make [a-z-]+`", "a figure without the command printing it")
            self.assertRegex(figure, r"\b20\d\d-\d\d-\d\d\b", "a figure without its date")


if __name__ == "__main__":
    unittest.main()


def paragraph_of(text, index):
    """The paragraph (text between blank lines, or a fenced block's line) that holds text[index]."""
    start = text.rfind("\n\n", 0, index) + 2
    end = text.find("\n\n", index)
    if end < 0:
        end = len(text)
    return text[start:end]


class OperatorsSecondWeekTests(unittest.TestCase):
    """What issue 22 asks the README to say: each of these failed on the README at 3d532e5."""

    def setUp(self):
        self.text = readme()

    def test_point_14_placeholders_are_said_to_be_placeholders_where_they_first_appear(self):
        for placeholder in ("build-host-3", "acc_abc123", "ds_def456"):
            with self.subTest(placeholder=placeholder):
                first = self.text.index(placeholder)
                self.assertIn("placeholder", paragraph_of(self.text, first))

    def test_point_3_dry_run_says_what_it_checks_not_everything(self):
        self.assertNotIn("checks everything", self.text)
        self.assertRegex(self.text, r"--dry-run` does not check everything")
        self.assertIn("the platform checks those only at start", self.text)

    def test_point_6_the_proxy_goes_in_the_profile_as_well_as_the_crontab(self):
        section = self.text[self.text.index("## Behind a proxy"):]
        self.assertIn("~/.profile", section)
        self.assertIn("export HTTPS_PROXY=", section)
        self.assertIn("SSL_CERT_FILE", section)

    def test_point_7_mail_that_reaches_a_person_on_debian(self):
        self.assertIn("MAILTO=importer", self.text)
        self.assertIn("dpkg-reconfigure exim4-config", self.text)
        self.assertIn("mail to an outside address bounces", self.text)

    def test_point_2_the_morning_table_names_the_reruns_deadline(self):
        self.assertIn("the UTC time until which that command is safe: 24 hours after the night's "
                      "first attempt", " ".join(self.text.split()))

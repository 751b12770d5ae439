#!/usr/bin/env python3
"""`make lint`: vermin (3.6 floor), py_compile on every interpreter, a standard-library-only check, and
the plain statements STYLE.md asks of the tool.

    lint.py BUILD_DIR

vermin (pinned: VERMIN) is installed from PyPI into a throwaway virtual environment under BUILD_DIR;
the tool stays dependency-free.
"""

import ast
import glob
import importlib.util
import os
import re
import subprocess
import sys
import sysconfig

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
TOOL = os.path.join(ROOT, "landbase_import.py")
VERMIN = "vermin==1.9.2"
sys.path.insert(0, HERE)
from all_pythons import interpreters  # noqa: E402


def vermin(build):
    venv = os.path.join(build, "lint-venv")
    binary = os.path.join(venv, "bin", "vermin")
    stamp = os.path.join(venv, VERMIN)
    if not os.path.exists(stamp):
        subprocess.check_call([sys.executable, "-m", "venv", venv])
        subprocess.check_call([os.path.join(venv, "bin", "python"), "-m", "pip", "install", "--quiet",
                               "--disable-pip-version-check", VERMIN])
        open(stamp, "w").close()
    files = [TOOL] + sorted(glob.glob(os.path.join(HERE, "*.py")))
    code = subprocess.call([binary, "-t=3.6-", "--violations", "--eval-annotations", "--no-tips"] + files)
    print("lint: vermin -t=3.6- on %d files: %s" % (len(files), "ok" if code == 0 else "VIOLATIONS"))
    return code == 0


def compile_everywhere():
    files = [TOOL] + sorted(glob.glob(os.path.join(HERE, "*.py")))
    ok = True
    for version, path in sorted(interpreters().items()):
        script = ("import os, py_compile, sys, tempfile\n"
                  "with tempfile.TemporaryDirectory() as out:\n"
                  "    for f in sys.argv[1:]:\n"
                  "        py_compile.compile(f, cfile=os.path.join(out, 'x.pyc'), doraise=True)\n")
        code = subprocess.call([path, "-c", script] + files)
        print("lint: compile on %d.%d: %s" % (version + ("ok" if code == 0 else "FAILED",)))
        ok = ok and code == 0
    return ok


def imported_modules(path):
    with open(path, encoding="utf-8") as handle:
        tree = ast.parse(handle.read(), path)
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


WINDOWS_ONLY = ("msvcrt",)        # the standard library's, on Windows (the lock of platform.json there)


def is_stdlib(name):
    if name in sys.builtin_module_names or name in WINDOWS_ONLY:
        return True
    spec = importlib.util.find_spec(name)
    if spec is None or spec.origin is None:
        return False
    if spec.origin in ("built-in", "frozen"):
        return True
    stdlib = os.path.realpath(sysconfig.get_paths()["stdlib"])
    origin = os.path.realpath(spec.origin)
    return origin.startswith(stdlib + os.sep) and "site-packages" not in origin


def stdlib_only():
    names = imported_modules(TOOL)
    outside = sorted(name for name in names if not is_stdlib(name))
    print("lint: landbase_import.py imports %d modules, %s" % (
        len(names), "all from the standard library" if not outside else "NOT STANDARD: %s" % ", ".join(outside)))
    return not outside


MAX_COLUMNS = 99
MAX_FUNCTION_LINES = 50
MAX_BACKSLASHES = 3


def style_problems(path):
    """What the tool must not hold (issue 20): a conditional expression inside another, a statement with
    two, a lambda bound to a name, a function over 50 lines, a line over 99 columns, a command dispatched
    through globals(), more than 3 lines that end in a backslash (in a string too), two spaces between
    words in a string. One message each."""
    with open(path, encoding="utf-8") as handle:
        source = handle.read()
    tree = ast.parse(source, path)
    problems = []
    for node in ast.walk(tree):
        line = getattr(node, "lineno", 0)
        if isinstance(node, ast.IfExp):
            for inner in ast.walk(node):
                if inner is not node and isinstance(inner, ast.IfExp):
                    problems.append("line %d: a conditional expression inside another" % line)
        if isinstance(node, ast.stmt) and not hasattr(node, "body"):
            count = sum(1 for inner in ast.walk(node) if isinstance(inner, ast.IfExp))
            if count > 1:
                problems.append("line %d: a statement with %d conditional expressions" % (line, count))
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Lambda):
            problems.append("line %d: a lambda bound to a name" % line)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            length = node.end_lineno - node.lineno + 1
            if length > MAX_FUNCTION_LINES:
                problems.append("line %d: %s is %d lines long" % (line, node.name, length))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "globals":
            problems.append("line %d: globals() (a dispatch a reader cannot follow)" % line)
        # two pieces of a message joined with a space on each side (a second attack found five)
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            if re.search(r"[a-z]  [a-z]", node.value):
                problems.append("line %d: two spaces between words" % line)
    lines = source.split("\n")
    for number, text in enumerate(lines, 1):
        if len(text) > MAX_COLUMNS:
            problems.append("line %d: %d columns" % (number, len(text)))
    # a string's too: the help texts begin on the line of their quotes rather than after a \
    backslashes = [number for number, text in enumerate(lines, 1) if text.rstrip().endswith("\\")]
    if len(backslashes) > MAX_BACKSLASHES:
        problems.append("%d backslash continuations (lines %s), at most %d"
                        % (len(backslashes), ", ".join(map(str, backslashes)), MAX_BACKSLASHES))
    return problems


def plain_statements():
    problems = style_problems(TOOL)
    print("lint: landbase_import.py's statements: %s" % ("plain" if not problems else "NOT PLAIN"))
    for problem in problems:
        print("  " + problem)
    return not problems


def main(argv):
    build = os.path.abspath(argv[1] if len(argv) > 1 else os.path.join(ROOT, "build"))
    results = [stdlib_only(), plain_statements(), compile_everywhere(), vermin(build)]
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))

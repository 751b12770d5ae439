#!/usr/bin/env python3
"""`make lint`: vermin (3.6 floor), py_compile on every interpreter, and a standard-library-only check.

    lint.py BUILD_DIR

vermin (pinned: VERMIN) is installed from PyPI into a throwaway virtual environment under BUILD_DIR;
the tool stays dependency-free.
"""

import ast
import glob
import importlib.util
import os
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


def main(argv):
    build = os.path.abspath(argv[1] if len(argv) > 1 else os.path.join(ROOT, "build"))
    results = [stdlib_only(), compile_everywhere(), vermin(build)]
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))

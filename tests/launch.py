"""Run a Python file from its compiled code, kept for the run of the suite: as `python3 FILE ARGS...` runs it.

    python3 -S launch.py FILE ARGS...     (support.tool_command() builds it for landbase_import.py)

The suite starts the tool a few hundred times. Run as users run it, each start compiles its ~130 KB
again (PYTHONDONTWRITEBYTECODE is set, and a script's bytecode is never cached anyway): about 60 ms
of CPU a start. Started here, it is compiled once per content of the file and kept in the directory
$LBI_TEST_CACHE (tests/run.py makes one for the suite; support.py one for a module run on its own;
without it, nothing is kept). The code then runs as the file would: as __main__, with the file's
__file__ and sys.argv[0], the file's directory as sys.path[0], and this process's streams, signals
and exit code untouched (-S leaves out only what site does: see test_harness's LauncherTests).
A fixed set of tests still runs the file itself (support.tool_command).
"""

import marshal
import os
import sys
import zlib


def code_of(path):
    """The code object of the file at `path`, compiled once for this path, this content (a file rewritten
    in place within one tick of the clock has the same mtime) and this interpreter."""
    with open(path, "rb") as handle:
        source = handle.read()
    cache = os.environ.get("LBI_TEST_CACHE")
    if cache:
        kept = os.path.join(cache, "%s-%08x-%x-%s.code" % (
            os.path.basename(path), zlib.crc32(source, zlib.crc32(path.encode("utf-8", "surrogateescape"))),
            len(source), sys.implementation.cache_tag))
        try:
            with open(kept, "rb") as handle:
                return marshal.load(handle)
        except (OSError, EOFError, ValueError, TypeError):
            pass
    code = compile(source, path, "exec", dont_inherit=True)
    if cache:
        temporary = "%s.%d.tmp" % (kept, os.getpid())
        try:
            with open(temporary, "wb") as handle:
                marshal.dump(code, handle)
            os.replace(temporary, kept)         # whole or not at all, for the runs reading it at once
        except OSError:
            pass                                # the suite is over and its cache gone: compiled all the same
    return code


def load(name, path):
    """The file at `path` as the module `name`, from its kept code: what import does, less the compiling."""
    import importlib.util
    module = importlib.util.module_from_spec(importlib.util.spec_from_file_location(name, path))
    exec(code_of(path), module.__dict__)
    return module


def run_as_main(path):
    """Run the file at `path` as __main__, as `python3 path` does (sys.argv[1:] are its arguments)."""
    code = code_of(path)
    main = type(sys)("__main__")
    from importlib.machinery import SourceFileLoader
    main.__dict__.update(__file__=path, __cached__=None, __loader__=SourceFileLoader("__main__", path),
                         __builtins__=sys.modules["builtins"], __annotations__={})
    sys.argv[0] = path
    sys.path[0] = os.path.dirname(os.path.realpath(path))
    sys.modules["__main__"] = main
    exec(code, main.__dict__)


if __name__ == "__main__":
    del sys.argv[0]
    run_as_main(sys.argv[0])

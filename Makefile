# landbase-import: one file, standard library only. The targets need nothing but python3
# (lint builds a throwaway virtual environment for vermin under $(BUILD)).
PYTHON ?= python3
PREFIX ?= /usr/local
DESTDIR ?=
BUILD ?= build
SANDBOX_PORT ?= 8765

.PHONY: demo sandbox test test-all mutants test-browser test-proxy lint bench reliability install clean

demo:
	$(PYTHON) tests/demo.py

# the sandbox platform in the foreground, for trying the tool by hand (python3 tests/sandbox.py --help);
# it prints the environment that points the tool at it. SANDBOX_ARGS="--speed 10" and the like are passed on.
sandbox:
	$(PYTHON) tests/sandbox.py --port $(SANDBOX_PORT) $(SANDBOX_ARGS)

test:
	$(PYTHON) tests/run.py

test-all:
	$(PYTHON) tests/all_pythons.py

# hand-written mutations of the tool, each breaking one promise of the README: each must fail the test modules
# named beside it (tests/mutants.py --list); a survivor is a promise the suite does not guard
mutants:
	$(PYTHON) tests/mutants.py

test-browser:
	$(PYTHON) tests/chromium_login.py

test-proxy:
	$(PYTHON) tests/real_proxy.py

# the wait's redraw in a real tmux with its defaults, at 40 and 200 columns (about 35 s): the
# pane's history must not grow while it waits; skips with a message where tmux is missing
.PHONY: test-tmux
test-tmux:
	$(PYTHON) tests/tmux_check.py

lint:
	$(PYTHON) tests/lint.py $(BUILD)

bench:
	$(PYTHON) tests/bench.py

reliability:
	$(PYTHON) tests/reliability.py

install:
	install -d $(DESTDIR)$(PREFIX)/bin
	install -m 0755 landbase_import.py $(DESTDIR)$(PREFIX)/bin/landbase_import.py

clean:
	rm -rf $(BUILD) __pycache__ tests/__pycache__

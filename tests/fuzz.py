"""A seeded fuzzer for main(): generated argv lists and `start --json -` bodies, with an oracle for the bodies.

generate(seed) yields cases (kind, argv, stdin bytes, expected) where expected is
"invalid" when the README says the input is invalid (INVALID_INPUT, nothing sent),
"valid" when it says the input is fine (a request must be sent), or None when
only the universal properties apply. test_fuzz.py runs every case.
"""

import json
import math
import random
import re

BODIES, ARGVS, IDS = 1300, 600, 300          # cases of each kind: 2,200 in all
MAX_IMPORT_ID = 2 ** 63 - 1

WORDS = ["auth", "login", "status", "logout", "account", "list", "set", "contacts-import", "start", "wait",
         "--json", "-", "--watch", "--device", "--with-token", "--no-browser", "--account=acc_team",
         "--account", "acc_demo", "--account=acc/../x", "--timeout=0", "--timeout=5", "--timeout", "nan",
         "--verbose", "--quiet", "--min-valid=2d", "--min-valid=soon", "--bogus", "-x", "7", "0", "-1",
         "7/../8", "..", "7 8", "\u0663", "\u096d", "", " ", "acc_other", "a" * 300, "\x07", "--",
         "--json=/nonexistent", "--json={\"datasetId\": 1}", "--help", "--version", "\udcff"]
ID_PIECES = ["7", "0", "00", "-7", "+7", "7.0", "1e3", "0x1f", "7/", "/7", "..", "../8", "7 ", " 7", "7\n",
             "\u0663", "\u096d\u096d", "\uff17", "9" * 19, "9" * 20, "9223372036854775807", "9223372036854775808",
             "", "abc", "7a", "\x00", "\u200b7", "42", "12345"]
KEYS = ["datasetId", "tagName", "importId", "datasetid", "DatasetId", "dataset_id", "tag_name", "tagname",
        "importID", "import_id", "extra", "", " ", "datasetId ", "\u0000", "__proto__"]
STRINGS = ["ds_demo", "ds_other", "ds x", "ds\tx", "ds\nx", "ds\u0000x", "ds\u007fx", "ds\u200bx", "ds\u00a0x",
           "ds\u2028x", "d\u00e9mo", "\u6570\u636e", "", " ", "   ", "Q2 outreach", "x" * 100, "x" * 101,
           "d" * 200, "d" * 201, "\ud800", "tag\u0007", "\U0001f600", "7", "null", "ds/../x"]


def value_of(rng):
    choice = rng.randrange(14)
    return [None, True, False, 0, 7, -7, 7.0, 1.5, 2 ** 63, 2 ** 63 - 1, "7", [], {}, [7]][choice]


def mutate_document(rng, doc):
    action = rng.randrange(6)
    if action == 0 and doc:
        doc[rng.choice(list(doc))] = value_of(rng)
    elif action == 1:
        doc[rng.choice(KEYS)] = rng.choice(STRINGS + [7, None])
    elif action == 2 and doc:
        del doc[rng.choice(list(doc))]
    elif action == 3:
        doc[rng.choice(["datasetId", "tagName"])] = rng.choice(STRINGS)
    elif action == 4:
        doc["importId"] = rng.choice([1, 7, 0, -1, True, 7.0, "7", None, 2 ** 63 - 1, 2 ** 63, 424242])
    else:
        key = rng.choice(["datasetId", "tagName"])
        doc[key] = rng.choice(STRINGS) + rng.choice(STRINGS)
    return doc


def mutate_bytes(rng, raw):
    action = rng.randrange(12)
    if action == 0 and raw:
        return raw[:rng.randrange(len(raw))]
    if action == 1:
        spot = rng.randrange(len(raw) + 1)
        return raw[:spot] + bytes([rng.randrange(256)]) + raw[spot:]
    if action == 2:
        return b"\xef\xbb\xbf" + raw
    if action == 3:
        return raw.decode("utf-8", "replace").encode("utf-16")
    if action == 4:
        return raw.replace(b"{", b'{"datasetId": "ds_demo", ', 1)
    if action == 5:
        return raw.replace(b"}", b', "importId": %s}' % rng.choice([b"NaN", b"Infinity", b"-Infinity", b"1e400"]), 1)
    if action == 6:
        depth = rng.choice([10, 1000, 100000])
        return b"[" * depth + raw + b"]" * depth
    if action == 7:
        return raw + rng.choice([b"x", b"}", b" ", b"\n\n", b"\x00"])
    if action == 8:
        return raw.replace(b'"', b'"\xff', 1)
    if action == 9:
        return raw.replace(b"}", b', "pad": "' + b"x" * (1024 * 1024) + b'"}', 1)
    if action == 10:
        return rng.choice([b"", b" ", b"null", b"[]", b"7", b'"x"', b"{}", b"{", b"\xff\xfe"])
    return raw


def body_cases(rng, count):
    for _ in range(count):
        doc = {"datasetId": "ds_demo", "tagName": "fuzz"}
        for _ in range(rng.randrange(0, 4)):
            doc = mutate_document(rng, doc)
        try:
            raw = json.dumps(doc, ensure_ascii=rng.random() < 0.5).encode("utf-8", "surrogatepass")
        except ValueError:
            raw = b"{}"
        if rng.random() < 0.45:
            raw = mutate_bytes(rng, raw)
        yield "body", ["contacts-import", "start", "--json", "-"], raw, "valid" if body_is_valid(raw) else "invalid"


def argv_cases(rng, count):
    bases = [["auth", "status"], ["auth", "logout"], ["account", "list"], ["account", "set", "acc_team"],
             ["contacts-import", "status", "7"], ["contacts-import", "wait", "7"],
             ["contacts-import", "start", "--json", "-"], ["auth", "login", "--with-token"], []]
    for _ in range(count):
        argv = list(rng.choice(bases))
        for _ in range(rng.randrange(1, 4)):
            action = rng.randrange(4)
            if action == 0 and argv:
                argv[rng.randrange(len(argv))] = rng.choice(WORDS)
            elif action == 1:
                argv.insert(rng.randrange(len(argv) + 1), rng.choice(WORDS))
            elif action == 2 and argv:
                del argv[rng.randrange(len(argv))]
            elif len(argv) > 1:
                i, j = rng.randrange(len(argv)), rng.randrange(len(argv))
                argv[i], argv[j] = argv[j], argv[i]
        stdin = rng.choice([b"", b'{"datasetId": "ds_demo", "tagName": "x"}', b"lbs_nope\n", b"\xff"])
        yield "argv", argv, stdin, None


def id_cases(rng, count):
    for _ in range(count):
        pieces = [rng.choice(ID_PIECES) + (rng.choice(ID_PIECES) if rng.random() < 0.3 else "")
                  for _ in range(rng.choice([1, 1, 2, 3]))]
        command = "status" if len(pieces) == 1 and rng.random() < 0.5 else "wait"
        valid = all(id_is_valid(p) for p in pieces) and len(set(int(p) for p in pieces)) == len(pieces)
        yield "id", ["contacts-import", command] + pieces, b"", "valid" if valid else "invalid"


def generate(seed=20261128):
    rng = random.Random(seed)
    cases = list(body_cases(rng, BODIES)) + list(argv_cases(rng, ARGVS)) + list(id_cases(rng, IDS))
    return cases


# ---- the oracle: the README's rules for the body of start, written apart from the tool's own code

def is_bare_level(argv):
    """A command line that stops at a level (no command, or a group without its action) prints help."""
    words = [word for word in argv if not word.startswith("-")]
    return words in ([], ["auth"], ["account"], ["contacts-import"]) and "--" not in argv

def id_is_valid(text):
    return re.fullmatch(r"[0-9]+", text, re.ASCII) is not None and 0 < int(text) <= MAX_IMPORT_ID


class _Refused(Exception):
    pass


def _pairs(pairs):
    keys = [k for k, _ in pairs]
    if len(keys) != len(set(keys)):
        raise _Refused()
    return dict(pairs)


def _constant(name):
    raise _Refused()


def _float(text):
    value = float(text)
    if math.isinf(value):
        raise _Refused()
    return value


# datasetId holds "no whitespace or control characters" (the README): the ASCII ones by their
# codes, and each other character the generator puts in one (STRINGS) said here to be refused or
# allowed, rather than judged by Unicode categories, which is the tool's own way of deciding
REFUSED_IN_ID = {"\u00a0": "no-break space", "\u200b": "zero-width space",
                 "\u2028": "line separator", "\ud800": "a lone surrogate"}
ALLOWED_IN_ID = {"\u00e9": "e with an acute accent", "\u6570": "a CJK ideograph",
                 "\u636e": "a CJK ideograph", "\U0001f600": "an emoji"}


def _clean_id(text):
    for ch in text:
        if ch <= " " or ch == "\x7f" or ch in REFUSED_IN_ID:     # an ASCII control or the space
            return False
        if ch > "~" and ch not in ALLOWED_IN_ID:
            raise AssertionError("the oracle does not know %r: add it to REFUSED_IN_ID or "
                                 "ALLOWED_IN_ID" % ch)
    return True


def body_is_valid(raw):
    if len(raw) > 1024 * 1024:
        return False
    if raw[:3] == b"\xef\xbb\xbf":
        raw = raw[3:]
    try:
        doc = json.loads(raw.decode("utf-8"), object_pairs_hook=_pairs, parse_constant=_constant,
                         parse_float=_float)
    except (ValueError, RecursionError, _Refused):
        return False
    if not isinstance(doc, dict) or set(doc) - {"datasetId", "tagName", "importId"}:
        return False
    dataset, tag = doc.get("datasetId"), doc.get("tagName")
    if not isinstance(dataset, str) or not 1 <= len(dataset) <= 200 or not _clean_id(dataset):
        return False
    if not isinstance(tag, str) or not 1 <= len(tag) <= 100 or not tag.strip():
        return False
    if any(0xD800 <= ord(ch) <= 0xDFFF for ch in tag):
        return False
    if "importId" in doc:
        value = doc["importId"]
        if type(value) is not int or not 0 < value <= MAX_IMPORT_ID:
            return False
    return True

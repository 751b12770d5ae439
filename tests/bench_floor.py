#!/usr/bin/env python3
"""The floor `make bench` compares `status` with: one bare urllib.request GET that prints the JSON.

    bench_floor.py URL TOKEN [FILE]

With FILE, it first compiles FILE, as Python does with a script it runs (it caches no bytecode for
one): the floor then includes what every start of landbase_import.py pays before its first line.
"""

import json
import sys
import urllib.request

if len(sys.argv) > 3:
    with open(sys.argv[3], encoding="utf-8") as source:
        compile(source.read(), sys.argv[3], "exec")
request = urllib.request.Request(sys.argv[1], headers={"Authorization": "Bearer " + sys.argv[2],
                                                       "Accept": "application/json"})
with urllib.request.urlopen(request, timeout=30) as response:
    print(json.dumps(json.loads(response.read().decode("utf-8"))))

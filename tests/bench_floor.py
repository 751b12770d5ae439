#!/usr/bin/env python3
"""The floor `make bench` compares `status` with: one bare urllib.request GET that prints the JSON.

    bench_floor.py URL TOKEN
"""

import json
import sys
import urllib.request

request = urllib.request.Request(sys.argv[1], headers={"Authorization": "Bearer " + sys.argv[2],
                                                       "Accept": "application/json"})
with urllib.request.urlopen(request, timeout=30) as response:
    print(json.dumps(json.loads(response.read().decode("utf-8"))))

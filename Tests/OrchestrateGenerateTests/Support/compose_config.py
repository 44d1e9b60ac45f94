"""Loads compose files exactly as `docker-compose config -q` (1.29.2) does, many in one process.

Usage: python compose_config.py FILE...  →  prints {"FILE": null | "the error"} as JSON.
"""
import json
import os
import sys

from compose.config import config
from compose.config.environment import Environment

results = {}
for path in sys.argv[1:]:
    base = os.path.dirname(os.path.abspath(path))
    try:
        environment = Environment.from_env_file(base)
        config.load(config.find(base, [os.path.abspath(path)], environment), True)
        results[path] = None
    except Exception as error:  # every failure is a finding, whatever its type
        results[path] = f"{type(error).__name__}: {error}"
print(json.dumps(results))

"""Reads YAML files back as a YAML 1.1 (PyYAML) or 1.2 (ruamel.yaml) tool would, and prints them as JSON.

Usage: python parse_yaml.py pyyaml|ruamel FILE...  →  {"FILE": [document, ...]}; splits multi-document files.
With --split DIR, also writes each document as DIR/<n>.json (check-jsonschema reads one document a file).
"""
import json
import os
import sys

args = sys.argv[1:]
split_dir = None
if args and args[0] == "--split":
    split_dir, args = args[1], args[2:]
reader, files = args[0], args[1:]
if reader == "pyyaml":
    import yaml

    def load_all(text):
        return list(yaml.safe_load_all(text))
else:
    from ruamel.yaml import YAML

    def load_all(text):
        return list(YAML(typ="safe", pure=True).load_all(text))

results = {}
count = 0
for path in files:
    with open(path, encoding="utf-8") as handle:
        documents = [d for d in load_all(handle.read()) if d is not None]
    results[path] = documents
    if split_dir:
        for document in documents:
            with open(os.path.join(split_dir, f"{count}.json"), "w") as out:
                json.dump(document, out)
            count += 1
print(json.dumps(results, default=str))

"""Checks the client against the node's OpenAPI document: every operation
of the document has a method in OPERATIONS, and every method names an
operation of the document. Exits 1, listing the differences, when not.

    python3 check_openapi.py docs/openapi.json
"""

import json
import sys

from sharegrid_client import OPERATIONS, Client


def main() -> int:
    doc = json.load(open(sys.argv[1]))
    documented = {(m.upper(), p) for p, item in doc["paths"].items() for m in item}
    covered = set(OPERATIONS.values())
    missing = sorted(documented - covered)
    stale = sorted(covered - documented)
    absent = sorted(name for name in OPERATIONS if not callable(getattr(Client, name, None)))
    for m, p in missing:
        print(f"the client has no method for {m} {p}")
    for m, p in stale:
        print(f"the client calls {m} {p}, which the document does not have")
    for name in absent:
        print(f"OPERATIONS names {name}, which Client does not define")
    if missing or stale or absent:
        return 1
    print(f"{len(documented)} operations, each with a method")
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/python3
"""The part of a build's compile_commands.json the lint tests read (check_tidy.sh,
check_cppcheck.sh): the C files of core/, plugins/ and providers/ under the source directory,
each once. `files` prints their paths, `db` a compile_commands.json of those entries."""
import json
import os
import sys

LINTED = ("core", "plugins", "providers")


def main():
    mode, src, db = sys.argv[1:4]
    src = os.path.realpath(src)
    seen, keep = set(), []
    for e in json.load(open(db, encoding="utf-8")):
        path = os.path.realpath(os.path.join(e["directory"], e["file"]))
        rel = os.path.relpath(path, src)
        if rel.split(os.sep)[0] in LINTED and path.endswith(".c") and path not in seen:
            seen.add(path)
            keep.append(e)
    if not keep:
        sys.exit("compile_db.py: no C file of %s in %s" % ("/".join(LINTED), db))
    if mode == "files":
        print("\n".join(sorted(seen)))
    else:
        json.dump(keep, sys.stdout)


main()

#!/usr/bin/python3
"""The documentation matches the tree it ships in.

Usage: check_docs.py ROOT [--tests BUILD_DIR]   check the source tree at ROOT
       check_docs.py --selftest  build a small tree with one fault of each kind, expect each found

Rules, each fault printed as a FAIL line and counted in the exit status:
1. Every plugin directory (plugins/*, and providers/template, the plugin to copy) is named in
   README.md and in docs/architecture.md, as its path.
2. Every relative link in every Markdown file of the tree resolves: the file exists inside the
   tree, and a #fragment names a heading of that file (GitHub's anchor rule: lower case,
   punctuation but '-' and '_' dropped, spaces to '-', repeats numbered -1, -2, ...).
3. No file of the repository refers to a path outside it: no '/work/' workplace path, no home
   or source directory of a machine (/home/, /root/, /Users/, /opt/src); in
   Markdown, comments, #include lines and CMake comments, no '../' run that climbs out of the
   tree from the file's own folder; no link that resolves outside ROOT.
4. A quoted file stays equal to the file: a fenced block whose paragraph before it begins with a
   `config/NAME.yaml` path in backticks is compared with that file, byte for byte.
5. Every repository path a Markdown file names in backquotes (`core/src/chain/plan.c`,
   `tests/cli/test_*.sh`, `core/src/chain/state.[ch]`) exists: a glob must match a file; and in a
   table row whose first cell is a folder (`core/src/chain/`), every bare `name.c`/`name.h` of the
   row exists in that folder.
6. With --tests BUILD_DIR: every test name a Markdown file names in backquotes (`unit.pkcs11`,
   `cli.*`) is a test of that build (`ctest -N`); a trailing * matches a prefix.
"""

import os
import re
import shutil
import subprocess
import sys
import tempfile

SKIP_DIRS = {".git", "build", "node_modules", "__pycache__"}
TEXT_EXT = {".c", ".h", ".py", ".sh", ".md", ".txt", ".cmake", ".yaml", ".yml", ".json", ".in",
            ".map", ".supp", ""}
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
OUTSIDE = [re.compile(r"(?<![\w.])/work/"),
           re.compile(r"(?<![\w.])/(home|root|Users)/"), re.compile(r"(?<![\w.])/opt/src\b")]
# a run of ../ (not one that names /etc: that is a hostile-name example, e.g. a traversal a test
# or a doc shows being refused)
CLIMB = re.compile(r"(?<![\w.$)}/-])((?:\.\./)+)(?!\.\./)(?!etc/)")
TEST_PREFIXES = r"(?:unit|cli|azure|conformance|policy|link|docs|abi|style|bench|emulator|fuzz|model)"
TEST_NAME = re.compile(r"^" + TEST_PREFIXES + r"\.[\w.-]*\*?$")


def tree_files(root):
    """The files of the tree: git's list when ROOT is a checkout, else a walk without build dirs."""
    try:
        out = subprocess.run(["git", "-C", root, "ls-files", "-co", "--exclude-standard"],
                             check=True, capture_output=True, text=True).stdout
        files = [f for f in out.splitlines() if f and os.path.isfile(os.path.join(root, f))]
        if files:
            return sorted(files)
    except (OSError, subprocess.CalledProcessError):
        pass
    found = []
    for d, dirs, names in os.walk(root):
        dirs[:] = [x for x in dirs if x not in SKIP_DIRS and not x.startswith("build")]
        for n in names:
            found.append(os.path.relpath(os.path.join(d, n), root))
    return sorted(found)


def slug(heading, seen):
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip().lower())  # a link keeps its text
    text = re.sub(r"[^\w\- ]", "", text).replace(" ", "-")
    n = seen.get(text, 0)
    seen[text] = n + 1
    return text if n == 0 else f"{text}-{n}"


def anchors(path):
    seen, out, fence = {}, set(), False
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.lstrip().startswith("```"):
                fence = not fence
                continue
            m = re.match(r"^(#{1,6})\s+(.*?)\s*#*\s*$", line)
            if m and not fence:
                out.add(slug(m.group(2), seen))
    return out


def check_plugins_named(root, fail):
    plugins = []
    pdir = os.path.join(root, "plugins")
    if os.path.isdir(pdir):
        plugins = [f"plugins/{d}" for d in sorted(os.listdir(pdir))
                   if os.path.isdir(os.path.join(pdir, d))]
    if os.path.isdir(os.path.join(root, "providers", "template")):
        plugins.append("providers/template")
    for doc in ("README.md", "docs/architecture.md"):
        path = os.path.join(root, doc)
        if not os.path.isfile(path):
            fail(f"{doc} is missing")
            continue
        text = open(path, encoding="utf-8").read()
        for p in plugins:
            if p not in text:
                fail(f"{doc} does not name the plugin directory {p}/")
    return len(plugins)


def markdown_files(root):
    return [f for f in tree_files(root) if f.endswith(".md")]


def check_links(root, fail):
    docs = markdown_files(root)
    cache, nlinks = {}, 0
    real_root = os.path.realpath(root)
    for doc in docs:
        path = os.path.join(root, doc)
        if not os.path.isfile(path):
            continue
        fence = False
        for lineno, line in enumerate(open(path, encoding="utf-8"), 1):
            if line.lstrip().startswith("```"):
                fence = not fence
            if fence:
                continue
            for target in LINK.findall(line):
                if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
                    continue
                nlinks += 1
                file_part, _, frag = target.partition("#")
                dest = os.path.normpath(os.path.join(os.path.dirname(path), file_part)) \
                    if file_part else path
                where = f"{doc}:{lineno}"
                if not os.path.realpath(dest).startswith(real_root + os.sep):
                    fail(f"{where}: link '{target}' leaves the repository")
                    continue
                if not os.path.exists(dest):
                    fail(f"{where}: link '{target}': no such file")
                    continue
                if frag and dest.endswith(".md"):
                    if dest not in cache:
                        cache[dest] = anchors(dest)
                    if frag not in cache[dest]:
                        fail(f"{where}: link '{target}': {os.path.relpath(dest, root)} has no "
                             f"heading #{frag}")
    return nlinks


def check_outside(root, files, fail, self_name):
    nread = 0
    for rel in files:
        if os.path.splitext(rel)[1] not in TEXT_EXT or rel.endswith(self_name):
            continue
        path = os.path.join(root, rel)
        try:
            text = open(path, encoding="utf-8").read()
        except (UnicodeDecodeError, OSError):
            continue
        nread += 1
        ext = os.path.splitext(rel)[1]
        for lineno, line in enumerate(text.splitlines(), 1):
            for pat in OUTSIDE:
                if pat.search(line):
                    fail(f"{rel}:{lineno}: refers to a path outside the repository: "
                         f"{line.strip()[:100]}")
            stripped = line.lstrip()
            prose = ext == ".md" or stripped.startswith(("#include", "//", "/*", "* ")) or (
                stripped.startswith("#") and (ext in (".sh", ".py", ".cmake", ".txt", ".yaml")))
            if not prose:
                continue
            for m in CLIMB.finditer(line):
                top = os.path.abspath(root)
                dest = os.path.normpath(os.path.join(top, os.path.dirname(rel), m.group(1)))
                if not (dest + os.sep).startswith(top + os.sep):
                    fail(f"{rel}:{lineno}: a path climbs out of the repository: "
                         f"{line.strip()[:100]}")
    return nread


def check_quotes(root, fail):
    nquotes = 0
    ddir = os.path.join(root, "docs")
    docs = sorted(os.path.join(ddir, n) for n in os.listdir(ddir) if n.endswith(".md")) \
        if os.path.isdir(ddir) else []
    for path in docs:
        lines = open(path, encoding="utf-8").read().split("\n")
        i = 0
        while i < len(lines):
            if not lines[i].startswith("```"):
                i += 1
                continue
            end = next((k for k in range(i + 1, len(lines)) if lines[k].startswith("```")), None)
            if end is None:
                break
            k = i - 1
            while k >= 0 and lines[k].strip() == "":
                k -= 1
            while k > 0 and lines[k - 1].strip() != "":
                k -= 1
            m = re.match(r"^`(config/[\w.-]+\.yaml)`", lines[k]) if k >= 0 else None
            if m:
                nquotes += 1
                quoted = "\n".join(lines[i + 1:end]) + "\n"
                src = os.path.join(root, m.group(1))
                doc = os.path.relpath(path, root)
                if not os.path.isfile(src):
                    fail(f"{doc}:{i + 1}: quotes {m.group(1)}, which does not exist")
                elif open(src, encoding="utf-8").read() != quoted:
                    fail(f"{doc}:{i + 1}: the quoted {m.group(1)} differs from the file")
            i = end + 1
    return nquotes


PATH_IN_CODE = re.compile(
    r"(?:^|(?<=[\s(=]))((?:core|plugins|providers|tests|scripts|config|cmake|docs)/[\w./*{},\[\]-]*)")


def expand_braces(path):
    m = re.search(r"\{([^{}]*)\}", path)
    if not m:
        return [path]
    out = []
    for alt in m.group(1).split(","):
        out.extend(expand_braces(path[:m.start()] + alt + path[m.end():]))
    return out


def check_paths(root, fail):
    import glob
    npaths = 0
    for doc in markdown_files(root):
        path = os.path.join(root, doc)
        if not doc.endswith(".md") or not os.path.isfile(path):
            continue
        fence = False
        for lineno, line in enumerate(open(path, encoding="utf-8"), 1):
            if line.lstrip().startswith("```"):
                fence = not fence
                continue
            if fence:
                continue
            spans = re.findall(r"`([^`]+)`", line)
            row = re.match(r"^\|\s*`([\w./-]+/)`\s*\|", line)
            if row and os.path.isdir(os.path.join(root, row.group(1))):
                folder = os.path.join(root, row.group(1))
                present = {n for _, _, names in os.walk(folder) for n in names}
                for bare in spans[1:]:
                    for name in re.findall(r"^([\w-]+\.[ch])$", bare):
                        npaths += 1
                        if name not in present:
                            fail(f"{doc}:{lineno}: names `{name}`, which is not in "
                                 f"{row.group(1)}")
            for span in spans:
                for raw in PATH_IN_CODE.findall(span):
                    ref = raw.rstrip(".,")
                    npaths += 1
                    hits = [h for alt in expand_braces(ref)
                            for h in glob.glob(os.path.join(root, alt))]
                    if not hits:
                        fail(f"{doc}:{lineno}: names `{ref}`, which is not in the repository")
    return npaths


def check_tests(root, build, fail):
    out = subprocess.run(["ctest", "-N"], cwd=build, check=True, capture_output=True,
                         text=True).stdout
    names = set(re.findall(r"Test\s+#\d+: (\S+)", out))
    if not names:
        fail(f"ctest -N in {build} lists no test")
        return 0
    ntests = 0
    for doc in markdown_files(root):
        fence = False
        for lineno, line in enumerate(open(os.path.join(root, doc), encoding="utf-8"), 1):
            if line.lstrip().startswith("```"):
                fence = not fence
                continue
            if fence:
                continue
            for span in re.findall(r"`([^`]+)`", line):
                if not TEST_NAME.match(span) or re.search(r"[A-Z]", span) or \
                        re.search(r"\.(c|h|py|sh|md|so|json|yaml)$", span):
                    continue
                ntests += 1
                ok = any(n.startswith(span[:-1]) for n in names) if span.endswith("*") \
                    else span in names
                if not ok:
                    fail(f"{doc}:{lineno}: names the test `{span}`, which this build does not have")
    return ntests


def run(root, build=None):
    problems = []
    fail = problems.append
    nplugins = check_plugins_named(root, fail)
    nlinks = check_links(root, fail)
    nfiles = check_outside(root, tree_files(root), fail, "tests/check_docs.py")
    nquotes = check_quotes(root, fail)
    npaths = check_paths(root, fail)
    ntests = check_tests(root, build, fail) if build else 0
    for p in problems:
        print(f"FAIL: {p}")
    if not problems:
        print(f"docs: {nplugins} plugin directories named in README.md and docs/architecture.md; "
              f"{nlinks} relative links resolve; {nfiles} files refer to nothing outside the tree; "
              f"{nquotes} quoted config files are equal to theirs; {npaths} paths named exist"
              f"{f'; {ntests} test names are tests of the build' if build else ''}")
    return problems


def selftest():
    d = tempfile.mkdtemp(prefix="kp-docs-selftest-")
    try:
        os.makedirs(os.path.join(d, "docs"))
        os.makedirs(os.path.join(d, "plugins", "alpha"))
        os.makedirs(os.path.join(d, "plugins", "beta"))
        with open(os.path.join(d, "README.md"), "w") as f:
            f.write("# T\n\nplugins/alpha and plugins/beta. [ok](docs/architecture.md#one-two)\n")
        with open(os.path.join(d, "docs", "architecture.md"), "w") as f:
            f.write("# One, two\n\nplugins/alpha only. [gone](missing.md) [bad](#nowhere)\n"
                    "[up](../../elsewhere.md) see /work/notes/x.md\n\n"
                    "`config/a.yaml`, quoted:\n\n```yaml\nversion: 2\n```\n")
        os.makedirs(os.path.join(d, "config"))
        with open(os.path.join(d, "config", "a.yaml"), "w") as f:
            f.write("version: 1\n")
        with open(os.path.join(d, "docs", "paths.md"), "w") as f:
            f.write("# Paths\n\n`config/a.yaml` and `plugins/{alpha,beta}` exist; "
                    "`core/src/gone.c` does not.\n\n| path | what |\n|---|---|\n"
                    "| `plugins/alpha/` | `a.c` and `gone.h` |\n")
        open(os.path.join(d, "plugins", "alpha", "a.c"), "w").close()
        os.makedirs(os.path.join(d, "tests", "x"))
        with open(os.path.join(d, "tests", "x", "README.md"), "w") as f:
            f.write("# X\n\n[broken](nothere.md)\n")
        with open(os.path.join(d, "tests", "x", "t.c"), "w") as f:
            f.write('#include "../../../sibling/x.h"\nconst char *p = "../../../etc";\n'
                    "/* see /home/alice/notes */\n")
        problems = run(d)
        want = ["does not name the plugin directory plugins/beta/",
                "'missing.md': no such file", "has no heading #nowhere",
                "leaves the repository", "refers to a path outside the repository",
                "the quoted config/a.yaml differs from the file",
                "names `core/src/gone.c`, which is not in the repository",
                "names `gone.h`, which is not in plugins/alpha/",
                "tests/x/README.md:3: link 'nothere.md': no such file",
                "tests/x/t.c:1: a path climbs out of the repository",
                "docs/architecture.md:4: a path climbs out of the repository",
                "tests/x/t.c:3: refers to a path outside the repository"]
        missing = [w for w in want if not any(w in p for p in problems)]
        extra = [p for p in problems if not any(w in p for w in want)]
        if missing or extra:
            print(f"SELFTEST FAIL: missing {missing}, unexpected {extra}")
            return 1
        print(f"selftest: all {len(want)} planted faults found")
        return 0
    finally:
        shutil.rmtree(d)


def main(argv):
    if argv == ["--selftest"]:
        return selftest()
    build = None
    if len(argv) == 3 and argv[1] == "--tests":
        build = argv[2]
    elif len(argv) != 1:
        sys.exit(__doc__)
    return 1 if run(argv[0], build) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

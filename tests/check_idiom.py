#!/usr/bin/python3
"""The error idiom of docs/conventions.md ("Errors"), checked over the C files of the tree.

Usage: check_idiom.py SOURCE_ROOT     check core/, plugins/ and providers/ below SOURCE_ROOT
       check_idiom.py --selftest      plant each fault in a scratch tree and expect it reported

Two rules, each reported as file:line with what breaks it (exit status 1 when any is found):

(a) goto: only in a function that tears down OpenSSL objects (it calls a free function of
    OpenSSL's: EVP_*_free, BN_free, BIO_free, OSSL_*_free, X509_free, OPENSSL_free, ...), and
    only to the one label `out`. Any other goto, and a label other than `out`, is reported.
(b) no chained status calls: within one expression, a call's status compared with KP_OK
    (`f(...) != KP_OK`, `(st = f(...)) == KP_OK`) joined by `||` or `&&` to another comparison
    of a status with KP_OK (another call's, or a variable holding one: `st != KP_OK || ...`).
    Threading (`if (st == KP_OK) st = f(...);`) and guards (`KP_GUARD(f(...));`) are the shapes
    to use instead. A call compared with KP_OK next to a condition that is no status
    (`buf == NULL || f(...) != KP_OK`) is not a chain.

Comments, string and character literals and preprocessor lines (macro bodies included) are
skipped, so the text of a message or of KP_GUARD's own definition is never taken for code.
"""

import os
import re
import shutil
import sys
import tempfile

SCANNED = ("core", "plugins", "providers")

# The free functions of OpenSSL's objects (a goto that frees none of them has no excuse).
OSSL_FREE = re.compile(
    r"^(?:EVP|BN|BIO|OSSL|X509|OPENSSL|RSA|EC|ECDSA|DH|DSA|ASN1|PKCS\d*|CMS|HMAC|PEM|CRYPTO|SSL)"
    r"(?:_[A-Za-z0-9]+)*_(?:clear_)?free(?:_all)?$|^(?:OPENSSL_)?sk_\w*_(?:pop_)?free$")

TOKEN = re.compile(r"[A-Za-z_]\w*|\d[\w.]*|<<=|>>=|\|\||&&|==|!=|<=|>=|->|\+\+|--|"
                   r"[-+*/%&|^]=|<<|>>|\S")
IDENT = re.compile(r"^[A-Za-z_]\w*$")
KEYWORDS = {"if", "while", "for", "switch", "return", "sizeof", "case", "do", "else", "goto",
            "default", "break", "continue", "_Alignof", "alignof", "defined"}
ASSIGN = {"=", "+=", "-=", "*=", "/=", "%=", "&=", "|=", "^=", "<<=", ">>="}
BOUNDARY = {";", ",", "{", "}", "?", ":"} | ASSIGN


def strip(text):
    """text with comments, literals and preprocessor lines blanked; newlines kept."""
    out = []
    i, n = 0, len(text)
    line_start = True
    while i < n:
        c = text[i]
        if line_start and c in " \t":
            out.append(c)
            i += 1
            continue
        if line_start and c == "#":
            # a preprocessor line, with its continuations
            while i < n and text[i] != "\n":
                if text[i] == "\\" and i + 1 < n and text[i + 1] == "\n":
                    out.append("\n")
                    i += 2
                    continue
                i += 1
            continue
        line_start = False
        if text.startswith("/*", i):
            end = text.find("*/", i + 2)
            end = n if end < 0 else end + 2
            out.append("".join(ch if ch == "\n" else " " for ch in text[i:end]))
            i = end
            continue
        if text.startswith("//", i):
            while i < n and text[i] != "\n":
                i += 1
            continue
        if c in "\"'":
            j = i + 1
            while j < n and text[j] != c and text[j] != "\n":
                j += 2 if text[j] == "\\" else 1
            out.append(c + " " * max(0, min(j, n) - i - 1) + (c if j < n else ""))
            i = j + 1
            continue
        if c == "\n":
            line_start = True
        out.append(c)
        i += 1
    return "".join(out)


def tokens(text):
    """[(token, line)] of stripped C text."""
    result = []
    for lineno, line in enumerate(strip(text).split("\n"), 1):
        for m in TOKEN.finditer(line):
            result.append((m.group(0), lineno))
    return result


def functions(toks):
    """(name, first body token index, index after the body) of each function definition."""
    found = []
    depth = 0
    i = 0
    while i < len(toks):
        t = toks[i][0]
        if t == "{" and depth == 0 and i > 0 and toks[i - 1][0] == ")":
            # the parameter list's "(" and the name before it
            j, d = i - 1, 0
            while j >= 0:
                if toks[j][0] == ")":
                    d += 1
                elif toks[j][0] == "(":
                    d -= 1
                    if d == 0:
                        break
                j -= 1
            name = toks[j - 1][0] if j > 0 and IDENT.match(toks[j - 1][0]) else "?"
            k, d = i, 0
            while k < len(toks):
                if toks[k][0] == "{":
                    d += 1
                elif toks[k][0] == "}":
                    d -= 1
                    if d == 0:
                        break
                k += 1
            found.append((name, i + 1, k))
            i = k + 1
            continue
        if t == "{" and not (depth == 0 and i >= 3 and toks[i - 3][0] == "extern"):
            depth += 1  # an `extern "C" {` block opens no scope of its own
        elif t == "}" and depth > 0:
            depth -= 1
        i += 1
    return found


def check_goto(path, toks, name, lo, hi, problems):
    body = toks[lo:hi]
    calls = {body[k][0] for k in range(len(body) - 1)
             if body[k + 1][0] == "(" and IDENT.match(body[k][0])}
    frees = any(OSSL_FREE.match(c) for c in calls)
    for k, (t, line) in enumerate(body):
        if t == "goto" and k + 1 < len(body):
            label = body[k + 1][0]
            if not frees:
                problems.append(f"{path}:{line}: goto {label} in {name}(), which frees no OpenSSL "
                                "object: thread the status to one cleanup instead")
            elif label != "out":
                problems.append(f"{path}:{line}: goto {label} in {name}(): the one label is "
                                "named out")
        elif (IDENT.match(t) and t not in KEYWORDS and k + 1 < len(body)
              and body[k + 1][0] == ":" and k > 0 and body[k - 1][0] in (";", "{", "}")
              and t != "out"):
            problems.append(f"{path}:{line}: label {t} in {name}(): the one label is named out")


class Group:
    """A parenthesised or bracketed group: its operands' kinds, and whether it is
    `(x = call(...))`, which compares as a call."""

    def __init__(self, opener):
        self.opener = opener
        self.items = []  # the current operand's items: tokens and Groups
        self.operands = []  # status kinds of the current segment's operands
        self.last_kind = None  # kind of the only operand, when the group held one segment
        self.segments = 0
        self.assigns_call = False
        self.top = []  # every top-level item, for assigns_call


def operand_kind(items):
    """'call', 'var' or None: what an operand compares with KP_OK, if it does."""
    for k in range(1, len(items) - 1):
        t = items[k]
        if isinstance(t, tuple) and t[0] in ("==", "!=") and \
                isinstance(items[k + 1], tuple) and items[k + 1][0] == "KP_OK":
            left = items[k - 1]
            if isinstance(left, Group):
                if left.opener != "(":
                    return "var"
                if left.assigns_call:
                    return "call"
                before = items[k - 2] if k >= 2 else None
                if isinstance(before, tuple) and IDENT.match(before[0]) \
                        and before[0] not in KEYWORDS:
                    return "call"
                return left.last_kind or "var"
            if isinstance(left, tuple) and IDENT.match(left[0]):
                return "var"
    if len(items) == 1 and isinstance(items[0], Group):
        return items[0].last_kind
    return None


def first_line(items):
    for t in items:
        if isinstance(t, tuple):
            return t[1]
        line = first_line(t.top)
        if line:
            return line
    return 0


def check_chains(path, toks, name, lo, hi, problems):
    stack = [Group("{")]
    seen = set()

    def end_operand(g):
        kind = operand_kind(g.items)
        if g.items:
            g.operands.append((kind, first_line(g.items)))
        g.items = []

    def end_segment(g):
        end_operand(g)
        kinds = [k for k, _ in g.operands if k is not None]
        if len(kinds) >= 2 and "call" in kinds:
            line = next(ln for k, ln in g.operands if k == "call")
            if (line, name) not in seen:
                seen.add((line, name))
                problems.append(f"{path}:{line}: status calls chained with || or && in {name}(): "
                                "use KP_GUARD, or `if (st == KP_OK) st = f(...);`")
        g.last_kind = g.operands[0][0] if len(g.operands) == 1 else None
        g.segments += 1
        g.operands = []

    for t, line in toks[lo:hi]:
        g = stack[-1]
        if t in ("(", "["):
            stack.append(Group(t))
            continue
        if t in (")", "]") and len(stack) > 1:
            inner = stack.pop()
            end_segment(inner)
            if inner.segments > 1:
                inner.last_kind = None
            top = inner.top
            inner.assigns_call = (any(isinstance(x, tuple) and x[0] == "=" for x in top)
                                  and len(top) >= 2 and isinstance(top[-1], Group)
                                  and isinstance(top[-2], tuple) and IDENT.match(top[-2][0]))
            stack[-1].items.append(inner)
            stack[-1].top.append(inner)
            continue
        if t in ("||", "&&"):
            end_operand(g)
            continue
        if t in BOUNDARY:
            end_segment(g)
            g.top.append((t, line))
            continue
        g.items.append((t, line))
        g.top.append((t, line))
    while stack:
        end_segment(stack.pop())


def check_file(path, text, problems):
    toks = tokens(text)
    for name, lo, hi in functions(toks):
        check_goto(path, toks, name, lo, hi, problems)
        check_chains(path, toks, name, lo, hi, problems)


def run(root):
    problems = []
    for top in SCANNED:
        base = os.path.join(root, top)
        for d, dirs, files in os.walk(base):
            dirs.sort()
            for f in sorted(files):
                if not f.endswith((".c", ".h")):
                    continue
                full = os.path.join(d, f)
                with open(full, encoding="utf-8", errors="replace") as fh:
                    check_file(os.path.relpath(full, root), fh.read(), problems)
    return problems


FAULTY = r"""
#include <stdlib.h>
#define CHAINED(a, b) ((a) != KP_OK || (b) != KP_OK)
static kp_status s_nossl(void)
{
    char *p = malloc(4);
    if (p == NULL)
        goto fail;
    free(p);
    return KP_OK;
fail:
    return KP_ERR_NOMEM;
}
static kp_status s_label(void)
{
    EVP_PKEY *k = NULL;
    if (k == NULL)
        goto done;
done:
    EVP_PKEY_free(k);
    return KP_OK;
}
static kp_status s_and(void)
{
    kp_status st;
    if ((st = s_a()) == KP_OK &&
        (st = s_b()) == KP_OK)
        return KP_OK;
    return st;
}
static kp_status s_or(kp_inst *i)
{
    if (s_a() != KP_OK || i->up->check(i) != KP_OK)
        return KP_ERR_IO;
    return KP_OK;
}
static kp_status s_after(void)
{
    kp_status st = s_a();
    if (st != KP_OK || (st = s_b(1, 2)) != KP_OK)
        return st;
    return KP_OK;
}
static bool s_value(void)
{
    bool ok = s_c() &&
              s_a() == KP_OK && s_b() == KP_OK;
    return ok;
}
"""

CLEAN = r"""
/* in a comment: if (s_a() != KP_OK || s_b() != KP_OK) goto fail; */
#define KP_GUARD(expr) do { kp_status s_ = (expr); if (s_ != KP_OK) goto x; } while (0)
static const char *text = "s_a() != KP_OK || s_b() != KP_OK; goto nowhere;";
static kp_status s_teardown(void)
{
    EVP_PKEY_CTX *ctx = NULL;
    kp_status st = KP_ERR_CRYPTO;
    if (EVP_PKEY_keygen_init(ctx) <= 0)
        goto out;
    st = KP_OK;
out:
    EVP_PKEY_CTX_free(ctx);
    return st;
}
static kp_status s_thread(char *buf)
{
    kp_status st = KP_OK;
    KP_GUARD(s_a());
    if (st == KP_OK)
        st = s_b();
    if (st == KP_OK && buf != NULL)
        st = s_c(buf);
    if (buf == NULL || s_a() != KP_OK)
        st = KP_ERR_IO;
    for (size_t i = 0; st == KP_OK && i < 3; i++)
        st = s_b();
    switch (st) {
    case KP_OK:
        break;
    default:
        st = s_a() == KP_OK ? KP_OK : KP_ERR_IO;
    }
    return st == KP_OK ? s_c(text) : st;
}
"""


def selftest():
    d = tempfile.mkdtemp(prefix="kp-idiom-selftest-")
    try:
        os.makedirs(os.path.join(d, "plugins", "x"))
        os.makedirs(os.path.join(d, "core", "y"))
        with open(os.path.join(d, "plugins", "x", "faulty.c"), "w") as f:
            f.write(FAULTY)
        with open(os.path.join(d, "core", "y", "clean.c"), "w") as f:
            f.write(CLEAN)
        problems = run(d)
        want = ["plugins/x/faulty.c:8: goto fail in s_nossl(), which frees no OpenSSL object",
                "plugins/x/faulty.c:11: label fail in s_nossl()",
                "plugins/x/faulty.c:18: goto done in s_label(): the one label is named out",
                "plugins/x/faulty.c:19: label done in s_label()",
                "plugins/x/faulty.c:26: status calls chained with || or && in s_and()",
                "plugins/x/faulty.c:33: status calls chained with || or && in s_or()",
                "plugins/x/faulty.c:40: status calls chained with || or && in s_after()",
                "plugins/x/faulty.c:47: status calls chained with || or && in s_value()"]
        missing = [w for w in want if not any(p.startswith(w) for p in problems)]
        extra = [p for p in problems if not any(p.startswith(w) for w in want)]
        if missing or extra:
            print(f"SELFTEST FAIL: missing {missing}, unexpected {extra}")
            return 1
        print(f"selftest: all {len(want)} planted faults found, none in the clean file")
        return 0
    finally:
        shutil.rmtree(d)


def main(argv):
    if argv == ["--selftest"]:
        return selftest()
    if len(argv) != 1 or argv[0].startswith("-"):
        sys.exit(__doc__)
    problems = run(argv[0])
    for p in problems:
        print(p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

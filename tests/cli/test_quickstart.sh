#!/bin/sh
# The README's quickstart runs end to end in a copy of the source tree (its tracked files, as a
# git repository of its own, so the real tree is left alone) and shows that region-b unwraps
# what region-a wrapped. Its build step builds keyplane and every plugin of plugins/ (a stand-in
# cmake on PATH records the targets and links build/release/bin/keyplane to this build's
# keyplane, whose plugins step 1 lists), and afterwards `git status --porcelain` in the copy is
# empty: the journal and lock live in the quickstart's state directory under build/.
. "$(dirname "$0")/lib.sh"
repo=$T/repo
mkdir -p "$repo" "$T/bin"
if git -C "$KP_SRC" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    (cd "$KP_SRC" && git ls-files -z | xargs -0 sh -c 'for f; do [ -e "$f" ] && printf "%s\0" "$f"; done' sh |
        tar --null -T - -cf -) | tar -C "$repo" -xf -
    git -C "$repo" init -q
    git -C "$repo" add -A
    git -C "$repo" -c user.name=t -c user.email=t@example.invalid commit -q -m copy
    have_git=1
else
    (cd "$KP_SRC" && tar --exclude='./build*' --exclude=./.git -cf - .) | tar -C "$repo" -xf -
    have_git=0
fi
cat >"$T/bin/cmake" <<EOF
#!/bin/sh
echo "cmake \$*" >>"$T/cmake.log"
if [ "\$1" = --build ]; then
    mkdir -p build/release/bin
    ln -sf "$KP_BIN" build/release/bin/keyplane
fi
EOF
chmod +x "$T/bin/cmake"
set +e
(cd "$repo" && env -u KP_BIN PATH="$T/bin:$PATH" sh scripts/quickstart.sh) >"$T/qs.out" 2>&1
rc=$?
set -e
[ "$rc" -eq 0 ] || { cat "$T/qs.out"; fail "quickstart exited $rc"; }

# The build step: keyplane and every plugin.
build=$(grep -- '^cmake --build build/release ' "$T/cmake.log") || fail "no build step: $(cat "$T/cmake.log")"
for d in "$KP_SRC"/plugins/*/; do
    p=$(basename "$d")-plugin
    case " $build " in *" $p "*) ;; *) fail "the quickstart does not build $p: $build" ;; esac
done
case " $build " in *" keyplane-cli "*) ;; *) fail "the quickstart does not build keyplane-cli" ;; esac
for p in file pkcs11 azure-keyvault; do
    grep -Eq "^$p +[0-9]" "$T/qs.out" || { cat "$T/qs.out"; fail "step 1 does not list plugin $p"; }
done

expect_in "$T/qs.out" "RESULT: the DEK unwrapped in region-b equals the DEK wrapped in region-a"
expect_in "$T/qs.out" "region-a: initialised"
expect_in "$T/qs.out" "region-b: initialised"
expect_in "$T/qs.out" "failing over to region-b"
expect_in "$T/qs.out" "initialised region-a: a new, empty store"
expect_in "$T/qs.out" "restored: region-a holds every version of tde-demo, each proved usable"
expect_in "$T/qs.out" "staged tde-demo v2: replicated and proved usable in every keystore"
expect_in "$T/qs.out" "activated tde-demo v2"
expect_in "$T/qs.out" "RESULT: after rotation the same DEK unwraps under v2, in the escrow HSM too"
[ "$(grep -c '^chain tde-demo: ok' "$T/qs.out")" -ge 3 ] || fail "verify did not pass three times"
expect_in "$T/qs.out" "quickstart: OK"
[ -d "$repo/build/quickstart/region-b/keys/tde-demo/1" ] || fail "no replica in region-b"
[ -d "$repo/build/quickstart/region-b/keys/tde-demo/2" ] || fail "no v2 in region-b"

# The journal and lock are in the quickstart's state directory, named by the policy's path.
key=$(printf '%s' "$(realpath "$repo/config/quickstart.yaml")" | sha256sum | cut -c1-16)
[ -s "$repo/build/quickstart/state/$key-quickstart.yaml.journal" ] ||
    fail "no journal in the state directory: $(ls -a "$repo/build/quickstart/state")"
[ -e "$repo/build/quickstart/state/$key-quickstart.yaml.lock" ] || fail "no lock in the state directory"
if [ "$have_git" -eq 1 ]; then
    git -C "$repo" status --porcelain >"$T/status"
    [ ! -s "$T/status" ] || { cat "$T/status"; fail "the quickstart left the tree changed (git status above)"; }
else
    echo "note: $KP_SRC is not a git checkout: git status not checked"
fi
echo "ok: quickstart"

#!/bin/sh
# The bash completion (completion/keyplane.bash), run in bash as bash-completion runs it: the
# file sourced, COMP_WORDS and COMP_CWORD set, _keyplane called, COMPREPLY compared whole.
# Subcommands, global options, each command's options (every option its --help names is
# offered, so the completion cannot fall behind the command), key subcommands, and the chain and
# instance names of the policy named by --policy, -p, --policy=FILE or $KEYPLANE_POLICY.
. "$(dirname "$0")/lib.sh"
command -v bash >/dev/null 2>&1 || { echo "SKIP: no bash"; exit 0; }
COMPLETION=$KP_SRC/completion/keyplane.bash
cat >"$T/policy.yaml" <<'YAML'
version: 1
# a comment, and names the reader must not take for instances
providers:
  region-a: {plugin: file, path: /srv/a, passphrase: env:P}
  region-b:
    plugin: file
    path: /srv/b
    passphrase: env:P
  hsm.escrow: {plugin: pkcs11, module: softhsm2, token: t, pin: env:PIN}

chains:
  tde-main:
    protector: {type: rsa, bits: 2048, origin: region-a, exportable: true}
    replicas: [region-a, region-b]
    escrow: [hsm.escrow]
    algorithm: RSA-OAEP-256
  tde_backup:
    protector: {type: rsa, bits: 2048, origin: region-b, exportable: true}
    replicas: [region-b]
    algorithm: RSA-OAEP-256
YAML

# comp WORD...: completes the last WORD (the one being typed) of the line; prints COMPREPLY
# sorted, one line.
comp() {
    (cd "$T" && bash -c '. "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _keyplane
        printf "%s\n" "${COMPREPLY[@]}" | sort | tr "\n" " " | sed "s/ \$//"' sh "$COMPLETION" "$@")
}
# expect WANT WORD...: comp WORD... prints exactly WANT
expect() {
    want=$1
    shift
    got=$(comp "$@")
    [ "$got" = "$want" ] || fail "completing '$*': got '$got', want '$want'"
}

expect "apply" keyplane ap
expect "restore retire rewrap" keyplane re
expect "--plugin-dir --policy" keyplane --p
expect "--state-dir" keyplane --st
expect "tde-main tde_backup" keyplane --policy "$T/policy.yaml" restore ""
expect "tde-main tde_backup" keyplane -p "$T/policy.yaml" verify t
expect "tde_backup" keyplane "--policy=$T/policy.yaml" rotate tde_
expect "hsm.escrow region-a region-b" keyplane -p "$T/policy.yaml" check ""
expect "region-a region-b" keyplane --policy "$T/policy.yaml" restore tde-main --to reg
expect "hsm.escrow" keyplane --policy "$T/policy.yaml" unwrap --in x.env --replica h
expect "tde-main" keyplane --policy "$T/policy.yaml" wrap --chain tde-m
expect "hsm.escrow region-a region-b" keyplane --policy "$T/policy.yaml" key generate --instance ""
(cd "$T" && cp policy.yaml keyplane.yaml) # the default policy
expect "tde-main tde_backup" keyplane status ""
export KEYPLANE_POLICY="$T/policy.yaml"
rm "$T/keyplane.yaml"
expect "region-a region-b" keyplane init region
unset KEYPLANE_POLICY
expect "env: fd: file: stdin" keyplane wrap --chain c --dek ""
expect "validate" keyplane policy v
expect "azure-sql" keyplane az
expect "script" keyplane azure-sql s
expect "tde-main tde_backup" keyplane -p "$T/policy.yaml" azure-sql script t
expect "--powershell" keyplane azure-sql script --pow
expect "export export-byok" keyplane key ex
expect "--detailed-exitcode" keyplane plan --d
expect "--journal --json" keyplane apply --j
expect "policy.yaml" keyplane --policy pol
expect "" keyplane --policy "$T/policy.yaml" --workers ""

# every option a command's --help names is offered after that command
for c in plugins "policy validate" init check plan apply verify status restore rotate retire \
    rewrap wrap unwrap "azure-sql script"; do
    # shellcheck disable=SC2086
    "$KP_BIN" $c --help >"$T/help" 2>&1 || fail "keyplane $c --help exited $?"
    offered=" $(comp keyplane $c --) "
    grep -q -E -- '--[a-z]' "$T/help" || fail "keyplane $c --help names no option"
    for o in $(grep -oE -- '--[a-z][a-z-]*' "$T/help" | sort -u); do
        case $offered in *" $o "*) ;; *) fail "keyplane $c: $o (in --help) is not completed: $offered" ;; esac
    done
done
"$KP_BIN" key --help >"$T/help" || fail "keyplane key --help exited $?"
nsub=0
for sub in $(sed -n 's/^  \([a-z-]*\) .*/\1/p; s/^  \([a-z-]*\)$/\1/p' "$T/help"); do
    # the subcommand's lines: its own, and the continuation lines of its synopsis
    awk -v s="$sub" '$1 == s && /^  [a-z]/ { on = 1; print; next } on && /^           *\[/ { print; next } { on = 0 }' \
        "$T/help" >"$T/sub"
    offered=" $(comp keyplane key "$sub" --) "
    [ -s "$T/sub" ] || fail "keyplane key --help: no lines for $sub"
    for o in $(grep -oE -- '--[a-z][a-z-]*' "$T/sub" | sort -u); do
        case $offered in *" $o "*) ;; *) fail "keyplane key $sub: $o is not completed: $offered" ;; esac
    done
    nsub=$((nsub + 1))
done
[ "$nsub" -ge 5 ] || fail "keyplane key --help: only $nsub subcommands found"
# datakey: its subcommands, and every option each one's --help names
expect "datakey" keyplane data
expect "decrypt" keyplane datakey de
expect "hsm.escrow" keyplane --policy "$T/policy.yaml" datakey generate --instance h
expect "--to-context --to-key-id" keyplane datakey reencrypt --to
expect "" keyplane datakey generate --to
for sub in generate decrypt reencrypt; do
    "$KP_BIN" datakey "$sub" --help >"$T/help" 2>&1 || fail "keyplane datakey $sub --help exited $?"
    offered=" $(comp keyplane datakey "$sub" --) "
    for o in $(grep -oE -- '--[a-z][a-z-]*' "$T/help" | sort -u); do
        case $offered in *" $o "*) ;; *) fail "keyplane datakey $sub: $o is not completed: $offered" ;; esac
    done
done
# backup: its subcommands, instance names, files for the arguments, every option of --help
expect "backup" keyplane bac
expect "decrypt" keyplane backup de
expect "hsm.escrow" keyplane --policy "$T/policy.yaml" backup encrypt x.bak --instance h
expect "policy.yaml" keyplane backup encrypt pol
expect "--to" keyplane backup encrypt --t
expect "" keyplane --policy "$T/policy.yaml" backup encrypt x.bak --to h
expect "" keyplane backup encrypt x.bak --kms-key pol
expect "" keyplane backup encrypt x.bak --db pol
for sub in encrypt decrypt; do
    "$KP_BIN" backup "$sub" --help >"$T/help" 2>&1 || fail "keyplane backup $sub --help exited $?"
    offered=" $(comp keyplane backup "$sub" --) "
    for o in $(grep -oE -- '--[a-z][a-z-]*' "$T/help" | sort -u); do
        case $offered in *" $o "*) ;; *) fail "keyplane backup $sub: $o is not completed: $offered" ;; esac
    done
done
echo "ok: completion"

#!/bin/sh
# Azure Key Vault against vaults that misbehave (issue 12, findings 5 to 7), two emulated vaults
# (two regions) over real TLS: a region answering 503 with an hour's Retry-After, or not
# answering at all, costs an unwrap and a wrap seconds before they fail over to the healthy
# region (each run bounded by `timeout`, never by a timing assertion); a challenge naming the
# vault's host as its resource but another service's scope gets no token; a 403 whose message
# names the missing permission after ~600 bytes reaches the operator whole; a response header
# larger than libcurl takes is a backend error (exit 8), not "out of memory" (exit 9).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/azure.sh"

akv_start vault1
akv_start vault2
TENANT=$AKV_TENANT
{
    file_providers soft
    akv_instance vault1 "$KV_VAULT1_URL" "verify_challenge_resource: false"
    akv_instance vault2 "$KV_VAULT2_URL" "verify_challenge_resource: false"
    # the vault's challenge is checked (verify_challenge_resource defaults to true)
    akv_instance strict "https://localhost:$KV_VAULT2_PORT"
    akv_instance strictip "https://127.0.0.1:$KV_VAULT2_PORT"
    cat <<EOF
chains:
  tde:
    protector: { type: rsa, bits: 2048, origin: soft, exportable: true }
    replicas: [vault1, vault2]
    algorithm: RSA-OAEP
EOF
} >"$T/policy.yaml"
P="--policy $T/policy.yaml"
init_stores "$T/policy.yaml"
expect_rc 0 $P apply
head -c 32 /dev/urandom >"$T/dek"
expect_rc 0 $P wrap --chain tde --dek "file:$T/dek" --out "$T/env"

# bounded KIND ARGS...: keyplane ARGS under `timeout 40`; before the deadlines a 503 with
# Retry-After: 3600 held a request for 3 x 30 s and a tarpit for 4 x 30 s, so the old code is
# killed here (exit 124) instead of failing over.
bounded() {
    set +e
    timeout 40 "$KP_BIN" "$@" >"$T/out" 2>"$T/err"
    rc=$?
    set -e
    [ "$rc" -ne 124 ] || fail "keyplane $* still running after 40 s: no failover"
}
# the request id is random: lines are compared with it as [request -]
norm() { sed -E 's/\[(request [0-9a-f-]*, )?client request [0-9a-f-]*\]/[request -]/' "$T/err"; }

# vault1 answers every keys request 503 with Retry-After: 3600: unwrap fails over to vault2 at
# once, naming the wait it did not begin
$VCTL faults --dir "$V" --name vault1 '{"rate_503":1,"retry_after":3600}' >/dev/null
bounded $P unwrap --in "$T/env" --out "$T/dek.ra" --json
[ "$rc" -eq 0 ] || { cat "$T/err" >&2; fail "unwrap with vault1 at 503: exit $rc"; }
cmp "$T/dek" "$T/dek.ra" || fail "failover unwrapped a different DEK"
"$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["instance"]=="vault2", d' "$T/out"
norm | grep -F -x -q "keyplane: warning: unwrap with vault1 failed: 127.0.0.1:$KV_VAULT1_PORT: list versions of tde: HTTP 503 ServiceUnavailable [request -]: The service is temporarily unavailable (injected fault). (after 1 attempt; it asked to be retried in 3600 s, past this operation's deadline); failing over to vault2" ||
    { cat "$T/err" >&2; fail "no failover warning naming vault1's Retry-After"; }

# vault1 takes every keys request and never answers (a tarpit): unwrap gives it its deadline
# (deadline_ms, 10 s by default) and fails over; wrap's look at every replica is bounded too
$VCTL faults --dir "$V" --name vault1 '{"latency_ms":3600000}' >/dev/null
bounded $P unwrap --in "$T/env" --out "$T/dek.tp" --json
[ "$rc" -eq 0 ] || { cat "$T/err" >&2; fail "unwrap with vault1 a tarpit: exit $rc"; }
cmp "$T/dek" "$T/dek.tp" || fail "failover unwrapped a different DEK"
"$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["instance"]=="vault2", d' "$T/out"
grep -E -x -q "keyplane: warning: unwrap with vault1 failed: https://127\.0\.0\.1:$KV_VAULT1_PORT: timed out; no time left before the request's deadline \(Operation timed out after [0-9]+ milliseconds with 0 bytes received\) \[client request [0-9a-f-]{36}\]; failing over to vault2" "$T/err" ||
    { cat "$T/err" >&2; fail "no failover warning naming vault1's timeout"; }
bounded $P wrap --chain tde --dek "file:$T/dek" --out "$T/env.tp" --json
[ "$rc" -eq 0 ] || { cat "$T/err" >&2; fail "wrap with vault1 a tarpit: exit $rc"; }
"$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["instance"]!="vault1", d' "$T/out"
$VCTL stop --dir "$V" --name vault1 --kill >/dev/null

# a 403 whose message names the permission after ~600 bytes: the whole message reaches stderr
long=$("$PY" -c 'print("x" * 480)')
$VCTL faults --dir "$V" --name vault2 "{\"forbidden_ops\":[\"unwrapKey\"],\"forbidden_message\":\"The user, group or application 'appid=$long' does not have keys {op} permission on key vault 'vault2'.\"}" >/dev/null
expect_rc 4 $P unwrap --in "$T/env" --replica vault2 --out "$T/x"
norm | grep -F -x -q "keyplane: error: unwrap: vault2: 127.0.0.1:$KV_VAULT2_PORT: unwrapkey tde v1: HTTP 403 Forbidden [request -]: The user, group or application 'appid=$long' does not have keys unwrapkey permission on key vault 'vault2'." ||
    { cat "$T/err" >&2; fail "the 403's message was cut"; }
$VCTL faults --dir "$V" --name vault2 '{}' >/dev/null

# a response header line of 200 KB: a backend error, one line
$VCTL faults --dir "$V" --name vault2 '{"header_pad":200000}' >/dev/null
expect_rc 8 $P unwrap --in "$T/env" --replica vault2 --out "$T/x"
norm | grep -F -x -q "keyplane: error: unwrap: vault2: https://127.0.0.1:$KV_VAULT2_PORT: response header too large (a line over 102400 bytes) [request -]" ||
    { cat "$T/err" >&2; fail "an oversized header is not a backend error"; }
$VCTL faults --dir "$V" --name vault2 '{}' >/dev/null

# a challenge naming the vault's host as resource but Azure Resource Manager as scope: no token
# is asked for, the challenge is refused naming the scope
curl -sS --cacert "$KV_CA" -X POST "$KV_VAULT2_URL/_emulator/config" \
    -d "{\"challenge\":\"Bearer authorization=\\\"https://localhost:$KV_VAULT2_PORT/$TENANT\\\", resource=\\\"https://localhost\\\", scope=\\\"https://management.azure.com/.default\\\"\"}" \
    >/dev/null || fail "cannot set the challenge"
expect_rc 4 $P key public --instance strict --name tde --out "$T/x.pem"
grep -F -x -q "keyplane: error: key public: strict: localhost: the vault's challenge asks for a token for https://management.azure.com/.default, which is not a parent domain of localhost (verify_challenge_resource: false only for emulators)" "$T/err" ||
    { cat "$T/err" >&2; fail "a challenge for another service's scope was not refused"; }
# a parent "domain" without a dot of its own (a bare label, as a TLD would be), and a resource
# whose user part hides another host, are no parents of the vault
challenge() { # challenge RESOURCE
    curl -sS --cacert "$KV_CA" -X POST "$KV_VAULT2_URL/_emulator/config" \
        -d "{\"challenge\":\"Bearer authorization=\\\"https://localhost:$KV_VAULT2_PORT/$TENANT\\\", resource=\\\"$1\\\"\"}" \
        >/dev/null || fail "cannot set the challenge"
}
challenge "https://1"
expect_rc 4 $P key public --instance strictip --name tde --out "$T/x.pem"
grep -F -x -q "keyplane: error: key public: strictip: 127.0.0.1:$KV_VAULT2_PORT: the vault's challenge asks for a token for https://1, which is not a parent domain of 127.0.0.1 (verify_challenge_resource: false only for emulators)" "$T/err" ||
    { cat "$T/err" >&2; fail "a bare label was taken for the vault's parent domain"; }
challenge "https://localhost:1@evil.example"
expect_rc 4 $P key public --instance strict --name tde --out "$T/x.pem"
grep -F -x -q "keyplane: error: key public: strict: localhost: the vault's challenge asks for a token for https://localhost:1@evil.example, which is not a parent domain of localhost (verify_challenge_resource: false only for emulators)" "$T/err" ||
    { cat "$T/err" >&2; fail "a resource with a user part was taken for the vault's host"; }
# the vault's own host, with its port, passes the check: the plugin goes on to ask for a token
# for it (which the emulated directory, knowing only vault.azure.net, refuses: proof enough)
challenge "https://127.0.0.1:$KV_VAULT2_PORT"
expect_rc 4 $P key public --instance strictip --name tde --out "$T/x.pem"
grep -F -q "keyplane: error: key public: strictip: 127.0.0.1:$KV_VAULT2_PORT: token request to https://127.0.0.1:$KV_VAULT2_PORT/$TENANT refused (HTTP 400): invalid_scope: " "$T/err" ||
    { cat "$T/err" >&2; fail "the vault's own host was not taken for its challenge's resource"; }
echo "ok: azure_hostile"

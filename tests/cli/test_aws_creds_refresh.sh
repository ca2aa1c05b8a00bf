#!/bin/sh
# cli.aws_creds_refresh: the IMDSv2 flow, and temporary credentials expiring and refreshed within
# one process (docs/aws-plugin.md, "Credentials"), against one emulated region. One open
# instance is driven through steps by tests/integration/aws_creds_steps.c, so the world can
# change between two of its requests:
# - east's IMDS is strict (raw requests: a GET without a token or with a wrong one is 401, a
#   token PUT without a TTL is 400); keyplane asks it for a token (PUT) and then, with that
#   token, for the role and the role's credentials (its request log, in that order, all 200);
# - instance and container credentials that live longer than the 10 minutes of lead are fetched
#   once per process (one token, one credentials GET for a put, a put, a list, a get); living
#   5 minutes, they are fetched again before every request;
# - a refresh that fails while the old credentials have more than a minute left keeps them (IMDS
#   moved to a stub refusing tokens: every request tries the refresh once, and succeeds with
#   the same key); with less than a minute left, the operation fails and says why;
# - credentials expired by east between two operations (ExpiredToken, from IMDS, the container
#   endpoint and an assumed role): the next operation is refused once, finds new credentials
#   (a new key, one more fetch or AssumeRole) and succeeds;
# - east refused no signature but those expiries; no secret in any output.
. "$KP_SRC/tests/cli/lib.sh"
. "$KP_SRC/tests/cli/aws.sh"
EAST_ARGS="-- --log-requests"
. "$KP_SRC/tests/cli/aws_creds.sh"
: "${KP_AWS_CREDS_STEPS:?KP_AWS_CREDS_STEPS must name the aws_creds_steps driver}"
IMDS=${AWS_EAST_IMDS_URL%/}
ROLE_PATH=/latest/meta-data/iam/security-credentials/keyplane-instance-role
EXPIRE="sh:$ACTL control --dir $AWSD --name east POST credentials/expire {} >/dev/null"
stub_start down 403

steps() { # INSTANCE STEP...: the driver on $T/creds.yaml; output in $T/steps.out, exit in $src
    set +e
    "$KP_AWS_CREDS_STEPS" "$T/creds.yaml" "$@" >"$T/steps.out" 2>&1
    src=$?
    set -e
    cat "$T/steps.out" >>"$T/outputs.log"
}
steps_ok() {
    steps "$@"
    [ "$src" -eq 0 ] || { cat "$T/steps.out" >&2; fail "steps $*: exit $src"; }
}
config() { $ACTL control --dir "$AWSD" --name east POST config "$1" >/dev/null; }
imds_fetches() { east_stat 's["imds_requests"].get("'"$ROLE_PATH"'", 0)'; }
imds_tokens() { east_stat 's["imds_requests"].get("/latest/api/token", 0)'; }
container_gets() { east_stat 's["container_requests"].get("/creds", 0)'; }
requests() { east_stat 'sum(s["requests_by_service"].values())'; } # signed, every service
sts_requests() { east_stat 's["requests_by_service"].get("sts", 0)'; }
expired() { east_stat 's["signature_rejected_by_reason"].get("token_expired", 0)'; }
keys_seen() { # the access keys the check steps showed, one per line
    sed -n 's/.*(access key \.\.\.\(....\)).*/\1/p' "$T/steps.out"
}
delta() { # WHAT BEFORE AFTER WANT
    [ $(($3 - $2)) -eq "$4" ] || { cat "$T/steps.out" >&2; fail "$1: $(($3 - $2)), want $4"; }
}

# ---- IMDSv2, raw: the emulator is strict -------------------------------------------------
code() { curl -s -o "$T/curl.out" -w '%{http_code}' "$@"; }
[ "$(code "$IMDS/latest/meta-data/iam/security-credentials/")" = 401 ] ||
    fail "IMDS answered a GET without a token"
[ "$(code -X PUT "$IMDS/latest/api/token")" = 400 ] || fail "IMDS gave a token without a TTL"
[ "$(code -X PUT -H 'X-aws-ec2-metadata-token-ttl-seconds: 60' "$IMDS/latest/api/token")" = 200 ] ||
    fail "IMDS refused a token PUT"
tok=$(cat "$T/curl.out")
[ "$(code -H "X-aws-ec2-metadata-token: $tok" "$IMDS/latest/meta-data/iam/security-credentials/")" = 200 ] ||
    fail "IMDS refused its own token"
[ "$(cat "$T/curl.out")" = keyplane-instance-role ] || fail "IMDS role: $(cat "$T/curl.out")"
[ "$(code -H "X-aws-ec2-metadata-token: ${tok}x" "$IMDS/latest/meta-data/iam/security-credentials/")" = 401 ] ||
    fail "IMDS answered a GET with a wrong token"

# ---- IMDSv2, keyplane: the token first, then the GETs with it --------------------------
(
    clean_env
    imds_on
    lines=$(wc -l <"$AWSD/east.log")
    expect_creds sm instance-metadata imds,keyplane-instance-role
    tail -n +$((lines + 1)) "$AWSD/east.log" | grep '^imds ' | sed 's/ [^ ]*$//' >"$T/imds.log"
    cat >"$T/imds.want" <<EOF
imds "PUT /latest/api/token HTTP/1.1" 200
imds "GET /latest/meta-data/iam/security-credentials/ HTTP/1.1" 200
imds "GET $ROLE_PATH HTTP/1.1" 200
EOF
    diff "$T/imds.want" "$T/imds.log" >&2 || fail "keyplane's IMDS requests"
)

# ---- lifetime: once per process, or before every request -------------------------------
(
    clean_env
    imds_on
    for life in 3600 300; do
        config "{\"imds_lifetime\": $life}"
        t=$(imds_tokens) f=$(imds_fetches) r=$(requests)
        steps_ok sm put:life$life put:life$life list:life$life get:life$life
        expect_in "$T/steps.out" "list:life$life: 2 versions"
        expect_in "$T/steps.out" "get:life$life: the value put last"
        n=$(($(requests) - r))
        [ "$n" -ge 4 ] || fail "$n requests for 4 operations"
        if [ "$life" = 3600 ]; then
            delta "IMDS tokens, lifetime $life" "$t" "$(imds_tokens)" 1
            delta "IMDS credentials, lifetime $life" "$f" "$(imds_fetches)" 1
        else
            delta "IMDS tokens, lifetime $life" "$t" "$(imds_tokens)" "$n"
            delta "IMDS credentials, lifetime $life" "$f" "$(imds_fetches)" "$n"
        fi
    done
    clean_env
    container_on
    for life in 3600 300; do
        config "{\"container_lifetime\": $life}"
        c=$(container_gets) r=$(requests)
        steps_ok sm put:clife$life put:clife$life list:clife$life get:clife$life
        n=$(($(requests) - r))
        want=$n
        [ "$life" = 300 ] || want=1
        delta "container GETs, lifetime $life" "$c" "$(container_gets)" "$want"
    done
    config '{"container_lifetime": 3600}'
)

# ---- a failed refresh: the old credentials while they have a minute ---------------------
(
    clean_env
    imds_on
    # IMDS moved to a stub refusing every token: each request tries to refresh, and signs
    # with the old key
    config '{"imds_lifetime": 300}'
    steps_ok sm check "sh:$ACTL stats --dir $AWSD --name east >$T/mid.json" \
        "env:AWS_EC2_METADATA_SERVICE_ENDPOINT=$STUB_down_URL" put:old put:old list:old \
        get:old check
    expect_in "$T/steps.out" "list:old: 2 versions"
    mid=$($PY -c 'import json, sys; print(sum(json.load(open(sys.argv[1]))["requests_by_service"].values()))' "$T/mid.json")
    n=$(($(requests) - mid))
    # one attempt before each of the n requests, and the last check's own
    [ "$(grep -c 'PUT /latest/api/token' "$T/stub-down.log")" -eq $((n + 1)) ] ||
        fail "$(wc -l <"$T/stub-down.log") refresh attempts for $n requests"
    grep -qv 'PUT /latest/api/token' "$T/stub-down.log" && fail "IMDS asked without a token"
    [ "$(keys_seen | sort -u | wc -l)" -eq 1 ] || fail "the key changed: $(keys_seen)"
    port=$($PY -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    config '{"imds_lifetime": 30}'
    steps sm put:short "env:AWS_EC2_METADATA_SERVICE_ENDPOINT=http://127.0.0.1:$port" put:short
    [ "$src" -eq 1 ] || { cat "$T/steps.out" >&2; fail "a refresh failed 30 s before expiry"; }
    expect_in "$T/steps.out" "put:short: v1"
    expect_in "$T/steps.out" "put:short: error KP_ERR_AUTH: sm: no AWS credentials: none in the \
params, the environment, profile default, web identity or a container endpoint, and instance \
metadata (IMDSv2 token"
    config '{"imds_lifetime": 3600}'
)

# ---- ExpiredToken between two operations: refused once, found again --------------------
(
    clean_env
    imds_on
    e=$(expired) f=$(imds_fetches)
    steps_ok sm check put:exp list:exp "$EXPIRE" put:exp list:exp get:exp check
    delta "ExpiredToken answers (IMDS)" "$e" "$(expired)" 1
    delta "IMDS credentials" "$f" "$(imds_fetches)" 2
    expect_in "$T/steps.out" "list:exp: 2 versions"
    [ "$(keys_seen | sort -u | wc -l)" -eq 2 ] || fail "the key did not change: $(keys_seen)"
    clean_env
    container_on file
    e=$(expired) c=$(container_gets)
    steps_ok sm check put:cexp "$EXPIRE" put:cexp check
    delta "ExpiredToken answers (container)" "$e" "$(expired)" 1
    delta "container GETs" "$c" "$(container_gets)" 2
    [ "$(keys_seen | sort -u | wc -l)" -eq 2 ] || fail "the key did not change: $(keys_seen)"
    clean_env
    printf '[profile dev]\nrole_arn = %s\nsource_profile = base\n' "$ROLE" >"$AWS_CONFIG_FILE"
    printf '[base]\naws_access_key_id = %s\naws_secret_access_key = %s\n' "$KEY_CRED" \
        "$SEC_CRED" >"$AWS_SHARED_CREDENTIALS_FILE"
    export AWS_PROFILE=dev
    e=$(expired) s=$(sts_requests)
    steps_ok sm check put:rexp "$EXPIRE" put:rexp get:rexp check
    delta "ExpiredToken answers (assume-role)" "$e" "$(expired)" 1
    delta "AssumeRole requests" "$s" "$(sts_requests)" 2
    expect_in "$T/steps.out" "from assume-role"
    [ "$(keys_seen | sort -u | wc -l)" -eq 2 ] || fail "the key did not change: $(keys_seen)"
)

# ---- no refusal but the 3 expiries; no secret in any output ----------------------------
bad=$(east_stat 's["signature_rejected"], s["signature_rejected_by_reason"].get("token_expired")')
[ "$bad" = "3 3" ] || { east_stat 's["signature_rejected_last"]' >&2; fail "refusals: $bad"; }
no_secret_leaks "$AWSD/east.log"
echo "ok: IMDSv2 and the refresh of temporary credentials within one process"

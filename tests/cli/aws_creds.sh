# The credential-chain fixture of cli.aws_creds* (sourced after lib.sh and aws.sh): one emulated
# region "east" (us-east-1) with IMDS, the container endpoint, role kp-role (any principal may
# assume it) and role kp-web (web identity token $WEBTOK), four long-term keys besides aws.sh's
# (each secret fresh and random, each key id ending in its own 4 letters, which `check` shows;
# EAST_ARGS, when set, adds start options: "-- --log-requests" logs to $AWSD/east.log), and
# $T/creds.yaml, whose Secrets Manager instances differ only in who signs:
#   sm            the chain as it finds them          sm-params   access_key_id PARM, secret env:
#   sm-paramfile  access_key_id PARM, secret file:    sm-prod     profile: prod
#   sm-role       role_arn: kp-role (assumed with what the chain found)
# Helpers:
#   clean_env                 (in a subshell) no credential variable, empty shared files,
#                             instance metadata off: each case then sets what it needs
#   imds_on, container_on     AWS_EC2_METADATA_SERVICE_ENDPOINT / AWS_CONTAINER_* for east
#   expect_creds INST SOURCE WANT
#                             `check INST` is ok and says "from SOURCE (access key ...XXXX)":
#                             WANT is a long-term key id, or ORIGIN[,ROLE[,SESSION]] for a
#                             temporary key (ASIA...) east issued through ORIGIN (imds,
#                             container, sts:AssumeRole, sts:AssumeRoleWithWebIdentity)
#   expect_refused INST RC TEXT
#                             `secret list --instance INST` exits RC with one error line holding
#                             TEXT, and `check INST` fails (the credentials item, or the
#                             listing when the credentials are refused) with TEXT
#   east_stat EXPR            a value of east's /_emulator/stats (Python expression on s)
#   no_secret_leaks [FILE...] no secret of the test (secret keys, session tokens of every
#                             temporary credential east issued, the web identity and container
#                             tokens) in any output of keyplane nor in FILEs
#   stub_start NAME STATUS [tls]
#                             a one-status HTTP(S) server on loopback: STUB_<NAME>_URL; the
#                             request lines it got in $T/stub-NAME.log. At the top level of
#                             the test (the trap stops it), not in a subshell
# Every keyplane output (kp, expect_rc) is also appended to $T/outputs.log for no_secret_leaks.
rand() { openssl rand -hex "${1:-20}"; }
SEC_CRED=$(rand)
SEC_CONF=$(rand)
SEC_PROD=$(rand)
SEC_PARM=$(rand)
WEBTOK=kp-web-$(rand 24)
CTOKEN=kp-ctoken-$(rand 16)
KEY_CRED=AKIDKEYPLANECRED
KEY_CONF=AKIDKEYPLANECONF
KEY_PROD=AKIDKEYPLANEPROD
KEY_PARM=AKIDKEYPLANEPARM
ACCOUNT=123456789012
ROLE=arn:aws:iam::$ACCOUNT:role/kp-role
WEBROLE=arn:aws:iam::$ACCOUNT:role/kp-web
STUBS=

kp() {
    set +e
    "$KP_BIN" "$@" >"$T/out" 2>"$T/err"
    rc=$?
    set -e
    cat "$T/out" "$T/err" >>"$T/outputs.log"
    if [ "$rc" -ge 128 ]; then
        cat "$T/err" >&2
        fail "keyplane $* died with signal $((rc - 128))"
    fi
}

aws_start east us-east-1 --imds --container --container-token "$CTOKEN" \
    --role kp-role --web-identity-token "kp-web=$WEBTOK" \
    --credentials "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" \
    --credentials "$KEY_CRED:$SEC_CRED" --credentials "$KEY_CONF:$SEC_CONF" \
    --credentials "$KEY_PROD:$SEC_PROD" --credentials "$KEY_PARM:$SEC_PARM" ${EAST_ARGS:-}
trap '$ACTL stop-all --dir "$AWSD" --kill >/dev/null 2>&1 || true
      for p in $STUBS; do kill "$p" 2>/dev/null || true; done; rm -rf "$T"' EXIT
export SEC_PARM
printf '%s\n' "$SEC_PARM" >"$T/parm.secret"
printf '%s\n' "$WEBTOK" >"$T/web.token"
printf '%s\n' "$CTOKEN" >"$T/container.token"

sm_instance() { # NAME [extra param lines]
    cat <<YAML
  $1:
    plugin: aws
    service: secretsmanager
    region: us-east-1
    endpoint: $AWS_EAST_URL
    sts_endpoint: $AWS_EAST_URL
    ca_bundle: $AWS_CA
YAML
    shift
    for line in "$@"; do echo "    $line"; done
}
{
    echo "version: 1"
    echo "providers:"
    sm_instance sm
    sm_instance sm-params "access_key_id: $KEY_PARM" "secret_access_key: env:SEC_PARM"
    sm_instance sm-paramfile "access_key_id: $KEY_PARM" "secret_access_key: file:$T/parm.secret"
    sm_instance sm-prod "profile: prod"
    sm_instance sm-role "role_arn: $ROLE"
} >"$T/creds.yaml"
P="--policy $T/creds.yaml"

clean_env() {
    unset AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN AWS_PROFILE \
        AWS_WEB_IDENTITY_TOKEN_FILE AWS_ROLE_ARN AWS_ROLE_SESSION_NAME \
        AWS_CONTAINER_CREDENTIALS_FULL_URI AWS_CONTAINER_CREDENTIALS_RELATIVE_URI \
        AWS_CONTAINER_AUTHORIZATION_TOKEN AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE \
        AWS_EC2_METADATA_SERVICE_ENDPOINT
    AWS_EC2_METADATA_DISABLED=true
    export AWS_EC2_METADATA_DISABLED
    : >"$AWS_CONFIG_FILE"
    : >"$AWS_SHARED_CREDENTIALS_FILE"
}

imds_on() {
    AWS_EC2_METADATA_DISABLED=false
    AWS_EC2_METADATA_SERVICE_ENDPOINT=$AWS_EAST_IMDS_URL
    export AWS_EC2_METADATA_DISABLED AWS_EC2_METADATA_SERVICE_ENDPOINT
}

container_on() { # [token|file|none]
    AWS_CONTAINER_CREDENTIALS_FULL_URI=$AWS_EAST_CONTAINER_URL
    export AWS_CONTAINER_CREDENTIALS_FULL_URI
    case "${1:-token}" in
    token) export AWS_CONTAINER_AUTHORIZATION_TOKEN="$CTOKEN" ;;
    file) export AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE="$T/container.token" ;;
    esac
}

expect_creds() {
    expect_rc 0 $P check --json "$1"
    $PY - "$T/out" "$2" "$3" "$AWSD/east.state/iam/credentials" <<'PYEOF' ||
import glob, json, os, re, sys
out, source, want, recdir = sys.argv[1:5]
(inst,) = json.load(open(out))["instances"]
items = inst["items"]
assert items[0]["item"] == "credentials", items
assert all(i["ok"] for i in items), items
m = re.fullmatch(r"from (.+) \(access key \.\.\.(.{4})\)", items[0]["detail"])
assert m, items[0]["detail"]
assert m.group(1) == source, "source %r, want %r" % (m.group(1), source)
suffix = m.group(2)
if want.startswith("AKID"):
    assert want.endswith(suffix), "access key ...%s, want %s" % (suffix, want)
    sys.exit(0)
origin, role, session = (want.split(",") + ["", ""])[:3]
recs = [json.load(open(f)) for f in glob.glob(os.path.join(recdir, "*.json"))]
recs = [r for r in recs if r["akid"].endswith(suffix)]
assert recs, "no temporary credential of east ends with %s" % suffix
r = max(recs, key=lambda r: r["issued"])
assert r["akid"].startswith("ASIA") and r["source"] == origin, (r["akid"], r["source"], origin)
if role:
    assert r["role_arn"].endswith(":role/" + role), (r["role_arn"], role)
if session:
    assert r["session_name"] == session, (r["session_name"], session)
PYEOF
        { cat "$T/out" >&2; fail "check $1: credentials are not from $2 ($3)"; }
}

expect_refused() {
    expect_rc "$2" $P secret list --instance "$1"
    expect_in "$T/err" "$3"
    [ "$(wc -l <"$T/err")" -eq 1 ] || { cat "$T/err" >&2; fail "secret list $1: not one line"; }
    expect_rc 1 $P check --json "$1"
    $PY - "$T/out" "$3" <<'PYEOF' || { cat "$T/out" >&2; fail "check $1 did not fail with $3"; }
import json, sys
(inst,) = json.load(open(sys.argv[1]))["instances"]
bad = [i for i in inst["items"] if not i["ok"]]
assert bad and bad[0]["item"] in ("credentials", "secrets"), inst["items"]
assert sys.argv[2] in bad[0]["detail"] and "\n" not in bad[0]["detail"], bad[0]
PYEOF
}

east_stat() {
    $ACTL stats --dir "$AWSD" --name east |
        $PY -c 'import json, sys; s = json.load(sys.stdin); print('"$1"')'
}

no_secret_leaks() {
    [ -s "$T/outputs.log" ] || fail "no keyplane output was recorded"
    $PY - "$AWSD/east.state/iam/credentials" "$T/outputs.log" "$@" <<PYEOF ||
import glob, json, os, sys
secrets = {"secret key CRED": "$SEC_CRED", "secret key CONF": "$SEC_CONF",
           "secret key PROD": "$SEC_PROD", "secret key PARM": "$SEC_PARM",
           "secret key TEST": "$AWS_SECRET_ACCESS_KEY", "web identity token": "$WEBTOK",
           "container token": "$CTOKEN"}
for f in glob.glob(os.path.join(sys.argv[1], "*.json")):
    r = json.load(open(f))
    secrets["secret key of " + r["akid"]] = r["secret"]
    # the emulator's tokens share their first 17 characters
    secrets["session token of " + r["akid"]] = r["token"][17:]
# a part of a secret is a leak too: every 16 characters of the long ones
parts = {}
for what, value in secrets.items():
    parts[what] = [value]
    if len(value) >= 32:
        parts[what] += [value[i:i + 16] for i in range(0, len(value) - 15, 8)]
bad = 0
for path in sys.argv[2:]:
    text = open(path, errors="replace").read()
    for what, values in parts.items():
        if any(v and v in text for v in values):
            print("LEAK in %s: %s" % (path, what), file=sys.stderr)
            bad += 1
print("searched %d secrets in %d files" % (len(secrets), len(sys.argv) - 2))
sys.exit(1 if bad else 0)
PYEOF
        fail "a secret appeared in keyplane's output"
}

stub_start() { # NAME STATUS [tls]
    cert=
    [ "${3:-}" = tls ] && cert="$AWSD/pki/server.pem $AWSD/pki/server-key.pem"
    $PY - "$T/stub-$1.port" "$T/stub-$1.log" "$2" "$$" $cert <<'PYEOF' >"$T/stub-$1.err" 2>&1 &
import http.server, os, ssl, sys, threading, time
port_file, log, status, owner = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
def watch():  # the test's shell gone (killed before its trap ran): stop too
    while True:
        time.sleep(0.5)
        try:
            os.kill(owner, 0)
        except OSError:
            os._exit(0)
threading.Thread(target=watch, daemon=True).start()
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def answer(self):
        n = int(self.headers.get("Content-Length") or 0)
        if n:
            self.rfile.read(n)
        with open(log, "a") as f:
            f.write("%s %s\n" % (self.command, self.path))
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()
    do_GET = do_PUT = do_POST = answer
    def log_message(self, *a):
        pass
srv = http.server.HTTPServer(("127.0.0.1", 0), H)
if len(sys.argv) > 6:
    c = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    c.load_cert_chain(sys.argv[5], sys.argv[6])
    srv.socket = c.wrap_socket(srv.socket, server_side=True)
with open(port_file + ".tmp", "w") as f:
    f.write(str(srv.server_address[1]))
os.rename(port_file + ".tmp", port_file)
srv.serve_forever()
PYEOF
    STUBS="$STUBS $!"
    i=0
    while [ ! -s "$T/stub-$1.port" ]; do
        i=$((i + 1))
        [ "$i" -lt 100 ] || fail "stub $1 did not start"
        sleep 0.05
    done
    scheme=http
    [ -n "$cert" ] && scheme=https
    eval "STUB_$1_URL=$scheme://127.0.0.1:$(cat "$T/stub-$1.port")"
}

#!/bin/sh
# cli.aws_creds_errors: the aws plugin's credential chain when it cannot find or use credentials
# (docs/aws-plugin.md, "Credentials"), against one emulated region. Each failure is one line, in
# `secret list` (with its exit code) and in `check`:
# - exit 3: a profile named explicitly (param, AWS_PROFILE) in neither file; half the keys in the
#   environment (either half) or in a profile; a role profile with neither source_profile nor
#   credential_source, or with both; a source_profile loop (a -> b -> a; no STS request); a
#   source profile without keys; an unknown credential_source; a missing web identity token file;
# - exit 4: the container endpoint without its token (401) or with a wrong one (403); the IMDS
#   token PUT refused (403: no GET follows, no IMDSv1 fallback); no credentials anywhere with
#   instance metadata off, or unreachable (quickly): the error names every source tried; a wrong
#   secret key (Secrets Manager's InvalidSignatureException, STS's SignatureDoesNotMatch); a web
#   identity token STS refuses;
# - a source that applies but fails never hands over to a later one: the container endpoint
#   refusing or answering 404, STS answering 404 for a role profile, the IMDS token refused with
#   404 are errors, and instance metadata is not asked;
# - the signatures east refused are exactly the deliberate ones; no secret key, session token,
#   web identity or container token in any output, the -vv logs and the audit file included.
. "$KP_SRC/tests/cli/lib.sh"
. "$KP_SRC/tests/cli/aws.sh"
. "$KP_SRC/tests/cli/aws_creds.sh"
ENV_ID=$AWS_ACCESS_KEY_ID
ENV_SECRET=$AWS_SECRET_ACCESS_KEY
imds_gets() { east_stat 'sum(s["imds_requests"].values())'; }
rejected() { east_stat 's["signature_rejected"]'; }
role_profile() { # a config [default] assuming kp-role with base's keys (KEY, SECRET)
    printf '[default]\nrole_arn = %s\nsource_profile = base\n' "$ROLE" >"$AWS_CONFIG_FILE"
    printf '[base]\naws_access_key_id = %s\naws_secret_access_key = %s\n' "$1" "$2" \
        >"$AWS_SHARED_CREDENTIALS_FILE"
}
stub_start sts404 404 tls
stub_start imds403 403
{
    sm_instance sm-nope "profile: nope"
    cat <<YAML
  sm-badsts:
    plugin: aws
    service: secretsmanager
    region: us-east-1
    endpoint: $AWS_EAST_URL
    sts_endpoint: $STUB_sts404_URL
    ca_bundle: $AWS_CA
YAML
} >>"$T/creds.yaml"

# ---- the configuration is wrong: exit 3 ------------------------------------------------
(
    clean_env
    expect_refused sm-nope 3 "profile nope is in neither the shared config nor the credentials"
    export AWS_PROFILE=nope
    expect_refused sm 3 "profile nope is in neither the shared config nor the credentials file"
)
(
    clean_env
    export AWS_ACCESS_KEY_ID="$ENV_ID"
    expect_refused sm 3 "the environment has AWS_ACCESS_KEY_ID without AWS_SECRET_ACCESS_KEY"
    unset AWS_ACCESS_KEY_ID
    export AWS_SECRET_ACCESS_KEY="$ENV_SECRET"
    expect_refused sm 3 "the environment has AWS_SECRET_ACCESS_KEY without AWS_ACCESS_KEY_ID"
)
(
    clean_env
    printf '[default]\naws_access_key_id = %s\n' "$KEY_CRED" >"$AWS_SHARED_CREDENTIALS_FILE"
    expect_refused sm 3 \
        "profile default has aws_access_key_id or aws_secret_access_key without the other"
)
(
    clean_env
    n=$(east_stat 's["requests_by_service"].get("sts", 0)')
    printf '[default]\nrole_arn = %s\n' "$ROLE" >"$AWS_CONFIG_FILE"
    expect_refused sm 3 "profile default: role_arn needs exactly one of source_profile, \
credential_source and web_identity_token_file"
    printf 'source_profile = default\ncredential_source = Environment\n' >>"$AWS_CONFIG_FILE"
    expect_refused sm 3 "profile default: role_arn needs exactly one of source_profile"
    printf '[profile a]\nrole_arn = %s\nsource_profile = b\n[profile b]\nrole_arn = %s\nsource_profile = a\n' \
        "$ROLE" "$ROLE" >"$AWS_CONFIG_FILE"
    export AWS_PROFILE=a
    expect_refused sm 3 "source_profile chain longer than 4"
    printf '[profile a]\nrole_arn = %s\nsource_profile = nokeys\n[profile nokeys]\nregion = us-east-1\n' \
        "$ROLE" >"$AWS_CONFIG_FILE"
    expect_refused sm 3 "profile a: source_profile nokeys has no credentials"
    printf '[profile a]\nrole_arn = %s\ncredential_source = Ec2\n' "$ROLE" >"$AWS_CONFIG_FILE"
    expect_refused sm 3 "profile a: credential_source Ec2 is none of Environment, EcsContainer"
    printf '[profile a]\nrole_arn = %s\ncredential_source = Environment\n' "$ROLE" \
        >"$AWS_CONFIG_FILE"
    expect_refused sm 3 "profile a: credential_source Environment has no credentials"
    [ "$(east_stat 's["requests_by_service"].get("sts", 0)')" -eq "$n" ] ||
        fail "a broken role profile reached STS"
    unset AWS_PROFILE
    : >"$AWS_CONFIG_FILE"
    export AWS_WEB_IDENTITY_TOKEN_FILE="$T/no-such-token" AWS_ROLE_ARN="$WEBROLE"
    expect_refused sm 3 "cannot read the web identity token file $T/no-such-token"
)

# ---- a source that applies but fails: its error, never the next source -----------------
(
    clean_env
    imds_on
    i=$(imds_gets)
    container_on none
    expect_refused sm 4 "container credentials endpoint: HTTP 401"
    export AWS_CONTAINER_AUTHORIZATION_TOKEN=kp-wrong-token
    expect_refused sm 4 "container credentials endpoint: HTTP 403"
    export AWS_CONTAINER_CREDENTIALS_FULL_URI="$AWS_EAST_CONTAINER_URL/elsewhere"
    export AWS_CONTAINER_AUTHORIZATION_TOKEN="$CTOKEN"
    expect_refused sm 4 "container credentials endpoint: HTTP 404"
    [ "$(imds_gets)" -eq "$i" ] || fail "a failing container endpoint handed over to IMDS"
    # the token refused by IMDS: nothing but the PUT was sent
    unset AWS_CONTAINER_CREDENTIALS_FULL_URI AWS_CONTAINER_AUTHORIZATION_TOKEN
    export AWS_EC2_METADATA_SERVICE_ENDPOINT="$STUB_imds403_URL"
    expect_refused sm 4 "instance metadata (IMDSv2 token; in a container, the instance's hop \
limit may be 1): HTTP 403"
    printf 'PUT /latest/api/token\nPUT /latest/api/token\n' >"$T/want.log"
    cmp "$T/stub-imds403.log" "$T/want.log" || fail "IMDS was asked more than for a token"
    # a metadata endpoint answering 404 for the token is an error too, not "metadata is off"
    export AWS_EC2_METADATA_SERVICE_ENDPOINT="$AWS_EAST_CONTAINER_URL"
    expect_refused sm 4 "instance metadata (IMDSv2 token; in a container, the instance's hop \
limit may be 1): HTTP 404"
    # a role profile whose STS answers 404: no credentials from IMDS instead
    i=$(imds_gets)
    export AWS_EC2_METADATA_SERVICE_ENDPOINT="$AWS_EAST_IMDS_URL"
    role_profile "$KEY_CRED" "$SEC_CRED"
    expect_refused sm-badsts 8 "sts AssumeRole $ROLE: HTTP 404"
    [ "$(imds_gets)" -eq "$i" ] || fail "a role profile refused by STS handed over to IMDS"
    grep -q '^POST / *$' "$T/stub-sts404.log" || fail "STS was not asked"
    # a web identity token STS refuses
    clean_env
    printf 'kp-web-not-the-token\n' >"$T/other.token"
    export AWS_WEB_IDENTITY_TOKEN_FILE="$T/other.token" AWS_ROLE_ARN="$WEBROLE"
    expect_refused sm 4 "sts AssumeRoleWithWebIdentity $WEBROLE: AccessDenied"
)

# ---- nothing at all: the error names the sources tried ----------------------------------
(
    clean_env
    expect_refused sm 4 "no AWS credentials: none in the params, the environment, profile \
default, web identity or a container endpoint, and instance metadata is off"
    # instance metadata on but not there (a closed port): said so, within a few seconds
    port=$($PY -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    export AWS_EC2_METADATA_DISABLED=false AWS_EC2_METADATA_SERVICE_ENDPOINT="http://127.0.0.1:$port"
    start=$(date +%s)
    expect_refused sm 4 "no AWS credentials: none in the params, the environment, profile \
default, web identity or a container endpoint, and instance metadata (IMDSv2 token"
    [ $(($(date +%s) - start)) -le 5 ] || fail "an absent IMDS held keyplane up"
)

# ---- a wrong secret key: refused for its signature, and named --------------------------
(
    clean_env
    n=$(rejected)
    export AWS_ACCESS_KEY_ID="$ENV_ID" AWS_SECRET_ACCESS_KEY=kp-wrong-secret
    expect_refused sm 4 "secretsmanager ListSecrets (us-east-1): InvalidSignatureException: The \
request signature we calculated does not match the signature you provided"
    clean_env
    role_profile "$KEY_CRED" kp-wrong-secret
    expect_refused sm 4 "sts AssumeRole $ROLE: SignatureDoesNotMatch"
    [ "$(rejected)" -eq $((n + 4)) ] || fail "$(($(rejected) - n)) refusals, want 4"
)

# ---- the secrets stay out of the logs and the audit ------------------------------------
(
    clean_env
    role_profile "$KEY_CRED" "$SEC_CRED"
    printf 'kp-value-1' >"$T/v1"
    expect_rc 0 -vv $P --audit "$T/audit.log" secret put --instance sm --name creds-test \
        --value "file:$T/v1"
    expect_rc 0 -vv $P --audit "$T/audit.log" secret get --instance sm --name creds-test \
        --out "$T/v1.back"
    cmp "$T/v1" "$T/v1.back" || fail "secret get"
    clean_env
    container_on file
    expect_rc 0 -vv $P --audit "$T/audit.log" secret list --instance sm-role
    expect_in "$T/out" creds-test
    clean_env
    export AWS_WEB_IDENTITY_TOKEN_FILE="$T/web.token" AWS_ROLE_ARN="$WEBROLE"
    expect_rc 0 -vv $P --audit "$T/audit.log" check sm sm-role
    [ -s "$T/audit.log" ] || fail "no audit"
)
[ "$(rejected)" -eq 4 ] || fail "east refused $(rejected) signatures, want the 4 deliberate ones"
no_secret_leaks "$T/audit.log"
echo "ok: credential failures are one line with their exit code, and no secret is shown"

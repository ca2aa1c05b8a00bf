#!/bin/sh
# cli.aws_creds: the aws plugin's credential chain (docs/aws-plugin.md, "Credentials") against
# one emulated region that checks every signature with botocore; `keyplane check` names the
# source and the access key's last 4 characters, and lists the region's secrets with them.
# - each source alone: params (secret by env: and by file:), the environment (long-term keys;
#   temporary keys from STS with their session token, refused without it), a credentials-file
#   profile, a config-file profile, AWS_PROFILE and the `profile` param choosing a non-default
#   profile, web identity from the environment (AWS_ROLE_SESSION_NAME honoured), a profile with
#   role_arn + source_profile (role_session_name honoured; a chain of two roles), with
#   web_identity_token_file, with credential_source Environment, EcsContainer and
#   Ec2InstanceMetadata, the container endpoint (token, token file), IMDSv2, the role_arn param;
#   every temporary key is an ASIA... key east issued through that very path (its records say
#   which), and each AssumeRole is one STS request;
# - the precedence between them, as botocore's chain: params > environment > a profile's role >
#   web identity from the environment > the profile's keys (credentials file > config file) >
#   container > IMDS; AWS_PROFILE does not skip the environment, the `profile` param does;
# - the only refused signatures are the deliberate ones (a session token left out);
# - no secret key, session token, web identity or container token in any output.
. "$KP_SRC/tests/cli/lib.sh"
. "$KP_SRC/tests/cli/aws.sh"
. "$KP_SRC/tests/cli/aws_creds.sh"
ENV_ID=$AWS_ACCESS_KEY_ID
ENV_SECRET=$AWS_SECRET_ACCESS_KEY
sts() { east_stat 's["requests_by_service"].get("sts", 0)'; }
expect_sts() { # BEFORE N: N STS requests since BEFORE
    now=$(sts)
    [ "$now" -eq $(($1 + $2)) ] || fail "$((now - $1)) STS requests, want $2"
}
creds_default() { # KEY SECRET: [default] of the credentials file
    printf '[default]\naws_access_key_id = %s\naws_secret_access_key = %s\n' "$1" "$2" \
        >>"$AWS_SHARED_CREDENTIALS_FILE"
}
env_keys() {
    export AWS_ACCESS_KEY_ID="$ENV_ID" AWS_SECRET_ACCESS_KEY="$ENV_SECRET"
}
web_env() {
    export AWS_WEB_IDENTITY_TOKEN_FILE="$T/web.token" AWS_ROLE_ARN="$WEBROLE"
}
role_config() { # PROFILE-SECTION ROLE-ARN SETTING...: a role profile in the config file
    sect=$1
    arn=$2
    shift 2
    { echo "[$sect]"; echo "role_arn = $arn"; for s in "$@"; do echo "$s"; done; } \
        >>"$AWS_CONFIG_FILE"
}

# ---- each source alone ------------------------------------------------------------------
(
    clean_env
    expect_creds sm-params params "$KEY_PARM"
    expect_creds sm-paramfile params "$KEY_PARM"
)
(
    clean_env
    env_keys
    expect_creds sm environment "$ENV_ID"
)
# temporary keys in the environment: with their session token they work, without it east
# refuses them (the token is what makes them valid)
aws_cli --endpoint-url "$AWS_EAST_URL" --region us-east-1 sts assume-role --role-arn "$ROLE" \
    --role-session-name kp-env-session --output json >"$T/assumed.json"
$PY -c 'import json, sys
c = json.load(open(sys.argv[1]))["Credentials"]
print(c["AccessKeyId"], c["SecretAccessKey"], c["SessionToken"])' "$T/assumed.json" >"$T/tmp.keys"
rm -f "$T/assumed.json"
read -r TMP_ID TMP_SECRET TMP_TOKEN <"$T/tmp.keys"
rm -f "$T/tmp.keys"
(
    clean_env
    export AWS_ACCESS_KEY_ID="$TMP_ID" AWS_SECRET_ACCESS_KEY="$TMP_SECRET"
    export AWS_SESSION_TOKEN="$TMP_TOKEN"
    expect_creds sm environment sts:AssumeRole,kp-role,kp-env-session
    unset AWS_SESSION_TOKEN
    expect_refused sm 4 UnrecognizedClientException
)
(
    clean_env
    creds_default "$KEY_CRED" "$SEC_CRED"
    expect_creds sm "profile default" "$KEY_CRED"
)
(
    clean_env
    printf '[default]\naws_access_key_id = %s\naws_secret_access_key = %s\n' \
        "$KEY_CONF" "$SEC_CONF" >"$AWS_CONFIG_FILE"
    expect_creds sm "profile default" "$KEY_CONF"
)
(
    # a non-default profile: [prod] of the credentials file, [profile prod] of the config file
    clean_env
    creds_default "$KEY_CRED" "$SEC_CRED"
    printf '[prod]\naws_access_key_id = %s\naws_secret_access_key = %s\n' "$KEY_PROD" \
        "$SEC_PROD" >>"$AWS_SHARED_CREDENTIALS_FILE"
    export AWS_PROFILE=prod
    expect_creds sm "profile prod" "$KEY_PROD"
    unset AWS_PROFILE
    expect_creds sm-prod "profile prod" "$KEY_PROD"
    : >"$AWS_SHARED_CREDENTIALS_FILE"
    printf '[profile prod]\naws_access_key_id = %s\naws_secret_access_key = %s\n' "$KEY_PROD" \
        "$SEC_PROD" >"$AWS_CONFIG_FILE"
    expect_creds sm-prod "profile prod" "$KEY_PROD"
)
(
    clean_env
    web_env
    n=$(sts)
    expect_creds sm web-identity sts:AssumeRoleWithWebIdentity,kp-web,keyplane
    expect_sts "$n" 1
    export AWS_ROLE_SESSION_NAME=kp-eks-pod
    expect_creds sm web-identity sts:AssumeRoleWithWebIdentity,kp-web,kp-eks-pod
)
(
    # role_arn + source_profile: one AssumeRole signed with the source profile's keys; a role
    # whose source is that role profile: two (role chaining)
    clean_env
    role_config "profile dev" "$ROLE" "source_profile = base" "role_session_name = kp-dev"
    role_config "profile ops" "$ROLE" "source_profile = dev" "role_session_name = kp-ops"
    printf '[base]\naws_access_key_id = %s\naws_secret_access_key = %s\n' "$KEY_CRED" \
        "$SEC_CRED" >"$AWS_SHARED_CREDENTIALS_FILE"
    export AWS_PROFILE=dev
    n=$(sts)
    expect_creds sm assume-role sts:AssumeRole,kp-role,kp-dev
    expect_sts "$n" 1
    export AWS_PROFILE=ops
    expect_creds sm assume-role sts:AssumeRole,kp-role,kp-ops
    expect_sts "$n" 3
    # source_profile naming the profile itself: its own keys assume the role
    clean_env
    role_config default "$ROLE" "source_profile = default"
    creds_default "$KEY_CRED" "$SEC_CRED"
    expect_creds sm assume-role sts:AssumeRole,kp-role,keyplane
)
(
    clean_env
    role_config "profile eks" "$WEBROLE" "web_identity_token_file = $T/web.token"
    export AWS_PROFILE=eks
    expect_creds sm web-identity sts:AssumeRoleWithWebIdentity,kp-web,keyplane
)
(
    # credential_source: with the `profile` param, so the environment step does not come first
    clean_env
    role_config "profile prod" "$ROLE" "credential_source = Environment"
    env_keys
    n=$(sts)
    expect_creds sm-prod assume-role sts:AssumeRole,kp-role,keyplane
    expect_sts "$n" 1
    clean_env
    role_config "profile prod" "$ROLE" "credential_source = EcsContainer"
    container_on
    expect_creds sm-prod assume-role sts:AssumeRole,kp-role,keyplane
    clean_env
    role_config "profile prod" "$ROLE" "credential_source = Ec2InstanceMetadata"
    imds_on
    expect_creds sm-prod assume-role sts:AssumeRole,kp-role,keyplane
)
(
    clean_env
    container_on token
    expect_creds sm container container,keyplane-task-role
    clean_env
    container_on file
    expect_creds sm container container,keyplane-task-role
)
(
    clean_env
    imds_on
    expect_creds sm instance-metadata imds,keyplane-instance-role
)
(
    # the role_arn param: assumed with what the chain found
    clean_env
    env_keys
    n=$(sts)
    expect_creds sm-role assume-role sts:AssumeRole,kp-role,keyplane
    expect_sts "$n" 1
)

# ---- precedence ------------------------------------------------------------------------
(
    clean_env
    env_keys
    creds_default "$KEY_CRED" "$SEC_CRED"
    expect_creds sm-params params "$KEY_PARM"                # params > environment
    expect_creds sm environment "$ENV_ID"                    # environment > profile
    role_config "profile dev" "$ROLE" "source_profile = default"
    export AWS_PROFILE=dev
    n=$(sts)
    expect_creds sm environment "$ENV_ID"                    # AWS_PROFILE keeps the environment
    expect_sts "$n" 0
    printf '[prod]\naws_access_key_id = %s\naws_secret_access_key = %s\n' "$KEY_PROD" \
        "$SEC_PROD" >>"$AWS_SHARED_CREDENTIALS_FILE"
    expect_creds sm-prod "profile prod" "$KEY_PROD"          # the profile param skips it
)
(
    clean_env
    creds_default "$KEY_CRED" "$SEC_CRED"
    printf '[default]\naws_access_key_id = %s\naws_secret_access_key = %s\n' \
        "$KEY_CONF" "$SEC_CONF" >"$AWS_CONFIG_FILE"
    expect_creds sm "profile default" "$KEY_CRED"            # credentials file > config file
    container_on
    imds_on
    expect_creds sm "profile default" "$KEY_CRED"            # profile keys > container, IMDS
    web_env
    expect_creds sm web-identity sts:AssumeRoleWithWebIdentity,kp-web,keyplane # web id > keys
    # a role in the config file beats the same profile's keys in the credentials file, and
    # web identity from the environment
    : >"$AWS_CONFIG_FILE"
    role_config default "$ROLE" "source_profile = base"
    printf '[base]\naws_access_key_id = %s\naws_secret_access_key = %s\n' "$KEY_CONF" \
        "$SEC_CONF" >>"$AWS_SHARED_CREDENTIALS_FILE"
    expect_creds sm assume-role sts:AssumeRole,kp-role,keyplane
)
(
    clean_env
    container_on
    imds_on
    web_env
    expect_creds sm web-identity sts:AssumeRoleWithWebIdentity,kp-web,keyplane # > container
    unset AWS_WEB_IDENTITY_TOKEN_FILE AWS_ROLE_ARN
    expect_creds sm container container,keyplane-task-role   # container > IMDS
    unset AWS_CONTAINER_CREDENTIALS_FULL_URI
    expect_creds sm instance-metadata imds,keyplane-instance-role # IMDS last
    expect_creds sm-role assume-role sts:AssumeRole,kp-role,keyplane # role_arn on top of IMDS
)

# ---- no signature refused but the deliberate one; no secret in any output ---------------
# (secret list and check each sent the temporary key without its token once)
bad=$(east_stat 's["signature_rejected"], s["signature_rejected_by_reason"].get("token_missing")')
[ "$bad" = "2 2" ] || { east_stat 's["signature_rejected_last"]' >&2; fail "refusals: $bad"; }
no_secret_leaks
echo "ok: every credential source alone and their precedence"

# SoftHSM2 fixture for the CLI tests (sourced after lib.sh): a token store of its own in $T.
# softhsm_token LABEL PIN  creates and initialises a token; SOFTHSM2_CONF points at $T. The
# policies the HSM tests start from: hsm_policy, hsm_and_regions, hsm_tde_chain (below).
SOFTHSM_MODULE=""
for m in /usr/lib/softhsm/libsofthsm2.so /usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so \
    /usr/lib64/pkcs11/libsofthsm2.so; do
    [ -e "$m" ] && SOFTHSM_MODULE=$m && break
done
[ -n "$SOFTHSM_MODULE" ] || fail "libsofthsm2.so not found (install softhsm2)"
mkdir -p "$T/tokens"
printf 'directories.tokendir = %s/tokens\nobjectstore.backend = file\nlog.level = ERROR\n' "$T" \
    >"$T/softhsm2.conf"
SOFTHSM2_CONF=$T/softhsm2.conf
export SOFTHSM2_CONF

softhsm_token() {
    softhsm2-util --init-token --free --label "$1" --so-pin "so-$2" --pin "$2" >/dev/null \
        || fail "cannot initialise token $1"
}

# p11_objects LABEL PIN: how many objects the token holds (private ones included).
p11_objects() {
    pkcs11-tool --module "$SOFTHSM_MODULE" --token-label "$1" --login --pin "$2" \
        --list-objects 2>/dev/null | grep -c -E '^(Private Key|Public Key|Secret Key|Data|Certificate) Object'
}

# hsm_policy NAME PIN: the token "escrow" (user PIN PIN) and $T/policy.yaml begun with its
# providers: NAME, that token. HSM_PIN and KP_TEST_PASS (the file stores' passphrase) are
# exported (KP_TEST_PASS is kept when set). The caller appends more providers and its chains.
hsm_policy() {
    softhsm_token escrow "$2"
    HSM_PIN=$2
    KP_TEST_PASS=${KP_TEST_PASS:-$(openssl rand -hex 16)}
    export HSM_PIN KP_TEST_PASS
    cat >"$T/policy.yaml" <<YAML
version: 1
providers:
  $1: {plugin: pkcs11, module: $SOFTHSM_MODULE, token: escrow, pin: env:HSM_PIN}
YAML
}

# hsm_and_regions PIN: hsm_policy hsm PIN, and the providers west and east (file stores under
# $T). The caller appends its chains with >>.
hsm_and_regions() {
    hsm_policy hsm "$1"
    cat >>"$T/policy.yaml" <<YAML
  west: {plugin: file, path: west, passphrase: env:KP_TEST_PASS, kdf_iterations: 10000}
  east: {plugin: file, path: east, passphrase: env:KP_TEST_PASS, kdf_iterations: 10000}
YAML
}

# hsm_tde_chain: appends to hsm_and_regions' policy the chain the HSM tests share: tde, an
# exportable RSA-2048 protector made in hsm, replicated to west and east, escrowed in hsm,
# RSA-OAEP. A caller appends lines of tde's own (four spaces in) or more chains (two) after it.
hsm_tde_chain() {
    cat >>"$T/policy.yaml" <<YAML
chains:
  tde:
    protector: {type: rsa, bits: 2048, origin: hsm, exportable: true}
    replicas: [west, east]
    escrow: [hsm]
    algorithm: RSA-OAEP
YAML
}

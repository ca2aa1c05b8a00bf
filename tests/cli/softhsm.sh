# SoftHSM2 fixture for the CLI tests (sourced after lib.sh): a token store of its own in $T.
# softhsm_token LABEL PIN  creates and initialises a token; SOFTHSM2_CONF points at $T.
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

# Helpers of the keyplane backup tests (cli.backup, cli.backup_hostile), sourced after lib.sh and
# aws.sh with region east started.
#   one_line RC              stderr holds one line (a usage error, exit 2: the line and the hint)
#   nothing_left DIR         no output file and no temporary one in DIR
#   refused RC WORDS ARGS... exit RC, the first line of stderr holds WORDS, nothing in $T/o; with
#                            BK_ONE_LINE=1 (the default) stderr holds that line only
#   s3py SCRIPT ARGS...      runs the Python SCRIPT with s3 = boto3's S3 client of region east,
#                            args = ARGS
BK_ONE_LINE=${BK_ONE_LINE:-1}

one_line() {
    n=$(wc -l <"$T/err")
    want=1
    [ "$1" = 2 ] && want=2
    [ "$n" -eq "$want" ] || { cat "$T/err" >&2; fail "$n lines of error, want $want"; }
}

nothing_left() {
    left=$(ls -A "$1")
    [ -z "$left" ] || fail "left in $1: $left"
}

refused() {
    want=$1 words=$2
    shift 2
    rm -rf "$T/o"
    mkdir "$T/o"
    expect_rc "$want" "$@"
    [ "$BK_ONE_LINE" = 1 ] && one_line "$want"
    head -n 1 "$T/err" | grep -q -F -- "$words" || { cat "$T/err" >&2; fail "no '$words'"; }
    nothing_left "$T/o"
}

s3py() {
    script=$1
    shift
    /usr/bin/python3 - "$AWS_EAST_URL" "$AWS_CA" "$@" <<EOF
import base64, json, sys
import boto3
s3 = boto3.client("s3", endpoint_url=sys.argv[1], region_name="us-east-1", verify=sys.argv[2])
args = sys.argv[3:]
$script
EOF
}

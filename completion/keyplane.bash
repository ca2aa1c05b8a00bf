# bash completion for keyplane(1): subcommands, global and per-command options, and the chain
# and provider instance names of the policy in use (--policy/-p on the line, else
# $KEYPLANE_POLICY, else keyplane.yaml). Names are read from the policy file with awk, without
# running keyplane: completing never loads a plugin or reaches a store. The reader knows block
# style (a name per line under `providers:` and `chains:`, as docs/policy.md writes policies);
# names in a flow mapping (`chains: {a: ...}`) are not offered. Installed as
# share/bash-completion/completions/keyplane.

# _keyplane_names SECTION FILE: the keys directly under top-level SECTION (providers, chains).
_keyplane_names()
{
    [ -r "$2" ] && [ -f "$2" ] || return 0
    awk -v want="$1" '
        /^[^[:space:]#][^:]*:/ { sub(/:.*/, ""); inside = ($0 == want); indent = -1; next }
        !inside || /^[[:space:]]*(#|$)/ { next }
        {
            match($0, /^[[:space:]]*/)
            if (indent < 0) indent = RLENGTH
            if (RLENGTH != indent) next
            name = substr($0, RLENGTH + 1)
            if (name !~ /^[A-Za-z0-9_.-]+[[:space:]]*:/) next
            sub(/[[:space:]]*:.*/, "", name)
            print name
        }' "$2" 2>/dev/null
}

_keyplane()
{
    local cur prev words cword
    cur=${COMP_WORDS[COMP_CWORD]}
    prev=""
    [ "$COMP_CWORD" -gt 0 ] && prev=${COMP_WORDS[COMP_CWORD - 1]}
    local commands="plugins policy init check plan apply verify status restore rotate retire rewrap key wrap unwrap azure-sql sqlserver secret datakey backup"
    local globals="--policy --plugin-dir --json --audit --state-dir --verbose --quiet --version --help"
    local policy=${KEYPLANE_POLICY:-keyplane.yaml} cmd="" sub="" i w
    for ((i = 1; i < COMP_CWORD; i++)); do
        w=${COMP_WORDS[i]}
        case $w in
        --policy=*) policy=${w#--policy=} ;;
        --policy | -p) policy=${COMP_WORDS[i + 1]} ;;
        -*) ;;
        *)
            case ${COMP_WORDS[i - 1]} in
            --policy | -p | --plugin-dir | -P | --audit | --state-dir | --journal | --in | --out | \
                --kek | --chain | --to | --from | --replica | --instance | -r | --dek | --key | \
                --passphrase | --workers | --abandon | --name | --type | --bits | --cer | --pvk | \
                --password | --value | --meta | --key-id | --to-key-id | --context | --to-context | \
                --bytes | --ciphertext | --ciphertext-file | --plaintext-out | --kms-key | --db)
                continue
                ;;
            esac
            if [ -z "$cmd" ]; then
                cmd=$w
            elif [ -z "$sub" ] && { [ "$cmd" = key ] || [ "$cmd" = policy ] || [ "$cmd" = azure-sql ] ||
                [ "$cmd" = sqlserver ] || [ "$cmd" = secret ] || [ "$cmd" = datakey ] || [ "$cmd" = backup ]; }; then
                sub=$w
            fi
            ;;
        esac
    done
    policy=${policy/#\~/$HOME}

    case $prev in
    --policy | -p | --audit | --journal | --in | --out | --kek | --cer | --pvk | --ciphertext-file | \
        --plaintext-out)
        COMPREPLY=($(compgen -f -- "$cur"))
        return
        ;;
    --plugin-dir | -P | --state-dir)
        COMPREPLY=($(compgen -d -- "$cur"))
        return
        ;;
    --chain)
        COMPREPLY=($(compgen -W "$(_keyplane_names chains "$policy")" -- "$cur"))
        return
        ;;
    --to | --from | --replica | --instance | -r)
        # backup's --to is an s3:// object, not an instance
        [ "$cmd" = backup ] && [ "$prev" = --to ] && return
        COMPREPLY=($(compgen -W "$(_keyplane_names providers "$policy")" -- "$cur"))
        return
        ;;
    --dek | --key | --passphrase | --password | --value)
        COMPREPLY=($(compgen -W "env: file: fd: stdin" -- "$cur"))
        [ "${#COMPREPLY[@]}" -eq 1 ] && [ "${COMPREPLY[0]}" != stdin ] && compopt -o nospace
        return
        ;;
    --workers | --version | --abandon | --name | --type | --bits | --key-id | --to-key-id | \
        --context | --to-context | --bytes | --ciphertext | --kms-key | --db) return ;;
    esac

    if [ -z "$cmd" ]; then
        if [[ $cur == -* ]]; then
            COMPREPLY=($(compgen -W "$globals" -- "$cur"))
        else
            COMPREPLY=($(compgen -W "$commands" -- "$cur"))
        fi
        return
    fi

    local opts="" args=""
    case $cmd in
    plugins) opts="--params" ;;
    policy)
        [ -z "$sub" ] && { COMPREPLY=($(compgen -W "validate" -- "$cur")); return; }
        args=files ;;
    init | check) args=instances ;;
    plan) opts="--workers --detailed-exitcode"; args=chains ;;
    apply) opts="--workers --journal"; args=chains ;;
    verify | status) args=chains ;;
    restore) opts="--to --from --force"; args=chains ;;
    rotate) opts="--stage --activate --abandon --workers"; args=chains ;;
    retire) opts="--version"; args=chains ;;
    rewrap) args=files ;;
    wrap) opts="--chain --dek --replica --out" ;;
    azure-sql)
        [ -z "$sub" ] && { COMPREPLY=($(compgen -W "script" -- "$cur")); return; }
        opts="--powershell"; args=chains ;;
    unwrap) opts="--in --replica --out" ;;
    sqlserver)
        [ -z "$sub" ] && {
            COMPREPLY=($(compgen -W "import export rotate-script inventory-query inventory" -- "$cur"))
            return
        }
        case $sub in
        import) opts="--chain --cer --pvk --password" ;;
        export) opts="--chain --version --from --out --show-password" ;;
        rotate-script) args=chains ;;
        inventory) opts="--replace" ;;
        esac
        ;;
    secret)
        [ -z "$sub" ] && { COMPREPLY=($(compgen -W "put get list" -- "$cur")); return; }
        opts="--chain --instance --from --name --value --meta --version --out" ;;
    datakey)
        [ -z "$sub" ] && { COMPREPLY=($(compgen -W "generate decrypt reencrypt" -- "$cur")); return; }
        case $sub in
        generate) opts="--instance --key-id --context --bytes --plaintext-out" ;;
        decrypt) opts="--instance --key-id --context --ciphertext --ciphertext-file --plaintext-out" ;;
        reencrypt) opts="--instance --key-id --to-key-id --context --to-context --ciphertext --ciphertext-file" ;;
        esac
        ;;
    backup)
        [ -z "$sub" ] && { COMPREPLY=($(compgen -W "encrypt decrypt" -- "$cur")); return; }
        case $sub in
        encrypt) opts="--kms-key --instance --to --out --chain --replica --db --no-progress" ;;
        decrypt) opts="--out --instance --kms-key --via-chain --chain --replica --force --require-integrity --no-progress" ;;
        esac
        [[ $cur != -* ]] && { COMPREPLY=($(compgen -f -- "$cur")); return; }
        ;;
    key)
        local subs="create replicate generate import export export-byok backup restore-backup list public"
        [ -z "$sub" ] && { COMPREPLY=($(compgen -W "$subs" -- "$cur")); return; }
        case $sub in
        create | replicate) opts="--chain" ;;
        generate) opts="--instance --name --type --bits --version --exportable" ;;
        import) opts="--instance --name --key --passphrase --version --exportable" ;;
        export) opts="--instance --name --passphrase --out --version" ;;
        export-byok) opts="--instance --name --kek --kek-kid --out --version" ;;
        backup) opts="--instance --name --out" ;;
        restore-backup) opts="--instance --in" ;;
        list) opts="--instance --name" ;;
        public) opts="--instance --name --version --out" ;;
        esac
        ;;
    *) return ;;
    esac
    if [[ $cur == -* ]]; then
        COMPREPLY=($(compgen -W "$opts --json --help --policy --plugin-dir --audit --state-dir --verbose --quiet" -- "$cur"))
        return
    fi
    case $args in
    chains) COMPREPLY=($(compgen -W "$(_keyplane_names chains "$policy")" -- "$cur")) ;;
    instances) COMPREPLY=($(compgen -W "$(_keyplane_names providers "$policy")" -- "$cur")) ;;
    files) COMPREPLY=($(compgen -f -- "$cur")) ;;
    esac
}
complete -F _keyplane keyplane

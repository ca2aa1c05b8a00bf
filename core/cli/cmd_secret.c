/*
 * keyplane secret: the other secrets of a key hierarchy (a database master key's password, a
 * service master key backup's, a .pvk's) in secret stores. With --chain a secret travels like
 * the chain's key: put writes it to the chain's secrets store and to every secret replica, so a
 * DR region that has the key copy has the password too; get reads the first store that has it
 * (or the one --from names).
 */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include <keyplane/kit/codec.h>

#include "cli.h"

/* A chain names at most 64 stores (the policy's rule). */
#define S_STORES_MAX 64

static const char s_usage[] =
    "Usage: keyplane secret put (--chain CHAIN | --instance INSTANCE) --name NAME\n"
    "                           --value SOURCE [--meta KEY=VALUE]...\n"
    "       keyplane secret get (--chain CHAIN [--from INSTANCE] | --instance INSTANCE)\n"
    "                           --name NAME [--version N] [--out FILE]\n"
    "       keyplane secret list (--chain CHAIN | --instance INSTANCE) [--name NAME]\n"
    "\n"
    "Keeps secrets of the key hierarchy that are not keys: a database master key's\n"
    "password (CHAIN.dmk.DATABASE, which 'keyplane sqlserver export' reads), a .pvk's\n"
    "(CHAIN.pvk-password, which it writes), a service master key backup's.\n"
    "  put   a new version of NAME from SOURCE (env:NAME, file:PATH, fd:N or stdin;\n"
    "        never the value itself). With --chain: into the chain's secrets store and\n"
    "        every secret replica of the chain, so the secret is wherever the key's\n"
    "        copies are.\n"
    "  get   the value (newest version, or --version N) to FILE (0600) or stdout. With\n"
    "        --chain: from the chain's secrets store, else the first secret replica that\n"
    "        has it; --from names the store to read.\n"
    "  list  the versions and metadata of NAME (every secret without --name).\n"
    "Names: [A-Za-z0-9._-], at most 127. Every subcommand takes --json.\n"
    "\n"
    "Exit status: 0 done; 1 put reached some stores only; 2 usage; 3 policy invalid or\n"
    "no secrets store; 5 no such secret, version, chain or instance; 6, 8 store failures.\n";

typedef struct s_opts {
    const char *chain, *instance, *from, *name, *value, *out;
    kp_cli_pairs meta;
    uint32_t version;
} s_opts;

static int s_parse(kp_cli *cli, int argc, char **argv, s_opts *o)
{
    static const struct option opts[] = {{"chain", required_argument, NULL, 'c'},
                                         {"instance", required_argument, NULL, 'i'},
                                         {"from", required_argument, NULL, 'f'},
                                         {"name", required_argument, NULL, 'n'},
                                         {"value", required_argument, NULL, 'v'},
                                         {"out", required_argument, NULL, 'o'},
                                         {"meta", required_argument, NULL, 'm'},
                                         {"version", required_argument, NULL, 'V'},
                                         {"json", no_argument, NULL, 'j'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "jh", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            o->chain = optarg;
            break;
        case 'i':
            o->instance = optarg;
            break;
        case 'f':
            o->from = optarg;
            break;
        case 'n':
            o->name = optarg;
            break;
        case 'v': {
            int rc = kp_cli_source_opt("secret", "value", optarg, true);
            if (rc != KP_EXIT_OK)
                return rc;
            o->value = optarg;
            break;
        }
        case 'o':
            o->out = optarg;
            break;
        case 'm': {
            int rc = kp_cli_pair_opt("secret", "meta", optarg, &o->meta);
            if (rc != KP_EXIT_OK)
                return rc;
            break;
        }
        case 'V': {
            int rc = kp_cli_version_opt("secret", optarg, false,
                                        "--version must be a version number", &o->version);
            if (rc != KP_EXIT_OK)
                return rc;
            break;
        }
        case 'j':
            cli->json = true;
            break;
        case 'h':
            fputs(s_usage, stdout);
            return -1;
        default:
            return kp_cli_bad_option("secret", argv);
        }
    }
    return KP_EXIT_OK;
}

/* The stores of o: the instance, or the chain's secrets store then its secret replicas
 * (replicas that are no keystore, and secret_replicas). KP_EXIT_OK with names[0..*n). */
static int s_stores(kp_cli *cli, const s_opts *o, const char **names, size_t *n)
{
    *n = 0;
    if ((o->chain == NULL) == (o->instance == NULL))
        return kp_cli_usage_error("secret", "give --chain or --instance (one of them)");
    if (o->instance != NULL) {
        if (kp_policy_instance_plugin(cli->policy, o->instance) == NULL)
            return kp_cli_not_in_policy(cli, "instance", o->instance);
        names[(*n)++] = o->instance;
        return KP_EXIT_OK;
    }
    const kp_chain_policy *c = kp_policy_chain(cli->policy, o->chain);
    if (c == NULL)
        return kp_cli_not_in_policy(cli, "chain", o->chain);
    if (c->secrets == NULL)
        return kp_cli_error(KP_ERR_CONFIG, "chain '%s' names no 'secrets' store", o->chain);
    names[(*n)++] = c->secrets;
    for (size_t pass = 0; pass < 2; pass++) {
        const char *const *list = pass == 0 ? c->replicas : c->secret_replicas;
        size_t count = pass == 0 ? c->nreplicas : c->nsecret_replicas;
        for (size_t i = 0; i < count && *n < S_STORES_MAX; i++) {
            uint32_t caps = kp_policy_instance_capabilities(cli->policy, list[i]);
            bool dup = false;
            for (size_t j = 0; j < *n; j++)
                dup = dup || strcmp(names[j], list[i]) == 0;
            if (!dup && (caps & KP_CAP_SECRETSTORE) && (pass == 1 || !(caps & KP_CAP_KEYSTORE)))
                names[(*n)++] = list[i];
        }
    }
    if (o->from != NULL) {
        for (size_t i = 0; i < *n; i++)
            if (strcmp(names[i], o->from) == 0) {
                names[0] = o->from;
                *n = 1;
                return KP_EXIT_OK;
            }
        return kp_cli_error(KP_ERR_NOT_FOUND,
                            "--from %s: not the secrets store or a secret replica of chain '%s'",
                            o->from, o->chain);
    }
    return KP_EXIT_OK;
}

/* The names keyplane writes itself for a chain's copies (secret_replica.c): a put under one would
 * become the newest copy a restore takes. */
static const char *const s_owned[] = {"key", "pvk", "cer", "password"};

static int s_put(kp_cli *cli, const s_opts *o, const char **names, size_t n)
{
    if (o->value == NULL)
        return kp_cli_usage_error("secret put", "--value SOURCE is required");
    for (size_t i = 0; i < kp_policy_chain_count(cli->policy); i++) {
        const char *chain = kp_policy_chain_at(cli->policy, i)->name;
        size_t len = strlen(chain);
        for (size_t k = 0; k < sizeof(s_owned) / sizeof(s_owned[0]); k++)
            if (o->name != NULL && strncmp(o->name, chain, len) == 0 && o->name[len] == '.' &&
                strcmp(o->name + len + 1, s_owned[k]) == 0)
                return kp_cli_error(KP_ERR_INVALID_ARG,
                                    "%s is where keyplane keeps chain %s's copies (apply writes "
                                    "it): choose another name",
                                    o->name, chain);
    }
    char err[256];
    kp_secret *value = NULL;
    kp_status st = kp_secret_read_source(o->value, 1024 * 1024, 0, &value, err, sizeof(err));
    if (st != KP_OK)
        return kp_cli_error(st, "--value: %s", err);
    if (kp_secret_len(value) == 0) {
        kp_secret_free(value);
        return kp_cli_error(KP_ERR_INVALID_ARG, "--value %s: empty; nothing was stored", o->value);
    }
    kp_meta meta[KP_CLI_PAIRS_MAX + 1];
    size_t nm = 0;
    if (o->chain != NULL)
        meta[nm++] = (kp_meta){"chain", o->chain};
    for (size_t i = 0; i < o->meta.n; i++)
        meta[nm++] = o->meta.meta[i];
    json_t *done = cli->json ? json_array() : NULL;
    size_t failed = 0;
    for (size_t i = 0; i < n; i++) {
        kp_instance *inst = NULL;
        uint32_t ver = 0;
        st = kp_instance_open(cli->ctx, cli->policy, names[i], &inst);
        if (st == KP_OK)
            st = kp_store_put(inst, o->name, value, meta, nm, &ver);
        if (st != KP_OK) {
            failed++;
            kp_cli_fail(cli, st, names[i]);
        } else if (cli->json) {
            json_array_append_new(
                done, json_pack("{s:s, s:i}", "instance", names[i], "version", (int)ver));
        } else {
            kp_cli_info(cli, stdout, "%s: %s v%u\n", names[i], o->name, ver);
        }
        kp_instance_close(inst);
    }
    kp_secret_free(value);
    if (cli->json)
        kp_cli_print_json(
            json_pack("{s:s, s:o, s:i}", "name", o->name, "stores", done, "failed", (int)failed));
    return failed == 0 ? KP_EXIT_OK : failed == n ? kp_cli_exit_code(st) : KP_EXIT_FAIL;
}

static int s_get(kp_cli *cli, const s_opts *o, const char **names, size_t n)
{
    kp_status st = KP_ERR_NOT_FOUND;
    kp_secret *value = NULL;
    size_t i = 0;
    char why[512] = "";
    for (; i < n && value == NULL; i++) {
        kp_instance *inst = NULL;
        st = kp_instance_open(cli->ctx, cli->policy, names[i], &inst);
        if (st == KP_OK)
            st = kp_store_get(inst, o->name, o->version, &value, NULL, NULL);
        if (st != KP_OK)
            snprintf(why, sizeof(why), "%s: %s", names[i],
                     kpk_after_name(kp_ctx_last_error(cli->ctx), names[i]));
        kp_instance_close(inst);
    }
    if (value == NULL)
        return kp_cli_error(st, "secret %s%s%.0u: %s", o->name, o->version != 0 ? " v" : "",
                            o->version, why);
    const char *from = names[i - 1];
    int rc = KP_EXIT_OK;
    if (o->out != NULL && strcmp(o->out, "-") != 0) {
        st = kp_cli_write_secret(cli, o->out, kp_secret_cdata(value), kp_secret_len(value));
        rc = st == KP_OK ? KP_EXIT_OK : kp_cli_fail(cli, st, o->out);
        if (rc == KP_EXIT_OK && cli->json)
            kp_cli_print_json(
                json_pack("{s:s, s:s, s:s}", "name", o->name, "instance", from, "out", o->out));
        else if (rc == KP_EXIT_OK)
            kp_cli_info(cli, stderr, "wrote %s from %s to %s\n", o->name, from, o->out);
    } else if (cli->json) {
        char *text = calloc(1, kp_secret_len(value) + 1);
        if (text != NULL && memchr(kp_secret_cdata(value), '\0', kp_secret_len(value)) == NULL) {
            memcpy(text, kp_secret_cdata(value), kp_secret_len(value));
            kp_cli_print_json(json_pack("{s:s, s:s, s:o}", "name", o->name, "instance", from,
                                        "value", kp_cli_jstr(text)));
        } else {
            rc = kp_cli_error(KP_ERR_INVALID_ARG, "secret %s is not text: use --out FILE", o->name);
        }
        if (text != NULL)
            kp_memwipe(text, kp_secret_len(value));
        free(text);
    } else {
        fwrite(kp_secret_cdata(value), 1, kp_secret_len(value), stdout);
    }
    kp_secret_free(value);
    return rc;
}

typedef struct s_listing {
    kp_cli *cli;
    const char *instance;
    json_t *rows;
} s_listing;

static kp_status s_visit(void *arg, const kp_secret_info *info, const kp_meta *meta, size_t n)
{
    s_listing *l = arg;
    json_t *m = json_object();
    for (size_t i = 0; i < n; i++)
        json_object_set_new(m, meta[i].key, kp_cli_jstr(meta[i].value));
    if (l->rows != NULL) {
        json_array_append_new(l->rows,
                              json_pack("{s:s, s:s, s:i, s:I, s:o}", "instance", l->instance,
                                        "name", info->name, "version", (int)info->version,
                                        "created", (json_int_t)info->created, "meta", m));
        return KP_OK;
    }
    char *text = json_dumps(m, JSON_COMPACT);
    printf("%-16s %-32s v%-4u %s\n", l->instance, info->name, info->version,
           text != NULL ? text : "");
    free(text);
    json_decref(m);
    return KP_OK;
}

static int s_list(kp_cli *cli, const s_opts *o, const char **names, size_t n)
{
    s_listing l = {cli, NULL, cli->json ? json_array() : NULL};
    int rc = KP_EXIT_OK;
    for (size_t i = 0; i < n; i++) {
        kp_instance *inst = NULL;
        l.instance = names[i];
        kp_status st = kp_instance_open(cli->ctx, cli->policy, names[i], &inst);
        if (st == KP_OK)
            st = kp_store_list(inst, o->name, s_visit, &l);
        if (st != KP_OK && st != KP_ERR_NOT_FOUND)
            rc = kp_cli_fail(cli, st, names[i]);
        kp_instance_close(inst);
    }
    if (cli->json)
        kp_cli_print_json(json_pack("{s:o}", "secrets", l.rows));
    return rc;
}

int kp_cmd_secret(kp_cli *cli, int argc, char **argv)
{
    static const char *const subs[] = {"put", "get", "list", NULL};
    size_t which = 0;
    int rc = kp_cli_subcommand(cli, "secret", s_usage, subs, &argc, &argv, &which);
    if (rc != KP_EXIT_OK)
        return rc < 0 ? KP_EXIT_OK : rc;
    const char *sub = subs[which];
    s_opts o = {0};
    if ((rc = s_parse(cli, argc, argv, &o)) != KP_EXIT_OK)
        return rc < 0 ? KP_EXIT_OK : rc;
    if (optind != argc)
        return kp_cli_usage_error("secret", "unexpected argument '%s'", argv[optind]);
    if (strcmp(sub, "list") != 0 && o.name == NULL)
        return kp_cli_usage_error("secret", "--name NAME is required");
    if (o.from != NULL && (strcmp(sub, "get") != 0 || o.chain == NULL))
        return kp_cli_usage_error("secret", "--from goes with get --chain");
    if ((rc = kp_cli_load_policy(cli)) != KP_EXIT_OK)
        return rc;
    const char *names[S_STORES_MAX];
    size_t n = 0;
    if ((rc = s_stores(cli, &o, names, &n)) != KP_EXIT_OK)
        return rc;
    if (strcmp(sub, "put") == 0)
        return s_put(cli, &o, names, n);
    if (strcmp(sub, "get") == 0)
        return s_get(cli, &o, names, n);
    return s_list(cli, &o, names, n);
}

/*
 * Internal declarations of the `aws` plugin: secret stores in Amazon S3 and AWS Secrets Manager
 * (one plugin, one instance kind per `service` param), reached over HTTPS with the provider
 * kit's transport, signed with the kit's SigV4, with credentials found the way the AWS CLI finds
 * them. Nothing here crosses the plugin boundary.
 *
 * Mapping. A keyplane secret `name`, version N, is one object (S3) or one secret (Secrets
 * Manager) named `<prefix><name>/v<N>`, created only when absent (S3 `If-None-Match: *`, Secrets
 * Manager CreateSecret), so two runners can never both write version N and nothing is ever
 * overwritten. One Secrets Manager secret per version, not one version per secret: Secrets
 * Manager deletes versions that carry no staging label once a secret has more than 100, and caps
 * the labels of a secret, so a history kept for old backups would not survive there.
 *
 * Files, each calling only the ones before it (link.cycles checks it): aws_xml and aws_ini
 * (pure parsers); aws_params (the params), aws_endpoint (URLs); aws_http (transport, signing,
 * error answers); aws_sts and aws_creds_src (credential sources), aws_creds (the chain and its
 * cache); aws_s3 (object calls), aws_sm (Secrets Manager calls); aws_s3_store, aws_sm_store (the
 * secret-store functions); aws_check; and at the top aws_plugin, which nothing calls.
 */
#ifndef KP_AWS_INTERNAL_H
#define KP_AWS_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <jansson.h>

#include <keyplane/kit/http.h>
#include <keyplane/kit/sigv4.h>
#include <keyplane/provider.h>

#define KP_AWS_ERR 512     /* one error line */
#define KP_AWS_URL_MAX 512 /* an endpoint URL, or a whole request URL without its query */
#define KP_AWS_REGION_MAX 32
#define KP_AWS_PREFIX_MAX 200
#define KP_AWS_MAX_REPLICAS 8
/* Secrets Manager's largest SecretString or SecretBinary (the API reference). */
#define KP_AWS_SM_VALUE_MAX 65536
/* S3 user metadata: 2 KB of keys and values together (the S3 user guide). */
#define KP_AWS_S3_META_MAX 2048
/* One lookup or listing (the `deadline_ms` param), as in every cloud plugin: a region that does
 * not answer costs seconds before the core fails over. */
#define KP_AWS_DEFAULT_DEADLINE_MS 10000L
#define KP_AWS_ARN_MAX 256
#define KP_AWS_SPKI_MAX 800 /* an RSA-4096 SubjectPublicKeyInfo is 550 bytes */
#define KP_AWS_SPKI_CACHE 16
#define KP_AWS_ALIAS_MAX 257 /* a KMS alias name (256 characters) and its NUL */
#define KP_AWS_PINS 64       /* aliases whose first key an instance remembers */
/* Temporary credentials are refreshed this long before they expire (botocore refreshes
 * 15 minutes ahead when it can, and must 10 minutes ahead). */
#define KP_AWS_REFRESH_AHEAD_S 600

/* Errors: the one way this plugin sets error text, on x (an instance, or a kp_aws_sink *). */
typedef struct kp_aws_sink {
    const kp_upcalls *up;
    kp_core_handle *h;
} kp_aws_sink;
#define KP_AWS_SINK(a) ((kp_aws_sink){.up = (a)->up, .h = (a)->h})
#define kp_aws_err(x, st, ...) KP_ERRORF((x)->up, (x)->h, st, __VA_ARGS__)

/* Types. */

typedef enum kp_aws_service {
    KP_AWS_S3 = 1,
    KP_AWS_SM = 2,
    KP_AWS_KMS = 3, /* a keystore of imported RSA keys, and data keys */
} kp_aws_service;

/** Credentials in use: where they came from, and until when (0: long-term). */
typedef struct kp_aws_creds {
    char access_key_id[128];
    kp_secret *secret; /* the secret access key */
    kp_secret *token;  /* the session token, NULL for long-term keys */
    time_t expires;
    char source[64]; /* "environment", "profile prod", "assume-role", "web-identity",
                        "container", "instance-metadata", "params" */
} kp_aws_creds;

/** A region the instance replicates to (Secrets Manager) with its KMS key and endpoint. */
typedef struct kp_aws_replica {
    char region[KP_AWS_REGION_MAX];
    char kms_key[256];
    char endpoint[KP_AWS_URL_MAX]; /* "" until kp_aws_endpoint resolves it */
} kp_aws_replica;

typedef struct kp_aws_plugin {
    kp_upcalls up;
    kp_core_handle *h;
    uint16_t core_minor; /* the core's KP_ABI_MINOR: objects (1.6) only for a core that has them */
} kp_aws_plugin;

/** One open instance. */
typedef struct kp_aws_inst {
    const kp_upcalls *up;
    kp_core_handle *h;
    kp_aws_service service;
    char region[KP_AWS_REGION_MAX];
    char bucket[64];
    char prefix[KP_AWS_PREFIX_MAX];
    char kms_key[256];             /* SSE-KMS key (S3), KmsKeyId (Secrets Manager); "" none */
    char endpoint[KP_AWS_URL_MAX]; /* resolved endpoint of the service in region */
    char sts_endpoint[KP_AWS_URL_MAX];
    char kms_endpoint[KP_AWS_URL_MAX];
    char s3_endpoint[KP_AWS_URL_MAX]; /* objects (s3 and kms kinds): where S3 answers */
    bool virtual_host;                /* S3: BUCKET.host addressing */
    bool s3_virtual;                  /* objects: BUCKET.host addressing on s3_endpoint */
    bool objects; /* KP_INST_OBJECTS: the kind keeps them, the core knows them */
    kp_aws_replica replicas[KP_AWS_MAX_REPLICAS];
    size_t nreplicas;
    char profile[128];
    char role_arn[256]; /* the `role_arn` param: assume it with the chain's credentials */
    char access_key_param[128];
    kp_secret *secret_param; /* `secret_access_key` param, with access_key_id */
    kpk_http_config http_cfg;
    char ca_bundle[1024];
    long deadline_ms;

    pthread_mutex_t lock; /* guards everything below: one request at a time per instance */
    int64_t deadline;     /* kpk_http_clock_ms() by which the operation must end; 0 = none */
    kpk_http *http;
    kp_aws_creds creds;  /* access_key_id[0] == 0: none yet */
    char request_id[64]; /* x-amz-request-id / x-amzn-RequestId of the last failure */
    char kms_arn[300];   /* kms_key resolved by DescribeKey ("" not yet) */
    bool kms_resolve_failed;
    /* KMS keystore: public keys by key ARN (a key's imported material never changes: KMS
     * refuses other material), filled round-robin */
    struct {
        char arn[KP_AWS_ARN_MAX];
        uint8_t der[KP_AWS_SPKI_MAX];
        size_t len;
    } spki[KP_AWS_SPKI_CACHE];
    size_t spki_next;
    /* KMS keystore: the key each version's alias named when the instance first resolved it (an
     * alias re-pointed since is refused: a wrap must go to the key a lookup before it showed
     * the core), filled round-robin */
    struct {
        char alias[KP_AWS_ALIAS_MAX];
        char arn[KP_AWS_ARN_MAX];
    } pins[KP_AWS_PINS];
    size_t pin_next;
} kp_aws_inst;

/* aws_xml.c: the leaves of an XML document, through expat. */

/** Called for every element that holds text, with its path from the root ("Error/Code") and
 *  its text; a non-KP_OK return stops the walk and is returned. */
typedef kp_status kp_aws_xml_leaf_fn(void *arg, const char *path, const char *text);
/** Walks body/len. KP_ERR_BACKEND with a reason in err when it is not well-formed XML, nests
 *  deeper than 8, or a text is over 64 KiB. */
kp_status kp_aws_xml_walk(const uint8_t *body, size_t len, kp_aws_xml_leaf_fn *leaf, void *arg,
                          char *err, size_t errlen);

/* aws_time.c */
/** Parses an ISO 8601 UTC time ("2026-12-05T01:02:03Z", fractions allowed). -1 when bad. */
time_t kp_aws_iso8601(const char *s);

/* aws_ini.c: the AWS CLI's shared config and credentials files. */

/** The value of key in section of the INI file path into out (cap bytes). Sections are
 *  "[default]", "[profile NAME]" (config) or "[NAME]" (credentials): section is the text
 *  between the brackets. Nested settings ("s3 =" then indented lines) are skipped.
 *  @return KP_OK, KP_ERR_NOT_FOUND (no file, section or key), KP_ERR_CONFIG (a line that is
 *  not INI, a value longer than cap), with a reason in err naming file and line. */
kp_status kp_aws_ini_get(const char *path, const char *section, const char *key, char *out,
                         size_t cap, char *err, size_t errlen);
/** Whether section exists in path. */
bool kp_aws_ini_has(const char *path, const char *section);

/* aws_names.c: version N of NAME is `<prefix>NAME/vN` in both stores. */

#define KP_AWS_META_MAX 32
/** The full name of version (0: the prefix of every version, "<prefix>NAME/v") into out;
 *  KP_ERR_INVALID_ARG for a name the ABI refuses or a result over cap. */
kp_status kp_aws_version_name(kp_aws_inst *a, const char *name, uint32_t version, char *out,
                              size_t cap);
/** Whether full is a version name of this instance's prefix, with its NAME and N. */
bool kp_aws_version_parse(const kp_aws_inst *a, const char *full, char name[KP_NAME_MAX],
                          uint32_t *version);
/** Checks metadata for SS_PUT: keys of [a-z0-9_.-], not the store's, not twice. */
kp_status kp_aws_meta_check(kp_aws_inst *a, const kp_meta *meta, size_t nmeta);

/** Versions found by a listing, with the store's id of each (may be NULL). */
typedef struct kp_aws_ventry {
    char name[KP_NAME_MAX];
    uint32_t version;
    char *id;
} kp_aws_ventry;
typedef struct kp_aws_vlist {
    kp_aws_ventry *v;
    size_t n, cap;
} kp_aws_vlist;
kp_status kp_aws_vlist_add(kp_aws_vlist *l, const char *name, uint32_t version, const char *id);
/** Sorts by name, then version, and drops repeats. */
void kp_aws_vlist_sort(kp_aws_vlist *l);
/** The highest version of name, 0 when none. */
uint32_t kp_aws_vlist_last(const kp_aws_vlist *l, const char *name);
void kp_aws_vlist_free(kp_aws_vlist *l);

/* aws_params.c */
extern const kp_param_desc kp_aws_param_list[];
/** Checks and copies every param into a new instance (a->up and a->h set, the rest zero);
 *  resolves the endpoints (aws_endpoint.c). KP_ERR_CONFIG with a reason. */
kp_status kp_aws_params_take(kp_aws_inst *a, const kp_param *params);
/** The service a params list names, 0 with an error on to when none or another. */
kp_aws_service kp_aws_params_service(kp_aws_sink to, const kp_param *params);
kp_instance_info_fn kp_aws_instance_info;
kp_plugin_describe_fn kp_aws_plugin_describe;

/* aws_endpoint.c */
/** The endpoint of service (signing name "s3", "secretsmanager", "sts") in region: param (when
 *  not NULL or ""), else AWS_ENDPOINT_URL_<SERVICE>, else AWS_ENDPOINT_URL, else AWS's own
 *  https://<service>.<region>.amazonaws.com. Checked with the kit's URL rule (http:// only for
 *  loopback). KP_ERR_CONFIG with a reason naming where the bad URL came from. */
kp_status kp_aws_endpoint(kp_aws_sink to, const char *service, const char *region,
                          const char *param, char out[KP_AWS_URL_MAX]);
/** Whether a region name is well formed: [a-z0-9-]{1,31}, starting with a letter. */
bool kp_aws_region_valid(const char *region);

/* aws_http.c: one signed request and its answer. */

typedef struct kp_aws_req {
    const char *service;  /* signing name */
    const char *region;   /* signing region */
    const char *endpoint; /* https://host[:port] */
    const char *method;
    const char *path;           /* encoded, starting with '/' */
    const char *query;          /* canonical (kpk_sigv4_query), may be NULL */
    const char *const *headers; /* signed and sent, NULL-ended; may be NULL */
    const uint8_t *body;
    size_t body_len;
    unsigned flags;        /* KPK_HTTP_UNSAFE */
    bool anonymous;        /* not signed (AssumeRoleWithWebIdentity) */
    bool unsigned_payload; /* S3 over TLS: UNSIGNED-PAYLOAD, the body not hashed (what the SDKs
                              send over HTTPS; TLS guards it on the way) */
    uint8_t *into;         /* kpk_http_request.into: a 2xx body lands there */
    size_t into_cap;
} kp_aws_req;

/** Takes the instance's lock for one operation; a bounded one (lookups, listings, reads: what
 *  failover waits on) gets a->deadline_ms for all its requests. Release with kp_aws_end. */
void kp_aws_begin(kp_aws_inst *a, bool bounded);
void kp_aws_end(kp_aws_inst *a);
/** Sends req signed with the instance's credentials (found or refreshed first). Any HTTP answer
 *  is KP_OK (resp->status says which); no answer sets the error text. */
kp_status kp_aws_send(kp_aws_inst *a, const kp_aws_req *req, kpk_http_response *resp);
/** Sends req unsigned or signed with creds (the credential sources use it). */
kp_status kp_aws_send_with(kp_aws_inst *a, const kp_aws_req *req, const kp_aws_creds *creds,
                           kpk_http_response *resp);
/** The status of a non-2xx answer, with "<what>: <Code>: <Message> (request id R)" as the
 *  error text: S3 and STS answer XML, Secrets Manager and KMS JSON. Throttling codes are
 *  KP_ERR_THROTTLED whatever the HTTP status. code (may be NULL) receives the AWS error code. */
kp_status kp_aws_fail(kp_aws_inst *a, const kpk_http_response *r, const char *what, char *code,
                      size_t codelen);

/* aws_sts.c */
/** AssumeRole with creds (the source profile's), into out. */
kp_status kp_aws_sts_assume(kp_aws_inst *a, const kp_aws_creds *creds, const char *role_arn,
                            const char *session, kp_aws_creds *out);
/** AssumeRoleWithWebIdentity (unsigned) with the token read from token_file. */
kp_status kp_aws_sts_web_identity(kp_aws_inst *a, const char *role_arn, const char *token_file,
                                  const char *session, kp_aws_creds *out);

/* aws_creds_src.c: the sources of the chain, each KP_ERR_NOT_FOUND when it does not apply. */
kp_status kp_aws_creds_env(kp_aws_inst *a, kp_aws_creds *out);
kp_status kp_aws_creds_profile(kp_aws_inst *a, const char *profile, kp_aws_creds *out);
kp_status kp_aws_creds_web_identity(kp_aws_inst *a, kp_aws_creds *out);
kp_status kp_aws_creds_container(kp_aws_inst *a, kp_aws_creds *out);
kp_status kp_aws_creds_imds(kp_aws_inst *a, kp_aws_creds *out);
/** Frees what c holds and zeroes it. */
void kp_aws_creds_clear(const kp_upcalls *up, kp_aws_creds *c);
/** Takes access key, secret and token (NULL: none) into out; KP_ERR_NOMEM. */
kp_status kp_aws_creds_set(kp_aws_inst *a, kp_aws_creds *out, const char *akid, const char *secret,
                           size_t secret_len, const char *token, time_t expires,
                           const char *source);

/* aws_creds.c */
/** Makes sure a->creds are there and not about to expire: the chain (params, environment,
 *  profile, web identity, container, instance metadata), then role_arn when given. */
kp_status kp_aws_creds_ensure(kp_aws_inst *a);

/* aws_s3.c: object calls. */

/** One object's head. */
typedef struct kp_aws_object {
    uint64_t size;
    int64_t created; /* Last-Modified */
    char sse[32];    /* x-amz-server-side-encryption */
    char etag[128];  /* ETag, quotes kept */
    char kms_key[256];
    kp_meta *meta; /* the user metadata, every pair kp_meta can carry (S3 keeps 2 KB of it) */
    size_t nmeta;
    char *strings; /* owns meta, and its keys and values */
} kp_aws_object;
void kp_aws_object_clear(kp_aws_object *o);
/** Objects larger than this are uploaded in parts (aws_s3_multipart.c). */
#define KP_AWS_S3_MULTIPART_MIN (16u * 1024 * 1024)
/** One part: S3 takes 5 MiB to 5 GiB for every part but the last. */
#define KP_AWS_S3_PART (8u * 1024 * 1024)
/** Where S3 requests go: a bucket at an endpoint with its addressing. sse: new objects get
 *  SSE-KMS under the instance's kms_key (the s3 kind's own bucket); without it the bucket's
 *  default encryption applies, and parts go UNSIGNED-PAYLOAD (backups: TLS guards them, as
 *  the SDKs do over HTTPS, and hashing a part would cost what encrypting it does). */
typedef struct kp_aws_s3_at {
    char bucket[64];
    char endpoint[KP_AWS_URL_MAX];
    bool virtual_host;
    bool sse;
} kp_aws_s3_at;
/** The instance's own bucket (the s3 kind). */
void kp_aws_s3_at_own(const kp_aws_inst *a, kp_aws_s3_at *at);
/** One S3 request. */
typedef struct kp_aws_s3_req {
    const char *method;
    const char *key; /* "" for the bucket itself */
    const char *query;
    const char *const *headers;
    const uint8_t *body;
    size_t len;
    unsigned flags;
    bool unsigned_payload;
    uint8_t *into; /* a 2xx body goes there (kpk_http_request.into) */
    size_t into_cap;
} kp_aws_s3_req;
/** Sends r to at (NULL: the instance's own bucket); resp holds any HTTP answer. */
kp_status kp_aws_s3_call(kp_aws_inst *a, const kp_aws_s3_at *at, const kp_aws_s3_req *r,
                         kpk_http_response *resp);
/** The headers of a new object at at (NULL: own): its content type, SSE-KMS when at->sse, the
 *  metadata (2 KB at most). */
typedef struct kp_aws_s3_headers {
    const char *list[KP_AWS_META_MAX + 8]; /* NULL-ended, room for two more */
    char *lines[KP_AWS_META_MAX + 1];
    char kms[320];
} kp_aws_s3_headers;
kp_status kp_aws_s3_put_headers(kp_aws_inst *a, const kp_aws_s3_at *at, const kp_meta *meta,
                                size_t nmeta, kp_aws_s3_headers *h);
void kp_aws_s3_headers_free(kp_aws_s3_headers *h);
/** One request to the instance's bucket (key "" for the bucket itself). */
kp_status kp_aws_s3_send(kp_aws_inst *a, const char *method, const char *key, const char *query,
                         const char *const *headers, const uint8_t *body, size_t len,
                         unsigned flags, kpk_http_response *resp);
/** The status of a PUT's answer: KP_ERR_EXISTS for If-None-Match's 412, KP_ERR_CONFLICT for a
 *  write in flight (409), else the failure with what in its text. */
kp_status kp_aws_s3_put_result(kp_aws_inst *a, const kpk_http_response *r, const char *what);

/** A multipart upload in progress (the S3 API reference: CreateMultipartUpload, UploadPart,
 *  CompleteMultipartUpload, AbortMultipartUpload). */
typedef struct kp_aws_mpu {
    kp_aws_s3_at at;
    char key[1025];
    char id[1024];
    char what[KP_AWS_PREFIX_MAX + 200];
    char (*etags)[80];
    unsigned parts, cap;
} kp_aws_mpu;
/** CreateMultipartUpload of key at at with the object's headers (metadata). */
kp_status kp_aws_mpu_begin(kp_aws_inst *a, const kp_aws_s3_at *at, const char *key,
                           const kp_meta *meta, size_t nmeta, kp_aws_mpu *u);
/** UploadPart of the next part (each a PUT the transport may repeat alone). */
kp_status kp_aws_mpu_part(kp_aws_inst *a, kp_aws_mpu *u, const uint8_t *body, size_t len);
/** CompleteMultipartUpload with If-None-Match: * (KP_ERR_EXISTS when the key appeared). A
 *  failure other than a lost answer (which may have made the object) aborts the upload. Frees
 *  u's parts either way. */
kp_status kp_aws_mpu_complete(kp_aws_inst *a, kp_aws_mpu *u);
/** AbortMultipartUpload (best effort: the error text of why stays) and frees u's parts. */
void kp_aws_mpu_abort(kp_aws_inst *a, kp_aws_mpu *u);
/** kp_aws_s3_create_at in parts of KP_AWS_S3_PART. */
kp_status kp_aws_s3_multipart(kp_aws_inst *a, const kp_aws_s3_at *at, const char *key,
                              const uint8_t *body, size_t len, const kp_meta *meta, size_t nmeta);
/** A PUT of key at at (NULL: own) with If-None-Match: *, body and metadata; in parts past
 *  KP_AWS_S3_MULTIPART_MIN. KP_ERR_EXISTS when the key exists. */
kp_status kp_aws_s3_create_at(kp_aws_inst *a, const kp_aws_s3_at *at, const char *key,
                              const uint8_t *body, size_t len, const kp_meta *meta, size_t nmeta);
kp_status kp_aws_s3_create(kp_aws_inst *a, const char *key, const uint8_t *body, size_t len,
                           const kp_meta *meta, size_t nmeta);
/** HEAD (body NULL) or GET of key at at (NULL: own), with what S3 says of the object into o
 *  (NULL: not read). KP_ERR_NOT_FOUND when absent. */
kp_status kp_aws_s3_get_at(kp_aws_inst *a, const kp_aws_s3_at *at, const char *key,
                           kp_aws_object *o, kp_secret **body);
kp_status kp_aws_s3_get(kp_aws_inst *a, const char *key, kp_aws_object *o, kp_secret **body);
/** HEAD of the bucket: KP_ERR_NOT_FOUND when it does not exist, KP_ERR_CONFIG when it is in
 *  another region (named in region, as S3's x-amz-bucket-region says). */
kp_status kp_aws_s3_head_bucket(kp_aws_inst *a, char *region, size_t cap);
/** kp_aws_s3_head_bucket of at's bucket (NULL: own). */
kp_status kp_aws_s3_head_bucket_at(kp_aws_inst *a, const kp_aws_s3_at *at, char *region,
                                   size_t cap);
/** Calls fn for every key under prefix (ListObjectsV2, all pages). */
kp_status kp_aws_s3_list(kp_aws_inst *a, const char *prefix,
                         kp_status (*fn)(void *arg, const char *key), void *arg);

/* aws_json.c: JSON 1.1 services. */

/** Where a JSON call goes: the signing name, its X-Amz-Target prefix, region and endpoint. */
typedef struct kp_aws_target {
    const char *service; /* "secretsmanager", "kms" */
    const char *prefix;  /* "secretsmanager", "TrentService" */
    const char *region;
    const char *endpoint;
} kp_aws_target;
/** POST of op with body j (not consumed); the 2xx answer's JSON object in *out (the caller
 *  frees it). ResourceNotFoundException and NotFoundException are KP_ERR_NOT_FOUND (with the
 *  text set); code (may be NULL) receives the error code of any failure. */
kp_status kp_aws_json_call(kp_aws_inst *a, const kp_aws_target *t, const char *op, const json_t *j,
                           bool unsafe, json_t **out, char *code, size_t codelen);
/** kp_aws_json_call with the body already serialised (it may hold a secret: the caller wipes
 *  it). */
kp_status kp_aws_json_raw(kp_aws_inst *a, const kp_aws_target *t, const char *op,
                          const uint8_t *body, size_t len, bool unsafe, json_t **out, char *code,
                          size_t codelen);

/* aws_sm.c: Secrets Manager calls. Replica 0 is the instance's region, i its replicas[i-1]. */
void kp_aws_sm_target(const kp_aws_inst *a, size_t replica, kp_aws_target *t);
/** CreateSecret with the instance's KMS key and replicas. KP_ERR_EXISTS (code
 *  ResourceExistsException) when the name is taken. */
kp_status kp_aws_sm_create(kp_aws_inst *a, const char *secret_name, const char *token,
                           const char *description, const kp_secret *value, char *code,
                           size_t codelen);
/** GetSecretValue (version_id NULL: AWSCURRENT) in region replica: value and its version id. */
kp_status kp_aws_sm_value(kp_aws_inst *a, size_t replica, const char *secret_name,
                          const char *version_id, kp_secret **value, char id_out[80]);
kp_status kp_aws_sm_describe(kp_aws_inst *a, size_t replica, const char *secret_name, json_t **out);
/** ListSecrets whose name starts with name_prefix, every page: fn per SecretList entry. */
kp_status kp_aws_sm_list(kp_aws_inst *a, size_t replica, const char *name_prefix,
                         kp_status (*fn)(void *arg, json_t *secret), void *arg);
/** ListSecretVersionIds (deprecated ones included), every page. */
kp_status kp_aws_sm_version_ids(kp_aws_inst *a, size_t replica, const char *secret_name,
                                kp_status (*fn)(void *arg, const char *id), void *arg);

/* aws_kms.c */
/** Resolves kms_key with KMS DescribeKey into a->kms_arn, once (a->kms_resolve_failed when KMS
 *  would not say: no kms:DescribeKey, or no such key). */
void kp_aws_kms_resolve(kp_aws_inst *a);
/** Whether arn (what S3 reports of an object) is the instance's kms_key in its region. */
bool kp_aws_kms_key_is(kp_aws_inst *a, const char *arn);

/* aws_kms_keys.c: the KMS keystore's keys. Version N of key NAME is one KMS key (RSA,
 * ENCRYPT_DECRYPT, Origin EXTERNAL), named by the alias alias/<prefix><NAME>/vN (a '.' of NAME
 * written "_-", a '_' "__": alias names take neither '.' nor a way to quote) and tagged with
 * the name, version and expected fingerprint. A key whose material is not imported yet
 * (PendingImport) is invisible to readers. */

/** What DescribeKey says of a key. */
typedef struct kp_aws_kms_key {
    char arn[KP_AWS_ARN_MAX];
    char state[32]; /* KeyState */
    char spec[24];  /* KeySpec */
    char usage[24]; /* KeyUsage */
    char origin[24];
    char expiration[40]; /* ExpirationModel, "" when the key has none */
    int64_t created, deletion;
} kp_aws_kms_key;
#define KP_AWS_TAG_NAME "keyplane-name"
#define KP_AWS_TAG_VERSION "keyplane-version"
#define KP_AWS_TAG_FPR "keyplane-fingerprint"
#define KP_AWS_TAG_ALIAS "keyplane-alias" /* the alias the key was made for */
/** One KMS call of the instance's KMS (the kms kind's endpoint, else kms_endpoint). */
kp_status kp_aws_kms_call(kp_aws_inst *a, const char *op, const json_t *j, bool unsafe,
                          json_t **out, char *code, size_t codelen);
/** The alias of name/version into out ("alias/<prefix><NAME>/v" for version 0). */
kp_status kp_aws_kms_alias(kp_aws_inst *a, const char *name, uint32_t version, char *out,
                           size_t cap);
/** DescribeKey of ref (an alias, an ARN) into k; KP_ERR_NOT_FOUND quietly when absent. */
kp_status kp_aws_kms_describe(kp_aws_inst *a, const char *ref, kp_aws_kms_key *k);
/** The value of tag key of the key arn into out ("" when it has none). */
kp_status kp_aws_kms_tag(kp_aws_inst *a, const char *arn, const char *key, char *out, size_t cap);
/** The public key (SubjectPublicKeyInfo DER) of the key arn, from GetPublicKey or the cache:
 *  *spki borrowed until the instance's lock is released. */
kp_status kp_aws_kms_public(kp_aws_inst *a, const char *arn, const uint8_t **spki, size_t *len);
/** The visible key of name/version (0: the latest visible one) into k, its version in
 *  *resolved. KP_ERR_NOT_FOUND when there is none (a key pending its import included);
 *  KP_ERR_INTEGRITY when the version's alias names another key than it did when this instance
 *  first resolved it (kp_aws_kms_pin). */
kp_status kp_aws_kms_find(kp_aws_inst *a, const char *name, uint32_t version, uint32_t *resolved,
                          kp_aws_kms_key *k);
/** The public key of the enabled version name/version (0: the latest) into spki (takes and
 *  releases the instance's lock); KP_ERR_DENIED when the version is not enabled. */
kp_status kp_aws_kms_spki(kp_aws_inst *a, const char *name, uint32_t version,
                          uint8_t spki[KP_AWS_SPKI_MAX], size_t *len);
/** Pins alias to the key arn: KP_OK when the alias was not pinned (it is now) or pinned to arn;
 *  KP_ERR_INTEGRITY when it is pinned to another key, unless replace (an import this instance
 *  made and checked). */
kp_status kp_aws_kms_pin(kp_aws_inst *a, const char *alias, const char *arn, bool replace);
/** The aliases of name (every keyplane key when NULL) as versions, their targets as ids. */
kp_status kp_aws_kms_versions(kp_aws_inst *a, const char *name, kp_aws_vlist *l);
/** info of name/version held by k (its fingerprint from the key itself when enabled). */
kp_status kp_aws_kms_info(kp_aws_inst *a, const char *name, uint32_t version,
                          const kp_aws_kms_key *k, kp_key_info *info);
/** A KMS listing op (ListKeys, ListAliases) page by page (Limit limit, Marker/NextMarker),
 *  fn called for each item of the answer's array member; with page_deadline, each page gets
 *  a->deadline_ms of its own. A non-KP_OK from fn stops the walk and is returned. */
kp_status kp_aws_kms_pages(kp_aws_inst *a, const char *op, const char *member, int limit,
                           bool page_deadline, kp_status (*fn)(void *arg, json_t *item), void *arg);
/** The base64 member field of a KMS answer into a new secret, jansson's copy wiped. */
kp_status kp_aws_kms_plain(kp_aws_inst *a, json_t *out, const char *field, kp_secret **plain);
kp_ks_get_fn kp_aws_kms_ks_get;
kp_ks_list_fn kp_aws_kms_ks_list;
kp_ks_get_public_fn kp_aws_kms_ks_get_public;

/* aws_kms_wrap.c: wrap with the public key here, unwrap with KMS Decrypt. */
kp_ks_wrap_fn kp_aws_kms_ks_wrap;
kp_ks_unwrap_fn kp_aws_kms_ks_unwrap;

/* aws_kms_import.c: imports (KS_IMPORT, wrapped here; KS_IMPORT_OFFER/KS_IMPORT_WRAPPED). */
kp_ks_import_fn kp_aws_kms_ks_import;
kp_ks_import_offer_fn kp_aws_kms_ks_import_offer;
kp_ks_import_wrapped_fn kp_aws_kms_ks_import_wrapped;

/* aws_kms_dk.c */
kp_dk_generate_fn kp_aws_dk_generate;
kp_dk_decrypt_fn kp_aws_dk_decrypt;
kp_dk_reencrypt_fn kp_aws_dk_reencrypt;

/* aws_obj.c: objects (ABI 1.6) at "s3://BUCKET/KEY", for the s3 and kms kinds. */
kp_ob_create_fn kp_aws_ob_create;
kp_ob_write_fn kp_aws_ob_write;
kp_ob_close_fn kp_aws_ob_close;
kp_ob_stat_fn kp_aws_ob_stat;
kp_ob_read_fn kp_aws_ob_read;

kp_ss_put_fn kp_aws_s3_ss_put;
kp_ss_get_fn kp_aws_s3_ss_get;
kp_ss_list_fn kp_aws_s3_ss_list;
kp_ss_put_fn kp_aws_sm_ss_put;
kp_ss_get_fn kp_aws_sm_ss_get;
kp_ss_list_fn kp_aws_sm_ss_list;
kp_instance_check_fn kp_aws_instance_check;

#endif

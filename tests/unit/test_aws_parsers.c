/*
 * The aws plugin's parsers, without a service: the XML leaf walker (expat) over AWS's answer
 * shapes and hostile documents, the shared config and credentials files, ISO 8601 times.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "aws_internal.h"

typedef struct leaves {
    char text[4096];
    int stop_at; /* stop (KP_ERR_CONFLICT) at this leaf number; 0 never */
    int n;
} leaves;

static kp_status s_leaf(void *arg, const char *path, const char *text)
{
    leaves *l = arg;
    l->n++;
    size_t at = strlen(l->text);
    snprintf(l->text + at, sizeof(l->text) - at, "%s=%s;", path, text);
    return l->n == l->stop_at ? KP_ERR_CONFLICT : KP_OK;
}

static kp_status s_walk(const char *xml, leaves *l, char *err, size_t errlen)
{
    memset(l, 0, sizeof(*l));
    return kp_aws_xml_walk((const uint8_t *)xml, strlen(xml), s_leaf, l, err, errlen);
}

static void test_xml_shapes(void **state)
{
    (void)state;
    leaves l;
    char err[256];
    /* an S3 listing: a namespace, repeated records, elements with children are not leaves */
    const char *list = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                       "<ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
                       "<Name>b</Name><IsTruncated>true</IsTruncated>"
                       "<Contents><Key>keyplane/a.key/v1</Key><Size>10</Size></Contents>"
                       "<Contents><Key>keyplane/a&amp;b/v2</Key></Contents>"
                       "<NextContinuationToken>tok</NextContinuationToken></ListBucketResult>";
    assert_int_equal(s_walk(list, &l, err, sizeof(err)), KP_OK);
    assert_string_equal(l.text, "ListBucketResult/Name=b;ListBucketResult/IsTruncated=true;"
                                "ListBucketResult/Contents/Key=keyplane/a.key/v1;"
                                "ListBucketResult/Contents/Size=10;"
                                "ListBucketResult/Contents/Key=keyplane/a&b/v2;"
                                "ListBucketResult/NextContinuationToken=tok;");
    /* an STS error inside ErrorResponse, an empty element is a leaf with "" */
    const char *sts = "<ErrorResponse><Error><Type>Sender</Type><Code>AccessDenied</Code>"
                      "<Message/></Error><RequestId>r1</RequestId></ErrorResponse>";
    assert_int_equal(s_walk(sts, &l, err, sizeof(err)), KP_OK);
    assert_string_equal(l.text, "ErrorResponse/Error/Type=Sender;ErrorResponse/Error/Code="
                                "AccessDenied;ErrorResponse/Error/Message=;"
                                "ErrorResponse/RequestId=r1;");
    /* a prefixed element is matched by its local name */
    assert_int_equal(
        s_walk("<a:Error xmlns:a=\"u\"><a:Code>X</a:Code></a:Error>", &l, err, sizeof(err)), KP_OK);
    assert_string_equal(l.text, "Error/Code=X;");
    /* the caller's stop is returned as is */
    memset(&l, 0, sizeof(l));
    l.stop_at = 1;
    assert_int_equal(kp_aws_xml_walk((const uint8_t *)"<a><b>1</b><c>2</c></a>", 23, s_leaf, &l,
                                     err, sizeof(err)),
                     KP_ERR_CONFLICT);
    assert_int_equal(l.n, 1);
}

static void test_xml_hostile(void **state)
{
    (void)state;
    leaves l;
    char err[256];
    /* not well-formed, truncated, empty */
    assert_int_equal(s_walk("<a><b></a>", &l, err, sizeof(err)), KP_ERR_BACKEND);
    assert_non_null(strstr(err, "malformed XML answer"));
    assert_int_equal(s_walk("<a><b>x</b>", &l, err, sizeof(err)), KP_ERR_BACKEND);
    assert_int_equal(s_walk("", &l, err, sizeof(err)), KP_ERR_BACKEND);
    /* a document type (entity expansion) is refused before any entity is read */
    const char *lol = "<?xml version=\"1.0\"?><!DOCTYPE a [<!ENTITY x \"xxxxxxxx\">"
                      "<!ENTITY y \"&x;&x;&x;&x;&x;&x;&x;&x;\">]><a>&y;</a>";
    assert_int_equal(s_walk(lol, &l, err, sizeof(err)), KP_ERR_BACKEND);
    assert_non_null(strstr(err, "document type"));
    assert_int_equal(l.n, 0);
    /* nine levels deep */
    assert_int_equal(s_walk("<a><b><c><d><e><f><g><h><i>x</i></h></g></f></e></d></c></b></a>", &l,
                            err, sizeof(err)),
                     KP_ERR_BACKEND);
    assert_non_null(strstr(err, "too deep"));
    /* a text over 64 KiB */
    size_t big = 70 * 1024;
    char *doc = malloc(big + 16);
    assert_non_null(doc);
    memcpy(doc, "<a>", 3);
    memset(doc + 3, 'x', big);
    memcpy(doc + 3 + big, "</a>", 5);
    assert_int_equal(s_walk(doc, &l, err, sizeof(err)), KP_ERR_BACKEND);
    assert_non_null(strstr(err, "64 KiB"));
    free(doc);
}

static char s_dir[] = "/tmp/kp-aws-ini.XXXXXX";

static const char *s_file(const char *name, const char *text)
{
    static char path[256];
    snprintf(path, sizeof(path), "%s/%s", s_dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    return path;
}

static void test_ini(void **state)
{
    (void)state;
    assert_non_null(mkdtemp(s_dir));
    const char *cfg = s_file("config", "# comment\n"
                                       "[default]\n"
                                       "region = us-east-1\n"
                                       "s3 =\n"
                                       "  region = nested-not-read\n"
                                       "  addressing_style = path\n"
                                       "[profile prod]\n"
                                       "Role_Arn=arn:aws:iam::1:role/r   \n"
                                       "; another comment\n"
                                       "source_profile = default\n"
                                       "empty =\n"
                                       "[profile with spaces ]\n"
                                       "x = 1 # not a comment\n");
    char out[128], err[256];
    assert_int_equal(kp_aws_ini_get(cfg, "default", "region", out, sizeof(out), err, sizeof(err)),
                     KP_OK);
    assert_string_equal(out, "us-east-1");
    /* the nested settings are skipped, not read as the section's */
    assert_int_equal(
        kp_aws_ini_get(cfg, "default", "addressing_style", out, sizeof(out), err, sizeof(err)),
        KP_ERR_NOT_FOUND);
    /* keys are case-insensitive, values trimmed */
    assert_int_equal(
        kp_aws_ini_get(cfg, "profile prod", "role_arn", out, sizeof(out), err, sizeof(err)), KP_OK);
    assert_string_equal(out, "arn:aws:iam::1:role/r");
    assert_int_equal(
        kp_aws_ini_get(cfg, "profile prod", "empty", out, sizeof(out), err, sizeof(err)), KP_OK);
    assert_string_equal(out, "");
    /* a key of another section is not this one's */
    assert_int_equal(
        kp_aws_ini_get(cfg, "profile prod", "region", out, sizeof(out), err, sizeof(err)),
        KP_ERR_NOT_FOUND);
    /* no inline comments, as botocore reads the files */
    assert_int_equal(
        kp_aws_ini_get(cfg, "profile with spaces", "x", out, sizeof(out), err, sizeof(err)), KP_OK);
    assert_string_equal(out, "1 # not a comment");
    assert_true(kp_aws_ini_has(cfg, "profile prod"));
    assert_false(kp_aws_ini_has(cfg, "profile missing"));
    /* a value longer than the buffer is an error, not a cut value */
    char small[8];
    assert_int_equal(
        kp_aws_ini_get(cfg, "profile prod", "role_arn", small, sizeof(small), err, sizeof(err)),
        KP_ERR_CONFIG);
    assert_non_null(strstr(err, "too long"));
    /* a file that is not INI names its line; a missing file is not found */
    const char *bad = s_file("bad", "[default]\nregion us-east-1\n");
    assert_int_equal(kp_aws_ini_get(bad, "default", "x", out, sizeof(out), err, sizeof(err)),
                     KP_ERR_CONFIG);
    assert_non_null(strstr(err, "line 2"));
    const char *open_section = s_file("open", "[default\nx = 1\n");
    assert_int_equal(
        kp_aws_ini_get(open_section, "default", "x", out, sizeof(out), err, sizeof(err)),
        KP_ERR_CONFIG);
    assert_int_equal(kp_aws_ini_get("/nonexistent/kp/config", "default", "x", out, sizeof(out), err,
                                    sizeof(err)),
                     KP_ERR_NOT_FOUND);
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", s_dir);
    assert_int_equal(system(cmd), 0);
}

static void test_iso8601(void **state)
{
    (void)state;
    assert_int_equal(kp_aws_iso8601("1970-01-01T00:00:00Z"), 0);
    assert_int_equal(kp_aws_iso8601("2026-12-05T01:02:03Z"), 1796432523);
    assert_int_equal(kp_aws_iso8601("2026-12-05T01:02:03.123Z"), 1796432523);
    assert_int_equal(kp_aws_iso8601("2026-12-05T01:02:03+00:00"), 1796432523);
    assert_int_equal(kp_aws_iso8601("2026-12-05T01:02:03"), -1);       /* no zone */
    assert_int_equal(kp_aws_iso8601("2026-12-05T01:02:03+01:00"), -1); /* not UTC */
    assert_int_equal(kp_aws_iso8601("2026-13-05T01:02:03Z"), -1);      /* month 13 */
    assert_int_equal(kp_aws_iso8601("2026-12-05 01:02:03Z"), -1);      /* no T */
    assert_int_equal(kp_aws_iso8601("2026-12-05T01:02:03Zjunk"), -1);
    assert_int_equal(kp_aws_iso8601(""), -1);
    assert_int_equal(kp_aws_iso8601(NULL), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_xml_shapes),
        cmocka_unit_test(test_xml_hostile),
        cmocka_unit_test(test_ini),
        cmocka_unit_test(test_iso8601),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

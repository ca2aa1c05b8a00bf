"""The AWS emulator (one process per region: S3, Secrets Manager, KMS, STS, IMDS, container
credentials), built on the shared emulator machinery in tests/emulators/common. README.md
describes the behaviour and where each fact comes from.

    emulator.py       the entry script: command line, the Region service (which service a
                      request is for, its signature, forbidden operations), control endpoints
    errors.py         the three error shapes (S3 XML, JSON 1.1, STS XML), faults in each shape,
                      the per-request context (request ids)
    sigv4.py          SigV4 verification with botocore's signer as the reference
    auth_errors.py    each service's answer to a refused signature
    identity.py       long-term keys, temporary credentials, roles
    sts.py            AssumeRole, AssumeRoleWithWebIdentity, GetCallerIdentity
    imds.py           the EC2 instance metadata (IMDSv2) and container credential endpoints
    jsonproto.py      JSON 1.1 framing and Coral-style validation of request members
    kms.py            KMS keys and aliases, and the key resolution S3 and Secrets Manager use
    secrets_store.py  Secrets Manager's secrets, versions, staging labels, persistence
    secrets_api.py    Secrets Manager's operations
    replication.py    Secrets Manager replication to other regions' processes
    s3_api.py         S3 addressing, operation names, dispatch
    s3_common.py      S3 XML, metadata, integrity checks, server-side encryption
    s3_store.py       S3 buckets, objects, uploads and their data files
    s3_buckets.py     bucket operations and listings
    s3_objects.py     object operations and the commit of a new version (conditional writes)
    s3_multipart.py   multipart uploads
    awsctl.py         the ctl script (common/emuctl.py) for shell scripts and C tests
"""

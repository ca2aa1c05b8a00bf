"""Test PKI for the emulators: a CA and a server certificate made with python3-cryptography,
as the emulators' TLS expects (SAN IP:127.0.0.1 and DNS:localhost, plus DNS:s3.localhost and
DNS:*.s3.localhost for S3's virtual-host addressing: OpenSSL refuses a wildcard directly under a
one-label name such as *.localhost).

Used by emuctl.py (one CA per test-run directory) and so by every ctl script and emulator test;
needs only Debian 12's /usr/bin/python3.
"""

import datetime
import fcntl
import ipaddress
import os

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


SERVER_DNS_NAMES = ("localhost", "s3.localhost", "*.s3.localhost")


def pki_paths(d):
    """{"ca", "cert", "key"}: where the PKI files of directory d are."""
    return {"ca": os.path.join(d, "ca.pem"), "cert": os.path.join(d, "server.pem"),
            "key": os.path.join(d, "server-key.pem")}


def make_pki(d):
    """Writes ca.pem, server.pem and server-key.pem into directory d; returns their paths as
    {"ca", "cert", "key"}. The CA is valid for 2 days, the server certificate for 1."""
    now = datetime.datetime.utcnow()
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "keyplane test CA")])
    ca_cert = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
               .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5))
               .not_valid_after(now + datetime.timedelta(days=2))
               .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
               .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False),
                              critical=True)
               .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
               .sign(ca_key, hashes.SHA256()))
    srv_key = ec.generate_private_key(ec.SECP256R1())
    srv_cert = (x509.CertificateBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
                .issuer_name(ca_name).public_key(srv_key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(minutes=5))
                .not_valid_after(now + datetime.timedelta(days=1))
                .add_extension(x509.SubjectAlternativeName([
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                    *[x509.DNSName(n) for n in SERVER_DNS_NAMES]]),
                    critical=False)
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
                .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                               critical=False)
                .sign(ca_key, hashes.SHA256()))
    paths = pki_paths(d)
    with open(paths["ca"], "wb") as f:
        f.write(ca_cert.public_bytes(serialization.Encoding.PEM))
    with open(paths["cert"], "wb") as f:
        f.write(srv_cert.public_bytes(serialization.Encoding.PEM))
    # the key file is private from the start: created 0600, not chmod'ed afterwards
    fd = os.open(paths["key"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(srv_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))
    return paths


def ensure_pki(d):
    """The PKI of test-run directory d (d/pki/): one CA per directory, made under a lock so
    parallel starts agree on it. A server certificate about to expire (it lives a day) is remade
    together with its CA. Returns the paths as make_pki does."""
    pki_dir = os.path.join(d, "pki")
    os.makedirs(pki_dir, mode=0o700, exist_ok=True)
    paths = pki_paths(pki_dir)
    with open(os.path.join(pki_dir, ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if all(os.path.exists(p) for p in paths.values()):
            with open(paths["cert"], "rb") as f:
                cert = x509.load_pem_x509_certificate(f.read())
            if cert.not_valid_after - datetime.timedelta(hours=1) > datetime.datetime.utcnow():
                return paths
        return make_pki(pki_dir)

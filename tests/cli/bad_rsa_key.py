"""Writes an RSA private key whose CRT exponent dQ is off by 2 (every other value as generated),
as unencrypted PKCS#8 PEM to argv[1]: a key a careless tool could emit, which OpenSSL parses
without complaint and keyplane's import must refuse (kpk_rsa_consistent). Run with
/usr/bin/python3 (Debian's python3-cryptography)."""
import base64
import sys

from cryptography.hazmat.primitives.asymmetric import rsa


def der_len(n):
    if n < 0x80:
        return bytes([n])
    b = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(b)]) + b


def tlv(tag, body):
    return bytes([tag]) + der_len(len(body)) + body


def integer(v):
    b = v.to_bytes(v.bit_length() // 8 + 1, "big")  # a leading 0 keeps it positive
    return tlv(0x02, b)


key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
n = key.private_numbers()
pub = n.public_numbers
rsa_key = tlv(0x30, b"".join(integer(v) for v in (
    0, pub.n, pub.e, n.d, n.p, n.q, n.dmp1, n.dmq1 + 2, n.iqmp)))
rsa_oid = bytes.fromhex("06092a864886f70d010101")  # 1.2.840.113549.1.1.1
p8 = tlv(0x30, integer(0) + tlv(0x30, rsa_oid + b"\x05\x00") + tlv(0x04, rsa_key))
b64 = base64.b64encode(p8).decode()
with open(sys.argv[1], "w") as f:
    f.write("-----BEGIN PRIVATE KEY-----\n")
    f.write("".join(b64[i:i + 64] + "\n" for i in range(0, len(b64), 64)))
    f.write("-----END PRIVATE KEY-----\n")

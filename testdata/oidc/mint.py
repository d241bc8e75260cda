#!/usr/bin/env python3
"""Mints test-only OIDC access tokens with Python's `cryptography`, a
library independent of the Go code that verifies them.

Reads a JSON spec on stdin, writes JWKS files into spec["dir"] and prints
{"tokens": {name: compact JWS}} on stdout. Keys are generated on every run
and never written anywhere: nothing here is a secret.

spec = {
  "dir": "/tmp/x",
  "keys":   {"NAME": "ed25519" | "p256" | "p384" | "rsa2048" | "rsa1024"},
  "jwks":   {"FILE": [{"key": "NAME", "kid": "...", ...extra JWK members}]},
  "tokens": {"NAME": {"key": "NAME", "alg": "RS256", "header": {...},
                      "claims": {...}, "hmac_pem_of": "NAME" (HS256 keyed
                      with that public key's PEM), "unsigned": true}}
}
"""
import base64
import hashlib
import hmac
import json
import os
import sys

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature


def b64(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def uint(n):
    return n.to_bytes((n.bit_length() + 7) // 8, "big")


def generate(kind):
    if kind == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    if kind == "p256":
        return ec.generate_private_key(ec.SECP256R1())
    if kind == "p384":
        return ec.generate_private_key(ec.SECP384R1())
    if kind.startswith("rsa"):
        return rsa.generate_private_key(public_exponent=65537, key_size=int(kind[3:]))
    raise SystemExit("unknown key kind %r" % kind)


def jwk(priv):
    pub = priv.public_key()
    if isinstance(pub, ed25519.Ed25519PublicKey):
        raw = pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return {"kty": "OKP", "crv": "Ed25519", "x": b64(raw)}
    if isinstance(pub, ec.EllipticCurvePublicKey):
        size = (pub.curve.key_size + 7) // 8
        nums = pub.public_numbers()
        crv = {"secp256r1": "P-256", "secp384r1": "P-384"}[pub.curve.name]
        return {"kty": "EC", "crv": crv, "x": b64(nums.x.to_bytes(size, "big")), "y": b64(nums.y.to_bytes(size, "big"))}
    nums = pub.public_numbers()
    return {"kty": "RSA", "n": b64(uint(nums.n)), "e": b64(uint(nums.e))}


def sign(priv, alg, msg):
    if isinstance(priv, ed25519.Ed25519PrivateKey):
        return priv.sign(msg)
    if isinstance(priv, ec.EllipticCurvePrivateKey):
        # JWS wants r||s, each the size of the curve's order (RFC 7518 3.4).
        r, s = decode_dss_signature(priv.sign(msg, ec.ECDSA(hashes.SHA256())))
        size = (priv.curve.key_size + 7) // 8
        return r.to_bytes(size, "big") + s.to_bytes(size, "big")
    return priv.sign(msg, padding.PKCS1v15(), hashes.SHA256())


def main():
    spec = json.load(sys.stdin)
    keys = {name: generate(kind) for name, kind in spec.get("keys", {}).items()}
    for fname, entries in spec.get("jwks", {}).items():
        out = []
        for e in entries:
            e = dict(e)
            k = jwk(keys[e.pop("key")])
            k.update(e)
            out.append(k)
        with open(os.path.join(spec["dir"], fname), "w") as f:
            json.dump({"keys": out}, f)
    tokens = {}
    for name, t in spec.get("tokens", {}).items():
        header = dict(t.get("header", {}))
        header.setdefault("alg", t.get("alg"))
        signing = b64(json.dumps(header, separators=(",", ":")).encode()) + "." + b64(
            json.dumps(t["claims"], separators=(",", ":")).encode())
        if t.get("unsigned"):
            sig = b""
        elif "hmac_pem_of" in t:
            pem = keys[t["hmac_pem_of"]].public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
            sig = hmac.new(pem, signing.encode(), hashlib.sha256).digest()
        else:
            sig = sign(keys[t["key"]], header["alg"], signing.encode())
        tokens[name] = signing + "." + b64(sig)
    json.dump({"tokens": tokens}, sys.stdout)


if __name__ == "__main__":
    main()

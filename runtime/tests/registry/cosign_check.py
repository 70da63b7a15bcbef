"""cosign's key-based signatures, implemented again from their description with Python's
`cryptography`: the reference Ward's signature check is tested against.

cosign signs a "simple signing" JSON payload naming the image's manifest digest with ECDSA
P-256 over SHA-256; the signature is ASN.1 DER, base64 in the layer annotation
dev.cosignproject.cosign/signature. Without OCI 1.1 referrers it is stored as the tag
sha256-<hex>.sig of the same repository: an OCI image manifest with one layer per signature
(media type application/vnd.dev.cosign.simplesigning.v1+json, the payload's bytes).

Usage:
  cosign_check.py genkey --out PREFIX
      writes PREFIX.key (PKCS#8 PEM, unencrypted, mode 0600) and PREFIX.pub (SPKI PEM)
  cosign_check.py sign --key KEY.pem --payload-out FILE --digest sha256:HEX
                       --reference HOST/REPO
      writes the simple-signing payload to FILE; prints the base64 DER signature
  cosign_check.py verify --pub PUB.pem --payload FILE --signature-b64 SIG
                         [--digest sha256:HEX] [--reference HOST/REPO]
      exits 0 when SIG is the key's signature over FILE's exact bytes and FILE is a
      simple-signing payload (naming DIGEST and REFERENCE when given); 1 otherwise
  cosign_check.py push-signature --registry HOST:PORT --repo NAME --digest sha256:HEX
                                 --key KEY.pem [--insecure | --ca CA.pem]
                                 [--user USER --password PASSWORD] [--reference HOST/REPO]
                                 [--payload-digest sha256:HEX] [--append]
                                 [--payload-out FILE]
      signs DIGEST (or, to make a mismatched signature, --payload-digest) and pushes the
      signature manifest as tag sha256-HEX.sig; --append adds the layer to the signatures
      already there, as cosign does. Prints the signature manifest's digest.
"""
import argparse
import base64
import binascii
import json
import os
import re
import sys

# The shared module sits beside this script; no __pycache__ is left in the source tree.
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import oci_http  # noqa: E402

from cryptography.exceptions import InvalidSignature  # noqa: E402
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402

SIMPLE_SIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"
SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"
IMAGE_CONFIG = "application/vnd.oci.image.config.v1+json"
SIGNATURE_TYPE = "cosign container image signature"
DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


class CheckError(Exception):
    """A check that failed or an input that is wrong; the message says which."""


def checked_digest(digest, option="--digest"):
    if not DIGEST.match(digest):
        raise CheckError(f"{option} {digest!r}: expected sha256: and 64 lower-case hex digits")
    return digest


def signature_tag(digest):
    """The tag cosign stores a digest's signatures under."""
    return checked_digest(digest).replace(":", "-") + ".sig"


def simple_signing_payload(digest, reference):
    """The payload bytes, as cosign writes them (Go's encoding/json, struct field order)."""
    return oci_http.canonical_json(
        {
            "critical": {
                "identity": {"docker-reference": reference},
                "image": {"docker-manifest-digest": digest},
                "type": SIGNATURE_TYPE,
            },
            "optional": None,
        }
    )


def load_private_key(path):
    try:
        with open(path, "rb") as f:
            key = serialization.load_pem_private_key(f.read(), password=None)
    except OSError as error:
        raise CheckError(f"--key {path}: {error.strerror}") from None
    except (ValueError, TypeError) as error:
        raise CheckError(f"--key {path}: not an unencrypted PKCS#8 PEM key: {error}") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        raise CheckError(f"--key {path}: not an ECDSA P-256 key")
    return key


def load_public_key(path):
    try:
        with open(path, "rb") as f:
            key = serialization.load_pem_public_key(f.read())
    except OSError as error:
        raise CheckError(f"--pub {path}: {error.strerror}") from None
    except ValueError as error:
        raise CheckError(f"--pub {path}: not a PEM public key: {error}") from None
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
        raise CheckError(f"--pub {path}: not an ECDSA P-256 public key")
    return key


def sign(key, payload):
    """The base64 (standard alphabet, padded) DER signature over `payload`."""
    der = key.sign(payload, ec.ECDSA(hashes.SHA256()))
    return base64.b64encode(der).decode("ascii")


def check_payload(payload, digest=None, reference=None):
    """Checks `payload` is a simple-signing payload (for `digest`/`reference` when given)."""
    try:
        value = json.loads(payload)
    except ValueError as error:
        raise CheckError(f"the payload is not JSON: {error}") from None
    critical = value.get("critical") if isinstance(value, dict) else None
    if not isinstance(critical, dict):
        raise CheckError("the payload has no 'critical' object")
    if critical.get("type") != SIGNATURE_TYPE:
        raise CheckError(f"the payload's critical.type is {critical.get('type')!r}, "
                         f"not {SIGNATURE_TYPE!r}")
    image = critical.get("image")
    signed = image.get("docker-manifest-digest") if isinstance(image, dict) else None
    if not isinstance(signed, str) or not DIGEST.match(signed):
        raise CheckError(f"the payload's critical.image.docker-manifest-digest is {signed!r}")
    identity = critical.get("identity")
    named = identity.get("docker-reference") if isinstance(identity, dict) else None
    if not isinstance(named, str):
        raise CheckError("the payload has no critical.identity.docker-reference")
    if digest is not None and signed != digest:
        raise CheckError(f"the payload signs {signed}, not {digest}")
    if reference is not None and named != reference:
        raise CheckError(f"the payload names {named!r}, not {reference!r}")


def verify(public_key, payload, signature_b64):
    try:
        der = base64.b64decode(signature_b64, validate=True)
    except (binascii.Error, ValueError):
        raise CheckError("the signature is not base64") from None
    try:
        public_key.verify(der, payload, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise CheckError("the signature does not verify with this key over this payload") from None


def signature_manifest(client, payload, signature_b64, existing):
    """The signature tag's manifest with this signature's layer, after those of `existing`
    (the manifest already there, when appending)."""
    layers = json.loads(existing)["layers"] if existing else []
    layers.append(
        {
            "mediaType": SIMPLE_SIGNING,
            "size": len(payload),
            "digest": client.push_blob(payload),
            "annotations": {SIGNATURE_ANNOTATION: signature_b64},
        }
    )
    # go-containerregistry's empty image config, with one diff ID per layer, as cosign has.
    config = oci_http.canonical_json(
        {
            "architecture": "",
            "created": "0001-01-01T00:00:00Z",
            "history": [{"created": "0001-01-01T00:00:00Z"} for _ in layers],
            "os": "",
            "rootfs": {"type": "layers", "diff_ids": [layer["digest"] for layer in layers]},
            "config": {},
        }
    )
    return {
        "schemaVersion": 2,
        "mediaType": oci_http.OCI_MANIFEST,
        "config": {
            "mediaType": IMAGE_CONFIG,
            "size": len(config),
            "digest": client.push_blob(config),
        },
        "layers": layers,
    }


def write_file(path, data, mode=0o644):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(path, mode)


def command_genkey(args):
    key = ec.generate_private_key(ec.SECP256R1())
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    write_file(args.out + ".key", private, 0o600)
    write_file(args.out + ".pub", public)


def command_sign(args):
    key = load_private_key(args.key)
    payload = simple_signing_payload(checked_digest(args.digest), args.reference)
    write_file(args.payload_out, payload)
    print(sign(key, payload))


def command_verify(args):
    public_key = load_public_key(args.pub)
    try:
        with open(args.payload, "rb") as f:
            payload = f.read()
    except OSError as error:
        raise CheckError(f"--payload {args.payload}: {error.strerror}") from None
    if args.digest is not None:
        checked_digest(args.digest)
    verify(public_key, payload, args.signature_b64)
    check_payload(payload, args.digest, args.reference)
    print("verified")


def command_push_signature(args):
    key = load_private_key(args.key)
    client = oci_http.client_from_arguments(args)
    tag = signature_tag(args.digest)
    signed = checked_digest(args.payload_digest or args.digest, "--payload-digest")
    payload = simple_signing_payload(signed, args.reference or f"{args.registry}/{args.repo}")
    if args.payload_out:
        write_file(args.payload_out, payload)
    existing = client.get_manifest(tag) if args.append else None
    manifest = signature_manifest(client, payload, sign(key, payload), existing)
    print(client.push_manifest(tag, oci_http.canonical_json(manifest)))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)

    genkey = commands.add_parser("genkey", help="a new ECDSA P-256 key pair")
    genkey.add_argument("--out", required=True, metavar="PREFIX")
    genkey.set_defaults(run=command_genkey)

    sign_ = commands.add_parser("sign", help="sign a manifest digest")
    sign_.add_argument("--key", required=True)
    sign_.add_argument("--payload-out", required=True)
    sign_.add_argument("--digest", required=True)
    sign_.add_argument("--reference", required=True, metavar="HOST/REPO")
    sign_.set_defaults(run=command_sign)

    verify_ = commands.add_parser("verify", help="check a signature over a payload")
    verify_.add_argument("--pub", required=True)
    verify_.add_argument("--payload", required=True)
    verify_.add_argument("--signature-b64", required=True)
    verify_.add_argument("--digest")
    verify_.add_argument("--reference", metavar="HOST/REPO")
    verify_.set_defaults(run=command_verify)

    push = commands.add_parser("push-signature", help="sign a digest and push the .sig tag")
    oci_http.add_connection_arguments(push)
    push.add_argument("--digest", required=True)
    push.add_argument("--key", required=True)
    push.add_argument("--reference", metavar="HOST/REPO")
    push.add_argument("--payload-digest")
    push.add_argument("--append", action="store_true")
    push.add_argument("--payload-out")
    push.set_defaults(run=command_push_signature)

    args = parser.parse_args()
    try:
        args.run(args)
    except CheckError as error:
        print(f"{sys.argv[0]} {args.command}: {error}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    oci_http.run(main)

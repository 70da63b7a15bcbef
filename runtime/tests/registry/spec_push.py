"""Pushes a WebAssembly component to an OCI registry as the CNCF TAG-Runtime "Wasm OCI
Artifact" layout describes it, independently of Ward: the reference Ward's pull is tested
against.

Usage:
  spec_push.py --registry HOST:PORT --repo NAME --tag TAG --wasm FILE
               [--insecure | --ca CA.pem] [--user USER --password PASSWORD]
               [--annotation KEY=VALUE]... [--import NAME]... [--export NAME]...
               [--author AUTHOR] [--created RFC3339]
               [--config-media-type TYPE] [--layer-media-type TYPE]

Writes one config blob (application/vnd.wasm.config.v0+json), one layer (application/wasm,
the file's bytes) and an OCI image manifest tagged TAG, then prints the manifest's digest
(sha256:...) on stdout. The media type options replace the layout's, to make an artifact a
puller must refuse. Exits 1 with the refused request (method, URL, status) on stderr when
the registry says no.
"""
import argparse
import datetime
import os
import sys

# The shared module sits beside this script; no __pycache__ is left in the source tree.
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import oci_http  # noqa: E402

WASM_CONFIG = "application/vnd.wasm.config.v0+json"
WASM_LAYER = "application/wasm"


def wasm_config(layer_digest, author, created, exports, imports):
    """The config blob, fields in the layout's order."""
    return {
        "created": created,
        "author": author,
        "architecture": "wasm",
        "os": "wasip2",
        "layerDigests": [layer_digest],
        "component": {"exports": exports, "imports": imports, "target": None},
    }


def manifest(config_bytes, layer_bytes, annotations, config_type, layer_type):
    value = {
        "schemaVersion": 2,
        "mediaType": oci_http.OCI_MANIFEST,
        "config": {
            "mediaType": config_type,
            "digest": oci_http.sha256_digest(config_bytes),
            "size": len(config_bytes),
        },
        "layers": [
            {
                "mediaType": layer_type,
                "digest": oci_http.sha256_digest(layer_bytes),
                "size": len(layer_bytes),
            }
        ],
    }
    if annotations:
        value["annotations"] = annotations
    return value


def parse_annotations(pairs):
    annotations = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise oci_http.OciError(f"--annotation {pair!r}: expected KEY=VALUE")
        annotations[key] = value
    return annotations


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    oci_http.add_connection_arguments(parser)
    parser.add_argument("--tag", required=True)
    parser.add_argument("--wasm", required=True, help="the component's .wasm file")
    parser.add_argument("--annotation", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--import", dest="imports", action="append", default=[], metavar="NAME")
    parser.add_argument("--export", dest="exports", action="append", default=[], metavar="NAME")
    parser.add_argument("--author", default="Ward tests")
    parser.add_argument("--created", help="RFC 3339 time (default: now, UTC)")
    # For tests of what a puller must refuse: an artifact that is not the layout's.
    parser.add_argument("--config-media-type", default=WASM_CONFIG)
    parser.add_argument("--layer-media-type", default=WASM_LAYER)
    args = parser.parse_args()

    annotations = parse_annotations(args.annotation)
    client = oci_http.client_from_arguments(args)
    try:
        with open(args.wasm, "rb") as f:
            layer = f.read()
    except OSError as error:
        raise oci_http.OciError(f"--wasm {args.wasm}: {error.strerror}") from None
    created = args.created or datetime.datetime.now(datetime.timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%SZ"
    )
    layer_digest = oci_http.sha256_digest(layer)
    config = oci_http.canonical_json(
        wasm_config(layer_digest, args.author, created, args.exports, args.imports)
    )
    client.push_blob(layer)
    client.push_blob(config)
    body = oci_http.canonical_json(
        manifest(config, layer, annotations, args.config_media_type, args.layer_media_type)
    )
    print(client.push_manifest(args.tag, body))


if __name__ == "__main__":
    oci_http.run(main)

"""The OCI distribution API's client side, from the specification, for Ward's tests.

Python's standard library only (urllib, ssl, base64, hashlib, json): an implementation that
shares no code with Ward's, so a test that pushes with it and pulls with Ward (or the other
way round) checks Ward against the specification rather than against itself.

Used by spec_push.py and cosign_check.py; not a program of its own.

Authentication: a request goes out without credentials first; a 401 answer's
WWW-Authenticate challenge says what to send. "Basic" is answered with the user name and
password; "Bearer" with a token fetched from the challenge's realm (with the credentials, if
any), as the distribution token specification describes.
"""
import base64
import hashlib
import json
import re
import ssl
import sys
import urllib.error
import urllib.parse
import urllib.request

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
ACCEPT_MANIFESTS = ", ".join([OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST])


class OciError(Exception):
    """A request the registry refused or that did not reach it; the message names which."""


def sha256_digest(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def canonical_json(value):
    """Compact JSON with keys in the order given, as Go's encoding/json writes structs."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def add_connection_arguments(parser):
    """The options every command that talks to a registry takes."""
    parser.add_argument("--registry", required=True, help="HOST:PORT of the registry")
    parser.add_argument("--repo", required=True, help="repository name, e.g. stages/segment")
    parser.add_argument("--insecure", action="store_true", help="plain HTTP instead of HTTPS")
    parser.add_argument("--ca", help="PEM file of an extra root certificate for HTTPS")
    parser.add_argument("--user", help="user name for basic auth or a token service")
    parser.add_argument("--password", help="password for --user")


def client_from_arguments(args):
    if (args.user is None) != (args.password is None):
        raise OciError("--user and --password go together")
    return Client(
        args.registry,
        args.repo,
        insecure=args.insecure,
        ca=args.ca,
        user=args.user,
        password=args.password,
    )


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Redirects are followed by hand, so a PUT stays a PUT and auth is not sent elsewhere."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body


class Client:
    """One repository of one registry."""

    def __init__(self, registry, repo, insecure=False, ca=None, user=None, password=None):
        self.registry = registry
        self.repo = repo
        self.scheme = "http" if insecure else "https"
        self.user = user
        self.password = password
        self.authorization = None
        handlers = [_NoRedirect()]
        if not insecure:
            context = ssl.create_default_context(cafile=ca) if ca else ssl.create_default_context()
            handlers.append(urllib.request.HTTPSHandler(context=context))
        self.opener = urllib.request.build_opener(*handlers)

    def url(self, path):
        return f"{self.scheme}://{self.registry}{path}"

    def request(self, method, url, body=None, headers=None, expect=(200,)):
        """Sends one request, answering an auth challenge once; returns a Response whose
        status is in `expect`, or raises OciError naming the method, URL and status."""
        headers = dict(headers or {})
        answer = self._send(method, url, body, headers)
        if answer.status == 401:
            challenge = answer.headers.get("WWW-Authenticate", "")
            self.authorization = self._answer_challenge(challenge, url)
            if self.authorization is not None:
                answer = self._send(method, url, body, headers)
        if answer.status not in expect:
            detail = answer.body.decode("utf-8", "replace").strip()
            why = ""
            if answer.status == 401:
                why = " (credentials refused)" if self.authorization else " (credentials needed)"
            raise OciError(
                f"{method} {url}: the registry answered {answer.status}{why}"
                + (f" (expected {'/'.join(map(str, expect))})" if expect else "")
                + (f": {detail}" if detail else "")
            )
        return answer

    def _send(self, method, url, body, headers):
        request = urllib.request.Request(url, data=body, method=method, headers=headers)
        if self.authorization:
            request.add_header("Authorization", self.authorization)
        if body is not None and "Content-Type" not in headers:
            request.add_header("Content-Type", "application/octet-stream")
        try:
            with self.opener.open(request, timeout=60) as reply:
                return Response(reply.status, reply.headers, reply.read())
        except urllib.error.HTTPError as error:
            return Response(error.code, error.headers, error.read())
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            raise OciError(f"{method} {url}: cannot reach the registry: {reason}") from None

    def _answer_challenge(self, challenge, url):
        """The Authorization header value that answers `challenge`, or None when none can."""
        scheme, _, rest = challenge.partition(" ")
        scheme = scheme.lower()
        if scheme == "basic":
            if self.user is None:
                return None
            pair = f"{self.user}:{self.password}".encode("utf-8")
            return "Basic " + base64.b64encode(pair).decode("ascii")
        if scheme == "bearer":
            return "Bearer " + self._fetch_token(dict(re.findall(r'(\w+)="([^"]*)"', rest)), url)
        return None

    def _fetch_token(self, params, url):
        realm = params.pop("realm", None)
        if not realm:
            raise OciError(f"{url}: a Bearer challenge without a realm")
        # Push needs both actions; the challenge names only what the refused request needed.
        params.setdefault("scope", f"repository:{self.repo}:pull,push")
        query = urllib.parse.urlencode(params)
        request = urllib.request.Request(realm + ("&" if "?" in realm else "?") + query)
        if self.user is not None:
            pair = f"{self.user}:{self.password}".encode("utf-8")
            request.add_header("Authorization", "Basic " + base64.b64encode(pair).decode())
        try:
            with self.opener.open(request, timeout=60) as reply:
                answer = json.loads(reply.read())
        except urllib.error.HTTPError as error:
            raise OciError(f"GET {realm}: the token service answered {error.code}") from None
        except (urllib.error.URLError, OSError, ValueError) as error:
            raise OciError(f"GET {realm}: no token: {error}") from None
        token = answer.get("token") or answer.get("access_token")
        if not token:
            raise OciError(f"GET {realm}: the answer holds no token")
        return token

    # The calls of the distribution specification this client needs.

    def blob_exists(self, digest):
        url = self.url(f"/v2/{self.repo}/blobs/{digest}")
        return self.request("HEAD", url, expect=(200, 404)).status == 200

    def push_blob(self, data):
        """Uploads `data` (monolithic: POST for a session, one PUT with the digest); returns
        its digest. A blob the repository already holds is not sent again."""
        digest = sha256_digest(data)
        if self.blob_exists(digest):
            return digest
        started = self.request(
            "POST", self.url(f"/v2/{self.repo}/blobs/uploads/"), body=b"", expect=(202,)
        )
        location = started.headers.get("Location")
        if not location:
            raise OciError(f"POST /v2/{self.repo}/blobs/uploads/: the answer has no Location")
        location = urllib.parse.urljoin(self.url("/"), location)
        separator = "&" if "?" in location else "?"
        target = location + separator + urllib.parse.urlencode({"digest": digest})
        self.request(
            "PUT",
            target,
            body=data,
            headers={"Content-Type": "application/octet-stream"},
            expect=(201,),
        )
        return digest

    def get_blob(self, digest):
        url = self.url(f"/v2/{self.repo}/blobs/{digest}")
        data = self.request("GET", url, expect=(200,)).body
        if sha256_digest(data) != digest:
            raise OciError(f"GET {url}: the blob's bytes do not have that digest")
        return data

    def push_manifest(self, reference, manifest_bytes, media_type=OCI_MANIFEST):
        """PUTs the manifest under `reference` (a tag or digest); returns its digest, checked
        against the registry's Docker-Content-Digest."""
        digest = sha256_digest(manifest_bytes)
        url = self.url(f"/v2/{self.repo}/manifests/{reference}")
        answer = self.request(
            "PUT", url, body=manifest_bytes, headers={"Content-Type": media_type}, expect=(201,)
        )
        stated = answer.headers.get("Docker-Content-Digest")
        if stated and stated != digest:
            raise OciError(f"PUT {url}: the registry says digest {stated}, the bytes are {digest}")
        return digest

    def get_manifest(self, reference):
        """The manifest's bytes, or None when the registry has no such reference."""
        url = self.url(f"/v2/{self.repo}/manifests/{reference}")
        answer = self.request("GET", url, headers={"Accept": ACCEPT_MANIFESTS}, expect=(200, 404))
        return answer.body if answer.status == 200 else None


def run(main):
    """Runs `main()`, turning an OciError into a message on stderr and exit status 1."""
    try:
        main()
    except OciError as error:
        print(f"{sys.argv[0]}: {error}", file=sys.stderr)
        sys.exit(1)

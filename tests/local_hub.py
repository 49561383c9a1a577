"""A model hub on 127.0.0.1 for the tests: the parts of the Hugging Face
Hub and Kaggle Models HTTP APIs that `huggingface_hub` (2.x) and
`kagglehub` (1.x) call to download and (Hugging Face) upload a preset
directory, found by reading their sources:

Hugging Face (`HF_ENDPOINT` = `LocalHub.url`):
- `HEAD|GET /{owner}/{name}/resolve/{revision}/{path}`: `hf_hub_download`'s
  metadata request (it needs `X-Repo-Commit`, `ETag` and `Content-Length`)
  and the download; a missing file answers 404 with `X-Error-Code:
  EntryNotFound`, a missing repository `RepoNotFound`.
- `POST /api/repos/create`: `create_repo` (409 when it exists).
- `POST /api/validate-yaml`: `upload_folder` checks a README.md's front
  matter (here: a YAML mapping; kept in `cards`).
- `POST /api/models/{owner}/{name}/preupload/{revision}`: the upload mode of
  each file; every file is `regular` (sent inline in the commit, base64),
  so no LFS or Xet storage is involved.
- `POST /api/models/{owner}/{name}/commit/{revision}`: the commit (NDJSON:
  a header line, then one line per file), stored as the repository's new
  contents.

Kaggle (`kagglesdk` has no endpoint setting but `KAGGLE_API_ENVIRONMENT`,
whose `LOCALHOST` is `http://localhost`: the tests send it here with
`HTTP_PROXY` = `LocalHub.url`; requests to a proxy carry the absolute URL,
which this server takes as well):
- `POST /api/v1/models.ModelApiService/GetModelInstance`: the latest version.
- `POST /api/v1/models.ModelApiService/DownloadModelInstanceVersion`: one
  file (`path`) of a version, or 404.
- `POST /api/v1/models.ModelApiService/ListModelInstanceVersionFiles`.

Every request is logged in `requests` as `(method, path)`; anything else
answers 404 and is logged in `unknown`.
"""

import base64
import hashlib
import http.server
import json
import os
import threading
import urllib.parse

_KAGGLE = "/api/v1/models.ModelApiService/"


class LocalHub:
    """The server; `with LocalHub() as hub:` starts and stops it.

    Attributes:
        url: `http://127.0.0.1:PORT`.
        hf: `{repo_id: {path: bytes}}`.
        kaggle: `{"owner/model/framework/variant": {version: {path: bytes}}}`.
    """

    def __init__(self):
        self.hf, self.kaggle = {}, {}
        self.requests, self.unknown, self.cards = [], [], []
        hub = self

        class Handler(_Handler):
            pass

        Handler.hub = hub
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = None

    def __enter__(self):
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    def stop(self):
        """Shut the server down: its port refuses connections from then on."""
        if self.thread is not None:
            self.server.shutdown()
            self.thread = None
        self.server.server_close()

    @staticmethod
    def read_directory(directory):
        files = {}
        for root, _, names in os.walk(directory):
            for name in names:
                path = os.path.join(root, name)
                with open(path, "rb") as f:
                    files[os.path.relpath(path, directory).replace(os.sep, "/")] = f.read()
        return files

    def add_hf(self, repo_id, directory):
        self.hf[repo_id] = self.read_directory(directory)

    def add_kaggle(self, handle, directory, version=1):
        self.kaggle.setdefault(handle, {})[version] = self.read_directory(directory)

    def commit(self, repo_id):
        """The repository's commit hash: 40 hex digits of its contents."""
        digest = hashlib.sha1(repo_id.encode())
        for path, content in sorted(self.hf.get(repo_id, {}).items()):
            digest.update(path.encode() + b"\0" + hashlib.sha1(content).digest())
        return digest.hexdigest()


class _Handler(http.server.BaseHTTPRequestHandler):
    hub = None
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _path(self):
        return urllib.parse.unquote(urllib.parse.urlsplit(self.path).path)

    def _body(self):
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(self, status, body=b"", headers=None, head=False):
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
            headers = {"Content-Type": "application/json", **(headers or {})}
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def _unknown(self, method, path):
        self.hub.unknown.append((method, path))
        self._send(404, {"error": f"not served by the test hub: {method} {path}"})

    # Hugging Face: files

    def _resolve(self, head):
        path = self._path()
        self.hub.requests.append(("HEAD" if head else "GET", path))
        if path == "/api/agent-harnesses":  # a registry huggingface_hub 2.x reads for its user agent: not needed
            return self._send(404, {"error": "not served"}, head=head)
        parts = path.strip("/").split("/")
        if len(parts) < 5 or parts[2] != "resolve":
            return self._unknown("HEAD" if head else "GET", path)
        repo_id, name = "/".join(parts[:2]), "/".join(parts[4:])
        if repo_id not in self.hub.hf:
            return self._send(404, {"error": "Repository not found"}, {"X-Error-Code": "RepoNotFound"}, head)
        commit = self.hub.commit(repo_id)
        files = self.hub.hf[repo_id]
        if name not in files:
            return self._send(
                404, {"error": "Entry not found"}, {"X-Error-Code": "EntryNotFound", "X-Repo-Commit": commit}, head
            )
        content = files[name]
        headers = {"ETag": f'"{hashlib.sha256(content).hexdigest()}"', "X-Repo-Commit": commit}
        self._send(200, content, headers, head)

    def do_HEAD(self):
        self._resolve(head=True)

    def do_GET(self):
        self._resolve(head=False)

    # Hugging Face: uploads; Kaggle: everything

    def do_POST(self):
        path = self._path()
        body = self._body()
        self.hub.requests.append(("POST", path))
        if path.startswith(_KAGGLE):
            return self._kaggle(path[len(_KAGGLE) :], json.loads(body or b"{}"))
        if path == "/api/repos/create":
            request = json.loads(body)
            repo_id = request["name"] if "/" in request["name"] else f"{request.get('organization')}/{request['name']}"
            if repo_id in self.hub.hf:
                return self._send(409, {"error": "You already created this model repo", "url": f"{self.hub.url}/{repo_id}"})
            self.hub.hf[repo_id] = {}
            return self._send(200, {"url": f"{self.hub.url}/{repo_id}", "name": repo_id})
        if path == "/api/validate-yaml":
            return self._validate_yaml(json.loads(body)["content"])
        parts = path.strip("/").split("/")
        if len(parts) == 6 and parts[:2] == ["api", "models"] and parts[4] in ("preupload", "commit"):
            repo_id = "/".join(parts[2:4])
            if repo_id not in self.hub.hf:
                return self._send(404, {"error": "Repository not found"}, {"X-Error-Code": "RepoNotFound"})
            if parts[4] == "preupload":
                files = json.loads(body)["files"]
                return self._send(200, {"files": [
                    {"path": f["path"], "uploadMode": "regular", "shouldIgnore": False} for f in files
                ]})  # fmt: skip
            return self._commit(repo_id, body)
        return self._unknown("POST", path)

    def _validate_yaml(self, content):
        """The model card's front matter must be a YAML mapping (the Hub
        checks its keys too)."""
        import yaml

        try:
            _, front, _ = content.split("---\n", 2)
            metadata = yaml.safe_load(front)
            assert isinstance(metadata, dict), "not a mapping"
        except (ValueError, AssertionError, yaml.YAMLError) as error:
            return self._send(400, {"errors": [{"message": f"invalid front matter: {error}"}], "warnings": []})
        self.hub.cards.append(metadata)
        return self._send(200, {"errors": [], "warnings": []})

    def _commit(self, repo_id, body):
        files = dict(self.hub.hf[repo_id])
        for line in body.decode().splitlines():
            if not line.strip():
                continue
            entry = json.loads(line)
            value = entry["value"]
            if entry["key"] == "file":
                files[value["path"]] = base64.b64decode(value["content"])
            elif entry["key"] == "deletedFile":
                files.pop(value["path"], None)
            elif entry["key"] != "header":
                return self._send(400, {"error": f"the test hub takes inline files only, got {entry['key']}"})
        self.hub.hf[repo_id] = files
        commit = self.hub.commit(repo_id)
        return self._send(200, {"commitUrl": f"{self.hub.url}/{repo_id}/commit/{commit}", "commitOid": commit,
                                "pullRequestUrl": None})  # fmt: skip

    def _kaggle(self, method, request):
        key = "/".join(str(request.get(k, "")) for k in ("ownerSlug", "modelSlug", "framework", "instanceSlug"))
        found = next((v for k, v in self.hub.kaggle.items() if _kaggle_key(k) == _kaggle_key(key)), None)
        if found is None:
            return self._send(404, {"code": 404, "message": f"model instance {key} not found"})
        if method == "GetModelInstance":
            return self._send(200, {"versionNumber": max(found)})
        version = int(request.get("versionNumber") or 0)
        if version not in found:
            return self._send(404, {"code": 404, "message": f"version {version} of {key} not found"})
        files = found[version]
        if method == "ListModelInstanceVersionFiles":
            return self._send(200, {"files": [{"name": n, "size": len(c)} for n, c in files.items()], "nextPageToken": ""})
        if method == "DownloadModelInstanceVersion":
            name = request.get("path")
            if name not in files:
                return self._send(404, {"code": 404, "message": f"{name} is not present in the model files"})
            return self._send(200, files[name], {"Content-Type": "application/octet-stream"})
        return self._unknown("POST", _KAGGLE + method)


def _kaggle_key(key):
    """`owner/model/framework/variant`, the framework's enum spelling
    (`MODEL_FRAMEWORK_KERAS`, `keras`) made one."""
    owner, model, framework, variant = key.split("/")
    return owner.lower(), model.lower(), framework.lower().removeprefix("model_framework_"), variant.lower()

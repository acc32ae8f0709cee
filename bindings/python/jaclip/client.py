"""A small client for `jaclip serve` (docs/serve.md), on the standard library's urllib.

    from jaclip.client import Client
    c = Client("http://127.0.0.1:8080")
    for hit in c.search(text="海辺の夕日", k=5):
        print(f"{hit.score:.3f} {hit.label}")

Answers come back as the binding's own types (numpy arrays, Hit, Prediction); a refusal raises the
binding's exception for the library status the server names (ImageDecodeError, ...) or ServeError for
the server's own (SERVE_BUSY, SERVE_UNAUTHORIZED, ...). Redirects are not followed (a 3xx answer is a
ServeError), so the token never reaches another origin. Threads: one Client may be shared; each call
opens its own connection.
"""
import json
import os
import urllib.error
import urllib.parse
import urllib.request
import uuid

from . import _errors
from ._api import Prediction
from ._index import Hit
from ._lib import lib
from ._tensor import np


class ServeError(_errors.Error):
    """A refusal by the server itself: .http is the HTTP status, .name the error's status name."""

    def __init__(self, message, http, name):
        super().__init__(message)
        self.http, self.name = http, name


def _status_codes():
    codes = {}
    for code in range(1, 64):
        text = lib.jaclip_status_string(code)
        name = text.decode().split(":", 1)[0] if text else ""
        if name.startswith("JACLIP_ERROR_"):
            codes[name] = code
    return codes


_STATUS_CODES = _status_codes()


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Follows no redirect: urllib would resend the Authorization header to wherever Location points,
    another origin included. A 3xx answer becomes a ServeError, as in the Ruby client."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


_OPENER = urllib.request.build_opener(_NoRedirect)


class Client:
    def __init__(self, url="http://127.0.0.1:8080", token=None, timeout=30.0):
        self.url = url.rstrip("/")
        self.token = token if token is not None else os.environ.get("JACLIP_SERVE_TOKEN") or None
        self.timeout = timeout

    # ---- transport ----

    def _request(self, method, path, body=None, content_type=None, query=None):
        url = self.url + path + ("?" + urllib.parse.urlencode(query, doseq=True) if query else "")
        headers = {"Content-Type": content_type} if content_type else {}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        req = urllib.request.Request(url, data=body, method=method, headers=headers)
        try:
            with _OPENER.open(req, timeout=self.timeout) as r:
                return r.read(), r.headers.get("Content-Type", "")
        except urllib.error.HTTPError as e:
            data = e.read()
            if 300 <= e.code < 400:
                raise ServeError(f"HTTP {e.code}: redirected to {e.headers.get('Location')!r}; the client follows "
                                 "no redirect (it would carry the token elsewhere)", e.code, "") from None
            try:
                err = json.loads(data)["error"]
                name, message = err["status"], err["message"]
            except (ValueError, KeyError, TypeError):
                raise ServeError(f"HTTP {e.code}: {data[:200]!r}", e.code, "") from None
            if name in _STATUS_CODES:
                raise _errors.from_status(_STATUS_CODES[name], message) from None
            raise ServeError(message, e.code, name) from None

    def _json(self, method, path, payload=None, **kw):
        body = None if payload is None else json.dumps(payload, ensure_ascii=False).encode()
        data, _ = self._request(method, path, body, "application/json" if body is not None else None, **kw)
        return json.loads(data)

    @staticmethod
    def _multipart(fields):
        """(body, content type) for [(name, value str)] and [(name, filename, bytes)]."""
        boundary = uuid.uuid4().hex
        parts = []
        for f in fields:
            if len(f) == 2:
                head = f'Content-Disposition: form-data; name="{f[0]}"\r\n\r\n'
                payload = f[1].encode()
            else:
                head = (f'Content-Disposition: form-data; name="{f[0]}"; filename="{f[1]}"\r\n'
                        "Content-Type: application/octet-stream\r\n\r\n")
                payload = f[2]
            parts.append(f"--{boundary}\r\n{head}".encode() + payload + b"\r\n")
        return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"

    @staticmethod
    def _image_bytes(image):
        if isinstance(image, (bytes, bytearray, memoryview)):
            return bytes(image)
        with open(image, "rb") as f:
            return f.read()

    # ---- endpoints ----

    def healthz(self):
        """True when the server answers /healthz."""
        return self._json("GET", "/healthz").get("status") == "ok"

    def info(self):
        return self._json("GET", "/v1/info")

    def indexes(self):
        return self._json("GET", "/v1/indexes")["indexes"]

    def embed_texts(self, texts):
        """float32 [n, D]: the library's text features (not normalised)."""
        if isinstance(texts, str):
            raise TypeError("expected a list of texts, not one str")
        return np.asarray(self._json("POST", "/v1/embed/text", {"texts": list(texts)})["embeddings"], np.float32)

    def embed_images(self, images):
        """float32 [n, D] for a list of image paths or encoded image bytes."""
        if isinstance(images, (str, bytes)):
            raise TypeError("expected a list of images")
        body, ctype = self._multipart([("image", f"{i}", self._image_bytes(x)) for i, x in enumerate(images)])
        data, _ = self._request("POST", "/v1/embed/image", body, ctype)
        return np.asarray(json.loads(data)["embeddings"], np.float32)

    def classify(self, image, labels=None, templates=None, scale=None):
        """[Prediction(label, probability)], best first; no labels: the server's --classifier."""
        fields = [("image", "image", self._image_bytes(image))]
        fields += [("label", x) for x in labels or []]
        fields += [("template", t) for t in ([templates] if isinstance(templates, str) else templates or [])]
        if scale is not None:
            fields.append(("scale", repr(float(scale))))
        body, ctype = self._multipart(fields)
        data, _ = self._request("POST", "/v1/classify", body, ctype)
        return [Prediction(x["label"], x["probability"]) for x in json.loads(data)["labels"]]

    def search(self, text=None, embedding=None, row=None, image=None, k=10, threshold=None, index=None, *,
               offset=0, folder=None, after=None, before=None, types=None, exact=False):
        """[Hit(label, score, row)], best first, by exactly one of text, embedding (D numbers), row (of the
        index: "more like this") or image (path or bytes). Filter, then rank, as Index.search: offset (pages),
        folder, after / before (dates "YYYY-MM-DD[THH:MM[:SS]]" in the server's local time, compared with
        each row's capture time), types (extensions); exact: never the server's INDEX.ann."""
        if sum(x is not None for x in (text, embedding, row, image)) != 1:
            raise ValueError("give exactly one of text, embedding, row or image")
        options = {"threshold": threshold, "index": index, "offset": offset or None, "folder": folder,
                   "after": after, "before": before, "types": list(types) if types else None,
                   "exact": True if exact else None}
        options = {key: value for key, value in options.items() if value is not None}
        if image is not None:
            query = {"k": k, **options}
            if "types" in query:
                query["types"] = ",".join(query["types"])
            if "exact" in query:
                query["exact"] = 1
            data, _ = self._request("POST", "/v1/search", self._image_bytes(image), "application/octet-stream",
                                    query=query)
            results = json.loads(data)["results"]
        else:
            payload = {"k": k}
            if text is not None:
                payload["text"] = text
            elif row is not None:
                payload["row"] = int(row)
            else:
                payload["embedding"] = [float(x) for x in np.asarray(embedding, np.float32).reshape(-1)]
            payload.update(options)
            results = self._json("POST", "/v1/search", payload)["results"]
        return [Hit(r["label"], r["score"], r["row"]) for r in results]

    def thumbnail(self, index, row, size=160):
        """JPEG bytes of a row's photo, size x size."""
        data, _ = self._request("GET", "/v1/thumbnail", query={"index": index, "row": int(row), "size": int(size)})
        return data

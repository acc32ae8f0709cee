"""Hostile HTTP input to `jaclip serve`: each gets a clean 4xx (JSON error with the library's status name)
and the server still answers afterwards. Bounded: loopback only, every socket has a timeout."""
import json
import os
import socket
import threading
import time
import urllib.parse

import pytest

from conftest import Server, multipart


def alive(server):
    assert server.json("GET", "/healthz") == {"status": "ok"}


def error(server, method, path, body=None, headers=None, expect=400, status=None):
    code, hdrs, data = server.request(method, path, body, headers)
    assert code == expect, (code, data[:300])
    err = json.loads(data)["error"]
    assert set(err) == {"status", "message"} and err["message"]
    if status:
        assert err["status"] == status, err
    alive(server)
    return err


def raw(server, data, read_timeout=10):
    """Sends bytes as they are and returns what comes back until the server closes or answers."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=read_timeout) as s:
        s.sendall(data)
        out = b""
        try:
            while b"\r\n\r\n" not in out or len(out) < out.find(b"\r\n\r\n") + 4 + content_length(out):
                chunk = s.recv(65536)
                if not chunk:
                    break
                out += chunk
        except socket.timeout:
            pass
        return out


def content_length(head):
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return int(line.split(b":")[1])
    return 0


def test_oversized_body(server):
    big = b"x" * (2 << 20)
    # Refused from Content-Length before the body is read.
    reply = raw(server, b"POST /v1/embed/text HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                        b"Content-Length: %d\r\n\r\n" % len(big))
    assert reply.startswith(b"HTTP/1.1 413"), reply[:200]
    assert b"SERVE_BODY_TOO_LARGE" in reply
    alive(server)
    # Chunked, with no length up front: read, dropped, answered 413.
    chunks = b"".join(b"%x\r\n" % 65536 + b"y" * 65536 + b"\r\n" for _ in range(20)) + b"0\r\n\r\n"
    reply = raw(server, b"POST /v1/embed/image HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n"
                        b"Content-Type: image/jpeg\r\n\r\n" + chunks)
    assert reply.startswith(b"HTTP/1.1 413"), reply[:200]
    alive(server)


@pytest.mark.parametrize("body", [b"{", b"{\"texts\": [\"a\",]}", b"nul", b"[\"texts\"]", b"\"x\"", b"",
                                  b"{\"texts\": [\"a\"]} trailing", b"{\"texts\": [\"a\"], \"texts\": [\"b\"]}"])
def test_malformed_json(server, body):
    error(server, "POST", "/v1/embed/text", body, {"Content-Type": "application/json"},
          status="JACLIP_ERROR_INVALID_ARGUMENT")


def test_deeply_nested_json(server):
    body = b"{\"texts\": " + b"[" * 200000 + b"]" * 200000 + b"}"
    assert len(body) < 1 << 20
    error(server, "POST", "/v1/embed/text", body, {"Content-Type": "application/json"})
    body = b"{\"text\": \"x\", \"k\": " + b"{\"a\": " * 50000 + b"1" + b"}" * 50000 + b"}"
    error(server, "POST", "/v1/search", body, {"Content-Type": "application/json"})


@pytest.mark.parametrize("body", [b"{\"texts\": [\"\xff\xfe\"]}", b"{\"texts\": [\"\xe7\x8a\"]}",
                                  b"{\"text\": \"\xc0\xaf\", \"index\": \"photos\"}",
                                  b"{\"texts\": [\"\xed\xa0\x80\"]}"])
def test_invalid_utf8(server, body):
    path = "/v1/search" if b"\"text\"" in body else "/v1/embed/text"
    error(server, "POST", path, body, {"Content-Type": "application/json"}, status="JACLIP_ERROR_INVALID_UTF8")


def test_lone_surrogate_escape(server):
    error(server, "POST", "/v1/embed/text", b"{\"texts\": [\"\\udc00\"]}", {"Content-Type": "application/json"})


def test_invalid_utf8_label(server, photos):
    raw_img = open(photos["paths"][0], "rb").read()
    error(server, "POST", "/v1/classify?label=%ff%fe", raw_img, {"Content-Type": "image/jpeg"},
          status="JACLIP_ERROR_INVALID_UTF8")


@pytest.mark.parametrize("data", [b"\xff\xd8\xff\xe0 not a jpeg at all", b"\x89PNG\r\n\x1a\nbroken", b"GIF89a....",
                                  b"\x00" * 1000])
def test_corrupt_image(server, data):
    error(server, "POST", "/v1/embed/image", data, {"Content-Type": "image/jpeg"}, status="JACLIP_ERROR_IMAGE_DECODE")
    error(server, "POST", "/v1/search?index=photos", data, {"Content-Type": "image/jpeg"},
          status="JACLIP_ERROR_IMAGE_DECODE")


def test_truncated_image(server, photos):
    data = open(photos["paths"][0], "rb").read()
    error(server, "POST", "/v1/embed/image", data[: len(data) // 3], {"Content-Type": "image/jpeg"},
          status="JACLIP_ERROR_IMAGE_DECODE")
    body, ctype = multipart([("image", "t.jpg", data[:100], "image/jpeg"), ("label", "犬")])
    error(server, "POST", "/v1/classify", body, {"Content-Type": ctype}, status="JACLIP_ERROR_IMAGE_DECODE")


def test_image_endpoints_refuse_json_and_empty(server):
    error(server, "POST", "/v1/embed/image", {"image": "x"}, expect=415)
    error(server, "POST", "/v1/embed/image", b"", {"Content-Type": "image/png"})
    body, ctype = multipart([("other", "text only")])
    error(server, "POST", "/v1/embed/image", body, {"Content-Type": ctype})
    error(server, "POST", "/v1/embed/image", b"--x\r\nbroken", {"Content-Type": "multipart/form-data"})


@pytest.mark.parametrize("path,body", [
    ("/v1/embed/text", {"texts": ["a"], "extra": 1}),
    ("/v1/embed/text", {"text": ["a"]}),
    ("/v1/embed/text", {"texts": "犬"}),
    ("/v1/embed/text", {"texts": [1, 2]}),
    ("/v1/embed/text", {"texts": [None]}),
    ("/v1/embed/text", {"texts": []}),
    ("/v1/embed/text", {"texts": ["a"] * 257}),
    ("/v1/search", {"text": "犬", "index": "photos", "k": "5"}),
    ("/v1/search", {"text": "犬", "index": "photos", "k": 0}),
    ("/v1/search", {"text": "犬", "index": "photos", "k": 10 ** 12}),
    ("/v1/search", {"text": "犬", "index": "photos", "k": 2.5}),
    ("/v1/search", {"text": "犬", "index": "photos", "threshold": "high"}),
    ("/v1/search", {"text": 5, "index": "photos"}),
    ("/v1/search", {"text": "犬", "index": 3}),
    ("/v1/search", {"index": "photos"}),
    ("/v1/search", {"text": "犬", "row": 1, "index": "photos"}),
    ("/v1/search", {"row": 8, "index": "photos"}),
    ("/v1/search", {"row": -1, "index": "photos"}),
    ("/v1/search", {"embedding": [0.5] * 3, "index": "photos"}),
    ("/v1/search", {"embedding": ["x"] * 32, "index": "photos"}),
    ("/v1/search", {"embedding": [1e39] * 32, "index": "photos"}),
    ("/v1/search", {"embedding": "0.5", "index": "photos"}),
    ("/v1/search", {"text": "犬", "index": "photos", "unknown": True}),
])
def test_unknown_fields_and_wrong_types(server, path, body):
    error(server, "POST", path, body, status="JACLIP_ERROR_INVALID_ARGUMENT")


def test_wrong_content_type_method_and_route(server):
    error(server, "POST", "/v1/embed/text", b"{\"texts\": [\"a\"]}", {"Content-Type": "text/plain"}, expect=415)
    err = error(server, "GET", "/v1/embed/text", expect=405)
    error(server, "DELETE", "/healthz", expect=405)
    error(server, "GET", "/v1/nothing", expect=404, status="JACLIP_ERROR_NOT_FOUND")
    error(server, "GET", "/../../etc/passwd", expect=404)


@pytest.mark.parametrize("query", [
    "label=../../../../etc/passwd", "label=%2e%2e%2f%2e%2e%2fetc%2fpasswd", "label=/etc/passwd",
    "label=%2fetc%2fpasswd", "label=..%252f..%252fetc%252fpasswd", "label=PHOTO_DOTDOT", "label=PHOTO%00.png",
    "row=../../etc/passwd", "row=-1", "row=1e3", "row=99999999999999999999", "row=0x1", "row=",
    "row=1&label=/etc/passwd", "index=../photos&row=0", "index=photos&row=1&size=100000", "index=photos&row=1&size=-5",
])
def test_thumbnail_path_traversal(server, photos, query):
    inside = photos["paths"][0]
    dotdot = os.path.join(os.path.dirname(inside), "..", os.path.basename(os.path.dirname(inside)),
                          os.path.basename(inside))
    query = query.replace("PHOTO_DOTDOT", urllib.parse.quote(dotdot)).replace("PHOTO", urllib.parse.quote(inside))
    if "index=" not in query:
        query = "index=photos&" + query
    code, hdrs, data = server.request("GET", "/v1/thumbnail?" + query)
    assert code in (400, 404), (code, data[:200])
    assert hdrs["Content-Type"] == "application/json" and b"root:" not in data
    alive(server)


def test_thumbnail_raw_paths_via_socket(server):
    for target in [b"/v1/thumbnail/../../etc/passwd", b"/v1/thumbnail/%2e%2e/etc/passwd", b"//etc/passwd",
                   b"/v1/../../../etc/passwd"]:
        reply = raw(server, b"GET " + target + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        assert reply.split(b" ")[1] in (b"400", b"404"), reply[:200]
        assert b"root:" not in reply
    alive(server)


def test_thumbnail_refuses_symlinked_rows(tmp_path, model, photos):
    import jaclip
    import shutil
    real = tmp_path / "real.jpg"
    shutil.copy(photos["paths"][0], real)
    link = tmp_path / "link.jpg"
    link.symlink_to(real)
    swapped = tmp_path / "swapped.jpg"
    shutil.copy(photos["paths"][0], swapped)
    index = jaclip.Index(model.embedding_dim)
    index.add(model.encode_images([str(real), str(link), str(swapped)]), [str(real), str(link), str(swapped)])
    index.save(str(tmp_path / "links.jaclip-index"))
    # After indexing, a row's file is replaced by a link to a secret outside the photo folder.
    secret = tmp_path / "secret.txt"
    secret.write_text("root:x:0:0 secret")
    swapped.unlink()
    swapped.symlink_to(secret)
    s = Server("--index", str(tmp_path / "links.jaclip-index"))
    try:
        assert s.request("GET", "/v1/thumbnail?row=0")[0] == 200
        for row in (1, 2):
            code, _, data = s.request("GET", f"/v1/thumbnail?row={row}")
            assert code == 404 and b"symbolic link" in data and b"secret" not in data
        alive(s)
    finally:
        assert s.stop() == 0


def test_slow_clients_are_cut_and_others_served(server):
    """Two clients that never finish (headers, then a body) are dropped after --timeout 3 s; meanwhile the
    server answers others at once."""
    t0 = time.monotonic()
    slow_head = socket.create_connection(("127.0.0.1", server.port), timeout=15)
    slow_head.sendall(b"POST /v1/embed/text HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Ty")
    slow_body = socket.create_connection(("127.0.0.1", server.port), timeout=15)
    slow_body.sendall(b"POST /v1/embed/text HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                      b"Content-Length: 1000\r\n\r\n{\"texts\"")
    alive(server)
    assert time.monotonic() - t0 < 2
    for s in (slow_head, slow_body):
        assert s.recv(100) == b""  # closed by the server, without waiting for us
        s.close()
    assert 2.5 < time.monotonic() - t0 < 12
    alive(server)


def test_trickling_body_is_cut_at_the_request_timeout(server):
    """A body sent a byte at a time (never idle for --timeout) is still cut once the request is older than
    --timeout."""
    t0 = time.monotonic()
    s = socket.create_connection(("127.0.0.1", server.port), timeout=15)
    s.sendall(b"POST /v1/embed/text HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
              b"Content-Length: 100\r\n\r\n")
    closed = False
    for _ in range(40):
        try:
            s.sendall(b" ")
        except OSError:
            closed = True
            break
        time.sleep(0.25)
        s.setblocking(False)
        try:
            if s.recv(100) == b"":
                closed = True
                break
        except BlockingIOError:
            pass
        finally:
            s.setblocking(True)
    s.close()
    assert closed and time.monotonic() - t0 < 8
    alive(server)


@pytest.fixture(scope="module")
def token_server(photos):
    s = Server("--index", photos["index_path"], env={"JACLIP_SERVE_TOKEN": "s3cret-token"})
    yield s
    assert s.stop() == 0


@pytest.mark.parametrize("auth", [None, "Bearer wrong", "Bearer s3cret-toke", "Bearer s3cret-token2", "s3cret-token",
                                  "Basic czNjcmV0LXRva2Vu", "Bearer "])
def test_missing_or_wrong_token(token_server, auth):
    headers = {"Authorization": auth} if auth else {}
    for method, path, body in [("GET", "/v1/info", None), ("POST", "/v1/search", {"text": "犬"}),
                               ("GET", "/v1/thumbnail?row=0", None), ("GET", "/metrics", None)]:
        code, hdrs, data = token_server.request(method, path, body, headers)
        assert code == 401 and hdrs.get("WWW-Authenticate") == "Bearer", (path, code)
        assert json.loads(data)["error"]["status"] == "SERVE_UNAUTHORIZED"
    alive(token_server)


def test_right_token(token_server):
    ok = {"Authorization": "Bearer s3cret-token"}
    assert token_server.json("GET", "/v1/info", headers=ok)["token_required"] is True
    assert len(token_server.json("POST", "/v1/search", {"text": "犬", "k": 2}, ok)["results"]) == 2
    assert token_server.request("GET", "/", None)[0] == 200  # the page itself is public; its calls are not


def test_non_loopback_host_needs_a_token():
    import subprocess
    from conftest import CLI, TINY_MODEL
    for host in ["0.0.0.0", "::", "192.0.2.1"]:
        r = subprocess.run([CLI, "serve", "--model", TINY_MODEL, "--host", host, "--port", "0"],
                           capture_output=True, text=True, timeout=60, env={k: v for k, v in os.environ.items()
                                                                            if k != "JACLIP_SERVE_TOKEN"})
        assert r.returncode == 2 and "--token" in r.stderr, r.stderr
    r = subprocess.run([CLI, "serve", "--model", TINY_MODEL, "--host", "localhost"], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 2 and "numeric" in r.stderr


def test_concurrency_cap_answers_503(photos):
    s = Server("--index", photos["index_path"], "--max-requests", 1, "--timeout", 10)
    try:
        holder = socket.create_connection(("127.0.0.1", s.port), timeout=15)
        holder.sendall(b"POST /v1/embed/text HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                       b"Content-Length: 16\r\n\r\n{\"texts\"")
        time.sleep(0.3)
        err = error(s, "POST", "/v1/search", {"text": "犬"}, expect=503, status="SERVE_BUSY")
        holder.sendall(b": [\"a\"]}")
        reply = holder.recv(65536)
        holder.close()
        assert reply.startswith(b"HTTP/1.1 200"), reply[:200]
        time.sleep(0.1)
        assert len(s.json("POST", "/v1/search", {"text": "犬", "k": 1})["results"]) == 1
    finally:
        assert s.stop() == 0


def test_graceful_stop_finishes_requests_in_flight(photos):
    s = Server("--index", photos["index_path"], "--timeout", 10)
    conn = socket.create_connection(("127.0.0.1", s.port), timeout=15)
    conn.sendall(b"POST /v1/embed/text HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                 b"Content-Length: 16\r\n\r\n{\"texts\"")
    time.sleep(0.3)
    s.proc.send_signal(15)
    time.sleep(0.5)
    assert s.proc.poll() is None  # still finishing the request
    with pytest.raises(OSError):  # no longer accepting
        socket.create_connection(("127.0.0.1", s.port), timeout=2).close()
    conn.sendall(b": [\"a\"]}")
    reply = b""
    while b"]]}" not in reply:
        chunk = conn.recv(65536)
        if not chunk:
            break
        reply += chunk
    conn.close()
    assert reply.startswith(b"HTTP/1.1 200") and b"embeddings" in reply, reply[:200]
    assert s.stop() == 0

"""jaclip.client.Client (Python) against a running `jaclip serve`: every call against the library called
directly, and refusals raised as the binding's exceptions."""
import numpy as np
import pytest

import jaclip
from conftest import Server
from jaclip.client import Client, ServeError

TOL = 1e-5


@pytest.fixture(scope="module")
def client(server):
    return Client(f"http://127.0.0.1:{server.port}")


def test_health_info_indexes(client, model):
    assert client.healthz()
    assert client.info()["model"]["dim"] == model.embedding_dim
    assert {x["name"] for x in client.indexes()} == {"photos", "vectors"}


def test_embeddings_equal_the_library(client, model, photos):
    np.testing.assert_array_equal(client.embed_texts(["犬", "猫の写真"]), model.encode_texts(["犬", "猫の写真"]))
    np.testing.assert_array_equal(client.embed_images(photos["paths"][:3]), model.encode_images(photos["paths"][:3]))
    with pytest.raises(TypeError):
        client.embed_texts("犬")


def test_search_and_classify_equal_the_library(client, model, photos):
    index, paths = photos["index"], photos["paths"]
    want = index.search(model.encode_texts(["赤い車"]), 4)
    got = client.search(text="赤い車", k=4, index="photos")
    assert [h.row for h in got] == want[0][0].tolist()
    assert [h.label for h in got] == [paths[i] for i in want[0][0]]
    np.testing.assert_allclose([h.score for h in got], want[1][0], rtol=0, atol=TOL)
    by_row = client.search(row=2, k=3, index="photos")
    assert by_row[0].row == 2 and len(by_row) == 3
    by_image = client.search(image=paths[5], k=2, index="photos")
    assert by_image[0].row == 5
    by_vector = client.search(embedding=model.encode_images([paths[1]])[0], k=1, index="photos", threshold=0.5)
    assert [h.row for h in by_vector] == [1]
    labels = ["犬", "猫", "車"]
    ranked = client.classify(paths[0], labels, templates="{}の写真")
    local = model.classify(paths[0], labels, template="{}の写真")
    assert [p.label for p in ranked] == [p.label for p in local]
    np.testing.assert_allclose([p.probability for p in ranked], [p.probability for p in local], rtol=0, atol=TOL)
    assert client.thumbnail("photos", 0, size=64)[:2] == b"\xff\xd8"
    with pytest.raises(ValueError):
        client.search(text="犬", row=1)


def test_refusals_are_the_bindings_exceptions(client, server):
    with pytest.raises(jaclip.ImageDecodeError):
        client.embed_images([b"not an image"])
    with pytest.raises(jaclip.NotFoundError):
        client.search(text="犬", index="no-such-index")
    with pytest.raises(jaclip.InvalidArgumentError):
        client.search(text="犬", k=0, index="photos")


def test_token(photos):
    s = Server("--index", photos["index_path"], "--token", "s3cret")
    try:
        with pytest.raises(ServeError) as e:
            Client(f"http://127.0.0.1:{s.port}", token="").info()
        assert e.value.http == 401 and e.value.name == "SERVE_UNAUTHORIZED"
        assert Client(f"http://127.0.0.1:{s.port}", token="s3cret").info()["indexes"]
    finally:
        assert s.stop() == 0


def test_search_filters_and_pages_equal_the_library(client, model, photos):
    index, paths, folder = photos["index"], photos["paths"], str(photos["folder"])
    query = model.encode_texts(["赤い車"])
    for filters in ({"offset": 2}, {"types": ["png"]}, {"folder": folder, "offset": 1},
                    {"types": ["jpg", "JPEG"], "offset": 1}, {"folder": "/nowhere"}, {"offset": 7}):
        rows, scores = index.search(query, 3, **filters)
        got = client.search(text="赤い車", k=3, index="photos", exact=True, **filters)
        assert [h.row for h in got] == rows[0].tolist(), filters
        np.testing.assert_allclose([h.score for h in got], scores[0], rtol=0, atol=TOL)
    by_image = client.search(image=paths[5], k=2, index="photos", types=["png"], exact=True)
    assert by_image[0].row == 5 and all(h.label.endswith(".png") for h in by_image)
    # These rows record no file stamps, so no row has a time and a date filter passes none.
    assert client.search(text="犬", k=3, index="photos", after="2000-01-01") == []
    with pytest.raises(jaclip.InvalidArgumentError):
        client.search(text="犬", k=3, index="photos", before="yesterday")

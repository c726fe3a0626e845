import random

import pytest

from sidecar.proxy.rewrite import UrlMap, is_text_content

UP = "http://hapi.internal:8080/fhir"
PUB = "https://payer.example.org/fhir"
URL_MAP = UrlMap.between(UP, PUB)


def rewrite_in_chunks(data: bytes, sizes: list[int]) -> bytes:
    stream, out, pos = URL_MAP.stream(), [], 0
    for size in sizes:
        out.append(stream.feed(data[pos:pos + size]))
        pos += size
    out.append(stream.feed(data[pos:]))
    out.append(stream.flush())
    return b"".join(out)


def test_fhir_base_is_replaced_by_public_base():
    assert URL_MAP.text(f'{UP}/Patient/1') == f"{PUB}/Patient/1"


def test_bare_upstream_origin_is_replaced_by_public_origin():
    assert URL_MAP.text("http://hapi.internal:8080/other") == "https://payer.example.org/other"


def test_same_origin_maps_only_the_base():
    url_map = UrlMap.between("http://localhost:8080/fhir", "http://localhost:8080/sidecar/fhir")
    assert url_map.pairs == ((b"http://localhost:8080/fhir", b"http://localhost:8080/sidecar/fhir"),)


@pytest.mark.parametrize("split", range(1, len(UP) + 1))
def test_pattern_split_at_any_byte_across_chunks_is_still_rewritten(split):
    body = b'{"fullUrl":"' + UP.encode() + b'/Patient/1"}'
    start = body.index(b"http")
    assert rewrite_in_chunks(body, [start + split]) == body.replace(UP.encode(), PUB.encode())


def test_random_chunking_gives_the_same_result_as_whole_body_replacement():
    rng = random.Random(7)
    body = b"".join(rng.choice([UP.encode(), b"x" * rng.randint(0, 50), b'"http://hapi.internal:8080/a"'])
                    for _ in range(400))
    expected = URL_MAP.text(body.decode()).encode()
    for _ in range(50):
        sizes = [rng.randint(1, 90) for _ in range(60)]
        assert rewrite_in_chunks(body, sizes) == expected


def test_stream_holds_back_no_more_than_a_pattern_length():
    stream = URL_MAP.stream()
    out = stream.feed(b"a" * 10_000)
    assert len(out) >= 10_000 - len(UP)


def test_no_upstream_byte_survives_in_output():
    body = (UP.encode() + b"/Patient?page=2 ") * 1000
    assert b"hapi.internal" not in rewrite_in_chunks(body, [333] * 200)


@pytest.mark.parametrize("content_type,expected", [
    ("application/fhir+json;charset=UTF-8", True), ("application/json", True), ("application/fhir+xml", True),
    ("application/fhir+ndjson", True), ("text/plain", True), ("application/octet-stream", False),
    ("image/png", False), ("", False),
])
def test_only_text_bodies_are_rewritten(content_type, expected):
    assert is_text_content(content_type) is expected

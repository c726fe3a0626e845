"""Partner page links are sealed: unreadable, unalterable, and good only for the client they were issued to."""
from sidecar.gate.pages import PageLinks, PageState
from sidecar.gate.reader import _connected

STATE = PageState("client-a", "search", "Observation", (("code", "x|1"),), 2, "hapi-search-id", 7)


def test_a_link_opens_for_its_client_with_the_state_it_was_sealed_with():
    links = PageLinks(PageLinks.new_key().encode())
    assert links.open(links.seal(STATE), "client-a") == STATE


def test_a_link_does_not_open_for_another_client():
    links = PageLinks(PageLinks.new_key().encode())
    assert links.open(links.seal(STATE), "client-b") is None


def test_a_link_does_not_show_hapis_search_id_or_the_query():
    token = PageLinks(PageLinks.new_key().encode()).seal(STATE)
    assert "hapi-search-id" not in token and "code" not in token


def test_an_altered_or_foreign_link_does_not_open():
    links = PageLinks(PageLinks.new_key().encode())
    token = links.seal(STATE)
    assert links.open(token[:-2] + ("AA" if not token.endswith("AA") else "BB"), "client-a") is None
    assert links.open("hapi-search-id", "client-a") is None
    assert PageLinks(PageLinks.new_key().encode()).open(token, "client-a") is None


def test_includes_are_kept_only_when_connected_to_the_pages_matches():
    match = {"resourceType": "Encounter", "id": "e1", "serviceProvider": {"reference": "Organization/o1"}}
    included = {"resourceType": "Organization", "id": "o1"}
    other = {"resourceType": "Organization", "id": "o2"}
    provenance = {"resourceType": "Provenance", "id": "p1", "target": [{"reference": "Encounter/e1"}]}
    assert _connected([match], [included, other, provenance]) == [included, provenance]

"""The demo API against its environment: the seeded fixtures, the migration, a write and read back.

Runs on the CI runner; every request crosses envci's port-forward into the environment, so a
missing pod, an unready database or wrong data fails a test here.
"""

from __future__ import annotations

from conftest import Api

# seed/fixtures.sql, in id order
FIXTURES = [("espresso", 250), ("flat white", 380), ("cortado", 320)]


def test_liveness_does_not_need_the_database(api: Api) -> None:
    r = api.get("/healthz")
    assert (r.status, r.body) == (200, {"status": "ok"})


def test_ready_with_the_schema_migrated(api: Api) -> None:
    r = api.get("/readyz")
    assert (r.status, r.body) == (200, {"database": "ok", "schema": True, "migrated": True})


def test_items_list_the_seeded_fixtures_in_order(api: Api) -> None:
    r = api.get("/items")
    assert r.status == 200, r.body
    seeded = [(i["name"], i["price_cents"]) for i in r.body if i["id"] <= len(FIXTURES)]
    assert seeded == FIXTURES, f"GET /items returned {r.body}"


def test_every_item_has_the_migrated_column(api: Api) -> None:
    items = api.get("/items").body
    assert items and all(i.get("created_at") for i in items), items


def test_one_item_by_id(api: Api) -> None:
    r = api.get("/items/2")
    assert r.status == 200 and (r.body["id"], r.body["name"], r.body["price_cents"]) == (2, "flat white", 380), r.body


def test_unknown_item_is_404(api: Api) -> None:
    r = api.get("/items/999999")
    assert (r.status, r.body) == (404, {"error": "no item 999999"})


def test_write_then_read_back(api: Api, run_id: str) -> None:
    created = api.post("/items", {"name": f"test {run_id}", "price_cents": 199})
    assert created.status == 201, created.body
    item_id = created.body["id"]
    assert api.get(f"/items/{item_id}").body == created.body
    assert created.body in api.get("/items").body


def test_duplicate_name_is_409(api: Api, run_id: str) -> None:
    assert api.post("/items", {"name": f"dup {run_id}", "price_cents": 1}).status == 201
    r = api.post("/items", {"name": f"dup {run_id}", "price_cents": 2})
    assert r.status == 409, r.body


def test_bad_input_is_400_and_writes_nothing(api: Api) -> None:
    before = len(api.get("/items").body)
    for payload in ({"name": "", "price_cents": 1}, {"name": "x", "price_cents": -1}, {"name": "x"}, ["x", 1]):
        r = api.post("/items", payload)
        assert r.status == 400, (payload, r.body)
    assert len(api.get("/items").body) == before


def test_version_names_the_build(api: Api) -> None:
    r = api.get("/version")
    assert r.status == 200 and isinstance(r.body["build"], str) and r.body["build"], r.body

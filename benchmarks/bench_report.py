"""Benchmark: the HTML report's size and load time in headless Chromium, for 100 and 1,000 cards.

Data: the demo's recording (scikit-learn digits, 1,797 samples, 20 % uniform noise, MLP, 30 epochs), every
recording-only detector, 8 x 8 digit thumbnails; plus, for the size budget, 28 x 28 random-noise images
(the worst case for PNG) at 200 cards (target: <= 5 MB).

Measured in the same run:

* build: ``report(...)`` wall time in Python, excluding the detectors (their scores are computed once
  and passed in) and including the noise estimate, flags and suggestions;
* size of the saved page;
* load: Chromium's navigation timing of ``file://`` loads (``domContentLoadedEventEnd`` = parsed and the
  script has run, ``loadEventEnd`` = thumbnails decoded), median of ``--repeat`` cold loads, against the
  **same page with the script removed** (the reference: the cost of plain HTML of that size); the ratio is
  what the script's sorting / filtering / review setup adds;
* sort: one change of ``#sort-by`` (reorders every card and re-applies the filters), median, ms.

Needs Debian's chromium + chromium-driver and selenium (the test extra):

    python benchmarks/bench_report.py
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import machine_info  # noqa: E402

warnings.filterwarnings("ignore", message="No ccache found")


def start_browser(profile: Path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not binary or not driver:
        sys.exit("needs Debian's chromium and chromium-driver packages (apt-get install -y chromium chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--disable-quic",
                "--no-first-run", "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--window-size=1366,900", f"--user-data-dir={profile}"):
        options.add_argument(arg)
    return webdriver.Chrome(service=Service(driver), options=options)


def load_times(browser, path: Path, repeat: int) -> tuple[float, float]:
    """Median (DOMContentLoaded, load) in ms over ``repeat`` loads of ``path`` (each after about:blank)."""
    dcl, load = [], []
    for _ in range(repeat):
        browser.get("about:blank")
        browser.get(path.as_uri())
        nav = browser.execute_script("const n = performance.getEntriesByType('navigation')[0];"
                                     "return [n.domContentLoadedEventEnd, n.loadEventEnd];")
        dcl.append(nav[0])
        load.append(nav[1])
    return statistics.median(dcl), statistics.median(load)


def sort_time(browser, path: Path, names, repeat: int) -> float:
    browser.get(path.as_uri())
    times = []
    for i in range(repeat):
        name = names[(i + 1) % len(names)]
        times.append(browser.execute_script(
            "const s = document.getElementById('sort-by'); s.value = arguments[0];"
            "const t = performance.now(); s.dispatchEvent(new Event('change'));"
            "document.body.offsetHeight; return performance.now() - t;", name))  # forces the layout
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--cards", type=int, nargs="+", default=[100, 1000])
    args = parser.parse_args()

    from interpretdl_noise import compare_detectors, report
    from interpretdl_noise.commands.demo import record_noisy_digits

    print(machine_info() if callable(machine_info) else "")
    work = Path(tempfile.mkdtemp(prefix="bench_report_"))
    try:
        path, info = record_noisy_digits(work, progress=False)
        comparison = compare_detectors(path, plots=False, progress=False)
        images = info["images"]
        browser = start_browser(work / "profile")
        try:
            print(f"demo recording: N={len(images)}, detectors {list(comparison.scores)}; load = median of "
                  f"{args.repeat} file:// loads in headless Chromium")
            print(f"{'cards':>6} {'build s':>8} {'size MB':>8} {'KB/card':>8} {'DCL ms':>8} {'load ms':>8} "
                  f"{'ref DCL':>8} {'ref load':>8} {'ratio':>6} {'sort ms':>8}")
            for k in args.cards:
                t0 = time.perf_counter()
                rep = report(path, images=images, top=k, scores=comparison, method="bhdf")
                build = time.perf_counter() - t0
                page = rep.save(work / f"report_{k}.html")
                static = work / f"static_{k}.html"
                static.write_text(re.sub(r"<script>.*?</script>", "", rep.html, flags=re.S), encoding="utf-8")
                size = page.stat().st_size
                dcl, load = load_times(browser, page, args.repeat)
                ref_dcl, ref_load = load_times(browser, static, args.repeat)
                sort_ms = sort_time(browser, page, list(comparison.scores), args.repeat)
                print(f"{rep.n_cards:>6} {build:>8.2f} {size / 1e6:>8.2f} {size / 1e3 / rep.n_cards:>8.2f} "
                      f"{dcl:>8.0f} {load:>8.0f} {ref_dcl:>8.0f} {ref_load:>8.0f} {load / ref_load:>6.2f} "
                      f"{sort_ms:>8.1f}")
            noise = np.random.default_rng(0).integers(0, 256, (len(images), 28, 28)).astype(np.uint8)
            worst = report(path, images=noise, top=200, scores=comparison, method="bhdf").save(work / "noise.html")
            size = worst.stat().st_size
            print(f"size budget: 200 cards of 28x28 random-noise images = {size / 1e6:.2f} MB "
                  f"({size / 5e6:.2f}x the 5 MB limit)")
        finally:
            browser.quit()
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

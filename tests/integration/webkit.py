"""The supervisor's HTTP side seen from a test: a topology with `http:`, scrapes, a browser.

`web_yaml(ports)` is the kit's cluster (supervisorkit.cluster_yaml) with the
status page on `ports["http"]`; `scrape(url)` reads /metrics with
prometheus_client's own parser into `{(name, labels): value}`; `total` sums
the samples of one name; `browser()` opens headless Debian chromium through
Selenium, or skips the test with one line saying what is missing.
"""

from __future__ import annotations

import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.supervisorkit import cluster_yaml

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def web_yaml(ports: dict[str, int], extra: str = "") -> str:
    """The kit's cluster with the status page on ports["http"] (loopback)."""
    return cluster_yaml(ports, http=f"  port: {ports['http']}\n{extra}")


def fetch(url: str, timeout: float = 5.0, headers: dict[str, str] | None = None) -> bytes:
    request = urllib.request.Request(url, headers=headers or {})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return response.read()


def scrape(url: str) -> Samples:
    """Every sample of a /metrics page, keyed by name and sorted labels."""
    text = fetch(url).decode()
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum of the samples called `name` whose labels include `labels`."""
    return sum(value for (sample, keys), value in samples.items()
               if sample == name and set(labels.items()) <= set(keys))


def browser(width: int = 1280, height: int = 900):
    """A headless chromium driven by Selenium; skips (one line) when it cannot run here."""
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not Path(path).exists()]
    if missing:
        pytest.skip(f"browser test: {' and '.join(missing)} missing (Debian packages chromium "
                    f"and chromium-driver; `./tahiry test` installs them when it runs as root)")
    try:
        from selenium import webdriver
        from selenium.common.exceptions import WebDriverException
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.skip("browser test: selenium is not installed (`./tahiry setup`)")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     f"--window-size={width},{height}"):
        options.add_argument(argument)
    try:
        return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    except WebDriverException as error:
        pytest.skip(f"browser test: chromium does not start here: {str(error).splitlines()[0]}")

"""A real browser for the admin's tests: Debian's chromium driven by Playwright (never a
downloaded browser build), with what a page logged as errors collected."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
WIDTH, HEIGHT = 1280, 900
ROOT = Path(__file__).resolve().parents[2]
# Screenshots go here; with UPDATE_SCREENSHOTS=1 also to docs/screenshots (the README's).
SCREENSHOTS = ROOT / ".test-results" / "screenshots"
DOC_SCREENSHOTS = ROOT / "docs" / "screenshots"


def chromium_available() -> bool:
    return shutil.which(CHROMIUM) is not None


# CI installs chromium (.ci/run): there a missing browser fails rather than skips.
needs_browser = pytest.mark.skipif(
    not chromium_available() and os.environ.get("CI") != "true",
    reason="needs /usr/bin/chromium (apt-get install chromium)",
)


@contextmanager
def chromium() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            browser.close()


@dataclass
class PageErrors:
    """Console errors and uncaught exceptions of a page, and dialogs it tried to open."""

    messages: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)

    def watch(self, page) -> None:
        page.on(
            "console",
            lambda message: message.type == "error" and self.messages.append(message.text),
        )
        page.on("pageerror", lambda error: self.messages.append(str(error)))

    def take(self) -> list[str]:
        taken, self.messages = self.messages, []
        return taken


def horizontal_overflow(page) -> list[str]:
    """What scrolls sideways: the page itself, or any box wider than its frame."""
    return page.evaluate(
        """() => {
            const wide = [];
            const doc = document.scrollingElement;
            if (doc.scrollWidth > doc.clientWidth) wide.push(`page ${doc.scrollWidth}px`);
            for (const el of document.querySelectorAll('.results, .module, #content-main')) {
                if (el.scrollWidth > el.clientWidth + 1)
                    wide.push(`${el.className || el.id} ${el.scrollWidth}>${el.clientWidth}`);
            }
            return wide;
        }"""
    )


def background_luminance(page, selector: str) -> float:
    """Relative luminance (0 black .. 1 white) of the first visible background colour
    at `selector` or its ancestors."""
    return page.evaluate(
        """(selector) => {
            let el = document.querySelector(selector);
            while (el) {
                const m = getComputedStyle(el).backgroundColor.match(/[\\d.]+/g);
                if (m && (m.length < 4 || Number(m[3]) > 0)) {
                    const [r, g, b] = m.slice(0, 3).map(v => Number(v) / 255);
                    return 0.2126 * r + 0.7152 * g + 0.0722 * b;
                }
                el = el.parentElement;
            }
            return 1;
        }""",
        selector,
    )


def screenshot(page, name: str, *, full_page: bool = False) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    if os.environ.get("UPDATE_SCREENSHOTS") == "1":
        DOC_SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, DOC_SCREENSHOTS / path.name)
    return path

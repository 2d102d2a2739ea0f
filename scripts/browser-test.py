"""Drives the demo storefront at `/` in headless Chromium (Debian's package, through
playwright's Python driver) against a running node, in Chinese and in English:

1. asks for a phone with good value for money, and checks the understood category and
   preference;
2. follows up with a price cap of 4000, and checks that the page shows the cap as a
   refinement and that every product shown costs at most that;
3. clicks a product and checks that the recommendations change.

Saves a screenshot after each step. Usage: browser-test.py BASE_URL OUT_DIR CHROMIUM
"""

import re
import sys
from pathlib import Path

from playwright.sync_api import sync_playwright

CONVERSATIONS = {
    "zh": ["我想找一款性价比高的手机", "有没有4000元以内的？"],
    "en": ["I'm looking for a phone with good value for money", "any under 4000?"],
}
CAP = 4000.0
HAN = re.compile(r"[\u4e00-\u9fff]")


def fail(language, step, message, page, out):
    page.screenshot(path=str(out / f"{language}-failed-{step}.png"), full_page=True)
    sys.exit(f"browser test ({language}, {step}): {message}")


def ask(page, text):
    """Types `text` into the search box and waits for the answer and the recommendations
    that follow it."""
    page.fill("[data-testid=search-input]", text)
    with page.expect_response(lambda r: r.url.endswith("/v1/search")) as searched:
        with page.expect_response(lambda r: r.url.endswith("/v1/recommend")):
            page.press("[data-testid=search-input]", "Enter")
    return searched.value


def testid(page, name):
    return page.locator(f"[data-testid={name}]")


def recommendations(page):
    cards = testid(page, "rec-card")
    return [
        (cards.nth(i).get_attribute("data-id"), cards.nth(i).locator("li").all_inner_texts())
        for i in range(cards.count())
    ]


def converse(browser, language, base_url, out):
    context = browser.new_context(locale="zh-CN" if language == "zh" else "en-US",
                                  viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.goto(base_url + "/")
    page.wait_for_selector("[data-testid=rec-card]")
    first, follow_up = CONVERSATIONS[language]

    answer = ask(page, first)
    if answer.status != 200:
        fail(language, "search", f"search answered {answer.status}", page, out)
    category = testid(page, "understanding-category").inner_text()
    preference = testid(page, "understanding-preference").get_attribute("data-value")
    if category != "手机" or preference != "best_value":
        fail(language, "search", f"understood {category!r}, {preference!r}", page, out)
    if testid(page, "result-card").count() == 0:
        fail(language, "search", "no products shown", page, out)
    reasons = " ".join(testid(page, "reasons").all_inner_texts())
    if (language == "zh") != bool(HAN.search(reasons.replace("手机", ""))):
        fail(language, "search", f"reasons not in {language}: {reasons[:200]}", page, out)
    page.screenshot(path=str(out / f"{language}-1-search.png"), full_page=True)

    ask(page, follow_up)
    cap = testid(page, "understanding-price-max").get_attribute("data-value")
    refined = testid(page, "understanding-follow-up").get_attribute("data-value")
    if cap is None or float(cap) != CAP or refined != "true":
        fail(language, "follow-up", f"price cap {cap!r}, follow-up {refined!r}", page, out)
    if testid(page, "understanding-category").inner_text() != "手机":
        fail(language, "follow-up", "the category was not kept", page, out)
    cards = testid(page, "result-card")
    prices = [float(cards.nth(i).get_attribute("data-price")) for i in range(cards.count())]
    if not prices or max(prices) > CAP:
        fail(language, "follow-up", f"prices shown: {prices}", page, out)
    page.screenshot(path=str(out / f"{language}-2-follow-up.png"), full_page=True)

    before = recommendations(page)
    with page.expect_response(lambda r: r.url.endswith("/v1/events")) as sent:
        with page.expect_response(lambda r: r.url.endswith("/v1/recommend")):
            cards.first.locator("[data-testid=view]").click()
    if sent.value.status != 200:
        fail(language, "click", f"the click event answered {sent.value.status}", page, out)
    event = sent.value.request.post_data_json["events"][0]
    if not event.get("request_id") or event.get("position") != 1:
        fail(language, "click", f"the click carried no attribution: {event}", page, out)
    after = recommendations(page)
    if after == before:
        fail(language, "click", f"recommendations did not change: {after}", page, out)
    page.screenshot(path=str(out / f"{language}-3-clicked.png"), full_page=True)
    context.close()
    print(f"browser test ({language}): {len(prices)} products at most {CAP:.0f}, "
          f"recommendations {len(before)} -> {len(after)} changed")


def main():
    base_url, out, chromium = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
    out.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        for language in CONVERSATIONS:
            converse(browser, language, base_url, out)
        browser.close()
    print(f"browser test: screenshots in {out}")


if __name__ == "__main__":
    main()

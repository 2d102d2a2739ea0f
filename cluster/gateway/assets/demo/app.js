// The demo storefront: search, facets, a product grid, events and live recommendations,
// all through the node's public API (/v1/search, /v1/events, /v1/recommend). Every value
// from the catalog goes into the page as text, never as markup.
"use strict";

const TEXT = {
  en: {
    placeholder: "Search in Chinese or English, e.g. a phone with good value for money",
    search: "Search", language: "中文", key: "API key (if the node needs one)", docs: "API docs",
    results: "Results", noResults: "Nothing found.", recommendations: "Recommended for you",
    more: "More results", view: "View", cart: "Add to cart", carted: "In cart",
    category: "Category", brand: "Brand", price: "Price", priceCap: "Up to", priceFrom: "From",
    preference: "Preference", intent: "Intent", followUp: "Refines the last search",
    newTopic: "New search", topic: "Looking for", rating: "rated",
    footer: "Shopper {user}, session {session}. Every click and cart is a real event.",
    preferences: { best_value: "best value", cheapest: "cheapest", premium: "premium", best_rated: "best rated", newest: "newest" },
    intents: { browse: "browse", purchase: "buy", compare: "compare", refine: "refine", price_check: "price check", other: "other" },
  },
  zh: {
    placeholder: "用中文或英文搜索，例如：我想找一款性价比高的手机",
    search: "搜索", language: "English", key: "API 密钥（如需要）", docs: "API 文档",
    results: "搜索结果", noResults: "没有找到。", recommendations: "为您推荐",
    more: "更多结果", view: "查看", cart: "加入购物车", carted: "已加购",
    category: "类目", brand: "品牌", price: "价格", priceCap: "最高", priceFrom: "最低",
    preference: "偏好", intent: "意图", followUp: "在上一轮搜索上细化",
    newTopic: "新的搜索", topic: "在找", rating: "评分",
    footer: "顾客 {user}，会话 {session}。每次点击和加购都是真实事件。",
    preferences: { best_value: "性价比", cheapest: "最便宜", premium: "高端", best_rated: "评分最高", newest: "最新" },
    intents: { browse: "浏览", purchase: "购买", compare: "比较", refine: "细化", price_check: "比价", other: "其他" },
  },
};

const PAGE_SIZE = 12;
const state = {
  language: (navigator.language || "en").toLowerCase().startsWith("zh") ? "zh" : "en",
  key: sessionStorage.getItem("inkling-demo-key") || "",
  user: remembered("inkling-demo-user", () => "demo-" + randomId()),
  session: "demo-session-" + randomId(),
  query: "",
  filters: {},
  answer: null,
  shown: [],
};

function randomId() {
  return Math.random().toString(36).slice(2, 10);
}

function remembered(name, make) {
  let value = localStorage.getItem(name);
  if (!value) {
    value = make();
    localStorage.setItem(name, value);
  }
  return value;
}

function t(key) {
  return TEXT[state.language][key];
}

function element(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (name === "onclick") node.addEventListener("click", value);
    else if (value !== undefined && value !== null) node.setAttribute(name, value);
  }
  for (const child of children) {
    if (child !== null && child !== undefined) node.append(child);
  }
  return node;
}

function money(amount, currency) {
  const locale = state.language === "zh" ? "zh-CN" : "en-US";
  try {
    return new Intl.NumberFormat(locale, { style: "currency", currency, maximumFractionDigits: 0 }).format(amount);
  } catch {
    return `${currency} ${Math.round(amount)}`;
  }
}

async function api(path, body) {
  const headers = { "content-type": "application/json", "accept-language": state.language };
  if (state.key) headers.authorization = `Bearer ${state.key}`;
  const response = await fetch(path, { method: "POST", headers, body: JSON.stringify(body) });
  const answer = await response.json().catch(() => ({}));
  if (!response.ok) {
    const message = answer.error ? `${answer.error.code}: ${answer.error.message}` : response.statusText;
    throw new Error(`${response.status} ${message}`);
  }
  return answer;
}

function showError(error) {
  const box = document.getElementById("error");
  box.hidden = !error;
  box.textContent = error ? String(error.message || error) : "";
}

async function search(offset = 0) {
  if (!state.query) return;
  const body = {
    user_id: state.user, session_id: state.session, query: state.query,
    k: PAGE_SIZE, offset, filters: state.filters,
  };
  try {
    const answer = await api("/v1/search", body);
    showError(null);
    state.answer = answer;
    state.shown = offset === 0 ? answer.items : state.shown.concat(answer.items);
    renderUnderstanding(answer.understanding);
    renderNotices(answer.notices || []);
    renderFacets(answer.facets);
    renderResults(answer);
  } catch (error) {
    showError(error);
  }
  await recommend();
}

async function recommend() {
  const body = { user_id: state.user, session_id: state.session, k: 6 };
  try {
    const answer = await api("/v1/recommend", body);
    const box = document.getElementById("recommendations");
    renderCards(box, answer.items, answer.request_id, "rec-card");
    for (const notice of answer.notices || []) box.append(element("p", { class: "notice" }, notice));
  } catch (error) {
    showError(error);
  }
}

async function act(type, item, position, requestId) {
  const event = {
    user_id: state.user, session_id: state.session, type, item_id: item.product.id,
    request_id: requestId, position, event_id: `${state.session}-${randomId()}`,
  };
  try {
    await api("/v1/events", { events: [event] });
    showError(null);
  } catch (error) {
    showError(error);
  }
  await recommend();
}

function renderUnderstanding(understanding) {
  const box = document.getElementById("understanding");
  box.replaceChildren();
  box.hidden = !understanding;
  if (!understanding) return;
  const constraints = understanding.constraints || {};
  const field = (label, value, testid) =>
    element("span", {}, element("span", { class: "label" }, label + ":"), element("b", { "data-testid": testid }, value));
  box.append(field(t("topic"), understanding.topic || state.query, "understanding-topic"));
  box.append(field(t("intent"), t("intents")[understanding.intent] || understanding.intent, "understanding-intent"));
  if (constraints.category) box.append(field(t("category"), constraints.category, "understanding-category"));
  if (constraints.brand) box.append(field(t("brand"), constraints.brand, "understanding-brand"));
  if (constraints.price_min !== undefined && constraints.price_min !== null) {
    box.append(field(t("priceFrom"), money(constraints.price_min, constraints.currency || "CNY"), "understanding-price-min"));
  }
  if (constraints.price_max !== undefined && constraints.price_max !== null) {
    const cap = element("b", { "data-testid": "understanding-price-max", "data-value": constraints.price_max },
      money(constraints.price_max, constraints.currency || "CNY"));
    box.append(element("span", {}, element("span", { class: "label" }, t("priceCap") + ":"), cap));
  }
  if (constraints.preference) {
    const preference = t("preferences")[constraints.preference] || constraints.preference;
    box.append(element("span", {}, element("span", { class: "label" }, t("preference") + ":"),
      element("b", { "data-testid": "understanding-preference", "data-value": constraints.preference }, preference)));
  }
  box.append(element("span", { class: "badge", "data-testid": "understanding-follow-up", "data-value": String(understanding.follow_up) },
    understanding.follow_up ? t("followUp") : t("newTopic")));
}

function renderNotices(notices) {
  document.getElementById("notices").replaceChildren(...notices.map((notice) => element("li", {}, notice)));
}

function renderFacets(facets) {
  const box = document.getElementById("facets");
  box.replaceChildren();
  if (!facets) return;
  const group = (title, entries, chosen, toggle) => {
    if (!entries.length) return;
    box.append(element("h3", {}, title));
    for (const entry of entries) {
      const input = element("input", { type: "checkbox" });
      input.checked = chosen(entry);
      input.addEventListener("change", () => { toggle(entry); search(0); });
      box.append(element("label", { "data-testid": "facet" }, input, " ", entry.label, " ",
        element("span", { class: "count" }, `(${entry.count})`)));
    }
  };
  const listed = (name) => (entry) => (state.filters[name] || []).includes(entry.value);
  const toggleIn = (name) => (entry) => {
    const values = new Set(state.filters[name] || []);
    if (values.has(entry.value)) values.delete(entry.value); else values.add(entry.value);
    if (values.size) state.filters[name] = [...values]; else delete state.filters[name];
  };
  group(t("category"), facets.category.map((f) => ({ ...f, label: f.value })), listed("category"), toggleIn("category"));
  group(t("brand"), facets.brand.map((f) => ({ ...f, label: f.value })), listed("brand"), toggleIn("brand"));
  const prices = facets.price.map((bucket) => ({
    ...bucket, label: `${money(bucket.min, bucket.currency)} – ${money(bucket.max, bucket.currency)}`,
  }));
  group(t("price"), prices,
    (bucket) => state.filters.price_min === bucket.min && state.filters.price_max === bucket.max,
    (bucket) => {
      if (state.filters.price_min === bucket.min && state.filters.price_max === bucket.max) {
        delete state.filters.price_min; delete state.filters.price_max; delete state.filters.currency;
      } else {
        Object.assign(state.filters, { price_min: bucket.min, price_max: bucket.max, currency: bucket.currency });
      }
    });
}

function renderResults(answer) {
  const grid = document.getElementById("results");
  renderCards(grid, state.shown, answer.request_id, "result-card");
  if (!state.shown.length) grid.append(element("p", { "data-testid": "no-results" }, t("noResults")));
  const more = document.getElementById("more");
  more.hidden = answer.next_offset === undefined || answer.next_offset === null;
  more.onclick = () => search(answer.next_offset);
}

function renderCards(container, items, requestId, testid) {
  container.replaceChildren(...items.map((item, index) => card(item, index + 1, requestId, testid)));
}

function card(item, position, requestId, testid) {
  const product = item.product;
  const node = element("div", {
    class: "card", "data-testid": testid, "data-id": product.id,
    "data-price": product.price, "data-currency": product.currency,
  });
  const pick = () => {
    node.classList.add("picked");
    act("click", item, position, requestId);
  };
  const cart = element("button", { type: "button", "data-testid": "add-to-cart" }, t("cart"));
  cart.addEventListener("click", () => {
    cart.textContent = t("carted");
    act("add_to_cart", item, position, requestId);
  });
  const meta = [product.brand, product.category_path[product.category_path.length - 1]]
    .filter(Boolean).join(" · ");
  const rating = product.rating ? ` · ${t("rating")} ${product.rating.toFixed(1)}` : "";
  node.append(
    element("span", { class: "title", "data-testid": "product-title", onclick: pick }, product.title),
    element("span", { class: "meta" }, meta + rating),
    element("span", { class: "price" }, money(product.price, product.currency)),
    element("ul", { "data-testid": "reasons" },
      ...item.reasons.map((reason) => element("li", { "data-code": reason.code }, reason.text))),
    element("div", { class: "actions" },
      element("button", { type: "button", "data-testid": "view", onclick: pick }, t("view")), cart),
  );
  return node;
}

function applyLanguage() {
  document.documentElement.lang = state.language === "zh" ? "zh-CN" : "en";
  document.getElementById("search-input").placeholder = t("placeholder");
  document.getElementById("search-button").textContent = t("search");
  document.getElementById("language").textContent = t("language");
  document.getElementById("api-key").placeholder = t("key");
  document.getElementById("docs-link").textContent = t("docs");
  document.getElementById("results-title").textContent = t("results");
  document.getElementById("recs-title").textContent = t("recommendations");
  document.getElementById("more").textContent = t("more");
  document.getElementById("footer").textContent =
    t("footer").replace("{user}", state.user).replace("{session}", state.session);
}

document.getElementById("search-form").addEventListener("submit", (event) => {
  event.preventDefault();
  state.query = document.getElementById("search-input").value.trim();
  state.filters = {};
  search(0);
});
document.getElementById("language").addEventListener("click", () => {
  // Reasons come back in the new language from the next answer on; asking the same query
  // again would count as another turn of the conversation.
  state.language = state.language === "zh" ? "en" : "zh";
  applyLanguage();
  recommend();
});
const keyInput = document.getElementById("api-key");
keyInput.value = state.key;
keyInput.addEventListener("change", () => {
  state.key = keyInput.value.trim();
  sessionStorage.setItem("inkling-demo-key", state.key);
  recommend();
});
applyLanguage();
recommend();

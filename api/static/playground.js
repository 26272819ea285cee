// Invekto Knowledge playground: vanilla JavaScript over the public /v1 API, no build step, no CDN.
// Every text from the server is put on the page with textContent, never as HTML.
"use strict";

(() => {
  const I18N = window.PLAYGROUND_I18N;

  const KEY_STORAGE = "invekto.playground.key";
  const LANG_STORAGE = "invekto.playground.lang";
  const JOB_POLL_MS = 500;
  const TERMINAL_JOB = new Set(["succeeded", "partial", "failed"]);

  const state = {
    lang: localStorage.getItem(LANG_STORAGE) || "tr",
    key: "",
    mode: null, // the /v1/assist/mode body once connected
    conversationId: "",
    suggest: null, // { body, ms }
    resolve: null,
    feedback: new Map(), // suggestion id -> FeedbackResult
    editing: new Set(), // suggestion ids with the editor open
    openCitations: new Set(), // "<suggestion id or resolve>:<index>"
    jobs: new Map(), // job id -> last JobOut body, newest last
    documents: null,
    gaps: null, // the /v1/knowledge/gaps body
    conflicts: null, // the /v1/knowledge/conflicts body
  };

  const $ = (id) => document.getElementById(id);

  function t(name, vars) {
    const text = (I18N[state.lang] && I18N[state.lang][name]) || I18N.tr[name] || name;
    return text.replace(/\{(\w+)\}/g, (_, v) => (vars && v in vars ? String(vars[v]) : ""));
  }

  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(props || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (name === "class") node.className = value;
      else if (name === "text") node.textContent = value;
      else if (name === "testid") node.dataset.testid = value;
      else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
      else node.setAttribute(name, value === true ? "" : value);
    }
    for (const child of children.flat()) {
      if (child !== null && child !== undefined && child !== false) {
        node.append(child instanceof Node ? child : document.createTextNode(String(child)));
      }
    }
    return node;
  }

  // ----- API -----

  class ApiError extends Error {
    constructor(status, problem) {
      super((problem && (problem.detail || problem.title)) || t("http_error", { status }));
      this.status = status;
      this.problem = problem;
    }
  }

  async function api(method, path, { json, form } = {}) {
    if (!state.key) throw new ApiError(0, { title: t("need_key") });
    const headers = { Authorization: `Bearer ${state.key}`, Accept: "application/json" };
    let body;
    if (json !== undefined) {
      headers["Content-Type"] = "application/json";
      body = JSON.stringify(json);
    } else if (form) {
      body = form;
    }
    let response;
    try {
      response = await fetch(path, { method, headers, body });
    } catch (err) {
      throw new ApiError(0, { title: t("network_error", { message: err.message }) });
    }
    const type = response.headers.get("content-type") || "";
    const data = type.includes("json") ? await response.json().catch(() => null) : await response.text();
    if (!response.ok) {
      const problem = data && typeof data === "object" ? data : { title: t("http_error", { status: response.status }), detail: data || null };
      throw new ApiError(response.status, problem);
    }
    return data;
  }

  function showError(err) {
    const box = $("error");
    box.replaceChildren();
    if (!err) {
      box.hidden = true;
      return;
    }
    const problem = err.problem || { title: err.message };
    const status = err.status ? ` (${err.status})` : "";
    box.append(el("strong", { text: `${problem.title || t("http_error", { status: err.status })}${status}` }));
    if (problem.detail) box.append(el("span", { text: problem.detail }));
    if (Array.isArray(problem.errors) && problem.errors.length) {
      box.append(el("ul", {}, problem.errors.map((e) => el("li", { text: `${e.location}: ${e.message}` }))));
    }
    box.hidden = false;
  }

  async function busy(button, work) {
    const label = button.textContent;
    button.disabled = true;
    button.textContent = t("working");
    try {
      showError(null);
      await work();
    } catch (err) {
      showError(err);
    } finally {
      button.disabled = false;
      button.textContent = label;
    }
  }

  // ----- key, tenant and mode banner -----

  function renderBanner() {
    const banner = $("mode-banner");
    banner.replaceChildren();
    const mode = state.mode;
    if (!mode) {
      banner.className = "banner banner-unknown";
      banner.dataset.mode = "";
      banner.append(el("span", { text: t(state.key ? "banner_checking" : "banner_unknown") }));
      $("tenant").textContent = "";
      return;
    }
    banner.className = `banner ${mode.offline ? "banner-offline" : "banner-llm"}`;
    banner.dataset.mode = mode.mode;
    banner.dataset.offline = String(mode.offline);
    banner.append(
      el("span", { text: mode.offline ? t("banner_offline") : t("banner_llm", { mode: mode.mode }) }),
      el("small", { text: mode.offline ? t("banner_offline_hint") : t("banner_llm_hint") }),
    );
    $("tenant").textContent = t("connected_as", { name: mode.tenant_name, id: mode.tenant_id });
  }

  async function connect() {
    state.key = $("api-key").value.trim();
    state.mode = null;
    renderBanner();
    if (!state.key) {
      localStorage.removeItem(KEY_STORAGE);
      throw new ApiError(0, { title: t("need_key") });
    }
    localStorage.setItem(KEY_STORAGE, state.key);
    state.mode = await api("GET", "/v1/assist/mode");
    renderBanner();
    if (!$("panel-documents").hidden) await loadDocuments();
  }

  // ----- conversation editor -----

  function newConversationId() {
    const bytes = new Uint8Array(4);
    crypto.getRandomValues(bytes);
    state.conversationId = `playground-${Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("")}`;
    $("conversation-id").textContent = state.conversationId;
  }

  function localizeTurn(li) {
    const role = li.querySelector(".role");
    role.options[0].textContent = t("role_customer");
    role.options[1].textContent = t("role_agent");
    li.classList.toggle("agent", role.value === "agent");
    li.querySelector(".text").placeholder = t(role.value === "agent" ? "agent_placeholder" : "customer_placeholder");
  }

  function addTurn(role, text = "") {
    const li = $("turn-template").content.firstElementChild.cloneNode(true);
    const list = $("turns");
    const n = list.children.length;
    li.dataset.testid = "turn";
    const select = li.querySelector(".role");
    const area = li.querySelector(".text");
    select.value = role;
    select.id = `turn-role-${n}`;
    select.dataset.testid = "turn-role";
    area.value = text;
    area.id = `turn-text-${n}`;
    area.dataset.testid = "turn-text";
    area.setAttribute("aria-labelledby", select.id);
    select.addEventListener("change", () => localizeTurn(li));
    li.querySelector(".remove").addEventListener("click", () => {
      li.remove();
      if (!list.children.length) addTurn("customer");
    });
    localizeTurn(li);
    list.append(li);
    return area;
  }

  function conversation() {
    const messages = Array.from($("turns").children, (li) => ({
      role: li.querySelector(".role").value,
      text: li.querySelector(".text").value.trim(),
    })).filter((m) => m.text);
    if (!messages.some((m) => m.role === "customer")) throw new ApiError(0, { title: t("need_customer") });
    return { conversation_id: state.conversationId, channel: $("channel").value, messages };
  }

  function clearConversation() {
    $("turns").replaceChildren();
    addTurn("customer");
    newConversationId();
    state.suggest = null;
    state.resolve = null;
    renderSuggestions();
    renderResolution();
    showError(null);
  }

  // ----- suggestions, citations, feedback -----

  function confidenceBar(value) {
    const pct = Math.round(value * 100);
    const level = value >= 0.7 ? "" : value >= 0.4 ? " mid" : " low";
    return el(
      "span",
      { class: "confidence", testid: "confidence", title: `${t("confidence")} ${pct}%` },
      el("span", { class: `bar${level}`, role: "meter", "aria-valuemin": "0", "aria-valuemax": "100", "aria-valuenow": String(pct), "aria-label": t("confidence") },
        (() => { const fill = el("span"); fill.style.width = `${pct}%`; return fill; })()),
      el("span", { text: `${pct}%` }),
    );
  }

  function lastSection(section) {
    const parts = (section || "").split(">").map((s) => s.trim()).filter(Boolean);
    return parts.length ? parts[parts.length - 1] : "";
  }

  function citationList(owner, citations) {
    const wrap = el("div", {});
    const chips = el("div", { class: "citations", testid: "citations" });
    const details = el("div", {});
    citations.forEach((c, i) => {
      const key = `${owner}:${i}`;
      const open = state.openCitations.has(key);
      const section = lastSection(c.section);
      const label = section && section !== c.doc_id ? `${c.doc_id} › ${section}` : c.doc_id;
      const detailId = `cite-${owner}-${i}`;
      const detail = el(
        "div",
        { class: "citation-detail", id: detailId, testid: "citation-detail", hidden: !open },
        el("dl", {},
          el("dt", { text: t("cite_title") }), el("dd", { text: c.title || "—" }),
          el("dt", { text: t("cite_section") }), el("dd", { text: c.section || "—" }),
          el("dt", { text: t("cite_source") }), el("dd", { text: t(`source_${c.source}`) }),
          el("dt", { text: t("cite_doc") }), el("dd", {}, el("code", { text: `${c.doc_id}#${c.chunk_id}` })),
        ),
        el("blockquote", { testid: "citation-snippet", text: c.snippet }),
      );
      const chip = el("button", {
        type: "button",
        class: "chip",
        testid: "citation",
        "data-doc-id": c.doc_id,
        "aria-expanded": String(open),
        "aria-controls": detailId,
        title: c.title,
        text: `${i + 1} · ${label}`,
        onclick: () => {
          const nowOpen = !state.openCitations.has(key);
          if (nowOpen) state.openCitations.add(key);
          else state.openCitations.delete(key);
          chip.setAttribute("aria-expanded", String(nowOpen));
          detail.hidden = !nowOpen;
        },
      });
      chips.append(chip);
      details.append(detail);
    });
    wrap.append(chips, details);
    return wrap;
  }

  async function sendFeedback(suggestion, action, finalText) {
    const body = { suggestion_id: suggestion.id, action };
    if (action === "edited") body.final_text = finalText;
    const result = await api("POST", "/v1/feedback", { json: body });
    state.feedback.set(suggestion.id, result);
    state.editing.delete(suggestion.id);
    renderSuggestions();
  }

  function feedbackControls(suggestion) {
    const done = state.feedback.get(suggestion.id);
    const box = el("div", { class: "feedback" });
    if (done) {
      const parts = [t(`fb_${done.action}`)];
      if (done.learned_doc_id) parts.push(t("fb_learned", { doc: done.learned_doc_id }));
      box.append(el("span", {
        class: `feedback-status ${done.action}`,
        testid: "feedback-status",
        "data-action": done.action,
        "data-feedback-id": done.id,
        text: parts.join(" · "),
      }));
      return box;
    }
    const click = (action) => (event) => busy(event.currentTarget, () => sendFeedback(suggestion, action));
    box.append(
      el("button", { type: "button", class: "accept", testid: "accept", text: t("accept"), onclick: click("accepted") }),
      el("button", {
        type: "button", class: "edit", testid: "edit", text: t("edit"), "aria-expanded": String(state.editing.has(suggestion.id)),
        onclick: () => {
          if (state.editing.has(suggestion.id)) state.editing.delete(suggestion.id);
          else state.editing.add(suggestion.id);
          renderSuggestions();
        },
      }),
      el("button", { type: "button", class: "reject", testid: "reject", text: t("reject"), onclick: click("rejected") }),
    );
    if (!state.editing.has(suggestion.id)) return box;
    const areaId = `edit-${suggestion.id}`;
    const area = el("textarea", { id: areaId, rows: "4", testid: "edit-text", "aria-label": t("edit") });
    area.value = suggestion.text;
    const editor = el("div", { class: "editor" },
      area,
      el("div", { class: "row" },
        el("button", {
          type: "button", class: "primary", testid: "send-edit", text: t("send_edit"),
          onclick: (event) => busy(event.currentTarget, () => sendFeedback(suggestion, "edited", area.value)),
        }),
        el("button", {
          type: "button", class: "ghost", testid: "cancel-edit", text: t("cancel"),
          onclick: () => { state.editing.delete(suggestion.id); renderSuggestions(); },
        }),
      ),
    );
    return el("div", {}, box, editor);
  }

  // The banner promises an LLM; say so when an answer came from the extractive fallback instead.
  function fallbackNotice(mode) {
    if (!state.mode || state.mode.offline || mode !== "extractive") return null;
    return el("p", { class: "notice", testid: "fallback-notice", text: t("fallback_notice") });
  }

  function renderSuggestions() {
    const list = $("suggestions");
    const meta = $("suggest-meta");
    list.replaceChildren();
    meta.textContent = "";
    if (!state.suggest) {
      list.append(el("p", { class: "empty", text: t("no_suggestions_yet") }));
      return;
    }
    const { body, ms } = state.suggest;
    meta.textContent = t("suggest_meta", { mode: body.mode, language: body.language, ms });
    meta.title = `${t("query")}: ${body.query}`;
    const notice = fallbackNotice(body.mode);
    if (notice) list.append(notice);
    if (!body.suggestions.length) {
      list.append(el("p", { class: "empty", testid: "no-suggestions", text: body.note || t("no_suggestions") }));
      return;
    }
    body.suggestions.forEach((s, i) => {
      const done = state.feedback.get(s.id);
      list.append(el(
        "article",
        { class: `suggestion${done ? ` done-${done.action === "rejected" ? "rejected" : "accepted"}` : ""}`, testid: "suggestion", "data-suggestion-id": s.id },
        el("div", { class: "suggestion-head" },
          el("span", { class: "rank", text: `#${i + 1}` }),
          el("span", { class: `badge ${s.strategy}`, testid: "strategy", "data-strategy": s.strategy, text: t(`strategy_${s.strategy}`) }),
          confidenceBar(s.confidence),
        ),
        el("p", { class: "suggestion-text", testid: "suggestion-text", text: s.text }),
        // Why the agent should check it first (missing words, a flagged source); the API's words, in Turkish.
        s.caution ? el("p", { class: "caution", testid: "caution", text: `⚠ ${s.caution}` }) : null,
        citationList(s.id, s.citations),
        feedbackControls(s),
      ));
    });
  }

  async function suggest() {
    const request = conversation();
    const started = performance.now();
    const body = await api("POST", "/v1/assist/suggest", { json: request });
    state.suggest = { body, ms: Math.round(performance.now() - started) };
    renderSuggestions();
  }

  // ----- resolve -----

  function renderResolution() {
    const box = $("resolution");
    const meta = $("resolve-meta");
    box.replaceChildren();
    meta.textContent = "";
    if (!state.resolve) {
      box.append(el("p", { class: "empty", text: t("no_resolution_yet") }));
      return;
    }
    const { body, ms } = state.resolve;
    meta.textContent = t("suggest_meta", { mode: body.mode, language: body.language, ms });
    const handoff = body.decision === "handoff";
    const notice = fallbackNotice(body.mode);
    if (notice) box.append(notice);
    box.append(el("div", { class: "resolution-head" },
      el("span", { class: `badge ${body.decision}`, testid: "decision", "data-decision": body.decision, text: t(`decision_${body.decision}`) }),
      // A handoff before any knowledge was weighed (a request for a human) has no confidence to show.
      handoff && !body.confidence ? null : confidenceBar(body.confidence),
    ));
    if (body.reason) {
      box.append(el("div", { class: "reason", testid: "reason", "data-reason": body.reason },
        el("strong", { text: `${t("reason")}: ` }), t(`reason_${body.reason}`), " ", el("code", { text: `(${body.reason})` })));
    }
    if (body.text) {
      box.append(el("span", { class: "label", text: t(handoff ? "handoff_message" : "answer_label") }));
      box.append(el("p", { class: "answer-text", testid: "resolve-text", text: body.text }));
    }
    if (body.summary) {
      box.append(el("span", { class: "label", text: t("summary") }));
      box.append(el("p", { class: "summary", testid: "summary", text: body.summary }));
    }
    if (body.citations.length) {
      box.append(el("span", { class: "label", text: t("citations") }));
      box.append(citationList("resolve", body.citations));
    }
  }

  async function resolve() {
    const request = conversation();
    const started = performance.now();
    const body = await api("POST", "/v1/assist/resolve", { json: request });
    state.resolve = { body, ms: Math.round(performance.now() - started) };
    renderResolution();
  }

  // ----- documents and jobs -----

  function statusLabel(status) {
    return el("span", { class: `status ${status}`, testid: "status", "data-status": status, text: t(`status_${status}`) });
  }

  function formatDate(value) {
    if (!value) return "";
    return new Date(value).toLocaleString(state.lang === "tr" ? "tr-TR" : "en-GB", { dateStyle: "short", timeStyle: "short" });
  }

  function renderJobs() {
    const box = $("jobs");
    box.replaceChildren();
    if (!state.jobs.size) {
      box.append(el("p", { class: "empty", text: t("no_jobs") }));
      return;
    }
    for (const job of Array.from(state.jobs.values()).reverse()) {
      const pct = Math.round(job.progress * 100);
      const fill = el("span");
      fill.style.width = `${pct}%`;
      box.append(el("div", { class: `job ${job.status}`, testid: "job", "data-job-id": job.id, "data-status": job.status },
        el("div", { class: "job-head" },
          el("strong", { text: t("job_title", { id: job.id.slice(0, 8) }) }),
          el("span", { testid: "job-status", "data-status": job.status }, statusLabel(job.status)),
        ),
        el("div", { class: "bar", role: "progressbar", testid: "job-progress", "aria-valuemin": "0", "aria-valuemax": "100", "aria-valuenow": String(pct) }, fill),
        el("div", { class: "hint", text: t("job_counts", { done: job.files_done, total: job.files_total, failed: job.files_failed, chunks: job.chunks_written }) }),
        job.error ? el("div", { class: "err", text: job.error }) : null,
        el("ul", {}, job.files.map((f) => el("li", { testid: "job-file", "data-name": f.name, "data-status": f.status },
          statusLabel(f.status),
          el("span", { text: f.name }),
          f.chunks ? el("span", { class: "hint", text: t("chunks_n", { n: f.chunks }) }) : null,
          f.error ? el("span", { class: "err", testid: "job-file-error", text: f.error }) : null,
        ))),
      ));
    }
  }

  async function pollJob(location) {
    for (;;) {
      const job = await api("GET", location);
      state.jobs.set(job.id, job);
      renderJobs();
      if (TERMINAL_JOB.has(job.status)) return job;
      await new Promise((resolveTimer) => setTimeout(resolveTimer, JOB_POLL_MS));
    }
  }

  async function upload() {
    const input = $("files");
    if (!input.files.length) throw new ApiError(0, { title: t("no_files") });
    const form = new FormData();
    for (const file of input.files) form.append("files", file, file.name);
    const accepted = await api("POST", "/v1/documents", { form });
    state.jobs.set(accepted.id, accepted);
    renderJobs();
    input.value = "";
    renderChosen();
    await pollJob(accepted.location);
    await loadDocuments();
  }

  function renderChosen() {
    $("chosen").replaceChildren(...Array.from($("files").files, (f) => el("li", { text: `${f.name} (${Math.ceil(f.size / 1024)} KB)` })));
  }

  function renderDocuments() {
    const body = $("documents-body");
    body.replaceChildren();
    if (!state.documents) return;
    if (!state.documents.length) {
      body.append(el("tr", {}, el("td", { colspan: "6", class: "empty", text: t("no_documents") })));
      return;
    }
    for (const d of state.documents) {
      body.append(el("tr", { testid: "document", "data-doc-id": d.doc_id },
        el("td", { title: d.title || "" }, el("code", { text: d.doc_id }), flagBadge(d)),
        el("td", { text: t(`source_${d.source}`) }),
        el("td", {}, statusLabel(d.status), d.error ? el("div", { class: "err", text: d.error }) : null),
        el("td", { class: "num", text: String(d.version) }),
        el("td", { class: "num", text: String(d.chunk_count) }),
        el("td", { text: formatDate(d.updated_at) }),
      ));
    }
  }

  // Flagged chunks are indexed but never sent automatically; the admin should review the document.
  function flagBadge(d) {
    if (!d.flagged_chunks) return null;
    const reasons = Object.entries(d.flag_reasons || {}).map(([reason, n]) => `${t(`flag_${reason}`)}: ${n}`);
    return el("span", {
      class: "badge flagged", testid: "flagged", "data-flagged": String(d.flagged_chunks),
      title: [t("flagged_hint"), ...reasons].join("\n"),
      text: t("flagged_n", { n: d.flagged_chunks }),
    });
  }

  async function loadDocuments() {
    state.documents = await api("GET", "/v1/documents");
    renderDocuments();
  }

  // ----- knowledge gaps and conflicts -----

  function renderGaps() {
    const box = $("gaps");
    box.replaceChildren();
    if (!state.gaps) return;
    if (!state.gaps.topics.length) {
      box.append(el("p", { class: "empty", text: t("no_gaps") }));
      return;
    }
    state.gaps.topics.forEach((topic, i) => {
      const answer = el("textarea", { class: "gap-answer", rows: "3", testid: "gap-answer", placeholder: t("gap_answer_placeholder") });
      answer.value = topic.candidate ? topic.candidate.text : "";
      const question = el("input", { class: "gap-question", testid: "gap-question", value: topic.examples[0] || topic.label });
      const save = el("button", { type: "button", class: "primary", testid: "gap-save", text: t("gap_save") });
      save.addEventListener("click", () => busy(save, () => answerGap(topic, question.value, answer.value)));
      box.append(el("div", { class: `gap${topic.off_topic ? " off-topic" : ""}`, testid: "gap", "data-index": String(i) },
        el("div", { class: "gap-head" },
          el("strong", { testid: "gap-label", text: topic.label }),
          el("span", { class: "badge", testid: "gap-count", text: t("asked_n", { n: topic.count }) }),
          topic.off_topic ? el("span", { class: "badge", text: t("off_topic") }) : null),
        el("ul", { class: "gap-examples" }, ...topic.examples.map((q) => el("li", { text: q }))),
        topic.candidate
          ? el("p", { class: "hint", testid: "gap-candidate", text: t("gap_candidate", { ref: topic.candidate.ref }) })
          : null,
        topic.off_topic ? null : el("div", { class: "gap-form" }, question, answer, save),
      ));
    });
  }

  function renderConflicts() {
    const box = $("conflicts");
    box.replaceChildren();
    if (!state.conflicts) return;
    const { conflicts, stale } = state.conflicts;
    if (!conflicts.length && !stale.length) {
      box.append(el("p", { class: "empty", text: t("no_conflicts") }));
      return;
    }
    for (const c of conflicts) {
      box.append(el("div", { class: "gap", testid: "conflict" },
        el("div", { class: "gap-head" }, el("strong", { text: c.kind })),
        ...[c.first, c.second].map((p) => el("p", {},
          el("strong", { text: `${p.value} ` }), el("code", { text: p.ref }), el("div", { text: p.text }))),
      ));
    }
    for (const s of stale) {
      box.append(el("p", { class: "hint", testid: "stale", text: t("stale_doc", { ref: s.ref, newer: s.replaced_by }) }));
    }
  }

  async function answerGap(topic, question, answer) {
    if (!answer.trim()) throw new ApiError(0, { title: t("gap_answer_needed") });
    await api("POST", "/v1/knowledge/gaps/answer", { json: { question, answer, asked: topic.examples } });
    await loadGaps();
  }

  async function loadGaps() {
    [state.gaps, state.conflicts] = await Promise.all([api("GET", "/v1/knowledge/gaps"), api("GET", "/v1/knowledge/conflicts")]);
    renderGaps();
    renderConflicts();
  }

  // ----- tabs and language -----

  function showTab(name) {
    for (const tab of document.querySelectorAll(".tab")) {
      const active = tab.dataset.tab === name;
      tab.classList.toggle("active", active);
      tab.setAttribute("aria-selected", String(active));
      $(`panel-${tab.dataset.tab}`).hidden = !active;
    }
    if (name === "documents" && state.mode) loadDocuments().catch(showError);
    if (name === "gaps" && state.mode) loadGaps().catch(showError);
  }

  function setLanguage(lang) {
    state.lang = I18N[lang] ? lang : "tr";
    localStorage.setItem(LANG_STORAGE, state.lang);
    document.documentElement.lang = state.lang;
    for (const node of document.querySelectorAll("[data-i18n]")) node.textContent = t(node.dataset.i18n);
    for (const node of document.querySelectorAll("[data-i18n-placeholder]")) node.placeholder = t(node.dataset.i18nPlaceholder);
    for (const btn of document.querySelectorAll(".lang-btn")) btn.setAttribute("aria-pressed", String(btn.dataset.lang === state.lang));
    for (const li of $("turns").children) localizeTurn(li);
    renderBanner();
    renderSuggestions();
    renderResolution();
    renderJobs();
    renderDocuments();
    renderGaps();
    renderConflicts();
  }

  // ----- start -----

  function start() {
    // A key in the URL fragment (#key=...) is never sent to the server; keep it and clean the address bar.
    const fromHash = new URLSearchParams(location.hash.slice(1)).get("key");
    if (fromHash) {
      localStorage.setItem(KEY_STORAGE, fromHash);
      history.replaceState(null, "", location.pathname + location.search);
    }
    $("api-key").value = localStorage.getItem(KEY_STORAGE) || "";

    $("key-form").addEventListener("submit", (event) => {
      event.preventDefault();
      busy($("connect"), connect);
    });
    for (const btn of document.querySelectorAll(".lang-btn")) btn.addEventListener("click", () => setLanguage(btn.dataset.lang));
    for (const tab of document.querySelectorAll(".tab")) tab.addEventListener("click", () => showTab(tab.dataset.tab));
    $("add-customer").addEventListener("click", () => addTurn("customer").focus());
    $("add-agent").addEventListener("click", () => addTurn("agent").focus());
    $("clear").addEventListener("click", clearConversation);
    for (const chip of document.querySelectorAll(".example")) {
      chip.addEventListener("click", () => {
        const turns = Array.from($("turns").children);
        const last = turns[turns.length - 1];
        const area = last && last.querySelector(".role").value === "customer" && !last.querySelector(".text").value.trim()
          ? last.querySelector(".text")
          : addTurn("customer");
        area.value = chip.dataset.example;
      });
    }
    $("suggest").addEventListener("click", (event) => busy(event.currentTarget, suggest));
    $("resolve").addEventListener("click", (event) => busy(event.currentTarget, resolve));
    $("upload-form").addEventListener("submit", (event) => {
      event.preventDefault();
      busy($("upload"), upload);
    });
    $("files").addEventListener("change", renderChosen);
    const zone = document.querySelector(".dropzone");
    zone.addEventListener("dragover", (event) => { event.preventDefault(); zone.classList.add("over"); });
    zone.addEventListener("dragleave", () => zone.classList.remove("over"));
    zone.addEventListener("drop", (event) => {
      event.preventDefault();
      zone.classList.remove("over");
      $("files").files = event.dataTransfer.files;
      renderChosen();
    });
    $("refresh-docs").addEventListener("click", (event) => busy(event.currentTarget, loadDocuments));
    $("refresh-gaps").addEventListener("click", (event) => busy(event.currentTarget, loadGaps));

    addTurn("customer");
    newConversationId();
    setLanguage(state.lang);
    if ($("api-key").value) busy($("connect"), connect);
  }

  document.addEventListener("DOMContentLoaded", start);
})();

"""The replica's two HTML pages: the login form and the chat page.

The chat page copies the elements of AI Studio's chat page that the browser driver
touches (tag names, classes and labels as listed in shared/research/aistudio-page.md) and
their behaviour: Run disabled while the prompt is empty, a stoppable spinner while the
answer renders token by token, New chat behind a confirmation dialog, run settings, the
model kept in localStorage, error toasts. Everything is inline: the page must load on a
machine with no network beyond the replica itself.
"""

from __future__ import annotations

import html
import json
from typing import Any, Final

LOGIN_PAGE: Final = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<link rel="icon" href="data:,">
<title>Sign in - Replica AI Studio</title>
<style>
  body { margin: 0; font: 14px/1.5 system-ui, sans-serif; background: #f1f3f4; color: #1f1f1f; }
  main { max-width: 380px; margin: 10vh auto; padding: 32px; background: #fff; border-radius: 12px; }
  h1 { font-size: 22px; margin: 0 0 4px; }
  label { display: block; margin-top: 16px; }
  input { width: 100%; box-sizing: border-box; padding: 8px; font: inherit; }
  button { margin-top: 24px; padding: 8px 24px; font: inherit; border: 0; border-radius: 18px;
           background: #0b57d0; color: #fff; cursor: pointer; }
</style>
</head>
<body>
<main>
  <h1>Sign in</h1>
  <p>to continue to Replica AI Studio. Any email and password will do.</p>
  <form method="post" action="/login">
    <input type="hidden" name="continue" value="__CONTINUE__">
    <label>Email <input type="text" name="email" autocomplete="username" autofocus></label>
    <label>Password <input type="password" name="password" autocomplete="current-password"></label>
    <button type="submit" id="sign-in">Sign in</button>
  </form>
</main>
</body>
</html>
"""

CHAT_PAGE: Final = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<link rel="icon" href="data:,">
<title>New chat - Replica AI Studio</title>
<style>
  * { box-sizing: border-box; }
  body { margin: 0; font: 14px/1.5 system-ui, sans-serif; color: #1f1f1f; background: #f8f9fa; }
  button { font: inherit; cursor: pointer; }
  ms-app { display: flex; flex-direction: column; height: 100vh; }
  .top-bar { display: flex; align-items: center; gap: 24px; padding: 8px 16px; background: #fff;
             border-bottom: 1px solid #dadce0; }
  .brand { font-weight: 600; }
  .layout { flex: 1; display: flex; min-height: 0; }
  .chat-panel { flex: 1; display: flex; flex-direction: column; min-width: 0; }
  .toolbar { display: flex; align-items: center; justify-content: space-between; padding: 8px 16px; }
  .toolbar h1 { font-size: 18px; margin: 0; font-weight: 500; }
  ms-chat-session { display: block; flex: 1; overflow-y: auto; padding: 0 16px; }
  ms-chat-turn { display: block; margin: 8px 0; }
  .chat-turn-container { padding: 8px 12px; border-radius: 8px; background: #fff; border: 1px solid #dadce0; }
  .chat-turn-container.user { background: #e8f0fe; }
  .actions-container { display: flex; justify-content: space-between; color: #5f6368; font-size: 12px; }
  .toggle-edit-button { border: 0; background: none; color: inherit; }
  .toggle-edit-button::before { content: "\\270e"; }
  ms-cmark-node.cmark-node { display: block; white-space: pre-wrap; }
  .turn-content.editing { outline: 2px solid #0b57d0; }
  .prompt-box { display: flex; align-items: flex-end; gap: 8px; padding: 12px 16px;
                border-top: 1px solid #dadce0; background: #fff; }
  ms-prompt-input-wrapper, ms-autosize-textarea { display: block; flex: 1; }
  ms-prompt-input-wrapper textarea { width: 100%; min-height: 48px; max-height: 240px; resize: none;
                                     font: inherit; padding: 8px; border-radius: 8px; }
  .run-button { display: inline-flex; align-items: center; gap: 6px; padding: 8px 16px; border: 0;
                border-radius: 18px; background: #0b57d0; color: #fff; }
  .run-button[disabled] { opacity: 0.45; cursor: default; }
  .run-button .shortcut { opacity: 0.7; font-size: 12px; }
  .run-button svg { width: 16px; height: 16px; animation: spin 1s linear infinite; }
  .stoppable-spinner { fill: none; stroke: currentColor; stroke-width: 3; stroke-dasharray: 40 20; }
  @keyframes spin { to { transform: rotate(360deg); } }
  .run-settings { width: 300px; padding: 16px; border-left: 1px solid #dadce0; background: #fff;
                  overflow-y: auto; }
  .run-settings h2 { font-size: 16px; margin: 0 0 12px; }
  .setting { margin-bottom: 16px; }
  .setting > label { display: block; font-weight: 500; margin-bottom: 4px; }
  ms-slider { display: flex; gap: 8px; align-items: center; }
  ms-slider input[type="range"] { flex: 1; }
  ms-slider input[type="number"] { width: 72px; }
  .setting input[type="text"], .setting input[aria-label="Maximum output tokens"] {
    width: 100%; padding: 4px;
  }
  mat-chip-set { display: flex; flex-wrap: wrap; gap: 4px; margin-bottom: 4px; }
  mat-chip-row { display: inline-flex; align-items: center; gap: 4px; padding: 0 4px 0 10px;
                 border: 1px solid #747775; border-radius: 8px; white-space: pre; }
  mat-chip-row button { border: 0; background: none; padding: 0 4px; }
  mat-chip-row button::before { content: "\\00d7"; }
  ms-model-selector { display: block; position: relative; margin-bottom: 16px; }
  .model-selector-card { width: 100%; text-align: left; padding: 8px 12px; border: 1px solid #dadce0;
                         border-radius: 8px; background: #fff; display: flex; flex-direction: column; }
  .model-title { font-weight: 500; }
  .model-name { color: #5f6368; font-size: 12px; }
  .model-options { position: absolute; left: 0; right: 0; z-index: 10; background: #fff;
                   border: 1px solid #dadce0; border-radius: 8px; }
  .model-option { display: block; width: 100%; text-align: left; border: 0; background: none;
                  padding: 8px 12px; }
  .model-option:hover { background: #f1f3f4; }
  .toast-container { position: fixed; top: 56px; left: 50%; transform: translateX(-50%); z-index: 900;
                     display: flex; flex-direction: column; gap: 8px; pointer-events: none; }
  .toast { padding: 10px 16px; border-radius: 8px; background: #323232; color: #fff; }
  .toast.error { background: #b3261e; }
  .cdk-overlay-container { position: fixed; inset: 0; z-index: 1000; display: flex; align-items: center;
                           justify-content: center; }
  .cdk-overlay-backdrop { position: absolute; inset: 0; background: rgba(0, 0, 0, 0.32); }
  .mat-mdc-dialog-container { position: relative; display: block; }
  .mat-mdc-dialog-inner-container { background: #fff; padding: 24px; border-radius: 16px; min-width: 340px; }
  .mat-mdc-dialog-title { font-size: 18px; margin: 0 0 8px; }
  .mat-mdc-dialog-actions { display: flex; justify-content: flex-end; gap: 8px; margin-top: 24px; }
  .ms-button-primary, .ms-button-borderless { border: 0; border-radius: 18px; padding: 8px 16px; }
  .ms-button-primary { background: #0b57d0; color: #fff; }
  .ms-button-borderless { background: none; color: #0b57d0; }
</style>
</head>
<body>
<ms-app>
  <header class="top-bar">
    <span class="brand">Replica AI Studio</span>
    <nav><a class="playground-link" href="/prompts/new_chat">Chat</a></nav>
  </header>
  <main class="layout">
    <section class="chat-panel">
      <div class="toolbar">
        <h1>Untitled prompt</h1>
        <button type="button" class="new-chat-button" data-test-clear="outside"
                aria-label="New chat">New chat</button>
      </div>
      <ms-chat-session><div class="chat-session-content" id="turns"></div></ms-chat-session>
      <form class="prompt-box" id="prompt-form">
        <ms-prompt-input-wrapper>
          <ms-autosize-textarea>
            <textarea aria-label="Type something" placeholder="Start typing a prompt" rows="2"></textarea>
          </ms-autosize-textarea>
        </ms-prompt-input-wrapper>
        <ms-run-button>
          <button type="submit" class="run-button" aria-label="Run" disabled></button>
        </ms-run-button>
      </form>
    </section>
    <aside class="run-settings">
      <ms-run-settings>
        <h2>Run settings</h2>
        <ms-model-selector>
          <button type="button" class="model-selector-card" aria-label="Choose model">
            <span class="model-title"></span><span class="model-name"></span>
          </button>
          <div class="model-options" hidden></div>
        </ms-model-selector>
        <div class="setting">
          <label for="temperature">Temperature</label>
          <ms-slider>
            <input type="range" min="0" max="2" step="0.05" value="1" tabindex="-1" aria-hidden="true">
            <input type="number" id="temperature" min="0" max="2" step="0.05" value="1">
          </ms-slider>
        </div>
        <div class="setting">
          <label for="top-p">Top P</label>
          <ms-slider>
            <input type="range" min="0" max="1" step="0.05" value="0.95" tabindex="-1" aria-hidden="true">
            <input type="number" id="top-p" min="0" max="1" step="0.05" value="0.95">
          </ms-slider>
        </div>
        <div class="setting">
          <label for="max-tokens">Output length</label>
          <input type="number" id="max-tokens" min="1" step="1" value="8192"
                 aria-label="Maximum output tokens">
        </div>
        <div class="setting">
          <label for="stop-input">Stop sequences</label>
          <mat-chip-set aria-label="Stop sequences"></mat-chip-set>
          <input type="text" id="stop-input" aria-label="Add stop token" placeholder="Add stop...">
        </div>
      </ms-run-settings>
    </aside>
  </main>
  <div class="toast-container" id="toasts" aria-live="polite"></div>
</ms-app>

<template id="idle-button">
  <span class="run-label">Run</span><span class="shortcut">Ctrl &#x23ce;</span>
</template>
<template id="busy-button">
  <svg viewBox="0 0 24 24" aria-hidden="true">
    <circle class="stoppable-spinner" cx="12" cy="12" r="9"></circle>
  </svg>
  <span class="run-label">Stop</span>
</template>
<template id="discard-dialog">
  <div class="cdk-overlay-container">
    <div class="cdk-overlay-backdrop"></div>
    <mat-dialog-container class="mat-mdc-dialog-container" role="dialog" aria-modal="true">
      <div class="mat-mdc-dialog-inner-container">
        <h2 class="mat-mdc-dialog-title">Discard unsaved changes?</h2>
        <div class="mat-mdc-dialog-content">Starting a new chat discards this conversation.</div>
        <div class="mat-mdc-dialog-actions">
          <button type="button" class="ms-button-borderless">Cancel</button>
          <button type="button" class="ms-button-primary">Discard and continue</button>
        </div>
      </div>
    </mat-dialog-container>
  </div>
</template>
<script type="application/json" id="replica-boot">__BOOT__</script>
<script>
(() => {
  "use strict";
  const QUOTA_MESSAGE = "You've reached your rate limit. Please try again later.";
  const PREFERENCE_KEY = "aiStudioUserPreference";
  const MODEL_PREFIX = "models/";
  const $ = (selector, root = document) => root.querySelector(selector);

  const textarea = $("ms-prompt-input-wrapper ms-autosize-textarea textarea");
  const form = $("#prompt-form");
  const runButton = $("ms-run-button button.run-button");
  const turns = $("#turns");
  const toasts = $("#toasts");
  const temperature = $("#temperature");
  const topP = $("#top-p");
  const maxTokens = $("#max-tokens");
  const chipSet = $("mat-chip-set");
  const stopInput = $("#stop-input");
  const modelCard = $(".model-selector-card");
  const modelOptions = $(".model-options");

  // All of the page's state; `generation` is the run being rendered, null when idle.
  const page = { models: JSON.parse($("#replica-boot").textContent).models, model: "", generation: null };

  // ---- models: the preference lives in localStorage, as on AI Studio

  const modelId = (name) => (name.startsWith(MODEL_PREFIX) ? name.slice(MODEL_PREFIX.length) : name);

  function readPreference() {
    try {
      const value = JSON.parse(localStorage.getItem(PREFERENCE_KEY) || "{}");
      return value && typeof value === "object" ? value : {};
    } catch (error) {
      return {};
    }
  }

  function chooseModel() {
    const wanted = readPreference().promptModel;
    const ids = page.models.map((model) => modelId(model.name));
    page.model = typeof wanted === "string" && ids.includes(modelId(wanted)) ? modelId(wanted) : ids[0];
    const shown = page.models.find((model) => modelId(model.name) === page.model);
    $(".model-title").textContent = shown ? shown.displayName : page.model;
    $("span.model-name").textContent = page.model;
    modelOptions.replaceChildren(...page.models.map((model) => {
      const option = document.createElement("button");
      option.type = "button";
      option.className = "model-option";
      option.dataset.model = modelId(model.name);
      option.textContent = `${model.displayName} (${modelId(model.name)})`;
      return option;
    }));
  }

  async function loadModels() {
    try {
      const response = await fetch("/api/ListModels");
      const body = await response.json().catch(() => null);
      if (!response.ok) throw new Error(errorMessage(response, body));
      if (body && Array.isArray(body.models) && body.models.length > 0) {
        page.models = body.models;
        chooseModel();
      }
    } catch (error) {
      showToast(`Failed to load models: ${error.message}`);
    }
  }

  modelCard.addEventListener("click", () => { modelOptions.hidden = !modelOptions.hidden; });
  modelOptions.addEventListener("click", (event) => {
    const option = event.target.closest(".model-option");
    if (!option) return;
    localStorage.setItem(PREFERENCE_KEY, JSON.stringify(
      { ...readPreference(), promptModel: MODEL_PREFIX + option.dataset.model }));
    modelOptions.hidden = true;
    chooseModel();
  });

  // ---- run settings: read when Run is pressed, so a run uses what the panel shows then

  function numberSetting(input, fallback) {
    const value = Number.parseFloat(input.value);
    if (!Number.isFinite(value)) return fallback;
    const max = input.max === "" ? Infinity : Number.parseFloat(input.max);
    return Math.min(Math.max(value, Number.parseFloat(input.min)), max);
  }

  const stopSequences = () => [...chipSet.querySelectorAll("mat-chip-row")].map((chip) => chip.dataset.value);

  function readSettings() {
    return {
      temperature: numberSetting(temperature, 1),
      top_p: numberSetting(topP, 0.95),
      max_tokens: Math.round(numberSetting(maxTokens, 8192)),
      stop: stopSequences(),
    };
  }

  for (const slider of document.querySelectorAll("ms-slider")) {
    const [range, number] = slider.querySelectorAll("input");
    range.addEventListener("input", () => { number.value = range.value; });
    number.addEventListener("input", () => { range.value = number.value; });
  }

  function addStopChip(value) {
    const chip = document.createElement("mat-chip-row");
    chip.className = "mat-mdc-chip-row";
    chip.dataset.value = value;
    const label = document.createElement("span");
    label.className = "mat-mdc-chip-action-label";
    label.textContent = value;
    // The remove button's cross is drawn by CSS, so the chip's text is the stop string alone.
    const remove = document.createElement("button");
    remove.type = "button";
    remove.setAttribute("aria-label", `Remove ${value}`);
    remove.addEventListener("click", () => chip.remove());
    chip.append(label, remove);
    chipSet.appendChild(chip);
  }

  stopInput.addEventListener("keydown", (event) => {
    if (event.key !== "Enter") return;
    event.preventDefault();
    const value = stopInput.value;
    if (value !== "" && !stopSequences().includes(value)) addStopChip(value);
    stopInput.value = "";
  });

  // ---- turns

  function appendTurn(role, text) {
    const turn = document.createElement("ms-chat-turn");
    const container = document.createElement("div");
    container.className = `chat-turn-container ${role}`;
    const actions = document.createElement("div");
    actions.className = "actions-container";
    const author = document.createElement("span");
    author.className = "author-label";
    author.textContent = role === "user" ? "User" : "Model";
    const edit = document.createElement("button");
    edit.type = "button";
    edit.className = "toggle-edit-button";
    edit.setAttribute("aria-label", "Edit");
    const content = document.createElement("div");
    content.className = "turn-content";
    edit.addEventListener("click", () => {
      const editing = content.classList.toggle("editing");
      content.contentEditable = editing ? "true" : "false";
    });
    if (text !== null) content.appendChild(cmarkNode(text));
    actions.append(author, edit);
    container.append(actions, content);
    turn.appendChild(container);
    turns.appendChild(turn);
    turn.scrollIntoView({ block: "end" });
    return content;
  }

  function cmarkNode(text) {
    const node = document.createElement("ms-cmark-node");
    node.className = "cmark-node";
    node.textContent = text;
    return node;
  }

  // ---- generation

  function setGeneration(generation) {
    page.generation = generation;
    runButton.replaceChildren($(generation ? "#busy-button" : "#idle-button").content.cloneNode(true));
    updateRunButton();
  }

  function updateRunButton() {
    runButton.disabled = page.generation === null && textarea.value.trim() === "";
  }

  function submit() {
    const prompt = textarea.value;
    if (page.generation !== null || prompt.trim() === "") return;
    const request = { prompt, model: page.model, ...readSettings() };
    const generation = { runId: null, tokens: [], index: 0, tokenMs: 0, timer: null, turn: null,
                         node: null, reported: false };
    appendTurn("user", prompt);
    textarea.value = "";
    autosize();
    setGeneration(generation);
    fetch("/api/GenerateContent", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(request),
    })
      .then(async (response) => accepted(generation, response, await response.json().catch(() => null)))
      .catch((error) => {
        if (page.generation !== generation) return;
        setGeneration(null);
        showToast(`Failed to generate content: ${error.message}`);
      });
  }

  function accepted(generation, response, body) {
    if (response.ok && body) generation.runId = body.run_id;
    if (page.generation !== generation) {
      // Stopped, or the chat discarded, before the server answered: the run ends empty.
      if (generation.runId) report(generation, "stopped", false);
      return;
    }
    if (!response.ok || !body) {
      setGeneration(null);
      showToast(response.status === 429 ? QUOTA_MESSAGE : errorMessage(response, body));
      return;
    }
    generation.tokens = body.tokens;
    generation.tokenMs = body.token_ms;
    generation.turn = appendTurn("model", null);
    generation.timer = setTimeout(() => renderNext(generation), body.first_token_ms);
  }

  function renderNext(generation) {
    if (page.generation !== generation) return;
    if (generation.index < generation.tokens.length) {
      if (generation.node === null) {
        generation.node = cmarkNode("");
        generation.turn.appendChild(generation.node);
      }
      // One text node per token: every token is a childList mutation an observer can see.
      generation.node.appendChild(document.createTextNode(generation.tokens[generation.index]));
      generation.index += 1;
    }
    if (generation.index < generation.tokens.length) {
      generation.timer = setTimeout(() => renderNext(generation), generation.tokenMs);
    } else {
      end(generation, "completed", false);
    }
  }

  function end(generation, status, unloading) {
    clearTimeout(generation.timer);
    if (page.generation === generation) setGeneration(null);
    if (generation.runId) report(generation, status, unloading);
  }

  function renderedText(generation) {
    if (generation.turn === null) return "";
    return [...generation.turn.querySelectorAll("ms-cmark-node.cmark-node")]
      .map((node) => node.textContent).join("");
  }

  function report(generation, status, unloading) {
    if (generation.reported) return;
    generation.reported = true;
    const url = `/api/runs/${encodeURIComponent(generation.runId)}/finished`;
    const body = JSON.stringify({ status, text: renderedText(generation) });
    if (unloading) {
      navigator.sendBeacon(url, body);
    } else {
      fetch(url, { method: "POST", headers: { "Content-Type": "application/json" }, body, keepalive: true })
        .catch(() => {});
    }
  }

  function stop() {
    if (page.generation !== null) end(page.generation, "stopped", false);
  }

  function autosize() {
    textarea.style.height = "auto";
    textarea.style.height = `${textarea.scrollHeight + 2}px`;
  }

  textarea.addEventListener("input", () => { autosize(); updateRunButton(); });
  textarea.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      submit();
    }
  });
  // Run while idle submits; Run while generating is the stop button.
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    if (page.generation !== null) stop(); else submit();
  });
  window.addEventListener("pagehide", () => {
    if (page.generation !== null) end(page.generation, "stopped", true);
  });

  // ---- toasts

  function errorMessage(response, body) {
    const message = body && body.error && body.error.message;
    return message || `Request failed with status ${response.status}`;
  }

  function showToast(message) {
    if ([...toasts.children].some((toast) => toast.textContent === message)) return;
    const toast = document.createElement("div");
    toast.className = "toast error";
    toast.setAttribute("role", "alert");
    toast.textContent = message;
    toasts.appendChild(toast);
  }

  // ---- New chat

  function closeDialog() {
    const overlay = $(".cdk-overlay-container");
    if (overlay) overlay.remove();
  }

  function openDialog() {
    if ($(".cdk-overlay-container")) return;
    const overlay = $("#discard-dialog").content.firstElementChild.cloneNode(true);
    $(".cdk-overlay-backdrop", overlay).addEventListener("click", closeDialog);
    $(".ms-button-borderless", overlay).addEventListener("click", closeDialog);
    $(".ms-button-primary", overlay).addEventListener("click", () => {
      closeDialog();
      newChat();
    });
    document.body.appendChild(overlay);
    $(".ms-button-primary", overlay).focus();
  }

  function newChat() {
    stop();
    turns.replaceChildren();
    toasts.replaceChildren();
    textarea.value = "";
    autosize();
    updateRunButton();
  }

  $('button[data-test-clear="outside"][aria-label="New chat"]').addEventListener("click", openDialog);
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape") closeDialog();
  });

  chooseModel();
  setGeneration(null);
  loadModels();
})();
</script>
</body>
</html>
"""


def login_page(continue_to: str) -> str:
    return LOGIN_PAGE.replace("__CONTINUE__", html.escape(continue_to, quote=True))


def chat_page(models: list[dict[str, Any]]) -> str:
    # The model list rides in the page so that the model shows at once; the page still asks
    # ListModels on start, as AI Studio does, because the driver learns the models from it.
    boot = json.dumps({"models": models}).replace("<", "\\u003c")
    return CHAT_PAGE.replace("__BOOT__", boot)

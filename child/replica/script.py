"""The chat page's behaviour, in JavaScript: what AI Studio's page does that a driver
depends on (spec section A and B, the page's side).

It posts each prompt itself with XMLHttpRequest to the answer endpoint on the other
origin, signed with a proof made from a per-load secret that it keeps in its closure,
and renders the answer from `responseText` as the frames arrive: thoughts into
`ms-thought-chunk`, the answer through the markdown renderer, an error as a callout and
a toast. Run turns into Stop while the answer streams; New chat asks first; settings,
menus and panels exist in the DOM only while shown; pop-ups block the page at load.
When a run ends the page reports what it rendered to `/api/runs/<id>/finished`.
"""

from __future__ import annotations

from typing import Final

PAGE_SCRIPT: Final = r"""
  const RPC = "/$rpc/google.internal.alkali.applications.makersuite.v1.MakerSuiteService/";
  const PREFERENCE_KEY = "aiStudioUserPreference";
  const MODEL_PREFIX = "models/";
  const CONSENT_COOKIE = "replica_cookie_consent";
  const TOAST_MS = 10000;
  const MAX_OUTPUT_TOKENS = 65536;
  const FALLBACK_ERROR = "An internal error has occurred. Please try again.";
  const $ = (selector, root = document) => root.querySelector(selector);
  const fromTemplate = (id) => document.getElementById(id).content.cloneNode(true);
  const firstOf = (id) => fromTemplate(id).firstElementChild;
  const clamp = (value, low, high) => Math.min(Math.max(value, low), high);

  const textarea = $("ms-prompt-box textarea");
  const form = $("ms-prompt-box form");
  const runButton = $("ms-prompt-box button[type=submit]");
  const chat = $("ms-chat-session .chat-session-content");
  const toasts = $(".toast-container");
  const overlayContainer = $(".cdk-overlay-container");
  const [systemButton, newChatButton, moreButton] = $(".toolbar-right").querySelectorAll("button");

  // All of the page's state: the open overlays and the run being answered live here too.
  const page = {
    models: BOOT.models,
    model: null,
    settings: { temperature: 1, topP: 0.95, maxTokens: MAX_OUTPUT_TOKENS },
    stops: [],
    advancedOpen: false,
    promptText: "",
    system: "",
    temporary: false,
    history: [],
    generation: null,
    overlays: [],
    systemPanel: null,
    files: [],  // the prompt box's chips (child.replica.uploads)
  };

  // ---- preference and model

  function readPreference() {
    try {
      const value = JSON.parse(localStorage.getItem(PREFERENCE_KEY) || "{}");
      return value && typeof value === "object" ? value : {};
    } catch (error) {
      return {};
    }
  }

  function writePreference(changes) {
    localStorage.setItem(PREFERENCE_KEY, JSON.stringify({ ...readPreference(), ...changes }));
  }

  const bareId = (name) => (String(name).startsWith(MODEL_PREFIX) ? String(name).slice(MODEL_PREFIX.length)
                                                                   : String(name));
  const currentModel = () => page.models.find((model) => model.id === page.model)
    || { id: page.model, displayName: page.model, sampling: false };

  function initialModel() {
    const asked = new URLSearchParams(location.search).get("model");
    const wanted = asked !== null ? asked : readPreference().promptModel;
    const known = typeof wanted === "string" && page.models.some((model) => model.id === bareId(wanted));
    return known ? bareId(wanted) : BOOT.defaultModel;
  }

  function showModel() {
    const model = currentModel();
    $("ms-model-selector .model-title").textContent = model.displayName;
    $("ms-model-selector .model-id").textContent = model.id;
    renderSettings();
  }

  function chooseModel(id) {
    page.model = id;
    writePreference({ promptModel: MODEL_PREFIX + id });
    showModel();
  }

  function listModels() {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", BOOT.apiUrl + RPC + "ListModels");
    xhr.withCredentials = true;
    xhr.setRequestHeader("Content-Type", "application/json+protobuf");
    xhr.setRequestHeader("X-Replica-Page", BOOT.pageId);
    xhr.onload = () => {
      if (xhr.status !== 200) return;
      try {
        const entries = JSON.parse(xhr.responseText)[0];
        page.models = entries.map((entry) => ({
          id: bareId(entry[0]),
          displayName: entry[3],
          sampling: entry[9] !== null,
          thinking: entry[15] === true,
          levels: Array.isArray(entry[16]) ? entry[16] : [],
          defaultLevel: entry[17] || null,
          grounding: entry[18] === true,
        }));
        showModel();
      } catch (error) {
        showToast("Failed to load the list of models.");
      }
    };
    xhr.send("[]");
  }

  // ---- run settings: kept in `page`, shown only while their group is

  function numberField(node, key, integer) {
    const input = $("input.slider-number-input, input[type=number]", node);
    const range = $("input[type=range]", node);
    const low = Number.parseFloat(input.getAttribute("aria-valuemin") ?? input.min);
    const high = Number.parseFloat(input.getAttribute("aria-valuemax") ?? input.max);
    const show = () => {
      input.value = String(page.settings[key]);
      if (range) range.value = String(page.settings[key]);
    };
    input.addEventListener("input", () => {
      const value = integer ? Number.parseInt(input.value, 10) : Number.parseFloat(input.value);
      if (!Number.isFinite(value)) return;
      page.settings[key] = clamp(value, low, high);
      if (range) range.value = String(page.settings[key]);
    });
    // The field shows the value in use once the user is done with it.
    input.addEventListener("change", show);
    if (range) range.addEventListener("input", () => {
      page.settings[key] = Number.parseFloat(range.value);
      input.value = range.value;
    });
    show();
    return node;
  }

  function stopSetting() {
    const node = firstOf("tpl-stop-setting");
    const chips = $("mat-chip-set", node);
    const input = $("input", node);
    const renderChips = () => {
      chips.replaceChildren(...page.stops.map((value) => {
        const chip = firstOf("tpl-stop-chip");
        chip.firstElementChild.textContent = value;
        const remove = $("button.remove-button", chip);
        remove.setAttribute("aria-label", `Remove ${value}`);
        remove.addEventListener("click", () => {
          page.stops = page.stops.filter((stop) => stop !== value);
          renderChips();
        });
        return chip;
      }));
    };
    input.addEventListener("keydown", (event) => {
      if (event.key !== "Enter") return;
      event.preventDefault();
      if (input.value !== "" && !page.stops.includes(input.value)) page.stops.push(input.value);
      input.value = "";
      renderChips();
    });
    renderChips();
    return node;
  }

  function renderSettings() {
    const body = $("ms-run-settings .settings-body");
    const sampling = currentModel().sampling;
    const group = firstOf("tpl-advanced-group");
    const header = $("button", group);
    const content = $(".settings-group-content", group);
    const renderGroup = () => {
      header.setAttribute("aria-expanded", String(page.advancedOpen));
      content.replaceChildren();
      if (!page.advancedOpen) return;
      if (sampling) content.appendChild(numberField(firstOf("tpl-top-p"), "topP", false));
      content.appendChild(stopSetting());
      content.appendChild(numberField(firstOf("tpl-max-tokens"), "maxTokens", true));
    };
    header.addEventListener("click", () => {
      page.advancedOpen = !page.advancedOpen;
      writePreference({ isAdvancedOpen: page.advancedOpen });
      renderGroup();
    });
    renderGroup();
    body.replaceChildren(...(sampling ? [numberField(firstOf("tpl-temperature"), "temperature", false)] : []),
                         ...extraSettings(currentModel()), group, toolsGroup());
  }

  // ---- overlays: menus, dialogs; a modal one blocks the page below it

  function openOverlay(templateId, { modal, closable, anchor }) {
    const fragment = fromTemplate(templateId);
    const overlay = { nodes: [...fragment.children], modal, closable, templateId };
    const backdrop = overlay.nodes.find((node) => node.classList.contains("cdk-overlay-backdrop"));
    backdrop.addEventListener("click", () => { if (closable) closeOverlay(overlay); });
    if (anchor) {
      const box = overlay.nodes[1];
      const rect = anchor.getBoundingClientRect();
      box.style.top = `${rect.bottom + 4}px`;
      box.style.left = `${Math.max(8, Math.min(rect.left, window.innerWidth - 240))}px`;
    }
    overlayContainer.appendChild(fragment);
    page.overlays.push(overlay);
    if (modal) {
      // Focus moves into a dialog, as the CDK's focus trap does.
      const first = $(".mat-mdc-dialog-inner-container button:not([disabled])", overlay.nodes[1]);
      if (first) first.focus();
    }
    return overlay;
  }

  function closeOverlay(overlay) {
    for (const node of overlay.nodes) node.remove();
    page.overlays = page.overlays.filter((open) => open !== overlay);
  }

  const modalOpen = () => page.overlays.some((overlay) => overlay.modal);

  document.addEventListener("keydown", (event) => {
    if (event.key !== "Escape") return;
    const top = page.overlays[page.overlays.length - 1];
    if (top && top.closable) closeOverlay(top);
  });

  // ---- toolbar: New chat, more actions (temporary chat), system instructions

  function openDiscardDialog() {
    const overlay = openOverlay("tpl-discard-dialog", { modal: true, closable: true });
    const root = overlay.nodes[1];
    $("button.cancel", root).addEventListener("click", () => closeOverlay(overlay));
    $("button.confirm", root).addEventListener("click", () => {
      closeOverlay(overlay);
      discardChat();
    });
  }

  function renderIndicator() {
    const slot = $(".toolbar-right .indicator-slot");
    slot.replaceChildren(...(page.temporary ? [firstOf("tpl-incognito-indicator")] : []));
  }

  function openMoreActions() {
    const overlay = openOverlay("tpl-more-actions", { modal: false, closable: true, anchor: moreButton });
    const toggle = $(".mat-mdc-menu-item", overlay.nodes[1]);
    toggle.setAttribute("aria-checked", String(page.temporary));
    $(".toggle-state", toggle).textContent = page.temporary ? "On" : "Off";
    toggle.addEventListener("click", () => {
      page.temporary = !page.temporary;
      renderIndicator();
      closeOverlay(overlay);
    });
    for (const item of overlay.nodes[1].querySelectorAll(".mat-mdc-menu-item:not([aria-checked])")) {
      item.addEventListener("click", () => closeOverlay(overlay));
    }
  }

  function toggleSystemPanel() {
    if (page.systemPanel) {
      page.systemPanel.remove();
      page.systemPanel = null;
      return;
    }
    const panel = firstOf("tpl-system-instructions");
    const input = $("textarea", panel);
    input.value = page.system;
    input.addEventListener("input", () => { page.system = input.value; });
    $("button", panel).addEventListener("click", toggleSystemPanel);
    document.body.appendChild(panel);
    page.systemPanel = panel;
  }

  function openModelMenu() {
    const overlay = openOverlay("tpl-model-menu", { modal: false, closable: true,
                                                    anchor: $("ms-model-selector button") });
    $(".mat-mdc-menu-content", overlay.nodes[1]).replaceChildren(...page.models.map((model) => {
      const option = firstOf("tpl-model-option");
      option.firstElementChild.textContent = `${model.displayName} (${model.id})`;
      option.addEventListener("click", () => {
        closeOverlay(overlay);
        chooseModel(model.id);
      });
      return option;
    }));
  }

  newChatButton.addEventListener("click", openDiscardDialog);
  moreButton.addEventListener("click", openMoreActions);
  systemButton.addEventListener("click", toggleSystemPanel);
  $("ms-model-selector button").addEventListener("click", openModelMenu);

  // ---- pop-ups at load: cookie bar, preference vote, survey

  function showPopups() {
    if (!document.cookie.split("; ").includes(`${CONSENT_COOKIE}=1`)) {
      const bar = firstOf("tpl-cookie-bar");
      $("button", bar).addEventListener("click", () => {
        document.cookie = `${CONSENT_COOKIE}=1; path=/; max-age=31536000; samesite=lax`;
        bar.remove();
      });
      document.body.appendChild(bar);
      requestAnimationFrame(() => bar.classList.add("visible"));
    }
    const vote = openOverlay("tpl-preference-vote", { modal: true, closable: false });
    const skip = $('button[data-test-id="skip-button"]', vote.nodes[1]);
    skip.addEventListener("click", () => closeOverlay(vote));
    const survey = firstOf("tpl-survey");
    $("button", survey).addEventListener("click", () => survey.remove());
    // Over the Run button, where it is in the way.
    const run = runButton.getBoundingClientRect();
    survey.style.right = `${Math.max(0, window.innerWidth - run.right - 40)}px`;
    survey.style.bottom = `${Math.max(0, window.innerHeight - run.bottom - 40)}px`;
    document.body.appendChild(survey);
  }

  // ---- turns

  function syncEmpty() {
    const empty = chat.querySelector("ms-chat-turn") === null;
    const zero = $("ms-zero-state", chat);
    if (empty && !zero) chat.appendChild(firstOf("tpl-zero-state"));
    if (!empty && zero) zero.remove();
    newChatButton.disabled = empty;
  }

  function toggleEdit(turn, raw) {
    const content = $(".turn-content", turn);
    const editing = $(".edit-textarea", content);
    const chunks = content.querySelectorAll("ms-text-chunk");
    if (editing) {
      editing.remove();
      chunks.forEach((chunk) => { chunk.hidden = false; });
      return;
    }
    const area = firstOf("tpl-edit-area");
    area.value = raw();
    area.dataset.value = raw();
    chunks.forEach((chunk) => { chunk.hidden = true; });
    content.appendChild(area);
  }

  function appendUserTurn(prompt, files) {
    const turn = firstOf("tpl-user-turn");
    $("ms-text-chunk", turn).firstElementChild.textContent = prompt;
    showTurnFiles(turn, files);
    $(".actions-container button", turn).addEventListener("click", () => toggleEdit(turn, () => prompt));
    chat.appendChild(turn);
    syncEmpty();
    turn.scrollIntoView({ block: "end" });
  }

  function modelTurn(generation) {
    if (generation.turn === null) {
      generation.turn = firstOf("tpl-model-turn");
      chat.appendChild(generation.turn);
    }
    return generation.turn;
  }

  function render(generation) {
    const turn = modelTurn(generation);
    const content = $(".turn-content", turn);
    if (generation.thoughts && generation.thoughtNode === null) {
      const chunk = firstOf("tpl-thought-chunk");
      generation.thoughtNode = $(".thought-content", chunk).firstElementChild;
      content.prepend(chunk);
    }
    if (generation.answer && generation.answerNode === null) {
      const chunk = firstOf("tpl-answer-chunk");
      generation.answerNode = chunk.firstElementChild;
      content.appendChild(chunk);
    }
    for (const call of generation.calls.slice(generation.shownCalls)) {
      const chunk = firstOf("tpl-function-call");
      $(".function-call-name", chunk).textContent = call.name;
      $(".function-call-args", chunk).innerHTML = codeBlock("json", JSON.stringify(call.args, null, 2));
      content.appendChild(chunk);
      generation.shownCalls += 1;
    }
    if (generation.thoughtNode) generation.thoughtNode.innerHTML = renderMarkdown(generation.thoughts);
    if (generation.answerNode) generation.answerNode.innerHTML = renderMarkdown(generation.answer);
    turn.scrollIntoView({ block: "end" });
  }

  function markFinished(generation) {
    if (generation.turn === null) return;
    const turn = generation.turn;
    $(".actions-container", turn).appendChild(fromTemplate("tpl-finished-actions"));
    const edit = $(".actions-container button", turn);
    edit.addEventListener("click", () => toggleEdit(turn, () => generation.answer));
    turn.firstElementChild.appendChild(firstOf("tpl-turn-footer"));
  }

  // ---- a run: the XHR, its frames, its end

  function randomHex(bytes) {
    return [...crypto.getRandomValues(new Uint8Array(bytes))]
      .map((byte) => byte.toString(16).padStart(2, "0")).join("");
  }

  function buildRequest(nonce) {
    const model = currentModel();
    const { temperature, topP, maxTokens } = page.settings;
    const sampling = model.sampling;
    const config = [page.stops.length ? [...page.stops] : null, null, null, maxTokens,
                    sampling ? temperature : null, sampling ? topP : null, sampling ? 64 : null];
    const contents = page.history.map((turn) => [[...fileParts(turn), [null, turn.text]], turn.role]);
    const system = page.system.trim() ? [[[null, page.system]], "user"] : null;
    const request = [MODEL_PREFIX + model.id, contents, null, config, nonce, null, null, null, system, null,
                     page.temporary ? 1 : null];
    return extendRequest(model, toolsRequest(request));
  }

  function setGeneration(generation) {
    page.generation = generation;
    runButton.replaceChildren(fromTemplate(generation ? "tpl-run-busy" : "tpl-run-idle"));
    if (generation) runButton.setAttribute("aria-label", "Stop generating");
    else runButton.removeAttribute("aria-label");
    updateRunButton();
  }

  function updateRunButton() {
    runButton.disabled = page.generation === null && (page.promptText.trim() === "" || uploadsBusy());
  }

  function submit() {
    // The form control's value, not the element's: text set without an input event is not sent.
    const prompt = page.promptText;
    if (page.generation !== null || modalOpen() || prompt.trim() === "" || uploadsBusy()) return;
    const files = takeFiles();
    appendUserTurn(prompt, files);
    page.history.push({ role: "user", text: prompt, files });
    textarea.value = "";
    page.promptText = "";
    autosize();
    const nonce = randomHex(16);
    const body = JSON.stringify(buildRequest(nonce));
    const xhr = new XMLHttpRequest();
    const generation = { nonce, xhr, reader: new FrameReader(), turn: null, answer: "", thoughts: "",
                         calls: [], shownCalls: 0, thoughtNode: null, answerNode: null, finish: null,
                         reported: false };
    setGeneration(generation);
    xhr.open("POST", BOOT.apiUrl + RPC + "GenerateContent");
    xhr.withCredentials = true;
    xhr.setRequestHeader("Content-Type", "application/json+protobuf");
    xhr.setRequestHeader("X-Replica-Page", BOOT.pageId);
    xhr.setRequestHeader("X-Replica-Proof", sha256Hex(BOOT.proofKey + body));
    xhr.onprogress = () => consume(generation);
    xhr.onload = () => loaded(generation);
    xhr.onerror = () => failed(generation, null);
    xhr.send(body);
  }

  function consume(generation) {
    if (page.generation !== generation || generation.xhr.status !== 200) return;
    const frames = generation.reader.feed(generation.xhr.responseText);
    for (const frame of frames) {
      const candidate = Array.isArray(frame[0]) ? frame[0][0] : null;
      if (!Array.isArray(candidate) || !Array.isArray(candidate[0])) continue;
      for (const part of candidate[0][0] || []) {
        if (!Array.isArray(part)) continue;
        const call = part[10];
        if (Array.isArray(call)) generation.calls.push({ name: call[0], args: decodeStruct(call[1]) });
        else if (typeof part[1] !== "string") continue;
        else if (part[12] === true) generation.thoughts += part[1];
        else generation.answer += part[1];
      }
      if (typeof candidate[1] === "number") generation.finish = candidate[1];
    }
    if (frames.length) render(generation);
  }

  function loaded(generation) {
    if (page.generation !== generation) return;
    if (generation.xhr.status !== 200) {
      failed(generation, errorCode(generation.xhr.responseText));
      return;
    }
    consume(generation);
    page.history.push({ role: "model", text: generation.answer });
    markFinished(generation);
    end(generation, false);
  }

  function errorCode(text) {
    try {
      const body = JSON.parse(text);
      return Array.isArray(body) && Array.isArray(body[1]) ? body[1][0] : null;
    } catch (error) {
      return null;
    }
  }

  function failed(generation, code) {
    if (page.generation !== generation) return;
    const message = BOOT.errorMessages[code] || FALLBACK_ERROR;
    const callout = firstOf("tpl-error-callout");
    $(".message", callout).textContent = message;
    $(".turn-content", modelTurn(generation)).appendChild(callout);
    showToast(message);
    end(generation, false);
  }

  function stop(unloading) {
    const generation = page.generation;
    if (generation === null) return;
    generation.xhr.abort();
    if (generation.answer) page.history.push({ role: "model", text: generation.answer });
    markFinished(generation);
    end(generation, unloading);
  }

  function end(generation, unloading) {
    if (page.generation === generation) setGeneration(null);
    if (generation.reported) return;
    generation.reported = true;
    const url = `/api/runs/${generation.nonce}/finished`;
    const body = JSON.stringify({ text: generation.answerNode ? generation.answerNode.textContent : "" });
    if (unloading) {
      navigator.sendBeacon(url, body);
    } else {
      const headers = { "Content-Type": "application/json" };
      fetch(url, { method: "POST", headers, body, keepalive: true }).catch(() => {});
    }
  }

  function discardChat() {
    stop(false);
    chat.replaceChildren();
    toasts.replaceChildren();
    page.history = [];
    clearFiles();
    textarea.value = "";
    page.promptText = "";
    autosize();
    updateRunButton();
    syncEmpty();
  }

  // ---- toasts

  function showToast(message) {
    const toast = firstOf("tpl-toast");
    $(".content-text", toast).textContent = message;
    $("button", toast).addEventListener("click", () => toast.remove());
    toasts.appendChild(toast);
    setTimeout(() => toast.remove(), TOAST_MS);
  }

  // ---- the prompt box

  function autosize() {
    textarea.style.height = "auto";
    textarea.style.height = `${Math.min(textarea.scrollHeight + 2, 240)}px`;
  }

  textarea.addEventListener("input", () => {
    page.promptText = textarea.value;
    autosize();
    updateRunButton();
  });
  textarea.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      submit();
    }
  });
  // Run while idle submits; while an answer streams it is the Stop button.
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    if (modalOpen()) return;
    if (page.generation !== null) stop(false); else submit();
  });
  window.addEventListener("pagehide", () => stop(true));

  page.model = initialModel();
  page.advancedOpen = readPreference().isAdvancedOpen === true;
  showModel();
  setGeneration(null);
  syncEmpty();
  listModels();
  if (BOOT.popups) setTimeout(showPopups, BOOT.popupDelayMs);
"""

"""The run settings the replica's page adds for issue 12 (items 2 and 6): the thinking level
and the Google Search and URL context tools, their markup, styles and page script.

As on AI Studio: the thinking level is a `mat-select[aria-label="Thinking Level"]` whose
options (`mat-option` in a `[role="listbox"]` overlay) exist only while it is open and
differ by model (a model without levels has no such control at all); the tools are
switches whose state is `aria-checked`, Google Search in
`div[data-test-id="searchAsAToolTooltip"] mat-slide-toggle button`, URL context in
`div[data-test-id="browseAsAToolTooltip"] button`, present only for the models that
offer them and only while the collapsed "Tools" group (`child.replica.tools`) is open;
Google Search is off and disabled while function calling is on. Nothing here is reset by
New chat: like the page, it keeps its settings from one chat to the next, so a driver
must put back what it changed.

The script's functions are declared into the page script's closure (`child.replica.pages`)
and called from its `renderSettings` and `buildRequest`; they hold no state of their own
(all of it is in `page`).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

# The level names the page shows, and their codes at the request's `[3][9]` (the replica's
# choice of numbers, as json+protobuf writes an enum).
LEVEL_CODES: Final[Mapping[str, int]] = MappingProxyType({"Minimal": 1, "Low": 2, "Medium": 3, "High": 4})
LEVEL_NAMES: Final[Mapping[int, str]] = MappingProxyType({code: name for name, code in LEVEL_CODES.items()})

STYLE: Final = """
  ms-thinking-level-setting { display: block; }
  ms-thinking-level-setting mat-select { display: flex; justify-content: space-between; padding: 6px 10px;
                                         border: 1px solid #747775; border-radius: 4px; cursor: pointer; }
  .tool-item { display: flex; justify-content: space-between; align-items: center; }
  .mdc-switch { width: 36px; height: 20px; border-radius: 10px; border: 1px solid #747775;
                background: #e1e3e1; }
  .mdc-switch[aria-checked="true"] { background: #0b57d0; }
  .mdc-switch[disabled] { opacity: 0.38; }
  mat-option { display: block; padding: 8px 16px; cursor: pointer; }
  mat-option[aria-selected="true"] { background: #e8f0fe; }
"""

TEMPLATES: Final = """
<template id="tpl-thinking-level"><div class="settings-item"><h3 class="item-title">Thinking level</h3>
  <ms-thinking-level-setting><mat-form-field class="mat-mdc-form-field"><div
    class="mat-mdc-text-field-wrapper"><mat-select role="combobox" class="mat-mdc-select"
    aria-label="Thinking Level" aria-haspopup="listbox" aria-expanded="false" tabindex="0"><span
    class="mat-mdc-select-value-text"></span><span class="material-symbols-outlined">arrow_drop_down</span>
      </mat-select></div></mat-form-field></ms-thinking-level-setting></div></template>
<template id="tpl-level-menu"><div class="cdk-overlay-backdrop cdk-overlay-transparent-backdrop"></div>
  <div class="cdk-overlay-connected-position-bounding-box"><div class="cdk-overlay-pane"><div
    class="mat-mdc-select-panel" role="listbox" aria-label="Thinking Level"></div></div></div></template>
<template id="tpl-level-option"><mat-option role="option" class="mat-mdc-option" aria-selected="false"><span
  class="mdc-list-item__primary-text"></span></mat-option></template>
<template id="tpl-search-tool"><div class="settings-item tool-item" data-test-id="searchAsAToolTooltip">
  <span class="item-title">Grounding with Google Search</span><mat-slide-toggle
    class="mat-mdc-slide-toggle"><button type="button" role="switch" class="mdc-switch" aria-checked="false"
    aria-label="Grounding with Google Search"></button></mat-slide-toggle></div></template>
<template id="tpl-url-tool"><div class="settings-item tool-item" data-test-id="browseAsAToolTooltip">
  <span class="item-title">URL context</span><button type="button" role="switch" class="mdc-switch"
    aria-checked="false" aria-label="Browse the url context"></button></div></template>
"""

SCRIPT: Final = r"""
  // ---- thinking level and tools (child.replica.settings_panel)
  const LEVEL_CODES = __LEVEL_CODES__;

  function extraState() {
    if (!page.thinkingLevels) page.thinkingLevels = {};
    if (!page.tools) page.tools = { search: false, urlContext: false };
    return page;
  }

  function thinkingLevelOf(model) {
    if (!Array.isArray(model.levels) || !model.levels.length) return null;
    const chosen = extraState().thinkingLevels[model.id];
    return model.levels.includes(chosen) ? chosen : model.defaultLevel;
  }

  function thinkingSetting(model) {
    const node = firstOf("tpl-thinking-level");
    const select = $("mat-select", node);
    select.addEventListener("click", () => {
      // As the CDK does: the options exist only while the panel is open.
      const overlay = openOverlay("tpl-level-menu", { modal: false, closable: true, anchor: select });
      select.setAttribute("aria-expanded", "true");
      const shown = thinkingLevelOf(currentModel());
      $('[role="listbox"]', overlay.nodes[1]).replaceChildren(...currentModel().levels.map((level) => {
        const option = firstOf("tpl-level-option");
        option.firstElementChild.textContent = level;
        option.setAttribute("aria-selected", String(level === shown));
        option.addEventListener("click", () => {
          extraState().thinkingLevels[currentModel().id] = level;
          closeOverlay(overlay);
          // Bound to the page's state, as Angular's is: whatever select shows now (the model
          // list may have re-rendered the settings meanwhile) shows the new level.
          renderSettings();
        });
        return option;
      }));
    });
    $(".mat-mdc-select-value-text", select).textContent = thinkingLevelOf(model);
    return node;
  }

  function toolSwitch(templateId, key) {
    const node = firstOf(templateId);
    const button = $("button", node);
    // Google Search and function calling (child.replica.tools) exclude each other.
    button.disabled = key === "search" && tools.functionsOn;
    const show = () => button.setAttribute("aria-checked", String(extraState().tools[key]));
    button.addEventListener("click", () => {
      if (button.disabled) return;
      page.tools[key] = !page.tools[key];
      renderSettings();  // as for the level: what is in the document shows the state
    });
    show();
    return node;
  }

  // The nodes renderSettings adds below temperature: the thinking level.
  function extraSettings(model) {
    extraState();
    return thinkingLevelOf(model) !== null ? [thinkingSetting(model)] : [];
  }

  // The switches in the collapsed Tools group (child.replica.tools), for a model that has them.
  function groundingSwitches(model) {
    extraState();
    return model.grounding
      ? [toolSwitch("tpl-search-tool", "search"), toolSwitch("tpl-url-tool", "urlContext")]
      : [];
  }

  // What buildRequest adds: the level at [3][9], the tools' flags at [7].
  function extendRequest(model, request) {
    const level = thinkingLevelOf(model);
    if (level !== null) {
      while (request[3].length < 10) request[3].push(null);
      request[3][9] = LEVEL_CODES[level];
    }
    const tools = extraState().tools;
    const grounded = model.grounding && (tools.search || tools.urlContext);
    request[7] = grounded ? [tools.search ? 1 : null, tools.urlContext ? 1 : null] : null;
    return request;
  }
""".replace("__LEVEL_CODES__", "{" + ", ".join(f"{k}: {v}" for k, v in LEVEL_CODES.items()) + "}")

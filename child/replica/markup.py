"""The chat page's markup and styles: AI Studio's elements as of 2026 (spec section A).

Tag names, classes, labels and `data-test-*` attributes are the page's own, as drivers
find them; the inline script (`child.replica.script`) brings them to life. What Angular
renders only on demand (`*ngIf`) sits in `<template>` elements, whose content is not in
the document until the script clones it: a selector finds a collapsed group's fields,
a closed menu's items or an answer's finish markers only when the real page has them.
Elements are written as HTML text only, never built attribute by attribute in script, so
that a drift (`child.replica.drift`) renames them everywhere at once.
"""

from __future__ import annotations

from typing import Final

STYLE: Final = """
  * { box-sizing: border-box; }
  body { margin: 0; font: 14px/1.5 system-ui, sans-serif; color: #1f1f1f; background: #f8f9fa; }
  button { font: inherit; cursor: pointer; }
  button[disabled] { cursor: default; opacity: 0.45; }
  .material-symbols-outlined { font-size: 12px; color: #5f6368; }
  ms-app { display: flex; flex-direction: column; height: 100vh; }
  .top-bar { display: flex; align-items: center; gap: 24px; padding: 8px 16px; background: #fff;
             border-bottom: 1px solid #dadce0; }
  .brand { font-weight: 600; }
  .layout { flex: 1; display: flex; min-height: 0; }
  .chat-panel { flex: 1; display: flex; flex-direction: column; min-width: 0; }
  ms-toolbar { display: flex; align-items: center; justify-content: space-between; padding: 8px 16px; }
  ms-toolbar h1 { font-size: 18px; margin: 0; font-weight: 500; }
  .toolbar-right { display: flex; align-items: center; gap: 8px; }
  .ms-button-icon { border: 1px solid #dadce0; border-radius: 16px; background: #fff; padding: 4px 10px; }
  ms-incognito-mode-indicator { display: inline-flex; gap: 4px; padding: 2px 10px; border-radius: 12px;
                                background: #3c4043; color: #fff; }
  ms-chat-session { display: block; flex: 1; overflow-y: auto; padding: 0 16px; }
  ms-zero-state { display: block; margin: 15vh auto; max-width: 420px; text-align: center; color: #5f6368; }
  .zero-state-title { font-size: 22px; color: #1f1f1f; }
  ms-chat-turn { display: block; margin: 8px 0; }
  .chat-turn-container { padding: 8px 12px; border-radius: 8px; background: #fff; border: 1px solid #dadce0; }
  .chat-turn-container.user { background: #e8f0fe; }
  .actions-container { display: flex; gap: 8px; align-items: center; color: #5f6368; font-size: 12px; }
  .actions-container button, .turn-footer button { border: 0; background: none; padding: 0 4px; }
  .turn-footer { display: flex; gap: 4px; margin-top: 4px; }
  ms-cmark-node.cmark-node { display: block; }
  ms-cmark-node.cmark-node.user-chunk { white-space: pre-wrap; }
  ms-cmark-node p { margin: 4px 0; white-space: pre-wrap; }
  ms-cmark-node table { border-collapse: collapse; margin: 8px 0; }
  ms-cmark-node th, ms-cmark-node td { border: 1px solid #dadce0; padding: 2px 8px; }
  ms-thought-chunk { display: block; border-left: 3px solid #c4c7c5; padding-left: 8px; margin-bottom: 8px;
                     color: #444746; }
  .thought-header { font-weight: 500; display: flex; gap: 4px; align-items: center; }
  ms-code-block { display: block; margin: 8px 0; border: 1px solid #dadce0; border-radius: 8px;
                  overflow: hidden; }
  .code-block-header { display: flex; justify-content: space-between; align-items: center;
                       padding: 2px 8px; background: #f1f3f4; font-size: 12px; }
  .code-block-actions button { border: 0; background: none; }
  ms-code-block pre { margin: 0; padding: 8px; overflow-x: auto; background: #fafafa; }
  ms-function-call-chunk { display: block; margin: 8px 0; }
  .function-call-header { font-weight: 500; display: flex; gap: 4px; align-items: center; }
  ms-callout.error-callout { display: flex; gap: 8px; padding: 8px 12px; border-radius: 8px;
                             background: #fce8e6; color: #b3261e; }
  .edit-textarea { width: 100%; min-height: 120px; font: inherit; }
  ms-prompt-box { display: block; padding: 12px 16px; border-top: 1px solid #dadce0; background: #fff; }
  .prompt-box-container { display: flex; align-items: flex-end; gap: 8px; }
  ms-prompt-box textarea { flex: 1; min-height: 48px; max-height: 240px; resize: none; font: inherit;
                           padding: 8px; border-radius: 8px; }
  ms-run-button button { display: inline-flex; align-items: center; gap: 6px; padding: 8px 16px;
                         border: 0; border-radius: 18px; background: #0b57d0; color: #fff; }
  ms-run-button .material-symbols-outlined { color: inherit; }
  ms-run-button .shortcut { opacity: 0.7; font-size: 12px; display: inline-flex; gap: 2px; }
  .stoppable-spinner-svg { width: 16px; height: 16px; animation: spin 1s linear infinite; }
  .stoppable-spinner { fill: none; stroke: currentColor; stroke-width: 3; stroke-dasharray: 40 20; }
  @keyframes spin { to { transform: rotate(360deg); } }
  .run-settings-panel { width: 300px; padding: 16px; border-left: 1px solid #dadce0; background: #fff;
                        overflow-y: auto; }
  ms-run-settings h2 { font-size: 16px; margin: 0 0 12px; }
  .settings-item { margin-bottom: 16px; }
  .item-title { font-size: 13px; font-weight: 500; margin: 0 0 4px; }
  .slider-row { display: flex; gap: 8px; align-items: center; }
  .slider-row mat-slider { flex: 1; display: block; }
  .slider-row input[type="range"] { width: 100%; }
  .slider-number-input { width: 64px; padding: 2px 4px; }
  .settings-group-header { width: 100%; display: flex; justify-content: space-between; border: 0;
                           background: none; padding: 8px 0; font-weight: 500; }
  .stop-input, .max-tokens-input { width: 100%; padding: 4px; }
  mat-chip-set { display: flex; flex-wrap: wrap; gap: 4px; margin-bottom: 4px; }
  mat-chip { display: inline-flex; align-items: center; gap: 4px; padding: 0 4px 0 10px;
             border: 1px solid #747775; border-radius: 8px; white-space: pre; }
  mat-chip .remove-button { border: 0; background: none; padding: 0 2px; }
  ms-model-selector { display: block; margin-bottom: 16px; }
  .model-selector-card { width: 100%; text-align: left; padding: 8px 12px; border: 1px solid #dadce0;
                         border-radius: 8px; background: #fff; display: flex; flex-direction: column; }
  .model-title { font-weight: 500; }
  .model-id { color: #5f6368; font-size: 12px; }
  ms-system-instructions { position: fixed; top: 48px; right: 0; bottom: 0; width: 360px; z-index: 600;
                           background: #fff; border-left: 1px solid #dadce0; padding: 16px;
                           display: flex; flex-direction: column; gap: 8px; }
  ms-system-instructions .panel-header { display: flex; justify-content: space-between; align-items: center; }
  ms-system-instructions h2 { font-size: 16px; margin: 0; }
  ms-system-instructions textarea { flex: 1; font: inherit; padding: 8px; }
  .toast-container { position: fixed; top: 56px; left: 50%; transform: translateX(-50%); z-index: 900;
                     display: flex; flex-direction: column; gap: 8px; }
  .toast { display: flex; gap: 8px; align-items: center; padding: 10px 16px; border-radius: 8px;
           background: #323232; color: #fff; }
  .toast.error { background: #b3261e; }
  .toast button { border: 0; background: none; }
  .toast .material-symbols-outlined { color: #fff; }
  .cdk-overlay-container { position: fixed; inset: 0; z-index: 1000; pointer-events: none; }
  .cdk-overlay-backdrop { position: absolute; inset: 0; pointer-events: auto; }
  .cdk-overlay-dark-backdrop { background: rgba(0, 0, 0, 0.32); }
  .cdk-global-overlay-wrapper { position: absolute; inset: 0; display: flex; align-items: center;
                                justify-content: center; pointer-events: none; }
  .cdk-overlay-connected-position-bounding-box { position: absolute; pointer-events: none; }
  .cdk-overlay-pane { pointer-events: auto; }
  .mat-mdc-dialog-container { display: block; }
  .mat-mdc-dialog-inner-container { background: #fff; padding: 24px; border-radius: 16px; min-width: 340px; }
  .mat-mdc-dialog-title { font-size: 18px; margin: 0 0 8px; }
  .mat-mdc-dialog-actions { display: flex; justify-content: flex-end; gap: 8px; margin-top: 24px; }
  .ms-button-primary, .ms-button-borderless { border: 0; border-radius: 18px; padding: 8px 16px; }
  .ms-button-primary { background: #0b57d0; color: #fff; }
  .ms-button-borderless { background: none; color: #0b57d0; }
  .mat-mdc-menu-panel { background: #fff; border-radius: 8px; box-shadow: 0 2px 8px rgba(0, 0, 0, 0.25);
                        min-width: 220px; padding: 4px 0; }
  .mat-mdc-menu-item { display: flex; width: 100%; gap: 8px; align-items: center; border: 0;
                       background: none; padding: 8px 16px; text-align: left; }
  .mat-mdc-menu-item:hover { background: #f1f3f4; }
  .mat-mdc-menu-item[aria-checked="true"] .toggle-state { color: #0b57d0; font-weight: 600; }
  .glue-cookie-notification-bar { position: fixed; left: 0; right: 0; bottom: 0; min-height: 180px;
                                  z-index: 800;
                                  background: #fff; border-top: 1px solid #dadce0; padding: 24px 32px;
                                  box-shadow: 0 -2px 8px rgba(0, 0, 0, 0.15); transform: translateY(100%);
                                  transition: transform 0.1s; }
  .glue-cookie-notification-bar.visible { transform: none; }
  .glue-cookie-notification-bar__accept { border: 0; border-radius: 18px; padding: 8px 16px;
                                          background: #0b57d0; color: #fff; }
  .hats-survey { position: fixed; z-index: 850; width: 420px; height: 260px; background: #fff;
                 border: 1px solid #dadce0; border-radius: 12px; box-shadow: 0 2px 12px rgba(0, 0, 0, 0.3); }
  .hats-survey iframe { width: 100%; height: 100%; border: 0; }
  .hats-survey button { position: absolute; top: 4px; right: 4px; border: 0; background: none; }
"""

BODY: Final = """
<ms-app>
  <header class="top-bar">
    <span class="brand">Replica AI Studio</span>
    <nav><a class="playground-link" href="/prompts/new_chat">Chat</a></nav>
  </header>
  <main class="layout">
    <section class="chat-panel">
      <ms-toolbar>
        <h1 class="page-title">Untitled prompt</h1>
        <div class="toolbar-right">
          <span class="indicator-slot"></span>
          <button type="button" class="ms-button-icon" aria-label="System instructions"
                  data-test-system-instructions-card><span
                  class="material-symbols-outlined">description</span> System instructions</button>
          <button type="button" class="ms-button-icon" data-test-clear="outside" aria-label="New chat"
                  disabled><span class="material-symbols-outlined">add</span></button>
          <button type="button" class="ms-button-icon" aria-label="View more actions"
                  aria-haspopup="menu"><span class="material-symbols-outlined">more_vert</span></button>
        </div>
      </ms-toolbar>
      <ms-chat-session><div class="chat-session-content"></div></ms-chat-session>
      <ms-prompt-box>
        __MEDIA_CHIPS__
        <form class="prompt-box-container" novalidate>
          __ADD_MEDIA__
          <textarea class="textarea" aria-label="Enter a prompt" formcontrolname="promptText"
                    placeholder="Start typing a prompt" rows="1"></textarea>
          <ms-run-button><button type="submit" class="ms-button-primary" disabled></button></ms-run-button>
        </form>
      </ms-prompt-box>
    </section>
    <aside class="run-settings-panel">
      <ms-run-settings>
        <h2>Run settings</h2>
        <ms-model-selector>
          <button type="button" class="model-selector-card" aria-label="Choose model"
                  aria-haspopup="listbox"><span class="model-title"></span><span class="model-id"
                  data-test-id="model-name"></span></button>
        </ms-model-selector>
        <div class="settings-body"></div>
      </ms-run-settings>
    </aside>
  </main>
  <div class="toast-container" aria-live="polite"></div>
</ms-app>
<div class="cdk-overlay-container"></div>
"""

# What the script clones into the page on demand (Angular's *ngIf and its overlays).
TEMPLATES: Final = """
<template id="tpl-zero-state"><ms-zero-state><div class="zero-state-title">Start a conversation</div>
  <p>Write a prompt below and press Run.</p></ms-zero-state></template>
<template id="tpl-incognito-indicator"><ms-incognito-mode-indicator><span
  class="material-symbols-outlined">visibility_off</span><span>Temporary chat</span>
    </ms-incognito-mode-indicator></template>
<template id="tpl-run-idle"><span class="label">Run</span><span class="shortcut"><span
  class="shortcut-key">Ctrl</span><span class="material-symbols-outlined">keyboard_return</span></span>
    </template>
<template id="tpl-run-busy"><svg class="stoppable-spinner-svg" viewBox="0 0 24 24" aria-hidden="true"><circle
  class="stoppable-spinner" cx="12" cy="12" r="9"></circle></svg><span class="label">Stop</span></template>
<template id="tpl-user-turn"><ms-chat-turn><div class="chat-turn-container user">
  <div class="actions-container"><span class="author-label">User</span><button type="button"
    class="toggle-edit-button" aria-label="Edit"><span class="material-symbols-outlined">edit</span>
      </button></div>
  <div class="turn-content"><ms-text-chunk><ms-cmark-node class="cmark-node user-chunk"></ms-cmark-node>
    </ms-text-chunk></div>
</div></ms-chat-turn></template>
<template id="tpl-model-turn"><ms-chat-turn><div class="chat-turn-container model">
  <div class="actions-container"><span class="author-label">Model</span></div>
  <div class="turn-content"></div>
</div></ms-chat-turn></template>
<template id="tpl-thought-chunk"><ms-thought-chunk><div class="thought-header"><span
  class="material-symbols-outlined">expand_more</span><span class="thought-title">Thoughts</span></div>
  <div class="thought-content"><ms-cmark-node class="cmark-node"></ms-cmark-node></div>
    </ms-thought-chunk></template>
<template id="tpl-answer-chunk"><ms-text-chunk><ms-cmark-node class="cmark-node"></ms-cmark-node>
  </ms-text-chunk></template>
<template id="tpl-function-call"><ms-function-call-chunk><div class="function-call-header"><span
  class="material-symbols-outlined">function</span><span class="function-call-name"></span></div>
  <div class="function-call-args"></div></ms-function-call-chunk></template>
<template id="tpl-finished-actions"><button type="button" class="toggle-edit-button" aria-label="Edit"><span
  class="material-symbols-outlined">edit</span></button><button type="button" class="rerun-button"
  aria-label="Rerun this turn"><span class="material-symbols-outlined">refresh</span></button></template>
<template id="tpl-turn-footer"><div class="turn-footer"><button type="button" aria-label="Good response"><span
  class="material-symbols-outlined">thumb_up</span></button>
    <button type="button" aria-label="Bad response"><span
  class="material-symbols-outlined">thumb_down</span></button></div></template>
<template id="tpl-edit-area"><textarea class="edit-textarea" aria-label="Edit turn"></textarea></template>
<template id="tpl-error-callout"><ms-callout class="error-callout"><span
  class="material-symbols-outlined">error</span><div class="message"></div></ms-callout></template>
<template id="tpl-toast"><div class="toast error" role="alert"><span class="content-text"></span><button
  type="button" class="toast-close" aria-label="Dismiss">
    <span class="material-symbols-outlined">close</span></button></div></template>
<template id="tpl-temperature"><div class="settings-item" data-test-id="temperatureSliderContainer">
  <h3 class="item-title">Temperature</h3>
  <div class="slider-row"><mat-slider class="mat-mdc-slider"><input type="range" class="mdc-slider__input"
    min="0" max="2" step="0.05" tabindex="-1" aria-hidden="true"></mat-slider><input type="text"
    class="slider-number-input small" inputmode="decimal" aria-valuemin="0" aria-valuemax="2"
    aria-label="Temperature"></div></div></template>
<template id="tpl-advanced-group"><div class="settings-group">
  <button type="button" class="settings-group-header" aria-label="Advanced settings"
    aria-expanded="false"><span>Advanced settings</span><span
    class="material-symbols-outlined">expand_more</span></button>
  <div class="settings-group-content"></div></div></template>
<template id="tpl-top-p"><div class="settings-item" data-test-id="topPSliderContainer">
  <h3 class="item-title">Top P</h3>
  <div class="slider-row"><mat-slider class="mat-mdc-slider"><input type="range" class="mdc-slider__input"
    min="0" max="1" step="0.05" tabindex="-1" aria-hidden="true"></mat-slider><input type="text"
    class="slider-number-input small" inputmode="decimal" aria-valuemin="0" aria-valuemax="1"
    aria-label="Top P"></div></div></template>
<template id="tpl-stop-setting"><div class="settings-item"><h3 class="item-title">Stop sequences</h3>
  <mat-chip-set class="stop-chips"></mat-chip-set>
  <input type="text" class="stop-input" aria-label="Add stop token" placeholder="Add stop..."></div>
    </template>
<template id="tpl-stop-chip"><mat-chip class="mat-mdc-chip"><span class="mdc-evolution-chip__text-label">
  </span><button
  type="button" class="remove-button"><span class="material-symbols-outlined">cancel</span></button>
    </mat-chip></template>
<template id="tpl-max-tokens"><div class="settings-item"><h3 class="item-title">Output length</h3>
  <input type="number" class="max-tokens-input" aria-label="Maximum output tokens" min="1" max="65536"
    step="1"></div></template>
<template id="tpl-system-instructions"><ms-system-instructions>
  <div class="panel-header"><h2>System instructions</h2><button type="button" class="ms-button-icon"
    data-test-close-button aria-label="Close panel"><span class="material-symbols-outlined">close</span>
      </button></div>
  <textarea aria-label="System instructions" placeholder="Optional tone and style instructions for the model"
    rows="8"></textarea></ms-system-instructions></template>
<template id="tpl-more-actions"><div class="cdk-overlay-backdrop cdk-overlay-transparent-backdrop"></div>
  <div class="cdk-overlay-connected-position-bounding-box"><div class="cdk-overlay-pane"><div
    class="mat-mdc-menu-panel" role="menu"><div class="mat-mdc-menu-content">
    <button type="button" class="mat-mdc-menu-item" role="menuitemcheckbox" data-test-incognito-toggle
      aria-checked="false"><span class="material-symbols-outlined">visibility_off</span><span
      class="mat-mdc-menu-item-text">Temporary chat</span><span class="toggle-state"></span></button>
    <button type="button" class="mat-mdc-menu-item" role="menuitem"><span
      class="material-symbols-outlined">code</span><span class="mat-mdc-menu-item-text">Get code</span>
        </button>
    <button type="button" class="mat-mdc-menu-item" role="menuitem"><span
      class="material-symbols-outlined">compare</span>
        <span class="mat-mdc-menu-item-text">Compare mode</span></button>
  </div></div></div></div></template>
<template id="tpl-model-menu"><div class="cdk-overlay-backdrop cdk-overlay-transparent-backdrop"></div>
  <div class="cdk-overlay-connected-position-bounding-box"><div class="cdk-overlay-pane"><div
    class="mat-mdc-menu-panel model-options" role="listbox"><div class="mat-mdc-menu-content"></div>
      </div></div></div></template>
<template id="tpl-model-option">
  <button type="button" class="mat-mdc-menu-item model-option" role="option"><span
  class="mat-mdc-menu-item-text"></span></button></template>
<template id="tpl-discard-dialog"><div class="cdk-overlay-backdrop cdk-overlay-dark-backdrop"></div>
  <div class="cdk-global-overlay-wrapper"><div class="cdk-overlay-pane"><mat-dialog-container
    class="mat-mdc-dialog-container" role="dialog" aria-modal="true">
      <div class="mat-mdc-dialog-inner-container">
    <h2 class="mat-mdc-dialog-title">Discard unsaved changes?</h2>
    <div class="mat-mdc-dialog-content">Starting a new chat discards this conversation.</div>
    <div class="mat-mdc-dialog-actions">
      <button type="button" class="ms-button-borderless cancel">Cancel</button><button
      type="button" class="ms-button-primary confirm">Discard and continue</button></div>
  </div></mat-dialog-container></div></div></template>
<template id="tpl-preference-vote"><div class="cdk-overlay-backdrop cdk-overlay-dark-backdrop"></div>
  <div class="cdk-global-overlay-wrapper"><div class="cdk-overlay-pane"><mat-dialog-container
    class="mat-mdc-dialog-container" role="dialog" aria-modal="true">
      <div class="mat-mdc-dialog-inner-container">
    <h2 class="mat-mdc-dialog-title">Which response do you prefer?</h2>
    <div class="mat-mdc-dialog-content">Help improve AI Studio: choose the better of two responses.</div>
    <div class="mat-mdc-dialog-actions"><button type="button" class="ms-button-borderless"
      data-test-id="skip-button" aria-label="Skip preference vote">Skip</button><button type="button"
      class="ms-button-primary" disabled>Submit vote</button></div>
  </div></mat-dialog-container></div></div></template>
<template id="tpl-cookie-bar"><div class="glue-cookie-notification-bar" role="region"
  aria-label="Cookie notification">
    <p class="glue-cookie-notification-bar__text">Replica AI Studio uses cookies
  to deliver and enhance the quality of its services and to analyze traffic.</p>
  <div class="glue-cookie-notification-bar__buttons"><a class="glue-cookie-notification-bar__more"
    href="#cookies">Learn more</a>
    <button type="button" class="glue-cookie-notification-bar__accept">Ok, got it</button></div></div>
      </template>
<template id="tpl-survey"><div class="hats-survey" role="dialog" aria-label="Survey"><iframe
  id="google-hats-survey-1" title="Survey" srcdoc="&lt;p&gt;How satisfied are you with Replica AI
  Studio?&lt;/p&gt;&lt;button&gt;Very satisfied&lt;/button&gt;"></iframe><button type="button"
  aria-label="Close survey"><span class="material-symbols-outlined">close</span></button></div></template>
"""

PAGE: Final = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<link rel="icon" href="data:,">
<title>Untitled prompt | Replica AI Studio</title>
<style>__STYLE__</style>
</head>
<body>__BODY____TEMPLATES__
<script>__SCRIPT__</script>
</body>
</html>
"""

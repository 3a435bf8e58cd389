"""The page's "Tools" run settings: function calling and structured output, both ways.

On AI Studio both sit in the collapsed "Tools" group of the run settings: a toggle each,
and an Edit button (disabled while its toggle is off) that opens a dialog with two tabs, a
Visual Editor and a Code Editor (the dialog opens on the tab used last); in the code
editor, the function declarations as a JSON array, or the response schema as a JSON
object; Save checks the text and keeps the dialog open with an error when the page does
not take it (invalid JSON, a field its schema does not know, a bad function name). The
page keeps these settings from one chat to the next (not across a reload), and turns
Google Search off (disabled) while function calling is on. The page has no control of
the function-calling mode: it never sends one.

Here: the group's markup (`TEMPLATES`, `STYLE`), its behaviour (`SCRIPT`, pasted into the
page's closure before the page script, which calls `toolsGroup()` and `toolsRequest()`),
and the endpoint's side: the same rules for what the page sends (`schema_problem`), and
the declarations read from the request (`FunctionDeclaration`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

# The fields of the page's schema (Gemini's Schema, an OpenAPI subset); nothing else.
SCHEMA_FIELDS: Final = frozenset(
    {
        "type", "format", "title", "description", "nullable", "enum", "maxItems", "minItems",
        "properties", "required", "minProperties", "maxProperties", "minLength", "maxLength",
        "pattern", "example", "anyOf", "propertyOrdering", "default", "items", "minimum", "maximum",
    }
)  # fmt: skip
SCHEMA_TYPES: Final = frozenset({"string", "number", "integer", "boolean", "array", "object", "null"})
# Gemini's rule: a letter or underscore first, then letters, digits, _ . : -, 64 at most.
FUNCTION_NAME: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_.:-]{0,63}")
JSON_MIME: Final = "application/json"


@dataclass(frozen=True, slots=True)
class FunctionDeclaration:
    """A function the page declared to the model: its name, description, parameters."""

    name: str
    description: str = ""
    parameters: Mapping[str, Any] = field(default_factory=dict)


def schema_problem(schema: Any, where: str) -> str | None:
    """Why the page would not take `schema` (None if it would): the first field it does not
    know, a type it does not have, a part that is not a schema."""
    if not isinstance(schema, dict):
        return f"{where} is not an object"
    unknown = sorted(set(schema) - SCHEMA_FIELDS)
    if unknown:
        return f'{where}: unknown field "{unknown[0]}"'
    kind = schema.get("type")
    if kind is not None and not (isinstance(kind, str) and kind.lower() in SCHEMA_TYPES):
        return f"{where}.type is not one of {', '.join(sorted(SCHEMA_TYPES))}"
    properties = schema.get("properties")
    if properties is not None:
        if not isinstance(properties, dict):
            return f"{where}.properties is not an object"
        for name, sub in properties.items():
            if problem := schema_problem(sub, f"{where}.properties.{name}"):
                return problem
    if "items" in schema and (problem := schema_problem(schema["items"], f"{where}.items")):
        return problem
    branches = schema.get("anyOf")
    if branches is not None:
        if not isinstance(branches, list):
            return f"{where}.anyOf is not a list"
        for index, sub in enumerate(branches):
            if problem := schema_problem(sub, f"{where}.anyOf[{index}]"):
                return problem
    required = schema.get("required")
    names_only = isinstance(required, list) and all(isinstance(name, str) for name in required)
    if required is not None and not names_only:
        return f"{where}.required is not a list of names"
    if "enum" in schema and not isinstance(schema["enum"], list):
        return f"{where}.enum is not a list"
    return None


def declaration_problem(declaration: Any, where: str) -> str | None:
    """Why the page would not take one function declaration (None if it would)."""
    if not isinstance(declaration, dict):
        return f"{where} is not an object"
    unknown = sorted(set(declaration) - {"name", "description", "parameters"})
    if unknown:
        return f'{where}: unknown field "{unknown[0]}"'
    name = declaration.get("name")
    if not isinstance(name, str) or not FUNCTION_NAME.fullmatch(name):
        return f"{where}.name must start with a letter or underscore (letters, digits, _ . : -, 64 at most)"
    if not isinstance(declaration.get("description", ""), str):
        return f"{where}.description is not a string"
    parameters = declaration.get("parameters")
    if parameters is not None:
        if problem := schema_problem(parameters, f"{name}.parameters"):
            return problem
        if str(parameters.get("type", "object")).lower() != "object":
            return f"{name}.parameters must be of type object"
    return None


STYLE: Final = """
  .tool-setting { display: flex; align-items: center; gap: 8px; }
  .tool-setting .item-title { flex: 1; margin: 0; }
  mat-slide-toggle button[role="switch"] { width: 36px; height: 20px; border-radius: 10px; border: 0;
                                           background: #c4c7c5; }
  mat-slide-toggle button[role="switch"][aria-checked="true"] { background: #0b57d0; }
  ms-text-editor textarea { width: 100%; min-height: 200px; font: 12px/1.4 monospace; }
  .editor-error { color: #b3261e; font-size: 12px; min-height: 16px; }
"""

TEMPLATES: Final = """
<template id="tpl-tools-group"><div class="settings-group tools-group">
  <button type="button" class="settings-group-header" aria-label="Tools" aria-expanded="false"><span
    class="group-title">Tools</span><span class="material-symbols-outlined">expand_more</span></button>
  <div class="settings-group-content"></div></div></template>
<template id="tpl-structured-output"><div class="settings-item tool-setting"
  data-test-id="structuredOutputTooltip"><h3 class="item-title">Structured output</h3>
  <button type="button" class="ms-button-borderless edit-schema-button" aria-label="Edit schema">Edit</button>
  <mat-slide-toggle class="mat-mdc-slide-toggle"><button type="button" role="switch" class="mdc-switch"
    aria-label="Structured output" aria-checked="false"></button></mat-slide-toggle></div></template>
<template id="tpl-function-calling"><div class="settings-item tool-setting"
  data-test-id="functionCallingTooltip"><h3 class="item-title">Function calling</h3>
  <button type="button" class="ms-button-borderless edit-function-declarations-button"
    aria-label="Edit function declarations">Edit</button>
  <mat-slide-toggle class="mat-mdc-slide-toggle"><button type="button" role="switch" class="mdc-switch"
    aria-label="Function calling" aria-checked="false"></button></mat-slide-toggle></div></template>
<template id="tpl-function-declarations-dialog"><div
  class="cdk-overlay-backdrop cdk-overlay-dark-backdrop"></div>
  <div class="cdk-global-overlay-wrapper"><div class="cdk-overlay-pane"><mat-dialog-container
    class="mat-mdc-dialog-container" role="dialog" aria-modal="true"><ms-edit-function-declarations-dialog>
      <div class="mat-mdc-dialog-inner-container">
    <h2 class="mat-mdc-dialog-title">Function declarations</h2>
    <div class="mat-mdc-dialog-content">__TABS__<div class="tab-body"></div>
      <div class="editor-error" role="alert"></div></div>
    <div class="mat-mdc-dialog-actions">
      <button type="button" class="ms-button-borderless close-button"
        aria-label="Close">Cancel</button><button type="button" class="ms-button-primary save-button"
      aria-label="Save the current function declarations">Save</button></div>
  </div></ms-edit-function-declarations-dialog></mat-dialog-container></div></div></template>
<template id="tpl-schema-dialog"><div class="cdk-overlay-backdrop cdk-overlay-dark-backdrop"></div>
  <div class="cdk-global-overlay-wrapper"><div class="cdk-overlay-pane"><mat-dialog-container
    class="mat-mdc-dialog-container" role="dialog" aria-modal="true"><ms-edit-schema-dialog>
      <div class="mat-mdc-dialog-inner-container">
    <h2 class="mat-mdc-dialog-title">Structured output</h2>
    <div class="mat-mdc-dialog-content">__TABS__<div class="tab-body"></div>
      <div class="editor-error" role="alert"></div></div>
    <div class="mat-mdc-dialog-actions">
      <button type="button" class="ms-button-borderless close-button"
        aria-label="Close">Cancel</button><button type="button"
        class="ms-button-primary save-button" aria-label="Save the schema">Save</button></div>
  </div></ms-edit-schema-dialog></mat-dialog-container></div></div></template>
<template id="tpl-visual-editor"><div class="visual-editor"><p class="visual-summary"></p></div></template>
<template id="tpl-code-editor"><ms-text-editor><textarea aria-label="Code editor" spellcheck="false"
  placeholder="JSON"></textarea></ms-text-editor></template>
""".replace(
    "__TABS__",
    '<ms-tab-group role="tablist"><button type="button" role="tab" class="visual-editor-tab"'
    ' aria-selected="true">Visual Editor</button><button type="button" role="tab"'
    ' class="code-editor-tab" aria-selected="false">Code Editor</button></ms-tab-group>',
)

SCRIPT: Final = r"""
  // ---- the "Tools" group: structured output and function calling (child.replica.tools)
  const SCHEMA_FIELDS = new Set(__SCHEMA_FIELDS__);
  const SCHEMA_TYPES = new Set(__SCHEMA_TYPES__);
  const FUNCTION_NAME_RE = /^[A-Za-z_][A-Za-z0-9_.:-]{0,63}$/;
  const isObject = (value) => value !== null && typeof value === "object" && !Array.isArray(value);
  // Kept across chats (not across a reload), as the page keeps its run settings.
  const tools = { open: null, functionsOn: false, declarations: [], schemaOn: false, schema: null,
                  tabs: {} };

  function schemaProblem(schema, where) {
    if (!isObject(schema)) return `${where} is not an object`;
    const unknown = Object.keys(schema).filter((key) => !SCHEMA_FIELDS.has(key)).sort();
    if (unknown.length) return `${where}: unknown field "${unknown[0]}"`;
    const typed = typeof schema.type === "string" && SCHEMA_TYPES.has(schema.type.toLowerCase());
    if ("type" in schema && !typed) {
      return `${where}.type is not one of ${[...SCHEMA_TYPES].sort().join(", ")}`;
    }
    if ("properties" in schema) {
      if (!isObject(schema.properties)) return `${where}.properties is not an object`;
      for (const [name, sub] of Object.entries(schema.properties)) {
        const problem = schemaProblem(sub, `${where}.properties.${name}`);
        if (problem) return problem;
      }
    }
    if ("items" in schema) {
      const problem = schemaProblem(schema.items, `${where}.items`);
      if (problem) return problem;
    }
    if ("anyOf" in schema) {
      if (!Array.isArray(schema.anyOf)) return `${where}.anyOf is not a list`;
      for (const [index, sub] of schema.anyOf.entries()) {
        const problem = schemaProblem(sub, `${where}.anyOf[${index}]`);
        if (problem) return problem;
      }
    }
    if ("required" in schema && !(Array.isArray(schema.required)
                                  && schema.required.every((name) => typeof name === "string"))) {
      return `${where}.required is not a list of names`;
    }
    if ("enum" in schema && !Array.isArray(schema.enum)) return `${where}.enum is not a list`;
    return null;
  }

  function parseJson(text) {
    try {
      return { value: JSON.parse(text) };
    } catch (error) {
      return { error: `Invalid JSON: ${error.message}` };
    }
  }

  function parseDeclarations(text) {
    if (text.trim() === "") return { value: [] };
    const parsed = parseJson(text);
    if (parsed.error) return parsed;
    if (!Array.isArray(parsed.value)) return { error: "Function declarations must be a JSON array." };
    const names = new Set();
    for (const [index, declaration] of parsed.value.entries()) {
      const where = `Declaration ${index}`;
      if (!isObject(declaration)) return { error: `${where} is not an object.` };
      const known = ["name", "description", "parameters"];
      const unknown = Object.keys(declaration).filter((key) => !known.includes(key));
      if (unknown.length) return { error: `${where}: unknown field "${unknown.sort()[0]}".` };
      const name = declaration.name;
      if (typeof name !== "string" || !FUNCTION_NAME_RE.test(name)) {
        const rule = "must start with a letter or underscore (letters, digits, _ . : -, 64 at most)";
        return { error: `${where}.name ${rule}.` };
      }
      if (names.has(name)) return { error: `${where}: "${name}" is declared twice.` };
      names.add(name);
      if ("description" in declaration && typeof declaration.description !== "string") {
        return { error: `${where}.description is not a string.` };
      }
      if ("parameters" in declaration) {
        const problem = schemaProblem(declaration.parameters, `${name}.parameters`);
        if (problem) return { error: problem };
        if (String(declaration.parameters.type ?? "object").toLowerCase() !== "object") {
          return { error: `${name}.parameters must be of type object` };
        }
      }
    }
    return { value: parsed.value };
  }

  function parseSchema(text) {
    const parsed = parseJson(text);
    if (parsed.error) return parsed;
    const problem = schemaProblem(parsed.value, "schema");
    return problem ? { error: problem } : parsed;
  }

  // Two tabs: the Visual Editor (a summary here; the page's is a form) and the Code Editor,
  // where the JSON is typed. The dialog opens on the tab used last, the Visual one at first.
  // The editor keeps what was typed (input events), not whatever the element's value is.
  function openEditor(templateId, current, parse, save, summary) {
    const overlay = openOverlay(templateId, { modal: true, closable: true });
    const root = overlay.nodes[1];
    const body = $(".tab-body", root);
    const error = $(".editor-error", root);
    let text = current();
    let typed = false;
    const show = (tab) => {
      tools.tabs[templateId] = tab;
      for (const button of root.querySelectorAll('button[role="tab"]')) {
        button.setAttribute("aria-selected", String(button.classList.contains(`${tab}-editor-tab`)));
      }
      if (tab === "visual") {
        const node = firstOf("tpl-visual-editor");
        $(".visual-summary", node).textContent = summary();
        body.replaceChildren(node);
        return;
      }
      const node = firstOf("tpl-code-editor");
      const area = $("textarea", node);
      area.value = text;
      area.addEventListener("input", () => { text = area.value; typed = true; error.textContent = ""; });
      body.replaceChildren(node);
      area.focus();
    };
    $("button.visual-editor-tab", root).addEventListener("click", () => show("visual"));
    $("button.code-editor-tab", root).addEventListener("click", () => show("code"));
    show(tools.tabs[templateId] || "visual");
    $("button.save-button", root).addEventListener("click", () => {
      if (!typed) {  // nothing typed: nothing changes
        closeOverlay(overlay);
        return;
      }
      const parsed = parse(text);
      if (parsed.error) {
        error.textContent = parsed.error;
        return;
      }
      save(parsed.value);
      closeOverlay(overlay);
    });
    $("button.close-button", root).addEventListener("click", () => closeOverlay(overlay));
  }

  // Google Search cannot be used with function calling: turning it on turns search off, and
  // the settings drawn again show search's switch disabled (child.replica.settings_panel).
  function syncSearch() {
    if (tools.functionsOn && page.tools && page.tools.search) page.tools.search = false;
  }

  function toolSetting(templateId, key, openDialog) {
    const node = firstOf(templateId);
    const toggle = $('button[role="switch"]', node);
    const edit = $("button.ms-button-borderless", node);
    const show = () => {
      toggle.setAttribute("aria-checked", String(tools[key]));
      edit.disabled = !tools[key];
      syncSearch();
    };
    toggle.addEventListener("click", () => {
      tools[key] = !tools[key];
      show();
      if (key === "functionsOn") renderSettings();
    });
    edit.addEventListener("click", () => { if (!edit.disabled && !modalOpen()) openDialog(); });
    show();
    return node;
  }

  function toolsGroup() {
    const group = firstOf("tpl-tools-group");
    const header = $("button", group);
    const content = $(".settings-group-content", group);
    if (tools.open === null) tools.open = readPreference().areToolsOpen === true;
    const render = () => {
      header.setAttribute("aria-expanded", String(tools.open));
      content.replaceChildren();
      if (!tools.open) return;
      content.appendChild(toolSetting("tpl-structured-output", "schemaOn", () => openEditor(
        "tpl-schema-dialog", () => (tools.schema ? JSON.stringify(tools.schema, null, 2) : ""),
        parseSchema, (schema) => { tools.schema = schema; },
        () => (tools.schema ? `A schema of type ${tools.schema.type || "any"}` : "No schema"))));
      content.appendChild(toolSetting("tpl-function-calling", "functionsOn", () => openEditor(
        "tpl-function-declarations-dialog",
        () => (tools.declarations.length ? JSON.stringify(tools.declarations, null, 2) : ""),
        parseDeclarations, (declarations) => { tools.declarations = declarations; },
        () => `${tools.declarations.length} functions: ${tools.declarations.map((d) => d.name)}`)));
      content.append(...groundingSwitches(currentModel()));
    };
    header.addEventListener("click", () => {
      tools.open = !tools.open;
      writePreference({ areToolsOpen: tools.open });
      render();
    });
    render();
    return group;
  }

  // What the tools add to a GenerateContent request (positions: child.replica.wire).
  function toolsRequest(data) {
    if (tools.schemaOn) {
      data[3][7] = "application/json";
      data[3][8] = tools.schema;
    }
    if (tools.functionsOn && tools.declarations.length) {
      data[5] = tools.declarations.map((d) => [d.name, d.description ?? null, d.parameters ?? null]);
    }
    return data;
  }
""".replace("__SCHEMA_FIELDS__", repr(sorted(SCHEMA_FIELDS)).replace("'", '"')).replace(
    "__SCHEMA_TYPES__", repr(sorted(SCHEMA_TYPES)).replace("'", '"')
)

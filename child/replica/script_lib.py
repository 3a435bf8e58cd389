"""The page script's pure parts, in JavaScript: SHA-256 for the per-prompt proof, the
markdown renderer, and the incremental reader of the streamed answer.

Hand-written so the page needs nothing from the network, and so it works in a page that
is not a secure context (crypto.subtle is missing there). The renderer is deliberately
small but renders what answers hold: headings, paragraphs, bold, italic, inline code,
lists, tables and fenced code blocks with the header (language, copy and download icons)
whose text a DOM reader picks up along with the code. The Struct decoder reads the
arguments of a function call part.
"""

from __future__ import annotations

from typing import Final

LIBRARY: Final = r"""
  // ---- SHA-256 (FIPS 180-4), over the UTF-8 bytes of a string
  const SHA256_K = new Uint32Array([
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
  ]);
  const rotate = (x, n) => (x >>> n) | (x << (32 - n));

  function sha256Hex(text) {
    const bytes = new TextEncoder().encode(text);
    const blocks = new Uint8Array(((bytes.length + 9 + 63) >> 6) << 6);
    blocks.set(bytes);
    blocks[bytes.length] = 0x80;
    const view = new DataView(blocks.buffer);
    view.setUint32(blocks.length - 8, Math.floor(bytes.length / 0x20000000));
    view.setUint32(blocks.length - 4, (bytes.length * 8) >>> 0);
    const hash = new Uint32Array([0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                  0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19]);
    const w = new Uint32Array(64);
    for (let offset = 0; offset < blocks.length; offset += 64) {
      for (let i = 0; i < 16; i += 1) w[i] = view.getUint32(offset + 4 * i);
      for (let i = 16; i < 64; i += 1) {
        const s0 = rotate(w[i - 15], 7) ^ rotate(w[i - 15], 18) ^ (w[i - 15] >>> 3);
        const s1 = rotate(w[i - 2], 17) ^ rotate(w[i - 2], 19) ^ (w[i - 2] >>> 10);
        w[i] = (w[i - 16] + s0 + w[i - 7] + s1) >>> 0;
      }
      let [a, b, c, d, e, f, g, h] = hash;
      for (let i = 0; i < 64; i += 1) {
        const t1 = (h + (rotate(e, 6) ^ rotate(e, 11) ^ rotate(e, 25)) + ((e & f) ^ (~e & g))
                    + SHA256_K[i] + w[i]) >>> 0;
        const t2 = ((rotate(a, 2) ^ rotate(a, 13) ^ rotate(a, 22)) + ((a & b) ^ (a & c) ^ (b & c))) >>> 0;
        h = g; g = f; f = e; e = (d + t1) >>> 0; d = c; c = b; b = a; a = (t1 + t2) >>> 0;
      }
      [a, b, c, d, e, f, g, h].forEach((value, i) => { hash[i] = (hash[i] + value) >>> 0; });
    }
    return [...hash].map((word) => word.toString(16).padStart(8, "0")).join("");
  }

  // ---- markdown to HTML
  const ESCAPES = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };
  const escapeHtml = (text) => String(text).replace(/[&<>"']/g, (c) => ESCAPES[c]);
  const FENCE = /^ {0,3}(`{3,})\s*([\w+#.-]*)\s*$/;
  const HEADING = /^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$/;
  const BULLET = /^ {0,3}[-*+]\s+(.*)$/;
  const ORDERED = /^ {0,3}(\d{1,9})[.)]\s+(.*)$/;
  const TABLE_RULE = /^\s*\|?\s*:?-{3,}:?\s*(\|\s*:?-{3,}:?\s*)*\|?\s*$/;

  function inline(text) {
    // Code spans first: nothing inside them is emphasis.
    return text.split(/(`[^`\n]+`)/).map((piece, index) => {
      if (index % 2 === 1) return `<code>${escapeHtml(piece.slice(1, -1))}</code>`;
      return escapeHtml(piece)
        .replace(/\*\*(?=\S)([\s\S]*?\S)\*\*/g, "<strong>$1</strong>")
        .replace(/__(?=\S)([\s\S]*?\S)__/g, "<strong>$1</strong>")
        .replace(/(^|[^*\w])\*(?=[^\s*])([^*]*?[^\s*])\*(?![*\w])/g, "$1<em>$2</em>")
        .replace(/(^|[^_\w])_(?=[^\s_])([^_]*?[^\s_])_(?![_\w])/g, "$1<em>$2</em>");
    }).join("");
  }

  function tableCells(line) {
    let row = line.trim();
    if (row.startsWith("|")) row = row.slice(1);
    if (row.endsWith("|")) row = row.slice(0, -1);
    return row.split("|").map((cell) => cell.trim());
  }

  const isTableStart = (line, next) =>
    line.includes("|") && next !== undefined && next.includes("|") && TABLE_RULE.test(next);

  const startsBlock = (line, next) => FENCE.test(line) || HEADING.test(line) || BULLET.test(line)
    || ORDERED.test(line) || isTableStart(line, next);

  function codeBlock(language, code) {
    return `<ms-code-block><div class="code-block-container"><div class="code-block-header">`
      + `<span class="code-block-language">${escapeHtml(language || "plaintext")}</span>`
      + `<div class="code-block-actions"><button type="button" aria-label="Copy to clipboard">`
      + `<span class="material-symbols-outlined">content_copy</span></button>`
      + `<button type="button" aria-label="Download">`
      + `<span class="material-symbols-outlined">download</span></button></div></div>`
      + `<pre><code class="language-${escapeHtml(language || "plaintext")}">${escapeHtml(code)}</code></pre>`
      + `</div></ms-code-block>`;
  }

  function renderMarkdown(source) {
    const lines = source.replace(/\r\n?/g, "\n").split("\n");
    const html = [];
    let i = 0;
    while (i < lines.length) {
      const line = lines[i];
      let match;
      if (line.trim() === "") {
        i += 1;
      } else if ((match = FENCE.exec(line))) {
        const fence = match[1];
        const body = [];
        i += 1;
        // An answer still streaming may not have its closing fence yet.
        const closes = (text) => text.trim().startsWith(fence) && text.trim().replace(/`/g, "") === "";
        while (i < lines.length && !closes(lines[i])) {
          body.push(lines[i]);
          i += 1;
        }
        i += 1;
        html.push(codeBlock(match[2], body.join("\n")));
      } else if ((match = HEADING.exec(line))) {
        const level = match[1].length;
        html.push(`<h${level}>${inline(match[2])}</h${level}>`);
        i += 1;
      } else if (isTableStart(line, lines[i + 1])) {
        const head = tableCells(line);
        const rows = [];
        i += 2;
        while (i < lines.length && lines[i].includes("|") && lines[i].trim() !== "") {
          rows.push(tableCells(lines[i]));
          i += 1;
        }
        const cells = (row, tag) => head.map((_, k) => `<${tag}>${inline(row[k] ?? "")}</${tag}>`).join("");
        html.push(`<table><thead><tr>${cells(head, "th")}</tr></thead><tbody>`
          + rows.map((row) => `<tr>${cells(row, "td")}</tr>`).join("") + "</tbody></table>");
      } else if (BULLET.test(line) || ORDERED.test(line)) {
        const ordered = !BULLET.test(line);
        const pattern = ordered ? ORDERED : BULLET;
        const start = ordered ? ORDERED.exec(line)[1] : "1";
        const items = [];
        while (i < lines.length && (match = pattern.exec(lines[i]))) {
          items.push(`<li>${inline(ordered ? match[2] : match[1])}</li>`);
          i += 1;
        }
        const tag = ordered ? "ol" : "ul";
        html.push(`<${tag}${start !== "1" ? ` start="${start}"` : ""}>${items.join("")}</${tag}>`);
      } else {
        const paragraph = [];
        while (i < lines.length && lines[i].trim() !== ""
               && (paragraph.length === 0 || !startsBlock(lines[i], lines[i + 1]))) {
          paragraph.push(lines[i].trim());
          i += 1;
        }
        html.push(`<p>${inline(paragraph.join("\n"))}</p>`);
      }
    }
    return html.join("");
  }

  // ---- protobuf Struct and Value as json+protobuf writes them; a Value's kind is its length
  function decodeValue(value) {
    if (!Array.isArray(value)) return null;
    switch (value.length) {
      case 2: return value[1];
      case 3: return value[2];
      case 4: return value[3];
      case 5: return decodeStruct(value[4]);
      case 6: return ((value[5] && value[5][0]) || []).map(decodeValue);
      default: return null;
    }
  }

  function decodeStruct(struct) {
    const object = {};
    for (const [key, value] of (Array.isArray(struct) && struct[0]) || []) object[key] = decodeValue(value);
    return object;
  }

  // ---- the streamed answer: [[frame,frame,...]], read frame by frame as text arrives
  class FrameReader {
    constructor() {
      this.position = 0;
      this.depth = 0;
      this.inString = false;
      this.escaped = false;
      this.start = -1;
    }

    // The frames completed by the text received so far (`text` only ever grows).
    feed(text) {
      const frames = [];
      for (; this.position < text.length; this.position += 1) {
        const ch = text[this.position];
        if (this.inString) {
          if (this.escaped) this.escaped = false;
          else if (ch === "\\") this.escaped = true;
          else if (ch === '"') this.inString = false;
        } else if (ch === '"') {
          this.inString = true;
        } else if (ch === "[") {
          this.depth += 1;
          if (this.depth === 3) this.start = this.position;
        } else if (ch === "]") {
          if (this.depth === 3) frames.push(JSON.parse(text.slice(this.start, this.position + 1)));
          this.depth -= 1;
        }
      }
      return frames;
    }
  }
"""

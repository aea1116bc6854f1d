// The demo's Slack-like page: draws one channel of the local Slack and sends what the person does
// to /_page/* (which turns it into Slack's signed requests to the app).
//
// Untrusted text (everything from the app and QuickBooks) only ever reaches the DOM through
// textContent and attributes set one by one; nothing here assigns innerHTML.
"use strict";

(() => {
  const POLL_MS = 700;
  const NOTICE_MS = 9000;
  const ACTIVITY_MS = 1500;

  // A few emoji Slack apps use in messages; unknown :names: stay as typed.
  const EMOJI = {
    white_check_mark: "\u2705", warning: "\u26a0\ufe0f", hourglass: "\u231b",
    hourglass_flowing_sand: "\u23f3", arrows_counterclockwise: "\ud83d\udd04", zzz: "\ud83d\udca4",
    no_entry: "\u26d4", mag: "\ud83d\udd0d", envelope: "\u2709\ufe0f", electric_plug: "\ud83d\udd0c",
    moneybag: "\ud83d\udcb0", money_with_wings: "\ud83d\udcb8", chart_with_upwards_trend: "\ud83d\udcc8",
    chart_with_downwards_trend: "\ud83d\udcc9", calendar: "\ud83d\udcc6", bell: "\ud83d\udd14",
    x: "\u274c", heavy_check_mark: "\u2714\ufe0f", red_circle: "\ud83d\udd34",
    large_green_circle: "\ud83d\udfe2", large_yellow_circle: "\ud83d\udfe1", rotating_light: "\ud83d\udea8",
    information_source: "\u2139\ufe0f", bank: "\ud83c\udfe6", receipt: "\ud83e\uddfe",
    tada: "\ud83c\udf89", eyes: "\ud83d\udc40", clock1: "\ud83d\udd50", lock: "\ud83d\udd12",
    email: "\ud83d\udce7", link: "\ud83d\udd17", thumbsup: "\ud83d\udc4d", "+1": "\ud83d\udc4d",
    envelope_with_arrow: "\ud83d\udce9", incoming_envelope: "\ud83d\udce8", inbox_tray: "\ud83d\udce5",
    outbox_tray: "\ud83d\udce4", clipboard: "\ud83d\udccb", wave: "\ud83d\udc4b", hourglass_done: "\u231b",
    memo: "\ud83d\udcdd", credit_card: "\ud83d\udcb3", dollar: "\ud83d\udcb5", chart: "\ud83d\udcb9",
    heavy_multiplication_x: "\u2716\ufe0f", white_circle: "\u26aa", hammer_and_wrench: "\ud83d\udee0\ufe0f",
    gear: "\u2699\ufe0f", house: "\ud83c\udfe0", repeat: "\ud83d\udd01", sparkles: "\u2728",
    stopwatch: "\u23f1\ufe0f", alarm_clock: "\u23f0", spiral_calendar_pad: "\ud83d\uddd3\ufe0f",
  };

  const $ = (testid) => document.querySelector(`[data-testid="${testid}"]`);

  // --- DOM helpers ------------------------------------------------------------------------------

  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    if (props) {
      for (const [key, value] of Object.entries(props)) {
        if (value === undefined || value === null || value === false) continue;
        if (key === "className") node.className = value;
        else if (key === "text") node.textContent = value;
        else if (key === "testid") node.dataset.testid = value;
        else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
        else node.setAttribute(key, value === true ? "" : String(value));
      }
    }
    for (const child of children) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  // --- mrkdwn -----------------------------------------------------------------------------------

  // Slack sends `&`, `<`, `>` as entities; undone once, only when the text becomes a DOM text node.
  function unescapeSlack(text) {
    return text.replace(/&(amp|lt|gt);/g, (_, name) => ({ amp: "&", lt: "<", gt: ">" })[name]);
  }

  function emojify(text) {
    return text.replace(/:([a-z0-9_+\-]+):/g, (whole, name) => EMOJI[name] || whole);
  }

  // Links open only to the web or mail, never `javascript:` and the like.
  const SAFE_URL = /^(https?:|mailto:)/i;

  const PLACEHOLDER_BASE = 0xe000; // private-use characters stand in for <...> entities

  function userName(id) {
    const user = state && state.usersById.get(id);
    if (user) return user.real_name || user.name;
    if (state && state.bot && state.bot.id === id) return state.bot.name;
    return id;
  }

  function channelName(id) {
    const channel = state && state.channels.find((c) => c.id === id);
    return channel ? channel.name : id;
  }

  // One <...> entity as a DOM node: mentions, channel links, special mentions, dates, URLs.
  function entityNode(inner) {
    const bar = inner.indexOf("|");
    const target = bar >= 0 ? inner.slice(0, bar) : inner;
    const label = bar >= 0 ? unescapeSlack(inner.slice(bar + 1)) : null;
    if (target.startsWith("@")) {
      return el("span", { className: "mention", text: "@" + (label || userName(target.slice(1))) });
    }
    if (target.startsWith("#")) {
      return el("span", { className: "mention", text: "#" + (label || channelName(target.slice(1))) });
    }
    if (target.startsWith("!")) {
      const special = target.slice(1).split("^")[0];
      if (special === "date") return document.createTextNode(label || target);
      if (special === "subteam") return el("span", { className: "mention", text: label || "@group" });
      return el("span", { className: "mention", text: "@" + special });
    }
    const url = unescapeSlack(target);
    if (SAFE_URL.test(url)) {
      return el("a", { href: url, target: "_blank", rel: "noopener noreferrer", text: label || url });
    }
    return document.createTextNode(label || url);
  }

  // Appends `text` (placeholders and all) to `parent` as text nodes and entity nodes.
  function appendText(parent, text, entities, { emoji = true } = {}) {
    let buffer = "";
    const flush = () => {
      if (buffer) parent.append(document.createTextNode(emoji ? emojify(unescapeSlack(buffer)) : unescapeSlack(buffer)));
      buffer = "";
    };
    for (const ch of text) {
      const code = ch.codePointAt(0);
      if (code >= PLACEHOLDER_BASE && code - PLACEHOLDER_BASE < entities.length) {
        flush();
        parent.append(entityNode(entities[code - PLACEHOLDER_BASE]));
      } else {
        buffer += ch;
      }
    }
    flush();
  }

  // Inline formatting: `code`, *bold*, _italic_, ~strike~. A marker opens only before a visible
  // character and closes only after one (a zero-width space after a marker keeps it literal).
  const EDGE = "\\s\\u200b";
  const BOUNDARY_BEFORE = `(?<=^|[${EDGE}\\p{P}\\p{S}])`;
  const BOUNDARY_AFTER = `(?=$|[${EDGE}\\p{P}\\p{S}])`;
  function markerRe(marker) {
    const m = marker === "*" ? "\\*" : marker; // `\_` and `\~` are invalid escapes under /u
    return new RegExp(`${BOUNDARY_BEFORE}${m}(?![${EDGE}${m}])([^\\n]*?[^${EDGE}${m}])${m}${BOUNDARY_AFTER}`, "u");
  }
  const INLINE = [
    { re: /`([^`\n]+)`/u, tag: "code", nested: false },
    { re: markerRe("*"), tag: "b", nested: true },
    { re: markerRe("_"), tag: "i", nested: true },
    { re: markerRe("~"), tag: "s", nested: true },
  ];

  function appendInline(parent, text, entities) {
    let rest = text;
    while (rest) {
      let best = null;
      for (const rule of INLINE) {
        const match = rule.re.exec(rest);
        if (match && (best === null || match.index < best.match.index)) best = { rule, match };
      }
      if (best === null) {
        appendText(parent, rest, entities);
        return;
      }
      const { rule, match } = best;
      appendText(parent, rest.slice(0, match.index), entities);
      const node = el(rule.tag);
      if (rule.nested) appendInline(node, match[1], entities);
      else appendText(node, match[1], entities, { emoji: false });
      parent.append(node);
      rest = rest.slice(match.index + match[0].length);
    }
  }

  function renderMrkdwn(source, { inline = false } = {}) {
    const entities = [];
    // Private-use characters are the placeholders' own; any already in the text are not entities.
    const text = String(source || "").replace(/[\ue000-\uf8ff]/g, "\ufffd").replace(/<([^<>\n]+)>/g, (_, inner) => {
      entities.push(inner);
      return String.fromCharCode(PLACEHOLDER_BASE + entities.length - 1);
    });
    const root = el(inline ? "span" : "div", { className: "mrkdwn" });
    text.split("```").forEach((part, index) => {
      if (index % 2 === 1) {
        const pre = el("pre");
        appendText(pre, part.replace(/^\n/, ""), entities, { emoji: false });
        root.append(pre);
        return;
      }
      let quote = null;
      const lines = part.split("\n");
      lines.forEach((line, i) => {
        const quoted = /^&gt;\s?/.exec(line);
        if (quoted) {
          if (!quote) {
            quote = el("blockquote");
            root.append(quote);
          } else {
            quote.append("\n");
          }
          appendInline(quote, line.slice(quoted[0].length), entities);
          return;
        }
        quote = null;
        appendInline(root, line, entities);
        if (i < lines.length - 1) root.append("\n");
      });
    });
    return root;
  }

  function renderTextObject(obj, { inline = false } = {}) {
    if (!obj) return document.createTextNode("");
    if (obj.type === "mrkdwn") return renderMrkdwn(obj.text, { inline });
    const span = el("span", { className: "plain" });
    span.textContent = obj.emoji === false ? String(obj.text || "") : emojify(String(obj.text || ""));
    return span;
  }

  function plainText(obj) {
    return obj ? String(obj.text || "") : "";
  }

  // --- Block Kit ----------------------------------------------------------------------------------

  function buttonTestId(element) {
    return element.value === undefined ? `button-${element.action_id}` : `button-${element.action_id}-${element.value}`;
  }

  // `where` says which message an element belongs to: {ts, ephemeral}.
  function renderElement(element, blockId, where) {
    // The element as drawn goes along: an update may remove it from the message before the click.
    const base = { action_id: element.action_id, block_id: blockId, element };
    switch (element.type) {
      case "button": {
        const button = el("button", {
          type: "button",
          className: "btn" + (element.style ? ` btn-${element.style}` : ""),
          testid: buttonTestId(element),
          "data-action-id": element.action_id,
          "data-value": element.value,
        }, renderTextObject(element.text, { inline: true }));
        if (element.url && SAFE_URL.test(element.url)) {
          button.addEventListener("click", () => window.open(element.url, "_blank", "noopener"));
        }
        button.addEventListener("click", () => act(button, where, { ...base, value: element.value }, element.confirm));
        return button;
      }
      case "static_select":
      case "overflow": {
        const select = el("select", {
          className: "select",
          testid: `select-${element.action_id}`,
          "aria-label": plainText(element.placeholder) || "More actions",
        });
        select.append(el("option", { value: "", text: element.type === "overflow" ? "\u22ef" : plainText(element.placeholder) || "Choose\u2026" }));
        appendOptions(select, element);
        select.addEventListener("change", () => {
          const value = select.value;
          select.value = "";
          if (value) act(select, where, { ...base, value }, element.confirm);
        });
        return select;
      }
      case "image":
        return el("span", { className: "image-alt", title: element.alt_text, text: `[${element.alt_text || "image"}]` });
      default:
        return el("span", { className: "unsupported", text: `[${element.type}]` });
    }
  }

  function appendOptions(select, element, selected = []) {
    const add = (parent, option) => {
      parent.append(el("option", { value: option.value, selected: selected.includes(option.value), text: plainText(option.text) }));
    };
    (element.options || []).forEach((option) => add(select, option));
    (element.option_groups || []).forEach((group) => {
      const optgroup = el("optgroup", { label: plainText(group.label) });
      (group.options || []).forEach((option) => add(optgroup, option));
      select.append(optgroup);
    });
  }

  function renderBlock(block, where) {
    const testid = block.block_id ? `block-${block.block_id}` : undefined;
    switch (block.type) {
      case "header":
        return el("div", { className: "block-header", testid }, renderTextObject(block.text));
      case "section": {
        const section = el("div", { className: "block-section", testid });
        const body = el("div", { className: "section-body" });
        if (block.text) body.append(renderTextObject(block.text));
        if (block.fields && block.fields.length) {
          body.append(el("div", { className: "section-fields" }, ...block.fields.map((f) => el("div", { className: "field" }, renderTextObject(f)))));
        }
        section.append(body);
        if (block.accessory) section.append(el("div", { className: "accessory" }, renderElement(block.accessory, block.block_id, where)));
        return section;
      }
      case "context":
        return el("div", { className: "block-context", testid }, ...(block.elements || []).map((e) => (e.type === "image" ? renderElement(e, block.block_id, where) : renderTextObject(e, { inline: true }))));
      case "divider":
        return el("hr", { className: "block-divider", testid });
      case "actions":
        return el("div", { className: "block-actions", testid }, ...(block.elements || []).map((e) => renderElement(e, block.block_id, where)));
      case "image": {
        // Only web images: the app's own chart route, or any http(s) address Slack would fetch.
        const src = /^https?:\/\//.test(block.image_url || "") ? block.image_url : null;
        return el("figure", { className: "block-image", testid },
          block.title ? el("figcaption", { text: plainText(block.title) }) : null,
          src ? el("img", { src, alt: block.alt_text || "", title: block.alt_text || "" }) : `[${block.alt_text || "image"}]`);
      }
      case "rich_text":
        return el("div", { className: "block-rich", testid, text: richText(block) });
      default:
        return el("div", { className: "unsupported", testid, text: `[${block.type} block]` });
    }
  }

  function richText(node) {
    if (!node) return "";
    if (typeof node.text === "string") return node.text;
    return (node.elements || []).map(richText).join("");
  }

  function renderBlocks(blocks, where) {
    return el("div", { className: "blocks" }, ...(blocks || []).map((b) => renderBlock(b, where)));
  }

  // --- messages -----------------------------------------------------------------------------------

  function shortTime(ts) {
    const date = new Date(Number(ts.split(".")[0]) * 1000);
    return date.toLocaleTimeString([], { hour: "numeric", minute: "2-digit" });
  }

  function avatar(name, isBot) {
    const initial = (name || "?").trim().charAt(0).toUpperCase();
    return el("div", { className: "avatar" + (isBot ? " avatar-bot" : ""), "aria-hidden": "true", text: initial });
  }

  function renderMessage(message) {
    const where = { ts: message.ts, ephemeral: false };
    const meta = el("div", { className: "meta" },
      el("span", { className: "author", text: message.user_name }),
      message.is_bot ? el("span", { className: "app-badge", text: "APP" }) : null,
      el("time", { className: "time", title: message.ts, text: shortTime(message.ts) }));
    const content = el("div", { className: "content" }, meta);
    if (message.blocks && message.blocks.length) content.append(renderBlocks(message.blocks, where));
    else content.append(renderMrkdwn(message.text));
    if (message.edited) {
      // "(edited)" follows the message's last text, small and grey, as in Slack: never inside a
      // button, a context line or a header.
      const texts = [...content.querySelectorAll(".section-body > .mrkdwn, .section-body > .plain, .content > .mrkdwn, .block-rich")]
        .filter((node) => !node.closest("button, .accessory, .block-context, .block-actions, .block-header"));
      const last = texts.length ? texts[texts.length - 1] : null;
      const mark = el("span", { className: "edited", testid: "edited", text: "(edited)" });
      const lastBlock = content.querySelector(".blocks") ? content.querySelector(".blocks").lastElementChild : null;
      if (last && (!lastBlock || lastBlock.contains(last))) last.append(" ", mark);
      else content.append(el("div", { className: "edited-line" }, mark));
    }
    if (message.thread_ts && message.thread_ts !== message.ts) content.prepend(el("div", { className: "thread-note", text: "replied to a thread" }));
    return el("div", { className: "message", testid: `message-${message.ts}`, "data-ts": message.ts }, avatar(message.user_name, message.is_bot), content);
  }

  function renderEphemeral(ephemeral) {
    const where = { ts: ephemeral.ts, ephemeral: true };
    const botName = state.bot.name;
    const meta = el("div", { className: "meta" },
      el("span", { className: "author", text: botName }),
      el("span", { className: "app-badge", text: "APP" }),
      el("time", { className: "time", title: ephemeral.ts, text: shortTime(ephemeral.ts) }));
    const content = el("div", { className: "content" }, meta);
    if (ephemeral.blocks && ephemeral.blocks.length) content.append(renderBlocks(ephemeral.blocks, where));
    else content.append(renderMrkdwn(ephemeral.text));
    const dismiss = el("button", { type: "button", className: "link-button", text: "Dismiss message" });
    dismiss.addEventListener("click", () => {
      dismissed.add(ephemeral.ts);
      render(true);
    });
    const only = el("div", { className: "only-you" }, el("span", { className: "eye", "aria-hidden": "true" }), "Only visible to you \u00b7 ", dismiss);
    return el("div", { className: "message ephemeral", testid: `ephemeral-${ephemeral.ts}`, "data-ts": ephemeral.ts },
      el("div", { className: "ephemeral-inner" }, only, el("div", { className: "ephemeral-body" }, avatar(botName, true), content)));
  }

  function compareTs(a, b) {
    const [as, au = "0"] = a.split(".");
    const [bs, bu = "0"] = b.split(".");
    return Number(as) - Number(bs) || Number(au) - Number(bu);
  }

  // --- acting on messages ---------------------------------------------------------------------------

  async function act(control, where, action, confirm) {
    if (confirm && !(await askConfirm(confirm))) return;
    control.disabled = true;
    control.classList.add("busy");
    try {
      const place = where.view ? { view_id: where.view } : { ts: where.ts, ephemeral: where.ephemeral };
      await post("/_page/click", { ...place, ...action });
    } finally {
      control.disabled = false;
      control.classList.remove("busy");
      poll();
    }
  }

  function askConfirm(confirm) {
    const overlay = $("confirm-overlay");
    return new Promise((resolve) => {
      const finish = (ok) => {
        overlay.hidden = true;
        overlay.replaceChildren();
        document.removeEventListener("keydown", onKey);
        resolve(ok);
      };
      const onKey = (event) => {
        if (event.key === "Escape") finish(false);
      };
      const deny = el("button", { type: "button", className: "btn", testid: "confirm-deny", text: plainText(confirm.deny) || "Cancel" });
      const ok = el("button", {
        type: "button",
        className: "btn " + (confirm.style === "danger" ? "btn-danger" : "btn-primary"),
        testid: "confirm-ok",
        text: plainText(confirm.confirm) || "Yes",
      });
      deny.addEventListener("click", () => finish(false));
      ok.addEventListener("click", () => finish(true));
      const dialog = el("div", { className: "dialog", role: "dialog", "aria-modal": "true", testid: "confirm-dialog" },
        el("h2", { className: "dialog-title", text: plainText(confirm.title) || "Are you sure?" }),
        el("div", { className: "dialog-text" }, renderTextObject(confirm.text)),
        el("div", { className: "dialog-buttons" }, deny, ok));
      overlay.replaceChildren(dialog);
      overlay.hidden = false;
      document.addEventListener("keydown", onKey);
      ok.focus();
    });
  }

  // --- the modal ----------------------------------------------------------------------------------

  let shownView = null; // {id, hash}

  function inputControl(element, blockId) {
    const testid = `input-${blockId}`;
    const common = { testid, "data-action-id": element.action_id, "data-type": element.type, id: `input-${blockId}` };
    const placeholder = plainText(element.placeholder);
    switch (element.type) {
      case "plain_text_input":
        if (element.multiline) return el("textarea", { ...common, className: "input", rows: 4, placeholder }, element.initial_value || "");
        return el("input", { ...common, className: "input", type: "text", placeholder, value: element.initial_value || "" });
      case "number_input":
        return el("input", { ...common, className: "input", type: "number", step: element.is_decimal_allowed ? "any" : "1", placeholder, value: element.initial_value || "" });
      case "email_text_input":
        return el("input", { ...common, className: "input", type: "email", placeholder, value: element.initial_value || "" });
      case "url_text_input":
        return el("input", { ...common, className: "input", type: "url", placeholder, value: element.initial_value || "" });
      case "timepicker":
        return el("input", { ...common, className: "input", type: "time", value: element.initial_time || "" });
      case "datepicker":
        return el("input", { ...common, className: "input", type: "date", value: element.initial_date || "" });
      case "static_select":
      case "multi_static_select": {
        const multi = element.type.startsWith("multi_");
        const selected = multi ? (element.initial_options || []).map((o) => o.value) : element.initial_option ? [element.initial_option.value] : [];
        const select = el("select", { ...common, className: "input", multiple: multi });
        if (!multi) select.append(el("option", { value: "", text: placeholder || "Choose an option", selected: !selected.length }));
        appendOptions(select, element, selected);
        return select;
      }
      case "users_select":
      case "multi_users_select": {
        const multi = element.type.startsWith("multi_");
        const selected = multi ? element.initial_users || [] : element.initial_user ? [element.initial_user] : [];
        const select = el("select", { ...common, className: "input", multiple: multi });
        if (!multi) select.append(el("option", { value: "", text: placeholder || "Choose a person" }));
        state.users.forEach((u) => select.append(el("option", { value: u.id, selected: selected.includes(u.id), text: `${u.real_name || u.name} (@${u.name})` })));
        return select;
      }
      case "conversations_select":
      case "channels_select":
      case "multi_conversations_select":
      case "multi_channels_select": {
        const multi = element.type.startsWith("multi_");
        let selected = multi ? element.initial_conversations || element.initial_channels || [] : [element.initial_conversation || element.initial_channel].filter(Boolean);
        if (!selected.length && element.default_to_current_conversation) selected = [state.channel.id];
        const select = el("select", { ...common, className: "input", multiple: multi });
        if (!multi) select.append(el("option", { value: "", text: placeholder || "Choose a channel" }));
        state.channels.forEach((c) => select.append(el("option", { value: c.id, selected: selected.includes(c.id), text: `# ${c.name}` })));
        return select;
      }
      case "checkboxes":
      case "radio_buttons": {
        const box = element.type === "checkboxes";
        const initial = box ? (element.initial_options || []).map((o) => o.value) : element.initial_option ? [element.initial_option.value] : [];
        const group = el("div", { ...common, className: "choice-group", role: box ? "group" : "radiogroup" });
        (element.options || []).forEach((option, i) => {
          group.append(el("label", { className: "choice" },
            el("input", { type: box ? "checkbox" : "radio", name: `choice-${blockId}`, value: option.value, checked: initial.includes(option.value), testid: `${testid}-${i}` }),
            " ", renderTextObject(option.text, { inline: true })));
        });
        return group;
      }
      default:
        return el("div", { ...common, className: "unsupported", text: `[${element.type} input]` });
    }
  }

  function readControl(control) {
    if (control.classList.contains("choice-group")) {
      const picked = [...control.querySelectorAll("input:checked")].map((i) => i.value);
      return control.dataset.type === "checkboxes" ? picked : picked[0] || null;
    }
    if (control.tagName === "SELECT") {
      if (control.multiple) return [...control.selectedOptions].map((o) => o.value);
      return control.value || null;
    }
    if (control.tagName === "INPUT" || control.tagName === "TEXTAREA") return control.value === "" ? null : control.value;
    return null;
  }

  function writeControl(control, value) {
    if (control.classList.contains("choice-group")) {
      const wanted = [].concat(value || []);
      control.querySelectorAll("input").forEach((i) => { i.checked = wanted.includes(i.value); });
    } else if (control.tagName === "SELECT" && control.multiple) {
      const wanted = value || [];
      [...control.options].forEach((o) => { o.selected = wanted.includes(o.value); });
    } else if ("value" in control) {
      control.value = value || "";
    }
  }

  function modalValues(modal) {
    const values = {};
    modal.querySelectorAll("[data-input-block]").forEach((block) => {
      const control = block.querySelector("[data-action-id]");
      if (!control) return;
      values[block.dataset.inputBlock] = { [control.dataset.actionId]: readControl(control) };
    });
    return values;
  }

  function renderModal(view) {
    const overlay = $("modal-overlay");
    if (!view) {
      if (shownView) {
        overlay.hidden = true;
        overlay.replaceChildren();
        shownView = null;
      }
      return;
    }
    const current = overlay.querySelector(".modal");
    if (shownView && shownView.id === view.id && shownView.hash === view.hash && current) {
      showModalErrors(current, view.errors);
      return;
    }
    // Inputs keep what the person typed when the app updates the modal, and the modal stays
    // scrolled where it was (a list's card clicked far down), as in Slack.
    const same = current && shownView && shownView.id === view.id;
    const kept = same ? modalValues(current) : {};
    const scrolled = same ? current.querySelector(".modal-body").scrollTop : 0;
    const where = { ts: null, ephemeral: false, view: view.id };
    const body = el("div", { className: "modal-body" });
    (view.blocks || []).forEach((block) => {
      if (block.type !== "input") {
        body.append(renderBlock(block, where));
        return;
      }
      const element = block.element || {};
      const control = inputControl(element, block.block_id);
      const previous = kept[block.block_id];
      if (previous && element.action_id in previous) writeControl(control, previous[element.action_id]);
      body.append(el("div", { className: "input-block", "data-input-block": block.block_id, testid: `input-block-${block.block_id}` },
        el("label", { className: "input-label", for: control.id }, plainText(block.label), block.optional ? el("span", { className: "optional", text: " (optional)" }) : null),
        control,
        block.hint ? el("div", { className: "hint", text: plainText(block.hint) }) : null,
        el("div", { className: "field-error", testid: `error-${block.block_id}`, role: "alert", hidden: true })));
    });
    const closeLabel = plainText(view.close) || (view.submit ? "Cancel" : "Close");
    const footer = el("div", { className: "modal-footer" },
      el("button", { type: "button", className: "btn", testid: "modal-close", text: closeLabel, onclick: () => closeModal(view.id) }),
      view.submit ? el("button", { type: "submit", className: "btn btn-primary", testid: "modal-submit", text: plainText(view.submit) }) : null);
    const modal = el("form", { className: "modal", role: "dialog", "aria-modal": "true", testid: "modal", "data-view-id": view.id, novalidate: true },
      el("header", { className: "modal-header" },
        el("h2", { text: plainText(view.title), testid: "modal-title" }),
        el("button", { type: "button", className: "icon-button", "aria-label": "Close", text: "\u00d7", onclick: () => closeModal(view.id) })),
      body, footer);
    modal.addEventListener("keydown", (event) => {
      if (event.key === "Escape" && $("confirm-overlay").hidden) closeModal(view.id);
    });
    modal.addEventListener("submit", (event) => {
      event.preventDefault();
      submitModal(modal, view.id);
    });
    overlay.replaceChildren(modal);
    overlay.hidden = false;
    body.scrollTop = scrolled;
    shownView = { id: view.id, hash: view.hash };
    showModalErrors(modal, view.errors);
  }

  function showModalErrors(modal, errors) {
    modal.querySelectorAll("[data-input-block]").forEach((block) => {
      const message = (errors || {})[block.dataset.inputBlock];
      const slot = block.querySelector(".field-error");
      slot.textContent = message || "";
      slot.hidden = !message;
      block.classList.toggle("has-error", Boolean(message));
    });
  }

  // The first refused field, scrolled into view (the modal may be scrolled elsewhere) and focused.
  function revealFirstError(modal) {
    const block = modal.querySelector(".input-block.has-error");
    if (!block) return;
    block.scrollIntoView({ block: "nearest" });
    const control = block.querySelector("[data-action-id]");
    if (control && typeof control.focus === "function") control.focus({ preventScroll: true });
  }

  async function submitModal(modal, viewId) {
    const submit = modal.querySelector('[data-testid="modal-submit"]');
    if (submit) submit.disabled = true;
    try {
      const answer = await post("/_page/submit", { view_id: viewId, values: modalValues(modal) });
      if (answer && answer.errors) {
        showModalErrors(modal, answer.errors);
        revealFirstError(modal);
      }
    } finally {
      if (submit) submit.disabled = false;
      poll();
    }
  }

  async function closeModal(viewId) {
    await post("/_page/close", { view_id: viewId });
    poll();
  }

  // --- talking to the server --------------------------------------------------------------------------

  let noticeTimer = null;
  function notice(text, kind = "error") {
    const box = $("notice");
    box.textContent = text;
    box.className = `notice notice-${kind}`;
    box.hidden = false;
    clearTimeout(noticeTimer);
    noticeTimer = setTimeout(() => { box.hidden = true; }, NOTICE_MS);
  }

  async function post(path, body) {
    let response;
    try {
      response = await fetch(path, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
    } catch (error) {
      notice(`The demo server did not answer (${error.message}). Is it still running?`);
      return null;
    }
    let answer = null;
    try {
      answer = await response.json();
    } catch (error) {
      notice(`The demo server answered HTTP ${response.status} without JSON.`);
      return null;
    }
    if (answer.error) notice(answer.error);
    else if (answer.notice) notice(answer.notice);
    return answer;
  }

  // --- drawing the state ------------------------------------------------------------------------------

  let state = null;
  let lastJson = "";
  let pane = "channel"; // or "home": the app's Home tab
  let firstDraw = true;
  const seenEphemerals = new Set();
  const seenMessages = new Set();
  const dismissed = new Set();
  const drawn = new Map(); // key -> {sig, node}
  let stickToBottom = true;

  function render(force) {
    if (!state) return;
    document.title = `#${state.channel.name} \u00b7 ${state.title}`;
    $("workspace-name").textContent = state.title;
    $("channel-name").textContent = `# ${state.channel.name}`;
    $("channel-intro").textContent = `This is the very beginning of #${state.channel.name}`;
    $("viewer-name").textContent = `${state.viewer.real_name} (you)`;
    $("composer").placeholder = `Message #${state.channel.name}, or type /runway`;
    renderChannels();
    renderPeople();
    renderFaults();
    renderMailCount();
    renderPane();

    const items = [
      ...state.messages.map((m) => ({ key: `m:${m.ts}`, ts: m.ts, data: m, draw: renderMessage })),
      ...state.ephemerals.filter((e) => !dismissed.has(e.ts)).map((e) => ({ key: `e:${e.ts}`, ts: e.ts, data: e, draw: renderEphemeral })),
    ].sort((a, b) => compareTs(a.ts, b.ts));

    const list = $("messages");
    const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 48;
    const keep = new Set(items.map((i) => i.key));
    for (const [key, entry] of drawn) {
      if (!keep.has(key)) {
        entry.node.remove();
        drawn.delete(key);
      }
    }
    let previous = list.querySelector(".channel-intro");
    for (const item of items) {
      const sig = JSON.stringify(item.data) + state.usersSig;
      let entry = drawn.get(item.key);
      if (!entry || entry.sig !== sig) {
        const node = item.draw(item.data);
        if (entry) entry.node.replaceWith(node);
        entry = { sig, node };
        drawn.set(item.key, entry);
      }
      if (previous.nextSibling !== entry.node) previous.after(entry.node);
      previous = entry.node;
    }
    const fresh = state.ephemerals.filter((e) => !seenEphemerals.has(e.ts) && !dismissed.has(e.ts));
    state.ephemerals.forEach((e) => seenEphemerals.add(e.ts));
    const arrived = state.messages.filter((m) => !seenMessages.has(m.ts));
    state.messages.forEach((m) => seenMessages.add(m.ts));
    if (firstDraw) {
      // Slack opens a channel at its end; a message taller than the window opens at its top, so
      // the digest's headline is the first thing seen.
      firstDraw = false;
      revealLatest(list);
    } else if (fresh.length) {
      // An answer only you see (a list, /runway) shows where it starts, as Slack scrolls to it.
      const node = drawn.get(`e:${fresh[fresh.length - 1].ts}`);
      if (node) revealNode(list, node.node);
    } else if (arrived.length && (atBottom || stickToBottom)) {
      // A new message (a digest) seen from the end of the channel: shown from its start.
      const node = drawn.get(`m:${arrived[arrived.length - 1].ts}`);
      if (node) revealNode(list, node.node);
    } else if (atBottom || stickToBottom) {
      list.scrollTop = list.scrollHeight;
    }
    stickToBottom = false;
    renderModal(state.view);
  }

  function revealNode(list, node) {
    if (node.offsetHeight > list.clientHeight) {
      list.scrollTop += node.getBoundingClientRect().top - list.getBoundingClientRect().top;
    } else {
      list.scrollTop = list.scrollHeight;
    }
  }

  function revealLatest(list) {
    const messages = list.querySelectorAll(".message");
    if (messages.length) revealNode(list, messages[messages.length - 1]);
    else list.scrollTop = list.scrollHeight;
  }

  // --- panes: the channel and the app's Home tab -------------------------------------------------

  function showPane(next) {
    pane = next;
    renderPane();
    if (next === "home") openHome();
  }

  async function openHome() {
    // Slack sends the app `app_home_opened`; the app publishes the person's Home (views.publish).
    await post("/_page/home", {});
    poll();
  }

  let homeSig = "";
  function renderPane() {
    const home = pane === "home";
    $("channel-pane").hidden = home;
    $("home-pane").hidden = !home;
    $("home-item").classList.toggle("active", home);
    $("channel-list").querySelectorAll(".channel-item").forEach((item) => item.classList.toggle("active", !home && item.dataset.testid === `channel-${state.channel.id}`));
    if (!home) return;
    const view = state.home;
    const sig = view ? `${view.id}:${view.hash}:${state.usersSig}` : "none";
    if (sig === homeSig) return;
    homeSig = sig;
    const body = $("home-body");
    if (!view) {
      body.replaceChildren(el("div", { className: "home-empty", testid: "home-empty", text: "Opening Oodaloo\u2019s Home\u2026" }));
      return;
    }
    body.replaceChildren(renderBlocks(view.blocks, { ts: null, ephemeral: false, view: view.id }));
  }

  // --- people: the page acts as any person of the workspace ---------------------------------------

  function renderPeople() {
    const select = $("person-switch");
    const sig = state.usersSig + state.viewer.id;
    if (select.dataset.sig === sig) return;
    select.dataset.sig = sig;
    select.replaceChildren(...state.users.map((u) => el("option", {
      value: u.id, selected: u.id === state.viewer.id, text: u.role ? `${u.real_name} \u00b7 ${u.role}` : u.real_name,
    })));
  }

  async function switchPerson(userId) {
    const answer = await post("/_page/viewer", { user_id: userId });
    if (!answer || !answer.ok) return;
    dismissed.clear();
    seenEphemerals.clear();
    homeSig = "";
    lastJson = "";
    await poll();
    if (pane === "home") openHome();
  }

  // --- what Oodaloo did about QuickBooks' faults ------------------------------------------------------

  let activitySig = "";
  async function loadActivity() {
    if (!state || !state.activity) return;
    let entries;
    try {
      const response = await fetch("/_page/activity", { cache: "no-store" });
      if (!response.ok) return;
      ({ entries } = await response.json());
    } catch (error) {
      return; // the next round tries again
    }
    const sig = JSON.stringify(entries);
    if (sig === activitySig) return;
    activitySig = sig;
    $("activity-empty").hidden = entries.length > 0 || !state.activity;
    $("activity-log").replaceChildren(...entries.slice(0, 12).map((entry) => el("li", { className: `activity activity-${entry.kind}`, testid: `activity-${entry.kind}` },
      el("span", { className: "activity-kind", text: entry.kind }),
      el("time", { className: "activity-time", text: entry.at ? new Date(entry.at).toLocaleTimeString([], { hour: "numeric", minute: "2-digit", second: "2-digit" }) : "" }),
      el("div", { className: "activity-text", text: entry.text }))));
  }

  function renderChannels() {
    const list = $("channel-list");
    const sig = JSON.stringify(state.channels) + state.channel.id;
    if (list.dataset.sig === sig) return;
    list.dataset.sig = sig;
    list.replaceChildren(...state.channels.map((c) => {
      const item = el("li", { className: "channel-item" + (c.id === state.channel.id ? " active" : ""), testid: `channel-${c.id}` },
        el("span", { className: "hash", text: "#" }), c.name);
      if (c.id === state.channel.id) {
        item.tabIndex = 0;
        item.addEventListener("click", () => showPane("channel"));
        item.addEventListener("keydown", (event) => { if (event.key === "Enter") showPane("channel"); });
      }
      return item;
    }));
  }

  function renderFaults() {
    const toggle = $("faults-toggle");
    const available = state.faults !== null;
    toggle.disabled = !available || toggle.dataset.busy === "1";
    if (toggle.dataset.busy !== "1") toggle.checked = Boolean(state.faults);
    $("faults-state").textContent = state.faults ? "on" : "off";
    const row = toggle.closest(".switch-row");
    row.classList.toggle("on", Boolean(state.faults));
    // Without a fault switch in this demo, its controls are left out.
    document.querySelectorAll(".faults-control").forEach((node) => { node.hidden = !available; });
    document.querySelectorAll(".activity-control").forEach((node) => { node.hidden = !state.activity; });
  }

  // --- mail -------------------------------------------------------------------------------------------

  let mailSeen = null;
  let openMail = null;

  function renderMailCount() {
    const count = state.mail_count;
    $("mail-panel").hidden = count === null;
    if (count === null) return;
    $("mail-count").textContent = count ? String(count) : "";
    if (count !== mailSeen) {
      mailSeen = count;
      loadMailList();
    }
  }

  async function loadMailList() {
    const response = await fetch("/_page/mail");
    if (!response.ok) return;
    const { messages } = await response.json();
    $("mail-empty").hidden = messages.length > 0;
    $("mail-list").replaceChildren(...messages.map((mail) => {
      const item = el("li", { className: "mail-item", testid: `mail-${mail.id}`, tabindex: 0 },
        el("div", { className: "mail-subject", text: mail.subject || "(no subject)" }),
        el("div", { className: "mail-meta", text: `to ${[].concat(mail.to || []).join(", ")}` }),
        el("div", { className: "mail-date", text: mail.date ? String(mail.date) : "" }));
      item.addEventListener("click", () => showMail(mail.id));
      item.addEventListener("keydown", (event) => { if (event.key === "Enter") showMail(mail.id); });
      return item;
    }));
  }

  async function showMail(id) {
    const response = await fetch(`/_page/mail/${encodeURIComponent(id)}`);
    if (!response.ok) {
      notice("That email is no longer in the mailbox.");
      return;
    }
    const mail = await response.json();
    openMail = id;
    const view = $("mail-view");
    const head = el("header", { className: "mail-view-head" },
      el("h3", { text: mail.subject || "(no subject)" }),
      el("div", { className: "mail-meta", text: `From ${mail.from || ""}` }),
      el("div", { className: "mail-meta", text: `To ${[].concat(mail.to || []).join(", ")}` }));
    let body;
    if (mail.html) {
      // No scripts and an opaque origin; links open in a new tab.
      body = el("iframe", { className: "mail-frame", testid: "mail-body", sandbox: "allow-popups allow-popups-to-escape-sandbox", referrerpolicy: "no-referrer", title: mail.subject || "email" });
      body.srcdoc = '<base target="_blank">' + mail.html;
    } else {
      body = el("pre", { className: "mail-text", testid: "mail-body", text: mail.text || "" });
    }
    view.replaceChildren(head, body);
    view.hidden = false;
    $("mail-list").hidden = true;
    $("mail-empty").hidden = true;
    $("mail-back").hidden = false;
  }

  function closeMail() {
    openMail = null;
    $("mail-view").hidden = true;
    $("mail-view").replaceChildren();
    $("mail-list").hidden = false;
    $("mail-back").hidden = true;
    $("mail-empty").hidden = $("mail-list").children.length > 0;
  }

  // --- polling ----------------------------------------------------------------------------------------

  let polling = false;
  async function poll() {
    if (polling) return;
    polling = true;
    try {
      const response = await fetch("/_page/state", { cache: "no-store" });
      const text = await response.text();
      if (!response.ok) return;
      if (text === lastJson) return;
      lastJson = text;
      const next = JSON.parse(text);
      next.usersById = new Map(next.users.map((u) => [u.id, u]));
      next.usersSig = JSON.stringify(next.users);
      const first = state === null;
      state = next;
      render(false);
      document.body.dataset.version = String(next.version);
      if (first) loadActivity();
    } catch (error) {
      // The server may be restarting; the next poll tries again.
    } finally {
      polling = false;
    }
  }

  function start() {
    $("composer-form").addEventListener("submit", async (event) => {
      event.preventDefault();
      const box = $("composer");
      const text = box.value.trim();
      if (!text) return;
      box.disabled = true;
      stickToBottom = true;
      try {
        const answer = await post("/_page/command", { text });
        if (answer && answer.ok) box.value = "";
      } finally {
        box.disabled = false;
        box.focus();
        poll();
      }
    });
    const toggle = $("faults-toggle");
    toggle.addEventListener("change", async () => {
      toggle.dataset.busy = "1";
      try {
        await post("/_page/faults", { on: toggle.checked });
      } finally {
        toggle.dataset.busy = "0";
        lastJson = "";
        poll();
      }
    });
    $("mail-back").addEventListener("click", closeMail);
    const home = $("home-item");
    home.addEventListener("click", () => showPane("home"));
    home.addEventListener("keydown", (event) => { if (event.key === "Enter") showPane("home"); });
    $("person-switch").addEventListener("change", (event) => switchPerson(event.target.value));
    poll();
    setInterval(poll, POLL_MS);
    setInterval(loadActivity, ACTIVITY_MS);
  }

  start();
})();

() => {
  // Loaded once per page (Blocks.launch(js=...)).
  // Citation links in answers look like <a href="#src-T-N">. Clicking one opens that
  // source card in the sources panel beside the chat (no server round trip): the panel
  // holds every answer's sources, each card with id "src-T-N".
  if (window.__assistantUi) return;
  window.__assistantUi = true;

  function openSource(id) {
    const card = document.getElementById(id);
    if (!card) return false;
    const panel = card.closest(".sources") || document;
    const turn = card.closest("details.turn");
    if (turn) turn.open = true;
    panel.querySelectorAll("details.src").forEach((other) => {
      if (other !== card) other.open = false;
      other.classList.remove("active");
    });
    card.open = true;
    card.classList.add("active");
    card.classList.remove("flash");
    void card.offsetWidth; // restart the highlight animation
    card.classList.add("flash");
    // Scroll inside the panel only: the page (and the chat) stay where they are.
    const scroller = card.closest(".sources-scroll");
    if (scroller) {
      const top = card.getBoundingClientRect().top - scroller.getBoundingClientRect().top + scroller.scrollTop - 8;
      scroller.scrollTo({ top: top, behavior: "smooth" });
    } else {
      card.scrollIntoView({ block: "nearest" });
    }
    return true;
  }
  window.assistantOpenSource = openSource;

  // "Copy" under an answer: the answer and its references as plain text.
  function answerText(answer) {
    const text = answer.querySelector(".answer-text");
    const lines = [text ? text.innerText.trim() : ""];
    const refs = Array.from(answer.querySelectorAll(".refs li")).map((li) => {
      const ref = li.querySelector("a.ref");
      const code = li.querySelector('a[target="_blank"]');
      return (ref ? ref.innerText : li.innerText).trim() + (code ? " — code: " + code.href : "");
    });
    if (refs.length) lines.push("", "References", ...refs);
    return lines.join("\n");
  }

  function copyAnswer(link) {
    const answer = link.closest(".answer");
    if (!answer) return;
    const done = () => {
      const label = link.textContent;
      link.textContent = "Copied";
      setTimeout(() => (link.textContent = label), 1200);
    };
    navigator.clipboard.writeText(answerText(answer)).then(done, () => {});
  }

  // The chat's state while an answer runs. Each question gets a run id, sent with the
  // question and with Stop/Clear, so a Stop only ever stops the question it was meant
  // for (see assistant/ui/session.py). data-chat="busy" goes on <body> (tests and other
  // scripts read it) and on the input row: Gradio prefixes every custom CSS rule with
  // its container, so only an attribute inside the container can style the buttons.
  let currentRun = "";
  function setChatState(state) {
    document.body.dataset.chat = state;
    const row = document.getElementById("chat-input-row");
    if (row) row.dataset.chat = state;
  }
  window.assistantChatStart = () => {
    currentRun = Date.now().toString(36) + "-" + Math.random().toString(36).slice(2, 10);
    setChatState("busy");
    return currentRun;
  };
  window.assistantChatRun = () => currentRun;
  window.assistantChatIdle = () => setChatState("idle");

  // Library table: a click on a column header sorts by that column (ascending, then
  // descending on the next click). Gradio's Dataframe sorts only from each header's ⋮
  // menu, so the click opens that menu and picks the entry; other columns' sorts are
  // cleared first, so the table is sorted by the clicked column alone.
  const MENU_ASC = 0, MENU_DESC = 1, MENU_CLEAR = 2; // order of the header menu's entries

  function nextFrame() {
    return new Promise((resolve) => requestAnimationFrame(() => resolve()));
  }

  async function pickFromHeaderMenu(header, index) {
    const button = header.querySelector(".cell-menu-button");
    if (!button) return false;
    button.click();
    for (let i = 0; i < 20; i++) {
      await nextFrame();
      const items = document.querySelectorAll('[role="menu"] [role="menuitem"]');
      if (items.length > index) {
        items[index].click();
        await nextFrame();
        return true;
      }
    }
    return false;
  }

  function sortDirection(header) {
    const indicator = header.querySelector(".sort-indicator");
    if (!indicator) return null;
    return (indicator.getAttribute("aria-label") || "").toLowerCase().includes("desc") ? "desc" : "asc";
  }

  let sorting = false;
  async function sortByHeader(header) {
    if (sorting) return;
    sorting = true;
    try {
      await nextFrame(); // after Gradio's own header-click handler, which closes menus
      const table = header.closest("#library-table");
      const column = header.dataset.heading;
      const others = Array.from(table.querySelectorAll("th.sorted")).some((h) => h.dataset.heading !== column);
      const wanted = sortDirection(header) === "asc" ? MENU_DESC : MENU_ASC;
      if (others) await pickFromHeaderMenu(header, MENU_CLEAR);
      const fresh = table.querySelector(`th[data-heading="${column}"]`) || header;
      await pickFromHeaderMenu(fresh, wanted);
    } finally {
      sorting = false;
    }
  }

  document.addEventListener(
    "click",
    (event) => {
      const target = event.target;
      if (!target || !target.closest) return;
      const header = target.closest('#library-table th[role="columnheader"]');
      if (header && !target.closest(".cell-menu-button") && event.isTrusted) {
        sortByHeader(header);
        return;
      }
      const link = target.closest('a[href^="#src-"], a[href^="#copy-"]');
      if (!link) return;
      event.preventDefault();
      event.stopPropagation();
      const href = link.getAttribute("href");
      if (href.startsWith("#copy-")) copyAnswer(link);
      else openSource(href.slice(1));
    },
    true
  );
}

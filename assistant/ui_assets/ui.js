() => {
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

  document.addEventListener(
    "click",
    (event) => {
      const target = event.target;
      if (!target || !target.closest) return;
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

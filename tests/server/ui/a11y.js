// Basic accessibility checks run in the page by the browser tests (browser.py).
() => {
  const out = [];
  const hs = [...document.querySelectorAll('main h1, main h2, main h3, main h4')];
  if (document.querySelectorAll('main h1').length !== 1) out.push('not one h1');
  let last = 0;
  for (const h of hs) {
    const level = +h.tagName[1];
    if (level > last + 1) out.push(`heading ${h.tagName} "${h.textContent.trim()}" skips a level`);
    last = level;
  }
  for (const el of document.querySelectorAll('input, select, textarea')) {
    if (el.type === 'hidden') continue;
    const labelled = (el.id && document.querySelector(`label[for="${CSS.escape(el.id)}"]`))
      || el.closest('label') || el.getAttribute('aria-label') || el.getAttribute('aria-labelledby');
    if (!labelled) out.push(`input ${el.name || el.id || el.type} has no label`);
  }
  for (const el of document.querySelectorAll('button, a[href]')) {
    const name = (el.textContent || '').trim() || el.getAttribute('aria-label') || el.title;
    if (!name) out.push(`${el.tagName} ${el.outerHTML.slice(0, 80)} has no name`);
  }
  return out;
}

// Progressive enhancement: show the free slug the server would take for the name as you type.
(function () {
  var name = document.getElementById("name"), slug = document.getElementById("slug");
  var preview = document.getElementById("slug-preview"), timer = null;
  function show() {
    if (slug.value) { preview.textContent = slug.value; return; }
    if (!name.value.trim()) { slug.placeholder = "suggested from the name"; preview.textContent = "…"; return; }
    fetch("/welcome/slug-suggestion?name=" + encodeURIComponent(name.value), {credentials: "same-origin"})
      .then(function (r) { return r.json(); })
      .then(function (body) { if (!slug.value) { slug.placeholder = body.slug; preview.textContent = body.slug; } });
  }
  name.addEventListener("input", function () { clearTimeout(timer); timer = setTimeout(show, 200); });
  slug.addEventListener("input", show);
})();

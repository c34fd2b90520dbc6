// The console's shell: who is logged in, and which page the address (#/...) shows.

import { logout, session } from "./api.js";
import { clear, h, hideNotice, showError } from "./dom.js";
import { incidentPage } from "./incident.js";
import { flagsPage, incidentsPage, loginPage } from "./pages.js";

function shell(current, page) {
  document.getElementById("nav").hidden = !current;
  document.getElementById("who").hidden = !current;
  document.getElementById("who-name").textContent = current ? `${current.user.name} · ${current.user.role}` : "";
  for (const link of document.querySelectorAll("[data-nav]")) {
    link.classList.toggle("current", link.dataset.nav === page);
  }
}

async function render() {
  const [where, query = ""] = location.hash.replace(/^#\/?/, "").split("?");
  const parts = where.split("/").filter(Boolean);
  const page = parts[0] || "incidents";
  const current = session();
  const main = clear(document.getElementById("main"));
  shell(current, page);
  if (!current) {
    loginPage(main, render);
    return;
  }
  if (page === "login") {
    location.hash = "#/incidents";
    return;
  }
  main.setAttribute("aria-busy", "true");
  try {
    if (page === "incidents" && parts[1]) {
      await incidentPage(main, decodeURIComponent(parts[1]), render);
    } else if (page === "incidents") {
      await incidentsPage(main, new URLSearchParams(query));
    } else if (page === "flags") {
      await flagsPage(main, new URLSearchParams(query), render);
    } else {
      main.append(h("p", {}, "No such page. ", h("a", { href: "#/incidents" }, "See the incidents.")));
    }
  } catch (err) {
    showError(err);
    if (err.status === 401) {
      clear(main);
      shell(null, page);
      loginPage(main, render);
    }
  } finally {
    main.removeAttribute("aria-busy");
  }
}

document.getElementById("logout").addEventListener("click", () => {
  logout();
  hideNotice();
  location.hash = "#/login";
  render();
});
window.addEventListener("hashchange", () => {
  hideNotice();
  render();
});
render();

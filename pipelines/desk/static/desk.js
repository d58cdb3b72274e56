// The desk's one script, an enhancement only: files dragged onto the "Drop files" card are
// posted by its form, as if chosen with its file picker (which works without this script).
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const zone = document.querySelector("[data-drop]");
  const form = zone && zone.querySelector("form");
  const input = form && form.querySelector("input[type=file]");
  if (!input || typeof DataTransfer === "undefined") {
    return;
  }
  zone.classList.add("droppable");
  const over = (on) => (event) => {
    event.preventDefault();
    zone.classList.toggle("over", on);
  };
  zone.addEventListener("dragenter", over(true));
  zone.addEventListener("dragover", over(true));
  zone.addEventListener("dragleave", over(false));
  zone.addEventListener("drop", (event) => {
    over(false)(event);
    const files = event.dataTransfer && event.dataTransfer.files;
    if (!files || files.length === 0) {
      return;
    }
    input.files = files;
    form.requestSubmit();
  });
});

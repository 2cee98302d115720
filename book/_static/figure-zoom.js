// A click on a figure opens its full-size image: each image a cell drew (not an explorer frame,
// which its slider drives) becomes a link to its own file.
document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll(".cell_output img").forEach((img) => {
    if (img.closest("a, .widget-vbox, .jupyter-widgets")) return;
    const link = document.createElement("a");
    link.href = img.currentSrc || img.src;
    link.className = "figure-full-size";
    link.title = "Open the full-size image";
    img.replaceWith(link);
    link.appendChild(img);
  });
});

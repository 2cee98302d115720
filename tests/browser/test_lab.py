"""The notebook reader's path: JupyterLab started as the README says (``scripts/lab.py``) opens a
chapter's ``.md`` as a notebook, runs it top to bottom at ci scale in a fresh kernel, and the
chapter's live explorer redraws its figure after a slider moves.

Skips, saying why, where no Chromium is at hand; `.ci/run` installs it and runs this test.
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from .browser import ROOT, chromium, start_browser

# Every chapter with a live explorer (``live=True``), one per work.
CHAPTERS = ["book/gd/landscape.md", "book/dam/saddles.md", "book/hpt/k_only.md"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    if chromium() is None:
        pytest.skip("no Chromium and chromedriver: `apt-get install chromium chromium-driver` (.ci/run does)")
    pytest.importorskip("jupyterlab")
    port, token = _free_port(), secrets.token_hex(16)
    home = tmp_path_factory.mktemp("lab")
    env = {**os.environ, "DAMLIB_SCALE": "ci", "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
           "JUPYTERLAB_WORKSPACES_DIR": str(home / "workspaces")}
    log = open(home / "lab.log", "w")  # noqa: SIM115 (closed below)
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "scripts" / "lab.py"), "--no-browser", f"--port={port}",
         "--ServerApp.ip=127.0.0.1", f"--IdentityProvider.token={token}",
         "--LabApp.expose_app_in_browser=True", "--ServerApp.open_browser=False",
         f"--FileCheckpoints.checkpoint_dir={home / 'checkpoints'}",  # none in the repository
         *(["--allow-root"] if os.geteuid() == 0 else [])],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://localhost:{port}"
    for _ in range(120):
        try:
            urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=1)
            break
        except OSError:
            if proc.poll() is not None:
                break
            time.sleep(0.5)
    else:
        proc.terminate()
        pytest.fail(f"JupyterLab did not start; its log: {(home / 'lab.log').read_text()[-2000:]}")
    if proc.poll() is not None:
        pytest.fail(f"JupyterLab exited; its log: {(home / 'lab.log').read_text()[-2000:]}")
    driver = start_browser(home / "chromium")
    yield driver, url, token
    driver.quit()
    proc.terminate()
    proc.wait(30)
    log.close()


# The notebook panel of the chapter whose path is arguments[0].
PANEL = """
const app = window.jupyterapp;
const panel = app && Array.from(app.shell.widgets('main'))
  .find(w => w.context && w.context.path === arguments[0]);
"""
IDLE = PANEL + """
if (!panel || !panel.sessionContext || !panel.content) return null;
const kernel = panel.sessionContext.session && panel.sessionContext.session.kernel;
return {status: kernel ? kernel.status : 'none', cells: panel.content.widgets.length,
        factory: panel.node.classList.contains('jp-NotebookPanel') ? 'notebook' : panel.node.className,
        running: Array.from(panel.node.querySelectorAll('.jp-InputArea-prompt'))
                   .filter(p => p.textContent.includes('*')).length,
        tracebacks: Array.from(panel.node.querySelectorAll(
                      '.jp-RenderedText[data-mime-type="application/vnd.jupyter.error"]'))
                     .map(e => e.textContent.slice(0, 300))};
"""

# The chapter's live explorers: widget boxes holding sliders and an output area (the precomputed
# ones hold a stack of images instead); for each, the figure it shows.
LIVE = PANEL + """
return Array.from(panel.node.querySelectorAll('.widget-vbox')).filter(
  v => v.querySelector(':scope > .widget-output, :scope > .jupyter-widgets-output-area')
       && v.querySelector('.noUi-handle'));
"""
# Figure outputs: those with a PNG, those that also carry their data (damlib.plotting.figure_data),
# and the images JupyterLab rendered.
FIGURES = PANEL + """
let png = 0, data = 0;
for (const cell of panel.content.model.cells) {
  if (cell.type !== 'code') continue;
  for (let i = 0; i < cell.outputs.length; i++) {
    const bundle = cell.outputs.get(i).data || {};
    png += 'image/png' in bundle;
    data += 'image/png' in bundle && 'application/vnd.damlib.figure-data+json' in bundle;
  }
}
return {png: png, data: data, shown: panel.node.querySelectorAll('.jp-RenderedImage img').length};
"""
LIVE_FRAME = """
const img = arguments[0].querySelector('.widget-output img, .jupyter-widgets-output-area img');
return img ? img.src.length + ':' + img.src.slice(-64) : '';
"""


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_chapter_opens_as_notebook_and_live_explorer_redraws(lab, chapter):
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    driver, url, token = lab
    driver.get(f"{url}/lab/tree/{chapter}?token={token}")
    WebDriverWait(driver, 120).until(
        lambda d: (d.execute_script(IDLE, chapter) or {}).get("cells", 0) > 1,
        message=f"{chapter} did not open as a notebook in JupyterLab")
    state = driver.execute_script(IDLE, chapter)
    assert state["factory"] == "notebook", f"{chapter} opened as {state['factory']}, not as a notebook"
    WebDriverWait(driver, 120).until(lambda d: d.execute_script(IDLE, chapter)["status"] == "idle",
                                     message="the notebook's kernel did not start")
    # the command acts on the current notebook: make the chapter's current first
    driver.execute_script(PANEL + "app.shell.activateById(panel.id);"
                          "app.commands.execute('notebook:run-all-cells');", chapter)
    time.sleep(2)
    WebDriverWait(driver, 600, poll_frequency=1).until(
        lambda d: (s := d.execute_script(IDLE, chapter))["status"] == "idle" and s["running"] == 0,
        message=f"{chapter}: running all cells did not finish")
    state = driver.execute_script(IDLE, chapter)
    assert not state["tracebacks"], f"{chapter}: a cell failed in JupyterLab: {state['tracebacks'][0]}"

    figures = driver.execute_script(FIGURES, chapter)
    assert figures["data"] > 0 and figures["shown"] >= figures["png"], (
        f"{chapter}: of {figures['png']} figure outputs ({figures['data']} with their data), "
        f"JupyterLab shows {figures['shown']} images")

    explorers = driver.execute_script(LIVE, chapter)
    assert explorers, f"{chapter}: no live explorer rendered in the notebook"
    view = explorers[0]
    frame = driver.execute_script(LIVE_FRAME, view)
    assert frame, f"{chapter}: the live explorer shows no figure"
    handle = view.find_elements("css selector", ".noUi-handle")[0]
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", handle)
    at_end = handle.get_attribute("aria-valuenow") == handle.get_attribute("aria-valuemax")
    handle.send_keys(Keys.ARROW_LEFT if at_end else Keys.ARROW_RIGHT)
    WebDriverWait(driver, 120, poll_frequency=1).until(
        lambda d: d.execute_script(LIVE_FRAME, view) not in (frame, ""),
        message=f"{chapter}: the live explorer did not redraw after a slider moved")

"""The widget notebooks in a real browser: JupyterLab served headless on 127.0.0.1 as `ahri_lab` serves it, driven by
Playwright with the system's Chromium. Each widget test opens a notebook (checking JupyterLab does not mark it
changed), runs it through the UI, operates every control of its widgets as a person would, asserts that what is
shown changed, and saves screenshots; and other notebooks are opened to check that they are not marked changed
(every notebook carries the same metadata, which `90_layout` checks, so a sample stands for all).

    python -m pytest tests/test_widgets.py        # needs Chromium: apt-get install chromium (or AHRI_CHROMIUM=path)

Screenshots go to tests/screenshots/ (or $AHRI_SCREENSHOTS). The notebooks run in a copy of nbs/, never in place.
"""
import json, os, shutil, socket, subprocess, sys, tempfile, time, urllib.request
from pathlib import Path
import pytest
from playwright.sync_api import sync_playwright, expect
from ahri.widgets.lab import lab_command

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = os.environ.get('AHRI_CHROMIUM') or shutil.which('chromium') or '/usr/bin/chromium'
SHOTS = Path(os.environ.get('AHRI_SCREENSHOTS', ROOT / 'tests' / 'screenshots'))
ARGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
        '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage']
T = 120_000                                   # ms for one expectation on 2 loaded cores
SETTINGS = {'@jupyterlab/docmanager-extension:plugin': {'autosave': False},
            '@jupyterlab/notebook-extension:tracker': {'windowingMode': 'none'}}   # every cell in the DOM

def _free_port()->int:
    with socket.socket() as s: s.bind(('127.0.0.1', 0)); return s.getsockname()[1]

@pytest.fixture(scope='module')
def lab():
    "JupyterLab as `ahri_lab` starts it, on a copy of the notebooks (settings.ini beside them, so their nbdev_export cell writes into the copy)"
    if not Path(CHROMIUM).exists(): pytest.fail(f"no Chromium at {CHROMIUM}: apt-get install chromium, or set AHRI_CHROMIUM")
    tmp = Path(tempfile.mkdtemp()); shutil.copytree(ROOT / 'nbs', tmp / 'nbs'); shutil.copy(ROOT / 'settings.ini', tmp)
    port = _free_port(); url = f'http://127.0.0.1:{port}'
    argv, env = lab_command(tmp / 'nbs', tmp / 'lab', port, browser=False, token='', settings=SETTINGS, expose_app=True,
                            allow_root=os.geteuid() == 0)
    env.update(JUPYTER_RUNTIME_DIR=str(tmp / 'runtime'), JUPYTER_CONFIG_DIR=str(tmp / 'config'))
    log = open(tmp / 'lab.log', 'w')
    server = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        for _ in range(240):
            try: urllib.request.urlopen(f'{url}/api/status', timeout=2); break
            except OSError: time.sleep(0.5)
        else: pytest.fail(f"JupyterLab did not start: {(tmp / 'lab.log').read_text()[-2000:]}")
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            yield url, browser
            browser.close()
    finally:
        server.terminate(); server.wait(30); log.close(); shutil.rmtree(tmp, ignore_errors=True)

KERNEL_IDLE = """() => { const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;
  const k = w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel;
  return !!k && k.connectionStatus === 'connected' && k.status === 'idle'; }"""

CHANGED = """async () => { const w = window.jupyterapp.shell.currentWidget, m = w.context.model;
  if (!m.dirty) return null;
  const disk = (await window.jupyterapp.serviceManager.contents.get(w.context.path, {content: true})).content, now = m.toJSON();
  const canon = x => Array.isArray(x) ? '[' + x.map(canon).join(',') + ']' : x !== null && typeof x === 'object'
    ? '{' + Object.keys(x).filter(k => x[k] !== undefined).sort().map(k => JSON.stringify(k) + ':' + canon(x[k])).join(',') + '}' : JSON.stringify(x);
  const diff = [];
  if (canon(disk.metadata) !== canon(now.metadata)) diff.push('metadata: ' + canon(disk.metadata) + ' -> ' + canon(now.metadata));
  if (disk.cells.length !== now.cells.length) diff.push('cells: ' + disk.cells.length + ' -> ' + now.cells.length);
  now.cells.forEach((c, i) => { const d = disk.cells[i]; if (d && canon(d) !== canon(c))
    diff.push('cell ' + i + ': ' + canon(d).slice(0, 300) + ' -> ' + canon(c).slice(0, 300)); });
  return {path: w.context.path, open: Array.from(window.jupyterapp.shell.widgets('main')).map(x => x.title.label), diff: diff}; }"""

_pages = iter(range(10**6))
def open_notebook(browser, url:str, name:str):
    "A page with notebook `name` open and its kernel idle, in a workspace of its own (no tabs restored from other pages); JupyterLab must not consider it changed"
    page = browser.new_page(viewport={'width': 1500, 'height': 1100})
    page.goto(f'{url}/lab/workspaces/test{next(_pages)}/tree/{name}')
    page.wait_for_function(KERNEL_IDLE, timeout=T)
    time.sleep(1)                                            # let the kernel's language_info reach the model
    changed = page.evaluate(CHANGED)                         # what differs from the file on disk, if anything
    assert changed is None, f"{name} is marked changed on open: {changed}"
    return page

ERRORS = """() => window.jupyterapp.shell.currentWidget.content.widgets.filter(c => c.model.type === 'code')
  .flatMap(c => c.model.outputs.toJSON()).filter(o => o.output_type === 'error').map(o => o.ename + ': ' + o.evalue)"""

def run_all(page, timeout:int=900_000):
    "Run every cell through the UI and wait until all have run and the kernel is idle (or a cell raised: that fails the test)"
    done = """() => { const nb = window.jupyterapp.shell.currentWidget, k = nb.sessionContext.session.kernel;
      const cells = nb.content.widgets.filter(c => c.model.type === 'code' && c.model.sharedModel.getSource().trim());
      const failed = cells.some(c => c.model.outputs.toJSON().some(o => o.output_type === 'error'));
      return k.status === 'idle' && (failed || cells.every(c => c.model.executionCount !== null)); }"""
    started = """() => window.jupyterapp.shell.currentWidget.content.widgets.some(c => c.model.type === 'code' && c.model.executionCount !== null)
      || window.jupyterapp.shell.currentWidget.sessionContext.session.kernel.status !== 'idle'"""
    for _ in range(5):                                      # a command issued before the notebook is ready does nothing: issue it again
        page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
        try: page.wait_for_function(started, timeout=20_000, polling=500); break
        except Exception: continue
    page.wait_for_function(done, timeout=timeout, polling=1000)
    errors = page.evaluate(ERRORS)
    assert not errors, errors

def widget(page, has_button:str):
    "The outermost widget box that holds a button labelled `has_button`"
    return page.locator('.jp-OutputArea-output .widget-vbox, .jp-OutputArea-output .widget-hbox').filter(
        has=page.get_by_role('button', name=has_button)).first

def changes(locator, attr:str='src'):
    "A function that waits until `locator`'s attribute differs from what it is now"
    before = locator.get_attribute(attr)
    return lambda: expect(locator).not_to_have_attribute(attr, before, timeout=T)

def shot(locator, name:str):
    SHOTS.mkdir(parents=True, exist_ok=True); locator.screenshot(path=str(SHOTS / name))

@pytest.fixture
def page_of(lab, request):
    "open(name) -> a page with that notebook open; if the test fails, a full-page screenshot FAILED_<test>.png is saved"
    url, browser = lab; pages = []
    def open_(name:str): pages.append(open_notebook(browser, url, name)); return pages[-1]
    yield open_
    failed = getattr(request.node, 'rep_call', None) is not None and request.node.rep_call.failed
    for p in pages:
        if failed and not p.is_closed(): SHOTS.mkdir(parents=True, exist_ok=True); p.screenshot(path=str(SHOTS / f'FAILED_{request.node.name}.png'), full_page=True)
        if not p.is_closed(): p.close()


def slider_key(page, box, i:int=0, times:int=1, key:str='ArrowRight', at:str|None=None):
    """Move the i-th slider of `box` with the keyboard, as a person would with the arrow keys; with `at`, first wait
    until its readout shows `at` (a person presses a key on the slider they see: the kernel's last change to the slider
    can reach the page after other widgets' changes, and a key pressed before it lands is lost)"""
    if at is not None: expect(box.locator('.widget-readout').nth(i)).to_have_text(at, timeout=T)
    handle = box.locator('.noUi-handle').nth(i); handle.focus()
    for _ in range(times): page.keyboard.press(key)

def test_play(page_of):
    page = page_of('80_play.ipynb'); run_all(page)
    box = widget(page, 'right (d →)'); expect(box).to_be_visible(timeout=T)
    img, status = box.locator('img').first, box.locator('.widget-html').first
    moved = changes(img); box.get_by_role('button', name='right (d →)', exact=True).click(); moved()
    expect(status).to_contain_text('action 7', timeout=T); expect(status).to_contain_text('frames/s', timeout=T)
    keys = box.locator('input[placeholder="click here, then type keys"]'); keys.click()
    moved = changes(img); page.keyboard.press('a'); moved(); expect(status).to_contain_text('action 1', timeout=T)
    box.locator('select').select_option('2'); expect(status).to_contain_text('K set to 2', timeout=T)   # the notebook left it at 16
    moved = changes(img); box.get_by_role('button', name='no-op', exact=False).first.click(); moved()
    expect(status).to_contain_text('K=2', timeout=T)
    shot(box, 'play_coinrun.png')
    moved = changes(img); box.get_by_role('button', name='reset to real frames').click(); moved()
    expect(status).to_contain_text('real frames', timeout=T)
    cont = widget(page, 'step'); cimg, cstatus = cont.locator('img').first, cont.locator('.widget-html').first
    ckeys = cont.locator('input[placeholder="click here, then type keys"]'); ckeys.click()
    moved = changes(cimg); page.keyboard.press('d'); moved(); expect(cstatus).to_contain_text('action [1.0, 0.0]', timeout=T)
    slider_key(page, cont, 1, 3)                          # a[1] to 0.3
    moved = changes(cimg); cont.get_by_role('button', name='step').click(); moved()
    expect(cstatus).to_contain_text('0.3', timeout=T)
    shot(cont, 'play_pixelmaze.png'); page.close()

def test_rollouts(page_of):
    page = page_of('81_rollouts.ipynb'); run_all(page)
    box = page.locator('.jp-OutputArea-output .widget-vbox').filter(has_text='last context frame').first
    expect(box).to_be_visible(timeout=T)
    info = box.locator('.widget-html').filter(has_text='imagined').first
    expect(info).to_contain_text('step 6 of 6', timeout=T)             # where the notebook's own checks left it
    frame = box.locator('img').nth(3)                                 # the tokenizer's frame
    moved = changes(frame); slider_key(page, box, 0); moved()       # window 1 -> 2
    expect(info).to_contain_text('step 6 of 6', timeout=T)
    table = box.locator('table').first; before = table.inner_text()
    slider_key(page, box, 1, 1, 'ArrowLeft', at='6')                 # the step slider: 6 -> 5
    expect(info).to_contain_text('step 5 of 6', timeout=T)
    expect(table).to_contain_text('PSNR @5', timeout=T)               # the table arrives after the caption: wait for it
    assert table.inner_text() != before and ('ST-LPIPS' in table.inner_text() or 'LPIPS' in table.inner_text())
    shot(box, 'rollouts.png'); page.close()

def test_plans(page_of):
    page = page_of('82_plans.ipynb'); run_all(page)
    pe = widget(page, 'plan'); expect(pe).to_be_visible(timeout=T)
    info, img = pe.locator('.widget-html').last, pe.locator('img').first
    free = pe.locator('button[title^="cell ("]:not([disabled])')
    a, b = free.first, free.last
    a.click(); expect(a).to_have_css('background-color', 'rgb(44, 160, 44)', timeout=T)      # the start: green
    b.click(); expect(b).to_have_css('background-color', 'rgb(214, 39, 40)', timeout=T)      # the goal: red
    pe.locator('select').select_option(label='stage 1 + stage 2')
    guide = pe.get_by_role('checkbox', name='wall guidance')
    if guide.is_checked(): guide.uncheck()
    moved = changes(img); pe.get_by_role('button', name='plan').click(); moved()
    expect(info).to_contain_text('stage 2', timeout=T)
    moved = changes(img); slider_key(page, pe, 1, 1, 'Home', at='10'); moved()              # the plan's 10 DDIM steps + stage 2
    expect(info).to_contain_text('DDIM step 1/10', timeout=T)
    shot(pe, 'plans_maze.png')
    guide.check(); moved = changes(img); pe.get_by_role('button', name='plan').click(); moved()
    expect(info).to_contain_text('wall guidance', timeout=T)
    moved = changes(img); pe.get_by_role('button', name='new maze').click(); moved()
    pe.locator('input[placeholder^="maze file"]').fill('no_such_mazes.npz'); pe.get_by_role('button', name='load').click()
    expect(info).to_contain_text('no such maze file', timeout=T)
    pv = widget(page, 'run episode'); pinfo, pimg = pv.locator('.widget-html').last, pv.locator('img').first
    pfree = pv.locator('button[title^="cell ("]:not([disabled])')
    pfree.first.click(); pfree.last.click()
    pv.get_by_role('button', name='run episode').click()
    expect(pinfo).to_contain_text('reach', timeout=T); expect(pinfo).to_contain_text('frame 0', timeout=T)
    moved = changes(pimg); slider_key(page, pv, 0, 2); moved()
    expect(pinfo).to_contain_text('frame 2', timeout=T)
    shot(pv, 'plans_pixelmaze.png'); page.close()

@pytest.mark.parametrize('name', ['index.ipynb', '00_core.ipynb', '36_play.ipynb', '74_evaluate.ipynb', '90_layout.ipynb'])
def test_not_changed_on_open(lab, name):
    "Opened and its kernel started, JupyterLab finds nothing to change (every notebook has the same metadata: `90_layout`)"
    url, browser = lab
    page = open_notebook(browser, url, name)
    page.evaluate("() => window.jupyterapp.shell.currentWidget.sessionContext.shutdown()"); page.close()

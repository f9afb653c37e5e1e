"""nbdev's notebook processing for the docs -- what `nbdev_proc_nbs` runs before Quarto renders -- on every notebook.

`nbdev_proc_nbs` itself cannot run offline (it first installs Quarto), so this runs the same processors
(`nbdev.processors.FilterDefaults`, through `nbdev.serve_drv.exec_nb`) on each notebook in a fresh process, and
reports every notebook that fails: such a notebook would break `nbdev_docs` wherever Quarto exists.
Usage: python .ci/docs_check.py [NOTEBOOK ...]   (default: every notebook in nbs/)
"""
import os, subprocess, sys, tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

def process(nb:str):
    "Process one notebook for the docs; None, or the error"
    from nbdev.serve_drv import exec_nb
    from nbdev.processors import FilterDefaults
    os.chdir(Path(nb).parent); os.environ['IN_TEST'] = '1'
    try: exec_nb(Path(nb).resolve(), Path(tempfile.mkdtemp()) / Path(nb).name, FilterDefaults)
    except Exception as e:
        cause = e.__cause__ or e.__context__
        return f"{e}".strip().splitlines()[0] + (f" -- {type(cause).__name__}: {cause}" if cause else '')
    return None

def in_fresh_process(nb:str):
    "`process(nb)` in a new Python (as nbdev does: one notebook's kernel state never leaks into another's)"
    r = subprocess.run([sys.executable, __file__, '--one', nb], capture_output=True, text=True)
    return None if r.returncode == 0 else (r.stdout.strip().splitlines() or r.stderr.strip().splitlines() or ['failed'])[-1]

if __name__ == '__main__':
    if sys.argv[1:2] == ['--one']:
        err = process(sys.argv[2])
        if err: print(err)
        sys.exit(1 if err else 0)
    root = Path(__file__).resolve().parent.parent
    nbs = [str(Path(a).resolve()) for a in sys.argv[1:]] or sorted(str(p) for p in (root / 'nbs').glob('*.ipynb') if not p.name.startswith('_'))
    with ThreadPoolExecutor(int(os.environ.get('DOCS_CHECK_WORKERS', 2))) as ex:
        errors = {nb: err for nb, err in zip(nbs, ex.map(in_fresh_process, nbs)) if err}
    for nb, err in errors.items(): print(f"docs: {Path(nb).name}: {err}", file=sys.stderr)
    print(f"docs: nbdev's processing ran on {len(nbs) - len(errors)} of {len(nbs)} notebooks")
    sys.exit(1 if errors else 0)

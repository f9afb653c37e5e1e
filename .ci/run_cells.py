"""Run a notebook as `nbdev_test` does, plus the cells of some flags (`#| cuda`, `#| slow`), and keep what those cells
showed, so that their stored outputs come from a real run made elsewhere (a lent GPU: `.ci/gpu_check`).

    python .ci/run_cells.py run NB.ipynb[:ID,ID...] --flags cuda --out cells.json [--budget SECONDS]
    python .ci/run_cells.py merge cells.json...       # here: the outputs into the notebooks' cells

`run` executes every unflagged code cell in order (the notebook's own set-up and tests) and the flagged cells chosen
(all of them, or the IDs given), each timed; a failing cell's traceback is kept as its output and the run goes on.
Flagged cells not reached within `--budget` seconds are recorded as not run. `merge` stores a flagged cell's outputs
where the cell ran without an error and the notebook's cell still has the source that ran (a hash of it); every
other cell is left alone.
"""
import argparse, hashlib, json, os, re, sys, time, traceback
from pathlib import Path

def directives(src:str)->set: return {m.group(1).rstrip(':') for m in re.finditer(r'^#\|\s*([\w-]+:?)', src, re.M)}
def skipped(src:str)->bool: return bool(re.search(r'^#\|\s*eval:\s*false', src, re.M)) or 'nbdev_export' + '(' in src
def digest(src:str)->str: return hashlib.sha256(src.encode()).hexdigest()[:16]

def run(spec:str, flags:set, out:Path, budget:float):
    from execnb.nbio import read_nb
    from execnb.shell import CaptureShell
    path, _, ids = spec.partition(':'); path = Path(path).resolve(); ids = set(filter(None, ids.split(',')))
    nb, start, res = read_nb(path), time.time(), {}
    os.environ['IN_TEST'] = '1'                                              # as nbdev_test runs a notebook
    os.chdir(path.parent); sh = CaptureShell(path)
    for cell in nb.cells:
        if cell.cell_type != 'code' or skipped(cell.source): continue
        d = directives(cell.source); flagged = d & flags
        if d & {'slow', 'cuda'} and not (flagged and (not ids or cell.id in ids)): continue
        if flagged and time.time() - start > budget:
            res[cell.id] = {'sha': digest(cell.source), 'status': 'not run (budget)'}; continue
        t0 = time.time(); sh.cell(cell); secs = round(time.time() - t0, 1)
        status = 'ok' if sh.exc is None else f'{type(sh.exc).__name__}: {sh.exc}'[:300]
        print(f"{path.name} {cell.id}{' [' + ','.join(sorted(flagged)) + ']' if flagged else ''}: {status} ({secs} s)", flush=True)
        if flagged:
            res[cell.id] = {'sha': digest(cell.source), 'status': status, 'seconds': secs, 'outputs': cell.outputs}
            out.write_text(json.dumps({path.name: res}, indent=1, default=str))    # after each one: a killed run keeps what ran
        elif sh.exc is not None: print(''.join(traceback.format_exception(sh.exc))[-3000:], flush=True)
    out.write_text(json.dumps({path.name: res}, indent=1, default=str))

def merge(files:list):
    nbs = Path(__file__).resolve().parent.parent / 'nbs'
    for f in files:
        for name, cells in json.loads(Path(f).read_text()).items():
            p = nbs / name; nb = json.loads(p.read_text())
            for cell in nb['cells']:
                r = cells.get(cell.get('id'))
                if r is None: continue
                src = ''.join(cell['source'])
                if r['sha'] != digest(src): print(f"{name} {cell['id']}: its source changed since the run; left alone"); continue
                if r['status'] != 'ok': print(f"{name} {cell['id']}: {r['status']}; left alone"); continue
                cell['outputs'], cell['execution_count'] = r['outputs'], None
                print(f"{name} {cell['id']}: {r['status']} ({r['seconds']} s), outputs stored")
            p.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + '\n')

if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest='cmd', required=True)
    r = sub.add_parser('run', help='run a notebook with some flagged cells; write what they showed')
    r.add_argument('notebook', help='NB.ipynb, or NB.ipynb:ID,ID to run only those flagged cells')
    r.add_argument('--flags', nargs='+', default=['cuda'], help='flags whose cells run (default: cuda)')
    r.add_argument('--out', required=True, help='the JSON file to write')
    r.add_argument('--budget', type=float, default=float('inf'), help='seconds after which no further flagged cell starts')
    m = sub.add_parser('merge', help="store the outputs of a run's flagged cells in the notebooks here")
    m.add_argument('files', nargs='+')
    a = ap.parse_args()
    if a.cmd == 'run': run(a.notebook, set(a.flags), Path(a.out).resolve(), a.budget)
    else: merge(a.files)

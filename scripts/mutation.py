"""Sampled mutation scores: the parts of ``make mutation`` that cosmic-ray does not do itself.

    python scripts/mutation.py sample SESSION.sqlite N [--seed S]   keep a seeded random N of the pending mutants
    python scripts/mutation.py score NAME SESSION.sqlite            counts, score and its Wilson 95% interval
    python scripts/mutation.py survivors NAME SESSION.sqlite        the survivors not listed as equivalent
    python scripts/mutation.py retest NAME SESSION.sqlite           run the survivors again (after new tests)
    python scripts/mutation.py table                                the score table of docs/testing.md

Why sample: a module of 1,100 mutants at 5-20 s each is a day on two cores, while 150 drawn at random give
the score within about ±5 points. The draw is seeded per module (``--seed`` and the module's path), over the
mutants sorted by place and operator, so the same tree and seed always draw the same mutants.

A survivor that changes no behaviour (an *equivalent* mutant) is listed with its reason in
``docs/data/mutation/equivalents.toml``, matched by module, operator and the lines its diff removes and adds
(not line numbers, which move); a line that stands in several places also names a ``context`` line of
the diff that tells them apart. The score is killed / (killed + survived - equivalent); incompetent mutants
(the mutated module does not import) and skipped ones do not count. The interval is statsmodels' Wilson
interval for that proportion.

After tests are added for the survivors, ``retest`` forgets the survivors' outcomes so that the next
``make mutation`` runs exactly those mutants again against the new tests (``make mutation RETEST=1``). The
score before that is kept as ``first_pass`` in the module's JSON: the first pass measures the suite as it
was, the second what the new tests added, and both are shown.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "docs" / "data" / "mutation"
EQUIVALENTS = DATA / "equivalents.toml"
TABLE_START, TABLE_END = "<!-- mutation: scores -->", "<!-- /mutation -->"


def sample(session: Path, n: int, seed: int) -> tuple[int, int]:
    """Skip all but a seeded random ``n`` of the session's pending mutants; (kept, skipped)."""
    from cosmic_ray.work_db import WorkDB, use_db
    from cosmic_ray.work_item import WorkerOutcome, WorkResult

    with use_db(str(session), WorkDB.Mode.open) as db:
        pending = sorted(
            db.pending_work_items,
            key=lambda item: [
                (str(m.module_path), m.start_pos, m.end_pos, m.operator_name, m.occurrence) for m in item.mutations
            ],
        )
        if len(pending) <= n:
            return len(pending), 0
        module = str(pending[0].mutations[0].module_path)
        keep = set(random.Random(f"{seed}:{module}").sample(range(len(pending)), n))
        drop = [item.job_id for i, item in enumerate(pending) if i not in keep]
        db.set_multiple_results(drop, WorkResult(output="Not sampled", worker_outcome=WorkerOutcome.SKIPPED))
    return n, len(drop)


def changed_lines(diff: str) -> tuple[list[str], list[str]]:
    """The lines a unified diff removes and adds, stripped of their marker and indentation."""
    lines = [line for line in (diff or "").splitlines() if not line.startswith(("---", "+++"))]
    removed = [x[1:].strip() for x in lines if x.startswith("-")]
    added = [x[1:].strip() for x in lines if x.startswith("+")]
    return [x for x in removed if x], [x for x in added if x]  # a blank line the diff carries says nothing


def load_equivalents() -> list[dict]:
    if not EQUIVALENTS.exists():
        return []
    return tomllib.loads(EQUIVALENTS.read_text())["equivalent"]


def is_equivalent(name: str, operator: str, diff: str, equivalents: list[dict]) -> dict | None:
    removed, added = changed_lines(diff)
    for entry in equivalents:
        key = (entry["module"], entry["operator"], entry["removed"], entry["added"])
        same = key == (name, operator, removed, added)
        if same and entry.get("context", "") in (diff or ""):  # context: which place of a line that stands in several
            return entry
    return None


def score(name: str, session: Path) -> dict:
    """Counts, the score over non-equivalent mutants and its Wilson 95% interval, and each survivor."""
    from cosmic_ray.work_db import WorkDB, use_db
    from cosmic_ray.work_item import TestOutcome, WorkerOutcome
    from statsmodels.stats.proportion import proportion_confint

    equivalents = load_equivalents()
    counts = {"killed": 0, "survived": 0, "equivalent": 0, "incompetent": 0, "skipped": 0, "pending": 0}
    survivors, module = [], ""
    with use_db(str(session), WorkDB.Mode.open) as db:
        counts["pending"] = sum(1 for _ in db.pending_work_items)
        for item, result in db.completed_work_items:
            mutation = item.mutations[0]
            module = str(mutation.module_path)
            if result.worker_outcome == WorkerOutcome.SKIPPED:
                counts["skipped"] += 1
            elif result.test_outcome == TestOutcome.KILLED:
                counts["killed"] += 1
            elif result.test_outcome == TestOutcome.SURVIVED:
                entry = is_equivalent(name, mutation.operator_name, result.diff, equivalents)
                counts["equivalent" if entry else "survived"] += 1
                survivors.append(
                    {
                        "line": mutation.start_pos[0],
                        "operator": mutation.operator_name,
                        "diff": changed_lines(result.diff),
                        "equivalent": entry["why"] if entry else None,
                    }
                )
            else:
                counts["incompetent"] += 1
    counted = counts["killed"] + counts["survived"]
    low, high = proportion_confint(counts["killed"], counted, alpha=0.05, method="wilson") if counted else (0.0, 1.0)
    previous = DATA / f"{name}.json"
    first = json.loads(previous.read_text()).get("first_pass") if previous.exists() else None
    return {
        "first_pass": first,
        "name": name,
        "module": module,
        **counts,
        "score": counts["killed"] / counted if counted else None,
        "wilson95": [round(low, 4), round(high, 4)],
        "survivors": sorted(survivors, key=lambda s: s["line"]),
    }


def retest(name: str, session: Path) -> int:
    """Forget the outcomes of the survivors not listed as equivalent (keeping the first pass's score); how many
    will run again."""
    import sqlite3

    out = DATA / f"{name}.json"
    if out.exists():
        stored = json.loads(out.read_text())
        if not stored.get("first_pass"):
            keep = ("killed", "survived", "equivalent", "incompetent", "score", "wilson95")
            stored["first_pass"] = {k: stored[k] for k in keep}
            out.write_text(json.dumps(stored, indent=1) + "\n")
    from cosmic_ray.work_db import WorkDB, use_db
    from cosmic_ray.work_item import TestOutcome

    equivalents = load_equivalents()
    with use_db(str(session), WorkDB.Mode.open) as db:
        again = [
            item.job_id
            for item, result in db.completed_work_items
            if result.test_outcome == TestOutcome.SURVIVED
            and not is_equivalent(name, item.mutations[0].operator_name, result.diff, equivalents)
        ]
    with sqlite3.connect(session) as db:  # cosmic-ray has no call that forgets a result
        db.executemany("DELETE FROM work_results WHERE job_id = ?", [(job,) for job in again])
    return len(again)


def specs() -> dict[str, tuple[str, list[str]]]:
    """The Makefile's MUTATION_SPECS: each module's name -> (its file, the tests run against its mutants)."""
    text = (REPO / "Makefile").read_text()
    block = text.split("MUTATION_SPECS = \\\n", 1)[1].split("\n\n", 1)[0].split("\n#", 1)[0]
    out = {}
    for line in block.splitlines():
        name, module, tests = line.strip().rstrip("\\").strip().split(":")
        out[name] = (module, tests.split(","))
    return out


def table() -> str:
    """The markdown table of every module's stored score (docs/data/mutation/NAME.json) and the tests run."""
    spec = specs()
    rows = [
        "| module | file | tests | sampled | first pass | killed | survived | equivalent | incompetent "
        "| score (95% Wilson) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for path in sorted(DATA.glob("*.json")):
        r = json.loads(path.read_text())
        ran = r["killed"] + r["survived"] + r["equivalent"] + r["incompetent"]
        pct = "n/a" if r["score"] is None else f"{100 * r['score']:.1f}%"
        low, high = r["wilson95"]
        done = "" if not r["pending"] else f" ({r['pending']} not run)"
        first = r.get("first_pass") or r
        first_pct = "n/a" if first["score"] is None else f"{100 * first['score']:.1f}%"
        tests = ", ".join(f"`{t.removeprefix('tests/')}`" for t in spec.get(r["name"], ("", []))[1])
        rows.append(
            f"| {r['name']} | `{r['module']}` | {tests} | {ran}{done} | {first_pct} | {r['killed']} | {r['survived']} "
            f"| {r['equivalent']} "
            f"| {r['incompetent']} | {pct} ({100 * low:.1f}–{100 * high:.1f}) |"
        )
    return "\n".join(rows)


def table_problem(doc: Path) -> str | None:
    """Why ``doc``'s score table differs from the stored scores, or None."""
    text = doc.read_text()
    if TABLE_START not in text:
        return None
    body = text.split(TABLE_START, 1)[1].split(TABLE_END, 1)[0].strip()
    if body != table():
        return f"{doc.name}: the mutation scores differ from docs/data/mutation/ (scripts/mutation.py table --write)"
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("sample")
    p.add_argument("session", type=Path)
    p.add_argument("n", type=int)
    p.add_argument("--seed", type=int, default=0)
    p = sub.add_parser("score")
    p.add_argument("name")
    p.add_argument("session", type=Path)
    p.add_argument("--out", type=Path, help="Write the score as JSON here (docs/data/mutation/NAME.json).")
    p = sub.add_parser("survivors")
    p.add_argument("name")
    p.add_argument("session", type=Path)
    p = sub.add_parser("retest")
    p.add_argument("name")
    p.add_argument("session", type=Path)
    p = sub.add_parser("table")
    p.add_argument("--write", action="store_true", help="Rewrite docs/testing.md's table in place.")
    args = parser.parse_args()
    if args.command == "sample":
        if args.n < 1:
            parser.error("N must be at least 1")
        kept, skipped = sample(args.session, args.n, args.seed)
        print(f"sampled {kept} mutants (seed {args.seed}); {skipped} skipped as not sampled")
    elif args.command == "score":
        result = score(args.name, args.session)
        if args.out:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(result, indent=1) + "\n")
        pct = "n/a" if result["score"] is None else f"{100 * result['score']:.1f}%"
        low, high = result["wilson95"]
        print(
            f"{args.name}: {result['killed']} killed, {result['survived']} survived, "
            f"{result['equivalent']} equivalent, {result['incompetent']} incompetent, "
            f"{result['pending']} pending: score {pct} "
            f"(95% Wilson {100 * low:.1f}-{100 * high:.1f})"
        )
    elif args.command == "survivors":
        for s in score(args.name, args.session)["survivors"]:
            if not s["equivalent"]:
                removed, added = (" | ".join(lines) for lines in s["diff"])
                print(f"line {s['line']} {s['operator']}\n  - {removed}\n  + {added}")
    elif args.command == "retest":
        print(f"{args.name}: {retest(args.name, args.session)} survivors will run again")
    else:
        if args.write:
            doc = REPO / "docs" / "testing.md"
            head, rest = doc.read_text().split(TABLE_START, 1)
            doc.write_text(f"{head}{TABLE_START}\n{table()}\n{TABLE_END}{rest.split(TABLE_END, 1)[1]}")
        else:
            print(table())
    sys.exit(0)


if __name__ == "__main__":
    main()

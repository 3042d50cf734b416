"""File sizes (lines) as a budget: no source file over 800 lines unless ARCHITECTURE.md lists it
with its reason. ``python tests/test_sizes.py`` prints the report (pytest shows it with -s)."""
import collections
import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[1]
LIMIT = 800
REPORT_FROM = 500
SUFFIXES = (".py", ".pyx", ".pxd", ".h")
TIERS = (  # (tier, path prefix), first match wins
    ("tier 2 ops/autograd", ("dlcore/ops/", "dlcore/autograd.py", "dlcore/tensor.py", "dlcore/_tree.py")),
    ("tier 1 api", ("dlcore/",)),
    ("tier 3 kernels", ("kernels/",)),
    ("benchmarks", ("benchmarks/",)),
)


def source_sizes():
    """{path relative to the repo: line count} for the budgeted files (kernels and benchmarks
    once, not again through their dlcore/ symlinks; build outputs excluded)."""
    sizes = {}
    for top in ("dlcore", "kernels", "benchmarks"):
        for path in (ROOT / top).rglob("*"):
            rel = path.relative_to(ROOT).as_posix()
            if (path.suffix not in SUFFIXES or not path.is_file() or "__pycache__" in rel or "/build/" in rel
                    or rel.startswith(("dlcore/kernels/", "dlcore/benchmarks/"))):
                continue
            with open(path, "rb") as f:
                sizes[rel] = sum(1 for _ in f)
    return sizes


def justified():
    """{path: reason} from the "Files allowed over 800 lines" list in ARCHITECTURE.md."""
    text = (ROOT / "ARCHITECTURE.md").read_text()
    section = text.split("Files allowed over 800 lines:", 1)
    assert len(section) == 2, "ARCHITECTURE.md has no 'Files allowed over 800 lines:' list"
    entries = {}
    for line in section[1].splitlines():
        if not line.strip():
            if entries:
                break
            continue
        match = re.match(r"- `([^`]+)`: (\S.*)$", line.strip())
        if match is None:
            break
        entries[match.group(1)] = match.group(2)
    return entries


def tier_of(path):
    return next(tier for tier, prefixes in TIERS if path.startswith(prefixes))


def report(sizes):
    lines = [f"files over {REPORT_FROM} lines:"]
    lines += [f"  {n:5d}  {p}" for p, n in sorted(sizes.items(), key=lambda kv: -kv[1]) if n > REPORT_FROM]
    per_tier = collections.defaultdict(lambda: [0, 0])
    for path, n in sizes.items():
        per_tier[tier_of(path)][0] += 1
        per_tier[tier_of(path)][1] += n
    lines.append("per tier (files, lines):")
    lines += [f"  {tier:22s} {files:4d} {total:7d}" for tier, (files, total) in sorted(per_tier.items())]
    return "\n".join(lines)


def test_no_file_over_the_limit_unless_justified():
    sizes = source_sizes()
    print(report(sizes))
    allowed = justified()
    over = sorted(p for p, n in sizes.items() if n > LIMIT and p not in allowed)
    assert not over, (f"over {LIMIT} lines: {[(p, sizes[p]) for p in over]}; split them by responsibility, or list "
                      "them with a reason under 'Files allowed over 800 lines:' in ARCHITECTURE.md")


def test_the_justified_list_is_current():
    sizes = source_sizes()
    for path, reason in justified().items():
        assert path in sizes, f"ARCHITECTURE.md allows {path} over {LIMIT} lines, but there is no such file"
        assert sizes[path] > LIMIT, (f"ARCHITECTURE.md allows {path} over {LIMIT} lines, but it has "
                                     f"{sizes[path]}: remove it from the list")
        assert len(reason) > 10, f"{path}: give the reason it stays over {LIMIT} lines"


def test_the_report_covers_every_tier():
    sizes = source_sizes()
    assert any(p.startswith("kernels/") and p.endswith(".pyx") for p in sizes)
    assert not any(p.startswith("dlcore/kernels/") for p in sizes)
    text = report(sizes)
    for tier, _ in TIERS:
        assert tier in text


if __name__ == "__main__":
    print(report(source_sizes()))

#!/usr/bin/env python3
"""report.py OUT_DIR: turn OUT/raw.jsonl + OUT/meta.json (+ manifest/*.verify.json)
into OUT/results.json and print the comparison table.

Every ratio is BASE / OTHER, BASE being the first tool of --tools:
  MB/s        > 1: base is that many times faster
  RSS, CPU s  < 1: base uses less
  repo bytes, growth  < 1: base stores less
"""
import json
import os
import sys

PHASES = ["init", "backup1", "backup2", "backup3", "restore"]
PHASE_TITLE = {
    "init": "init",
    "backup1": "backup1 (first, full)",
    "backup2": "backup2 (nothing changed)",
    "backup3": "backup3 (after mutate)",
    "restore": "restore (latest, full)",
}
MB = 1e6
MiB = 1 << 20


def load(out):
    with open(os.path.join(out, "meta.json")) as f:
        meta = json.load(f)["meta"]
    res = {}
    with open(os.path.join(out, "raw.jsonl")) as f:
        for line in f:
            line = line.strip()
            if line:
                r = json.loads(line)
                res.setdefault(r["tool"], {})[r["phase"]] = r
    return meta, res


def derive(meta, res):
    """Add MB/s, RSS MiB, CPU s, repo growth and verification to each record."""
    for tool, phases in res.items():
        prev_repo = 0
        for ph in PHASES:
            r = phases.get(ph)
            if r is None:
                continue
            s = r.get("seconds")
            ok = r["exit"] in (0,)
            r["ok"] = ok
            if s is not None and ph != "init":
                r["mb_per_s"] = r["src_bytes"] / MB / s if s > 0 else None
            if r.get("rss_kib") is not None:
                r["rss_mib"] = r["rss_kib"] / 1024
            if r.get("user_s") is not None:
                r["cpu_s"] = r["user_s"] + r["sys_s"]
            if ph != "restore":
                r["repo_growth_bytes"] = r["repo_bytes"] - prev_repo
                prev_repo = r["repo_bytes"]
            if ph == "restore":
                vf = os.path.join(meta["out"], "manifest", tool + ".verify.json")
                if os.path.exists(vf):
                    with open(vf) as f:
                        v = json.load(f)
                    r["verify"] = {
                        "data_differences": v["data_differences"],
                        "metadata_differences": v["metadata_differences"],
                        "metadata": {k: x["count"] for k, x in v["metadata"].items()},
                        "data": {k: x["count"] for k, x in v["data"].items()},
                    }
    return res


ROWS = [
    # (key, label, formatter, ratio?)
    ("seconds", "seconds", lambda v: "%.2f" % v, False),
    ("mb_per_s", "MB/s", lambda v: "%.1f" % v, True),
    ("cpu_s", "CPU s (user+sys)", lambda v: "%.1f" % v, True),
    ("rss_mib", "peak RSS MiB", lambda v: "%.0f" % v, True),
    ("repo_bytes", "repo bytes", lambda v: "{:,}".format(v), True),
    ("repo_growth_bytes", "repo growth bytes", lambda v: "{:,}".format(v), True),
    ("cache_bytes", "local cache bytes", lambda v: "{:,}".format(v), False),
]
ROWS_FOR = {
    "init": ["seconds", "repo_bytes"],
    "backup1": ["seconds", "mb_per_s", "cpu_s", "rss_mib", "repo_bytes", "cache_bytes"],
    "backup2": ["seconds", "mb_per_s", "cpu_s", "rss_mib", "repo_growth_bytes"],
    "backup3": ["seconds", "mb_per_s", "cpu_s", "rss_mib", "repo_growth_bytes", "repo_bytes"],
    "restore": ["seconds", "mb_per_s", "cpu_s", "rss_mib"],
}


def ratios(res, tools):
    base = tools[0]
    out = {}
    for other in tools[1:]:
        key = "%s/%s" % (base, other)
        out[key] = {}
        for ph in PHASES[1:]:  # init: nothing worth a ratio (empty repos)
            b, o = res.get(base, {}).get(ph), res.get(other, {}).get(ph)
            if not b or not o or not b["ok"] or not o["ok"]:
                continue
            d = {}
            for k, _, _, want in ROWS:
                if not want:
                    continue
                bv, ov = b.get(k), o.get(k)
                if bv is None or ov is None or ov == 0:
                    continue
                d[k] = bv / ov
            out[key][ph] = d
    return out


def table(meta, res, tools, rat):
    lines = []
    base = tools[0]
    cols = list(tools) + ["%s/%s" % (base, t) for t in tools[1:]]
    w0, w1, wc = 26, 18, 15
    wc = max([wc] + [len(c) + 2 for c in cols])
    hdr = "%-*s %-*s" % (w0, "phase", w1, "metric") + "".join("%*s" % (wc, c) for c in cols)
    lines.append(hdr)
    lines.append("-" * len(hdr))
    fmt = {k: f for k, _, f, _ in ROWS}
    label = {k: l for k, l, _, _ in ROWS}
    want = {k: w for k, _, _, w in ROWS}
    for ph in PHASES:
        if not any(ph in res.get(t, {}) for t in tools):
            continue
        first = True
        for k in ROWS_FOR[ph]:
            row = "%-*s %-*s" % (w0, PHASE_TITLE[ph] if first else "", w1, label[k])
            first = False
            for t in tools:
                r = res.get(t, {}).get(ph)
                if r is None:
                    cell = "-"
                elif not r["ok"]:
                    cell = "FAIL(%d)" % r["exit"]
                elif r.get(k) is None:
                    cell = "-"
                else:
                    cell = fmt[k](r[k])
                row += "%*s" % (wc, cell)
            for t in tools[1:]:
                v = rat.get("%s/%s" % (base, t), {}).get(ph, {}).get(k) if want[k] else None
                row += "%*s" % (wc, "%.2fx" % v if v is not None else "")
            lines.append(row)
        if ph == "restore":
            row = "%-*s %-*s" % (w0, "", w1, "verified")
            for t in tools:
                v = res.get(t, {}).get(ph, {}).get("verify")
                if v is None:
                    cell = "-"
                elif v["data_differences"]:
                    cell = "WRONG(%d)" % v["data_differences"]
                else:
                    cell = "ok" + ("" if not v["metadata_differences"]
                                   else " (meta %d)" % v["metadata_differences"])
                row += "%*s" % (wc, cell)
            lines.append(row)
    lines.append("")
    lines.append("ratios are %s / other: MB/s > 1 = %s faster; CPU, RSS, bytes < 1 = %s uses less"
                 % (base, base, base))
    lines.append("MB/s = source bytes (10^6) / wall seconds (backup2: effective rate over the whole dataset)")
    lines.append("page cache dropped before each command: %s; %d cores; dataset %s"
                 % ("yes" if meta.get("cache_drop") else "NO", meta["nproc"], meta["dataset"]))
    loads = [r[k] for p in res.values() for r in p.values()
             for k in ("load_before", "load_after") if r.get(k) is not None]
    if loads:
        mx = max(loads)
        lines.append("1-min load average around the commands (the tool itself included): max %.2f on %d cores%s"
                     % (mx, meta["nproc"], " -- NOISY: other work was running, trust ratios/CPU s "
                        "more than wall seconds" if mx > 2 * meta["nproc"] else ""))
    for t in tools:
        v = res.get(t, {}).get("restore", {}).get("verify")
        if v and v["data_differences"]:
            lines.append("!!!!! %s RESTORED WRONG DATA: %s !!!!!" % (t, v["data"]))
        elif v and v["metadata_differences"]:
            lines.append("note: %s metadata differences after restore: %s" % (t, v["metadata"]))
    return "\n".join(lines)


def main():
    out = sys.argv[1]
    meta, res = load(out)
    tools = [t for t in meta["tools"].split(",") if t]
    res = derive(meta, res)
    rat = ratios(res, tools)
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump({"meta": meta, "results": res, "ratios": rat,
                   "ratio_definition": "base/other for every metric; base = first tool"},
                  f, indent=1, sort_keys=True)
    print(table(meta, res, tools, rat))
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Tree manifests for the benchmark's restore verification.

  manifest.py make DIR OUT.json [NAME...]
      Walk DIR (only the top-level entries NAME..., default: all) and write one
      record per path: type, size, sha256 (regular files), symlink target,
      mode, uid, gid, mtime_ns, and a hard-link group (the first path sharing
      the inode) for files with nlink > 1.  Also prints a summary line.

  manifest.py compare SRC.json DST.json [--label L] [--json OUT]
      Compare two manifests.  Differences are classed as
        data:     missing/extra paths, type, size, content hash, symlink target
                  -> the restore is WRONG; exit status 2
        metadata: mode, uid/gid, mtime (files, symlinks, dirs), hard-link groups
                  -> reported, exit status 0
      A few examples of each class are printed.
"""
import argparse
import hashlib
import json
import os
import stat
import sys

BUF = 1 << 20


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb", buffering=0) as f:
        while True:
            b = f.read(BUF)
            if not b:
                break
            h.update(b)
    return h.hexdigest()


def walk(root, names):
    """Yield (relpath, lstat) for every entry under root/names, sorted."""
    stack = sorted(names, reverse=True)
    while stack:
        rel = stack.pop()
        full = os.path.join(root, rel)
        st = os.lstat(full)
        yield rel, st
        if stat.S_ISDIR(st.st_mode):
            kids = sorted(os.listdir(full), reverse=True)
            stack.extend(os.path.join(rel, k) for k in kids)


def make(root, names, out):
    if not names:
        names = sorted(os.listdir(root))
    entries = {}
    inodes = {}
    nfiles = nbytes = 0
    for rel, st in walk(root, names):
        m = st.st_mode
        e = {
            "mode": stat.S_IMODE(m),
            "uid": st.st_uid,
            "gid": st.st_gid,
            "mtime_ns": st.st_mtime_ns,
        }
        if stat.S_ISREG(m):
            e["type"] = "f"
            e["size"] = st.st_size
            key = (st.st_dev, st.st_ino)
            if st.st_nlink > 1:
                # hard-link group: the first path (in sorted walk order) of the inode
                e["link_group"] = inodes.setdefault(key, rel)
            e["sha256"] = sha256_file(os.path.join(root, rel))
            nfiles += 1
            nbytes += st.st_size
        elif stat.S_ISDIR(m):
            e["type"] = "d"
        elif stat.S_ISLNK(m):
            e["type"] = "l"
            e["target"] = os.readlink(os.path.join(root, rel))
        elif stat.S_ISFIFO(m):
            e["type"] = "p"
        elif stat.S_ISCHR(m) or stat.S_ISBLK(m):
            e["type"] = "c" if stat.S_ISCHR(m) else "b"
            e["rdev"] = st.st_rdev
        else:
            e["type"] = "?"
        entries[rel] = e
    doc = {"root": root, "files": nfiles, "bytes": nbytes, "entries": entries}
    with open(out, "w") as f:
        json.dump(doc, f)
    print("manifest %s: %d entries, %d regular files, %d bytes"
          % (root, len(entries), nfiles, nbytes))
    return 0


DATA_FIELDS = ("type", "size", "sha256", "target", "rdev")
META_FIELDS = ("mode", "uid", "gid", "mtime_ns", "link_group")


def compare(src_path, dst_path, label, json_out):
    with open(src_path) as f:
        src = json.load(f)["entries"]
    with open(dst_path) as f:
        dst = json.load(f)["entries"]
    data = {}   # kind -> [paths]
    meta = {}

    def add(d, kind, path):
        d.setdefault(kind, []).append(path)

    for p, s in src.items():
        d = dst.get(p)
        if d is None:
            add(data, "missing", p)
            continue
        for k in DATA_FIELDS:
            if s.get(k) != d.get(k):
                add(data, k, p)
                break
        for k in META_FIELDS:
            if k == "mtime_ns" and s["type"] == "l":
                # not every tool restores symlink mtimes; still report, separately
                if s[k] != d.get(k):
                    add(meta, "symlink_mtime", p)
                continue
            if k == "mtime_ns" and s["type"] == "d":
                if s[k] != d.get(k):
                    add(meta, "dir_mtime", p)
                continue
            if k == "link_group":
                # the group must be the same partition; names of the first
                # member coincide since both walks are in the same order
                if s.get(k) != d.get(k):
                    add(meta, "hardlink", p)
                continue
            if s.get(k) != d.get(k):
                add(meta, k, p)
    for p in dst:
        if p not in src:
            add(data, "extra", p)

    ndata = sum(len(v) for v in data.values())
    nmeta = sum(len(v) for v in meta.values())
    tag = "[%s] " % label if label else ""
    if ndata:
        print("%s!!!!! RESTORE IS WRONG: %d data differences !!!!!" % (tag, ndata))
    else:
        print("%srestore verified: %d entries, contents identical" % (tag, len(src)))
    for cls, d in (("DATA", data), ("metadata", meta)):
        for kind in sorted(d):
            ex = d[kind][:3]
            print("%s  %s %s: %d (e.g. %s)" % (tag, cls, kind, len(d[kind]), ", ".join(ex)))
    if json_out:
        with open(json_out, "w") as f:
            json.dump({
                "entries": len(src),
                "data_differences": ndata,
                "metadata_differences": nmeta,
                "data": {k: {"count": len(v), "examples": v[:10]} for k, v in data.items()},
                "metadata": {k: {"count": len(v), "examples": v[:10]} for k, v in meta.items()},
            }, f, indent=1)
    return 2 if ndata else 0


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("make")
    m.add_argument("dir")
    m.add_argument("out")
    m.add_argument("names", nargs="*")
    c = sub.add_parser("compare")
    c.add_argument("src")
    c.add_argument("dst")
    c.add_argument("--label", default="")
    c.add_argument("--json")
    a = ap.parse_args()
    if a.cmd == "make":
        return make(a.dir, a.names, a.out)
    return compare(a.src, a.dst, a.label, a.json)


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Prints the ```sh blocks of one section of a Markdown file, so CI runs documented commands
exactly as the documents write them (and follows them when they change).

    doc_blocks.py FILE HEADING           the blocks' text, in order, as one script
    doc_blocks.py FILE HEADING --each    one line per block (a block must be one line)

HEADING is the start of a `## ` heading's text ("Set-up" matches "## Set-up: two commands").
The section runs to the next heading of the same or a higher level. Exits 1 when the
section is missing or holds no sh block.
"""

import sys


def section(lines, heading):
    start = None
    for i, line in enumerate(lines):
        if line.startswith("## ") and line[3:].strip().startswith(heading):
            start = i + 1
            break
    if start is None:
        return None
    end = len(lines)
    for i in range(start, len(lines)):
        if lines[i].startswith("# ") or lines[i].startswith("## "):
            end = i
            break
    return lines[start:end]


def blocks(lines):
    out, cur = [], None
    for line in lines:
        stripped = line.strip()
        if cur is None and stripped in ("```sh", "```bash", "```shell"):
            cur = []
        elif cur is not None and stripped == "```":
            out.append("\n".join(cur))
            cur = None
        elif cur is not None:
            cur.append(line.rstrip("\n"))
    return out


def main():
    if len(sys.argv) not in (3, 4):
        sys.exit(__doc__)
    path, heading = sys.argv[1], sys.argv[2]
    each = len(sys.argv) == 4 and sys.argv[3] == "--each"
    with open(path, encoding="utf-8") as f:
        # Fenced blocks hold lines that start with '#' (shell comments): headings are only
        # looked for outside them.
        raw = f.read().split("\n")
    lines, fenced = [], False
    for line in raw:
        if line.strip().startswith("```"):
            fenced = not fenced
        lines.append(("\0" + line) if fenced and not line.strip().startswith("```") else line)
    part = section(lines, heading)
    if part is None:
        sys.exit(f"{path}: no '## {heading}…' section")
    found = [b.replace("\0", "") for b in blocks(part)]
    if not found:
        sys.exit(f"{path}: the '{heading}' section holds no sh block")
    if each:
        for b in found:
            cmds = [l for l in b.split("\n") if l.strip() and not l.strip().startswith("#")]
            if len(cmds) != 1:
                sys.exit(f"{path}: a block of the '{heading}' section is not one command: {b!r}")
            print(cmds[0].strip())
    else:
        print("\n\n".join(found))


if __name__ == "__main__":
    main()

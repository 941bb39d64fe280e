// What bench/run.mjs and bench/sign-in.mjs read of the processes they start, from
// /proc: `node_modules/.bin/workerd` is a Node launcher that starts the workerd binary
// as its child, so the CPU to measure is a descendant's, not the spawned process's.
import fs from "node:fs";

/** `root` and every process below it. */
export function processTree(root) {
  const kids = new Map();
  for (const d of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${d}/stat`, "utf8");
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      if (!kids.has(ppid)) kids.set(ppid, []);
      kids.get(ppid).push(Number(d));
    } catch {}
  }
  const out = [];
  const walk = (p) => { out.push(p); for (const k of kids.get(p) ?? []) walk(k); };
  walk(root);
  return out;
}

/** A process's command name, or "" once it is gone. */
export function comm(pid) {
  try { return fs.readFileSync(`/proc/${pid}/comm`, "utf8").trim(); } catch { return ""; }
}

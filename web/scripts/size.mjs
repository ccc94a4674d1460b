// Prints the dashboard bundle's sizes (raw and gzipped) and fails when the JavaScript the
// first page loads (the entry script and what index.html preloads) exceeds 150 KiB gzipped.
// Run after `npm run build`.
import { readdirSync, readFileSync } from "node:fs";
import { gzipSync } from "node:zlib";

const LIMIT = 150 * 1024;
const html = readFileSync("dist/index.html", "utf8");
const initial = new Set([...html.matchAll(/(?:src|href)="\/(assets\/[^"]+\.js)"/g)].map((m) => m[1]));
let first = 0;
const rows = readdirSync("dist/assets")
  .map((name) => {
    const data = readFileSync(`dist/assets/${name}`);
    const gz = gzipSync(data, { level: 9 }).length;
    const isInitial = initial.has(`assets/${name}`);
    if (isInitial) first += gz;
    return { name, raw: data.length, gz, isInitial };
  })
  .sort((a, b) => b.gz - a.gz);
const kib = (n) => `${(n / 1024).toFixed(1)} KiB`;
console.log("file".padEnd(36), "raw".padStart(10), "gzip".padStart(10), " loaded");
for (const r of rows) console.log(r.name.padEnd(36), kib(r.raw).padStart(10), kib(r.gz).padStart(10), html.includes(r.name) ? " first page" : " on demand");
console.log(`first-page JavaScript: ${kib(first)} gzipped (limit ${kib(LIMIT)})`);
if (initial.size === 0) throw new Error("no entry script found in dist/index.html");
if (first > LIMIT) {
  console.error("the first page's JavaScript is over budget");
  process.exit(1);
}

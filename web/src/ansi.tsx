// Renders the SGR colour codes build tools print (ESC[...m) as styled spans; other escape
// sequences are dropped. The palette is tuned for the log viewer's dark background.

const ESCAPES = /\u001b\[[0-9;?]*[A-Za-z]/g;

/** The text without escape sequences (for search, copy and download). */
export const stripAnsi = (text: string) => text.replace(ESCAPES, "");

const COLOURS = ["#9a9aae", "#ff7b72", "#56d364", "#e3b341", "#79c0ff", "#d2a8ff", "#56d4dd", "#d0d0d8"];
const BRIGHT = ["#b1b1c2", "#ffa198", "#7ee787", "#f2cc60", "#a5d6ff", "#e2c5ff", "#87e8ee", "#ffffff"];

type Style = { color?: string; background?: string; fontWeight?: string };

export function Ansi({ text }: { text: string }) {
  const parts: { text: string; style: Style }[] = [];
  let style: Style = {};
  const pattern = /\u001b\[([0-9;]*)([A-Za-z])/g;
  let last = 0;
  for (let match = pattern.exec(text); match; match = pattern.exec(text)) {
    if (match.index > last) parts.push({ text: text.slice(last, match.index), style });
    last = pattern.lastIndex;
    if (match[2] !== "m") continue;
    for (const code of (match[1] || "0").split(";").map(Number)) {
      if (code === 0) style = {};
      else if (code === 1) style = { ...style, fontWeight: "bold" };
      else if (code >= 30 && code <= 37) style = { ...style, color: COLOURS[code - 30] };
      else if (code >= 90 && code <= 97) style = { ...style, color: BRIGHT[code - 90] };
      else if (code >= 40 && code <= 47) style = { ...style, background: COLOURS[code - 40] };
      else if (code === 39) style = { ...style, color: undefined };
    }
  }
  if (last < text.length) parts.push({ text: text.slice(last), style });
  return (
    <>
      {parts.map((p, i) => (
        <span key={i} style={p.style}>
          {p.text}
        </span>
      ))}
    </>
  );
}

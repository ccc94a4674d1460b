// Renders the SGR colour codes build tools print (ESC[...m) as styled spans; other escape
// sequences are dropped.

const COLOURS = ["#000", "#c0392b", "#27ae60", "#b7950b", "#2e86c1", "#8e44ad", "#17a589", "#ccc"];
const BRIGHT = ["#777", "#e74c3c", "#2ecc71", "#f1c40f", "#5dade2", "#bb8fce", "#48c9b0", "#fff"];

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

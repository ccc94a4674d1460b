import { describe, expect, it } from "vitest";
import { splitWords } from "../src/pages/jobs";

describe("splitWords", () => {
  it("splits on whitespace and groups quoted words", () => {
    expect(splitWords("  ls   -l /data ")).toEqual(["ls", "-l", "/data"]);
    expect(splitWords(`sh -c 'echo "a b" | wc -c'`)).toEqual(["sh", "-c", `echo "a b" | wc -c`]);
    expect(splitWords(`echo "x \\"y\\"" z\\ w`)).toEqual(["echo", `x "y"`, "z w"]);
    expect(splitWords(`printf ''`)).toEqual(["printf", ""]);
  });

  it("refuses an unclosed quote and answers nothing for blank input", () => {
    expect(splitWords(`echo 'oops`)).toBeNull();
    expect(splitWords("   ")).toEqual([]);
  });
});

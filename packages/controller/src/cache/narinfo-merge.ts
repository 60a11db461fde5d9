import { FerryError, parseNarInfo, parseSha256, type NarInfo } from "@ferry/core";

function sameNarHash(a: string, b: string): boolean {
  const left = parseSha256(a);
  const right = parseSha256(b);
  return left && right ? left.equals(right) : a === b;
}

/**
 * What a narinfo upload for a path the cache already holds becomes. The same
 * contents (NAR hash, size, references) signed again: the stored narinfo with
 * the new signatures added, so pushing with a key repairs an unsigned push.
 * Other contents under the same store path: refused, never replaced, because
 * hosts may already run the stored contents and its signatures cover them.
 */
export function mergeNarInfoUpload(storedText: string, uploadedText: string): { text: string; added: string[]; info: NarInfo } {
  const stored = parseNarInfo(storedText);
  const uploaded = parseNarInfo(uploadedText);
  if (uploaded.storePath !== stored.storePath) {
    throw new FerryError("E_BAD_ARGUMENT", `narinfo for ${uploaded.storePath} uploaded over the one of ${stored.storePath}`);
  }
  const sameRefs = [...stored.references].sort().join(" ") === [...uploaded.references].sort().join(" ");
  if (!sameNarHash(stored.narHash, uploaded.narHash) || stored.narSize !== uploaded.narSize || !sameRefs) {
    throw new FerryError(
      "E_CACHE_CONFLICT",
      `the cache holds ${stored.storePath} with NAR hash ${stored.narHash} (${stored.narSize} bytes)` +
        `; this upload has ${uploaded.narHash} (${uploaded.narSize} bytes)${sameRefs ? "" : " and other references"}` +
        ": the same store path with other contents (a build that is not reproducible?); the cache keeps its copy",
    );
  }
  const added = [...new Set(uploaded.sigs)].filter((sig) => !stored.sigs.includes(sig));
  if (added.length === 0) return { text: storedText, added, info: stored };
  const text = `${storedText.replace(/\n*$/, "\n")}${added.map((sig) => `Sig: ${sig}\n`).join("")}`;
  return { text, added, info: parseNarInfo(text) };
}

// Shared by the cache index tests: a narinfo for a 5-byte "hello" NAR under
// any store hash and NAR URL, signed or not.

export const helloPathOf = (hash: string): string => `/nix/store/${hash}-hello`;

export const helloNarInfo = (hash: string, url: string, sig?: string): string =>
  [
    `StorePath: ${helloPathOf(hash)}`,
    `URL: ${url}`,
    "Compression: none",
    "NarHash: sha256:0dkpq4ayyk5lq5w4nqyyyzcsjy9fwz3b9d8y8pr3nvb0jkrk5yk7",
    "NarSize: 5",
    "References: ",
    ...(sig ? [`Sig: ${sig}`] : []),
    "",
  ].join("\n");

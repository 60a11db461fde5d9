# A "realistic" closure for the bundle benchmark: real binaries, libraries and
# text from this machine's /usr/lib and /usr/share, spread over `count` leaf
# paths by lists the benchmark writes (one file of absolute paths per leaf),
# and one root that refers to them all. Impure by design (it reads /usr, so it
# needs `sandbox = false`, as Ferry's tests run Nix): the same machine gives
# the same closure.
{ listsDir, count ? 300, salt ? "" }:
let
  common = {
    system = builtins.currentSystem;
    builder = "/bin/sh";
    PATH = "/bin:/usr/bin";
    inherit salt;
  };
  leaf = i: derivation (common // {
    name = "bench-real-${toString i}";
    list = "${listsDir}/list-${toString i}";
    args = [ "-c" ''
      mkdir -p $out
      while IFS= read -r file; do cp --parents "$file" $out/; done < $list
      echo leaf ${toString i} > $out/README
    '' ];
  });
  leaves = builtins.genList leaf count;
in
derivation (common // {
  name = "bench-real-root";
  inherit leaves;
  args = [ "-c" ''
    mkdir -p $out
    for leaf in $leaves; do echo $leaf; done > $out/leaves
  '' ];
})

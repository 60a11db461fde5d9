# A synthetic "system closure" for the bundle benchmark, built without
# nixpkgs: `count` leaf paths of pseudo-random (incompressible) data whose
# sizes add up to about `totalMiB`, and one root that refers to all of them.
{ count ? 300, totalMiB ? 512, salt ? "" }:
let
  common = {
    system = builtins.currentSystem;
    builder = "/bin/sh";
    PATH = "/bin:/usr/bin";
    inherit salt;
  };
  # Sizes vary between 0.5x and 1.5x of the mean so NARs are not all alike.
  mean = totalMiB * 1024 * 1024 / count;
  sizeOf = i: mean / 2 + (mean * (i * 37 - (i * 37 / count) * count)) / count;
  leaf = i: derivation (common // {
    name = "bench-leaf-${toString i}";
    size = toString (sizeOf i);
    args = [ "-c" ''
      mkdir -p $out/share
      head -c $size /dev/urandom > $out/share/data
      echo leaf ${toString i} > $out/README
    '' ];
  });
  leaves = builtins.genList leaf count;
in
derivation (common // {
  name = "bench-root";
  inherit leaves;
  args = [ "-c" ''
    mkdir -p $out
    for leaf in $leaves; do echo $leaf; done > $out/leaves
  '' ];
})

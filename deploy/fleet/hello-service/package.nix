# The example service: server.js run by Node 20. No npm dependencies, so no
# buildNpmPackage; the script is copied into the store next to the wrapper.
{ writeShellApplication, nodejs_20 }:

writeShellApplication {
  name = "hello-service";
  runtimeInputs = [ nodejs_20 ];
  text = ''
    exec node ${./server.js} "$@"
  '';
}

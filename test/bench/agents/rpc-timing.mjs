// Loaded into the `ferry` CLI with `node --import` by the agents bench, so that
// a deploy or rollout start reports the duration of its RPC alone (request
// sent → response decoded, as the CLI sees it), apart from the CLI's start-up:
// each unary call appends {"method", "ms", "ok"} as a JSON line to
// $BENCH_RPC_TIMING_FILE. Plain JavaScript: a TypeScript loader would slow the
// CLI whose wall time the bench also measures.
import { appendFileSync } from "node:fs";
import { createRequire } from "node:module";

// grpc-js binds each client method when the client class is made, so the
// class maker is wrapped, before @ferry/protocol makes its clients.
const makeClient = createRequire(import.meta.url)("@grpc/grpc-js/build/src/make-client.js");
const file = process.env.BENCH_RPC_TIMING_FILE;
const original = makeClient.makeClientConstructor;
makeClient.makeClientConstructor = function (methods, ...rest) {
  const Client = original.call(this, methods, ...rest);
  for (const [name, attrs] of Object.entries(methods)) {
    if (!file || attrs.requestStream || attrs.responseStream) continue;
    const method = Client.prototype[name];
    const timed = function (...args) {
      // The callback is the last argument.
      const callback = args[args.length - 1];
      const started = performance.now();
      args[args.length - 1] = (error, value) => {
        appendFileSync(file, `${JSON.stringify({ method: attrs.path, ms: performance.now() - started, ok: !error })}\n`);
        callback(error, value);
      };
      return method.apply(this, args);
    };
    Client.prototype[name] = timed;
    if (attrs.originalName) Client.prototype[attrs.originalName] = timed;
  }
  return Client;
};
